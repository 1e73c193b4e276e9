//! `chainsmith client`: submit, status, watch and fault against a running cluster.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use chainsmith::node::client::{self, SubmitOptions};
use chainsmith::node::config::Cluster;
use chainsmith::node::wire::FaultCmd;

use crate::cli::EXIT_INVALID;
use crate::cli::args::{ClientArgs, ClientCommand, FaultCommand, SubmitArgs};

/// Runs one `client` subcommand.
/// A node `client status --json` could not reach.
#[derive(serde::Serialize)]
struct Unreachable<'a> {
    name: &'a str,
    error: &'a str,
}

pub(crate) fn run(a: &ClientArgs) -> Result<ExitCode> {
    let cluster = Cluster::load(&a.config)?;
    let rt = client::runtime().map_err(anyhow::Error::msg)?;
    match &a.command {
        ClientCommand::Submit(s) => submit(&cluster, &rt, s),
        ClientCommand::Status { node, json } => status(&cluster, &rt, node.as_deref(), *json),
        ClientCommand::Watch {
            node,
            from,
            count,
            json,
        } => watch(&cluster, &rt, node.as_deref(), *from, *count, *json),
        ClientCommand::Fault(f) => fault(&cluster, &rt, f),
    }
}

fn submit(cluster: &Cluster, rt: &tokio::runtime::Runtime, s: &SubmitArgs) -> Result<ExitCode> {
    let node = s.node.as_deref().map(|n| cluster.index(n)).transpose()?;
    if s.retry < 0.01 {
        bail!(
            "--retry {}s: at least 10ms (each retry resends every waiting transaction)",
            s.retry
        );
    }
    let opts = SubmitOptions {
        count: s.count,
        node,
        concurrency: usize::try_from(s.concurrency).unwrap_or(usize::MAX),
        timeout: Duration::from_secs_f64(s.timeout),
        retry: Duration::from_secs_f64(s.retry),
        client: s.client.unwrap_or_else(client::client_id),
    };
    let report = rt
        .block_on(client::submit(cluster, &opts))
        .map_err(anyhow::Error::msg)?;
    if s.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "committed {}/{} in {:.2} s ({:.1}/s){}{}",
            report.committed,
            s.count,
            report.seconds,
            report.per_s,
            report.latency_ms.map_or(String::new(), |l| format!(
                "; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.p50, l.p99, l.max
            )),
            report
                .heights
                .map_or(String::new(), |(lo, hi)| format!("; blocks {lo}..={hi}"))
        );
        if report.resent > 0 {
            println!("resent {} (a node went away or was slow)", report.resent);
        }
        for u in &report.unreachable {
            println!("unreachable: {u}");
        }
    }
    if report.committed < s.count {
        eprintln!(
            "chainsmith: {} of {} transactions not committed within {:.1} s",
            s.count - report.committed,
            s.count,
            s.timeout
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    Ok(ExitCode::SUCCESS)
}

fn status(
    cluster: &Cluster,
    rt: &tokio::runtime::Runtime,
    node: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let only = node.map(|n| cluster.index(n)).transpose()?;
    let all = rt.block_on(client::status_all(cluster));
    let rows: Vec<_> = all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| only.is_none_or(|o| o == *i))
        .collect();
    let answered = rows.iter().filter(|(_, r)| r.is_ok()).count();
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(i, r)| match r {
                Ok(s) => serde_json::to_value(s).unwrap_or_default(),
                Err(e) => serde_json::to_value(Unreachable {
                    name: &cluster.members[*i].name,
                    error: e,
                })
                .unwrap_or_default(),
            })
            .collect();
        println!("{}", serde_json::to_string(&v)?);
    } else {
        let mut table =
            vec![["NODE", "ROLE", "TERM", "LEADER", "HEIGHT", "TIP", "LINKS"].map(String::from)];
        for (i, r) in &rows {
            table.push(match r {
                Ok(s) => {
                    let up = s.peers.iter().filter(|p| p.outbound && p.inbound).count();
                    let mut links = format!("{up}/{} up", s.peers.len());
                    if !s.faults.is_empty() {
                        links.push_str(&format!("; faults: {}", s.faults.join("; ")));
                    }
                    [
                        s.name.clone(),
                        s.role.clone(),
                        format!("{} {}", s.term_name, s.term),
                        s.leader.clone().unwrap_or_else(|| "-".into()),
                        s.height.to_string(),
                        s.tip.to_string()[..16].to_owned(),
                        links,
                    ]
                }
                Err(e) => [
                    cluster.members[*i].name.clone(),
                    format!("unreachable: {e}"),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
            });
        }
        let mut out = crate::cli::format::table();
        let mut rows = table.into_iter();
        if let Some(header) = rows.next() {
            out.set_header(header);
        }
        for row in rows {
            out.add_row(row);
        }
        println!("{}", crate::cli::format::render(&mut out));
    }
    Ok(if answered == 0 {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    })
}

