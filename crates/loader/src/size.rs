//! Byte counts as people write them: `5GB`, `1.5GB`, `500MiB`, `4096`.

use std::fmt;

/// Why a text is not a byte count ([`parse_size`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// No digits where the number should be, or more than one `.`.
    #[error("`{0}` is not a size such as 5GB, 1.5GB, 500MB, 2GiB or 4096 (bytes)")]
    NotANumber(String),
    /// A unit other than B, KB, MB, GB, TB, KiB, MiB, GiB or TiB.
    #[error("`{text}`: unknown unit `{unit}` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// A value that is not a whole number of bytes, such as `1.9` or `1.0000000001KB`.
    #[error("`{0}` is not a whole number of bytes")]
    FractionOfAByte(String),
    /// More bytes than 18446744073709551615 (the largest u64).
    #[error("`{0}` is more than 18446744073709551615 bytes")]
    TooLarge(String),
    /// Zero: a size of nothing.
    #[error("`{0}` is zero bytes; a size is at least 1 byte")]
    Zero(String),
}

/// A unit's factor, by name (case-insensitive).
fn factor(unit: &str) -> Option<u128> {
    Some(match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        "TIB" => 1 << 40,
        _ => return None,
    })
}

/// Parses a byte count: a decimal number (digits, at most one `.`) and an
/// optional unit, case-insensitive. Decimal units (KB, MB, GB, TB) are
/// powers of 1000, as Hugging Face uses; KiB, MiB, GiB and TiB powers of
/// 1024. The arithmetic is exact: every u64 is accepted, a value with a
/// fraction is accepted when it comes to whole bytes (`1.5GB`), and
/// anything that would be a fraction of a byte is refused, never rounded.
///
/// ```
/// use modeltool_loader::size::{SizeError, parse_size};
/// assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
/// assert_eq!(parse_size("2GiB"), Ok(2 << 30));
/// assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
/// assert!(matches!(parse_size("1.9"), Err(SizeError::FractionOfAByte(_))));
/// assert!(matches!(parse_size("18446744073709551616"), Err(SizeError::TooLarge(_))));
/// ```
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let s = text.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(SizeError::NotANumber(text.to_owned()));
    }
    let factor = factor(unit.trim()).ok_or_else(|| SizeError::UnknownUnit {
        text: text.to_owned(),
        unit: unit.trim().to_owned(),
    })?;
    let (whole, fraction) = num.split_once('.').unwrap_or((num, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(SizeError::NotANumber(text.to_owned()));
    }
    let too_large = || SizeError::TooLarge(text.to_owned());
    // Whole part: exact, in u128 (a u64 times a factor below 2^41 fits).
    let whole = whole.trim_start_matches('0');
    if whole.len() > 20 {
        return Err(too_large());
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    // Fraction: digits / 10^n, times the factor, must be whole.
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 13 {
        // 10^13 does not divide any factor (at most 2^40 or 10^12).
        return Err(SizeError::FractionOfAByte(text.to_owned()));
    }
    let scale = 10u128.pow(fraction.len() as u32);
    let digits: u128 = if fraction.is_empty() {
        0
    } else {
        fraction
            .parse()
            .map_err(|_| SizeError::NotANumber(text.to_owned()))?
    };
    let part = digits * factor;
    if part % scale != 0 {
        return Err(SizeError::FractionOfAByte(text.to_owned()));
    }
    let bytes = whole
        .checked_mul(factor)
        .and_then(|b| b.checked_add(part / scale))
        .ok_or_else(too_large)?;
    let bytes = u64::try_from(bytes).map_err(|_| too_large())?;
    if bytes == 0 {
        return Err(SizeError::Zero(text.to_owned()));
    }
    Ok(bytes)
}

/// A byte count written the way [`parse_size`] reads it back, in the
/// largest decimal unit that keeps it whole (`1.5GB` is `1500MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in [
            ("TB", 1_000_000_000_000u64),
            ("GB", 1_000_000_000),
            ("MB", 1_000_000),
            ("KB", 1_000),
        ] {
            if self.0 >= factor && self.0 % factor == 0 {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_u64_is_a_size() {
        for n in [1, 2, 999, 1 << 40, u64::MAX - 1, u64::MAX] {
            assert_eq!(parse_size(&n.to_string()), Ok(n));
            assert_eq!(parse_size(&format!("{n}B")), Ok(n));
            assert_eq!(parse_size(&Size(n).to_string()), Ok(n));
        }
        assert_eq!(parse_size("018446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn decimals_with_a_unit_are_exact() {
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("1.5gb"), Ok(1_500_000_000));
        assert_eq!(parse_size("0.5KiB"), Ok(512));
        assert_eq!(parse_size(".5KB"), Ok(500));
        assert_eq!(parse_size("2."), Ok(2));
        assert_eq!(parse_size("1.000000000001TB"), Ok(1_000_000_000_001));
        assert_eq!(parse_size("18446744073.709551615GB"), Ok(u64::MAX));
        assert_eq!(parse_size(" 5 GB "), Ok(5_000_000_000));
    }

    #[test]
    fn a_fraction_of_a_byte_is_refused_not_rounded() {
        for text in ["1.9", "0.5", "1.0001KB", "0.3KiB", "1.00000000000001TB"] {
            assert_eq!(
                parse_size(text),
                Err(SizeError::FractionOfAByte(text.into())),
                "{text}"
            );
        }
    }

    #[test]
    fn nonsense_is_refused_with_its_reason() {
        assert!(matches!(
            parse_size("18446744073709551616"),
            Err(SizeError::TooLarge(_))
        ));
        assert!(matches!(
            parse_size("99999999999TB"),
            Err(SizeError::TooLarge(_))
        ));
        assert!(matches!(
            parse_size("123456789012345678901234567890"),
            Err(SizeError::TooLarge(_))
        ));
        assert!(matches!(parse_size("0"), Err(SizeError::Zero(_))));
        assert!(matches!(parse_size("0.0MB"), Err(SizeError::Zero(_))));
        assert!(matches!(parse_size(""), Err(SizeError::NotANumber(_))));
        assert!(matches!(parse_size("GB"), Err(SizeError::NotANumber(_))));
        assert!(matches!(parse_size("."), Err(SizeError::NotANumber(_))));
        assert!(matches!(parse_size("1.2.3"), Err(SizeError::NotANumber(_))));
        assert!(matches!(parse_size("lots"), Err(SizeError::NotANumber(_))));
        assert!(matches!(parse_size("-5"), Err(SizeError::NotANumber(_))));
        assert!(matches!(
            parse_size("5XB"),
            Err(SizeError::UnknownUnit { .. })
        ));
    }
}
