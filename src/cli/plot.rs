//! SVG charts, drawn with plotters: every chart has a title, axis labels with units and a
//! legend. `compare`'s charts keep their legend under the plot, where it hides no data, and a
//! chart with nothing to draw is not written.

use std::path::Path;

use anyhow::{Context, Result};
use chainsmith::consensus::{BlockWork, Consensus};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::cli::format::{duration, energy, sig3};
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

/// One colour per consensus rule, the same in every chart.
fn rule_colour(c: Consensus) -> RGBColor {
    const PALETTE: [RGBColor; 10] = [
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    PALETTE[Consensus::all().position(|r| r == c).unwrap_or(0) % PALETTE.len()]
}

const GREY: RGBColor = RGBColor(120, 120, 120);

/// Writes every chart that has something to draw into `dir`.
pub(crate) fn draw_all(dir: &Path, phases: &[Phase]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if phases.iter().any(hashes) {
        hashes_per_block(&dir.join("hashes_per_block.svg"), phases)
            .context("drawing hashes_per_block.svg")?;
    }
    if phases.iter().any(|p| energy_per_block_j(p).is_some()) {
        energy_per_block(&dir.join("energy_per_block.svg"), phases)
            .context("drawing energy_per_block.svg")?;
    }
    let hists: Vec<(&Phase, Histogram)> = phases
        .iter()
        .filter_map(|p| histogram(p).map(|h| (p, h)))
        .collect();
    if hists.iter().any(|(_, h)| h.drawn()) {
        intervals(&dir.join("block_intervals.svg"), &hists)
            .context("drawing block_intervals.svg")?;
    }
    if let Some(pos) = phases
        .iter()
        .find(|p| !p.stake_shares.is_empty() && p.produced() > 0)
    {
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

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn legend(chart: &mut Plot<'_>) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    Ok(())
}

/// How a legend row under a chart marks its series.
#[derive(Clone, Copy)]
enum Swatch {
    Line(RGBColor),
    Dashed(RGBColor),
    Dot(RGBColor),
    Band(RGBColor),
    /// A line of text only.
    Note,
}

const LEGEND_ROW: i32 = 22;

/// Pixels a legend of `rows` rows takes under a chart.
fn legend_height(rows: usize) -> u32 {
    rows as u32 * LEGEND_ROW as u32 + 12
}

/// Draws legend rows into `area`, a strip under the plot.
fn legend_below(area: &Area<'_>, rows: &[(Swatch, String)]) -> Result<()> {
    let (x0, x1) = (70, 100);
    for (i, (swatch, text)) in rows.iter().enumerate() {
        let y = 6 + LEGEND_ROW * i as i32 + LEGEND_ROW / 2;
        match *swatch {
            Swatch::Line(c) => {
                area.draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(2)))?;
            }
            Swatch::Dashed(c) => {
                area.draw(&DashedPathElement::new(
                    vec![(x0, y), (x1, y)],
                    6,
                    4,
                    c.stroke_width(2),
                ))?;
            }
            Swatch::Dot(c) => area.draw(&Circle::new(((x0 + x1) / 2, y), 5, c.filled()))?,
            Swatch::Band(c) => {
                area.draw(&Rectangle::new(
                    [(x0, y - 7), (x1, y + 7)],
                    c.mix(0.3).filled(),
                ))?;
            }
            Swatch::Note => {}
        }
        let style =
            TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        let x = if matches!(swatch, Swatch::Note) {
            x0
        } else {
            x1 + 10
        };
        area.draw(&Text::new(text.clone(), (x, y), style))?;
    }
    Ok(())
}

/// `12.0 k` as `12 k`, `1.00 mJ` as `1 mJ`: axis ticks without trailing zeros.
fn trim_zeros(text: &str) -> String {
    let (num, unit) = text.split_once(' ').unwrap_or((text, ""));
    let num = if num.contains('.') {
        num.trim_end_matches('0').trim_end_matches('.')
    } else {
        num
    };
    format!("{num} {unit}").trim_end().to_owned()
}

fn label(p: &Phase) -> String {
    format!("{} ({})", p.consensus.name().to_uppercase(), p.spec.name)
}

fn work(p: &Phase) -> BlockWork {
    p.consensus.rule().info().work
}

fn hashes(p: &Phase) -> bool {
    p.points.iter().any(|b| b.hashes > 0.0)
}

/// Powers of ten around `values` (at least one decade), for a log axis.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, f64::MIN_POSITIVE), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let lo = 10f64.powi(lo.min(hi).log10().floor() as i32);
    let hi = 10f64.powi(hi.log10().ceil() as i32).max(lo * 10.0);
    // A hair wider, so that rounding keeps both ends' ticks on the axis.
    (lo * 0.999, hi * 1.001)
}

