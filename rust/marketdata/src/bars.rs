//! Bar aggregation: time bars, tick bars and volume bars.
//!
//! Ticks are `(ts_ns, price, size)`: nanoseconds since the UTC epoch, a
//! price mantissa and a size mantissa, both fixed-point `i64` at scales that
//! are the caller's (a bar's prices and volume keep the ticks' scales; see
//! [`Bar::ohlc_prices`]). A [`BarAggregator`] takes ticks one at a time and
//! returns each bar as it closes; [`aggregate`] does the same over arrays.
//!
//! * **Time bars** ([`BarSpec::Time`]) cover `[start, start + period)`, with
//!   `start` a multiple of the period since the UTC epoch (days start at
//!   00:00 UTC). A bar closes when the first tick of a later period arrives
//!   (that tick opens the next bar), when [`BarAggregator::advance_to`] is
//!   given a time at or past the period's end, or on
//!   [`BarAggregator::flush`]. A period without ticks produces no bar.
//! * **Tick bars** ([`BarSpec::Ticks`]) close on their `n`-th tick.
//! * **Volume bars** ([`BarSpec::Volume`]) close on the tick that brings
//!   their volume to the threshold or past it. A tick is never split: the
//!   tick that overshoots belongs whole to the bar it closes, whose volume
//!   is then above the threshold, and the next bar starts from zero. So the
//!   tick counts always add up to the number of ticks and the volumes to
//!   their total size.
//!
//! `ts_open_ns` and `ts_close_ns` are the times of a bar's first and last
//! tick; a time bar's period start is [`BarPeriod::start_of`] of either.
//!
//! Timestamps must not go backwards: equal timestamps are fine, but a tick
//! (or an `advance_to`) earlier than the latest time seen is refused with
//! [`BarError::TimeBackwards`] and changes nothing, so the caller may log it
//! and go on. A negative size is refused the same way.

use thiserror::Error;

use crate::price::Price;

const NANOS_PER_MINUTE: i64 = 60_000_000_000;

/// Why a bar specification or a tick was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum BarError {
    /// A tick or time earlier than the latest time already seen.
    #[error("time {ts_ns} ns is earlier than the latest time seen, {last_ns} ns")]
    TimeBackwards {
        /// The latest time seen.
        last_ns: i64,
        /// The time refused.
        ts_ns: i64,
    },
    /// A tick with a negative size.
    #[error("negative size {size} at {ts_ns} ns")]
    NegativeSize {
        /// The tick's time.
        ts_ns: i64,
        /// The size refused.
        size: i64,
    },
    /// A bar's volume would not fit in an `i64`.
    #[error("bar volume overflows at {ts_ns} ns")]
    VolumeOverflow {
        /// The time of the tick that overflowed it.
        ts_ns: i64,
    },
    /// A tick-bar count or volume-bar threshold that is not positive.
    #[error("bar threshold must be positive, got {0}")]
    BadThreshold(i64),
    /// Input arrays of different lengths.
    #[error("input arrays differ in length: ts {ts}, price {price}, size {size}")]
    LengthMismatch {
        /// Length of the timestamps.
        ts: usize,
        /// Length of the prices.
        price: usize,
        /// Length of the sizes.
        size: usize,
    },
}

/// The length of a time bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarPeriod {
    /// One minute.
    Minute1,
    /// Five minutes.
    Minute5,
    /// Fifteen minutes.
    Minute15,
    /// One hour.
    Hour1,
    /// One UTC day.
    Day1,
}

impl BarPeriod {
    /// Returns the period's length in nanoseconds.
    #[must_use]
    pub const fn nanos(self) -> i64 {
        match self {
            Self::Minute1 => NANOS_PER_MINUTE,
            Self::Minute5 => 5 * NANOS_PER_MINUTE,
            Self::Minute15 => 15 * NANOS_PER_MINUTE,
            Self::Hour1 => 60 * NANOS_PER_MINUTE,
            Self::Day1 => 1440 * NANOS_PER_MINUTE,
        }
    }

