//! What every simulated cluster of an ordering rule offers — run it, read its report, write
//! its nodes' chains — and what runs scenarios and random fault schedules on any of them:
//! safety judged by the rule's observer, liveness by how soon blocks commit again once every
//! fault has healed.

use serde::Serialize;

use crate::chain::produce::{NetworkCost, ProduceEnv, ProduceError, Producer, Step};
use crate::chain::record::BlockRecord;
use crate::chain::spec::{ChainSpec, ClusterSection, RuleSection, SpecError};
use crate::chain::state::ChainState;
use crate::consensus::RuleError;
use crate::sim::report::{Safety, SimReport};
use crate::sim::scenario::{Scenario, ScenarioError};
use crate::sim::{Faults, MS, Micros, NodeId, SimRng};

/// Where each node's newly committed blocks go (its chain file), in commit order.
pub type BlockSink = Box<dyn FnMut(NodeId, &BlockRecord) + Send>;

/// A simulated cluster of an ordering rule, ordering blocks.
pub trait OrderedCluster {
    /// The spec the nodes run: the members, parameters and network the run uses.
    fn spec(&self) -> &ChainSpec;
    /// The members' names.
    fn names(&self) -> &[String];
    /// Hands every block a (correct) node commits from now on to `sink`.
    fn set_sink(&mut self, sink: BlockSink);
    /// Runs until virtual time `until`; false when a violation ended it.
    fn run_until(&mut self, until: Micros) -> bool;
    /// Runs until `blocks` blocks are committed or virtual time `until`; false when a
    /// violation ended it.
    fn run_blocks(&mut self, blocks: u64, until: Micros) -> bool {
        while self.blocks() < blocks && self.now() < until {
            if !self.run_until((self.now() + 10 * MS).min(until)) {
                return false;
            }
        }
        true
    }
    /// Blocks committed (by any correct node).
    fn blocks(&self) -> u64;
    /// When the last new block was committed.
    fn last_block_at(&self) -> Micros;
    /// The report of the run so far.
    fn report(&self) -> SimReport;
    /// The timeline (when recorded).
    fn trace(&self) -> &[String];
    /// Virtual time now.
    fn now(&self) -> Micros;
    /// Queues the blocks the first correct member commits from now on for
    /// [`OrderedCluster::next_followed_block`] (`mine` reads them one by one).
    fn follow_first_correct(&mut self);
    /// The next block the followed member committed, if any waits.
    fn next_followed_block(&mut self) -> Option<BlockRecord>;
}

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The spec, with the scenario's nodes and parameters, is invalid.
    #[error("{0}")]
    Spec(#[from] SpecError),
    /// The scenario names something wrong.
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
}

/// When a run with neither blocks nor duration stops: after this many blocks.
pub const DEFAULT_BLOCKS: u64 = 20;
/// A run asked for blocks gives up after this much virtual time without reaching them.
pub const BLOCKS_TIMEOUT_S: f64 = 3_600.0;

/// The chain of `spec` holding only its genesis block: what a simulated cluster starts from.
///
/// # Errors
/// [`SpecError`] when the genesis block is invalid.
pub fn genesis_state(spec: &ChainSpec) -> Result<ChainState, SpecError> {
    let mut state = ChainState::new(spec.clone());
    let record = BlockRecord::new(0, &spec.genesis_block(), Some(spec));
    let invalid = |e: crate::chain::state::BlockError| SpecError::BadField {
        field: "genesis",
        reason: e.to_string(),
    };
    let checked = state.check(record).map_err(invalid)?;
    state
        .connect(&checked, spec.genesis.time)
        .map_err(invalid)?;
    Ok(state)
}

/// Runs `cluster` as `scenario` says: until its blocks are committed (at most
/// [`BLOCKS_TIMEOUT_S`]) or for its duration ([`DEFAULT_BLOCKS`] blocks when it says neither).
/// False when a violation ended it.
pub fn run(cluster: &mut dyn OrderedCluster, scenario: &Scenario) -> bool {
    match (scenario.blocks, scenario.duration_s) {
        (_, Some(d)) => cluster.run_until(secs(d)),
        (blocks, None) => {
            cluster.run_blocks(blocks.unwrap_or(DEFAULT_BLOCKS), secs(BLOCKS_TIMEOUT_S))
        }
    }
}

