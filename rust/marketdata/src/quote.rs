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
    /// A mid-price return far outside the recent robust spread of returns.
    #[error("outlier: return beyond the median-absolute-deviation threshold")]
    Outlier,
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
            Self::Outlier => "outlier",
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
            Self::Outlier => 7,
        }
    }

    /// All reasons, in counter order.
    pub const ALL: [Self; 6] = [
        Self::Crossed,
        Self::Locked,
        Self::BadPrice,
        Self::TimeBackwards,
        Self::Duplicate,
        Self::Outlier,
    ];
}

/// The robust outlier rule: a quote whose mid-price return lies more
/// than `threshold` scaled median absolute deviations (MAD x 1.4826, the
/// normal-consistent sigma) from the median return of the last `window`
/// accepted quotes is an outlier. The MAD is floored at one price tick, so
/// a quiet market does not turn every tick into an outlier. `confirm`
/// outliers in a row are a real level shift, not bad data: that quote is
/// accepted. Median and MAD are recomputed every `refresh` accepted quotes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierRule {
    /// Returns kept for the median and MAD.
    pub window: usize,
    /// Returns needed before the rule applies.
    pub min_samples: usize,
    /// Scaled MADs from the median beyond which a return is an outlier.
    pub threshold: f64,
    /// Consecutive outliers accepted as a level shift.
    pub confirm: u32,
    /// Accepted quotes between recomputations of median and MAD.
    pub refresh: usize,
}

impl Default for OutlierRule {
    fn default() -> Self {
        Self {
            window: 1_000,
            min_samples: 200,
            threshold: 25.0,
            confirm: 3,
            refresh: 1_000,
        }
    }
}

impl OutlierRule {
    /// Returns how far from the median a return must lie, at `sigma`, to be
    /// tested against the one-tick floor: `threshold x sigma`, or minus
    /// infinity for a negative threshold (every return is then tested).
    fn reach(&self, sigma: f64) -> f64 {
        if self.threshold < 0.0 {
            f64::NEG_INFINITY
        } else {
            self.threshold * sigma
        }
    }
}

/// Consistency constant: MAD x 1.4826 estimates a normal sigma.
const MAD_TO_SIGMA: f64 = 1.4826;

#[derive(Debug, Clone, Default)]
struct ReturnStats {
    ring: Vec<f64>,
    /// Working copy of the ring for the selections of a refresh.
    scratch: Vec<f64>,
    next: usize,
    since_refresh: usize,
    median: f64,
    sigma: f64,
    /// `threshold x sigma` (minus infinity for a negative threshold): a
    /// return further than this from the median may be an outlier.
    reach: f64,
    /// Whether the ring holds `min_samples` returns: the rule applies.
    armed: bool,
    streak: u32,
}

impl ReturnStats {
    #[inline]
    fn push(&mut self, r: f64, rule: &OutlierRule) {
        if self.ring.len() < rule.window {
            self.ring.push(r);
            self.armed = self.ring.len() >= rule.min_samples;
        } else {
            self.ring[self.next] = r;
            // (A compare instead of `%`: no integer division per quote.)
            self.next += 1;
            if self.next >= rule.window {
                self.next = 0;
            }
        }
        self.since_refresh += 1;
        if self.armed && (self.since_refresh >= rule.refresh || self.sigma == 0.0) {
            self.refresh(rule);
        }
    }

    /// Puts the returns of accepted (time, bid + ask) quotes in the full
    /// ring, as [`push`](Self::push) does without its refresh; `before` is
    /// the bid + ask of the quote accepted before the first, then of the last.
    fn push_returns(&mut self, accepted: &[(i64, i64)], before: &mut f64, rule: &OutlierRule) {
        for &(_, sum) in accepted {
            #[allow(clippy::cast_precision_loss)]
            let now = sum as f64;
            // As `mid_return`.
            let r = (now - *before) / *before;
            *before = now;
            if let Some(oldest) = self.ring.get_mut(self.next) {
                *oldest = r;
            }
            self.next += 1;
            if self.next >= rule.window {
                self.next = 0;
            }
        }
    }

