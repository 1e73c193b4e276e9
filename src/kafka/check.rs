//! Running scenarios on a simulated Kafka cluster (`sim kafka`) and random fault schedules
//! (`check kafka`): safety judged by the observer, liveness by how soon blocks commit again
//! once every fault has healed.

use crate::chain::spec::ChainSpec;
use crate::kafka::cluster::{Cluster, ClusterRun, node_config};
use crate::kafka::engine::KafkaConfig;
use crate::kafka::spec::{KafkaSpec, cluster_spec};
use crate::sim::cluster::{CheckBounds, RunError, ScheduleOutcome, check_cluster, genesis_state};
use crate::sim::scenario::{Scenario, ScenarioError};
use crate::sim::{NodeId, SimRng};

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
    config: fn(&KafkaSpec, NodeId) -> KafkaConfig,
) -> Result<Cluster, RunError> {
    if !scenario.byzantine.is_empty() {
        return Err(RunError::Scenario(ScenarioError {
            field: "byzantine".into(),
            reason: "kafka tolerates crashed brokers, not Byzantine ones (run pbft)".into(),
        }));
    }
    let mut spec = cluster_spec(spec, scenario.nodes, &scenario.params)?;
    if let Some(net) = scenario.network {
        let mut kafka = spec.section::<KafkaSpec>().expect("kafka").clone();
        kafka.network = net;
        kafka.validate()?;
        spec.section = Some(crate::chain::spec::RuleSection::new(kafka));
    }
    let names = spec.section::<KafkaSpec>().expect("kafka").members.clone();
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

/// Draws schedule `i` of a campaign seeded `seed` for the brokers `names`: crashes,
/// restarts, partitions, loss, duplication and delay, as for Raft.
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
    config: fn(&KafkaSpec, NodeId) -> KafkaConfig,
) -> Result<ScheduleOutcome, RunError> {
    let mut cluster = build_with(spec, scenario, false, config)?;
    Ok(check_cluster(&mut cluster, scenario, bounds))
}
