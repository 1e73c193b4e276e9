//! Formatting helpers for human output.

use std::io::IsTerminal;

/// Formats a Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc(secs: u32) -> String {
    jiff::Timestamp::from_second(i64::from(secs)).map_or_else(
        |_| format!("{secs} (Unix time)"),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Formats a length of time as people read it: `850 µs`, `12.4 ms`, `3.20 s`, `4 min 05 s`,
/// `1 h 00 min`, `3 d 04 h`, and years (with an SI prefix past a thousand) beyond a year.
pub(crate) fn duration(secs: f64) -> String {
    const MINUTE: f64 = 60.0;
    const HOUR: f64 = 3_600.0;
    const DAY: f64 = 86_400.0;
    const YEAR: f64 = 365.25 * DAY;
    if !secs.is_finite() {
        return "–".to_owned();
    }
    let s = secs.abs();
    let sign = if secs < 0.0 { "-" } else { "" };
    let whole = |v: f64| v.floor() as u64;
    let text = if s < 60.0 {
        format!("{}s", sig3(s))
    } else if s < HOUR {
        let r = s.round();
        format!("{} min {:02} s", whole(r / MINUTE), whole(r % MINUTE))
    } else if s < DAY {
        let r = (s / MINUTE).round() * MINUTE;
        format!("{} h {:02} min", whole(r / HOUR), whole(r % HOUR / MINUTE))
    } else if s < YEAR {
        let r = (s / HOUR).round() * HOUR;
        format!("{} d {:02} h", whole(r / DAY), whole(r % DAY / HOUR))
    } else {
        format!("{}years", sig3(s / YEAR))
    };
    format!("{sign}{text}")
}

/// Formats an energy in joules: joules with an SI prefix below a kilowatt-hour, watt-hours
/// with a prefix from there (`1.50 kWh`, `20.4 TWh`), three significant digits.
pub(crate) fn energy(joules: f64) -> String {
    const KWH: f64 = 3.6e6;
    if joules.abs() >= KWH {
        format!("{}Wh", sig3(joules / 3_600.0))
    } else {
        format!("{}J", sig3(joules))
    }
}

/// Three significant digits with an SI prefix and a trailing space for the unit:
/// `999 µ`, `1.00 `, `12.3 k`, `20.4 T`; `0 ` for zero.
pub(crate) fn sig3(value: f64) -> String {
    const BIG: [&str; 9] = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"];
    const SMALL: [&str; 5] = ["", "m", "µ", "n", "p"];
    if value == 0.0 || !value.is_finite() {
        return if value == 0.0 {
            "0 ".to_owned()
        } else {
            format!("{value} ")
        };
    }
    let mut v = value;
    let mut prefix = "";
    let mut i = 0;
    while v.abs() >= 999.5 && i + 1 < BIG.len() {
        v /= 1000.0;
        i += 1;
        prefix = BIG[i];
    }
    let mut j = 0;
    while v.abs() < 0.9995 && j + 1 < SMALL.len() {
        v *= 1000.0;
        j += 1;
        prefix = SMALL[j];
    }
    format!("{} {prefix}", three_digits(v))
}

/// A number already scaled to below a thousand, to three significant digits: `999`, `21.3`,
/// `1.50`.
fn three_digits(v: f64) -> String {
    let digits = if v.abs() >= 99.95 {
        0
    } else if v.abs() >= 9.995 {
        1
    } else {
        2
    };
    format!("{v:.digits$}")
}

/// `1 block`, `2 blocks`.
pub(crate) fn plural(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// A count and its noun: `1 hash`, `6 hashes`, `533.3 k hashes` (an SI prefix from a
/// thousand on).
pub(crate) fn count(n: u64, one: &str, many: &str) -> String {
    let noun = if n == 1 { one } else { many };
    format!("{} {noun}", si(n as f64).trim_end())
}

/// Formats a size in bytes with binary prefixes: `812 B`, `12.3 KiB`, `4.50 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    while v >= 1023.5 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{} {}", three_digits(v), UNITS[i])
}

/// Columns a report's lines fit in.
pub(crate) const WIDTH: usize = 80;

/// `text` with every line longer than [`WIDTH`] columns broken at spaces, the continuation
/// lines indented four columns past the line's own indent. Every line ends with a newline.
pub(crate) fn wrap(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let mut rest = line;
        let mut first = true;
        loop {
            let pad = if first { 0 } else { indent + 4 };
            let room = WIDTH - pad;
            let cut = (rest.chars().count() > room)
                .then(|| {
                    let limit = rest.char_indices().nth(room).map_or(rest.len(), |(i, _)| i);
                    rest[..limit].rfind(' ').filter(|&i| i > indent)
                })
                .flatten();
            out.push_str(&" ".repeat(pad));
            match cut {
                Some(i) => {
                    out.push_str(rest[..i].trim_end());
                    out.push('\n');
                    rest = rest[i..].trim_start();
                    first = false;
                }
                None => {
                    out.push_str(rest);
                    out.push('\n');
                    break;
                }
            }
        }
    }
    out
}

/// A table for a report: no borders, a line under the header, columns fitted to the terminal
/// (80 columns when stdout is not one).
pub(crate) fn table() -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(
        comfy_table::TableStyle::new()
            .header_separator(comfy_table::LineStyle::none().fill('-').junction(' ')),
    )
    .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    if !std::io::stdout().is_terminal() {
        t.set_width(80);
    }
    t
}

