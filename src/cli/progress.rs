//! Progress on stderr: a live bar when stderr is a terminal, and log lines (`log`) with or
//! without one — above the bar on a terminal, timestamped plain lines otherwise — so a run
//! under nohup or in a CI log shows its progress too. `--quiet` hides both.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::format::utc;
use crate::cli::unix_now;

/// Green, for good news (a block found).
pub(crate) const GREEN: &str = "32";

/// `text` in the ANSI colour `code` when stderr is a terminal and `NO_COLOR` is not set
/// (<https://no-color.org>), else as it is.
pub(crate) fn paint(text: &str, code: &str) -> String {
    static COLOUR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let colour = *COLOUR.get_or_init(|| {
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    });
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// A progress bar that may be hidden, and a log-line printer that may be silenced.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    steps: Option<Steps>,
}

/// Without a bar: a log line at every tenth of the way.
struct Steps {
    len: u64,
    unit: String,
    pos: AtomicU64,
    tenths: AtomicU64,
}

impl Progress {
    /// A bar of `len` steps (`None`: a spinner) labelled `unit`, drawn only on a terminal;
    /// log lines printed unless `quiet`.
    pub(crate) fn new(len: Option<u64>, unit: &str, quiet: bool) -> Self {
        if quiet {
            return Self {
                bar: None,
                lines: false,
                steps: None,
            };
        }
        if !std::io::stderr().is_terminal() {
            return Self {
                bar: None,
                lines: true,
                steps: None,
            };
        }
        // Fits 80 columns: a 20-cell bar, the count, the ETA and a short message.
        let bar = match len {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template(&format!(
                        "{{spinner}} {{elapsed:>4}} {{bar:20}} {{pos}}/{{len}} {unit} \
                         eta {{eta}} {{wide_msg}}"
                    ))
                    .expect("valid template"),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} {{elapsed:>4}} {{pos}} {unit} {{wide_msg}}"
                ))
                .expect("valid template"),
            ),
        };
        bar.enable_steady_tick(Duration::from_millis(120));
        Self {
            bar: Some(bar),
            lines: true,
            steps: None,
        }
    }

    /// Where no bar is drawn (stderr not a terminal), logs `pos/len unit (P %)` at every
    /// tenth of the `len` steps, for long runs with no lines of their own.
    pub(crate) fn log_steps(mut self, len: u64, unit: &str) -> Self {
        if self.bar.is_none() && self.lines && len > 0 {
            self.steps = Some(Steps {
                len,
                unit: unit.to_owned(),
                pos: AtomicU64::new(0),
                tenths: AtomicU64::new(0),
            });
        }
        self
    }

    /// Logs a step line if `pos` passed the next tenth.
    fn step_to(&self, pos: u64) {
        let Some(s) = &self.steps else { return };
        let tenths = pos.min(s.len) * 10 / s.len;
        let seen = s.tenths.fetch_max(tenths, Ordering::Relaxed);
        if tenths > seen {
            self.log(&format!("{pos}/{} {} ({} %)", s.len, s.unit, tenths * 10));
        }
    }

    /// Whether the bar is drawn.
    pub(crate) const fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Whether log lines are printed (not `--quiet`).
    pub(crate) const fn logs(&self) -> bool {
        self.lines
    }

    /// Prints a log line: above the bar on a terminal, `[YYYY-MM-DD HH:MM:SS UTC] line`
    /// otherwise; nothing when quiet.
    pub(crate) fn log(&self, line: &str) {
        if !self.lines {
            return;
        }
        let stamped = format!("[{}] {line}", utc(unix_now()));
        match &self.bar {
            Some(b) => b.println(stamped),
            None => eprintln!("{stamped}"),
        }
    }

    pub(crate) fn set_position(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
        if let Some(s) = &self.steps {
            s.pos.store(pos, Ordering::Relaxed);
            self.step_to(pos);
        }
    }

    pub(crate) fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        if let Some(s) = &self.steps {
            let pos = s.pos.fetch_add(n, Ordering::Relaxed) + n;
            self.step_to(pos);
        }
    }

    pub(crate) fn set_message(&self, msg: String) {
        if let Some(b) = &self.bar {
            b.set_message(msg);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
