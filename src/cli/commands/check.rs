//! `chainsmith check RULE`: many random fault schedules; exit 1 if any breaks safety or does
//! not commit again within the liveness bound once its faults heal. A failing schedule is
//! printed as a scenario file that `sim --scenario` replays.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Result;
use chainsmith::ordering::{bounds, check_schedule, cluster_spec, members, schedule};
use chainsmith::sim::cluster::ScheduleOutcome;
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::args::CheckArgs;
use crate::cli::commands::sim::{ordering_rule, ordering_spec};
use crate::cli::format::{duration, si, sig3, wrap};
use crate::cli::progress::Progress;
use crate::cli::{EXIT_INVALID, thread_pool};

#[derive(Serialize)]
struct Failure {
    schedule: u64,
    problem: String,
    scenario: chainsmith::sim::scenario::Scenario,
}

#[derive(Serialize)]
struct Summary {
    rule: String,
    spec: String,
    nodes: usize,
    seed: u64,
    schedules: u64,
    violations: u64,
    not_live: u64,
    faulty_s: f64,
    liveness_bound_s: f64,
    recovery_p50_s: Option<f64>,
    recovery_max_s: Option<f64>,
    blocks: u64,
    events: u64,
    events_per_s: f64,
    elapsed_s: f64,
    failures: Vec<Failure>,
}

pub(crate) fn run(args: &CheckArgs) -> Result<ExitCode> {
    ordering_rule(args.rule, "check")?;
    let base = ordering_spec(args.rule, args.spec.as_deref())?;
    let spec = cluster_spec(&base, args.nodes.map(usize::from), &Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let names = members(&spec);
    let bounds = bounds(&spec);
    let pool = thread_pool(args.run.threads)?;
    let bar = Progress::new(Some(args.schedules), "schedules", args.run.quiet)
        .log_steps(args.schedules, "schedules");
    let bad = AtomicU64::new(0);
    let start = Instant::now();
    let outcomes: Vec<(u64, ScheduleOutcome)> = pool.install(|| {
        (0..args.schedules)
            .into_par_iter()
            .map(|i| {
                let sc = schedule(&spec, args.seed, i, &bounds);
                let outcome = check_schedule(&spec, &sc, &bounds)
                    .expect("a drawn schedule names only the spec's nodes");
                if outcome.violation.is_some() || outcome.recovery_s.is_none() {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                bar.inc(1);
                bar.set_message(format!("{} failing", bad.load(Ordering::Relaxed)));
                (i, outcome)
            })
            .collect()
    });
    bar.finish();
    let elapsed = start.elapsed().as_secs_f64();
    let mut recoveries: Vec<f64> = outcomes.iter().filter_map(|(_, o)| o.recovery_s).collect();
    recoveries.sort_by(f64::total_cmp);
    let failures: Vec<Failure> = outcomes
        .iter()
        .filter_map(|(i, o)| {
            let problem = match (&o.violation, o.recovery_s) {
                (Some(v), _) => v.clone(),
                (None, None) => format!(
                    "not live: no new block within {} s after the faults healed at {} s",
                    bounds.liveness_s, bounds.faulty_s
                ),
                (None, Some(_)) => return None,
            };
            Some(Failure {
                schedule: *i,
                problem,
                scenario: o.scenario.clone(),
            })
        })
        .collect();
    let events: u64 = outcomes.iter().map(|(_, o)| o.events).sum();
    let summary = Summary {
        rule: spec.consensus.name().to_owned(),
        spec: spec.name.clone(),
        nodes: names.len(),
        seed: args.seed,
        schedules: args.schedules,
        violations: outcomes
            .iter()
            .filter(|(_, o)| o.violation.is_some())
            .count() as u64,
        not_live: outcomes
            .iter()
            .filter(|(_, o)| o.violation.is_none() && o.recovery_s.is_none())
            .count() as u64,
        faulty_s: bounds.faulty_s,
        liveness_bound_s: bounds.liveness_s,
        recovery_p50_s: recoveries.get(recoveries.len() / 2).copied(),
        recovery_max_s: recoveries.last().copied(),
        blocks: outcomes.iter().map(|(_, o)| o.blocks).sum(),
        events,
        events_per_s: events as f64 / elapsed.max(1e-9),
        elapsed_s: elapsed,
        failures,
    };
    let mut out = std::io::stdout().lock();
    if args.run.json {
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else {
        writeln!(
            out,
            "check {}: {} schedules on {} nodes (seed {}): {} safety violations, {} not live",
            summary.rule,
            summary.schedules,
            summary.nodes,
            summary.seed,
            summary.violations,
            summary.not_live
        )?;
        let each = format!(
            "  each: {}, partitions, loss ≤ 20 %, duplication ≤ 10 %, delay 1–30 ms for {} s, then calm",
            if summary.rule == "pbft" {
                "up to f faulty replicas (crashed and restarted, or Byzantine of any behaviour)"
            } else {
                "crashes, restarts"
            },
            bounds.faulty_s
        );
        write!(out, "{}", wrap(&each))?;
        if summary.rule == "zab" {
            write!(
                out,
                "{}",
                wrap(
                    "  links are FIFO, as TCP: lost packets are resent, duplicates dropped; a message that cannot get through (cut, partition, receiver down) breaks the connection"
                )
            )?;
        }
        if let (Some(p50), Some(max)) = (summary.recovery_p50_s, summary.recovery_max_s) {
            let line = format!(
                "  after healing, the next block committed in {} (median), {} (worst); bound {}",
                duration(p50),
                duration(max),
                duration(bounds.liveness_s)
            );
            write!(out, "{}", wrap(&line))?;
        }
        writeln!(
            out,
            "  {} blocks, {} events in {} ({} events/s)",
            summary.blocks,
            si(summary.events as f64).trim_end(),
            duration(elapsed),
            sig3(summary.events_per_s).trim_end()
        )?;
        for f in summary.failures.iter().take(3) {
            writeln!(out, "schedule {} failed: {}", f.schedule, f.problem)?;
            let spec = args
                .spec
                .as_deref()
                .map_or_else(String::new, |s| format!(" --spec {s}"));
            writeln!(
                out,
                "  replay: save this as a file and run `chainsmith sim {}{spec} --scenario FILE`",
                summary.rule
            )?;
            writeln!(out, "{}", serde_json::to_string_pretty(&f.scenario)?)?;
        }
    }
    Ok(if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}
