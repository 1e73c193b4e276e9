//! Command-line arguments (clap derive).

use std::path::PathBuf;
use std::str::FromStr;

use chainsmith::consensus::Consensus;
use chainsmith::hash::Backend;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Mine, verify and compare blockchains under different consensus rules.
#[derive(Debug, Parser)]
#[command(name = "chainsmith", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Mine blocks onto a chain file (created from its spec if missing, else verified and
    /// continued).
    #[command(after_help = MINE_EXAMPLES)]
    Mine(MineArgs),
    /// Verify every block of a chain file (exit 0 valid, 1 invalid, 2 usage or I/O error).
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// What a chain file holds, after verifying it: rule, spec, height, tip and its time,
    /// median time past, difficulty, total work or irreversible height, size on disk
    /// (as `bitcoin-cli getblockchaininfo` tells of a node).
    #[command(visible_alias = "status", after_help = INFO_EXAMPLES)]
    Info(InfoArgs),
    /// Decode one 80-byte block header given as 160 hex digits.
    #[command(after_help = HEADER_EXAMPLES)]
    Header(HeaderArgs),
    /// Print the blocks of a chain file, or a range of them: a table that fits 80 columns,
    /// JSON lines or header hex.
    #[command(after_help = SHOW_EXAMPLES)]
    Show(ShowArgs),
    /// Measure the sha256d nonce loop of each hash backend, at 1 thread and at all threads,
    /// against the portable reference in the same run.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
    /// Compare proof of work, proof of stake, DPoS, proof of authority and the ordering
    /// rules: hashes, hash rate, CPU time, energy per block and time to finality, mined now on
    /// the demo specs or read from two or more chain files.
    #[command(after_help = COMPARE_EXAMPLES)]
    Compare(CompareArgs),
    /// Run an ordering protocol's cluster (raft, pbft, paxos, zab, kafka) in the deterministic
    /// simulator, with faults and Byzantine replicas, and report what happened; every node's
    /// chain file goes to --out.
    #[command(after_help = SIM_EXAMPLES)]
    Sim(SimArgs),
    /// Run many random fault schedules against an ordering protocol: no safety violation may
    /// occur, and blocks must commit again soon after the faults heal (exit 1 otherwise).
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Reproduce the Raft paper's election experiment (Figure 16): time without a leader after
    /// the leader crashes, for each range of election timeouts; a table, JSON and a CDF chart.
    #[command(after_help = ELECTIONS_EXAMPLES)]
    Elections(ElectionsArgs),
    /// Run one node of a real cluster over TCP (raft, pbft, paxos, zab, kafka): the cluster
    /// file names the rule, every member's address and node key, and the data directory.
    #[command(after_help = NODE_EXAMPLES)]
    Node(NodeArgs),
    /// Talk to a running cluster: submit transactions, see each node's role and height,
    /// follow committed blocks, inject link faults.
    #[command(after_help = CLIENT_EXAMPLES)]
    Client(ClientArgs),
    /// Start, stop, kill and restart a local cluster's node processes on 127.0.0.1.
    #[command(after_help = CLUSTER_EXAMPLES)]
    Cluster(ClusterArgs),
    /// Run a Stratum V1 mining pool over a proof-of-work chain file: miners (ours with
    /// `mine pow --pool`, cpuminer, cgminer, ASICs) connect, get jobs, submit shares; a share
    /// that meets the chain's target is a block, checked, appended and synced, its reward
    /// split among the last N shares (PPLNS).
    #[command(after_help = POOL_EXAMPLES)]
    Pool(PoolArgs),
}

const INFO_EXAMPLES: &str = "Examples:
  chainsmith info chains/pow-demo.jsonl
  chainsmith info chains/dpos-demo.jsonl --json

Exit 0 when every block is valid; 1 when not (what is valid is still described,
and the first invalid line named).";

const MINE_EXAMPLES: &str = "Examples:
  chainsmith mine pow                  20 blocks into chains/pow-demo.jsonl
  chainsmith mine pow --blocks 5 --threads 2 --deterministic --json
  chainsmith mine pow --spec regtest --backend soft
  chainsmith mine pos --blocks 50      stake 50 blocks of pos-demo
  chainsmith mine dpos --offline bp001 bp003
                                       two producers down: their slots missed
  chainsmith mine poa --vote +frank    the five signers vote frank in
  chainsmith mine raft                 20 blocks ordered by a simulated cluster
  chainsmith mine pow --pool stratum+tcp://127.0.0.1:3333 --user alice.rig1
  chainsmith mine dpos --json-log      progress as JSON lines, for monitoring

Run again on the same chain file, it verifies the file and mines that many more
blocks. Ctrl-C stops at once (exit 130) with every block written synced.";