    /// Returns the start of the period holding `ts_ns` (rounded down to a
    /// multiple of the period, also before 1970; `i64::MIN` for the partial
    /// period at the very bottom of the range).
    #[must_use]
    pub const fn start_of(self, ts_ns: i64) -> i64 {
        ts_ns.saturating_sub(ts_ns.rem_euclid(self.nanos()))
    }

    /// Returns the end (exclusive) of the period holding `ts_ns`, or `None`
    /// past the top of the range.
    const fn end_of(self, ts_ns: i64) -> Option<i64> {
        ts_ns.checked_add(self.nanos() - ts_ns.rem_euclid(self.nanos()))
    }
}

/// What closes a bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarSpec {
    /// One bar per period with ticks, aligned to the UTC epoch.
    Time(BarPeriod),
    /// One bar every this many ticks.
    Ticks(u64),
    /// One bar each time this much volume (size mantissa) has traded.
    Volume(i64),
}

/// An OHLC bar. Prices and volume are mantissas at the ticks' scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bar {
    /// Price of the first tick.
    pub open: i64,
    /// Highest price.
    pub high: i64,
    /// Lowest price.
    pub low: i64,
    /// Price of the last tick.
    pub close: i64,
    /// Sum of the ticks' sizes.
    pub volume: i64,
    /// Number of ticks.
    pub tick_count: u64,
    /// Time of the first tick, in nanoseconds since the UTC epoch.
    pub ts_open_ns: i64,
    /// Time of the last tick, in nanoseconds since the UTC epoch.
    pub ts_close_ns: i64,
}

impl Bar {
    fn first(ts_ns: i64, price: i64, size: i64) -> Self {
        Self {
            open: price,
            high: price,
            low: price,
            close: price,
            volume: size,
            tick_count: 1,
            ts_open_ns: ts_ns,
            ts_close_ns: ts_ns,
        }
    }

    /// Returns open, high, low and close as prices at `scale`.
    #[must_use]
    pub fn ohlc_prices(&self, scale: u8) -> [Price; 4] {
        [self.open, self.high, self.low, self.close].map(|mantissa| Price { mantissa, scale })
    }
}

/// Builds bars from a stream of ticks.
#[derive(Debug, Clone)]
pub struct BarAggregator {
    spec: BarSpec,
    current: Option<Bar>,
    /// End (exclusive) of the current time bar's period, kept so that a tick
    /// costs a comparison instead of two divisions (None: top of the range).
    period_end_ns: Option<i64>,
    /// Latest tick time or time given to `advance_to`.
    clock_ns: Option<i64>,
}

impl BarAggregator {
    /// Returns an aggregator with no open bar.
    ///
    /// # Errors
    /// Returns [`BarError::BadThreshold`] for a tick count of 0 or a volume
    /// threshold that is not positive.
    pub fn new(spec: BarSpec) -> Result<Self, BarError> {
        match spec {
            BarSpec::Ticks(0) => return Err(BarError::BadThreshold(0)),
            BarSpec::Volume(v) if v <= 0 => return Err(BarError::BadThreshold(v)),
            _ => {}
        }
        Ok(Self {
            spec,
            current: None,
            period_end_ns: None,
            clock_ns: None,
        })
    }

    /// Returns what closes this aggregator's bars.
    #[must_use]
    pub fn spec(&self) -> BarSpec {
        self.spec
    }

    /// Returns the bar being built, if any.
    #[must_use]
    pub fn current(&self) -> Option<&Bar> {
        self.current.as_ref()
    }

    /// Starts a bar with a tick.
    fn open(&mut self, ts_ns: i64, price: i64, size: i64) {
        self.current = Some(Bar::first(ts_ns, price, size));
        if let BarSpec::Time(period) = self.spec {
            self.period_end_ns = period.end_of(ts_ns);
        }
    }

    fn check_time(&self, ts_ns: i64) -> Result<(), BarError> {
        match self.clock_ns {
            Some(last_ns) if ts_ns < last_ns => Err(BarError::TimeBackwards { last_ns, ts_ns }),
            _ => Ok(()),
        }
    }