    #[inline(never)]
    fn refresh(&mut self, rule: &OutlierRule) {
        let values = &mut self.scratch;
        values.clear();
        values.extend_from_slice(&self.ring);
        let mid = values.len() / 2;
        // Returns are finite (prices are positive), so the plain float order
        // is total here, and cheaper to evaluate than `f64::total_cmp`.
        let order = |a: &f64, b: &f64| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal);
        let median = *values.select_nth_unstable_by(mid, order).1;
        for v in values.iter_mut() {
            *v = (*v - median).abs();
        }
        let mad = *values.select_nth_unstable_by(mid, order).1;
        self.median = median;
        self.sigma = mad * MAD_TO_SIGMA;
        self.reach = rule.reach(self.sigma);
        self.since_refresh = 0;
    }
}

/// Checks a sequence of quotes of one instrument and counts rejections.
#[derive(Debug, Default, Clone)]
pub struct QuoteValidator {
    last: Option<(i64, i64, i64)>,
    accepted: u64,
    rejected: [u64; QuoteIssue::ALL.len()],
    outliers: Option<OutlierRule>,
    returns: ReturnStats,
}

impl QuoteValidator {
    /// Returns a validator that has seen no quote, with the default outlier rule.
    #[must_use]
    pub fn new() -> Self {
        Self::with_outlier_rule(Some(OutlierRule::default()))
    }

    /// Returns a validator with the given outlier rule (None disables it).
    #[must_use]
    pub fn with_outlier_rule(rule: Option<OutlierRule>) -> Self {
        let mut returns = ReturnStats::default();
        if let Some(rule) = rule {
            // As after a refresh, with a median and sigma of 0.
            returns.armed = rule.min_samples == 0;
            returns.reach = rule.reach(returns.sigma);
        }
        Self {
            outliers: rule,
            returns,
            ..Self::default()
        }
    }

    /// Checks one quote (fixed-point mantissas at the instrument's scale).
    /// Accepted quotes become the reference for the next check; rejected
    /// ones are counted and do not.
    ///
    /// # Errors
    /// Returns the first [`QuoteIssue`] found.
    #[inline]
    pub fn check(&mut self, ts_ns: i64, bid: i64, ask: i64) -> Result<(), QuoteIssue> {
        let mut verdict = self.classify(ts_ns, bid, ask);
        let mut ret = None;
        if verdict.is_ok() {
            if let (Some(rule), Some(last)) = (self.outliers, self.last) {
                let r = mid_return(last, bid, ask);
                let distance = (r - self.returns.median).abs();
                // The floor of one tick needs a division; it can only matter
                // when the return is beyond `threshold` sigmas (x -> t * x is
                // monotone in floating point too), which is rare.
                let far = self.returns.armed && distance > self.returns.reach && {
                    let floor = 1.0 / (bid + ask) as f64 * 2.0; // one tick, relative
                    distance > rule.threshold * self.returns.sigma.max(floor)
                };
                if far {
                    self.returns.streak += 1;
                    if self.returns.streak < rule.confirm {
                        verdict = Err(QuoteIssue::Outlier);
                    }
                } else {
                    self.returns.streak = 0;
                }
                ret = Some((r, rule));
            }
        }
        match verdict {
            Ok(()) => {
                self.accepted += 1;
                self.last = Some((ts_ns, bid, ask));
                if let Some((r, rule)) = ret {
                    self.returns.push(r, &rule);
                }
            }
            Err(issue) => self.rejected[issue as usize] += 1,
        }
        verdict
    }

