//! The ordering rules — the protocols that order blocks among a cluster's members rather
//! than by work or stake (Raft, PBFT) — as `sim`, `check` and `compare` run them: one entry
//! point per task, dispatching on the spec's rule.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::chain::spec::{ChainSpec, SpecError};
use crate::sim::NetModel;
use crate::sim::cluster::{
    CheckBounds, OrderedCluster, Recovery, RunError, ScheduleOutcome, run_recovering,
};
use crate::sim::report::SimReport;
use crate::sim::scenario::{CrashSpec, LEADER, Scenario};

/// The ordering rules, by name.
pub const ORDERING_RULES: &[&str] = &["raft", "pbft", "paxos", "zab", "kafka"];

/// Whether `rule` is an ordering rule.
#[must_use]
pub fn is_ordering(rule: &str) -> bool {
    ORDERING_RULES.contains(&rule)
}

fn not_ordering(spec: &ChainSpec) -> SpecError {
    SpecError::BadField {
        field: "consensus",
        reason: format!(
            "{} is not an ordering rule ({})",
            spec.consensus,
            ORDERING_RULES.join(", ")
        ),
    }
}

/// `spec` with `nodes` members and `params` merged into its rule's section.
///
/// # Errors
/// [`SpecError`] naming the parameter, or a spec of another rule.
pub fn cluster_spec(
    spec: &ChainSpec,
    nodes: Option<usize>,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<ChainSpec, SpecError> {
    match spec.consensus.name() {
        "raft" => crate::raft::cluster::cluster_spec(spec, nodes, params),
        "pbft" => crate::pbft::spec::cluster_spec(spec, nodes, params),
        "paxos" => crate::paxos::spec::cluster_spec(spec, nodes, params),
        "zab" => crate::zab::spec::cluster_spec(spec, nodes, params),
        "kafka" => crate::kafka::spec::cluster_spec(spec, nodes, params),
        _ => Err(not_ordering(spec)),
    }
}

/// The members of an ordering rule's spec.
#[must_use]
pub fn members(spec: &ChainSpec) -> Vec<String> {
    if let Some(r) = spec.section::<crate::raft::spec::RaftSpec>() {
        r.members.clone()
    } else if let Some(p) = spec.section::<crate::pbft::spec::PbftSpec>() {
        p.members.clone()
    } else if let Some(p) = spec.section::<crate::paxos::spec::PaxosSpec>() {
        p.members.clone()
    } else if let Some(z) = spec.section::<crate::zab::spec::ZabSpec>() {
        z.members.clone()
    } else if let Some(k) = spec.section::<crate::kafka::spec::KafkaSpec>() {
        k.members.clone()
    } else {
        Vec::new()
    }
}

/// The network model of an ordering rule's spec.
#[must_use]
pub fn network(spec: &ChainSpec) -> NetModel {
    if let Some(r) = spec.section::<crate::raft::spec::RaftSpec>() {
        r.network
    } else if let Some(p) = spec.section::<crate::pbft::spec::PbftSpec>() {
        p.network
    } else if let Some(p) = spec.section::<crate::paxos::spec::PaxosSpec>() {
        p.network
    } else if let Some(z) = spec.section::<crate::zab::spec::ZabSpec>() {
        z.network
    } else if let Some(k) = spec.section::<crate::kafka::spec::KafkaSpec>() {
        k.network
    } else {
        NetModel::default()
    }
}

/// Builds the cluster `scenario` describes over `spec`'s genesis.
///
/// # Errors
/// [`RunError`] naming the field.
pub fn build(
    spec: &ChainSpec,
    scenario: &Scenario,
    trace: bool,
) -> Result<Box<dyn OrderedCluster>, RunError> {
    Ok(match spec.consensus.name() {
        "raft" => Box::new(crate::raft::check::build(spec, scenario, trace)?),
        "pbft" => Box::new(crate::pbft::check::build(spec, scenario, trace)?),
        "paxos" => Box::new(crate::paxos::check::build(spec, scenario, trace)?),
        "zab" => Box::new(crate::zab::check::build(spec, scenario, trace)?),
        "kafka" => Box::new(crate::kafka::check::build(spec, scenario, trace)?),
        _ => return Err(RunError::Spec(not_ordering(spec))),
    })
}

/// The bounds `check` holds `spec`'s rule to.
#[must_use]
pub fn bounds(spec: &ChainSpec) -> CheckBounds {
    match spec.consensus.name() {
        "pbft" => crate::pbft::check::bounds(),
        _ => CheckBounds::default(),
    }
}

/// Draws schedule `i` of a `check` campaign seeded `seed` for `spec`'s members.
#[must_use]
pub fn schedule(spec: &ChainSpec, seed: u64, i: u64, bounds: &CheckBounds) -> Scenario {
    let names = members(spec);
    match spec.consensus.name() {
        "pbft" => crate::pbft::check::schedule(seed, i, &names, bounds),
        _ => crate::sim::cluster::random_schedule(seed, i, &names, bounds),
    }
}

/// Runs one schedule and judges safety and liveness.
///
/// # Errors
/// [`RunError`] when the schedule does not fit the spec.
pub fn check_schedule(
    spec: &ChainSpec,
    scenario: &Scenario,
    bounds: &CheckBounds,
) -> Result<ScheduleOutcome, RunError> {
    match spec.consensus.name() {
        "raft" => crate::raft::check::check_schedule(spec, scenario, bounds),
        "pbft" => crate::pbft::check::check_schedule(spec, scenario, bounds),
        "paxos" => crate::paxos::check::check_schedule(spec, scenario, bounds),
        "zab" => crate::zab::check::check_schedule(spec, scenario, bounds),
        "kafka" => crate::kafka::check::check_schedule(spec, scenario, bounds),
        _ => Err(RunError::Spec(not_ordering(spec))),
    }
}

/// The faults a cluster of `nodes` survives under `rule`: crashed nodes for the rules that
/// need a majority, Byzantine ones (which include crashed ones) for PBFT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tolerance {
    /// Crashed (or cut-off) nodes the cluster keeps ordering through.
    pub crashed: usize,
    /// Nodes that may lie.
    pub byzantine: usize,
}