/// `spec` as `scenario` runs it: the scenario's nodes and parameters merged into the rule's
/// section `S` ([`crate::chain::spec::cluster_spec`]) and its network, if it names one, in
/// place of the spec's; with the members' names.
///
/// # Errors
/// [`RunError`] naming the field.
pub fn scenario_spec<S: ClusterSection>(
    spec: &ChainSpec,
    scenario: &Scenario,
) -> Result<(ChainSpec, Vec<String>), RunError> {
    let mut spec = crate::chain::spec::cluster_spec::<S>(spec, scenario.nodes, &scenario.params)?;
    let mut section = spec
        .section::<S>()
        .expect("cluster_spec keeps the rule's section")
        .clone();
    if let Some(net) = scenario.network {
        *section.network_mut() = net;
        section.check_fields()?;
        spec.section = Some(RuleSection::new(section.clone()));
    }
    let names = section.members_mut().clone();
    Ok((spec, names))
}

/// Refuses a scenario with Byzantine nodes for a rule that tolerates crashes only (`what`:
/// `raft tolerates crashed nodes`…).
///
/// # Errors
/// [`RunError`] naming the `byzantine` field.
pub fn crash_faults_only(scenario: &Scenario, what: &str) -> Result<(), RunError> {
    if scenario.byzantine.is_empty() {
        return Ok(());
    }
    Err(RunError::Scenario(ScenarioError {
        field: "byzantine".into(),
        reason: format!("{what}, not Byzantine ones (run pbft)"),
    }))
}

/// Draws schedule `i` of a `check` campaign seeded `seed` for the members `names`
/// ([`Scenario::random`] within `bounds`).
#[must_use]
pub fn random_schedule(seed: u64, i: u64, names: &[String], bounds: &CheckBounds) -> Scenario {
    let mut rng = SimRng::new(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    Scenario::random(
        &mut rng,
        names,
        bounds.faulty_s,
        bounds.calm_s,
        bounds.load_tps,
    )
}

/// What a run with a crash showed about the recovery.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Recovery {
    /// When the first crash hit, seconds.
    pub crash_s: f64,
    /// From the crash to the first block committed after it, seconds (`None`: none was
    /// committed before the run ended).
    pub next_block_s: Option<f64>,
    /// Seconds without a leader from the crash to the end of the run.
    pub leaderless_s: f64,
}

/// Runs `cluster` for `scenario`'s duration, measuring the recovery from its first crash
/// (`None` when it has none). False when a violation ended the run.
pub fn run_recovering(
    cluster: &mut dyn OrderedCluster,
    scenario: &Scenario,
    duration_s: f64,
) -> (bool, Option<Recovery>) {
    let end = secs(duration_s);
    let Some(crash_s) = scenario
        .crashes
        .iter()
        .map(|c| c.at_s)
        .min_by(f64::total_cmp)
        .filter(|&at| secs(at) < end)
    else {
        return (cluster.run_until(end), None);
    };
    let crash = secs(crash_s);
    if !cluster.run_until(crash) {
        return (false, None);
    }
    let (before, leaderless_before) = (cluster.blocks(), cluster.report().leaderless_s);
    // Steps of 1 ms, growing to 1 % of the time since the crash: the next block is found to
    // within 1 %, and a cluster that never commits again costs ~100 steps per tenfold.
    while cluster.blocks() == before && cluster.now() < end {
        let step = ((cluster.now() - crash) / 100).max(MS);
        if !cluster.run_until((cluster.now() + step).min(end)) {
            return (false, None);
        }
    }
    let next_block_s = (cluster.blocks() > before).then(|| (cluster.now() - crash) as f64 / 1e6);
    let ok = cluster.run_until(end);
    let recovery = Recovery {
        crash_s,
        next_block_s,
        leaderless_s: cluster.report().leaderless_s - leaderless_before,
    };
    (ok, Some(recovery))
}

/// Seconds as virtual time.
#[must_use]
pub fn secs(s: f64) -> Micros {
    (s * 1e6).round() as Micros
}

/// What one random schedule showed.
#[derive(Debug, Clone)]
pub struct ScheduleOutcome {
    /// The schedule, as a scenario that replays it.
    pub scenario: Scenario,
    /// The violation, named for people, if safety broke.
    pub violation: Option<String>,
    /// Seconds from the last fault healing to the next new block, if one came in time.
    pub recovery_s: Option<f64>,
    /// Blocks committed.
    pub blocks: u64,
    /// Simulator events.
    pub events: u64,
}

/// The bounds of `check`: faults for `faulty_s` seconds, then `calm_s` seconds in which a new
/// block must commit within `liveness_s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckBounds {
    /// Seconds with faults.
    pub faulty_s: f64,
    /// Seconds after.
    pub calm_s: f64,
    /// The liveness bound after healing, seconds.
    pub liveness_s: f64,
    /// Client load, transactions per second.
    pub load_tps: f64,
}

impl Default for CheckBounds {
    fn default() -> Self {
        Self {
            faulty_s: 4.0,
            calm_s: 3.0,
            liveness_s: 3.0,
            load_tps: 20.0,
        }
    }
}