    /// Checks `quotes` in order, as [`check`](Self::check) would one at a
    /// time (the same verdicts and counters), a block at once: writes each
    /// quote's flag to `flags` (0 when accepted, else bit
    /// [`QuoteIssue::proto_number`] of its issue) and each accepted quote's
    /// (time, bid + ask) to `accepted`, in order; returns how many were
    /// accepted. Checks the first `quotes.len().min(flags.len())` quotes;
    /// `accepted` must hold as many, or the quotes beyond it are left
    /// unchecked (their flags untouched).
    ///
    /// Once a quote has been accepted and the outlier rule's window is
    /// full, the state of the checks stays in registers and the common
    /// verdicts (accepted, crossed, locked) are chosen without a branch, so
    /// quotes rejected at random cost no mispredicted jump.
    pub fn check_block(
        &mut self,
        quotes: &[(i64, i64, i64)],
        flags: &mut [u32],
        accepted: &mut [(i64, i64)],
    ) -> usize {
        let n = quotes.len().min(flags.len()).min(accepted.len());
        let (quotes, flags) = (&quotes[..n], &mut flags[..n]);
        let mut i = 0;
        let mut count = 0;
        // The one-at-a-time path until the fast one applies.
        while let Some(&(ts, bid, ask)) = quotes.get(i) {
            let ready = self.last.is_some()
                && self
                    .outliers
                    .is_some_and(|rule| self.returns.ring.len() >= rule.window.max(1));
            if ready {
                break;
            }
            flags[i] = match self.check(ts, bid, ask) {
                Ok(()) => {
                    accepted[count] = (ts, bid + ask);
                    count += 1;
                    0
                }
                Err(issue) => 1 << issue.proto_number(),
            };
            i += 1;
        }
        let (Some(rule), Some(last)) = (self.outliers, self.last) else {
            return count;
        };
        let flags = &mut flags[i..];
        let fast = self.check_block_fast(&rule, last, &quotes[i..], flags, &mut accepted[count..]);
        // (`check` counted the quotes before.) Crossed and locked quotes are
        // common; the other issues are counted only when a flag shows one.
        let (crossed, locked) = (
            1 << QuoteIssue::Crossed.proto_number(),
            1 << QuoteIssue::Locked.proto_number(),
        );
        let (mut n_crossed, mut n_locked, mut seen) = (0u32, 0u32, 0u32);
        for &flag in flags.iter() {
            n_crossed += u32::from(flag == crossed);
            n_locked += u32::from(flag == locked);
            seen |= flag;
        }
        self.rejected[QuoteIssue::Crossed as usize] += u64::from(n_crossed);
        self.rejected[QuoteIssue::Locked as usize] += u64::from(n_locked);
        for issue in QuoteIssue::ALL {
            let flag = 1 << issue.proto_number();
            if seen & flag != 0 && flag != crossed && flag != locked {
                let found = flags.iter().filter(|f| **f == flag).count();
                self.rejected[issue as usize] += u64::try_from(found).unwrap_or(u64::MAX);
            }
        }
        self.accepted += u64::try_from(fast).unwrap_or(u64::MAX);
        count + fast
    }

