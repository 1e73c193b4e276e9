//! Scenarios: what a simulated run is asked to do — how many nodes, the seed, how long, the
//! network, the client load, crashes and partitions at given times, and the protocol's
//! parameters — as a JSON file (unknown fields refused) or built from flags, and the random
//! fault schedules `check` draws. Nodes are named as the spec names its members.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sim::{Crash, Faults, LeaderCrash, Micros, NetModel, NodeId, Partition, SimRng};

/// A crash in a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashSpec {
    /// The node's name, or `leader`: whichever node leads at the time (unless a member is
    /// named `leader`).
    pub node: String,
    /// When it crashes, seconds.
    pub at_s: f64,
    /// When it restarts, seconds (never, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_s: Option<f64>,
}

/// A partition in a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// Groups of node names that cannot reach each other.
    pub groups: Vec<Vec<String>>,
    /// Start, seconds.
    pub from_s: f64,
    /// Healed, seconds.
    pub to_s: f64,
}

/// A scenario. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Cluster size (the spec's members when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,
    /// The seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Stop after this many blocks are committed …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<u64>,
    /// … or after this many seconds of virtual time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// The network (the spec's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetModel>,
    /// Loss and duplication stop at this time, seconds (they last the whole run when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lossy_until_s: Option<f64>,
    /// Client transactions per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_tps: Option<f64>,
    /// Crashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crashes: Vec<CrashSpec>,
    /// Partitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionSpec>,
    /// Protocol parameters, merged into the spec's section for the rule (`pre_vote`,
    /// `election_timeout_ms`…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Byzantine nodes (rules that tolerate them): node name → behaviour (`equivocate`…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub byzantine: BTreeMap<String, String>,
    /// Allow more Byzantine nodes than the cluster tolerates, to watch safety break.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_unsafe: bool,
}

const fn default_seed() -> u64 {
    1
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            nodes: None,
            seed: 1,
            blocks: None,
            duration_s: None,
            network: None,
            lossy_until_s: None,
            load_tps: None,
            crashes: Vec::new(),
            partitions: Vec::new(),
            params: BTreeMap::new(),
            byzantine: BTreeMap::new(),
            allow_unsafe: false,
        }
    }
}

/// A scenario that names something wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ScenarioError {
    /// The field, as a path (`crashes[1].node`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The most blocks a scenario may ask for.
pub const MAX_BLOCKS: u64 = 1_000_000;

/// The heaviest client load a scenario may ask for, transactions per second.
pub const MAX_LOAD_TPS: f64 = 10_000.0;

/// The longest run a scenario may ask for, seconds of virtual time (a day).
pub const MAX_DURATION_S: f64 = 86_400.0;

fn time(field: String, s: f64) -> Result<Micros, ScenarioError> {
    if !(s.is_finite() && (0.0..=MAX_DURATION_S).contains(&s)) {
        return Err(err(
            field,
            format!("{s} is not a time from 0 to {MAX_DURATION_S} s"),
        ));
    }
    Ok((s * 1e6).round() as Micros)
}

/// The crash target that names whichever node leads at the time.
pub const LEADER: &str = "leader";

/// Adds a crash of `node` from `at_s` to `restart_s` unless the node is already down then (a
/// random schedule never overlaps one node's crashes, which a scenario must not).
pub fn push_crash(crashes: &mut Vec<CrashSpec>, node: String, at_s: f64, restart_s: f64) {
    let overlaps = crashes.iter().any(|c| {
        c.node == node && at_s < c.restart_s.unwrap_or(f64::INFINITY) && c.at_s < restart_s
    });
    if !overlaps {
        crashes.push(CrashSpec {
            node,
            at_s,
            restart_s: Some(restart_s),
        });
    }
}

impl Scenario {
    /// Parses a scenario file's text.
    ///
    /// # Errors
    /// The JSON error, naming the line, column and field.
    pub fn from_json(text: &str) -> Result<Self, ScenarioError> {
        serde_json::from_str(text).map_err(|e| err("scenario", e.to_string()))
    }