/// Runs a schedule on `cluster` (built from `scenario`) and judges safety and liveness.
pub fn check_cluster(
    cluster: &mut dyn OrderedCluster,
    scenario: &Scenario,
    bounds: &CheckBounds,
) -> ScheduleOutcome {
    let healed = secs(bounds.faulty_s);
    let mut safe = cluster.run_until(healed);
    let mut recovery_s = None;
    if safe {
        let before = cluster.blocks();
        safe = cluster.run_blocks(before + 1, healed + secs(bounds.liveness_s));
        if cluster.blocks() > before {
            recovery_s = Some((cluster.last_block_at() - healed) as f64 / 1e6);
        }
    }
    if safe {
        safe = cluster.run_until(healed + secs(bounds.calm_s).max(secs(bounds.liveness_s)));
    }
    let report = cluster.report();
    let violation = match report.safety {
        Safety::Ok if safe => None,
        Safety::Ok => Some("unknown".to_owned()),
        Safety::Violated {
            property,
            time_s,
            nodes,
            detail,
        } => Some(format!(
            "{property} at {time_s:.3} s (nodes {}): {detail}",
            nodes.join(", ")
        )),
    };
    ScheduleOutcome {
        scenario: scenario.clone(),
        violation,
        recovery_s,
        blocks: report.blocks,
        events: report.events,
    }
}

/// Why `mine` on a simulated cluster stopped short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The simulated cluster broke a safety property (a bug: reported with its seed).
    #[error("the cluster broke {0}")]
    Unsafe(String),
    /// The simulated cluster committed nothing for a minute of virtual time.
    #[error("no block committed in {0} s of simulated time")]
    Stalled(u64),
}

/// Virtual time a cluster may go without committing a block before `mine` gives up.
const STALL_S: u64 = 60;

/// Builds the fault-free cluster `mine` runs over a chain: its spec, the chain so far, the
/// Unix time of virtual time 0 and the client load.
pub type MineCluster = fn(&ChainSpec, &ChainState, u32, Faults) -> Box<dyn OrderedCluster + Send>;

/// `mine` for an ordering rule: a fault-free simulated cluster of the spec's members, under
/// a client load of `tx_per_block` transactions per block interval; yields the blocks its
/// first correct member commits.
pub struct ClusterProducer {
    spec: ChainSpec,
    tx_per_block: usize,
    interval_ms: u64,
    build: MineCluster,
    cluster: Option<Box<dyn OrderedCluster + Send>>,
}

impl ClusterProducer {
    /// A producer over `spec`, whose blocks come every `interval_ms`.
    #[must_use]
    pub fn new(
        spec: &ChainSpec,
        tx_per_block: usize,
        interval_ms: u64,
        build: MineCluster,
    ) -> Self {
        Self {
            spec: spec.clone(),
            tx_per_block,
            interval_ms: interval_ms.max(1),
            build,
            cluster: None,
        }
    }
}

impl Producer for ClusterProducer {
    fn network(&self) -> Option<NetworkCost> {
        let report = self.cluster.as_ref()?.report();
        Some(NetworkCost {
            messages: report.messages_sent(),
            bytes: report.bytes_sent(),
            commit_latency_ms: report.block_commit_ms.p50,
        })
    }

    fn next_block(
        &mut self,
        state: &ChainState,
        env: &ProduceEnv<'_>,
    ) -> Result<Step, ProduceError> {
        let cluster = self.cluster.get_or_insert_with(|| {
            let origin = env.now.max(state.tip().map_or(0, |t| t.header.time));
            let faults = Faults {
                load_tps: self.tx_per_block as f64 * 1000.0 / self.interval_ms as f64,
                // Clients new to the chain: each run continuing it adds blocks, so its tip
                // height names the run.
                first_client: state.next_height().saturating_mul(crate::sim::CLIENTS),
                ..Faults::default()
            };
            let mut cluster = (self.build)(&self.spec, state, origin, faults);
            cluster.follow_first_correct();
            cluster
        });
        let give_up = cluster.now() + STALL_S * 1_000 * MS;
        loop {
            if let Some(record) = cluster.next_followed_block() {
                return Ok(Step::Block(Box::new(record), Vec::new()));
            }
            if env.control.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(Step::Stopped);
            }
            if cluster.now() >= give_up {
                return Err(ProduceError::Rule(RuleError::new(ClusterError::Stalled(
                    STALL_S,
                ))));
            }
            let next = cluster.now() + 10 * MS;
            if !cluster.run_until(next) {
                let v = match cluster.report().safety {
                    Safety::Violated {
                        property, detail, ..
                    } => format!("{property}: {detail}"),
                    Safety::Ok => String::new(),
                };
                return Err(ProduceError::Rule(RuleError::new(ClusterError::Unsafe(v))));
            }
        }
    }
}