    /// [`check_block`](Self::check_block) once a quote has been accepted
    /// and the window of returns is full; counts nothing (the caller counts
    /// the flags), except on a refresh.
    #[inline(always)]
    fn check_block_fast(
        &mut self,
        rule: &OutlierRule,
        last: (i64, i64, i64),
        quotes: &[(i64, i64, i64)],
        flags: &mut [u32],
        accepted: &mut [(i64, i64)],
    ) -> usize {
        const BAD_PRICE: u32 = 1 << 3;
        const CROSSED: u32 = 1 << 1;
        const LOCKED: u32 = 1 << 2;
        const TIME_BACKWARDS: u32 = 1 << 5;
        const DUPLICATE: u32 = 1 << 6;
        const OUTLIER: u32 = 1 << 7;
        let (mut last_ts, mut last_bid, mut last_ask) = last;
        #[allow(clippy::cast_precision_loss)]
        let first_before = (last_bid + last_ask) as f64;
        let stats = &mut self.returns;
        let (mut median, mut sigma, mut reach) = (stats.median, stats.sigma, stats.reach);
        let armed = stats.armed;
        let (mut since_refresh, mut streak) = (stats.since_refresh, stats.streak);
        // As in `push`: a refresh every `refresh` accepted quotes, or after
        // each while sigma is 0 (every push is followed by a refresh or
        // leaves the count below this).
        let refresh_due = |sigma: f64, rule: &OutlierRule| {
            if sigma == 0.0 {
                1
            } else {
                rule.refresh.max(1)
            }
        };
        let mut due = refresh_due(sigma, rule);
        let mut count = 0;
        // Accepted quotes whose returns are in the ring, and the sum of bid
        // and ask before the first that is not.
        let (mut pushed, mut pushed_before) = (0, first_before);
        for (&(ts, bid, ask), flag) in quotes.iter().zip(flags) {
            // The first issue in the order of `classify`, chosen without a branch.
            let duplicate = ts == last_ts && bid == last_bid && ask == last_ask;
            let mut verdict = if duplicate { DUPLICATE } else { 0 };
            verdict = if ts < last_ts {
                TIME_BACKWARDS
            } else {
                verdict
            };
            verdict = if bid == ask { LOCKED } else { verdict };
            verdict = if bid > ask { CROSSED } else { verdict };
            verdict = if bid <= 0 || ask <= 0 {
                BAD_PRICE
            } else {
                verdict
            };
            let sum = bid + ask;
            #[allow(clippy::cast_precision_loss)]
            let now = sum as f64;
            // (From integers chosen without a branch: a float chosen by an
            // integer condition compiles to a jump.)
            #[allow(clippy::cast_precision_loss)]
            let before = (last_bid + last_ask) as f64;
            // As `mid_return`.
            let r = (now - before) / before;
            let distance = (r - median).abs();
            if armed && distance > reach && verdict == 0 {
                // Rare: beyond `threshold` sigmas; the one-tick floor decides.
                let floor = 1.0 / now * 2.0;
                if distance > rule.threshold * sigma.max(floor) {
                    streak += 1;
                    if streak < rule.confirm {
                        verdict = OUTLIER;
                    }
                } else {
                    streak = 0;
                }
            } else if verdict == 0 {
                streak = 0;
            }
            *flag = verdict;
            // Written either way; the next quote overwrites it when rejected.
            if let Some(slot) = accepted.get_mut(count) {
                *slot = (ts, sum);
            }
            let ok = verdict == 0;
            count += usize::from(ok);
            (last_ts, last_bid, last_ask) = if ok {
                (ts, bid, ask)
            } else {
                (last_ts, last_bid, last_ask)
            };
            // The returns of accepted quotes go to the ring later, from
            // `accepted` (no store that depends on the verdict), and before
            // a refresh, which reads them.
            since_refresh += usize::from(ok);
            // Rare, and with no test of `ok` (not predictable): the count
            // reaches `due` only on an accepted quote.
            if armed && since_refresh >= due {
                stats.push_returns(&accepted[pushed..count], &mut pushed_before, rule);
                pushed = count;
                stats.refresh(rule);
                (median, sigma, reach) = (stats.median, stats.sigma, stats.reach);
                since_refresh = stats.since_refresh;
                due = refresh_due(sigma, rule);
            }
        }
        stats.push_returns(&accepted[pushed..count], &mut pushed_before, rule);
        (stats.since_refresh, stats.streak) = (since_refresh, streak);
        self.last = Some((last_ts, last_bid, last_ask));
        count
    }

    #[inline]
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

/// Relative change of the mid from the `last` accepted quote to (bid, ask).
/// (For tick-to-tick moves it equals the log return to well within the
/// rule's tolerance, at a fraction of the cost of a logarithm.)
#[allow(clippy::cast_precision_loss)]
fn mid_return(last: (i64, i64, i64), bid: i64, ask: i64) -> f64 {
    let before = (last.1 + last.2) as f64;
    ((bid + ask) as f64 - before) / before
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
        for issue in &QuoteIssue::ALL[..5] {
            assert_eq!(v.rejected(*issue), 1, "{}", issue.name());
        }
    }

    /// A quiet random walk of +-1..2 ticks around 1.10000.
    fn walk(v: &mut QuoteValidator, from_ts: i64, n: i64, mut bid: i64) -> i64 {
        let mut seed: u64 = 42;
        for i in 0..n {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let step = [-2, -1, 1, 2][usize::try_from(seed >> 62).unwrap_or(0)];
            bid += step;
            assert_eq!(v.check(from_ts + i, bid, bid + 3), Ok(()), "walk step {i}");
        }
        bid
    }