/// What `rule` tolerates with `nodes` members.
#[must_use]
pub fn tolerates(rule: &str, nodes: usize) -> Tolerance {
    match rule {
        "pbft" => {
            let f = nodes.saturating_sub(1) / 3;
            Tolerance {
                crashed: f,
                byzantine: f,
            }
        }
        _ => Tolerance {
            crashed: nodes.saturating_sub(1) / 2,
            byzantine: 0,
        },
    }
}

/// The scenario every rule runs in one comparison when none is given: the leader crashes
/// at 2 s and comes back at 5 s, under 50 client transactions per second, for 10 s, every
/// rule cutting a block each 100 ms.
#[must_use]
pub fn reference_scenario() -> Scenario {
    Scenario {
        nodes: Some(5),
        duration_s: Some(10.0),
        load_tps: Some(50.0),
        crashes: vec![CrashSpec {
            node: LEADER.into(),
            at_s: 2.0,
            restart_s: Some(5.0),
        }],
        params: BTreeMap::from([("block_interval_ms".to_owned(), serde_json::json!(100))]),
        ..Scenario::default()
    }
}

/// One rule's run in a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct RuleRun {
    /// What it tolerates at this size.
    pub tolerates: Tolerance,
    /// The recovery from the scenario's first crash.
    pub recovery: Option<Recovery>,
    /// The full report.
    pub report: SimReport,
}

/// Runs `scenario` (for `duration_s`) on each of `rules`' demo specs, in parallel: the same
/// seed, load and faults for all. Each rule's run, or why the scenario does not fit it (PBFT
/// needs four nodes, Kafka as many as its `min_insync_replicas`…).
#[must_use]
pub fn run_rules(
    rules: &[&'static str],
    scenario: &Scenario,
    duration_s: f64,
) -> Vec<(&'static str, Result<RuleRun, RunError>)> {
    rules
        .par_iter()
        .map(|&rule| {
            let run = || -> Result<RuleRun, RunError> {
                let spec = ChainSpec::builtin(&format!("{rule}-demo"))?;
                let mut cluster = build(&spec, scenario, false)?;
                let (_, recovery) = run_recovering(cluster.as_mut(), scenario, duration_s);
                let report = cluster.report();
                Ok(RuleRun {
                    tolerates: tolerates(rule, report.nodes.len()),
                    recovery,
                    report,
                })
            };
            (rule, run())
        })
        .collect()
}
