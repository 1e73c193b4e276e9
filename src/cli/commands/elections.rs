//! `chainsmith elections`: the Raft paper's Figure 16 — time without a leader after a crash,
//! per range of election timeouts — as a table, JSON and a CDF chart.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chainsmith::raft::election::{ElectionOptions, ElectionRun, PAPER_RANGES, trial};
use plotters::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::args::ElectionsArgs;
use crate::cli::progress::Progress;
use crate::cli::thread_pool;

#[derive(Serialize)]
struct Row {
    range_ms: [u64; 2],
    trials: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    mean_ms: f64,
    capped: u64,
}

#[derive(Serialize)]
struct Report {
    experiment: &'static str,
    servers: u32,
    one_way_delay_ms: [f64; 2],
    cap_ms: f64,
    seed: u64,
    ranges: Vec<Row>,
}

pub(crate) fn run(args: &ElectionsArgs) -> Result<ExitCode> {
    let options = ElectionOptions {
        trials: args.trials,
        seed: args.seed,
        ..ElectionOptions::default()
    };
    let pool = thread_pool(args.run.threads)?;
    let trials = args.trials * PAPER_RANGES.len() as u64;
    let bar = Progress::new(Some(trials), "trials", args.run.quiet).log_steps(trials, "trials");
    let runs: Vec<ElectionRun> = PAPER_RANGES
        .iter()
        .map(|range| {
            bar.set_message(format!("{}–{} ms", range.0, range.1));
            let mut downtimes: Vec<f64> = pool
                .install(|| {
                    (0..options.trials)
                        .into_par_iter()
                        .map(|t| {
                            let d = trial(*range, &options, t);
                            bar.inc(1);
                            d
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|v| anyhow::anyhow!("safety violated during the experiment: {v}"))?
                .into_iter()
                .map(|us| us as f64 / 1000.0)
                .collect();
            downtimes.sort_by(f64::total_cmp);
            let cap = options.cap as f64 / 1000.0;
            let capped = downtimes.iter().filter(|d| **d >= cap).count() as u64;
            Ok(ElectionRun {
                range_ms: *range,
                downtimes_ms: downtimes,
                capped,
            })
        })
        .collect::<Result<_>>()?;
    bar.finish();
    let report = Report {
        experiment: "Raft paper Figure 16: time without a leader after the leader crashes",
        servers: 5,
        one_way_delay_ms: [options.delay_ms.0, options.delay_ms.1],
        cap_ms: options.cap as f64 / 1000.0,
        seed: args.seed,
        ranges: runs
            .iter()
            .map(|r| Row {
                range_ms: [r.range_ms.0, r.range_ms.1],
                trials: r.downtimes_ms.len() as u64,
                p50_ms: r.quantile(0.5),
                p90_ms: r.quantile(0.9),
                p99_ms: r.quantile(0.99),
                max_ms: r.quantile(1.0),
                mean_ms: r.mean(),
                capped: r.capped,
            })
            .collect(),
    };
    if let Some(dir) = &args.plot {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("raft_elections.svg");
        cdf(&path, &runs).with_context(|| format!("drawing {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.run.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let heading = format!(
        "time without a leader after the leader crashes: 5 servers, one-way delay {}–{} ms, {} trials per range",
        options.delay_ms.0, options.delay_ms.1, args.trials
    );
    write!(out, "{}", crate::cli::format::wrap(&heading))?;
    writeln!(
        out,
        "{:>14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "timeout (ms)", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms", "capped"
    )?;
    for r in &report.ranges {
        writeln!(
            out,
            "{:>14} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8}",
            format!("{}–{}", r.range_ms[0], r.range_ms[1]),
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.mean_ms,
            r.capped
        )?;
    }
    writeln!(
        out,
        "(capped: trials still without a leader after {:.0} s, counted as {:.0} s)",
        report.cap_ms / 1000.0,
        report.cap_ms / 1000.0
    )?;
    Ok(ExitCode::SUCCESS)
}

fn cdf(path: &Path, runs: &[ElectionRun]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let hi = runs
        .iter()
        .flat_map(|r| r.downtimes_ms.last().copied())
        .fold(1_000.0f64, f64::max);
    let (lo_log, hi_log) = (2.0f64, hi.log10().ceil().max(3.0));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Time without a leader after a crash (Raft paper, Figure 16)",
            ("sans-serif", 24),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(lo_log..hi_log, 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc("time without a leader (ms, log scale)")
        .y_desc("cumulative percent of trials")
        .x_labels((hi_log - lo_log) as usize * 2 + 1)
        .x_label_formatter(&|x| format!("{:.0}", 10f64.powf(*x)))
        .draw()?;
    let colours = [
        RGBColor(214, 39, 40),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(31, 119, 180),
        RGBColor(148, 103, 189),
        RGBColor(60, 60, 60),
    ];
    for (i, r) in runs.iter().enumerate() {
        let c = colours[i % colours.len()];
        let n = r.downtimes_ms.len() as f64;
        let pts: Vec<(f64, f64)> = r
            .downtimes_ms
            .iter()
            .enumerate()
            .map(|(k, d)| (d.max(100.0).log10(), (k + 1) as f64 * 100.0 / n))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(format!("{}–{} ms", r.range_ms.0, r.range_ms.1))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    root.present()?;
    Ok(())
}
