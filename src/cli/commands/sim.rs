//! `chainsmith sim RULE`: one simulated run of an ordering protocol's cluster, from a scenario
//! file and/or flags; the report, optionally a timeline and every node's chain file.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use chainsmith::ChainSpec;
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::store::{ChainLock, ChainWriter};
use chainsmith::ordering::{
    ORDERING_RULES, RuleRun, build, network, reference_scenario, run_rules,
};
use chainsmith::sim::NetModel;
use chainsmith::sim::cluster::{OrderedCluster, run as run_scenario};
use chainsmith::sim::report::{Safety, SimReport};
use chainsmith::sim::scenario::{CrashSpec, PartitionSpec, Scenario};
use serde::Serialize;

use crate::cli::args::{RuleArg, SimArgs, parse_time};
use crate::cli::{EXIT_INVALID, resolve_spec};

/// Refuses a rule that is not an ordering protocol.
pub(crate) fn ordering_rule(rule: RuleArg, command: &str) -> Result<()> {
    if ORDERING_RULES.contains(&rule.0.name()) {
        return Ok(());
    }
    bail!(
        "{command} {}: not an ordering protocol; {command} runs {}",
        rule.0.name(),
        ORDERING_RULES.join(", ")
    )
}

/// The spec `--spec` names, or the rule's demo spec.
pub(crate) fn ordering_spec(rule: RuleArg, spec: Option<&str>) -> Result<ChainSpec> {
    let name = spec.map_or_else(|| format!("{}-demo", rule.0.name()), str::to_owned);
    let spec = resolve_spec(&name)?;
    if spec.consensus != rule.0 {
        bail!(
            "--spec {name}: a {} spec, not {}",
            spec.consensus,
            rule.0.name()
        );
    }
    Ok(spec)
}

/// Parses `NODE@T[..T2]`.
fn parse_crash(s: &str) -> Result<CrashSpec> {
    let (node, times) = s
        .split_once('@')
        .with_context(|| format!("--crash {s:?}: expected NODE@T[..T2]"))?;
    let (at, restart) = match times.split_once("..") {
        Some((a, b)) => (a, Some(b)),
        None => (times, None),
    };
    let time = |t: &str| parse_time(t).map_err(|e| anyhow::anyhow!("--crash {s:?}: {e}"));
    Ok(CrashSpec {
        node: node.trim().to_owned(),
        at_s: time(at)?,
        restart_s: restart.map(time).transpose()?,
    })
}

/// Parses `A,B|C,D@T1..T2`.
fn parse_partition(s: &str) -> Result<PartitionSpec> {
    let (groups, times) = s
        .split_once('@')
        .with_context(|| format!("--partition {s:?}: expected A,B|C,D@T1..T2"))?;
    let (from, to) = times
        .split_once("..")
        .with_context(|| format!("--partition {s:?}: expected a time range T1..T2"))?;
    let time = |t: &str| parse_time(t).map_err(|e| anyhow::anyhow!("--partition {s:?}: {e}"));
    Ok(PartitionSpec {
        groups: groups
            .split('|')
            .map(|g| g.split(',').map(|n| n.trim().to_owned()).collect())
            .collect(),
        from_s: time(from)?,
        to_s: time(to)?,
    })
}