    /// Adds a tick; returns the bar it closes, if any.
    ///
    /// For time bars the bar returned is the previous period's, and the tick
    /// opens the next one; for tick and volume bars it is the bar the tick
    /// completes.
    ///
    /// # Errors
    /// Returns [`BarError::TimeBackwards`] for a tick earlier than the latest
    /// time seen, [`BarError::NegativeSize`] for a negative size and
    /// [`BarError::VolumeOverflow`] when the bar's volume would overflow. A
    /// refused tick changes nothing.
    #[inline]
    pub fn update(&mut self, ts_ns: i64, price: i64, size: i64) -> Result<Option<Bar>, BarError> {
        // The common case first: a tick inside the open time bar's period.
        if let (BarSpec::Time(_), Some(bar), Some(end), Some(clock)) = (
            self.spec,
            self.current.as_mut(),
            self.period_end_ns,
            self.clock_ns,
        ) {
            if (clock..end).contains(&ts_ns) && size >= 0 {
                if let Some(volume) = bar.volume.checked_add(size) {
                    bar.volume = volume;
                    bar.high = bar.high.max(price);
                    bar.low = bar.low.min(price);
                    bar.close = price;
                    bar.tick_count += 1;
                    bar.ts_close_ns = ts_ns;
                    self.clock_ns = Some(ts_ns);
                    return Ok(None);
                }
            }
        }
        self.update_other(ts_ns, price, size)
    }

    /// Adds ticks `(ts_ns, price)` of `size` each, in order, as
    /// [`update`](Self::update) would one at a time, pushing each bar they
    /// close to `closed`. Ticks inside the open time bar's period, the
    /// common case, run in a loop that keeps the bar in registers.
    ///
    /// # Errors
    /// The first error of [`update`](Self::update): the ticks before the
    /// one refused are added (and the bars they close pushed), the rest not.
    pub fn update_block(
        &mut self,
        ticks: &[(i64, i64)],
        size: i64,
        closed: &mut Vec<Bar>,
    ) -> Result<(), BarError> {
        let mut rest = ticks;
        loop {
            if let (BarSpec::Time(_), Some(mut bar), Some(end), Some(mut clock), true) = (
                self.spec,
                self.current,
                self.period_end_ns,
                self.clock_ns,
                size >= 0,
            ) {
                let mut taken = 0;
                for &(ts_ns, price) in rest {
                    let Some(volume) = bar.volume.checked_add(size) else {
                        break;
                    };
                    if !(clock..end).contains(&ts_ns) {
                        break;
                    }
                    bar.volume = volume;
                    bar.high = bar.high.max(price);
                    bar.low = bar.low.min(price);
                    bar.close = price;
                    bar.tick_count += 1;
                    bar.ts_close_ns = ts_ns;
                    clock = ts_ns;
                    taken += 1;
                }
                self.current = Some(bar);
                self.clock_ns = Some(clock);
                rest = rest.get(taken..).unwrap_or_default();
            }
            let Some((&(ts_ns, price), after)) = rest.split_first() else {
                return Ok(());
            };
            if let Some(bar) = self.update_other(ts_ns, price, size)? {
                closed.push(bar);
            }
            rest = after;
        }
    }

    /// [`update`](Self::update) outside its common case.
    fn update_other(&mut self, ts_ns: i64, price: i64, size: i64) -> Result<Option<Bar>, BarError> {
        self.check_time(ts_ns)?;
        if size < 0 {
            return Err(BarError::NegativeSize { ts_ns, size });
        }
        let closed = match (self.spec, self.current) {
            // Times never go back, so the tick is in another period than the
            // bar's open exactly when it is at or past the period's end.
            (BarSpec::Time(_), Some(bar)) if self.period_end_ns.is_some_and(|end| ts_ns >= end) => {
                self.open(ts_ns, price, size);
                Some(bar)
            }
            (_, Some(mut bar)) => {
                bar.volume = bar
                    .volume
                    .checked_add(size)
                    .ok_or(BarError::VolumeOverflow { ts_ns })?;
                bar.high = bar.high.max(price);
                bar.low = bar.low.min(price);
                bar.close = price;
                bar.tick_count += 1;
                bar.ts_close_ns = ts_ns;
                self.current = Some(bar);
                None
            }
            (_, None) => {
                self.open(ts_ns, price, size);
                None
            }
        };
        self.clock_ns = Some(ts_ns);
        if closed.is_some() {
            return Ok(closed);
        }
        let complete = match (self.spec, &self.current) {
            (BarSpec::Ticks(n), Some(bar)) => bar.tick_count >= n,
            (BarSpec::Volume(v), Some(bar)) => bar.volume >= v,
            _ => false,
        };
        Ok(if complete { self.current.take() } else { None })
    }