    /// The faults in node indices, nodes named as in `names`.
    ///
    /// # Errors
    /// A node that does not exist, a node twice in one partition, a time out of range, a
    /// restart before its crash, a partition that heals before it starts, a bad load.
    pub fn faults(&self, names: &[String]) -> Result<Faults, ScenarioError> {
        let node = |field: String, name: &str| -> Result<NodeId, ScenarioError> {
            names.iter().position(|n| n == name).ok_or_else(|| {
                err(
                    field,
                    format!("no node {name:?} (nodes: {})", names.join(", ")),
                )
            })
        };
        if let Some(d) = self.duration_s
            && time("duration_s".into(), d)? == 0
        {
            return Err(err("duration_s", "must be above 0"));
        }
        if let Some(b) = self.blocks
            && (b == 0 || b > MAX_BLOCKS)
        {
            return Err(err("blocks", format!("{b} is not 1 to {MAX_BLOCKS}")));
        }
        let mut crashes: Vec<Crash> = Vec::new();
        let mut leader_crashes = Vec::new();
        for (i, c) in self.crashes.iter().enumerate() {
            let at = time(format!("crashes[{i}].at_s"), c.at_s)?;
            let restart = c
                .restart_s
                .map(|r| time(format!("crashes[{i}].restart_s"), r))
                .transpose()?;
            if restart.is_some_and(|r| r <= at) {
                return Err(err(
                    format!("crashes[{i}].restart_s"),
                    "must be after the crash",
                ));
            }
            if c.node == LEADER && !names.iter().any(|n| n == LEADER) {
                leader_crashes.push(LeaderCrash { at, restart });
                continue;
            }
            let id = node(format!("crashes[{i}].node"), &c.node)?;
            let end = restart.unwrap_or(Micros::MAX);
            if let Some(j) = crashes
                .iter()
                .position(|o| o.node == id && at < o.restart.unwrap_or(Micros::MAX) && o.at < end)
            {
                return Err(err(
                    format!("crashes[{i}]"),
                    format!("{} is still down from crashes[{j}] then", c.node),
                ));
            }
            crashes.push(Crash {
                node: id,
                at,
                restart,
            });
        }
        let mut partitions = Vec::new();
        for (i, p) in self.partitions.iter().enumerate() {
            let from = time(format!("partitions[{i}].from_s"), p.from_s)?;
            let to = time(format!("partitions[{i}].to_s"), p.to_s)?;
            if to <= from {
                return Err(err(format!("partitions[{i}].to_s"), "must be after from_s"));
            }
            if p.groups.len() < 2 {
                return Err(err(
                    format!("partitions[{i}].groups"),
                    "a partition needs at least two groups",
                ));
            }
            let mut seen = Vec::new();
            let mut groups = Vec::new();
            for (g, group) in p.groups.iter().enumerate() {
                let mut ids = Vec::new();
                for (k, name) in group.iter().enumerate() {
                    let field = format!("partitions[{i}].groups[{g}][{k}]");
                    let id = node(field.clone(), name)?;
                    if seen.contains(&id) {
                        return Err(err(field, format!("{name:?} is in the partition twice")));
                    }
                    seen.push(id);
                    ids.push(id);
                }
                groups.push(ids);
            }
            partitions.push(Partition { groups, from, to });
        }
        let load_tps = self.load_tps.unwrap_or(0.0);
        if !(load_tps.is_finite() && (0.0..=MAX_LOAD_TPS).contains(&load_tps)) {
            return Err(err(
                "load_tps",
                format!("{load_tps} is not 0 to {MAX_LOAD_TPS}"),
            ));
        }
        Ok(Faults {
            crashes,
            leader_crashes,
            partitions,
            cuts: Vec::new(),
            lossy_until: self
                .lossy_until_s
                .map(|s| time("lossy_until_s".into(), s))
                .transpose()?,
            load_tps,
            first_client: 0,
        })
    }

