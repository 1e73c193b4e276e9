//! Formatting helpers for human output.

/// Formats a Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc(secs: u32) -> String {
    let days = i64::from(secs / 86_400);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
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

/// A rule's producer rows for `--json`: `[{name, blocks, missed}]` for producers with turns,
/// `[{name, coins, blocks, coin_days_consumed, interest}]` for stakeholders.
pub(crate) fn producers_json(rows: &[chainsmith::consensus::ProducerRow]) -> serde_json::Value {
    rows.iter()
        .map(|r| {
            let mut v = serde_json::json!({"name": r.name, "blocks": r.blocks});
            if let Some(m) = r.missed {
                v["missed"] = m.into();
            }
            if let (Some(coins), Some(days), Some(interest)) = (r.coins, r.coin_days, r.interest) {
                v["coins"] = coins.into();
                v["coin_days_consumed"] = days.into();
                v["interest"] = interest.into();
            }
            v
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
    fn formats_si_counts() {
        assert_eq!(si(999.0), "999 ");
        assert_eq!(si(21_300_000.0), "21.3 M");
    }
}
