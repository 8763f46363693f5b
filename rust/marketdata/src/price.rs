//! Fixed-point prices: an integer mantissa and a decimal scale, so that
//! prices read from text never drift through binary floating point.

use std::fmt;

use thiserror::Error;

/// The most decimal places a price may carry.
pub const MAX_SCALE: u8 = 12;

/// Why a text is not a price at a given scale.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PriceError {
    /// The text is empty.
    #[error("empty price")]
    Empty,
    /// The text holds something other than an optional sign, digits and one dot.
    #[error("not a decimal number: {0:?}")]
    NotANumber(String),
    /// The text has more decimal places than the scale allows.
    #[error("{text:?} has more than {scale} decimal places")]
    TooPrecise {
        /// The text.
        text: String,
        /// The scale asked for.
        scale: u8,
    },
    /// The value does not fit in 64 bits at the scale.
    #[error("{0:?} is out of range")]
    OutOfRange(String),
    /// The scale is above [`MAX_SCALE`].
    #[error("scale {0} is above the maximum of {MAX_SCALE}")]
    BadScale(u8),
}

/// Why bytes are not a decimal at a scale (the allocation-free twin of [`PriceError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MantissaError {
    /// No bytes.
    Empty,
    /// Something other than an optional sign, digits and one dot.
    NotANumber,
    /// More decimal places than the scale.
    TooPrecise,
    /// Outside i64 at the scale.
    OutOfRange,
    /// The scale is above [`MAX_SCALE`].
    BadScale,
}

impl MantissaError {
    /// Returns the reason's stable name, as used in counters.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::NotANumber => "not_a_number",
            Self::TooPrecise => "too_precise",
            Self::OutOfRange => "out_of_range",
            Self::BadScale => "bad_scale",
        }
    }
}

/// Parses ASCII decimal bytes such as `b"1.08345"` into a mantissa at `scale`
/// places, in one pass and without allocating (the hot path of file readers).
/// Trailing zeros beyond the scale are accepted ("1.10" at scale 1).
///
/// # Errors
/// Returns the [`MantissaError`] that says why the bytes are not a decimal.
pub fn parse_mantissa(bytes: &[u8], scale: u8) -> Result<i64, MantissaError> {
    if scale > MAX_SCALE {
        return Err(MantissaError::BadScale);
    }
    if let Some(value) = parse_short(bytes, scale) {
        return Ok(value);
    }
    parse_checked(bytes, scale)
}

/// The fast path for the common case: unsigned, at most 18 bytes (so at
/// most 18 digits: no overflow whatever the scale, as 10^18 * 10^12 would
/// need more digits than that), one optional dot, no more decimals than
/// `scale`. Returns None for anything else, which the checked path decides.
fn parse_short(bytes: &[u8], scale: u8) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 18 {
        return None;
    }
    let mut mantissa: i64 = 0;
    let mut decimals: Option<u8> = None;
    let mut digits = 0u8;
    for &b in bytes {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + i64::from(b - b'0');
                digits += 1;
                if let Some(d) = decimals.as_mut() {
                    *d += 1;
                }
            }
            b'.' if decimals.is_none() => decimals = Some(0),
            _ => return None,
        }
    }
    let decimals = decimals.unwrap_or(0);
    if digits == 0 || decimals > scale {
        return None; // the checked path explains (and allows trailing zeros)
    }
    mantissa.checked_mul(10i64.pow(u32::from(scale - decimals)))
}

/// The general path: signs, trailing zeros past the scale, overflow checks.
fn parse_checked(bytes: &[u8], scale: u8) -> Result<i64, MantissaError> {
    let (negative, digits) = match bytes.first() {
        None => return Err(MantissaError::Empty),
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        Some(_) => (false, bytes),
    };
    let mut mantissa: i64 = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    let mut decimals: u8 = 0;
    let mut pending_zeros: u8 = 0;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                seen_digit = true;
                if seen_dot {
                    if b == b'0' {
                        // Defer zeros: trailing ones past the scale are harmless.
                        pending_zeros = pending_zeros.saturating_add(1);
                        continue;
                    }
                    decimals = decimals.saturating_add(pending_zeros).saturating_add(1);
                    if decimals > scale {
                        return Err(MantissaError::TooPrecise);
                    }
                    for _ in 0..pending_zeros {
                        mantissa = mantissa.checked_mul(10).ok_or(MantissaError::OutOfRange)?;
                    }
                    pending_zeros = 0;
                }
                mantissa = mantissa
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(i64::from(b - b'0')))
                    .ok_or(MantissaError::OutOfRange)?;
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return Err(MantissaError::NotANumber),
        }
    }
    if !seen_digit {
        return Err(MantissaError::NotANumber);
    }
    mantissa = mantissa
        .checked_mul(10i64.pow(u32::from(scale - decimals)))
        .ok_or(MantissaError::OutOfRange)?;
    Ok(if negative { -mantissa } else { mantissa })
}