const VERIFY_EXAMPLES: &str = "Examples:
  chainsmith verify chains/pow-demo.jsonl
  chainsmith verify chains/pow-demo.jsonl --json --quiet
  chainsmith verify chains/pow-demo.jsonl --repair
                                       cut a torn or invalid tail off the file";

const HEADER_EXAMPLES: &str = "Examples:
  chainsmith header \"$(chainsmith show chains/pow-demo.jsonl --height 0 --hex)\"
  chainsmith show chains/pow-demo.jsonl --hex | xargs -n1 chainsmith header";

const SHOW_EXAMPLES: &str = "Examples:
  chainsmith show chains/pow-demo.jsonl
  chainsmith show chains/poa-demo.jsonl --height 3
  chainsmith show chains/pow-demo.jsonl --hex |
    python3 tests/tools/outside-check.py";

const BENCH_EXAMPLES: &str = "Examples:
  chainsmith bench                     each backend, 2 s at 1 and at all threads
  chainsmith bench --seconds 5 --threads 2
  chainsmith bench --backend sha-ni --json
                                       one backend against soft, as JSON

The first lines name the CPU, whether it has SHA-NI, AVX2 and AVX-512, and the
backend `mine` uses; the last, the best run. Scripts read --json.";

const COMPARE_EXAMPLES: &str = "Examples:
  chainsmith compare                   mine every rule's demo spec and compare
  chainsmith compare --blocks 10 --spacing 2 --plot plots --json
  chainsmith compare --spec pow=regtest --keep runs/c1
  chainsmith compare chains/pow-demo.jsonl chains/pos-demo.jsonl
                                       two chain files, read instead of mined";

const POOL_EXAMPLES: &str = "Examples:
  chainsmith pool
  chainsmith pool --listen 0.0.0.0:3333 --vardiff --shares-per-minute 20
  chainsmith pool --chain chains/pool.jsonl --share-difficulty 0.001 --json-log
  chainsmith mine pow --pool stratum+tcp://127.0.0.1:3333 --user alice.rig1
  cpuminer -a sha256d -o stratum+tcp://127.0.0.1:3333 -u alice.rig1 -p x

Users are NAME[.WORKER]: NAME is a 64-hex-digit public key, or a wallet name
whose key is derived from the chain's wallet seed (a demo: anyone with the spec
can derive it). Ctrl-C stops the pool (exit 130) with every block found already
synced.";

const NODE_EXAMPLES: &str = "Examples:
  chainsmith node --config cluster.toml --id s1
  chainsmith node --config cluster.toml --id s4 --byzantine equivocate \\
    --log-format json

Stops on SIGTERM or Ctrl-C after syncing what it did; restarted (even after
kill -9), it rejoins from its write-ahead log and chain file (DATA_DIR/NAME/)
and catches up.";

const CLIENT_EXAMPLES: &str = "Examples:
  chainsmith client --config c/cluster.toml status
  chainsmith client --config c/cluster.toml submit --count 200 --concurrency 16
  chainsmith client --config c/cluster.toml watch --from 1
  chainsmith client --config c/cluster.toml fault partition s1,s2 s3,s4,s5
  chainsmith client --config c/cluster.toml fault heal";

const CLUSTER_EXAMPLES: &str = "Examples:
  chainsmith cluster up --rule raft --nodes 5 --dir c
  chainsmith cluster up --rule pbft --nodes 4 --dir p --byzantine s4:equivocate
  chainsmith cluster kill s1 --dir c   kill -9, for demos
  chainsmith cluster start s1 --dir c
  chainsmith cluster down --dir c";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// This node's name in the cluster file.
    #[arg(long, value_name = "NAME")]
    pub(crate) id: String,
    /// pbft: misbehave as MODE (silent, equivocate, forge, slow-primary, replay).
    #[arg(long, value_name = "MODE")]
    pub(crate) byzantine: Option<String>,
    /// Accept `client fault …` commands (tests and demos).
    #[arg(long)]
    pub(crate) allow_faults: bool,
    /// Stop by itself after this long (test and demo clusters): 10m, 90s.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub(crate) lifetime: Option<f64>,
    /// Log lines as text or JSON.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// The least important events logged: error, warn, info, debug (each engine step's
    /// notes), trace.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub(crate) log_level: String,
}