/// `t` as text: two spaces between columns (one where two would not fit), none at the edges,
/// no trailing spaces.
pub(crate) fn render(t: &mut comfy_table::Table) -> String {
    let widths = t.column_max_content_widths();
    let content: usize = widths.iter().map(|&w| usize::from(w)).sum();
    let gaps = widths.len().saturating_sub(1);
    let gap: u16 = if content + 2 * gaps <= WIDTH { 2 } else { 1 };
    // The style's junction is one space: the padding adds the rest of the gap.
    for (i, c) in t.column_iter_mut().enumerate() {
        c.set_padding((0, if i == gaps { 0 } else { gap - 1 }));
    }
    // comfy-table's own fitting splits columns that would fit as they are.
    if content + usize::from(gap) * gaps <= WIDTH {
        t.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    }
    t.trim_fmt()
}

/// A right-aligned table cell, for numbers.
pub(crate) fn number_cell(text: impl Into<String>) -> comfy_table::Cell {
    comfy_table::Cell::new(text.into()).set_alignment(comfy_table::CellAlignment::Right)
}

/// Formats an amount of coins with four decimals, so a column's points line up; amounts too
/// small for that in scientific notation.
pub(crate) fn coins(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.000_05 {
        return format!("{v:.2e}");
    }
    format!("{v:.4}")
}

/// Formats a share difficulty as miners show it: six decimals below 1000 (trailing zeros
/// dropped), an SI prefix above.
pub(crate) fn difficulty(d: f64) -> String {
    if d >= 1000.0 {
        si(d)
    } else {
        let fixed = format!("{d:.6}");
        let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
        if trimmed == "0" {
            format!("{d:.3e}")
        } else {
            trimmed.to_owned()
        }
    }
}

/// Formats a count with an SI prefix: `362.1 M`.
pub(crate) fn si(value: f64) -> String {
    const PREFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let mut v = value;
    let mut i = 0;
    while v.abs() >= 1000.0 && i + 1 < PREFIXES.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} ")
    } else {
        format!("{v:.1} {}", PREFIXES[i])
    }
}

/// One producer row of a `--json` report: `{name, blocks, missed}` for producers with turns,
/// `{name, blocks, coins, coin_days_consumed, interest}` for stakeholders.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ProducerJson {
    name: String,
    blocks: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    missed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coins: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coin_days_consumed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interest: Option<f64>,
}

/// A rule's producer table for `--json`, flattened into a report: its rows under the name the
/// rule calls its producers (`stakeholders`, `producers`, `signers`, `leaders`); no key for a
/// rule without named producers.
pub(crate) type ProducersJson = std::collections::BTreeMap<&'static str, Vec<ProducerJson>>;

/// The producer table of `report` for `--json`.
pub(crate) fn producers_json(report: &chainsmith::consensus::RuleReport) -> ProducersJson {
    report
        .producers
        .iter()
        .map(|(key, rows)| {
            let rows = rows
                .iter()
                .map(|r| ProducerJson {
                    name: r.name.clone(),
                    blocks: r.blocks,
                    missed: r.missed,
                    coins: r.coins,
                    coin_days_consumed: r.coin_days,
                    interest: r.interest,
                })
                .collect();
            (*key, rows)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_bitcoin_genesis_time() {
        assert_eq!(utc(1_231_006_505), "2009-01-03 18:15:05 UTC");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn formats_durations_people_read() {
        assert_eq!(duration(3_600.0), "1 h 00 min");
        assert_eq!(duration(0.00085), "850 µs");
        assert_eq!(duration(3.2), "3.20 s");
        assert_eq!(duration(245.0), "4 min 05 s");
        assert_eq!(duration(3.0 * 86_400.0 + 4.0 * 3_600.0), "3 d 04 h");
        assert_eq!(duration(2.0e3 * 365.25 * 86_400.0), "2.00 kyears");
    }

    #[test]
    fn formats_energy_with_one_precision() {
        assert_eq!(energy(0.001), "1.00 mJ");
        assert_eq!(energy(9.99e-4), "999 µJ");
        assert_eq!(energy(2.043e10 * 3.6e6), "20.4 TWh");
        assert_eq!(energy(5.4e6), "1.50 kWh");
        assert_eq!(energy(0.0), "0 J");
    }

    #[test]
    fn formats_sizes_in_binary_units() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(12_595), "12.3 KiB");
        assert_eq!(bytes(4_718_592), "4.50 MiB");
    }

    #[test]
    fn wraps_long_lines_at_spaces_with_a_hanging_indent() {
        let long = format!("  key  {}", "word ".repeat(30));
        let wrapped = wrap(&format!("short\n{long}\n"));
        let lines: Vec<&str> = wrapped.lines().collect();
        assert_eq!(lines[0], "short");
        assert!(
            lines.iter().all(|l| l.chars().count() <= WIDTH),
            "{wrapped}"
        );
        assert!(lines[2].starts_with("      word"), "{wrapped}");
        assert_eq!(
            wrapped.split_whitespace().collect::<Vec<_>>(),
            format!("short {long}")
                .split_whitespace()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn formats_si_counts() {
        assert_eq!(si(999.0), "999 ");
        assert_eq!(si(21_300_000.0), "21.3 M");
    }
}