    /// Moves the clock to `ts_ns` without a tick; returns the open time bar
    /// if its period has ended by then. Tick and volume bars are not closed
    /// by time. Later ticks must not be earlier than `ts_ns`.
    ///
    /// # Errors
    /// Returns [`BarError::TimeBackwards`] for a time earlier than the latest
    /// time seen, and then changes nothing.
    pub fn advance_to(&mut self, ts_ns: i64) -> Result<Option<Bar>, BarError> {
        self.check_time(ts_ns)?;
        self.clock_ns = Some(ts_ns);
        let BarSpec::Time(period) = self.spec else {
            return Ok(None);
        };
        let ended = self.current.is_some_and(|bar| {
            period
                .end_of(bar.ts_open_ns)
                .is_some_and(|end| ts_ns >= end)
        });
        Ok(if ended { self.current.take() } else { None })
    }

    /// Closes and returns the bar being built, if any, whatever its period,
    /// tick count or volume (at the end of the data, say). A later tick in
    /// the same period starts a new bar for that period.
    pub fn flush(&mut self) -> Option<Bar> {
        self.current.take()
    }
}

/// Returns the bars of ticks given as three arrays, the last bar included
/// even if it is incomplete (the aggregation ends with a
/// [`flush`](BarAggregator::flush)).
///
/// # Errors
/// Returns [`BarError::LengthMismatch`] when the arrays differ in length,
/// and otherwise the first error [`BarAggregator::new`] or
/// [`BarAggregator::update`] returns.
pub fn aggregate(
    spec: BarSpec,
    ts_ns: &[i64],
    price: &[i64],
    size: &[i64],
) -> Result<Vec<Bar>, BarError> {
    if ts_ns.len() != price.len() || ts_ns.len() != size.len() {
        return Err(BarError::LengthMismatch {
            ts: ts_ns.len(),
            price: price.len(),
            size: size.len(),
        });
    }
    let mut agg = BarAggregator::new(spec)?;
    let mut bars = Vec::new();
    for ((&t, &p), &s) in ts_ns.iter().zip(price).zip(size) {
        if let Some(bar) = agg.update(t, p, s)? {
            bars.push(bar);
        }
    }
    bars.extend(agg.flush());
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = NANOS_PER_MINUTE;
    const SEC: i64 = 1_000_000_000;

    fn run(spec: BarSpec, ticks: &[(i64, i64, i64)]) -> Vec<Bar> {
        let ts: Vec<i64> = ticks.iter().map(|t| t.0).collect();
        let px: Vec<i64> = ticks.iter().map(|t| t.1).collect();
        let sz: Vec<i64> = ticks.iter().map(|t| t.2).collect();
        aggregate(spec, &ts, &px, &sz).unwrap()
    }

    #[test]
    fn periods_align_to_the_utc_epoch() {
        // 2014-05-05 13:52:12.5 UTC: 13:52, 13:50, 13:45, 13:00, 00:00.
        let ts = 1_399_297_932_500_000_000;
        assert_eq!(BarPeriod::Minute1.start_of(ts), 1_399_297_920 * SEC);
        assert_eq!(BarPeriod::Minute5.start_of(ts), 1_399_297_800 * SEC);
        assert_eq!(BarPeriod::Minute15.start_of(ts), 1_399_297_500 * SEC);
        assert_eq!(BarPeriod::Hour1.start_of(ts), 1_399_294_800 * SEC);
        assert_eq!(BarPeriod::Day1.start_of(ts), 1_399_248_000 * SEC);
        // Before 1970, periods still start on multiples (rounded down).
        assert_eq!(BarPeriod::Minute1.start_of(-1), -MIN);
        assert_eq!(BarPeriod::Day1.start_of(-1), -1440 * MIN);
        // At the ends of the range: no overflow.
        assert_eq!(BarPeriod::Day1.start_of(i64::MIN), i64::MIN);
        assert_eq!(BarPeriod::Day1.start_of(i64::MIN + 1440 * MIN) % MIN, 0);
        assert_eq!(BarPeriod::Day1.end_of(i64::MAX), None);
        assert_eq!(BarPeriod::Minute1.end_of(-1), Some(0));
        let mut agg = BarAggregator::new(BarSpec::Time(BarPeriod::Day1)).unwrap();
        agg.update(i64::MIN, 1, 1).unwrap();
        agg.update(i64::MIN + 1, 2, 1).unwrap();
        assert_eq!(
            agg.advance_to(i64::MAX).unwrap().map(|b| b.tick_count),
            Some(2)
        );
        agg.update(i64::MAX, 3, 1).unwrap();
        assert_eq!(agg.advance_to(i64::MAX), Ok(None));
        assert_eq!(BarPeriod::Hour1.nanos(), 3_600 * SEC);
    }

    #[test]
    fn time_bars_close_on_the_next_period_and_skip_empty_ones() {
        let mut agg = BarAggregator::new(BarSpec::Time(BarPeriod::Minute1)).unwrap();
        assert_eq!(agg.update(10 * SEC, 100, 1), Ok(None));
        assert_eq!(agg.update(20 * SEC, 105, 2), Ok(None));
        assert_eq!(agg.update(30 * SEC, 95, 3), Ok(None));
        assert_eq!(agg.update(59 * SEC, 101, 4), Ok(None));
        // The first tick of 00:03 closes 00:00; 00:01 and 00:02 had no tick.
        let bar = agg.update(3 * MIN + SEC, 110, 5).unwrap().unwrap();
        assert_eq!(
            bar,
            Bar {
                open: 100,
                high: 105,
                low: 95,
                close: 101,
                volume: 10,
                tick_count: 4,
                ts_open_ns: 10 * SEC,
                ts_close_ns: 59 * SEC,
            }
        );
        assert_eq!(agg.current().map(|b| b.open), Some(110));
        // A tick exactly on the period end belongs to the next period.
        let bar = agg.update(4 * MIN, 111, 1).unwrap().unwrap();
        assert_eq!((bar.open, bar.tick_count), (110, 1));
        assert_eq!(agg.flush().map(|b| b.ts_open_ns), Some(4 * MIN));
        assert_eq!(agg.flush(), None);
    }

    #[test]
    fn advance_to_closes_a_finished_time_bar() {
        let mut agg = BarAggregator::new(BarSpec::Time(BarPeriod::Minute5)).unwrap();
        agg.update(MIN, 100, 1).unwrap();
        // Still inside [0, 5 min).
        assert_eq!(agg.advance_to(5 * MIN - 1), Ok(None));
        let bar = agg.advance_to(5 * MIN).unwrap().unwrap();
        assert_eq!((bar.open, bar.ts_open_ns), (100, MIN));
        assert!(agg.current().is_none());
        // Time only moves forward, for ticks too.
        assert_eq!(
            agg.update(5 * MIN - 1, 100, 1),
            Err(BarError::TimeBackwards {
                last_ns: 5 * MIN,
                ts_ns: 5 * MIN - 1
            })
        );
        assert!(agg.advance_to(MIN).is_err());
        // Tick bars are not closed by time.
        let mut ticks = BarAggregator::new(BarSpec::Ticks(3)).unwrap();
        ticks.update(0, 1, 1).unwrap();
        assert_eq!(ticks.advance_to(1_000 * MIN), Ok(None));
        assert_eq!(ticks.current().map(|b| b.tick_count), Some(1));
    }

    #[test]
    fn flush_splits_a_period() {
        let mut agg = BarAggregator::new(BarSpec::Time(BarPeriod::Hour1)).unwrap();
        agg.update(SEC, 100, 1).unwrap();
        assert_eq!(agg.flush().map(|b| b.tick_count), Some(1));
        // A later tick in the same hour starts a second bar for that hour.
        agg.update(2 * SEC, 101, 1).unwrap();
        let bar = agg.flush().unwrap();
        assert_eq!((bar.open, bar.ts_open_ns), (101, 2 * SEC));
    }

    #[test]
    fn tick_bars_close_every_n_ticks() {
        let ticks: Vec<(i64, i64, i64)> = (0..7).map(|i| (i, 100 + i, 1)).collect();
        let bars = run(BarSpec::Ticks(3), &ticks);
        assert_eq!(bars.len(), 3);
        assert_eq!(
            bars.iter().map(|b| b.tick_count).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        assert_eq!((bars[1].open, bars[1].close), (103, 105));
        assert_eq!((bars[1].ts_open_ns, bars[1].ts_close_ns), (3, 5));
        // One-tick bars.
        let bars = run(BarSpec::Ticks(1), &ticks);
        assert_eq!(bars.len(), 7);
        assert!(bars.iter().all(|b| b.open == b.close && b.tick_count == 1));
    }

    #[test]
    fn volume_bars_keep_the_overshooting_tick_whole() {
        let mut agg = BarAggregator::new(BarSpec::Volume(10)).unwrap();
        assert_eq!(agg.update(1, 100, 4), Ok(None));
        assert_eq!(agg.update(2, 101, 5), Ok(None));
        // 4 + 5 + 7 = 16 >= 10: the bar closes with all of the last tick.
        let bar = agg.update(3, 99, 7).unwrap().unwrap();
        assert_eq!((bar.volume, bar.tick_count, bar.close), (16, 3, 99));
        // The next bar starts from zero, not from the 6 of overshoot.
        assert_eq!(agg.update(4, 98, 9), Ok(None));
        let bar = agg.update(5, 97, 1).unwrap().unwrap();
        assert_eq!((bar.volume, bar.tick_count), (10, 2));
        // One tick bigger than the threshold makes a bar on its own.
        let bar = agg.update(6, 96, 50).unwrap().unwrap();
        assert_eq!((bar.volume, bar.tick_count), (50, 1));
        // Zero-size ticks count as ticks but add no volume.
        assert_eq!(agg.update(7, 95, 0), Ok(None));
        assert_eq!(agg.flush().map(|b| (b.volume, b.tick_count)), Some((0, 1)));
    }

    #[test]
    fn bad_ticks_are_typed_errors_and_change_nothing() {
        let mut agg = BarAggregator::new(BarSpec::Volume(100)).unwrap();
        agg.update(10, 100, 5).unwrap();
        let before = *agg.current().unwrap();
        assert_eq!(
            agg.update(9, 100, 5),
            Err(BarError::TimeBackwards {
                last_ns: 10,
                ts_ns: 9
            })
        );
        assert_eq!(
            agg.update(11, 100, -1),
            Err(BarError::NegativeSize {
                ts_ns: 11,
                size: -1
            })
        );
        assert_eq!(
            agg.update(12, 100, i64::MAX),
            Err(BarError::VolumeOverflow { ts_ns: 12 })
        );
        assert_eq!(agg.current(), Some(&before));
        // Equal timestamps are fine, and the aggregator goes on after errors.
        assert_eq!(agg.update(10, 101, 5), Ok(None));
        assert_eq!(agg.current().map(|b| b.tick_count), Some(2));
        assert_eq!(
            aggregate(BarSpec::Ticks(2), &[1, 3, 2], &[1, 1, 1], &[1, 1, 1]),
            Err(BarError::TimeBackwards {
                last_ns: 3,
                ts_ns: 2
            })
        );
        assert!(BarError::TimeBackwards {
            last_ns: 3,
            ts_ns: 2
        }
        .to_string()
        .contains("earlier"));
    }

    #[test]
    fn bad_specs_and_arrays_are_errors() {
        assert_eq!(
            BarAggregator::new(BarSpec::Ticks(0)).unwrap_err(),
            BarError::BadThreshold(0)
        );
        assert_eq!(
            BarAggregator::new(BarSpec::Volume(-5)).unwrap_err(),
            BarError::BadThreshold(-5)
        );
        assert_eq!(
            aggregate(BarSpec::Ticks(2), &[1, 2], &[1], &[1, 1]),
            Err(BarError::LengthMismatch {
                ts: 2,
                price: 1,
                size: 2
            })
        );
        assert_eq!(
            aggregate(BarSpec::Time(BarPeriod::Day1), &[], &[], &[]),
            Ok(vec![])
        );
    }

    #[test]
    fn prices_convert_at_the_ticks_scale() {
        let bar = Bar::first(0, 108_345, 1);
        assert_eq!(bar.ohlc_prices(5)[0].to_string(), "1.08345");
        assert_eq!(
            BarAggregator::new(BarSpec::Ticks(5)).unwrap().spec(),
            BarSpec::Ticks(5)
        );
    }

    #[test]
    fn day_bars_over_a_few_days() {
        let day = 1440 * MIN;
        let ticks = [
            (day - 1, 10, 1),
            (day, 11, 1),
            (day + 5, 9, 1),
            (3 * day + 7, 12, 2),
        ];
        let bars = run(BarSpec::Time(BarPeriod::Day1), &ticks);
        assert_eq!(bars.len(), 3);
        assert_eq!(
            bars.iter()
                .map(|b| BarPeriod::Day1.start_of(b.ts_open_ns))
                .collect::<Vec<_>>(),
            [0, day, 3 * day]
        );
        assert_eq!((bars[1].high, bars[1].low, bars[1].close), (11, 9, 9));
    }
}

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::*;

    /// Ticks with non-decreasing times: (time step, price, size).
    fn ticks() -> impl Strategy<Value = (Vec<i64>, Vec<i64>, Vec<i64>)> {
        prop::collection::vec(
            (
                prop_oneof![
                    Just(0i64),
                    0i64..NANOS_PER_MINUTE,
                    0i64..10 * NANOS_PER_MINUTE
                ],
                -1_000i64..1_000_000,
                0i64..500,
            ),
            0..200,
        )
        .prop_map(|v| {
            let mut t = -5 * NANOS_PER_MINUTE;
            let mut ts = Vec::new();
            let mut px = Vec::new();
            let mut sz = Vec::new();
            for (dt, p, s) in v {
                t += dt;
                ts.push(t);
                px.push(p);
                sz.push(s);
            }
            (ts, px, sz)
        })
    }

    fn spec() -> impl Strategy<Value = BarSpec> {
        prop_oneof![
            prop_oneof![
                Just(BarPeriod::Minute1),
                Just(BarPeriod::Minute5),
                Just(BarPeriod::Minute15),
                Just(BarPeriod::Hour1),
                Just(BarPeriod::Day1),
            ]
            .prop_map(BarSpec::Time),
            (1u64..20).prop_map(BarSpec::Ticks),
            (1i64..2_000).prop_map(BarSpec::Volume),
        ]
    }

    proptest! {
        #[test]
        fn bars_keep_their_invariants((ts, px, sz) in ticks(), spec in spec()) {
            let bars = aggregate(spec, &ts, &px, &sz).unwrap();
            prop_assert_eq!(bars.iter().map(|b| b.tick_count).sum::<u64>(), ts.len() as u64);
            prop_assert_eq!(bars.iter().map(|b| b.volume).sum::<i64>(), sz.iter().sum::<i64>());
            let mut start = 0usize;
            for (k, b) in bars.iter().enumerate() {
                prop_assert!(b.low <= b.open && b.open <= b.high);
                prop_assert!(b.low <= b.close && b.close <= b.high);
                prop_assert!(b.ts_open_ns <= b.ts_close_ns);
                // The bar is exactly its slice of the input.
                let n = usize::try_from(b.tick_count).unwrap();
                let (t, p, s) = (&ts[start..start + n], &px[start..start + n], &sz[start..start + n]);
                prop_assert_eq!(b.open, p[0]);
                prop_assert_eq!(b.close, p[n - 1]);
                prop_assert_eq!(b.high, *p.iter().max().unwrap());
                prop_assert_eq!(b.low, *p.iter().min().unwrap());
                prop_assert_eq!(b.volume, s.iter().sum::<i64>());
                prop_assert_eq!((b.ts_open_ns, b.ts_close_ns), (t[0], t[n - 1]));
                let last = k + 1 == bars.len();
                match spec {
                    BarSpec::Time(period) => {
                        prop_assert_eq!(period.start_of(t[0]), period.start_of(t[n - 1]));
                        if let Some(next) = bars.get(k + 1) {
                            prop_assert!(period.start_of(next.ts_open_ns) > period.start_of(b.ts_open_ns));
                        }
                    }
                    BarSpec::Ticks(m) => prop_assert!(b.tick_count == m || (last && b.tick_count < m)),
                    BarSpec::Volume(v) => {
                        // Closed by its last tick, not earlier.
                        prop_assert!(b.volume - s[n - 1] < v);
                        prop_assert!(b.volume >= v || last);
                    }
                }
                start += n;
            }
        }

        #[test]
        fn streaming_equals_batch((ts, px, sz) in ticks(), spec in spec()) {
            let mut agg = BarAggregator::new(spec).unwrap();
            let mut bars = Vec::new();
            for i in 0..ts.len() {
                bars.extend(agg.update(ts[i], px[i], sz[i]).unwrap());
            }
            bars.extend(agg.flush());
            prop_assert_eq!(bars, aggregate(spec, &ts, &px, &sz).unwrap());
        }

        #[test]
        fn blocks_equal_ticks_one_at_a_time(
            (mut ts, px, _) in ticks(),
            spec in spec(),
            size in 0i64..3,
            block in 1usize..40,
            back in prop::option::of((any::<prop::sample::Index>(), 1i64..1_000_000)),
        ) {
            // A tick back in time, maybe: both stop there with the same error.
            if let (Some((at, back)), true) = (back, ts.len() >= 2) {
                let i = at.index(ts.len() - 1) + 1;
                ts[i] = ts[i - 1] - back;
            }
            let ticks: Vec<(i64, i64)> = ts.iter().copied().zip(px.iter().copied()).collect();
            let mut one = BarAggregator::new(spec).unwrap();
            let mut one_bars = Vec::new();
            let mut one_error = None;
            for &(t, p) in &ticks {
                match one.update(t, p, size) {
                    Ok(bar) => one_bars.extend(bar),
                    Err(e) => {
                        one_error = Some(e);
                        break;
                    }
                }
            }
            let mut blocks = BarAggregator::new(spec).unwrap();
            let mut block_bars = Vec::new();
            let mut block_error = None;
            for chunk in ticks.chunks(block) {
                if let Err(e) = blocks.update_block(chunk, size, &mut block_bars) {
                    block_error = Some(e);
                    break;
                }
            }
            prop_assert_eq!(block_error, one_error);
            prop_assert_eq!(block_bars, one_bars);
            prop_assert_eq!(blocks.flush(), one.flush());
        }

        #[test]
        fn advancing_time_between_ticks_changes_no_time_bar(
            (ts, px, sz) in ticks(),
            period in prop_oneof![Just(BarPeriod::Minute1), Just(BarPeriod::Minute5)],
        ) {
            // Advancing the clock to each tick's time before the tick closes
            // bars earlier, never differently.
            let spec = BarSpec::Time(period);
            let mut agg = BarAggregator::new(spec).unwrap();
            let mut bars = Vec::new();
            for i in 0..ts.len() {
                bars.extend(agg.advance_to(ts[i]).unwrap());
                bars.extend(agg.update(ts[i], px[i], sz[i]).unwrap());
            }
            bars.extend(agg.flush());
            prop_assert_eq!(bars, aggregate(spec, &ts, &px, &sz).unwrap());
        }

        #[test]
        fn backwards_time_is_an_error_not_a_panic(
            (mut ts, px, sz) in ticks(),
            spec in spec(),
            at in any::<prop::sample::Index>(),
            back in 1i64..1_000_000,
        ) {
            prop_assume!(ts.len() >= 2);
            let i = at.index(ts.len() - 1) + 1;
            ts[i] = ts[i - 1] - back;
            let refused = matches!(
                aggregate(spec, &ts, &px, &sz),
                Err(BarError::TimeBackwards { .. })
            );
            prop_assert!(refused);
        }
    }
}
