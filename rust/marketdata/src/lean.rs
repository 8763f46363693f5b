//! Readers of QuantConnect Lean data files (zipped CSV ticks, trades and bars).
//!
//! Lean stores one day per zip. The date comes from the file name
//! (`YYYYMMDD_*.zip`) and each row starts with milliseconds since midnight in
//! the source's *data time zone*: UTC for OANDA and the CME/COMEX futures,
//! UTC-05:00 without daylight saving for FXCM. The readers turn that into
//! nanoseconds since the Unix epoch, UTC, and prices into fixed-point
//! mantissas at the caller's scale. Columns come back as vectors (ready to
//! become numpy arrays without a copy).
//!
//! A bad row never stops a read: it is skipped, counted by reason in the
//! [`ReadReport`], and its line number kept (the first few) for the log.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use thiserror::Error;

use crate::price::{parse_mantissa, MantissaError};

/// Nanoseconds in one millisecond.
const NS_PER_MS: i64 = 1_000_000;
/// Nanoseconds in one minute.
const NS_PER_MINUTE: i64 = 60_000_000_000;
/// Nanoseconds in one day.
const NS_PER_DAY: i64 = 86_400_000_000_000;
/// Line numbers of bad rows kept per report.
const MAX_BAD_LINES_KEPT: usize = 20;

/// Why a Lean file could not be read at all (bad rows are counted instead).
#[derive(Debug, Error)]
pub enum LeanError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a readable zip archive.
    #[error("{path} is not a readable zip archive: {reason}")]
    Zip {
        /// The file.
        path: String,
        /// What the zip reader said.
        reason: String,
    },
    /// The file name does not start with a `YYYYMMDD` date.
    #[error("{0}: the file name must start with a YYYYMMDD date")]
    NoDate(String),
    /// The archive has no member of the expected shape.
    #[error("{path} holds no member matching {wanted:?}")]
    NoMember {
        /// The file.
        path: String,
        /// What was looked for.
        wanted: String,
    },
}

/// What a read found wrong, by reason, with the first offending line numbers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadReport {
    /// Rows read (good and bad).
    pub rows: u64,
    /// Bad rows by reason name.
    pub bad_rows: BTreeMap<&'static str, u64>,
    /// (1-based line number, reason) of the first bad rows.
    pub first_bad_lines: Vec<(u64, &'static str)>,
    /// Rows that are well formed but hold no record for the series read
    /// (a quote bar whose side had no quote that minute).
    pub empty_rows: u64,
}

impl ReadReport {
    fn bad(&mut self, line: u64, reason: &'static str) {
        *self.bad_rows.entry(reason).or_insert(0) += 1;
        if self.first_bad_lines.len() < MAX_BAD_LINES_KEPT {
            self.first_bad_lines.push((line, reason));
        }
    }

    /// Total bad rows.
    #[must_use]
    pub fn bad_total(&self) -> u64 {
        self.bad_rows.values().sum()
    }
}

/// Bid/ask quote ticks, column by column.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QuoteTicks {
    /// Event times, ns since the Unix epoch (UTC).
    pub ts_ns: Vec<i64>,
    /// Bid mantissas.
    pub bid: Vec<i64>,
    /// Ask mantissas.
    pub ask: Vec<i64>,
}

/// Trade ticks, column by column.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TradeTicks {
    /// Event times, ns since the Unix epoch (UTC).
    pub ts_ns: Vec<i64>,
    /// Price mantissas.
    pub price: Vec<i64>,
    /// Size mantissas.
    pub size: Vec<i64>,
}

/// OHLC bars of one price series, column by column.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Bars {
    /// Bar open times, ns since the Unix epoch (UTC).
    pub ts_ns: Vec<i64>,
    /// Open mantissas.
    pub open: Vec<i64>,
    /// High mantissas.
    pub high: Vec<i64>,
    /// Low mantissas.
    pub low: Vec<i64>,
    /// Close mantissas.
    pub close: Vec<i64>,
    /// Volume mantissas (zeros for quote bars).
    pub volume: Vec<i64>,
}