/// The scenario file (or the default: with --all and no faults given, the reference
/// scenario) with the flags applied; `net` is the network the flags change.
fn scenario(args: &SimArgs, net: NetModel) -> Result<Scenario> {
    let mut sc = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading scenario {}", path.display()))?;
            Scenario::from_json(&text)
                .map_err(|e| anyhow::anyhow!("scenario {}: {e}", path.display()))?
        }
        None if args.all && args.crash.is_empty() && args.partition.is_empty() => {
            reference_scenario()
        }
        None => Scenario::default(),
    };
    if let Some(n) = args.nodes {
        sc.nodes = Some(usize::from(n));
    }
    if let Some(s) = args.seed {
        sc.seed = s;
    }
    if let Some(b) = args.blocks {
        sc.blocks = Some(b);
        sc.duration_s = None;
    }
    if let Some(d) = args.duration {
        sc.duration_s = Some(d);
        sc.blocks = None;
    }
    for c in &args.crash {
        sc.crashes.push(parse_crash(c)?);
    }
    for p in &args.partition {
        sc.partitions.push(parse_partition(p)?);
    }
    if args.drop.is_some() || args.duplicate.is_some() || args.delay.is_some() {
        let mut net = sc.network.unwrap_or(net);
        if let Some(p) = args.drop {
            net.drop = p;
        }
        if let Some(p) = args.duplicate {
            net.duplicate = p;
        }
        if let Some(d) = args.delay {
            net.delay_ms = d;
        }
        sc.network = Some(net);
    }
    if let Some(l) = args.load {
        sc.load_tps = Some(l);
    }
    if sc.load_tps.is_none() {
        sc.load_tps = Some(20.0);
    }
    if let Some((lo, hi)) = args.election {
        sc.params.insert(
            "election_timeout_ms".into(),
            serde_json::json!([lo.round() as u64, hi.round() as u64]),
        );
    }
    if args.no_pre_vote {
        sc.params
            .insert("pre_vote".into(), serde_json::json!(false));
    }
    if args.no_check_quorum {
        sc.params
            .insert("check_quorum".into(), serde_json::json!(false));
    }
    if args.no_backoff {
        sc.params.insert("backoff".into(), serde_json::json!(false));
    }
    for b in &args.byzantine {
        let (node, behaviour) = b
            .split_once(':')
            .with_context(|| format!("--byzantine {b:?}: expected NODE:BEHAVIOUR"))?;
        sc.byzantine
            .insert(node.trim().to_owned(), behaviour.trim().to_owned());
    }
    if args.allow_unsafe {
        sc.allow_unsafe = true;
    }
    if args.unclean_leader_election {
        sc.params
            .insert("unclean_leader_election".into(), serde_json::json!(true));
    }
    if args.no_leader_epochs {
        sc.params
            .insert("leader_epochs".into(), serde_json::json!(false));
    }
    Ok(sc)
}

/// Each node's chain file, written as the node commits: the genesis line (created as `mine`
/// creates a chain), then one line per committed block, buffered and synced at the end.
struct ChainFiles {
    paths: Vec<PathBuf>,
    writers: Arc<Mutex<Vec<io::BufWriter<std::fs::File>>>>,
    error: Arc<Mutex<Option<io::Error>>>,
    _locks: Vec<ChainLock>,
}