fn hashes_per_block(path: &Path, phases: &[Phase]) -> Result<()> {
    // Rules that hash nothing (DPoS, PoA, the ordering rules) have no place on a log scale:
    // the legend names them.
    let shown: Vec<&Phase> = phases.iter().filter(|p| hashes(p)).collect();
    let idle: Vec<String> = phases
        .iter()
        .filter(|p| !hashes(p))
        .map(|p| p.consensus.name().to_uppercase())
        .collect();
    // A measured run's expected work is drawn under its hashes; read from a file, the
    // hashes are the expected work.
    let with_expected = |p: &Phase| p.hashes_source == "measured";
    let mut rows = Vec::new();
    for p in &shown {
        let c = rule_colour(p.consensus);
        let what = match (p.hashes_source, work(p)) {
            ("expected_work", _) => "expected work of each block's target, 2^256/(target+1)",
            ("recorded_attempts", _) => "kernel attempts the staker recorded in each block",
            (_, BlockWork::KernelSearch) => "kernel hashes tried (measured)",
            _ => "hashes tried (measured)",
        };
        rows.push((Swatch::Dot(c), format!("{}: {what}", label(p))));
        if with_expected(p) && p.points.iter().any(|b| b.expected_hashes.is_some()) {
            rows.push((
                Swatch::Dashed(c),
                format!(
                    "{}: expected work of each block's target, 2^256/(target+1)",
                    label(p)
                ),
            ));
        }
    }
    if !idle.is_empty() {
        rows.push((
            Swatch::Note,
            format!("hash nothing, not drawn: {}", idle.join(", ")),
        ));
    }
    let root =
        SVGBackend::new(path, (WIDTH, HEIGHT + legend_height(rows.len()))).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled("Hashes per block", ("sans-serif", 24))?;
    let (top, bottom) = root.split_vertically(HEIGHT - 30);
    let span = shown
        .iter()
        .flat_map(|p| p.points.iter().map(|b| f64::from(b.height)))
        .fold(1.0, f64::max);
    let (lo, hi) = decades(shown.iter().flat_map(|p| {
        p.points
            .iter()
            .flat_map(|b| [Some(b.hashes.max(1.0)), b.expected_hashes])
            .flatten()
    }));
    let mut chart = ChartBuilder::on(&top)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..span + 1.0, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("block height")
        .y_desc("hashes per block (log scale)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| trim_zeros(&sig3(*y)))
        .draw()?;
    for p in &shown {
        let c = rule_colour(p.consensus);
        if with_expected(p) {
            chart.draw_series(DashedLineSeries::new(
                p.points
                    .iter()
                    .filter_map(|b| b.expected_hashes.map(|e| (f64::from(b.height), e))),
                6,
                4,
                c.stroke_width(2),
            ))?;
        }
        let pts: Vec<(f64, f64)> = p
            .points
            .iter()
            .map(|b| (f64::from(b.height), b.hashes.max(1.0)))
            .collect();
        chart.draw_series(LineSeries::new(pts.clone(), c.mix(0.5).stroke_width(1)))?;
        chart.draw_series(pts.into_iter().map(|pt| Circle::new(pt, 4, c.filled())))?;
    }
    legend_below(&bottom, &rows)?;
    root.present()?;
    Ok(())
}

fn energy_per_block_j(p: &Phase) -> Option<f64> {
    p.per_block(p.energy_j).filter(|j| *j > 0.0)
}

fn energy_per_block(path: &Path, phases: &[Phase]) -> Result<()> {
    let bars: Vec<(&Phase, f64)> = phases
        .iter()
        .filter_map(|p| energy_per_block_j(p).map(|j| (p, j)))
        .collect();
    let mut rows: Vec<(Swatch, String)> = Vec::new();
    let mut methods: Vec<&str> = bars.iter().map(|(p, _)| p.method.as_str()).collect();
    methods.sort_unstable();
    methods.dedup();
    for m in &methods {
        let how = match *m {
            "rapl" => "rapl: measured by the CPU package's RAPL energy counters",
            _ => "estimate: process CPU seconds × watts per busy core (no RAPL counters)",
        };
        let rules: Vec<String> = bars
            .iter()
            .filter(|(p, _)| p.method.as_str() == *m)
            .map(|(p, _)| p.consensus.name().to_uppercase())
            .collect();
        let which = if methods.len() == 1 {
            "every rule".to_owned()
        } else {
            rules.join(", ")
        };
        rows.push((Swatch::Note, format!("{which}: {how}")));
    }
    let root =
        SVGBackend::new(path, (WIDTH, HEIGHT + legend_height(rows.len()))).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled("Energy per block", ("sans-serif", 24))?;
    let (top, bottom) = root.split_vertically(HEIGHT - 30);
    // A decade of headroom over the tallest bar for its value.
    let (lo, hi) = decades(
        bars.iter()
            .map(|(_, j)| *j * 10.0)
            .chain(bars.iter().map(|(_, j)| *j)),
    );
    let n = bars.len();
    let names: Vec<String> = bars
        .iter()
        .map(|(p, _)| p.consensus.name().to_uppercase())
        .collect();
    let mut chart = ChartBuilder::on(&top)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| category(&names, *x))
        .y_desc("energy per block (log scale)")
        .y_label_formatter(&|y| trim_zeros(&energy(*y)))
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (p, j))| {
        let x = i as f64;
        Rectangle::new(
            [(x - 0.35, lo), (x + 0.35, *j)],
            rule_colour(p.consensus).mix(0.8).filled(),
        )
    }))?;
    let above =
        TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(
        bars.iter()
            .enumerate()
            .map(|(i, (_, j))| Text::new(energy(*j), (i as f64, *j * 1.15), above.clone())),
    )?;
    legend_below(&bottom, &rows)?;
    root.present()?;
    Ok(())
}

