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

/// The flags of [`QuoteIssue`]s, bit [`QuoteIssue::proto_number`].
const CROSSED: u32 = 1 << 1;
const LOCKED: u32 = 1 << 2;
const BAD_PRICE: u32 = 1 << 3;
const TIME_BACKWARDS: u32 = 1 << 5;
const DUPLICATE: u32 = 1 << 6;
const OUTLIER: u32 = 1 << 7;

/// Quotes checked at a time by the block validator, whose returns are
/// kept until they go to the ring.
const RETURNS_BLOCK: usize = 512;
const _: () = assert!(RETURNS_BLOCK.is_power_of_two() && RETURNS_BLOCK <= 1 << 16);

#[derive(Debug, Clone, Default)]
struct ReturnStats {
    ring: Vec<f64>,
    /// The ring as order keys (see [`order_key`]) for the selections of a
    /// refresh.
    scratch: Vec<u64>,
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
        } else if let Some(slot) = self.ring.get_mut(self.next) {
            // (A window of 0 keeps nothing: the rule never applies.)
            *slot = r;
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

    /// Puts `returns` in the full ring, oldest first, as [`push`](Self::push)
    /// does one at a time without its refresh.
    fn push_returns(&mut self, returns: &[f64]) {
        let mut rest = returns;
        while let Some(room) = self.ring.get_mut(self.next..) {
            let n = rest.len().min(room.len());
            room[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            self.next += n;
            if self.next >= self.ring.len() {
                self.next = 0;
            }
            if rest.is_empty() || self.ring.is_empty() {
                break;
            }
        }
    }

    /// Recomputes the median and sigma of the returns in the ring.
    ///
    /// Both are order statistics, selected on integer keys of the returns
    /// (a compare of two integers, cheaper than a float compare). The median
    /// is first looked for among the returns equal to 0 (an unchanged mid),
    /// by counting (no selection): on the FXCM EUR/USD ticks half of the
    /// windows have a median return of exactly 0. (The last median as a
    /// second candidate found no other.)
    #[inline(never)]
    fn refresh(&mut self, rule: &OutlierRule) {
        if self.ring.is_empty() {
            return; // nothing to take a median of (never with a window above 0)
        }
        let mid = self.ring.len() / 2;
        let keys = &mut self.scratch;
        let median = if rank_ties(&self.ring, mid, 0.0) {
            0.0
        } else {
            keys.clear();
            keys.extend(self.ring.iter().map(|&r| order_key(r)));
            from_order_key(*keys.select_nth_unstable(mid).1)
        };
        // Absolute deviations are at least +0: their bits sort as they do.
        keys.clear();
        keys.extend(self.ring.iter().map(|&r| (r - median).abs().to_bits()));
        let mad = f64::from_bits(*keys.select_nth_unstable(mid).1);
        self.median = median;
        self.sigma = mad * MAD_TO_SIGMA;
        self.reach = rule.reach(self.sigma);
        self.since_refresh = 0;
    }
}

/// Returns whether the value of rank `rank` (from 0, in ascending order)
/// of `values` equals `candidate`: fewer than `rank + 1` values lie below
/// it and more than `rank` at or below it. One pass, counting.
fn rank_ties(values: &[f64], rank: usize, candidate: f64) -> bool {
    let (mut below, mut upto) = (0usize, 0usize);
    for &v in values {
        below += usize::from(v < candidate);
        upto += usize::from(v <= candidate);
    }
    below <= rank && rank < upto
}

/// An integer that orders as `x` does among floats that are not NaN (with
/// -0 just below +0): the bits of a positive float with the sign bit set,
/// those of a negative one all flipped.
fn order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    // All ones for a negative float, else 0.
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)]
    let negative = ((bits as i64) >> 63) as u64;
    bits ^ (negative | 1 << 63)
}