    #[test]
    fn spikes_are_outliers_but_level_shifts_are_accepted() {
        let mut v = QuoteValidator::new();
        let bid = walk(&mut v, 0, 1_000, 110_000);
        // A one-quote spike of 500 ticks: rejected, and the reference stays.
        assert_eq!(
            v.check(2_000, bid + 500, bid + 503),
            Err(QuoteIssue::Outlier)
        );
        assert_eq!(v.check(2_001, bid + 1, bid + 4), Ok(()));
        // The market gaps up and stays: the third quote there is accepted.
        assert_eq!(
            v.check(2_002, bid + 600, bid + 603),
            Err(QuoteIssue::Outlier)
        );
        assert_eq!(
            v.check(2_003, bid + 601, bid + 604),
            Err(QuoteIssue::Outlier)
        );
        assert_eq!(v.check(2_004, bid + 600, bid + 603), Ok(()));
        assert_eq!(v.check(2_005, bid + 601, bid + 604), Ok(()));
        assert_eq!(v.rejected(QuoteIssue::Outlier), 3);
    }

    #[test]
    fn no_outlier_rule_before_enough_returns_or_when_disabled() {
        let mut v = QuoteValidator::new();
        assert_eq!(v.check(0, 110_000, 110_003), Ok(()));
        assert_eq!(v.check(1, 120_000, 120_003), Ok(()));
        let mut off = QuoteValidator::with_outlier_rule(None);
        let bid = walk(&mut off, 0, 1_000, 110_000);
        assert_eq!(off.check(2_000, bid + 5_000, bid + 5_003), Ok(()));
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

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::*;

    /// Quotes from (time step, bid step, spread, spike) tuples: a walk with
    /// crossed, locked, duplicate, backward and spiking quotes mixed in.
    fn quotes(steps: &[(i64, i64, i64, i64)]) -> Vec<(i64, i64, i64)> {
        let (mut ts, mut bid) = (1_000, 110_000);
        steps
            .iter()
            .map(|&(dt, step, spread, spike)| {
                ts += dt;
                bid += step;
                let shown = bid + spike * 400;
                (ts, shown, shown + spread)
            })
            .collect()
    }

    fn one_at_a_time(
        v: &mut QuoteValidator,
        quotes: &[(i64, i64, i64)],
    ) -> (Vec<u32>, Vec<(i64, i64)>) {
        let mut flags = Vec::new();
        let mut accepted = Vec::new();
        for &(ts, bid, ask) in quotes {
            match v.check(ts, bid, ask) {
                Ok(()) => {
                    flags.push(0);
                    accepted.push((ts, bid + ask));
                }
                Err(issue) => flags.push(1 << issue.proto_number()),
            }
        }
        (flags, accepted)
    }

    fn in_blocks(
        v: &mut QuoteValidator,
        quotes: &[(i64, i64, i64)],
        block: usize,
    ) -> (Vec<u32>, Vec<(i64, i64)>) {
        let mut flags = Vec::new();
        let mut accepted = Vec::new();
        for chunk in quotes.chunks(block) {
            let mut f = vec![u32::MAX; chunk.len()];
            let mut a = vec![(0, 0); chunk.len()];
            let count = v.check_block(chunk, &mut f, &mut a);
            flags.extend_from_slice(&f);
            accepted.extend_from_slice(&a[..count]);
        }
        (flags, accepted)
    }

    proptest! {
        #[test]
        fn blocks_equal_quotes_one_at_a_time(
            steps in prop::collection::vec(
                (
                    prop::sample::select(vec![0i64, 0, 1, 1, 1, 5, -3]),
                    -3i64..=3,
                    prop::sample::select(vec![2i64, 2, 2, 1, 0, -1]),
                    prop::sample::select(vec![0i64; 30].into_iter().chain([1, -1, 40]).collect::<Vec<_>>()),
                ),
                0..700,
            ),
            small_rule in any::<bool>(),
            block in 1usize..80,
        ) {
            let rule = if small_rule {
                OutlierRule { window: 40, min_samples: 10, threshold: 4.0, confirm: 3, refresh: 7 }
            } else {
                OutlierRule { window: 300, min_samples: 50, ..OutlierRule::default() }
            };
            let quotes = quotes(&steps);
            let mut one = QuoteValidator::with_outlier_rule(Some(rule));
            let mut blocks = QuoteValidator::with_outlier_rule(Some(rule));
            prop_assert_eq!(in_blocks(&mut blocks, &quotes, block), one_at_a_time(&mut one, &quotes));
            prop_assert_eq!(blocks.accepted(), one.accepted());
            for issue in QuoteIssue::ALL {
                prop_assert_eq!(blocks.rejected(issue), one.rejected(issue), "{}", issue.name());
            }
        }
    }
}