impl ChainFiles {
    fn create(dir: &Path, cluster: &mut dyn OrderedCluster) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let spec = cluster.spec().clone();
        let genesis = BlockRecord::new(0, &spec.genesis_block(), Some(&spec));
        let mut paths = Vec::new();
        let mut writers = Vec::new();
        let mut locks = Vec::new();
        for name in cluster.names() {
            let path = dir.join(format!("{name}.jsonl"));
            locks.push(ChainLock::acquire(&path).with_context(|| format!("{}", path.display()))?);
            ChainWriter::create(&path, &genesis)
                .with_context(|| format!("{}: choose another --out", path.display()))?;
            let file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            writers.push(io::BufWriter::new(file));
            paths.push(path);
        }
        let files = Self {
            paths,
            writers: Arc::new(Mutex::new(writers)),
            error: Arc::new(Mutex::new(None)),
            _locks: locks,
        };
        let (writers, error) = (Arc::clone(&files.writers), Arc::clone(&files.error));
        cluster.set_sink(Box::new(move |node, record| {
            let mut line = record.to_json_line().into_bytes();
            line.push(b'\n');
            let mut writers = writers.lock().expect("no writer panics");
            if let Err(e) = writers[node].write_all(&line) {
                error.lock().expect("no writer panics").get_or_insert(e);
            }
        }));
        Ok(files)
    }

    /// Flushes and syncs every file; the paths written.
    fn finish(self) -> Result<Vec<String>> {
        if let Some(e) = self.error.lock().expect("no writer panics").take() {
            return Err(e).context("writing the chain files");
        }
        let mut writers = self.writers.lock().expect("no writer panics");
        for (w, path) in writers.iter_mut().zip(&self.paths) {
            w.flush()
                .and_then(|()| w.get_ref().sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(self.paths.iter().map(|p| p.display().to_string()).collect())
    }
}

/// Refuses flags of another rule than `rule` (with `--all`, `None`: every rule's own flags).
fn refuse_other_rules_flags(rule: Option<&str>, args: &SimArgs) -> Result<()> {
    // Each rule's own flags: the flag, whether it was given, the rules it belongs to.
    let flags: [(&str, bool, &[&str]); 8] = [
        // Paxos elects by timeouts too, and zab resends its votes on one: `--election` is
        // their option as well.
        (
            "--election",
            args.election.is_some(),
            &["raft", "paxos", "zab"],
        ),
        ("--no-pre-vote", args.no_pre_vote, &["raft"]),
        ("--no-check-quorum", args.no_check_quorum, &["raft"]),
        ("--byzantine", !args.byzantine.is_empty(), &["pbft"]),
        ("--allow-unsafe", args.allow_unsafe, &["pbft"]),
        ("--no-backoff", args.no_backoff, &["paxos"]),
        (
            "--unclean-leader-election",
            args.unclean_leader_election,
            &["kafka"],
        ),
        ("--no-leader-epochs", args.no_leader_epochs, &["kafka"]),
    ];
    let foreign = |rules: &[&str]| rule.is_none_or(|r| !rules.contains(&r));
    match (
        flags
            .iter()
            .find(|(_, given, rules)| *given && foreign(rules)),
        rule,
    ) {
        (Some((flag, _, _)), Some(rule)) => bail!("sim {rule}: {flag} is not a {rule} option"),
        (Some((flag, _, rules)), None) => bail!(
            "sim --all runs every rule on its defaults: {flag} is an option of {} alone",
            rules.join(", ")
        ),
        (None, _) => Ok(()),
    }
}

pub(crate) fn run(args: &SimArgs) -> Result<ExitCode> {
    let Some(rule) = args.rule else {
        return run_all(args);
    };
    ordering_rule(rule, "sim")?;
    refuse_other_rules_flags(Some(rule.0.name()), args)?;
    let spec = ordering_spec(rule, args.spec.as_deref())?;
    let sc = scenario(args, network(&spec))?;
    let mut cluster = build(&spec, &sc, args.trace).map_err(|e| anyhow::anyhow!("{e}"))?;
    let files = args
        .out
        .as_deref()
        .map(|dir| ChainFiles::create(dir, cluster.as_mut()))
        .transpose()?;
    run_scenario(cluster.as_mut(), &sc);
    let report: SimReport = cluster.report();
    let files = files
        .map(ChainFiles::finish)
        .transpose()?
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if args.json {
        let trace = args.trace.then(|| cluster.trace());
        let value = SimJson {
            report: &report,
            files: &files,
            trace,
        };
        serde_json::to_writer(&mut out, &value)?;
        writeln!(out)?;
    } else {
        for line in cluster.trace() {
            writeln!(out, "{line}")?;
        }
        write!(out, "{}", crate::cli::format::wrap(&report.to_text()))?;
        for f in &files {
            writeln!(out, "  chain file         {f}")?;
        }
    }
    if let Safety::Violated { property, .. } = &report.safety {
        eprintln!(
            "chainsmith: safety violated: {property} (seed {}); replay with the same flags or scenario",
            report.seed
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    Ok(ExitCode::SUCCESS)
}

/// `sim RULE --json`: the run's report, the chain files written, and the trace if asked for.
#[derive(Serialize)]
struct SimJson<'a, T: Serialize> {
    #[serde(flatten)]
    report: &'a SimReport,
    files: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<T>,
}

/// `sim --all --json`: the scenario, each rule's run, and the rules it does not fit.
#[derive(Serialize)]
struct AllJson<'a> {
    scenario: &'a Scenario,
    rules: &'a [RuleRun],
    skipped: Vec<Skipped<'a>>,
}

#[derive(Serialize)]
struct Skipped<'a> {
    rule: &'a str,
    why: &'a str,
}