#[derive(Debug, Args)]
pub(crate) struct PoolArgs {
    /// Built-in spec name or a spec JSON file, for a new chain file [default: pow-demo].
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) spec: Option<String>,
    /// Chain file to create or continue [default: chains/<spec name>.jsonl].
    #[arg(long, value_name = "FILE")]
    pub(crate) chain: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:3333")]
    pub(crate) listen: std::net::SocketAddr,
    /// Share difficulty a connection starts at (difficulty 1 = target 0x00000000ffff…)
    /// [default: a quarter of the chain's difficulty, at most 1].
    #[arg(long, value_name = "D", value_parser = parse_difficulty)]
    pub(crate) share_difficulty: Option<f64>,
    /// Retarget each connection's share difficulty toward --shares-per-minute.
    #[arg(long)]
    pub(crate) vardiff: bool,
    /// Vardiff's wanted shares per minute per connection.
    #[arg(long, value_name = "N", default_value_t = 20.0, value_parser = parse_positive)]
    pub(crate) shares_per_minute: f64,
    /// Shares in the PPLNS window: a block's reward is split among the last N.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) pplns_window: u32,
    /// Who the coinbase pays before any share: a wallet name of the spec or a public key
    /// [default: the spec's miner].
    #[arg(long, value_name = "NAME|KEY")]
    pub(crate) operator: Option<String>,
    /// Demo transfers between the spec's wallets per block (at most 10 000).
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = parse_tx_per_block)]
    pub(crate) tx_per_block: usize,
    /// A fresh job (new time, current PPLNS split) this often on the same block.
    #[arg(long, value_name = "T", default_value = "30s", value_parser = parse_time)]
    pub(crate) job_interval: f64,
    /// Per-worker statistics this often.
    #[arg(long, value_name = "T", default_value = "60s", value_parser = parse_time)]
    pub(crate) stats_interval: f64,
    /// Connections served at once; more are closed at once.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_connections: u32,
    /// Connections served at once from one IP address.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_connections_per_ip: u32,
    /// Time a connection has to subscribe and authorize.
    #[arg(long, value_name = "T", default_value = "15s", value_parser = parse_time)]
    pub(crate) handshake_timeout: f64,
    /// Time an authorized connection may say nothing.
    #[arg(long, value_name = "T", default_value = "600s", value_parser = parse_time)]
    pub(crate) idle_timeout: f64,
    /// Submissions per second one connection may make.
    #[arg(long, value_name = "N", default_value_t = 1000.0, value_parser = parse_positive)]
    pub(crate) max_submit_rate: f64,
    /// Stop after this many blocks (exit 0).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) blocks: Option<u64>,
    /// Stop by itself after this long (tests and demos; exit 0): 90s.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub(crate) lifetime: Option<f64>,
    /// Events as JSON lines on stdout (every share, job, block, statistics) instead of text
    /// lines on stderr.
    #[arg(long)]
    pub(crate) json_log: bool,
    /// Only blocks, statistics and errors in the text log.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