    /// A random fault schedule for `names`: up to five crashes, half of them back within a
    /// few milliseconds (a node that reboots mid-election), the rest later; up to three
    /// partitions into two random groups; loss up to 20 % and duplication up to 10 %; delays
    /// from 1 to 30 ms. Every fault heals within the first `faulty_s` seconds (crashed nodes
    /// restart) and the run goes on for `calm_s` more.
    #[must_use]
    pub fn random(
        rng: &mut SimRng,
        names: &[String],
        faulty_s: f64,
        calm_s: f64,
        load_tps: f64,
    ) -> Self {
        let n = names.len() as u64;
        // Whole milliseconds, so that a time written to a scenario file reads back the same.
        let end = (faulty_s * 1000.0) as u64;
        let early = end * 9 / 10;
        let s = |ms: u64| ms as f64 / 1000.0;
        let mut crashes = Vec::new();
        for _ in 0..rng.range(0, 5) {
            let at = rng.range(0, early);
            let restart = if rng.chance(0.5) {
                rng.range(at + 1, (at + 50).min(end).max(at + 1))
            } else {
                rng.range(at + 1, end.max(at + 1))
            };
            let node = names[rng.range(0, n - 1) as usize].clone();
            push_crash(&mut crashes, node, s(at), s(restart));
        }
        let mut partitions = Vec::new();
        for _ in 0..rng.range(0, 3) {
            let from_ms = rng.range(0, early);
            let to_ms = rng.range(from_ms + 1, end.max(from_ms + 1));
            let (from, to) = (s(from_ms), s(to_ms));
            let mut a = Vec::new();
            let mut b = Vec::new();
            for name in names {
                if rng.chance(0.5) {
                    a.push(name.clone());
                } else {
                    b.push(name.clone());
                }
            }
            if !a.is_empty() && !b.is_empty() {
                partitions.push(PartitionSpec {
                    groups: vec![a, b],
                    from_s: from,
                    to_s: to,
                });
            }
        }
        let lo = rng.range(1, 10) as f64;
        let hi = lo + rng.range(0, 20) as f64;
        Self {
            nodes: Some(names.len()),
            seed: rng.next_u64() >> 11,
            blocks: None,
            duration_s: Some(faulty_s + calm_s),
            network: Some(NetModel {
                delay_ms: (lo, hi),
                drop: rng.range(0, 20) as f64 / 100.0,
                duplicate: rng.range(0, 10) as f64 / 100.0,
                persist_ms: 1.0,
            }),
            lossy_until_s: Some(faulty_s),
            load_tps: Some(load_tps),
            crashes,
            partitions,
            params: BTreeMap::new(),
            byzantine: BTreeMap::new(),
            allow_unsafe: false,
        }
    }

    /// A random schedule for a Byzantine-fault-tolerant rule: as [`Scenario::random`], but
    /// 1 to `f` nodes are faulty, each either crashing (and perhaps restarting; one in three)
    /// or behaving as one of `behaviours`; the others never crash.
    #[must_use]
    pub fn random_byzantine(
        rng: &mut SimRng,
        names: &[String],
        f: usize,
        behaviours: &[&str],
        faulty_s: f64,
        calm_s: f64,
        load_tps: f64,
    ) -> Self {
        let mut sc = Self::random(rng, names, faulty_s, calm_s, load_tps);
        let mut pool: Vec<String> = names.to_vec();
        let mut crashing = Vec::new();
        let faulty = if f == 0 { 0 } else { rng.range(1, f as u64) };
        for _ in 0..faulty {
            let i = rng.range(0, pool.len() as u64 - 1) as usize;
            let node = pool.swap_remove(i);
            if rng.chance(1.0 / 3.0) || behaviours.is_empty() {
                crashing.push(node);
            } else {
                let b = behaviours[rng.range(0, behaviours.len() as u64 - 1) as usize];
                sc.byzantine.insert(node, b.to_owned());
            }
        }
        sc.crashes.retain(|c| crashing.contains(&c.node));
        sc
    }
}
