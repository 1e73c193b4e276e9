//! What a simulated run of an ordering protocol reports, for people (`to_text`) and for
//! programs (JSON with stable keys): blocks, leaders, client and block latency, messages and
//! bytes by kind and per block, and the safety observer's verdict.

use std::fmt::Write as _;

use serde::Serialize;

use crate::sim::{Micros, SimStats, Violation};

/// One message kind's line in a report.
#[derive(Debug, Clone, Serialize)]
pub struct MessageRow {
    /// The kind.
    pub kind: &'static str,
    /// Sent.
    pub sent: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Sent per committed block.
    pub per_block: f64,
    /// Bytes per committed block.
    pub bytes_per_block: f64,
}

/// The leader of a term.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderRow {
    /// The term.
    pub term: u64,
    /// Its leader.
    pub leader: String,
}

/// A crash of whoever led (`--crash leader@T`).
#[derive(Debug, Clone, Serialize)]
pub struct LeaderCrashRow {
    /// When, seconds of virtual time.
    pub at_s: f64,
    /// The node that led and crashed (`None`: no node led then, nothing crashed).
    pub node: Option<String>,
}

impl LeaderCrashRow {
    /// The leader crashes of a run so far, nodes named as in `names`.
    #[must_use]
    pub fn of(stats: &SimStats, names: &[String]) -> Vec<Self> {
        stats
            .crashed_leaders
            .iter()
            .map(|(at, node)| Self {
                at_s: *at as f64 / 1e6,
                node: node.map(|n| names[n].clone()),
            })
            .collect()
    }
}

/// The primary of a view that entered normal operation.
#[derive(Debug, Clone, Serialize)]
pub struct PrimaryRow {
    /// The view.
    pub view: u64,
    /// Its primary.
    pub primary: String,
}

/// The leader of an epoch that was established (a quorum acknowledged its NEWLEADER).
#[derive(Debug, Clone, Serialize)]
pub struct EpochRow {
    /// The epoch.
    pub epoch: u64,
    /// Its leader.
    pub leader: String,
}

/// A replica that does not follow the protocol.
#[derive(Debug, Clone, Serialize)]
pub struct ByzantineRow {
    /// The replica.
    pub node: String,
    /// How it behaves.
    pub behaviour: String,
}

/// The leader of a Paxos ballot: (round, leader).
#[derive(Debug, Clone, Serialize)]
pub struct BallotRow {
    /// The ballot's round.
    pub round: u64,
    /// The member whose ballot it was.
    pub leader: String,
}

/// The part of a report only one protocol has.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ProtocolReport {
    /// Raft.
    Raft {
        /// Campaigns started (candidates).
        elections: u64,
        /// The leader of each term that had one.
        leaders: Vec<LeaderRow>,
    },
    /// PBFT.
    Pbft {
        /// View changes completed: views after the first that a correct replica entered.
        view_changes: u64,
        /// The primary of each view that entered normal operation.
        primaries: Vec<PrimaryRow>,
        /// Checkpoints that became stable (at the first replica).
        stable_checkpoints: u64,
        /// Committed blocks that no longer fit the chain after a view change, skipped.
        skipped: u64,
        /// The Byzantine replicas.
        byzantine: Vec<ByzantineRow>,
    },
    /// Multi-Paxos.
    Paxos {
        /// Phase 1 runs started (ballots tried).
        campaigns: u64,
        /// Ballots preempted by a higher one.
        preemptions: u64,
        /// The ballots whose phase 1 succeeded, with their leaders.
        ballots: Vec<BallotRow>,
        /// Slots a new leader filled with a no-op.
        noops: u64,
        /// Whether preempted proposers back off.
        backoff: bool,
        /// Proposers preempted one another and no block was chosen.
        livelock: bool,
    },
    /// ZAB.
    Zab {
        /// Times a server started looking for a leader.
        elections: u64,
        /// The leader of each established epoch.
        epochs: Vec<EpochRow>,
        /// Followers synchronized by a DIFF.
        diffs: u64,
        /// … by a TRUNC (then a DIFF).
        truncs: u64,
        /// … by a SNAP.
        snaps: u64,
    },
    /// Kafka.
    Kafka {
        /// Partition leader elections committed by the controller.
        leader_elections: u64,
        /// Of those, elections of a replica outside the ISR.
        unclean_elections: u64,
        /// The leader of each leader epoch (`term` is the epoch).
        leaders: Vec<LeaderRow>,
        /// ISR shrinks committed.
        isr_shrinks: u64,
        /// ISR expansions committed.
        isr_expands: u64,
        /// Client writes refused while the ISR was below `min_insync_replicas`.
        refused_writes: u64,
        /// Log truncations (followers matching a new leader).
        truncations: u64,
        /// Committed blocks lost to unclean leader elections.
        lost_committed: u64,
        /// Controller-quorum (Raft) campaigns.
        controller_elections: u64,
        /// The partition's replicas.
        replicas: u64,
        /// `min_insync_replicas`.
        min_insync_replicas: u64,
        /// Whether leader epochs (KIP-101) were on.
        leader_epochs: bool,
        /// Whether unclean leader election was allowed.
        unclean_leader_election: bool,
    },
}