fn parse_difficulty(s: &str) -> Result<f64, String> {
    let d = parse_positive(s)?;
    let (lo, hi) = (
        chainsmith::pool::stratum::MIN_DIFFICULTY,
        chainsmith::pool::stratum::MAX_DIFFICULTY,
    );
    if !(lo..=hi).contains(&d) {
        return Err(format!("{s:?} is outside {lo:e}..={hi:e}"));
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    #[command(subcommand)]
    pub(crate) command: ClientCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Submit transactions round-robin to the nodes (a follower forwards them to its leader)
    /// and wait until each is committed.
    Submit(SubmitArgs),
    /// Each node's role, term, leader, height and links.
    Status {
        /// Only this node.
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// Print JSON (an array, one object per node).
        #[arg(long)]
        json: bool,
    },
    /// Print committed blocks as a node commits them.
    Watch {
        /// The node to follow [default: the first that answers].
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// Start at this height [default: the node's next block].
        #[arg(long, value_name = "H")]
        from: Option<u32>,
        /// Stop after this many blocks.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// One JSON object per block.
        #[arg(long)]
        json: bool,
    },
    /// Inject link faults (nodes started with --allow-faults, as `cluster up` starts them).
    #[command(subcommand)]
    Fault(FaultCommand),
}

#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// Transactions to submit.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(crate) count: u64,
    /// Only to this node.
    #[arg(long, value_name = "NAME")]
    pub(crate) node: Option<String>,
    /// Transactions in flight at once (1: each waits for the one before).
    #[arg(long, default_value_t = 1, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) concurrency: u64,
    /// Give up on transactions not committed after this long (10s, 500ms).
    #[arg(long, value_name = "T", value_parser = parse_time, default_value = "10s")]
    pub(crate) timeout: f64,
    /// Resend a transaction to the next node after it waited this long.
    #[arg(long, value_name = "T", value_parser = parse_time, default_value = "1s")]
    pub(crate) retry: f64,
    /// The client id [default: random].
    #[arg(long, value_name = "ID")]
    pub(crate) client: Option<u32>,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FaultCommand {
    /// Cut every link between the groups (both ways): s1,s2 s3,s4,s5.
    Partition {
        /// Two or more groups of node names, comma-separated.
        #[arg(required = true, num_args = 2.., value_name = "A,B")]
        groups: Vec<String>,
    },
    /// Lose each message to and from other nodes with probability P.
    Drop {
        /// The probability, 0 to 1.
        #[arg(value_name = "P")]
        probability: f64,
        /// The nodes told (repeatable) [default: all].
        #[arg(long, value_name = "NAME")]
        node: Vec<String>,
    },
    /// Delay each message the nodes send by MS milliseconds.
    Delay {
        /// Milliseconds.
        #[arg(value_name = "MS")]
        ms: u64,
        /// The nodes told (repeatable) [default: all].
        #[arg(long, value_name = "NAME")]
        node: Vec<String>,
    },
    /// Remove every fault on every node.
    Heal,
}

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    pub(crate) command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Write DIR/cluster.toml (a new cluster) and start every node; wait for a leader. In a
    /// directory that already holds a cluster, start its nodes that are not running.
    Up(UpArgs),
    /// Stop every node (SIGTERM, then SIGKILL after 10 s).
    Down {
        /// The cluster directory.
        #[arg(long, value_name = "DIR", default_value = "chainsmith-cluster")]
        dir: PathBuf,
    },
    /// Kill a node with SIGKILL (kill -9): no chance to flush anything.
    Kill {
        /// The node.
        name: String,
        /// The cluster directory.
        #[arg(long, value_name = "DIR", default_value = "chainsmith-cluster")]
        dir: PathBuf,
    },
    /// Start a node that is not running.
    Start {
        /// The node.
        name: String,
        /// The cluster directory.
        #[arg(long, value_name = "DIR", default_value = "chainsmith-cluster")]
        dir: PathBuf,
        /// The node stops by itself after this long.
        #[arg(long, value_name = "T", value_parser = parse_time)]
        lifetime: Option<f64>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// The ordering rule (raft, pbft, paxos, zab, kafka) [default: raft].
    #[arg(long, value_name = "RULE")]
    pub(crate) rule: Option<String>,
    /// Nodes: s1, s2, … [default: 3].
    #[arg(long, value_name = "N")]
    pub(crate) nodes: Option<usize>,
    /// The cluster directory.
    #[arg(long, value_name = "DIR", default_value = "chainsmith-cluster")]
    pub(crate) dir: PathBuf,
    /// The first node's port; the others follow [default: free ports].
    #[arg(long, value_name = "PORT")]
    pub(crate) base_port: Option<u16>,
    /// Built-in spec name or spec file [default: <rule>-demo].
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) spec: Option<String>,
    /// A parameter of the rule's spec section, as TOML (repeatable):
    /// heartbeat_ms=50, election_timeout_ms=[250,500].
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) param: Vec<String>,
    /// Start NAME in a Byzantine mode (pbft; repeatable): s4:equivocate.
    #[arg(long, value_name = "NAME:MODE")]
    pub(crate) byzantine: Vec<String>,
    /// How long to wait for a leader.
    #[arg(long, value_name = "T", value_parser = parse_time, default_value = "30s")]
    pub(crate) wait: f64,
    /// Each node stops by itself after this long (tests, unattended demos).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub(crate) lifetime: Option<f64>,
}

const ELECTIONS_EXAMPLES: &str = "Examples:
  chainsmith elections                 1000 trials per range, the paper's six
  chainsmith elections --trials 100 --plot plots --json";

#[derive(Debug, Args)]
pub(crate) struct ElectionsArgs {
    /// Trials per range of election timeouts.
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) trials: u64,
    /// The seed.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub(crate) seed: u64,
    /// Write the CDF chart (raft_elections.svg) into this directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) plot: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

