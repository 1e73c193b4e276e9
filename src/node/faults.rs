//! The per-link fault layer: what a node drops, delays or cuts on its links, so that tests and
//! demos can partition real processes on one machine without root. Faults are set by
//! `client fault …` (on a node started with `--allow-faults`) and apply to both directions of
//! a link as this node sees it: a cut link's messages are neither sent nor accepted, and a
//! dropped message — on a rule whose links must stay FIFO — breaks the link as a lost TCP
//! segment that never arrives would.

use std::time::Duration;

use crate::node::wire::FaultCmd;
use crate::sim::SimRng;

/// The faults on each of a node's links (indexed by member).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkFaults {
    cut: Vec<bool>,
    drop: Vec<f64>,
    delay_ms: Vec<u64>,
}

impl LinkFaults {
    /// No faults on `n` links.
    #[must_use]
    pub fn new(n: usize) -> Self {
        Self {
            cut: vec![false; n],
            drop: vec![0.0; n],
            delay_ms: vec![0; n],
        }
    }

    /// Applies `cmd`; `names` are the members.
    ///
    /// # Errors
    /// A member the command names that the cluster lacks, or a probability outside [0, 1].
    pub fn apply(&mut self, cmd: &FaultCmd, names: &[String]) -> Result<(), String> {
        let pick = |peers: &[String]| -> Result<Vec<usize>, String> {
            if peers.is_empty() {
                return Ok((0..names.len()).collect());
            }
            peers
                .iter()
                .map(|p| {
                    names
                        .iter()
                        .position(|n| n == p)
                        .ok_or_else(|| format!("no node named {p:?} (nodes: {})", names.join(", ")))
                })
                .collect()
        };
        match cmd {
            FaultCmd::Cut(peers) => {
                for i in pick(peers)? {
                    self.cut[i] = true;
                }
            }
            FaultCmd::Drop { peers, probability } => {
                if !(0.0..=1.0).contains(probability) {
                    return Err(format!("drop probability {probability} is not in [0, 1]"));
                }
                for i in pick(peers)? {
                    self.drop[i] = *probability;
                }
            }
            FaultCmd::Delay { peers, ms } => {
                if *ms > 60_000 {
                    return Err(format!("a delay of {ms} ms is over the limit of 60000"));
                }
                for i in pick(peers)? {
                    self.delay_ms[i] = *ms;
                }
            }
            FaultCmd::Heal => *self = Self::new(names.len()),
        }
        Ok(())
    }

    /// Whether the link to `peer` is cut.
    #[must_use]
    pub fn is_cut(&self, peer: usize) -> bool {
        self.cut[peer]
    }

    /// Whether a message on the link to or from `peer` is lost (a cut link loses all).
    pub fn loses(&self, peer: usize, rng: &mut SimRng) -> bool {
        self.cut[peer] || (self.drop[peer] > 0.0 && rng.chance(self.drop[peer]))
    }

    /// How long a message to `peer` waits before it is sent.
    #[must_use]
    pub fn delay(&self, peer: usize) -> Duration {
        Duration::from_millis(self.delay_ms[peer])
    }

    /// The faults, one line each (none: empty).
    #[must_use]
    pub fn describe(&self, names: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let list = |f: &dyn Fn(usize) -> bool| -> Vec<&str> {
            (0..names.len())
                .filter(|i| f(*i))
                .map(|i| names[i].as_str())
                .collect()
        };
        let cut = list(&|i| self.cut[i]);
        if !cut.is_empty() {
            out.push(format!("cut from {}", cut.join(",")));
        }
        for (i, name) in names.iter().enumerate() {
            if self.drop[i] > 0.0 && !self.cut[i] {
                out.push(format!("drop {} to/from {name}", self.drop[i]));
            }
            if self.delay_ms[i] > 0 {
                out.push(format!("delay {} ms to {name}", self.delay_ms[i]));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_apply_per_link_and_heal() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut f = LinkFaults::new(3);
        f.apply(&FaultCmd::Cut(vec!["b".into()]), &names).unwrap();
        f.apply(
            &FaultCmd::Delay {
                peers: vec![],
                ms: 5,
            },
            &names,
        )
        .unwrap();
        let mut rng = SimRng::new(1);
        assert!(f.is_cut(1) && !f.is_cut(2));
        assert!(f.loses(1, &mut rng) && !f.loses(2, &mut rng));
        assert_eq!(f.delay(0), Duration::from_millis(5));
        assert_eq!(f.describe(&names)[0], "cut from b");
        assert!(
            f.apply(&FaultCmd::Cut(vec!["z".into()]), &names)
                .unwrap_err()
                .contains("no node named \"z\"")
        );
        assert!(
            f.apply(
                &FaultCmd::Drop {
                    peers: vec![],
                    probability: 1.5
                },
                &names
            )
            .is_err()
        );
        f.apply(
            &FaultCmd::Drop {
                peers: vec!["c".into()],
                probability: 1.0,
            },
            &names,
        )
        .unwrap();
        assert!(f.loses(2, &mut rng));
        f.apply(&FaultCmd::Heal, &names).unwrap();
        assert_eq!(f, LinkFaults::new(3));
        assert!(f.describe(&names).is_empty());
    }
}