/// Submit-to-reply latency percentiles, milliseconds (`None` with no answers).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Longest.
    pub max: Option<f64>,
}

/// The rows of `kinds` that were sent at all, with per-block figures over `blocks`.
#[must_use]
pub fn message_rows(kinds: &[&'static str], stats: &SimStats, blocks: u64) -> Vec<MessageRow> {
    kinds
        .iter()
        .enumerate()
        .filter(|(i, _)| stats.sent[*i] > 0)
        .map(|(i, kind)| MessageRow::new(kind, stats.sent[i], stats.bytes[i], blocks))
        .collect()
}

/// `v` per block, 0 with no blocks.
#[must_use]
pub fn per_block(v: u64, blocks: u64) -> f64 {
    if blocks == 0 {
        0.0
    } else {
        v as f64 / blocks as f64
    }
}

impl MessageRow {
    /// A row: `sent` messages of `kind` carrying `bytes`, over `blocks` blocks.
    #[must_use]
    pub fn new(kind: &'static str, sent: u64, bytes: u64, blocks: u64) -> Self {
        Self {
            kind,
            sent,
            bytes,
            per_block: per_block(sent, blocks),
            bytes_per_block: per_block(bytes, blocks),
        }
    }
}

impl Latency {
    /// Percentiles of `samples`, microseconds, in milliseconds.
    #[must_use]
    pub fn of(mut samples: Vec<Micros>) -> Self {
        samples.sort_unstable();
        let pct = |p: f64| {
            if samples.is_empty() {
                None
            } else {
                let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
                Some(samples[i] as f64 / 1000.0)
            }
        };
        Self {
            p50: pct(0.5),
            p99: pct(0.99),
            max: samples.last().map(|v| *v as f64 / 1000.0),
        }
    }
}

impl Safety {
    /// The verdict on a run: `violation` if the observer reported one, else `faults` (what
    /// the nodes' own state machines could not apply) if any, else ok.
    #[must_use]
    pub fn judge(
        violation: Option<&Violation>,
        faults: &[String],
        now: Micros,
        names: &[String],
    ) -> Self {
        match violation {
            None if faults.is_empty() => Self::Ok,
            None => Self::Violated {
                property: "state machine safety",
                time_s: now as f64 / 1e6,
                nodes: Vec::new(),
                detail: faults.join("; "),
            },
            Some(v) => Self::Violated {
                property: v.property,
                time_s: v.time_us as f64 / 1e6,
                nodes: v.nodes.iter().map(|n| names[*n].clone()).collect(),
                detail: name_nodes(&v.detail, names),
            },
        }
    }
}

/// The safety verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Safety {
    /// No property broken.
    Ok,
    /// A property broken.
    Violated {
        /// The property.
        property: &'static str,
        /// When, seconds of virtual time.
        time_s: f64,
        /// The nodes involved.
        nodes: Vec<String>,
        /// What was seen.
        detail: String,
    },
}