const SIM_EXAMPLES: &str = "Examples:
  chainsmith sim raft                  5 nodes, no faults, 20 blocks
  chainsmith sim raft --crash s1@2s..5s --load 50 --duration 8s --trace
  chainsmith sim raft --partition 's1,s2|s3,s4,s5@1s..3s' --drop 0.05 \\
    --out runs/p1
  chainsmith sim raft --scenario failing.json
                                       replay a schedule `check` printed
  chainsmith sim raft --no-pre-vote --no-check-quorum \\
    --partition 's5|s1,s2,s3,s4@1s..4s'
                                       a rejoining node disrupts the cluster
  chainsmith sim pbft                  4 replicas (f = 1), no faults, 20 blocks
  chainsmith sim pbft --byzantine s1:equivocate --trace
                                       an equivocating primary, replaced
  chainsmith sim pbft --nodes 7 --byzantine s1:twins --byzantine s2:silent
  chainsmith sim pbft --byzantine s1:twins --byzantine s2:twins --allow-unsafe

  chainsmith sim kafka                 3 brokers, RF 3, min ISR 2, 20 blocks
  chainsmith sim kafka --crash s1@2s..5s --load 50 --duration 8s --trace
  chainsmith sim kafka --nodes 5 --scenario unclean.json \\
    --unclean-leader-election          f + 1 twins: honest replicas disagree
  chainsmith sim paxos --crash s5@2s..5s --load 50 --duration 8s --trace
  chainsmith sim paxos --no-backoff --duration 3s
                                       proposers duel: no block is chosen
  chainsmith sim zab --crash s5@2s..5s --load 50 --duration 8s --trace
                                       leader crash: re-election, DIFF/TRUNC
  chainsmith sim --all --plot plots    every rule, one scenario: the leader
                                       crashes at 2 s and is back at 5 s
  chainsmith sim --all --crash leader@1s --load 100 --duration 5s --json
Byzantine behaviours: silent, equivocate, forge, slow-primary, replay, twins.";

const CHECK_EXAMPLES: &str = "Examples:
  chainsmith check raft                100 random schedules on 5 nodes
  chainsmith check raft --schedules 10000 --nodes 3 --json
  chainsmith check pbft --schedules 1000
                                       crashes, partitions, up to f Byzantine
  chainsmith check paxos --schedules 1000
                                       crashes, restarts, partitions, loss
  chainsmith check zab --schedules 1000
                                       crashes, partitions, loss (FIFO links)
  chainsmith check kafka --schedules 1000
                                       crashes, restarts, partitions (3 brokers)
A failing schedule is printed as a scenario file; `chainsmith sim raft
--scenario FILE` replays it.";

/// Parses a time: `2s`, `2.5s`, `1500ms` or plain seconds.
pub(crate) fn parse_time(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let secs = if let Some(ms) = t.strip_suffix("ms") {
        ms.trim().parse::<f64>().map(|v| v / 1000.0)
    } else {
        t.strip_suffix('s').unwrap_or(t).trim().parse::<f64>()
    }
    .map_err(|_| format!("{s:?} is not a time (2s, 1500ms)"))?;
    if !(secs.is_finite() && (0.0..=chainsmith::sim::scenario::MAX_DURATION_S).contains(&secs)) {
        return Err(format!("{s:?} is not a time from 0 to a day"));
    }
    Ok(secs)
}

/// Parses `MIN..MAX` of non-negative numbers.
fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("expected MIN..MAX, got {s:?}"))?;
    let num = |v: &str| {
        v.trim()
            .trim_end_matches("ms")
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| format!("{v:?} is not a non-negative number"))
    };
    let (lo, hi) = (num(a)?, num(b)?);
    if lo > hi {
        return Err(format!("{s:?}: the minimum is above the maximum"));
    }
    Ok((lo, hi))
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability in [0, 1)")),
    }
}