/// `sim --all`: one scenario on every ordering rule.
fn run_all(args: &SimArgs) -> Result<ExitCode> {
    refuse_other_rules_flags(None, args)?;
    let mut sc = scenario(args, NetModel::default())?;
    if sc.nodes.is_none() {
        sc.nodes = Some(5);
    }
    let duration = *sc.duration_s.get_or_insert(10.0);
    sc.blocks = None;
    let outcomes = run_rules(ORDERING_RULES, &sc, duration);
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for (rule, outcome) in outcomes {
        match outcome {
            Ok(run) => runs.push(run),
            Err(e) => skipped.push((rule, e.to_string())),
        }
    }
    if runs.is_empty() {
        let (rule, e) = &skipped[0];
        bail!("sim --all: the scenario fits no rule; {rule}: {e}");
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = AllJson {
            scenario: &sc,
            rules: &runs,
            skipped: skipped
                .iter()
                .map(|(rule, why)| Skipped { rule, why })
                .collect(),
        };
        serde_json::to_writer(&mut out, &value)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", comparison_table(&sc, &runs, &skipped))?;
    }
    if let Some(dir) = &args.plot {
        let path = crate::cli::plot::ordering_rules(dir, &describe(&sc), &runs)?;
        if !args.json {
            writeln!(out, "chart: {}", path.display())?;
        }
    }
    let unsafe_rules: Vec<&str> = runs
        .iter()
        .filter(|r| matches!(r.report.safety, Safety::Violated { .. }))
        .map(|r| r.report.rule)
        .collect();
    if !unsafe_rules.is_empty() {
        eprintln!(
            "chainsmith: safety violated under {} (seed {}); replay with sim RULE and the same flags",
            unsafe_rules.join(", "),
            sc.seed
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    Ok(ExitCode::SUCCESS)
}

/// The scenario in one line: `5 nodes, seed 1, 10 s, 50 tx/s; leader crashes at 2 s …`.
pub(crate) fn describe(sc: &Scenario) -> String {
    let mut parts = vec![format!(
        "{} nodes, seed {}, {} s, {} tx/s",
        sc.nodes.unwrap_or(5),
        sc.seed,
        sc.duration_s.unwrap_or(10.0),
        sc.load_tps.unwrap_or(0.0)
    )];
    for c in &sc.crashes {
        parts.push(match c.restart_s {
            Some(r) => format!("{} crashes at {} s, back at {r} s", c.node, c.at_s),
            None => format!("{} crashes at {} s", c.node, c.at_s),
        });
    }
    for p in &sc.partitions {
        let groups: Vec<String> = p.groups.iter().map(|g| g.join(",")).collect();
        parts.push(format!(
            "partition {} from {} s to {} s",
            groups.join("|"),
            p.from_s,
            p.to_s
        ));
    }
    for (k, v) in &sc.params {
        parts.push(format!("{k} {v}"));
    }
    if let Some(net) = &sc.network {
        parts.push(format!(
            "delay {}..{} ms, loss {}, duplication {}",
            net.delay_ms.0, net.delay_ms.1, net.drop, net.duplicate
        ));
    }
    parts.join("; ")
}

fn comparison_table(sc: &Scenario, runs: &[RuleRun], skipped: &[(&str, String)]) -> String {
    use std::fmt::Write as _;

    use crate::cli::format::{number_cell as num, table};
    let ms = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"));
    let s_ = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"));
    let mut s = String::new();
    let _ = writeln!(s, "sim --all: {}", describe(sc));
    let mut t = table();
    t.set_header([
        "rule",
        "tolerates",
        "blocks",
        "latency ms\np50/p99",
        "msgs\n/block",
        "bytes\n/block",
        "sigs\n/block",
        "leader-\nless s",
        "next\nblock s",
        "safety",
    ]);
    for r in runs {
        let rep = &r.report;
        let tolerates = if r.tolerates.byzantine > 0 {
            format!("{} Byz", r.tolerates.byzantine)
        } else {
            format!("{} crash", r.tolerates.crashed)
        };
        t.add_row([
            comfy_table::Cell::new(rep.rule),
            num(tolerates),
            num(rep.blocks.to_string()),
            num(format!(
                "{}/{}",
                ms(rep.latency_ms.p50),
                ms(rep.latency_ms.p99)
            )),
            num(format!("{:.1}", rep.messages_per_block)),
            num(format!("{:.0}", rep.bytes_per_block)),
            num(format!("{:.1}", rep.signatures_per_block)),
            num(s_(r.recovery.map(|c| c.leaderless_s))),
            num(s_(r.recovery.and_then(|c| c.next_block_s))),
            comfy_table::Cell::new(match &rep.safety {
                Safety::Ok => "ok".to_owned(),
                Safety::Violated { property, .. } => format!("VIOLATED: {property}"),
            }),
        ]);
    }
    let _ = writeln!(s, "{}", crate::cli::format::render(&mut t));
    for (rule, why) in skipped {
        let _ = writeln!(s, "{rule:<6} not run: {why}");
    }
    let crashed: Vec<String> = runs
        .iter()
        .filter(|r| !r.report.leader_crashes.is_empty())
        .map(|r| {
            let nodes: Vec<&str> = r
                .report
                .leader_crashes
                .iter()
                .map(|c| c.node.as_deref().unwrap_or("none"))
                .collect();
            format!("{} {}", r.report.rule, nodes.join(","))
        })
        .collect();
    if !crashed.is_empty() {
        let _ = writeln!(s, "leader crashed: {}", crashed.join("; "));
    }
    let _ = writeln!(
        s,
        "latency: client submit to reply; leaderless: seconds without a leader after the first \
         crash; next block: seconds from the crash to the next committed block"
    );
    crate::cli::format::wrap(&s)
}
