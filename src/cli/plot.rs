//! SVG charts for `compare`, drawn with plotters: every chart has a title, axis labels with
//! units and a legend.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::cli::phase::Phase;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 540;

fn colour(i: usize) -> RGBColor {
    [
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
    ][i % 4]
}

/// Writes every chart into `dir`.
pub(crate) fn draw_all(dir: &Path, phases: &[Phase]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    hashes_per_block(&dir.join("hashes_per_block.svg"), phases)
        .context("drawing hashes_per_block.svg")?;
    cumulative_energy(&dir.join("cumulative_energy.svg"), phases)
        .context("drawing cumulative_energy.svg")?;
    intervals(&dir.join("block_intervals.svg"), phases).context("drawing block_intervals.svg")?;
    if let Some(pos) = phases.iter().find(|p| !p.stake_shares.is_empty()) {
        stake_shares(&dir.join("pos_stake_shares.svg"), pos)
            .context("drawing pos_stake_shares.svg")?;
    }
    Ok(())
}

type Plot<'a> = ChartContext<
    'a,
    SVGBackend<'a>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn legend(chart: &mut Plot<'_>) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    Ok(())
}

fn label(p: &Phase) -> String {
    format!("{} ({})", p.consensus.name().to_uppercase(), p.spec.name)
}

fn max_height(phases: &[Phase]) -> f64 {
    phases
        .iter()
        .flat_map(|p| p.points.iter().map(|b| f64::from(b.height)))
        .fold(1.0, f64::max)
}

