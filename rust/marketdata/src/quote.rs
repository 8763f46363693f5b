//! Validation of bid/ask quotes, one instrument at a time.

use thiserror::Error;

/// Why a quote was rejected. Each maps to a `QualityIssue` of the
/// market-data contract and is counted per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum QuoteIssue {
    /// Bid above ask.
    #[error("crossed: bid above ask")]
    Crossed,
    /// Bid equal to ask.
    #[error("locked: bid equals ask")]
    Locked,
    /// A price that is zero or negative.
    #[error("non-positive price")]
    BadPrice,
    /// A timestamp earlier than the previous quote's.
    #[error("timestamp earlier than the previous quote")]
    TimeBackwards,
    /// The same timestamp, bid and ask as the previous quote.
    #[error("duplicate of the previous quote")]
    Duplicate,
}

impl QuoteIssue {
    /// Returns the reason's stable name, as used in counters and metrics.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Crossed => "crossed",
            Self::Locked => "locked",
            Self::BadPrice => "bad_price",
            Self::TimeBackwards => "time_backwards",
            Self::Duplicate => "duplicate",
        }
    }

    /// Returns the reason's number in `nexus.marketdata.v1.QualityIssue`;
    /// the per-row flags of the contract set bit `1 << number`.
    #[must_use]
    pub fn proto_number(self) -> u32 {
        match self {
            Self::Crossed => 1,
            Self::Locked => 2,
            Self::BadPrice => 3,
            Self::TimeBackwards => 5,
            Self::Duplicate => 6,
        }
    }

    /// All reasons, in counter order.
    pub const ALL: [Self; 5] = [
        Self::Crossed,
        Self::Locked,
        Self::BadPrice,
        Self::TimeBackwards,
        Self::Duplicate,
    ];
}

/// Checks a sequence of quotes of one instrument and counts rejections.
#[derive(Debug, Default, Clone)]
pub struct QuoteValidator {
    last: Option<(i64, i64, i64)>,
    accepted: u64,
    rejected: [u64; QuoteIssue::ALL.len()],
}

impl QuoteValidator {
    /// Returns a validator that has seen no quote.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks one quote (fixed-point mantissas at the instrument's scale).
    /// Accepted quotes become the reference for the next check; rejected
    /// ones are counted and do not.
    ///
    /// # Errors
    /// Returns the first [`QuoteIssue`] found.
    pub fn check(&mut self, ts_ns: i64, bid: i64, ask: i64) -> Result<(), QuoteIssue> {
        let verdict = self.classify(ts_ns, bid, ask);
        match verdict {
            Ok(()) => {
                self.accepted += 1;
                self.last = Some((ts_ns, bid, ask));
            }
            Err(issue) => self.rejected[issue as usize] += 1,
        }
        verdict
    }

    fn classify(&self, ts_ns: i64, bid: i64, ask: i64) -> Result<(), QuoteIssue> {
        if bid <= 0 || ask <= 0 {
            return Err(QuoteIssue::BadPrice);
        }
        if bid > ask {
            return Err(QuoteIssue::Crossed);
        }
        if bid == ask {
            return Err(QuoteIssue::Locked);
        }
        if let Some(last) = self.last {
            if ts_ns < last.0 {
                return Err(QuoteIssue::TimeBackwards);
            }
            if (ts_ns, bid, ask) == last {
                return Err(QuoteIssue::Duplicate);
            }
        }
        Ok(())
    }

    /// Quotes accepted so far.
    #[must_use]
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Quotes rejected so far for `issue`.
    #[must_use]
    pub fn rejected(&self, issue: QuoteIssue) -> u64 {
        self.rejected[issue as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_issue_is_detected_and_counted() {
        let mut v = QuoteValidator::new();
        assert_eq!(v.check(10, 108_340, 108_345), Ok(()));
        assert_eq!(v.check(11, 108_346, 108_345), Err(QuoteIssue::Crossed));
        assert_eq!(v.check(11, 108_345, 108_345), Err(QuoteIssue::Locked));
        assert_eq!(v.check(11, 0, 108_345), Err(QuoteIssue::BadPrice));
        assert_eq!(v.check(9, 108_340, 108_345), Err(QuoteIssue::TimeBackwards));
        assert_eq!(v.check(10, 108_340, 108_345), Err(QuoteIssue::Duplicate));
        assert_eq!(v.check(12, 108_341, 108_346), Ok(()));
        assert_eq!(v.accepted(), 2);
        for issue in QuoteIssue::ALL {
            assert_eq!(v.rejected(issue), 1, "{}", issue.name());
        }
    }

    #[test]
    fn rejected_quote_does_not_move_the_reference() {
        let mut v = QuoteValidator::new();
        assert_eq!(v.check(100, 1, 2), Ok(()));
        assert_eq!(v.check(200, 3, 2), Err(QuoteIssue::Crossed));
        // 150 is after the last accepted quote (100), so it is not backwards.
        assert_eq!(v.check(150, 1, 3), Ok(()));
    }
}
