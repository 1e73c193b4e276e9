//! Running scenarios on a simulated PBFT cluster (`sim pbft`) and random fault schedules
//! (`check pbft`): at most `f` faulty replicas — crashed or Byzantine — per schedule, safety
//! judged by the observer, liveness by how soon blocks commit again once the faults heal.

use std::str::FromStr;

use crate::chain::spec::ChainSpec;
use crate::pbft::byzantine::{BEHAVIOURS, Behaviour};
use crate::pbft::cluster::{Cluster, ClusterRun};
use crate::pbft::engine::PbftConfig;
use crate::pbft::spec::PbftSpec;
use crate::sim::SimRng;
use crate::sim::cluster::{
    CheckBounds, RunError, ScheduleOutcome, check_cluster, genesis_state, scenario_spec,
};
use crate::sim::scenario::{Scenario, ScenarioError};

/// Builds the cluster a scenario describes over `spec`'s genesis.
///
/// # Errors
/// [`RunError`] naming the field: among others a behaviour that does not exist, or more
/// Byzantine replicas than `n = 3f + 1` tolerates without `allow_unsafe`.
pub fn build(spec: &ChainSpec, scenario: &Scenario, trace: bool) -> Result<Cluster, RunError> {
    build_with(spec, scenario, trace, |_| {})
}

pub(crate) fn build_with(
    spec: &ChainSpec,
    scenario: &Scenario,
    trace: bool,
    tweak: fn(&mut PbftConfig),
) -> Result<Cluster, RunError> {
    let (spec, names) = scenario_spec::<PbftSpec>(spec, scenario)?;
    let pbft = spec.section::<PbftSpec>().expect("pbft");
    let faults = scenario.faults(&names)?;
    let mut byzantine = Vec::new();
    for (node, behaviour) in &scenario.byzantine {
        let field = format!("byzantine.{node}");
        let id = names
            .iter()
            .position(|n| n == node)
            .ok_or_else(|| ScenarioError {
                field: field.clone(),
                reason: format!("no node {node:?} (nodes: {})", names.join(", ")),
            })?;
        let b = Behaviour::from_str(behaviour).map_err(|reason| ScenarioError {
            field: field.clone(),
            reason,
        })?;
        byzantine.push((id, b));
    }
    if byzantine.len() > pbft.f() && !scenario.allow_unsafe {
        return Err(RunError::Scenario(ScenarioError {
            field: "byzantine".into(),
            reason: format!(
                "{} Byzantine replicas, but {} replicas tolerate {} (n = 3f + 1); allow_unsafe (--allow-unsafe) runs it anyway to show safety breaking",
                byzantine.len(),
                pbft.n(),
                pbft.f()
            ),
        }));
    }
    let base = genesis_state(&spec)?;
    let run = ClusterRun {
        spec: spec.clone(),
        seed: scenario.seed,
        faults,
        byzantine,
        trace,
        origin: spec.genesis.time,
    };
    Ok(Cluster::with_config(&run, &base, tweak))
}

/// The bounds of `check pbft`: a view change waits for a timeout that doubles while views
/// fail, so the cluster gets longer to commit again after the faults heal than Raft does.
#[must_use]
pub fn bounds() -> CheckBounds {
    CheckBounds {
        faulty_s: 4.0,
        calm_s: 8.0,
        liveness_s: 8.0,
        load_tps: 20.0,
    }
}

/// Draws schedule `i` of a campaign seeded `seed` for the replicas `names`: at most `f`
/// faulty, crashed or with any Byzantine behaviour.
#[must_use]
pub fn schedule(seed: u64, i: u64, names: &[String], bounds: &CheckBounds) -> Scenario {
    let mut rng = SimRng::new(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let behaviours: Vec<&str> = BEHAVIOURS.iter().map(|(n, _)| *n).collect();
    Scenario::random_byzantine(
        &mut rng,
        names,
        (names.len() - 1) / 3,
        &behaviours,
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
    check_schedule_with(spec, scenario, bounds, |_| {})
}

pub(crate) fn check_schedule_with(
    spec: &ChainSpec,
    scenario: &Scenario,
    bounds: &CheckBounds,
    tweak: fn(&mut PbftConfig),
) -> Result<ScheduleOutcome, RunError> {
    let mut cluster = build_with(spec, scenario, false, tweak)?;
    Ok(check_cluster(&mut cluster, scenario, bounds))
}