/// The float whose [`order_key`] is `key`.
fn from_order_key(key: u64) -> f64 {
    if key >> 63 == 1 {
        f64::from_bits(key ^ 1 << 63)
    } else {
        f64::from_bits(!key)
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
    /// Room for `check_block_fast`'s list of quotes whose prices passed
    /// (rows in the block) and for their returns, kept from one block to the
    /// next: [`RETURNS_BLOCK`] each once used, every slot written before it
    /// is read, so nothing is zeroed per block.
    listed: Vec<u16>,
    pending: Vec<f64>,
}

impl QuoteValidator {
    /// Returns a validator that has seen no quote, with the default outlier rule.
    #[must_use]
    pub fn new() -> Self {
        Self::with_outlier_rule(Some(OutlierRule::default()))
    }

    /// Returns a validator with the given outlier rule (None disables it, as
    /// does a rule with a window of 0 returns).
    #[must_use]
    pub fn with_outlier_rule(rule: Option<OutlierRule>) -> Self {
        let rule = rule.filter(|r| r.window > 0);
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
    /// full, the quotes are checked in two passes: their own prices first,
    /// then, speculatively, each against the previous quote whose prices
    /// passed (see `check_block_fast`). The common verdicts (accepted,
    /// crossed, locked) are chosen without a branch, so quotes rejected at
    /// random cost no mispredicted jump, and no verdict waits for the one
    /// before.
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
        let (Some(rule), Some(_)) = (self.outliers, self.last) else {
            return count;
        };
        let mut fast = 0;
        let mut from = i;
        while from < n {
            let to = (from + RETURNS_BLOCK).min(n);
            fast += self.check_block_fast(
                &rule,
                &quotes[from..to],
                &mut flags[from..to],
                &mut accepted[count + fast..],
            );
            from = to;
        }
        let flags = &mut flags[i..];
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
    /// the flags), except on a refresh. Checks at most [`RETURNS_BLOCK`]
    /// quotes; returns how many were accepted.
    ///
    /// In two passes. The first checks each quote's own prices (bad price,
    /// crossed, locked) and lists the quotes that pass. The second is
    /// speculative: each listed quote is checked against the one listed
    /// before it, which is the last accepted quote as long as every listed
    /// quote was accepted; so no quote waits for the verdict on the one
    /// before. A quote that may be rejected there (time backwards,
    /// duplicate, a return beyond `threshold` sigmas; rare) is then checked
    /// on its own against the last accepted quote, as `check` would, and
    /// the speculation starts again after it; it also starts again after a
    /// refresh of the outlier rule.
    #[inline(always)]
    fn check_block_fast(
        &mut self,
        rule: &OutlierRule,
        quotes: &[(i64, i64, i64)],
        flags: &mut [u32],
        accepted: &mut [(i64, i64)],
    ) -> usize {
        let Some(mut last) = self.last else {
            return 0;
        };
        let n = quotes
            .len()
            .min(flags.len())
            .min(accepted.len())
            .min(RETURNS_BLOCK);
        let (quotes, flags, accepted) = (&quotes[..n], &mut flags[..n], &mut accepted[..n]);
        if self.listed.len() < RETURNS_BLOCK {
            self.listed.resize(RETURNS_BLOCK, 0);
            self.pending.resize(RETURNS_BLOCK, 0.0);
        }
        // The first pass: the checks of each quote's own prices, in the
        // order of `classify`, chosen without a branch.
        let listed = &mut self.listed[..RETURNS_BLOCK];
        let mut m = 0;
        for ((&(_, bid, ask), flag), row) in quotes.iter().zip(flags.iter_mut()).zip(0u16..) {
            let mut verdict = if bid == ask { LOCKED } else { 0 };
            verdict = if bid > ask { CROSSED } else { verdict };
            verdict = if bid <= 0 || ask <= 0 {
                BAD_PRICE
            } else {
                verdict
            };
            *flag = verdict;
            // Written either way; the next quote overwrites it when this
            // one is rejected. (m is below the row, below RETURNS_BLOCK, a
            // power of 2: the mask changes nothing but proves the index in
            // bounds, so there is no check.)
            listed[m & (RETURNS_BLOCK - 1)] = row;
            m += usize::from(verdict == 0);
        }
        let listed = &listed[..m.min(RETURNS_BLOCK)];
        let stats = &mut self.returns;
        let (mut median, mut sigma, mut reach) = (stats.median, stats.sigma, stats.reach);
        let armed = stats.armed;
        let (mut since_refresh, mut streak) = (stats.since_refresh, stats.streak);
        // As in `push`: a refresh every `refresh` accepted quotes, or after
        // each while sigma is 0 (every push is followed by a refresh or
        // leaves the count below this); none before the rule is armed.
        let refresh_due = |sigma: f64, rule: &OutlierRule| {
            if !armed {
                usize::MAX
            } else if sigma == 0.0 {
                1
            } else {
                rule.refresh.max(1)
            }
        };
        let mut due = refresh_due(sigma, rule);
        // The returns of the accepted quotes, in order, until they go to the
        // ring (before each refresh, which reads them, and at the end).
        let returns = &mut self.pending[..RETURNS_BLOCK];
        let (mut count, mut pushed) = (0, 0);
        // The next listed quote, and how many the next speculation covers
        // (fewer after a suspect quote, so that many suspects cost no more
        // than checking each on its own).
        let (mut j, mut span) = (0, RETURNS_BLOCK);
        while j < listed.len() {
            // Not past the next refresh: at least 1.
            let room = due.saturating_sub(since_refresh).max(1);
            let end = listed.len().min(j + room.min(span));
            let run = &listed[j..end];
            // (Unarmed, no return is too far.)
            let spec_reach = if armed { reach } else { f64::INFINITY };
            let from_last = Before::of(last);
            let mut suspect = false;
            let mut before = from_last;
            for ((&row, slot), ret) in run
                .iter()
                .zip(accepted[count..].iter_mut())
                .zip(returns[count..].iter_mut())
            {
                let quote = quotes[usize::from(row)];
                let (r, odd, now) = speculate(before, quote, median, spec_reach);
                suspect |= odd;
                *slot = (now.ts, now.sum);
                *ret = r;
                before = now;
            }
            let mut taken = run.len();
            if suspect {
                // Rare: the first suspect quote, checked on its own.
                let mut before = from_last;
                taken = run
                    .iter()
                    .position(|&row| {
                        let (_, odd, now) =
                            speculate(before, quotes[usize::from(row)], median, spec_reach);
                        before = now;
                        odd
                    })
                    .unwrap_or(run.len());
                span = (2 * taken).max(16);
            } else {
                span = span.saturating_mul(2);
            }
            if taken > 0 {
                // Accepted within `threshold` sigmas: the outlier streak ends.
                streak = 0;
                last = quotes[usize::from(run[taken - 1])];
                count += taken;
                since_refresh += taken;
            }
            j += taken;
            if taken < run.len() {
                // As `check`, from the time checks on (its prices passed).
                let row = usize::from(run[taken]);
                let (ts, bid, ask) = quotes[row];
                let sum = bid + ask;
                let verdict = if ts < last.0 {
                    TIME_BACKWARDS
                } else if (ts, bid, ask) == last {
                    DUPLICATE
                } else {
                    #[allow(clippy::cast_precision_loss)]
                    let now = sum as f64;
                    let r = mid_return(last, bid, ask);
                    let distance = (r - median).abs();
                    let floor = 1.0 / now * 2.0; // one tick, relative
                    let far =
                        armed && distance > reach && distance > rule.threshold * sigma.max(floor);
                    returns[count] = r;
                    if !far {
                        streak = 0;
                        0
                    } else {
                        streak += 1;
                        if streak < rule.confirm {
                            OUTLIER
                        } else {
                            0
                        }
                    }
                };
                flags[row] = verdict;
                if verdict == 0 {
                    accepted[count] = (ts, sum);
                    count += 1;
                    since_refresh += 1;
                    last = (ts, bid, ask);
                }
                j += 1;
            }
            if armed && since_refresh >= due {
                stats.push_returns(&returns[pushed..count]);
                pushed = count;
                stats.since_refresh = since_refresh;
                stats.refresh(rule);
                (median, sigma, reach) = (stats.median, stats.sigma, stats.reach);
                since_refresh = stats.since_refresh;
                due = refresh_due(sigma, rule);
            }
        }
        stats.push_returns(&returns[pushed..count]);
        (stats.since_refresh, stats.streak) = (since_refresh, streak);
        self.last = Some(last);
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

/// What the speculative check keeps of the quote before: its time and its
/// bid + ask, as an integer and as a float.
#[derive(Clone, Copy)]
struct Before {
    ts: i64,
    sum: i64,
    sum_f: f64,
}

impl Before {
    #[inline(always)]
    fn of((ts, bid, ask): (i64, i64, i64)) -> Self {
        let sum = bid + ask;
        #[allow(clippy::cast_precision_loss)]
        let sum_f = sum as f64;
        Self { ts, sum, sum_f }
    }
}

/// The speculative check of `quote` against `before`, taken to be the last
/// accepted quote: its return (as [`mid_return`]), whether the checks
/// against the last accepted quote may reject it, and what the next check
/// keeps of it. A quote may be rejected when its time is earlier, when its
/// time and its bid + ask are those of the quote before (which every
/// duplicate has; a quote with the same mid but another bid is merely
/// checked on its own), or when its return lies further than `reach` from
/// `median`.
#[inline(always)]
fn speculate(
    before: Before,
    quote: (i64, i64, i64),
    median: f64,
    reach: f64,
) -> (f64, bool, Before) {
    let now = Before::of(quote);
    let r = (now.sum_f - before.sum_f) / before.sum_f; // as `mid_return`
    let odd = (now.ts < before.ts)
        | ((now.ts == before.ts) & (now.sum == before.sum))
        | ((r - median).abs() > reach);
    (r, odd, now)
}

/// Relative change of the mid from the `last` accepted quote to (bid, ask).
/// (For tick-to-tick moves it equals the log return to well within the
/// rule's tolerance, at a fraction of the cost of a logarithm.)
#[allow(clippy::cast_precision_loss)]
#[inline(always)]
fn mid_return(last: (i64, i64, i64), bid: i64, ask: i64) -> f64 {
    let before = (last.1 + last.2) as f64;
    ((bid + ask) as f64 - before) / before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outlier_window_of_zero_checks_quotes_without_the_rule() {
        let rule = OutlierRule {
            window: 0,
            min_samples: 0,
            refresh: 0,
            ..OutlierRule::default()
        };
        let mut v = QuoteValidator::with_outlier_rule(Some(rule));
        for (i, bid) in [108_340, 108_341, 208_341, 108_342].into_iter().enumerate() {
            // The jump to 208,341 would be an outlier with a window; here it is not.
            assert_eq!(v.check(10 + i as i64, bid, bid + 5), Ok(()));
        }
        assert_eq!(v.accepted(), 4);
    }

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

    #[test]
    fn a_quote_with_the_time_and_mid_of_the_last_but_another_bid_is_accepted_in_blocks() {
        let rule = OutlierRule {
            window: 4,
            min_samples: 2,
            refresh: 4,
            ..OutlierRule::default()
        };
        let mut quotes: Vec<(i64, i64, i64)> = (0..40)
            .map(|i| (10 * i, 108_340 + i % 3, 108_345 + i % 3))
            .collect();
        // The same time and bid + ask as the quote before, one tick apart:
        // no duplicate; then a true duplicate, rejected.
        quotes.insert(20, (190, 108_340, 108_347));
        quotes.insert(21, (190, 108_340, 108_347));
        let mut one = QuoteValidator::with_outlier_rule(Some(rule));
        let mut blocks = QuoteValidator::with_outlier_rule(Some(rule));
        let (flags, accepted) = in_blocks(&mut blocks, &quotes, 64);
        assert_eq!((flags.clone(), accepted), one_at_a_time(&mut one, &quotes));
        assert_eq!(quotes[19], (190, 108_341, 108_346));
        assert_eq!(flags[20], 0);
        assert_eq!(flags[21], 1 << QuoteIssue::Duplicate.proto_number());
        assert_eq!(blocks.rejected(QuoteIssue::Duplicate), 1);
    }

    /// The value of rank `len / 2` by a full sort, as the rule defines it.
    fn sorted_middle(values: &[f64]) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    proptest! {
        #[test]
        fn refresh_takes_the_median_and_mad_of_a_full_sort(
            // Returns on a grid (ties, zeros, both signs) or anywhere.
            steps in prop::collection::vec((-4i32..=4, 0.0f64..1e-3, any::<bool>()), 1..400),
            zero_share in 0usize..4,
        ) {
            let returns: Vec<f64> = steps
                .iter()
                .enumerate()
                .map(|(i, &(tick, free, on_grid))| {
                    if i % 4 < zero_share {
                        if on_grid { 0.0 } else { -0.0 }
                    } else if on_grid {
                        f64::from(tick) / 276_543.0
                    } else {
                        free - 5e-4
                    }
                })
                .collect();
            let rule = OutlierRule {
                window: returns.len(),
                min_samples: 1,
                refresh: usize::MAX,
                ..OutlierRule::default()
            };
            let mut stats = ReturnStats::default();
            for &r in &returns {
                stats.push(r, &rule);
            }
            stats.refresh(&rule);
            let median = sorted_middle(&returns);
            let deviations: Vec<f64> = returns.iter().map(|r| (r - median).abs()).collect();
            // (-0 and +0 compare equal: either is the median of a window of zeros.)
            prop_assert_eq!(stats.median, median);
            prop_assert_eq!(stats.sigma.to_bits(), (sorted_middle(&deviations) * MAD_TO_SIGMA).to_bits());
        }

        #[test]
        fn order_keys_order_as_the_floats(a in any::<f64>(), b in any::<f64>()) {
            prop_assume!(!a.is_nan() && !b.is_nan());
            prop_assert_eq!(order_key(a).cmp(&order_key(b)), a.total_cmp(&b));
            prop_assert_eq!(from_order_key(order_key(a)).to_bits(), a.to_bits());
        }

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
            rule in 0usize..4,
            block in 1usize..80,
        ) {
            let rule = [
                OutlierRule { window: 40, min_samples: 10, threshold: 4.0, confirm: 3, refresh: 7 },
                OutlierRule { window: 300, min_samples: 50, ..OutlierRule::default() },
                // A refresh every window, as by default, with many outliers.
                OutlierRule { window: 30, min_samples: 30, threshold: 1.0, confirm: 2, refresh: 30 },
                // Every return is tested against the one-tick floor.
                OutlierRule { window: 20, min_samples: 5, threshold: -1.0, confirm: 3, refresh: 20 },
            ][rule];
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
