//! Numbers for people: thousands separators, three significant digits,
//! byte sizes and shares.

pub use modeltool_format::text::thousands;

/// Writes `n` to three significant digits with a K, M, B or T suffix:
/// `22.7M`, `6.74B`, `175B`; below 1000 the exact number (`2`).
pub fn short(n: u64) -> String {
    scaled(n, 1000, &["", "K", "M", "B", "T", "Q"])
}

/// Writes a byte count to three significant digits in decimal units:
/// `512 B`, `90.9 MB`, `13.5 GB`.
pub fn bytes(n: u64) -> String {
    scaled(n, 1000, &[" B", " KB", " MB", " GB", " TB", " PB", " EB"])
}

/// Writes a fraction (0.5 = half) as a percentage: one decimal from 1%
/// upward, two significant digits below, `0%` for exactly nothing.
pub fn percent(share: f64) -> String {
    if !share.is_finite() || share <= 0.0 {
        return "0%".to_owned();
    }
    let p = share * 100.0;
    if p >= 1.0 {
        format!("{p:.1}%")
    } else {
        // Two significant digits: 0.25%, 0.0083%.
        let decimals = (1 - p.log10().floor() as i32).clamp(1, 12) as usize;
        format!("{p:.decimals$}%")
    }
}

/// Writes a fraction as a percentage with one decimal, `<0.1%` below that:
/// for columns where tiny shares are noise.
pub fn percent_coarse(share: f64) -> String {
    if !share.is_finite() || share <= 0.0 {
        "0%".to_owned()
    } else if share < 0.000_95 {
        "<0.1%".to_owned()
    } else {
        format!("{:.1}%", share * 100.0)
    }
}

/// Rounds `n` to three significant digits and writes it with the largest
/// unit that keeps the mantissa at 1 or more, trailing zeros dropped.
fn scaled(n: u64, base: u64, units: &[&str]) -> String {
    let digits = n.checked_ilog10().map_or(1, |d| d + 1);
    let rounded: u128 = if digits > 3 {
        let p = 10u128.pow(digits - 3);
        let (q, r) = (u128::from(n) / p, u128::from(n) % p);
        (q + u128::from(2 * r >= p)) * p
    } else {
        u128::from(n)
    };
    let mut unit = 0;
    let mut scale: u128 = 1;
    while unit + 1 < units.len() && rounded >= scale * u128::from(base) {
        scale *= u128::from(base);
        unit += 1;
    }
    if unit == 0 {
        return format!("{rounded}{}", units[0]);
    }
    let whole = rounded / scale;
    let frac = rounded % scale;
    let mut text = whole.to_string();
    // At most three significant digits are left, so at most two decimals.
    let decimals = 3usize.saturating_sub(text.len());
    if decimals > 0 && frac > 0 {
        let digits = frac * 10u128.pow(decimals as u32) / scale;
        let mut d = format!("{digits:0decimals$}");
        while d.ends_with('0') {
            d.pop();
        }
        if !d.is_empty() {
            text.push('.');
            text.push_str(&d);
        }
    }
    format!("{text}{}", units[unit])
}

/// Writes a ratio with three significant digits: `4.00`, `11.7`, `0.500`.
pub fn ratio(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    let decimals = (2 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
    format!("{x:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers_have_three_significant_digits() {
        assert_eq!(short(2), "2");
        assert_eq!(short(999), "999");
        assert_eq!(short(1000), "1K");
        assert_eq!(short(1234), "1.23K");
        assert_eq!(short(22_713_728), "22.7M");
        assert_eq!(short(6_738_415_616), "6.74B");
        assert_eq!(short(175_000_000_000), "175B");
        assert_eq!(short(1_774_464), "1.77M");
        assert_eq!(short(10_646_784), "10.6M");
        assert_eq!(short(999_999), "1M");
        assert_eq!(short(999_499), "999K");
        assert_eq!(short(1_050_624), "1.05M");
        assert_eq!(short(1_005_000), "1.01M");
        assert_eq!(short(u64::MAX), "18400Q");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(22_713_728), "22,713,728");
        assert_eq!(thousands(175_000_000_000), "175,000,000,000");
    }

    #[test]
    fn bytes_and_shares() {
        assert_eq!(bytes(8), "8 B");
        assert_eq!(bytes(90_852_864), "90.9 MB");
        assert_eq!(bytes(13_476_831_232), "13.5 GB");
        assert_eq!(percent(0.5), "50.0%");
        assert_eq!(percent(0.000083), "0.0083%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent_coarse(0.000083), "<0.1%");
        assert_eq!(percent_coarse(0.0087), "0.9%");
        assert_eq!(percent_coarse(0.0), "0%");
        assert_eq!(ratio(4.0), "4.00");
        assert_eq!(ratio(11.66), "11.7");
        assert_eq!(ratio(0.5), "0.500");
    }
}