/// The name at category `x` of a bar chart, blank between categories.
fn category(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 0.01 && i >= 0.0 {
        names.get(i as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

/// Intervals are drawn up to this many target spacings; the last bar holds the longer ones.
const SHOWN_SPACINGS: f64 = 4.5;

/// One rule's block intervals in units of its target spacing, as shares of its intervals.
struct Histogram {
    /// Bin width in target spacings; bin `k` is centred on `k × bin`.
    bin: f64,
    /// Share of intervals in each bin, then in the last bar (longer ones).
    shares: Vec<f64>,
    intervals: usize,
    /// PoW: the shares memoryless mining at the target spacing gives, bin by bin.
    expected: Option<Vec<f64>>,
    /// Block times are whole seconds and the spacing is shorter: no histogram can be drawn.
    too_coarse: bool,
}

impl Histogram {
    fn drawn(&self) -> bool {
        !self.too_coarse
    }

    /// Where bin `k`'s bar sits on the x axis (the last bar, of longer intervals, past the
    /// others).
    fn centre(&self, k: usize) -> f64 {
        if k + 1 == self.shares.len() {
            SHOWN_SPACINGS + 0.5
        } else {
            k as f64 * self.bin
        }
    }

    /// The bin of an interval of `dt` target spacings.
    fn bin_of(bin: f64, bins: usize, dt: f64) -> usize {
        ((dt.max(0.0) / bin).round() as usize).min(bins - 1)
    }
}

/// The chance that an interval of an exponential clock with a mean of `mean` seconds,
/// between two block times written down in whole seconds, reads fewer than `x` seconds: the
/// first time falls anywhere in its second, so the read interval is `⌊U + X⌋` with `U`
/// uniform on [0, 1).
fn whole_second_cdf(mean: f64, x: f64) -> f64 {
    let rate = 1.0 / mean;
    if x <= 0.0 {
        0.0
    } else if x < 1.0 {
        x - (1.0 - (-rate * x).exp()) / rate
    } else {
        1.0 - (-rate * x).exp() * (rate.exp() - 1.0) / rate
    }
}

/// The shares of `bins` bins of `bin` spacings (the last: all longer) that memoryless
/// mining at `spacing` seconds gives intervals read in whole seconds.
fn expected_shares(spacing: f64, bin: f64, bins: usize) -> Vec<f64> {
    let mut shares = vec![0.0; bins];
    let mut seconds = 0u64;
    loop {
        let s = seconds as f64;
        let k = Histogram::bin_of(bin, bins, s / spacing);
        if k + 1 == bins {
            shares[k] = 1.0 - whole_second_cdf(spacing, s);
            return shares;
        }
        shares[k] += whole_second_cdf(spacing, s + 1.0) - whole_second_cdf(spacing, s);
        seconds += 1;
    }
}

fn histogram(p: &Phase) -> Option<Histogram> {
    let spacing = p.spec.spacing_s();
    let dts: Vec<f64> = p
        .points
        .windows(2)
        .map(|w| (w[1].time - w[0].time) / spacing)
        .collect();
    if dts.is_empty() || spacing <= 0.0 {
        return None;
    }
    // Most rules write block times in whole seconds (DPoS: its slots, to the millisecond):
    // a bin is no narrower than that.
    let whole_seconds = p.points.iter().all(|b| b.time.fract() == 0.0);
    let resolution = if whole_seconds { 1.0 / spacing } else { 0.0 };
    let bin = resolution.max(0.25);
    let bins = ((SHOWN_SPACINGS / bin - 0.5).floor() as usize) + 2;
    let mut shares = vec![0.0; bins];
    for dt in &dts {
        shares[Histogram::bin_of(bin, bins, *dt)] += 1.0 / dts.len() as f64;
    }
    let expected = (work(p) == BlockWork::NonceSearch && whole_seconds)
        .then(|| expected_shares(spacing, bin, bins));
    Some(Histogram {
        bin,
        shares,
        intervals: dts.len(),
        expected,
        too_coarse: resolution > 1.0,
    })
}

fn intervals(path: &Path, hists: &[(&Phase, Histogram)]) -> Result<()> {
    let drawn: Vec<&(&Phase, Histogram)> = hists.iter().filter(|(_, h)| h.drawn()).collect();
    let coarse: Vec<String> = hists
        .iter()
        .filter(|(_, h)| !h.drawn())
        .map(|(p, _)| {
            format!(
                "{} ({})",
                p.consensus.name().to_uppercase(),
                duration(p.spec.spacing_s())
            )
        })
        .collect();
    let mut rows = vec![(
        Swatch::Note,
        "x: interval ÷ the chain's target spacing (last bar: longer); y: share of its intervals"
            .to_owned(),
    )];
    if hists.iter().any(|(_, h)| h.drawn() && h.expected.is_some()) {
        rows.push((
            Swatch::Line(BLACK),
            "PoW: memoryless mining at the target spacing (exponential intervals, read in whole seconds)"
                .to_owned(),
        ));
    }
    if !coarse.is_empty() {
        rows.push((
            Swatch::Note,
            format!("not drawn: {}, whose block times", coarse.join(", ")),
        ));
        rows.push((
            Swatch::Note,
            "    are whole seconds, coarser than their spacing".to_owned(),
        ));
    }
    let n = drawn.len();
    let cols = match n {
        0..=2 => n.max(1),
        3 | 4 => 2,
        _ => 3,
    };
    let grid_rows = n.div_ceil(cols);
    let panel_h = 250;
    let width = 1000;
    let root = SVGBackend::new(
        path,
        (
            width,
            40 + grid_rows as u32 * panel_h + legend_height(rows.len()),
        ),
    )
    .into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled("Block intervals", ("sans-serif", 24))?;
    let (grid, bottom) = root.split_vertically(grid_rows as u32 * panel_h);
    for (area, (p, h)) in grid.split_evenly((grid_rows, cols)).iter().zip(drawn) {
        interval_panel(area, p, h)?;
    }
    legend_below(&bottom, &rows)?;
    root.present()?;
    Ok(())
}

fn interval_panel(area: &Area<'_>, p: &Phase, h: &Histogram) -> Result<()> {
    let c = rule_colour(p.consensus);
    let top = h
        .shares
        .iter()
        .chain(h.expected.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b))
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{} · spacing {} · {} intervals",
                label(p),
                duration(p.spec.spacing_s()),
                h.intervals
            ),
            ("sans-serif", 15),
        )
        .margin(8)
        .x_label_area_size(25)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..SHOWN_SPACINGS + 1.0, 0.0..top.max(0.05))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(7)
        .x_label_formatter(&|x| {
            if (x - (SHOWN_SPACINGS + 0.5)).abs() < 0.3 {
                "longer".to_owned()
            } else if *x < SHOWN_SPACINGS {
                format!("{x:.0}×")
            } else {
                String::new()
            }
        })
        .max_light_lines(0)
        .y_label_formatter(&|y| format!("{:.0} %", y * 100.0))
        .draw()?;
    let half = 0.4 * h.bin.min(0.5);
    chart.draw_series(h.shares.iter().enumerate().map(|(k, share)| {
        let x = h.centre(k);
        Rectangle::new(
            [((x - half).max(0.0), 0.0), (x + half, *share)],
            c.mix(0.8).filled(),
        )
    }))?;
    if let Some(expected) = &h.expected {
        let last = expected.len() - 1;
        chart.draw_series(LineSeries::new(
            expected[..last]
                .iter()
                .enumerate()
                .map(|(k, e)| (h.centre(k), *e)),
            BLACK.stroke_width(2),
        ))?;
        chart.draw_series(
            expected
                .iter()
                .enumerate()
                .map(|(k, e)| Circle::new((h.centre(k), *e), 3, BLACK.filled())),
        )?;
    }
    Ok(())
}