fn watch(
    cluster: &Cluster,
    rt: &tokio::runtime::Runtime,
    node: Option<&str>,
    from: Option<u32>,
    count: Option<u64>,
    json: bool,
) -> Result<ExitCode> {
    let candidates: Vec<usize> = match node {
        Some(n) => vec![cluster.index(n)?],
        None => (0..cluster.members.len()).collect(),
    };
    let statuses = rt.block_on(client::status_all(cluster));
    let Some((id, height)) = candidates
        .iter()
        .find_map(|i| statuses[*i].as_ref().ok().map(|s| (*i, s.height)))
    else {
        bail!("no node answered");
    };
    let from = from.unwrap_or(height + 1);
    let mut seen = 0u64;
    let result = rt.block_on(client::watch(cluster, id, from, |b| {
        if json {
            println!("{}", serde_json::to_string(b).unwrap_or_default());
        } else {
            println!(
                "height {:>6}  {}  {} txs, {} requests",
                b.height, b.hash, b.txs, b.requests
            );
        }
        seen += 1;
        count.is_none_or(|c| seen < c)
    }));
    result.map_err(anyhow::Error::msg)?;
    Ok(ExitCode::SUCCESS)
}

fn fault(cluster: &Cluster, rt: &tokio::runtime::Runtime, f: &FaultCommand) -> Result<ExitCode> {
    let all: Vec<usize> = (0..cluster.members.len()).collect();
    let pick = |names: &[String]| -> Result<Vec<usize>> {
        if names.is_empty() {
            return Ok(all.clone());
        }
        names.iter().map(|n| Ok(cluster.index(n)?)).collect()
    };
    let orders: Vec<(usize, FaultCmd)> = match f {
        FaultCommand::Partition { groups } => {
            let groups: Vec<Vec<usize>> = groups
                .iter()
                .map(|g| {
                    g.split(',')
                        .map(|n| Ok(cluster.index(n.trim())?))
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<_>>()?;
            let mut seen = std::collections::HashSet::new();
            for i in groups.iter().flatten() {
                if !seen.insert(*i) {
                    bail!(
                        "{} is named twice in the partition",
                        cluster.members[*i].name
                    );
                }
            }
            let mut orders = Vec::new();
            for (gi, g) in groups.iter().enumerate() {
                let others: Vec<String> = groups
                    .iter()
                    .enumerate()
                    .filter(|(gj, _)| *gj != gi)
                    .flat_map(|(_, o)| o.iter().map(|i| cluster.members[*i].name.clone()))
                    .collect();
                for i in g {
                    orders.push((*i, FaultCmd::Cut(others.clone())));
                }
            }
            orders
        }
        FaultCommand::Drop { probability, node } => {
            if !(0.0..=1.0).contains(probability) {
                bail!("drop {probability}: a probability is in [0, 1]");
            }
            pick(node)?
                .into_iter()
                .map(|i| {
                    (
                        i,
                        FaultCmd::Drop {
                            peers: Vec::new(),
                            probability: *probability,
                        },
                    )
                })
                .collect()
        }
        FaultCommand::Delay { ms, .. } if *ms > 60_000 => {
            bail!("delay {ms}: at most 60000 ms")
        }
        FaultCommand::Delay { ms, node } => pick(node)?
            .into_iter()
            .map(|i| {
                (
                    i,
                    FaultCmd::Delay {
                        peers: Vec::new(),
                        ms: *ms,
                    },
                )
            })
            .collect(),
        FaultCommand::Heal => all.iter().map(|i| (*i, FaultCmd::Heal)).collect(),
    };
    let results = rt.block_on(client::fault(cluster, orders));
    let mut failed = 0;
    for (name, r) in results {
        match r {
            Ok(now) if now.is_empty() => println!("{name}: no faults"),
            Ok(now) => println!("{name}: {}", now.join("; ")),
            Err(e) => {
                failed += 1;
                println!("{name}: not applied: {e}");
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    })
}
