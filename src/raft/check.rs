//! Running scenarios on a simulated Raft cluster (`sim raft`) and random fault schedules
//! (`check raft`): safety judged by the observer, liveness by how soon blocks commit again
//! once every fault has healed.

use crate::chain::spec::{ChainSpec, SpecError};
use crate::chain::state::ChainState;
use crate::raft::cluster::{Cluster, ClusterRun, cluster_spec, node_config};
use crate::raft::engine::RaftConfig;
use crate::raft::spec::RaftSpec;
use crate::sim::scenario::{Scenario, ScenarioError};
use crate::sim::{Micros, NodeId, SimRng};

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

/// Builds the cluster a scenario describes over `spec`'s genesis.
///
/// # Errors
/// [`RunError`] naming the field.
pub fn build(spec: &ChainSpec, scenario: &Scenario, trace: bool) -> Result<Cluster, RunError> {
    build_with(spec, scenario, trace, node_config)
}

pub(crate) fn build_with(
    spec: &ChainSpec,
    scenario: &Scenario,
    trace: bool,
    config: fn(&RaftSpec, NodeId) -> RaftConfig,
) -> Result<Cluster, RunError> {
    let mut spec = cluster_spec(spec, scenario.nodes, &scenario.params)?;
    if let Some(net) = scenario.network {
        let mut raft = spec.section::<RaftSpec>().expect("raft").clone();
        raft.network = net;
        raft.validate()?;
        spec.section = Some(crate::chain::spec::RuleSection::new(raft));
    }
    let names = spec.section::<RaftSpec>().expect("raft").members.clone();
    let faults = scenario.faults(&names)?;
    let mut base = ChainState::new(spec.clone());
    let genesis = spec.genesis_block();
    let record = crate::chain::record::BlockRecord::new(0, &genesis, Some(&spec));
    let checked = base.check(record).map_err(|e| SpecError::BadField {
        field: "genesis",
        reason: e.to_string(),
    })?;
    base.connect(&checked, spec.genesis.time)
        .map_err(|e| SpecError::BadField {
            field: "genesis",
            reason: e.to_string(),
        })?;
    let run = ClusterRun {
        spec: spec.clone(),
        seed: scenario.seed,
        faults,
        trace,
        origin: spec.genesis.time,
    };
    Ok(Cluster::with_config(&run, &base, config))
}

/// Runs `cluster` as `scenario` says: until its blocks are committed (at most
/// [`BLOCKS_TIMEOUT_S`]) or for its duration ([`DEFAULT_BLOCKS`] blocks when it says neither).
/// False when a violation ended it.
pub fn run(cluster: &mut Cluster, scenario: &Scenario) -> bool {
    match (scenario.blocks, scenario.duration_s) {
        (_, Some(d)) => cluster.run_until(secs(d)),
        (blocks, None) => {
            cluster.run_blocks(blocks.unwrap_or(DEFAULT_BLOCKS), secs(BLOCKS_TIMEOUT_S))
        }
    }
}

fn secs(s: f64) -> Micros {
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

/// Draws schedule `i` of a campaign seeded `seed` for the members `names`.
#[must_use]
pub fn schedule(seed: u64, i: u64, names: &[String], bounds: &CheckBounds) -> Scenario {
    let mut rng = SimRng::new(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    Scenario::random(
        &mut rng,
        names,
        bounds.faulty_s,
        bounds.calm_s,
        bounds.load_tps,
    )
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
    check_schedule_with(spec, scenario, bounds, node_config)
}

pub(crate) fn check_schedule_with(
    spec: &ChainSpec,
    scenario: &Scenario,
    bounds: &CheckBounds,
    config: fn(&RaftSpec, NodeId) -> RaftConfig,
) -> Result<ScheduleOutcome, RunError> {
    let mut cluster = build_with(spec, scenario, false, config)?;
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
        crate::raft::cluster::Safety::Ok if safe => None,
        crate::raft::cluster::Safety::Ok => Some("unknown".to_owned()),
        crate::raft::cluster::Safety::Violated {
            property,
            time_s,
            nodes,
            detail,
        } => Some(format!(
            "{property} at {time_s:.3} s (nodes {}): {detail}",
            nodes.join(", ")
        )),
    };
    Ok(ScheduleOutcome {
        scenario: scenario.clone(),
        violation,
        recovery_s,
        blocks: report.blocks,
        events: report.events,
    })
}