fn stake_shares(path: &Path, pos: &Phase) -> Result<()> {
    let n = pos.produced() as f64;
    // Each stakeholder's blocks against a fair lottery's: binomial, n blocks at p = its
    // share of the stake.
    let people: Vec<(&str, f64, f64, f64)> = pos
        .stake_shares
        .iter()
        .map(|(name, stake, blocks)| {
            let sigma = (n * stake * (1.0 - stake)).sqrt();
            (name.as_str(), *stake, (blocks * n).round(), sigma)
        })
        .collect();
    let rows = vec![
        (
            Swatch::Dot(rule_colour(pos.consensus)),
            "blocks each stakeholder staked".to_owned(),
        ),
        (
            Swatch::Line(BLACK),
            format!("a fair lottery's mean: {n:.0} blocks × share of stake"),
        ),
        (
            Swatch::Band(GREY),
            "a fair lottery's range: mean ± 2σ, σ = √(n·p·(1−p)), n blocks, p = share of stake"
                .to_owned(),
        ),
        (
            Swatch::Note,
            "(a fair lottery keeps most stakeholders inside it, not always all)".to_owned(),
        ),
    ];
    let top = people
        .iter()
        .flat_map(|(_, s, b, sigma)| [*b, n * s + 2.0 * sigma])
        .fold(1.0, f64::max)
        * 1.1;
    let names: Vec<String> = people
        .iter()
        .map(|(name, stake, _, _)| format!("{name} {:.0} %", stake * 100.0))
        .collect();
    let m = people.len();
    let root =
        SVGBackend::new(path, (WIDTH, HEIGHT + legend_height(rows.len()))).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "Proof of stake: blocks won against share of stake, {}",
            pos.spec.name
        ),
        ("sans-serif", 22),
    )?;
    let (plot, bottom) = root.split_vertically(HEIGHT - 30);
    let mut chart = ChartBuilder::on(&plot)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..m as f64 - 0.5, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(m)
        .x_label_formatter(&|x| category(&names, *x))
        .max_light_lines(1)
        .x_desc("stakeholder and share of genesis stake")
        .y_desc(format!("blocks staked (of {n:.0})"))
        .y_label_formatter(&|y| {
            if (y - y.round()).abs() < 1e-9 {
                format!("{y:.0}")
            } else {
                String::new()
            }
        })
        .draw()?;
    chart.draw_series(people.iter().enumerate().map(|(i, (_, s, _, sigma))| {
        let x = i as f64;
        let mean = n * s;
        Rectangle::new(
            [
                (x - 0.3, (mean - 2.0 * sigma).max(0.0)),
                (x + 0.3, mean + 2.0 * sigma),
            ],
            GREY.mix(0.3).filled(),
        )
    }))?;
    for (i, (_, s, _, _)) in people.iter().enumerate() {
        let x = i as f64;
        chart.draw_series(LineSeries::new(
            [(x - 0.3, n * s), (x + 0.3, n * s)],
            BLACK.stroke_width(2),
        ))?;
    }
    let c = rule_colour(pos.consensus);
    chart.draw_series(
        people
            .iter()
            .enumerate()
            .map(|(i, (_, _, b, _))| Circle::new((i as f64, *b), 6, c.filled())),
    )?;
    legend_below(&bottom, &rows)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memoryless_mining_read_in_whole_seconds() {
        // At a 1 s spacing a block in the same second as the last reads 0 s: P(U + X < 1)
        // = 1/e; one that reads k ≥ 1 seconds has (e − 1)² e^−(k+1).
        let shares = expected_shares(1.0, 1.0, 6);
        let e = std::f64::consts::E;
        assert!((shares[0] - 1.0 / e).abs() < 1e-12, "{shares:?}");
        for (k, share) in shares.iter().enumerate().take(5).skip(1) {
            let exact = (e - 1.0).powi(2) * (-(k as f64) - 1.0).exp();
            assert!((share - exact).abs() < 1e-12, "{k}: {share} vs {exact}");
        }
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn long_spacings_approach_the_exponential() {
        // An hour's spacing: whole seconds hardly matter, bin k holds e^−(k−½)b − e^−(k+½)b.
        let bin = 0.25;
        let shares = expected_shares(3600.0, bin, 19);
        for (k, share) in shares.iter().enumerate().take(18).skip(1) {
            let (a, b) = ((k as f64 - 0.5) * bin, (k as f64 + 0.5) * bin);
            let exact = (-a).exp() - (-b).exp();
            assert!((share - exact).abs() < 1e-3, "{k}: {share} vs {exact}");
        }
        assert!((shares[18] - (-17.5f64 * bin).exp()).abs() < 1e-3);
    }

    #[test]
    fn ticks_drop_trailing_zeros() {
        assert_eq!(trim_zeros(&sig3(1000.0)), "1 k");
        assert_eq!(trim_zeros(&sig3(1.0)), "1");
        assert_eq!(trim_zeros(&energy(0.0125)), "12.5 mJ");
        assert_eq!(trim_zeros(&energy(10.0)), "10 J");
    }
}
