//! `chainsmith cluster up|down|kill|start`: a local cluster's node processes.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chainsmith::node::local::{self, UpOptions};

use crate::cli::EXIT_INVALID;
use crate::cli::args::{ClusterArgs, ClusterCommand, UpArgs};

/// Runs one `cluster` subcommand.
pub(crate) fn run(a: &ClusterArgs) -> Result<ExitCode> {
    match &a.command {
        ClusterCommand::Up(up) => self::up(up),
        ClusterCommand::Down { dir } => {
            let cluster = local::load(dir).map_err(anyhow::Error::msg)?;
            let stopped = local::down(&cluster, Duration::from_secs(10));
            if stopped.is_empty() {
                println!("no node of {} was running", dir.display());
            } else {
                println!("stopped {}", stopped.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Kill { name, dir } => {
            let cluster = local::load(dir).map_err(anyhow::Error::msg)?;
            let id = cluster.index(name)?;
            local::kill9(&cluster, id).map_err(anyhow::Error::msg)?;
            println!("killed {name} (SIGKILL)");
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Start { name, dir } => {
            let cluster = local::load(dir).map_err(anyhow::Error::msg)?;
            let id = cluster.index(name)?;
            let exe = std::env::current_exe().context("finding this program")?;
            let pid = local::start(&cluster, id, &exe, None).map_err(anyhow::Error::msg)?;
            println!(
                "started {name} (pid {pid}), logging to {}",
                cluster.node_dir(id).join("node.log").display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn up(a: &UpArgs) -> Result<ExitCode> {
    let params = a
        .param
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                Ok((k.trim().to_owned(), v.trim().to_owned()))
            }
            _ => bail!("--param {p:?}: expected KEY=VALUE (heartbeat_ms=50)"),
        })
        .collect::<Result<Vec<_>>>()?;
    let byzantine = a
        .byzantine
        .iter()
        .map(|b| match b.split_once(':') {
            Some((n, k)) if !n.is_empty() && !k.is_empty() => Ok((n.to_owned(), k.to_owned())),
            _ => bail!("--byzantine {b:?}: expected NAME:MODE (s4:equivocate)"),
        })
        .collect::<Result<Vec<_>>>()?;
    let existing = a.dir.join(local::CONFIG).exists();
    let cluster = if existing {
        let c = local::load(&a.dir).map_err(anyhow::Error::msg)?;
        if let Some(rule) = &a.rule
            && *rule != c.rule
        {
            bail!(
                "{} already holds a {} cluster (not {rule}); use another --dir",
                a.dir.display(),
                c.rule
            );
        }
        if let Some(n) = a.nodes
            && n != c.members.len()
        {
            bail!(
                "{} already holds a cluster of {} nodes (not {n}); use another --dir",
                a.dir.display(),
                c.members.len()
            );
        }
        if !params.is_empty() || a.spec.is_some() || a.base_port.is_some() {
            bail!(
                "{} already holds a cluster: its file fixes the spec, params and ports; use another --dir",
                a.dir.display()
            );
        }
        c
    } else {
        local::write_config(&UpOptions {
            rule: a.rule.clone().unwrap_or_else(|| "raft".into()),
            nodes: a.nodes.unwrap_or(3),
            dir: a.dir.clone(),
            base_port: a.base_port,
            spec: a.spec.clone(),
            params,
        })
        .map_err(anyhow::Error::msg)?
    };
    for (name, _) in &byzantine {
        cluster.index(name)?;
    }
    let exe = std::env::current_exe().context("finding this program")?;
    let mut started = Vec::new();
    for (id, m) in cluster.members.iter().enumerate() {
        if local::running(&cluster, id).is_some() {
            continue;
        }
        let mode = byzantine
            .iter()
            .find(|(n, _)| *n == m.name)
            .map(|(_, k)| k.as_str());
        let pid = local::start(&cluster, id, &exe, mode).map_err(anyhow::Error::msg)?;
        started.push(format!(
            "{} {} (pid {pid}{})",
            m.name,
            m.address,
            mode.map_or(String::new(), |k| format!(", {k}"))
        ));
    }
    println!(
        "{} cluster in {}: started {}",
        cluster.rule,
        a.dir.display(),
        if started.is_empty() {
            "nothing (every node runs)".to_owned()
        } else {
            started.join(", ")
        }
    );
    let rt = chainsmith::node::client::runtime().map_err(anyhow::Error::msg)?;
    match rt.block_on(local::wait_for_leader(
        &cluster,
        Duration::from_secs_f64(a.wait),
    )) {
        Ok(leader) => {
            println!("leader: {leader}");
            println!(
                "next: chainsmith client --config {} status",
                cluster.path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("chainsmith: error: {e}");
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}