/// What `sim` reports. Keys are stable.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// The rule.
    pub rule: &'static str,
    /// The spec's name.
    pub spec: String,
    /// The nodes.
    pub nodes: Vec<String>,
    /// The seed.
    pub seed: u64,
    /// Virtual seconds simulated.
    pub virtual_s: f64,
    /// Events processed.
    pub events: u64,
    /// Blocks committed.
    pub blocks: u64,
    /// Log entries (Raft: blocks and each term's no-op) or sequence numbers (PBFT: blocks,
    /// no-ops and skipped blocks) committed.
    pub entries: u64,
    /// What only this protocol has: Raft's elections and leaders, PBFT's view changes,
    /// primaries and Byzantine replicas.
    #[serde(flatten)]
    pub protocol: ProtocolReport,
    /// Seconds during which no live node led.
    pub leaderless_s: f64,
    /// The crashes of whoever led (none unless the scenario crashes `leader`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leader_crashes: Vec<LeaderCrashRow>,
    /// Client requests submitted.
    pub requests: u64,
    /// Requests answered.
    pub answered: u64,
    /// Client retries (unanswered within a second).
    pub retries: u64,
    /// Requests the clients gave up on after ten retries.
    pub abandoned: u64,
    /// Client latency: submit to reply.
    pub latency_ms: Latency,
    /// Block latency: the leader appends it to the first commit.
    pub block_commit_ms: Latency,
    /// Messages by kind.
    pub messages: Vec<MessageRow>,
    /// Messages per committed block.
    pub messages_per_block: f64,
    /// Bytes per committed block.
    pub bytes_per_block: f64,
    /// Signatures per block (Raft: the leader's; PBFT: the commit certificate's).
    pub signatures_per_block: f64,
    /// Messages lost (loss, partitions, crashed receivers).
    pub dropped: u64,
    /// The observer's verdict.
    pub safety: Safety,
    /// A hash of the run: equal for equal seeds and scenarios.
    pub trace_hash: String,
}

impl SimReport {
    /// Messages sent between nodes (replies to clients not included).
    #[must_use]
    pub fn messages_sent(&self) -> u64 {
        self.messages
            .iter()
            .filter(|m| !m.kind.starts_with("reply"))
            .map(|m| m.sent)
            .sum()
    }

    /// Bytes sent between nodes.
    #[must_use]
    pub fn bytes_sent(&self) -> u64 {
        self.messages
            .iter()
            .filter(|m| !m.kind.starts_with("reply"))
            .map(|m| m.bytes)
            .sum()
    }

