//! Running scenarios on a simulated Paxos cluster (`sim paxos`) and random fault schedules
//! (`check paxos`): safety judged by the observer, liveness by how soon blocks commit again
//! once every fault has healed.

use crate::chain::spec::ChainSpec;
use crate::paxos::cluster::{Cluster, ClusterRun, node_config};
use crate::paxos::engine::PaxosConfig;
use crate::paxos::spec::{PaxosSpec, cluster_spec};
use crate::sim::cluster::{CheckBounds, RunError, ScheduleOutcome, check_cluster, genesis_state};
use crate::sim::scenario::{Scenario, ScenarioError};
use crate::sim::{NodeId, SimRng};

/// How each node of a cluster is configured: from the spec, its id and the chain's last slot.
pub(crate) type ConfigFn = fn(&ChainSpec, NodeId, u64) -> PaxosConfig;

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
    config: ConfigFn,
) -> Result<Cluster, RunError> {
    if !scenario.byzantine.is_empty() {
        return Err(RunError::Scenario(ScenarioError {
            field: "byzantine".into(),
            reason: "paxos tolerates crashed nodes, not Byzantine ones (run pbft)".into(),
        }));
    }
    let mut spec = cluster_spec(spec, scenario.nodes, &scenario.params)?;
    if let Some(net) = scenario.network {
        let mut p = spec.section::<PaxosSpec>().expect("paxos").clone();
        p.network = net;
        p.validate()?;
        spec.section = Some(crate::chain::spec::RuleSection::new(p));
    }
    let names = spec.section::<PaxosSpec>().expect("paxos").members.clone();
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
    config: ConfigFn,
) -> Result<ScheduleOutcome, RunError> {
    let mut cluster = build_with(spec, scenario, false, config)?;
    Ok(check_cluster(&mut cluster, scenario, bounds))
}
