//! Running scenarios on a simulated Raft cluster (`sim raft`) and random fault schedules
//! (`check raft`): safety judged by the observer, liveness by how soon blocks commit again
//! once every fault has healed.

use crate::chain::spec::ChainSpec;
use crate::raft::cluster::{Cluster, ClusterRun, node_config};
use crate::raft::engine::RaftConfig;
use crate::raft::spec::RaftSpec;
use crate::sim::NodeId;
use crate::sim::cluster::{
    CheckBounds, RunError, ScheduleOutcome, check_cluster, crash_faults_only, genesis_state,
    scenario_spec,
};
use crate::sim::scenario::Scenario;

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
    crash_faults_only(scenario, "raft tolerates crashed nodes")?;
    let (spec, names) = scenario_spec::<RaftSpec>(spec, scenario)?;
    let faults = scenario.faults(&names)?;
    let base = genesis_state(&spec)?;
    let run = ClusterRun {
        spec: spec.clone(),
        seed: scenario.seed,
        faults,
        trace,
        origin: spec.genesis.time,
    };
    Ok(Cluster::with_config(&run, &base, config))
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
    Ok(check_cluster(&mut cluster, scenario, bounds))
}