    /// The report as text for people.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} nodes ({}), seed {}, {:.3} s simulated, {} events",
            self.rule,
            self.nodes.len(),
            self.nodes.join(" "),
            self.seed,
            self.virtual_s,
            self.events
        );
        match &self.protocol {
            ProtocolReport::Raft { elections, leaders } => {
                let _ = writeln!(
                    s,
                    "  blocks committed   {:>10}   (log entries {}, with each term's no-op)",
                    self.blocks, self.entries
                );
                let leaders: Vec<String> = leaders
                    .iter()
                    .map(|l| format!("{}:{}", l.term, l.leader))
                    .collect();
                let _ = writeln!(
                    s,
                    "  elections          {:>10}   leaders by term: {}",
                    elections,
                    if leaders.is_empty() {
                        "none".into()
                    } else {
                        leaders.join(" ")
                    }
                );
            }
            ProtocolReport::Pbft {
                view_changes,
                primaries,
                stable_checkpoints,
                skipped,
                byzantine,
            } => {
                let _ = writeln!(
                    s,
                    "  blocks committed   {:>10}   (sequence numbers {}: with no-ops and {} skipped blocks; {} stable checkpoints)",
                    self.blocks, self.entries, skipped, stable_checkpoints
                );
                let primaries: Vec<String> = primaries
                    .iter()
                    .map(|p| format!("{}:{}", p.view, p.primary))
                    .collect();
                let _ = writeln!(
                    s,
                    "  view changes       {:>10}   primaries by view: {}",
                    view_changes,
                    primaries.join(" ")
                );
                if !byzantine.is_empty() {
                    let b: Vec<String> = byzantine
                        .iter()
                        .map(|b| format!("{} {}", b.node, b.behaviour))
                        .collect();
                    let _ = writeln!(s, "  byzantine          {}", b.join(", "));
                }
            }
            ProtocolReport::Paxos {
                campaigns,
                preemptions,
                ballots,
                noops,
                backoff,
                livelock,
            } => {
                let _ = writeln!(
                    s,
                    "  blocks committed   {:>10}   (slots chosen {}, with {} no-ops filling gaps)",
                    self.blocks, self.entries, noops
                );
                let ballots: Vec<String> = ballots
                    .iter()
                    .map(|b| format!("({}, {})", b.round, b.leader))
                    .collect();
                let _ = writeln!(
                    s,
                    "  ballots            {:>10}   phase 1 runs, {} preempted (back-off {}); leaders by ballot: {}",
                    campaigns,
                    preemptions,
                    if *backoff { "on" } else { "off" },
                    if ballots.is_empty() {
                        "none".into()
                    } else {
                        ballots.join(" ")
                    }
                );
                if *livelock {
                    let _ = writeln!(
                        s,
                        "  LIVELOCK           no block chosen: the proposers preempted each other {preemptions} times in {campaigns} ballots"
                    );
                }
            }
            ProtocolReport::Zab {
                elections,
                epochs,
                diffs,
                truncs,
                snaps,
            } => {
                let _ = writeln!(
                    s,
                    "  blocks committed   {:>10}   (transactions delivered in zxid order; followers synced by {diffs} DIFF, {truncs} TRUNC, {snaps} SNAP)",
                    self.blocks
                );
                let epochs: Vec<String> = epochs
                    .iter()
                    .map(|e| format!("{}:{}", e.epoch, e.leader))
                    .collect();
                let _ = writeln!(
                    s,
                    "  elections          {:>10}   leaders by epoch: {}",
                    elections,
                    if epochs.is_empty() {
                        "none".into()
                    } else {
                        epochs.join(" ")
                    }
                );
            }
            ProtocolReport::Kafka {
                leader_elections,
                unclean_elections,
                leaders,
                isr_shrinks,
                isr_expands,
                refused_writes,
                truncations,
                lost_committed,
                controller_elections,
                replicas,
                min_insync_replicas,
                leader_epochs,
                unclean_leader_election,
            } => {
                let _ = writeln!(
                    s,
                    "  blocks committed   {:>10}   ({} replicas, min_insync_replicas {}, leader epochs {}, unclean election {})",
                    self.blocks,
                    replicas,
                    min_insync_replicas,
                    if *leader_epochs { "on" } else { "off" },
                    if *unclean_leader_election {
                        "allowed"
                    } else {
                        "off"
                    }
                );
                let leaders: Vec<String> = leaders
                    .iter()
                    .map(|l| format!("{}:{}", l.term, l.leader))
                    .collect();
                let _ = writeln!(
                    s,
                    "  leader elections   {:>10}   ({} unclean; controller campaigns {}) leaders by epoch: {}",
                    leader_elections,
                    unclean_elections,
                    controller_elections,
                    if leaders.is_empty() {
                        "none".into()
                    } else {
                        leaders.join(" ")
                    }
                );
                let _ = writeln!(
                    s,
                    "  ISR changes        {:>10}   ({} shrinks, {} expansions); {} writes refused (ISR below min_insync_replicas), {} truncations",
                    isr_shrinks + isr_expands,
                    isr_shrinks,
                    isr_expands,
                    refused_writes,
                    truncations
                );
                let _ = writeln!(
                    s,
                    "  lost committed     {:>10}   blocks (only an unclean election may lose them)",
                    lost_committed
                );
            }
        }
        let _ = writeln!(s, "  without a leader   {:>10.3} s", self.leaderless_s);
        if !self.leader_crashes.is_empty() {
            let crashes: Vec<String> = self
                .leader_crashes
                .iter()
                .map(|c| match &c.node {
                    Some(n) => format!("{} at {:.3} s", n, c.at_s),
                    None => format!("none at {:.3} s (no node led)", c.at_s),
                })
                .collect();
            let _ = writeln!(s, "  leader crashed     {}", crashes.join(", "));
        }
        let ms = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} ms"));
        let _ = writeln!(
            s,
            "  client latency     p50 {}  p99 {}  max {}   ({} of {} requests answered, {} retries, {} abandoned)",
            ms(self.latency_ms.p50),
            ms(self.latency_ms.p99),
            ms(self.latency_ms.max),
            self.answered,
            self.requests,
            self.retries,
            self.abandoned
        );
        let _ = writeln!(
            s,
            "  block commit       p50 {}  p99 {}  max {}   (proposed → first commit)",
            ms(self.block_commit_ms.p50),
            ms(self.block_commit_ms.p99),
            ms(self.block_commit_ms.max)
        );
        let _ = writeln!(
            s,
            "  per block          {:.1} messages, {:.0} bytes, {} signatures; {} messages lost",
            self.messages_per_block, self.bytes_per_block, self.signatures_per_block, self.dropped
        );
        let _ = writeln!(
            s,
            "  {:<16} {:>10} {:>12} {:>10} {:>12}",
            "message", "sent", "bytes", "/block", "bytes/block"
        );
        for m in &self.messages {
            let _ = writeln!(
                s,
                "  {:<16} {:>10} {:>12} {:>10.1} {:>12.0}",
                m.kind, m.sent, m.bytes, m.per_block, m.bytes_per_block
            );
        }
        match &self.safety {
            Safety::Ok => {
                let _ = writeln!(
                    s,
                    "  safety             ok: {}",
                    match self.protocol {
                        ProtocolReport::Raft { .. } => {
                            "election safety, log matching, leader completeness, state machine safety held"
                        }
                        ProtocolReport::Pbft { .. } => {
                            "agreement, order, validity and commit certificates held at every honest replica"
                        }
                        ProtocolReport::Paxos { .. } => {
                            "agreement, order, validity, exactly-once, certificates and acceptor rules held"
                        }
                        ProtocolReport::Zab { .. } => {
                            "agreement, total and primary order, integrity, one leader per epoch, NEWLEADER before broadcast held"
                        }
                        ProtocolReport::Kafka { .. } => {
                            "one leader per epoch, no committed block lost (but as counted), agreement, validity, exactly-once held"
                        }
                    }
                );
            }
            Safety::Violated {
                property,
                time_s,
                nodes,
                detail,
            } => {
                let _ = writeln!(
                    s,
                    "  safety             VIOLATED: {property} at {time_s:.3} s, nodes {}, seed {}: {detail}",
                    nodes.join(" "),
                    self.seed
                );
            }
        }
        let _ = write!(s, "  trace hash         {}", self.trace_hash);
        s
    }
}

/// `text` with `node K` replaced by the node's name.
pub fn name_nodes(text: &str, names: &[String]) -> String {
    let mut out = text.to_owned();
    for (i, name) in names.iter().enumerate().rev() {
        out = out.replace(&format!("node {i}"), name);
        out = out.replace(&format!("nodes {i}"), &format!("nodes {name}"));
    }
    out
}