/// A price as `mantissa * 10^-scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Price {
    /// The unscaled value.
    pub mantissa: i64,
    /// Decimal places.
    pub scale: u8,
}

impl Price {
    /// Parses a decimal text such as "1.08345" at `scale` decimal places
    /// ("1.1" at scale 5 is mantissa 110000).
    ///
    /// # Errors
    /// Returns a [`PriceError`] for empty or non-numeric text, more decimal
    /// places than `scale`, a value outside i64, or a scale above [`MAX_SCALE`].
    pub fn parse(text: &str, scale: u8) -> Result<Self, PriceError> {
        let trimmed = text.trim();
        parse_mantissa(trimmed.as_bytes(), scale)
            .map(|mantissa| Self { mantissa, scale })
            .map_err(|kind| match kind {
                MantissaError::Empty => PriceError::Empty,
                MantissaError::NotANumber => PriceError::NotANumber(trimmed.to_owned()),
                MantissaError::TooPrecise => PriceError::TooPrecise {
                    text: trimmed.to_owned(),
                    scale,
                },
                MantissaError::OutOfRange => PriceError::OutOfRange(trimmed.to_owned()),
                MantissaError::BadScale => PriceError::BadScale(scale),
            })
    }

    /// Returns the price as a float (for statistics, never for accounting).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64(self) -> f64 {
        self.mantissa as f64 / 10f64.powi(i32::from(self.scale))
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = 10u64.pow(u32::from(self.scale));
        let abs = self.mantissa.unsigned_abs();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        if self.scale == 0 {
            write!(f, "{sign}{abs}")
        } else {
            write!(
                f,
                "{sign}{}.{:0width$}",
                abs / unit,
                abs % unit,
                width = usize::from(self.scale)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(Price::parse("1.08345", 5).map(|p| p.mantissa), Ok(108_345));
        assert_eq!(Price::parse("1.1", 5).map(|p| p.mantissa), Ok(110_000));
        assert_eq!(Price::parse("101.250", 2).map(|p| p.mantissa), Ok(10_125));
        assert_eq!(Price::parse("-0.5", 1).map(|p| p.mantissa), Ok(-5));
        assert_eq!(Price::parse("7", 0).map(|p| p.mantissa), Ok(7));
        assert_eq!(Price::parse(".25", 2).map(|p| p.mantissa), Ok(25));
    }

    #[test]
    fn no_float_drift() {
        // 0.1 + 0.2 != 0.3 in binary floating point; in fixed point it is exact.
        let a = Price::parse("0.1", 5).map(|p| p.mantissa);
        let b = Price::parse("0.2", 5).map(|p| p.mantissa);
        let c = Price::parse("0.3", 5).map(|p| p.mantissa);
        assert_eq!(a.and_then(|a| b.map(|b| a + b)), c);
    }

    #[test]
    fn rejects_bad_text_with_reasons() {
        assert_eq!(Price::parse("", 5), Err(PriceError::Empty));
        assert_eq!(
            Price::parse("abc", 5),
            Err(PriceError::NotANumber("abc".into()))
        );
        assert_eq!(
            Price::parse("1.2.3", 5),
            Err(PriceError::NotANumber("1.2.3".into()))
        );
        assert_eq!(
            Price::parse(".", 5),
            Err(PriceError::NotANumber(".".into()))
        );
        assert_eq!(
            Price::parse("1.123456", 5),
            Err(PriceError::TooPrecise {
                text: "1.123456".into(),
                scale: 5
            })
        );
        assert_eq!(
            Price::parse("99999999999999999999", 0),
            Err(PriceError::OutOfRange("99999999999999999999".into()))
        );
        assert_eq!(Price::parse("1", 13), Err(PriceError::BadScale(13)));
    }

    #[test]
    fn displays_with_scale() {
        assert_eq!(
            Price {
                mantissa: 108_345,
                scale: 5
            }
            .to_string(),
            "1.08345"
        );
        assert_eq!(
            Price {
                mantissa: -5,
                scale: 2
            }
            .to_string(),
            "-0.05"
        );
        assert_eq!(
            Price {
                mantissa: 42,
                scale: 0
            }
            .to_string(),
            "42"
        );
    }
}

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn display_parse_round_trips(mantissa in -1_000_000_000_000i64..1_000_000_000_000, scale in 0u8..=MAX_SCALE) {
            let p = Price { mantissa, scale };
            prop_assert_eq!(Price::parse(&p.to_string(), scale), Ok(p));
        }

        #[test]
        fn fast_and_checked_paths_agree(text in "[+-]?[0-9]{0,20}(\\.[0-9]{0,14})?", scale in 0u8..=MAX_SCALE) {
            let fast = parse_short(text.as_bytes(), scale);
            let checked = parse_checked(text.as_bytes(), scale);
            if let Some(value) = fast {
                prop_assert_eq!(Ok(value), checked);
            }
            prop_assert_eq!(parse_mantissa(text.as_bytes(), scale), checked);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,24}", scale in 0u8..=20) {
            let _ = Price::parse(&text, scale);
        }
    }
}
