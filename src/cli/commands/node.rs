//! `chainsmith node`: one node of a real cluster.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use chainsmith::node::config::Cluster;
use chainsmith::node::run::{NodeError, NodeOptions};

use crate::cli::args::{LogFormat, NodeArgs};
use crate::cli::{EXIT_INVALID, EXIT_USAGE};

/// Runs the node until SIGTERM or Ctrl-C.
pub(crate) fn run(a: &NodeArgs) -> Result<ExitCode> {
    let cluster = Cluster::load(&a.config)?;
    let id = cluster.index(&a.id)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&a.log_level)
        .with_context(|| format!("--log-level {:?}", a.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    match a.log_format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the signal handler")?;
    let opts = NodeOptions {
        byzantine: a.byzantine.clone(),
        allow_faults: a.allow_faults,
        lifetime: a.lifetime.map(Duration::from_secs_f64),
    };
    match chainsmith::node::run::run(&cluster, id, &opts, stop) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("chainsmith: error: {e}");
            Ok(ExitCode::from(match e {
                NodeError::Usage(_) => EXIT_USAGE,
                NodeError::Invalid(_) => EXIT_INVALID,
            }))
        }
    }
}