#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// The ordering rule.
    #[arg(required_unless_present = "all")]
    pub(crate) rule: Option<RuleArg>,
    /// Run the same scenario on every ordering rule (their demo specs, one seed) and print
    /// one table. With no scenario, crash or partition given: the leader crashes at 2 s and
    /// restarts at 5 s, 50 tx/s, 5 nodes, 10 s.
    #[arg(long, conflicts_with_all = ["rule", "spec", "blocks", "out", "trace"])]
    pub(crate) all: bool,
    /// With --all: write the comparison chart (ordering_rules.svg) into this directory.
    #[arg(long, value_name = "DIR", requires = "all")]
    pub(crate) plot: Option<PathBuf>,
    /// Built-in spec name or spec file [default: <rule>-demo].
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) spec: Option<String>,
    /// A scenario file (JSON): nodes, seed, length, network, load, crashes, partitions,
    /// params; flags given with it override its fields.
    #[arg(long, value_name = "FILE")]
    pub(crate) scenario: Option<PathBuf>,
    /// Cluster size (1 to 101) [default: the spec's members].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=101))]
    pub(crate) nodes: Option<u16>,
    /// The seed: the same seed and scenario give the same run [default: 1].
    #[arg(long, value_name = "S")]
    pub(crate) seed: Option<u64>,
    /// Stop once this many blocks are committed [default: 20].
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub(crate) blocks: Option<u64>,
    /// Stop after this much simulated time (2s, 1500ms).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub(crate) duration: Option<f64>,
    /// Crash NODE (or `leader`: whoever leads then) at T, restarting at T2 if given
    /// (repeatable): s1@2s..5s, leader@2s..5s.
    #[arg(long, value_name = "NODE@T[..T2]")]
    pub(crate) crash: Vec<String>,
    /// Partition the nodes into groups from T1 to T2 (repeatable): s1,s2|s3,s4,s5@1s..3s.
    #[arg(long, value_name = "A,B|C,D@T1..T2")]
    pub(crate) partition: Vec<String>,
    /// Probability each message is lost.
    #[arg(long, value_name = "P", value_parser = parse_probability)]
    pub(crate) drop: Option<f64>,
    /// Probability each message is delivered twice.
    #[arg(long, value_name = "P", value_parser = parse_probability)]
    pub(crate) duplicate: Option<f64>,
    /// One-way delay in milliseconds, uniform: 5..10.
    #[arg(long, value_name = "MIN..MAX", value_parser = parse_range)]
    pub(crate) delay: Option<(f64, f64)>,
    /// Client transactions per second, submitted to random nodes [default: 20].
    #[arg(long, value_name = "TPS")]
    pub(crate) load: Option<f64>,
    /// raft, paxos: election timeout range in milliseconds: 150..300 (zab: a looking
    /// server's vote resend timeout, 100..200).
    #[arg(long, value_name = "MIN..MAX", value_parser = parse_range)]
    pub(crate) election: Option<(f64, f64)>,
    /// raft: turn pre-vote off.
    #[arg(long)]
    pub(crate) no_pre_vote: bool,
    /// raft: turn check-quorum off.
    #[arg(long)]
    pub(crate) no_check_quorum: bool,
    /// paxos: preempted proposers retry at once with a higher ballot instead of backing off
    /// (they duel: no block is chosen).
    #[arg(long)]
    pub(crate) no_backoff: bool,
    /// pbft: replica NODE behaves as BEHAVIOUR (repeatable): silent, equivocate, forge,
    /// slow-primary, replay, twins.
    #[arg(long, value_name = "NODE:BEHAVIOUR")]
    pub(crate) byzantine: Vec<String>,
    /// pbft: run with more Byzantine replicas than n = 3f + 1 tolerates, to watch safety
    /// break.
    #[arg(long)]
    pub(crate) allow_unsafe: bool,
    /// kafka: when no in-sync replica is alive, elect an out-of-sync one (committed blocks
    /// are lost, and counted).
    #[arg(long)]
    pub(crate) unclean_leader_election: bool,
    /// kafka: truncate a follower to its own high watermark, as Kafka did before KIP-101's
    /// leader epochs.
    #[arg(long)]
    pub(crate) no_leader_epochs: bool,
    /// Write every node's chain file into this directory (<node>.jsonl).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Print a timeline: role changes, votes, appends, commits (raft); views, proposals,
    /// checkpoints (pbft); elections, epochs, DIFF/TRUNC/SNAP, proposals, deliveries (zab).
    #[arg(long)]
    pub(crate) trace: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The ordering rule.
    pub(crate) rule: RuleArg,
    /// Built-in spec name or spec file [default: <rule>-demo].
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) spec: Option<String>,
    /// Random fault schedules to run.
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(crate) schedules: u64,
    /// The campaign's seed: schedule i is drawn from it and i.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub(crate) seed: u64,
    /// Cluster size (1 to 101) [default: the spec's members].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=101))]
    pub(crate) nodes: Option<u16>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// Parses `--tx-per-block`: at most 10 000 (a block of them is about 4 MiB).
fn parse_tx_per_block(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n > 10_000 {
        return Err(format!("{n} is more than 10000"));
    }
    Ok(n)
}

/// Parses `RULE=NAME|FILE`.
fn parse_rule_spec(s: &str) -> Result<(RuleArg, String), String> {
    let (rule, spec) = s
        .split_once('=')
        .filter(|(_, spec)| !spec.is_empty())
        .ok_or_else(|| format!("expected RULE=NAME|FILE, got {s:?}"))?;
    let rule = Consensus::from_name(rule).map_err(|e| e.to_string())?;
    Ok((RuleArg(rule), spec.to_owned()))
}

/// A consensus rule named on the command line: any rule in the registry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RuleArg(pub(crate) Consensus);

impl ValueEnum for RuleArg {
    fn value_variants<'a>() -> &'a [Self] {
        static RULES: std::sync::OnceLock<Vec<RuleArg>> = std::sync::OnceLock::new();
        RULES.get_or_init(|| Consensus::all().map(RuleArg).collect())
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.name()).help(self.0.rule().info().summary))
    }
}