/// Returns days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
#[must_use]
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYYMMDD` into (year, month, day), checking ranges.
fn parse_yyyymmdd(text: &[u8]) -> Option<(i64, u32, u32)> {
    if text.len() != 8 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        text[r]
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
    };
    let (year, month, day) = (num(0..4), num(4..6), num(6..8));
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some((i64::from(year), month, day))
}

/// Returns the UTC epoch ns of local midnight of the file's date, for a data
/// time zone `utc_offset_minutes` east of UTC (FXCM: -300).
///
/// # Errors
/// Returns [`LeanError::NoDate`] when the name does not start with `YYYYMMDD`.
pub fn file_day_start_ns(path: &Path, utc_offset_minutes: i32) -> Result<i64, LeanError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (y, m, d) = name
        .as_bytes()
        .get(..8)
        .and_then(parse_yyyymmdd)
        .ok_or_else(|| LeanError::NoDate(path.display().to_string()))?;
    Ok(days_from_civil(y, m, d) * NS_PER_DAY - i64::from(utc_offset_minutes) * NS_PER_MINUTE)
}

/// Reads the members of a zip whose names end with `suffix` (all members
/// when empty), returning (member name, contents), sorted by name.
fn read_members(path: &Path, suffix: &str) -> Result<Vec<(String, Vec<u8>)>, LeanError> {
    let shown = || path.display().to_string();
    let file = File::open(path).map_err(|source| LeanError::Io {
        path: shown(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| LeanError::Zip {
        path: shown(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).map_err(|e| LeanError::Zip {
            path: shown(),
            reason: e.to_string(),
        })?;
        let name = member
            .name()
            .map_err(|e| LeanError::Zip {
                path: shown(),
                reason: e.to_string(),
            })?
            .into_owned();
        if !name.ends_with(suffix) {
            continue;
        }
        let mut data = Vec::with_capacity(usize::try_from(member.size()).unwrap_or(0));
        member
            .read_to_end(&mut data)
            .map_err(|source| LeanError::Io {
                path: format!("{}!{name}", shown()),
                source,
            })?;
        out.push((name, data));
    }
    if out.is_empty() {
        return Err(LeanError::NoMember {
            path: shown(),
            wanted: format!("*{suffix}"),
        });
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Splits a CSV row into at most `N` fields without allocating.
fn fields<const N: usize>(row: &[u8]) -> ([&[u8]; N], usize) {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut count = 0;
    for part in row.split(|b| *b == b',') {
        if count < N {
            out[count] = part;
        }
        count += 1;
    }
    (out, count)
}

/// Splits a row into exactly three comma-separated fields (the quote-tick
/// layout), or None when it has another number of fields.
fn three_fields(row: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let first = memchr::memchr(b',', row)?;
    let rest = &row[first + 1..];
    let second = memchr::memchr(b',', rest)?;
    let last = &rest[second + 1..];
    if memchr::memchr(b',', last).is_some() {
        return None;
    }
    Some((&row[..first], &rest[..second], last))
}

/// Parses milliseconds since midnight.
fn parse_ms(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 9 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ms = bytes
        .iter()
        .fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0'));
    (ms < 86_400_000 + 3_600_000).then_some(ms)
}

fn price_reason(err: MantissaError) -> &'static str {
    match err {
        MantissaError::Empty => "missing_price",
        MantissaError::TooPrecise => "price_too_precise",
        _ => "bad_price",
    }
}

/// Iterates the non-empty rows of CSV text with their 1-based line numbers.
fn rows(data: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    std::iter::from_fn(move || {
        let end = ends.next()?;
        let row = &data[start.min(end)..end];
        start = end + 1;
        Some(row)
    })
    .zip(1u64..)
    .map(|(row, n)| (n, row.strip_suffix(b"\r").unwrap_or(row)))
    .filter(|(_, row)| !row.is_empty())
}

/// Reads a Lean quote-tick zip (`YYYYMMDD_quote.zip`, rows
/// `ms_since_midnight,bid,ask`).
///
/// # Errors
/// Returns a [`LeanError`] when the file cannot be read as a Lean zip; bad
/// rows are skipped and counted in the report.
pub fn read_quote_ticks(
    path: &Path,
    price_scale: u8,
    utc_offset_minutes: i32,
) -> Result<(QuoteTicks, ReadReport), LeanError> {
    let day_ns = file_day_start_ns(path, utc_offset_minutes)?;
    let mut report = ReadReport::default();
    let mut out = QuoteTicks::default();
    for (_, data) in read_members(path, ".csv")? {
        parse_quote_rows(&data, day_ns, price_scale, &mut out, &mut report);
    }
    Ok((out, report))
}

/// Parses Lean quote rows (`ms_since_midnight,bid,ask`, one per line) from
/// CSV text already in memory, appending to `out`; bad rows are counted in
/// `report`. `day_ns` is the UTC epoch ns of the data day's local midnight.
pub fn parse_quote_rows(
    data: &[u8],
    day_ns: i64,
    price_scale: u8,
    out: &mut QuoteTicks,
    report: &mut ReadReport,
) {
    let estimate = data.len() / 20;
    out.ts_ns.reserve(estimate);
    out.bid.reserve(estimate);
    out.ask.reserve(estimate);
    for (line, row) in rows(data) {
        report.rows += 1;
        let Some((ms, bid, ask)) = three_fields(row) else {
            report.bad(line, "wrong_field_count");
            continue;
        };
        let Some(ms) = parse_ms(ms) else {
            report.bad(line, "bad_time");
            continue;
        };
        let parsed = parse_mantissa(bid, price_scale)
            .and_then(|b| parse_mantissa(ask, price_scale).map(|a| (b, a)));
        match parsed {
            Ok((b, a)) => {
                out.ts_ns.push(day_ns + ms * NS_PER_MS);
                out.bid.push(b);
                out.ask.push(a);
            }
            Err(err) => report.bad(line, price_reason(err)),
        }
    }
}

/// Reads a Lean futures trade-tick zip (`YYYYMMDD_trade.zip`, one member per
/// contract month, rows `ms,price,quantity,exchange,sale_condition,suspicious`).
/// Rows flagged suspicious are counted as bad (`suspicious`).
///
/// Returns one series per contract month (e.g. "201312"), in name order.
///
/// # Errors
/// Returns a [`LeanError`] when the file cannot be read as a Lean zip.
pub fn read_trade_ticks(
    path: &Path,
    price_scale: u8,
    size_scale: u8,
    utc_offset_minutes: i32,
) -> Result<(Vec<(String, TradeTicks)>, ReadReport), LeanError> {
    let day_ns = file_day_start_ns(path, utc_offset_minutes)?;
    let mut report = ReadReport::default();
    let mut series = Vec::new();
    for (name, data) in read_members(path, ".csv")? {
        let contract = contract_of(&name);
        let mut out = TradeTicks::default();
        for (line, row) in rows(&data) {
            report.rows += 1;
            let ([ms, price, size, _exchange, _condition, suspicious], count) = fields::<6>(row);
            if count < 3 {
                report.bad(line, "wrong_field_count");
                continue;
            }
            let Some(ms) = parse_ms(ms) else {
                report.bad(line, "bad_time");
                continue;
            };
            if suspicious == b"1" {
                report.bad(line, "suspicious");
                continue;
            }
            match (
                parse_mantissa(price, price_scale),
                parse_mantissa(size, size_scale),
            ) {
                (Ok(p), Ok(s)) => {
                    out.ts_ns.push(day_ns + ms * NS_PER_MS);
                    out.price.push(p);
                    out.size.push(s);
                }
                (Err(err), _) => report.bad(line, price_reason(err)),
                (_, Err(_)) => report.bad(line, "bad_size"),
            }
        }
        series.push((contract, out));
    }
    Ok((series, report))
}

/// Returns the contract month of a member name like
/// `20131007_gc_tick_trade_201312.csv` ("201312"), or the name without
/// extension when it has none.
fn contract_of(name: &str) -> String {
    let stem = name.strip_suffix(".csv").unwrap_or(name);
    stem.rsplit('_').next().unwrap_or(stem).to_owned()
}

/// Which side of a Lean quote bar to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarSide {
    /// Bid OHLC (columns 1-4).
    Bid,
    /// Ask OHLC (columns 6-9).
    Ask,
}

/// Reads a Lean minute quote-bar zip (`YYYYMMDD_quote.zip`, rows
/// `ms,bid_o,bid_h,bid_l,bid_c,bid_size,ask_o,ask_h,ask_l,ask_c,ask_size`)
/// for one side, one series per member (FX zips hold one; futures zips one
/// per contract month, named by it). A minute where that side had no quote
/// is not a bar and is counted in `ReadReport::empty_rows`, not as bad.
///
/// # Errors
/// Returns a [`LeanError`] when the file cannot be read as a Lean zip.
pub fn read_quote_bars(
    path: &Path,
    side: BarSide,
    price_scale: u8,
    utc_offset_minutes: i32,
) -> Result<(Vec<(String, Bars)>, ReadReport), LeanError> {
    let first = match side {
        BarSide::Bid => 1,
        BarSide::Ask => 6,
    };
    read_bars(path, 11, first, None, price_scale, 0, utc_offset_minutes)
}

/// Reads a Lean minute trade-bar zip (`YYYYMMDD_trade.zip`, rows
/// `ms,open,high,low,close,volume`), one series per contract month.
///
/// # Errors
/// Returns a [`LeanError`] when the file cannot be read as a Lean zip.
pub fn read_trade_bars(
    path: &Path,
    price_scale: u8,
    size_scale: u8,
    utc_offset_minutes: i32,
) -> Result<(Vec<(String, Bars)>, ReadReport), LeanError> {
    read_bars(
        path,
        6,
        1,
        Some(5),
        price_scale,
        size_scale,
        utc_offset_minutes,
    )
}

/// Reads OHLC at columns `first..first + 4` (and volume at `volume_col`)
/// of rows with exactly `width` fields.
fn read_bars(
    path: &Path,
    width: usize,
    first: usize,
    volume_col: Option<usize>,
    price_scale: u8,
    size_scale: u8,
    utc_offset_minutes: i32,
) -> Result<(Vec<(String, Bars)>, ReadReport), LeanError> {
    let day_ns = file_day_start_ns(path, utc_offset_minutes)?;
    let mut report = ReadReport::default();
    let mut series = Vec::new();
    for (name, data) in read_members(path, ".csv")? {
        let mut out = Bars::default();
        for (line, row) in rows(&data) {
            report.rows += 1;
            let (cols, count) = fields::<11>(row);
            if count != width {
                report.bad(line, "wrong_field_count");
                continue;
            }
            let Some(ms) = parse_ms(cols[0]) else {
                report.bad(line, "bad_time");
                continue;
            };
            if cols[first..first + 4].iter().all(|c| c.is_empty()) {
                report.empty_rows += 1;
                continue;
            }
            let mut ohlc = [0i64; 4];
            let mut failed = None;
            for (slot, text) in ohlc.iter_mut().zip(&cols[first..first + 4]) {
                match parse_mantissa(text, price_scale) {
                    Ok(v) => *slot = v,
                    Err(err) => {
                        failed = Some(price_reason(err));
                        break;
                    }
                }
            }
            let volume = match volume_col.map(|c| parse_mantissa(cols[c], size_scale)) {
                None => 0,
                Some(Ok(v)) => v,
                Some(Err(_)) => {
                    failed = failed.or(Some("bad_size"));
                    0
                }
            };
            if let Some(reason) = failed {
                report.bad(line, reason);
                continue;
            }
            out.ts_ns.push(day_ns + ms * NS_PER_MS);
            out.open.push(ohlc[0]);
            out.high.push(ohlc[1]);
            out.low.push(ohlc[2]);
            out.close.push(ohlc[3]);
            out.volume.push(volume);
        }
        series.push((contract_of(&name), out));
    }
    Ok((series, report))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_file(dir: &Path, name: &str, members: &[(&str, &str)]) -> std::path::PathBuf {
        let path = dir.join(name);
        let file = File::create(&path).expect("create zip");
        let mut writer = zip::ZipWriter::new(file);
        for (member, text) in members {
            writer
                .start_file(*member, zip::write::SimpleFileOptions::default())
                .expect("start member");
            writer.write_all(text.as_bytes()).expect("write member");
        }
        writer.finish().expect("finish zip");
        path
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("nexus-lean-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2014, 5, 8), 16_198);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn quote_ticks_get_utc_times_and_bad_rows_are_counted() {
        let dir = temp_dir("quotes");
        let path = zip_file(
            &dir,
            "20140508_quote.zip",
            &[(
                "20140508_eurusd_tick_quote.csv",
                "0,1.39121,1.39131\n1500,1.3912,1.3913\r\nx,1,2\n5,1.1\n7,1.123456,1.2\n8,abc,1\n",
            )],
        );
        // FXCM data time: UTC-5, so local midnight is 05:00 UTC.
        let (ticks, report) = read_quote_ticks(&path, 5, -300).expect("readable");
        let midnight_utc = days_from_civil(2014, 5, 8) * NS_PER_DAY;
        assert_eq!(
            ticks.ts_ns,
            vec![
                midnight_utc + 5 * 3_600_000_000_000,
                midnight_utc + 5 * 3_600_000_000_000 + 1_500_000_000
            ]
        );
        assert_eq!(ticks.bid, vec![139_121, 139_120]);
        assert_eq!(ticks.ask, vec![139_131, 139_130]);
        assert_eq!(report.rows, 6);
        assert_eq!(report.bad_rows.get("bad_time"), Some(&1));
        assert_eq!(report.bad_rows.get("wrong_field_count"), Some(&1));
        assert_eq!(report.bad_rows.get("price_too_precise"), Some(&1));
        assert_eq!(report.bad_rows.get("bad_price"), Some(&1));
        assert_eq!(report.first_bad_lines[0], (3, "bad_time"));
    }

    #[test]
    fn trade_ticks_split_by_contract_and_drop_suspicious() {
        let dir = temp_dir("trades");
        let path = zip_file(
            &dir,
            "20131007_trade.zip",
            &[
                (
                    "20131007_gc_tick_trade_201312.csv",
                    "1000,1310.5,2,usa,,0\n2000,1310.6,0,usa,,1\n",
                ),
                (
                    "20131007_gc_tick_trade_201402.csv",
                    "3000,1311.2,1,usa,,0\n",
                ),
            ],
        );
        let (series, report) = read_trade_ticks(&path, 1, 0, 0).expect("readable");
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].0, "201312");
        assert_eq!(series[0].1.price, vec![13_105]);
        assert_eq!(series[1].1.size, vec![1]);
        assert_eq!(report.bad_rows.get("suspicious"), Some(&1));
    }

    #[test]
    fn quote_bars_read_one_side() {
        let dir = temp_dir("bars");
        let path = zip_file(
            &dir,
            "20140505_quote.zip",
            &[(
                "20140505_eurusd_minute_quote.csv",
                "60000,1.1,1.3,1.0,1.2,0,1.11,1.31,1.01,1.21,0\n120000,,,,,0,1.1,1.1,1.1,1.1,0\n",
            )],
        );
        let (bid, report) = read_quote_bars(&path, BarSide::Bid, 2, 0).expect("readable");
        let bid = &bid[0].1;
        assert_eq!(
            (
                bid.open.clone(),
                bid.high.clone(),
                bid.low.clone(),
                bid.close.clone()
            ),
            (vec![110], vec![130], vec![100], vec![120])
        );
        assert_eq!(report.empty_rows, 1);
        assert_eq!(report.bad_total(), 0);
        let (ask, _) = read_quote_bars(&path, BarSide::Ask, 2, 0).expect("readable");
        assert_eq!(ask[0].1.open, vec![111, 110]);
    }

    #[test]
    fn trade_bars_by_contract_with_volume() {
        let dir = temp_dir("trade-bars");
        let path = zip_file(
            &dir,
            "20131007_trade.zip",
            &[
                (
                    "20131007_es_minute_trade_201312.csv",
                    "0,1676.5,1676.75,1676.25,1676.5,9\n60000,1,2,3\n",
                ),
                (
                    "20131007_es_minute_trade_201403.csv",
                    "0,1680,1680,1680,1680,1\n",
                ),
            ],
        );
        let (series, report) = read_trade_bars(&path, 2, 0, 0).expect("readable");
        assert_eq!(series[0].0, "201312");
        assert_eq!(series[0].1.high, vec![167_675]);
        assert_eq!(series[0].1.volume, vec![9]);
        assert_eq!(series[1].1.close, vec![168_000]);
        assert_eq!(report.bad_rows.get("wrong_field_count"), Some(&1));
    }

    #[test]
    fn unreadable_files_are_errors_with_the_path() {
        let dir = temp_dir("errors");
        let missing = dir.join("20140101_quote.zip");
        let err = read_quote_ticks(&missing, 5, 0).expect_err("missing file");
        assert!(err.to_string().contains("20140101_quote.zip"));
        let not_zip = dir.join("20140102_quote.zip");
        std::fs::write(&not_zip, b"hello").expect("write");
        assert!(matches!(
            read_quote_ticks(&not_zip, 5, 0),
            Err(LeanError::Zip { .. })
        ));
        let undated = dir.join("quote.zip");
        assert!(matches!(
            read_quote_ticks(&undated, 5, 0),
            Err(LeanError::NoDate(_))
        ));
    }
}
