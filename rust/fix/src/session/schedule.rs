//! Session schedules: the daily window in which a session may be logged on.

const DAY: i64 = 86_400;

/// A daily session window: from `start` to `end` (seconds after midnight) in a time
/// zone `utc_offset_secs` east of UTC. `start == end` means 24 hours a day; a window
/// with `end < start` spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Start of the window, seconds after local midnight.
    pub start: u32,
    /// End of the window, seconds after local midnight.
    pub end: u32,
    /// The time zone's offset from UTC in seconds (e.g. -18000 for UTC-05:00).
    pub utc_offset_secs: i32,
}

impl Default for Schedule {
    fn default() -> Self {
        Self::always()
    }
}

impl Schedule {
    /// A 24h session (QuickFIX StartTime = EndTime = 00:00:00).
    #[must_use]
    pub const fn always() -> Self {
        Self {
            start: 0,
            end: 0,
            utc_offset_secs: 0,
        }
    }

    /// A daily window from `start` to `end`, given as `(hour, minute, second)` local
    /// times in a zone `utc_offset_secs` east of UTC.
    #[must_use]
    pub fn daily(start: (u32, u32, u32), end: (u32, u32, u32), utc_offset_secs: i32) -> Self {
        let secs = |(h, m, s): (u32, u32, u32)| (h * 3600 + m * 60 + s) % 86_400;
        Self {
            start: secs(start),
            end: secs(end),
            utc_offset_secs,
        }
    }

    /// Whether the session is open at `now_nanos` (UTC nanoseconds since the epoch).
    #[must_use]
    pub fn contains(&self, now_nanos: i64) -> bool {
        if self.start == self.end {
            return true;
        }
        let local = now_nanos.div_euclid(1_000_000_000) + i64::from(self.utc_offset_secs);
        let tod = local.rem_euclid(DAY);
        let (start, end) = (i64::from(self.start), i64::from(self.end));
        if start < end {
            tod >= start && tod < end
        } else {
            tod >= start || tod < end
        }
    }
}

impl Schedule {
    /// The start (UTC nanoseconds) of the session period containing `now_nanos`, or
    /// `None` outside the window. A 24h schedule has daily periods starting at
    /// `start`.
    #[must_use]
    pub fn period_start(&self, now_nanos: i64) -> Option<i64> {
        if !self.contains(now_nanos) {
            return None;
        }
        let offset = i64::from(self.utc_offset_secs);
        let local = now_nanos.div_euclid(1_000_000_000) + offset;
        let start = i64::from(self.start);
        let since_start = (local - start).rem_euclid(DAY);
        Some((local - since_start - offset) * 1_000_000_000)
    }

    /// Whether `a` and `b` fall in the same session period (both inside the window).
    #[must_use]
    pub fn same_period(&self, a: i64, b: i64) -> bool {
        match (self.period_start(a), self.period_start(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn windows() {
        assert!(Schedule::always().contains(12_345 * S));
        let day = Schedule::daily((8, 0, 0), (17, 0, 0), 0);
        assert!(day.contains(9 * 3600 * S));
        assert!(!day.contains(18 * 3600 * S));
        assert!(!day.contains(17 * 3600 * S));
        // 08:00-17:00 at UTC-05:00 is 13:00-22:00 UTC.
        let ny = Schedule::daily((8, 0, 0), (17, 0, 0), -5 * 3600);
        assert!(!ny.contains(9 * 3600 * S));
        assert!(ny.contains(14 * 3600 * S));
        let night = Schedule::daily((22, 0, 0), (6, 0, 0), 0);
        assert!(night.contains(23 * 3600 * S));
        assert!(night.contains(DAY * S + 3600 * S));
        assert!(!night.contains(12 * 3600 * S));
    }

    #[test]
    fn periods() {
        let always = Schedule::always();
        assert!(always.same_period(DAY * S + 1, DAY * S + 3600 * S));
        assert!(!always.same_period(DAY * S - 1, DAY * S + 1));
        let night = Schedule::daily((22, 0, 0), (6, 0, 0), 0);
        assert_eq!(
            night.period_start(DAY * S + 3600 * S),
            Some((DAY - 2 * 3600) * S)
        );
        assert!(night.same_period(23 * 3600 * S, DAY * S + 5 * 3600 * S));
        assert!(!night.same_period(5 * 3600 * S, 23 * 3600 * S));
        assert_eq!(night.period_start(12 * 3600 * S), None);
    }
}