#[derive(Debug, Args)]
pub(crate) struct MineArgs {
    /// Consensus rule.
    pub(crate) consensus: RuleArg,
    /// Built-in spec name (pow-demo, pos-demo, dpos-demo, poa-demo, regtest) or a spec JSON
    /// file [default: <rule>-demo].
    #[arg(long, value_name = "NAME|FILE")]
    pub(crate) spec: Option<String>,
    /// Chain file to create or continue [default: chains/<spec name>.jsonl].
    #[arg(long, value_name = "FILE")]
    pub(crate) chain: Option<PathBuf>,
    /// Blocks to mine (on an existing chain: this many more) [default: 20; dpos: 300, a round
    /// of 252 and enough for blocks to become irreversible].
    #[arg(long, value_name = "N")]
    pub(crate) blocks: Option<u64>,
    /// Demo transfers between the spec's wallets per block (at most 10 000).
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = parse_tx_per_block)]
    pub(crate) tx_per_block: usize,
    /// Take the lowest solving nonce, so runs are reproducible whatever the thread count.
    #[arg(long)]
    pub(crate) deterministic: bool,
    /// dpos, poa: producers or signers that are down and miss their turns.
    #[arg(long, value_name = "NAME", num_args = 1..)]
    pub(crate) offline: Vec<String>,
    /// poa: every signer votes to authorize (+NAME) or drop (-NAME) a signer until it passes.
    #[arg(long, value_name = "+NAME|-NAME", allow_hyphen_values = true)]
    pub(crate) vote: Option<String>,
    /// dpos: holders re-voting per block (fresh approval lists that move the election)
    /// [default: 1].
    #[arg(long, value_name = "N")]
    pub(crate) votes_per_block: Option<usize>,
    /// dpos: this producer signs two different blocks in each of its slots; both are caught as
    /// double-sign evidence and only the first is kept.
    #[arg(long, value_name = "NAME")]
    pub(crate) double_sign: Option<String>,
    /// Hash backend: avx512, sha-ni, avx2 or soft [default: the fastest this CPU supports].
    #[arg(long, value_name = "NAME", value_parser = Backend::from_str)]
    pub(crate) backend: Option<Backend>,
    /// Progress as JSON lines on stdout instead of text on stderr: a `start` event, one
    /// `block` event per block synced, `rate` every 30 s, and `done` (the `--json` report).
    #[arg(long, conflicts_with = "json")]
    pub(crate) json_log: bool,
    /// pow: mine for a Stratum V1 pool at stratum+tcp://HOST:PORT instead of onto a chain
    /// file (`--quiet` then silences the per-share lines).
    #[arg(long, value_name = "URL")]
    pub(crate) pool: Option<String>,
    /// With --pool: the worker to authorize as, NAME[.WORKER].
    #[arg(long, value_name = "NAME[.WORKER]")]
    pub(crate) user: Option<String>,
    /// With --pool: the password to authorize with [default: x].
    #[arg(long, value_name = "PASSWORD")]
    pub(crate) password: Option<String>,
    /// With --pool: stop after this many seconds (exit 0).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) time_limit: Option<u64>,
    /// With --pool: reconnections tried after a failed one before giving up (-1: forever)
    /// [default: -1].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) retries: Option<i64>,
    /// With --pool: seconds to wait before each reconnection [default: 5].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) retry_pause: Option<u64>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The chain file.
    pub(crate) chain: PathBuf,
    /// Truncate the file after its last valid block (a valid block is never rewritten).
    #[arg(long)]
    pub(crate) repair: bool,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    /// The chain file.
    pub(crate) chain: PathBuf,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct HeaderArgs {
    /// The header as 160 hex digits (wire order, as Bitcoin Core's `getblockheader false`).
    #[arg(value_name = "HEX160")]
    pub(crate) hex: String,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The chain file.
    pub(crate) chain: PathBuf,
    /// Only the block at this height.
    #[arg(long, value_name = "H", conflicts_with_all = ["from", "to", "tail"])]
    pub(crate) height: Option<u64>,
    /// The first height to show.
    #[arg(long, value_name = "H")]
    pub(crate) from: Option<u64>,
    /// The last height to show (the tip when absent).
    #[arg(long, value_name = "H")]
    pub(crate) to: Option<u64>,
    /// Only the last N blocks (up to --to if given).
    #[arg(long, value_name = "N", conflicts_with = "from", value_parser = parse_tail)]
    pub(crate) tail: Option<u64>,
    /// Print each 80-byte header as 160 hex digits, one a line (for outside tools).
    #[arg(long, conflicts_with = "json")]
    pub(crate) hex: bool,
    /// Print blocks as JSON lines (the chain file's records).
    #[arg(long)]
    pub(crate) json: bool,
    /// Full hashes and keys in the table, however wide it gets.
    #[arg(long, conflicts_with_all = ["hex", "json"])]
    pub(crate) wide: bool,
}