fn hashes_per_block(path: &Path, phases: &[Phase]) -> Result<()> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    // Rules that hash nothing (DPoS, PoA) have no place on a log scale: they are named in the
    // legend, and the height axis spans the chains that hash.
    let hashes = |p: &Phase| p.points.iter().any(|b| b.hashes > 0.0);
    let shown: Vec<&Phase> = phases.iter().filter(|p| hashes(p)).collect();
    let span = if shown.is_empty() {
        max_height(phases)
    } else {
        shown
            .iter()
            .flat_map(|p| p.points.iter().map(|b| f64::from(b.height)))
            .fold(1.0, f64::max)
    };
    let ys = shown
        .iter()
        .flat_map(|p| p.points.iter().map(|b| b.hashes.max(1.0)));
    let (lo, hi) = ys.fold((f64::MAX, 1.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let log_lo = lo.min(hi).log10().floor();
    let log_hi = hi.log10().ceil().max(log_lo + 1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption("Hashes per block (log scale)", ("sans-serif", 26))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..span + 1.0, log_lo..log_hi)?;
    chart
        .configure_mesh()
        .x_desc("block height")
        .y_desc("hashes per block")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_labels((log_hi - log_lo) as usize + 1)
        .y_label_formatter(&|y| format!("1e{y:.0}"))
        .draw()?;
    for (i, p) in phases.iter().enumerate() {
        let c = colour(i);
        if !hashes(p) {
            chart
                .draw_series(LineSeries::new(Vec::new(), c.stroke_width(2)))?
                .label(format!("{}: no hashes (not on the chart)", label(p)))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            continue;
        }
        let pts: Vec<(f64, f64)> = p
            .points
            .iter()
            .map(|b| (f64::from(b.height), b.hashes.max(1.0).log10()))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
            .label(label(p))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|pt| Circle::new(pt, 3, c.filled())))?;
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

fn cumulative_energy(path: &Path, phases: &[Phase]) -> Result<()> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    // Each phase's energy is spread over its blocks in proportion to their hashes, or evenly
    // when they hash nothing (authority chains).
    let series: Vec<(usize, Vec<(f64, f64)>)> = phases
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let total_j = p.energy_j?;
            let hashes: f64 = p.points.iter().map(|b| b.hashes).sum();
            let mut acc = 0.0;
            let pts = p
                .points
                .iter()
                .map(|b| {
                    acc += if hashes > 0.0 {
                        total_j * b.hashes / hashes
                    } else {
                        total_j / p.points.len() as f64
                    };
                    (f64::from(b.height), acc)
                })
                .collect();
            Some((i, pts))
        })
        .collect();
    let top = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(1e-9, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("Cumulative energy by height", ("sans-serif", 26))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..max_height(phases) + 1.0, 0.0..top * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("block height")
        .y_desc("energy (J)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    for (i, pts) in series {
        let c = colour(i);
        let p = &phases[i];
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(format!("{} — {}", label(p), p.method.as_str()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

fn intervals(path: &Path, phases: &[Phase]) -> Result<()> {
    const BIN: f64 = 0.25;
    const BINS: usize = 24;
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    // Intervals in units of each chain's own target spacing, so both fit one axis.
    let hists: Vec<Vec<f64>> = phases
        .iter()
        .map(|p| {
            let spacing = p.spec.spacing_s();
            let mut h = vec![0.0; BINS];
            for w in p.points.windows(2) {
                let dt = w[1].time - w[0].time;
                let bin = ((dt / spacing / BIN).max(0.0) as usize).min(BINS - 1);
                h[bin] += 1.0;
            }
            h
        })
        .collect();
    let top = hists.iter().flatten().fold(1.0, |a: f64, b| a.max(*b));
    let mut chart = ChartBuilder::on(&root)
        .caption("Block intervals", ("sans-serif", 26))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..BIN * BINS as f64, 0.0..top * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("interval ÷ target spacing (last bin: longer)")
        .y_desc("blocks")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let width = BIN / phases.len().max(1) as f64;
    for (i, (p, h)) in phases.iter().zip(&hists).enumerate() {
        let c = colour(i);
        let offset = width * i as f64;
        chart
            .draw_series(h.iter().enumerate().map(|(b, n)| {
                let x0 = b as f64 * BIN + offset;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.9, *n)], c.mix(0.75).filled())
            }))?
            .label(format!("{} (spacing {} s)", label(p), p.spec.spacing_s()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

fn stake_shares(path: &Path, pos: &Phase) -> Result<()> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = pos
        .stake_shares
        .iter()
        .flat_map(|(_, s, b)| [*s, *b])
        .fold(0.05, f64::max)
        * 100.0
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Proof of stake: share of blocks vs share of stake",
            ("sans-serif", 26),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..top, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("share of genesis stake (%)")
        .y_desc("share of blocks staked (%)")
        .draw()?;
    let grey = RGBColor(120, 120, 120);
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (top, top)],
            grey.stroke_width(1),
        ))?
        .label("blocks = stake")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    let c = colour(1);
    chart
        .draw_series(
            pos.stake_shares
                .iter()
                .map(|(_, s, b)| Circle::new((s * 100.0, b * 100.0), 5, c.filled())),
        )?
        .label("stakeholder")
        .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
    chart.draw_series(pos.stake_shares.iter().map(|(name, s, b)| {
        Text::new(
            name.clone(),
            (s * 100.0 + top * 0.01, b * 100.0),
            ("sans-serif", 14),
        )
    }))?;
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

/// One panel of the ordering rules' chart: a value (or two, side by side) per rule.
struct Panel {
    title: &'static str,
    unit: &'static str,
    decimals: usize,
    series: Vec<(&'static str, Vec<Option<f64>>)>,
}

/// Writes `ordering_rules.svg` into `dir`: small multiples of what `sim --all` measured,
/// one bar per rule and figure (a missing figure is marked "–" at the axis). Returns the path.
pub(crate) fn ordering_rules(
    dir: &Path,
    scenario: &str,
    runs: &[chainsmith::ordering::RuleRun],
) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("ordering_rules.svg");
    let rules: Vec<&str> = runs.iter().map(|r| r.report.rule).collect();
    let pick = |f: &dyn Fn(&chainsmith::ordering::RuleRun) -> Option<f64>| {
        runs.iter().map(f).collect::<Vec<_>>()
    };
    let panels = [
        Panel {
            title: "Client latency",
            decimals: 0,
            unit: "ms",
            series: vec![
                ("p50", pick(&|r| r.report.latency_ms.p50)),
                ("p99", pick(&|r| r.report.latency_ms.p99)),
            ],
        },
        Panel {
            title: "Messages per block",
            decimals: 1,
            unit: "messages",
            series: vec![("messages", pick(&|r| Some(r.report.messages_per_block)))],
        },
        Panel {
            title: "After the crash",
            decimals: 3,
            unit: "s",
            series: vec![
                (
                    "without a leader",
                    pick(&|r| r.recovery.map(|c| c.leaderless_s)),
                ),
                (
                    "to the next block",
                    pick(&|r| r.recovery.and_then(|c| c.next_block_s)),
                ),
            ],
        },
        Panel {
            title: "Blocks committed",
            decimals: 0,
            unit: "blocks",
            series: vec![("blocks", pick(&|r| Some(r.report.blocks as f64)))],
        },
    ];
    draw_panels(&path, scenario, &panels, &rules)?;
    Ok(path)
}

fn draw_panels(path: &Path, scenario: &str, panels: &[Panel], rules: &[&str]) -> Result<()> {
    let root = SVGBackend::new(path, (WIDTH + 200, HEIGHT + 260)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("Ordering rules on one scenario: {scenario}"),
        ("sans-serif", 18),
    )?;
    for (area, panel) in root.split_evenly((2, 2)).iter().zip(panels) {
        bars(area, panel, rules).with_context(|| format!("drawing {}", path.display()))?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn bars(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
    rules: &[&str],
) -> Result<()> {
    let top = panel
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let n = rules.len();
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(0)
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                rules
                    .get(i as usize)
                    .map_or_else(String::new, |r| (*r).to_owned())
            } else {
                String::new()
            }
        })
        .y_desc(panel.unit)
        .y_label_formatter(&|y| format!("{y:.0$}", if top < 5.0 { 1 } else { 0 }))
        .draw()?;
    let width = 0.7 / panel.series.len() as f64;
    for (k, (name, values)) in panel.series.iter().enumerate() {
        let c = colour(k);
        let left = |i: usize| i as f64 - 0.35 + k as f64 * width;
        chart
            .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                v.map(|v| Rectangle::new([(left(i), 0.0), (left(i) + width, v)], c.filled()))
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        chart.draw_series(values.iter().enumerate().map(|(i, v)| {
            let text = v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0$}", panel.decimals));
            let y = v.unwrap_or(0.0);
            Text::new(
                text,
                (left(i), y + top * 0.02),
                ("sans-serif", 12).into_font(),
            )
        }))?;
    }
    if panel.series.len() > 1 {
        legend(&mut chart)?;
    }
    Ok(())
}
