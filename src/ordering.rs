//! The ordering rules — the protocols that order blocks among a cluster's members rather
//! than by work or stake (Raft, PBFT) — as `sim`, `check` and `compare` run them: one entry
//! point per task, dispatching on the spec's rule.

use std::collections::BTreeMap;

use crate::chain::spec::{ChainSpec, SpecError};
use crate::sim::NetModel;
use crate::sim::cluster::{CheckBounds, OrderedCluster, RunError, ScheduleOutcome};
use crate::sim::scenario::Scenario;

/// The ordering rules, by name.
pub const ORDERING_RULES: &[&str] = &["raft", "pbft", "zab"];

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
        "zab" => crate::zab::spec::cluster_spec(spec, nodes, params),
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
    } else if let Some(z) = spec.section::<crate::zab::spec::ZabSpec>() {
        z.members.clone()
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
    } else if let Some(z) = spec.section::<crate::zab::spec::ZabSpec>() {
        z.network
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
        "zab" => Box::new(crate::zab::check::build(spec, scenario, trace)?),
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
        _ => crate::raft::check::schedule(seed, i, &names, bounds),
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
        "zab" => crate::zab::check::check_schedule(spec, scenario, bounds),
        _ => Err(RunError::Spec(not_ordering(spec))),
    }
}
