//! Progress bars on stderr: shown only when stderr is a terminal and `--quiet` is not given.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar that may be hidden; every method is a no-op when it is.
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar of `len` steps (`None`: a spinner) labelled `unit`.
    pub(crate) fn new(len: Option<u64>, unit: &str, quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = match len {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template(&format!(
                        "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} \
                         (eta {{eta}})  {{msg}}"
                    ))
                    .expect("valid template"),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} [{{elapsed_precise}}] {{pos}} {unit}  {{msg}}"
                ))
                .expect("valid template"),
            ),
        };
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(Some(bar))
    }

    /// Whether the bar is drawn.
    pub(crate) const fn is_visible(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn set_position(&self, pos: u64) {
        if let Some(b) = &self.0 {
            b.set_position(pos);
        }
    }

    pub(crate) fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    pub(crate) fn set_message(&self, msg: String) {
        if let Some(b) = &self.0 {
            b.set_message(msg);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