/// Parses `show --tail`: at least one block.
fn parse_tail(s: &str) -> Result<u64, String> {
    match s.parse::<u64>().map_err(|e| format!("{e}"))? {
        0 => Err("0 blocks: the tail shows at least 1".to_owned()),
        n => Ok(n),
    }
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Seconds to measure each backend at each thread count.
    #[arg(long, default_value_t = 2.0, value_name = "S", value_parser = parse_seconds)]
    pub(crate) seconds: f64,
    /// Measure only this backend (and the soft reference): avx512, sha-ni, avx2 or soft.
    #[arg(long, value_name = "NAME", value_parser = Backend::from_str)]
    pub(crate) backend: Option<Backend>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// Two or more chain files to compare instead of mining new chains (not two of the same
    /// rule and spec).
    #[arg(value_name = "CHAIN")]
    pub(crate) chains: Vec<PathBuf>,
    /// Blocks to mine per consensus rule [default: 20; dpos: 300].
    #[arg(long, value_name = "N")]
    pub(crate) blocks: Option<u64>,
    /// The same target block spacing (s) for every rule [default: each spec's own].
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) spacing: Option<u32>,
    /// The spec one rule mines, e.g. `--spec pos=chains/my-pos.json` (repeatable)
    /// [default: <rule>-demo for every rule].
    #[arg(long = "spec", value_name = "RULE=NAME|FILE", value_parser = parse_rule_spec)]
    pub(crate) specs: Vec<(RuleArg, String)>,
    /// Power model when no RAPL counter is readable: watts per busy core [default: 3.75, an
    /// AMD EPYC 9654's 360 W TDP over its 96 cores].
    #[arg(long, value_name = "W", hide_default_value = true, default_value_t = chainsmith::metrics::energy::DEFAULT_WATTS_PER_CORE)]
    pub(crate) watts_per_core: f64,
    /// Bitcoin mainnet difficulty for the extrapolation [default: 1.5e14, late 2025].
    #[arg(long, value_name = "D", hide_default_value = true, default_value_t = chainsmith::metrics::energy::DEFAULT_MAINNET_DIFFICULTY)]
    pub(crate) mainnet_difficulty: f64,
    /// Write SVG charts into this directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) plot: Option<PathBuf>,
    /// Keep the mined chains in this directory (as pow.jsonl, pos.jsonl, dpos.jsonl, poa.jsonl).
    #[arg(long, value_name = "DIR")]
    pub(crate) keep: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// The options every long-running command shares: worker threads, JSON output, quiet.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Worker threads (1 to 256) [default: all cores].
    #[arg(long, short = 't', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) threads: Option<u16>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress bar or progress lines.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds in (0, 3600]")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Splits a shell command line into words, honouring single and double quotes.
    fn words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word: Option<String> = None;
        let mut quote = None;
        for c in line.chars() {
            match (quote, c) {
                (None, '\'' | '"') => {
                    quote = Some(c);
                    word.get_or_insert_default();
                }
                (Some(q), _) if c == q => quote = None,
                (None, ' ') => words.extend(word.take()),
                _ => word.get_or_insert_default().push(c),
            }
        }
        words.extend(word);
        words
    }

    #[test]
    fn every_command_has_examples_that_parse() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            let name = sub.get_name();
            let help = sub
                .get_after_help()
                .unwrap_or_else(|| panic!("{name}: no examples"))
                .to_string();
            let mine: Vec<&str> = help
                .lines()
                .filter_map(|l| l.strip_prefix("  "))
                .filter(|l| l.starts_with(&format!("chainsmith {name}")))
                .collect();
            assert!(help.starts_with("Examples:") && !mine.is_empty(), "{name}");
            assert!(
                help.lines().all(|l| l.chars().count() <= 80),
                "{name}: a line wider than 80 columns"
            );
            // Lines continued with a backslash joined, as the shell joins them.
            let joined = help.replace(" \\\n    ", " ");
            for line in joined.lines().filter_map(|l| l.strip_prefix("  ")) {
                if !line.starts_with("chainsmith ") {
                    continue;
                }
                // The command up to a pipe or a comment (two spaces).
                let command = line.split(" |").next().unwrap_or_default();
                let command = command.split("  ").next().unwrap_or_default();
                if let Err(e) = Cli::try_parse_from(words(command)) {
                    panic!("{name}: {command}: {e}");
                }
            }
        }
    }

    #[test]
    fn no_default_is_printed_twice() {
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                let clap_prints =
                    !arg.get_default_values().is_empty() && !arg.is_hide_default_value_set();
                assert!(
                    !(clap_prints && help.contains("[default:")),
                    "{path} --{}: {help}",
                    arg.get_id()
                );
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "chainsmith");
    }
}
