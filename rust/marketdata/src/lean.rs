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

fn zip_error(path: &Path, e: &zip::result::ZipError) -> LeanError {
    LeanError::Zip {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A zip opened, and the members wanted of it as (name, index) in name order.
type OpenedMembers = (zip::ZipArchive<File>, Vec<(String, usize)>);

/// Opens the zip at `path`; returns it with its members whose names end with
/// `suffix` (all members when empty) as (name, index), in name order.
///
/// # Errors
/// A [`LeanError`] when the file cannot be read as a zip or holds no such member.
fn open_members(path: &Path, suffix: &str) -> Result<OpenedMembers, LeanError> {
    let file = File::open(path).map_err(|source| LeanError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| zip_error(path, &e))?;
    let mut members = Vec::new();
    for i in 0..archive.len() {
        let raw = archive.by_index_raw(i).map_err(|e| zip_error(path, &e))?;
        let name = raw.name().map_err(|e| zip_error(path, &e))?.into_owned();
        if name.ends_with(suffix) {
            members.push((name, i));
        }
    }
    if members.is_empty() {
        return Err(LeanError::NoMember {
            path: path.display().to_string(),
            wanted: format!("*{suffix}"),
        });
    }
    members.sort();
    Ok((archive, members))
}

/// The error of member `name` of the zip at `path`.
fn member_error(path: &Path, name: &str, reason: String) -> LeanError {
    LeanError::Zip {
        path: format!("{}!{name}", path.display()),
        reason,
    }
}

/// Reads the members of a zip whose names end with `suffix` (all members
/// when empty), returning (member name, contents), sorted by name.
fn read_members(path: &Path, suffix: &str) -> Result<Vec<(String, Vec<u8>)>, LeanError> {
    let (mut archive, members) = open_members(path, suffix)?;
    let mut out = Vec::with_capacity(members.len());
    for (name, i) in members {
        let member = archive.by_index_raw(i).map_err(|e| zip_error(path, &e))?;
        let mut buffers = MemberBuffers::default();
        let length = read_member(member, &mut buffers)
            .map_err(|reason| member_error(path, &name, reason))?;
        let mut data = buffers.data;
        data.truncate(length);
        out.push((name, data));
    }
    Ok(out)
}

/// Room for reading zip members, kept between members (and files) so that
/// reading one allocates nothing and touches no fresh page once the room is
/// as large as the largest member.
#[derive(Debug, Default)]
pub struct MemberBuffers {
    /// The member's bytes as stored (deflated).
    raw: Vec<u8>,
    /// The member's contents; its first bytes once a member is read.
    data: Vec<u8>,
}

/// Reads the contents of a zip member opened raw into `buffers.data`,
/// returning their length: a deflated member is inflated in one call into
/// room of its stated size, by libdeflate (whole-buffer inflate, about
/// twice as fast as a streaming inflater), a stored one copied as it is;
/// either is checked against its CRC-32 and size.
fn read_member<R: Read>(
    mut member: zip::read::ZipFile<'_, R>,
    buffers: &mut MemberBuffers,
) -> Result<usize, String> {
    let size = usize::try_from(member.size()).map_err(|e| e.to_string())?;
    let crc = member.crc32();
    let method = member.compression();
    let raw = &mut buffers.raw;
    raw.clear();
    raw.reserve(usize::try_from(member.compressed_size()).unwrap_or(0));
    member.read_to_end(raw).map_err(|e| e.to_string())?;
    let out = &mut buffers.data;
    let length = match method {
        zip::CompressionMethod::Stored => {
            out.clear();
            out.extend_from_slice(raw);
            raw.len()
        }
        zip::CompressionMethod::Deflated => {
            // Deflate expands at most 1032:1: a larger stated size is a lie,
            // and no room is made for it.
            if size > raw.len().saturating_mul(1032).saturating_add(64) {
                return Err(format!(
                    "a stated size of {size} bytes cannot come from {} deflated bytes",
                    raw.len()
                ));
            }
            // Room is only ever added (zeroed once); libdeflate writes over
            // what a member before left.
            if out.len() < size {
                out.resize(size, 0);
            }
            libdeflater::Decompressor::new()
                .deflate_decompress(raw, &mut out[..size])
                .map_err(|e| match e {
                    libdeflater::DecompressionError::InsufficientSpace => format!(
                        "the deflate stream does not end within its stated size of {size} bytes"
                    ),
                    libdeflater::DecompressionError::BadData => {
                        "the deflate stream is corrupt".to_owned()
                    }
                })?
        }
        other => return Err(format!("unsupported compression method {other}")),
    };
    if length != size {
        return Err(format!("{length} bytes where the header says {size}"));
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[..length]);
    if hasher.finalize() != crc {
        return Err("CRC-32 mismatch".to_owned());
    }
    Ok(length)
}

/// Reads the members of a zip whose names end with `suffix` in name order,
/// each into `buffers` (see [`MemberBuffers`]), and hands each one's
/// contents to `member`, stopping at its first error.
///
/// # Errors
/// A [`LeanError`] (converted) when the file cannot be read as a zip, holds
/// no such member or a member is corrupt; or the first error of `member`.
pub fn for_each_member<E: From<LeanError>>(
    path: &Path,
    suffix: &str,
    buffers: &mut MemberBuffers,
    mut member: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let (mut archive, members) = open_members(path, suffix)?;
    for (name, i) in members {
        let raw = archive.by_index_raw(i).map_err(|e| zip_error(path, &e))?;
        let length =
            read_member(raw, buffers).map_err(|reason| member_error(path, &name, reason))?;
        member(buffers.data.get(..length).unwrap_or_default())?;
    }
    Ok(())
}

/// Inflates the members of a zip whose names end with `suffix`, in name
/// order, a piece at a time: `piece` gets (whether the piece starts a member,
/// its bytes) and returns false to stop early. Pieces hold about
/// `piece_bytes` and end at a line end, except perhaps a member's last.
/// Each piece is written into a buffer from `buffer` (a used one given back
/// saves allocating and faulting in fresh pages). Each member is checked
/// against its CRC-32 and size once read.
///
/// # Errors
/// Returns a [`LeanError`] when the file cannot be read as a zip, holds no
/// such member, or a member is corrupt (after the pieces read before it).
pub fn stream_members(
    path: &Path,
    suffix: &str,
    piece_bytes: usize,
    mut buffer: impl FnMut() -> Vec<u8>,
    mut piece: impl FnMut(bool, Vec<u8>) -> bool,
) -> Result<(), LeanError> {
    let (mut archive, members) = open_members(path, suffix)?;
    for (name, i) in members {
        let member = archive.by_index_raw(i).map_err(|e| zip_error(path, &e))?;
        let more = stream_member(member, piece_bytes.max(1), &mut buffer, &mut piece)
            .map_err(|reason| member_error(path, &name, reason))?;
        if !more {
            break;
        }
    }
    Ok(())
}

/// Inflates one raw member piece by piece (see [`stream_members`]); returns
/// false when `piece` asked to stop.
fn stream_member<R: Read>(
    mut member: zip::read::ZipFile<'_, R>,
    piece_bytes: usize,
    buffer: &mut impl FnMut() -> Vec<u8>,
    piece: &mut impl FnMut(bool, Vec<u8>) -> bool,
) -> Result<bool, String> {
    let size = member.size();
    let crc = member.crc32();
    let method = member.compression();
    let mut raw = Vec::with_capacity(usize::try_from(member.compressed_size()).unwrap_or(0));
    member.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let mut inflater = flate2::Decompress::new(false);
    let mut hasher = crc32fast::Hasher::new();
    let mut carry: Vec<u8> = Vec::new();
    let (mut first, mut read) = (true, 0usize);
    loop {
        let mut out = buffer();
        out.clear();
        out.reserve(piece_bytes + carry.len());
        out.append(&mut carry);
        let start = out.len();
        let done = match method {
            zip::CompressionMethod::Stored => {
                let take = piece_bytes.min(raw.len() - read);
                out.extend_from_slice(&raw[read..read + take]);
                read += take;
                read == raw.len()
            }
            zip::CompressionMethod::Deflated => {
                let status = inflater
                    .decompress_vec(&raw[read..], &mut out, flate2::FlushDecompress::None)
                    .map_err(|e| e.to_string())?;
                let consumed = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
                if status != flate2::Status::StreamEnd && consumed == read && out.len() == start {
                    return Err("the deflate stream is truncated".to_owned());
                }
                read = consumed;
                status == flate2::Status::StreamEnd
            }
            other => return Err(format!("unsupported compression method {other}")),
        };
        hasher.update(&out[start..]);
        if !done {
            // Hold back the partial last line for the next piece.
            let keep = memchr::memrchr(b'\n', &out).map_or(0, |nl| nl + 1);
            carry.extend_from_slice(&out[keep..]);
            out.truncate(keep);
        }
        if !out.is_empty() || (first && done) {
            if !piece(first, out) {
                return Ok(false);
            }
            first = false;
        }
        if done {
            break;
        }
    }
    let total = match method {
        zip::CompressionMethod::Stored => u64::try_from(read).unwrap_or(u64::MAX),
        _ => inflater.total_out(),
    };
    if total != size {
        return Err(format!("{total} bytes where the header says {size}"));
    }
    if hasher.finalize() != crc {
        return Err("CRC-32 mismatch".to_owned());
    }
    Ok(true)
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

/// Returns the CSV members of a Lean quote-tick zip, inflated, in name order.
///
/// # Errors
/// Returns a [`LeanError`] when the file cannot be read as a Lean zip.
pub fn read_quote_members(path: &Path) -> Result<Vec<Vec<u8>>, LeanError> {
    Ok(read_members(path, ".csv")?
        .into_iter()
        .map(|(_, data)| data)
        .collect())
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
    let mut rows = QuoteRows::new(data, day_ns, price_scale);
    let mut block = [(0, 0, 0); 256];
    let mut lines = 0;
    loop {
        let read = rows.read_block(&mut lines, report, &mut block);
        if read == 0 {
            return;
        }
        for &(ts, bid, ask) in &block[..read] {
            out.ts_ns.push(ts);
            out.bid.push(bid);
            out.ask.push(ask);
        }
    }
}

/// Lean quote rows (`ms_since_midnight,bid,ask`) read from CSV text in
/// memory, a block of rows at a time, as (UTC epoch ns, bid mantissa, ask
/// mantissa); bad rows are counted in a [`ReadReport`].
///
/// At price scale 5, rows of the usual FX layout (`30741,1.38756,1.38758`
/// and a line end) are read a few 8-byte words at a time (see
/// [`RowShape`]); any other row goes through a general word-at-a-time
/// parser, then the checked one, which counts a bad row by reason. All
/// three agree wherever more than one accepts a row.
#[derive(Debug, Clone)]
pub struct QuoteRows<'a> {
    data: &'a [u8],
    pos: usize,
    day_ns: i64,
    price_scale: u8,
    /// The shape of the last row read in the usual FX layout.
    shape: Option<RowShape>,
}

impl<'a> QuoteRows<'a> {
    /// Returns a reader of `data` from its start; `day_ns` is the UTC epoch
    /// ns of the data day's local midnight.
    #[must_use]
    pub fn new(data: &'a [u8], day_ns: i64, price_scale: u8) -> Self {
        Self {
            data,
            pos: 0,
            day_ns,
            price_scale,
            shape: None,
        }
    }

    /// Reads good rows into `block` until it is full or the text ends;
    /// returns how many (0 at the end). `lines` counts the lines of the file
    /// read so far: start it at 0 for a whole file, or carry the running
    /// count when a file comes in pieces that end at line ends. Bad rows are
    /// counted in `report`.
    pub fn read_block(
        &mut self,
        lines: &mut u64,
        report: &mut ReadReport,
        block: &mut [(i64, i64, i64)],
    ) -> usize {
        let (data, day_ns) = (self.data, self.day_ns);
        let (mut pos, mut line, mut filled, mut fast) = (self.pos, *lines, 0, 0);
        while pos < data.len() && filled < block.len() {
            if let Some(shape) = self.shape {
                // The rows of the last shape, in a loop of their own.
                let read = shape.read_rows(data, pos, day_ns, &mut block[filled..]);
                filled += read;
                fast += read;
                line += u64::try_from(read).unwrap_or(u64::MAX);
                pos += read * shape.len();
                if filled == block.len() || pos >= data.len() {
                    break;
                }
            }
            // A row of another shape, or of another layout.
            line += 1;
            let Some(slot) = block.get_mut(filled) else {
                break;
            };
            let learnt = RowShape::at(data, pos, self.price_scale).filter(|shape| {
                shape.read_rows(data, pos, day_ns, std::slice::from_mut(slot)) == 1
            });
            if let Some(shape) = learnt {
                self.shape = Some(shape);
                filled += 1;
                fast += 1;
                pos += shape.len();
            } else {
                let (good, next) =
                    other_quote_row(data, pos, line, day_ns, self.price_scale, report);
                pos = next;
                if let Some(tick) = good {
                    *slot = tick;
                    filled += 1;
                }
            }
        }
        self.pos = pos;
        *lines = line;
        // (Rows of other shapes count themselves.)
        report.rows += u64::try_from(fast).unwrap_or(u64::MAX);
        filled
    }
}

/// The price scale of the usual FX layout that [`RowShape`] reads.
const FIXED_SCALE: u8 = 5;
/// Bytes in view when a row of the usual FX layout is read (rows take 19
/// to 26 with their line end).
const WINDOW: usize = 32;
/// Milliseconds since midnight must stay below a day and an hour.
const MAX_MS: i64 = 86_400_000 + 3_600_000;

/// The shape of a row in the usual FX layout, `ms,d.ddddd,d.ddddd` and a
/// line end (prices of one unit digit and five decimals): its time's digit
/// count and its line end. Where each field lies follows from the shape,
/// so a row is checked and converted as three 8-byte words (the time, and
/// each price with the comma before it) and its line end, with no search;
/// the rows of a file mostly share one shape (times are sorted, so their
/// length seldom changes), and each shape has a loop of its own, compiled
/// for it, whose rows do not wait on one another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowShape {
    /// Digits of the time (1 to 8).
    count: u8,
    /// Whether the line ends with `\r\n` (else `\n`).
    crlf: bool,
}

impl RowShape {
    /// Returns the shape of the row at `pos` if it may have the layout (the
    /// time's digits, and a line end where it must be); [`read_rows`]
    /// checks the rest. None for any scale but 5.
    fn at(data: &[u8], pos: usize, scale: u8) -> Option<Self> {
        if scale != FIXED_SCALE {
            return None;
        }
        let count = leading_digits(word_at(data, pos)?);
        let crlf = match data.get(pos + count + 16)? {
            b'\n' => false,
            b'\r' => true,
            _ => return None,
        };
        let count = u8::try_from(count).ok().filter(|c| *c > 0)?;
        Some(Self { count, crlf })
    }

    /// Bytes of a row of this shape with its line end.
    fn len(self) -> usize {
        usize::from(self.count) + 17 + usize::from(self.crlf)
    }

    /// Reads rows of this shape from `pos` into `out` (see [`read_rows`]);
    /// returns how many.
    fn read_rows(self, data: &[u8], pos: usize, day_ns: i64, out: &mut [(i64, i64, i64)]) -> usize {
        macro_rules! by_shape {
            ($($count:literal)*) => {
                match (self.count, self.crlf) {
                    $(
                        ($count, false) => read_rows::<$count, false>(data, pos, day_ns, out),
                        ($count, true) => read_rows::<$count, true>(data, pos, day_ns, out),
                    )*
                    _ => 0,
                }
            };
        }
        by_shape!(1 2 3 4 5 6 7 8)
    }
}

/// Reads rows of one shape (a time of `COUNT` digits, a line end of
/// `\r\n` when `CRLF`, else `\n`) from `pos` into `out`, as (UTC epoch ns,
/// bid, ask), until a row has another shape, `out` is full, or fewer than
/// [`WINDOW`] bytes are left; returns how many.
fn read_rows<const COUNT: usize, const CRLF: bool>(
    data: &[u8],
    mut pos: usize,
    day_ns: i64,
    out: &mut [(i64, i64, i64)],
) -> usize {
    let len = COUNT + 17 + usize::from(CRLF);
    let mut read = 0;
    for slot in out {
        let Some(row) = data.get(pos..).and_then(<[u8]>::first_chunk::<WINDOW>) else {
            break;
        };
        let Some((ms, bid, ask)) = fixed_row::<COUNT, CRLF>(row) else {
            break;
        };
        *slot = (day_ns + ms * NS_PER_MS, bid, ask);
        pos += len;
        read += 1;
    }
    read
}

/// `0` in each byte: XOR with it turns ASCII digits into their values.
const ZEROS: u64 = u64::from_le_bytes(*b"00000000");
/// A price with the comma before it, as its word must read once its digits
/// are zeros (XOR with it leaves the digits' values and zeros elsewhere).
const PRICE: u64 = u64::from_le_bytes(*b",0.00000");
/// Added to a word after the XOR, byte by byte: a digit's value above 9,
/// or anything but 0 where a mark was, reaches the byte's top bit.
const DIGIT_LIMIT: u64 = 0x7676_7676_7676_7676;
/// [`DIGIT_LIMIT`] for a price word: 0x7F at the comma and the point.
const PRICE_LIMIT: u64 = u64::from_le_bytes([0x7F, 0x76, 0x7F, 0x76, 0x76, 0x76, 0x76, 0x76]);
/// The top bit of every byte.
const TOP_BITS: u64 = 0x8080_8080_8080_8080;

/// Checks and converts one row of the shape (see [`read_rows`]) at the
/// start of `row`: returns (ms, bid, ask), or None when the row has
/// another shape or layout.
///
/// Each word is XORed with what it must read with zeros for digits; then
/// a byte is good when it is a digit's value (0 to 9) where a digit must
/// be, or 0 where a comma or point must be: adding 0x76 (or 0x7F) takes a
/// byte past its top bit exactly when it is not. A byte with its top bit
/// already set is bad either way, so a carry out of it changes no verdict.
#[inline(always)]
fn fixed_row<const COUNT: usize, const CRLF: bool>(row: &[u8; WINDOW]) -> Option<(i64, i64, i64)> {
    let time = window_word(row, 0) ^ ZEROS;
    let bid = window_word(row, COUNT) ^ PRICE;
    let ask = window_word(row, COUNT + 8) ^ PRICE;
    // The time's bytes are the first COUNT; the comma after a shorter time
    // is checked in the bid's word.
    let time_bytes = TOP_BITS >> (64 - 8 * COUNT);
    let bad = ((time | time.wrapping_add(DIGIT_LIMIT)) & time_bytes)
        | ((bid | bid.wrapping_add(PRICE_LIMIT) | ask | ask.wrapping_add(PRICE_LIMIT)) & TOP_BITS);
    let end = COUNT + 16;
    let line_end = if CRLF {
        row[end] == b'\r' && row[end + 1] == b'\n'
    } else {
        row[end] == b'\n'
    };
    // The time's digits to the top bytes: the bytes shifted in read as
    // leading zeros.
    let ms = digit_values(time << (64 - 8 * COUNT));
    if bad != 0 || !line_end || ms >= MAX_MS {
        return None;
    }
    Some((ms, price_value(bid), price_value(ask)))
}

/// The 8 bytes of `row` at `at` (at most 24) as a little-endian word.
#[inline(always)]
fn window_word(row: &[u8; WINDOW], at: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&row[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// The mantissa of a price word after the XOR with [`PRICE`]: bytes 0, d0,
/// 0, d1 ... d5 (`,1.39147` reads 0, 1, 0, 3, 9, 1, 4, 7), which is 139147.
#[inline(always)]
fn price_value(word: u64) -> i64 {
    // Read as they lie, the bytes give the unit digit ten times its weight:
    // 1039147 for 139147.
    let unit = i64::from((word >> 8) as u8);
    digit_values(word) - 900_000 * unit
}

/// Returns the value of eight digit values (0 to 9) in a word, the first
/// byte the most significant (D. Lemire's SWAR conversion, without its
/// first mask: the bytes are values already).
#[inline(always)]
fn digit_values(word: u64) -> i64 {
    let pairs = (word.wrapping_mul(10 << 8 | 1) >> 8) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs.wrapping_mul(100 << 16 | 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    // Below 10^8 (the top 32 bits of the product), so the conversion is lossless.
    i64::try_from(quads.wrapping_mul(10_000 << 32 | 1) >> 32).unwrap_or(0)
}

/// A line that is not in the fixed FX layout, at `pos`: the word-at-a-time
/// path, then the checked one, which counts a bad row by reason. Returns
/// the good row's (UTC epoch ns, bid, ask), and where the next line starts.
#[inline(never)]
fn other_quote_row(
    data: &[u8],
    pos: usize,
    line: u64,
    day_ns: i64,
    price_scale: u8,
    report: &mut ReadReport,
) -> (Option<(i64, i64, i64)>, usize) {
    let rest = data.get(pos..).unwrap_or_default();
    if let Some((ms, bid, ask, used)) = quick_quote_row(rest, price_scale) {
        report.rows += 1;
        return (Some((day_ns + ms * NS_PER_MS, bid, ask)), pos + used);
    }
    let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    let row = &rest[..end];
    let row = row.strip_suffix(b"\r").unwrap_or(row);
    let next = pos + end + 1;
    if row.is_empty() {
        return (None, next);
    }
    report.rows += 1;
    (
        checked_quote_row(row, line, day_ns, price_scale, report),
        next,
    )
}

/// The checked path of a quote row: every malformation counted by reason.
fn checked_quote_row(
    row: &[u8],
    line: u64,
    day_ns: i64,
    price_scale: u8,
    report: &mut ReadReport,
) -> Option<(i64, i64, i64)> {
    let Some((ms, bid, ask)) = three_fields(row) else {
        report.bad(line, "wrong_field_count");
        return None;
    };
    let Some(ms) = parse_ms(ms) else {
        report.bad(line, "bad_time");
        return None;
    };
    let parsed = parse_mantissa(bid, price_scale)
        .and_then(|b| parse_mantissa(ask, price_scale).map(|a| (b, a)));
    match parsed {
        Ok((b, a)) => Some((day_ns + ms * NS_PER_MS, b, a)),
        Err(err) => {
            report.bad(line, price_reason(err));
            None
        }
    }
}

/// Returns a word whose bytes are non-zero where the word's are not ASCII
/// digits (their high nibble is not 3, or their low nibble is above 9; no
/// carries between bytes).
#[inline(always)]
fn not_digits(word: u64) -> u64 {
    const LOW: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    ((word & HIGH) ^ 0x3030_3030_3030_3030) | (((word & LOW) + 0x0606_0606_0606_0606) & HIGH)
}

/// Powers of ten up to 10^18.
const POW10: [i64; 19] = {
    let mut table = [1i64; 19];
    let mut i = 1;
    while i < 19 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// The fast path of a quote row at the start of `data`: `ms,price,price`
/// with plain digits (prices `digits[.digits]`, no more decimals than
/// `scale`), then `\n`, `\r\n` or the end. Returns (ms, bid, ask, bytes used
/// with the line end), or None for anything else, which the checked path
/// decides; where both accept a row they agree.
#[inline]
fn quick_quote_row(data: &[u8], scale: u8) -> Option<(i64, i64, i64, usize)> {
    if scale > crate::price::MAX_SCALE {
        return None;
    }
    let (ms, at) = quick_digits(data, 0, 9)?;
    if data.get(at) != Some(&b',') || ms >= 86_400_000 + 3_600_000 {
        return None;
    }
    if let Some((bid, ask, used)) = fixed_prices(data, at, scale) {
        return Some((ms, bid, ask, used));
    }
    let (bid, at) = quick_price(data, at + 1, scale)?;
    if data.get(at) != Some(&b',') {
        return None;
    }
    let (ask, at) = quick_price(data, at + 1, scale)?;
    let used = match (data.get(at), data.get(at + 1)) {
        (None, _) => at,
        (Some(b'\n'), _) => at + 1,
        (Some(b'\r'), Some(b'\n')) => at + 2,
        _ => return None,
    };
    Some((ms, bid, ask, used))
}

/// The usual FX layout after the time, `,1.39147,1.39150` and a line end,
/// both prices one unit digit and exactly `scale` decimals (1 to 6). Every
/// position follows from where the time ends, so both prices are read at
/// once instead of one after the other. Returns (bid, ask, bytes used with
/// the line end) or None.
#[inline]
fn fixed_prices(data: &[u8], comma: usize, scale: u8) -> Option<(i64, i64, usize)> {
    let scale = usize::from(scale);
    if !(1..=6).contains(&scale) {
        return None;
    }
    let width = 2 + scale;
    let bid_at = comma + 1;
    let ask_at = bid_at + width + 1;
    let end = ask_at + width;
    let bid = fixed_price(word_at(data, bid_at)?, scale)?;
    let ask = fixed_price(word_at(data, ask_at)?, scale)?;
    let used = match (data.get(ask_at - 1), data.get(end), data.get(end + 1)) {
        (Some(b','), None, _) => end,
        (Some(b','), Some(b'\n'), _) => end + 1,
        (Some(b','), Some(b'\r'), Some(b'\n')) => end + 2,
        _ => return None,
    };
    Some((bid, ask, used))
}

/// Reads `d.` and `scale` decimal digits (1 to 6) at the start of a word.
#[inline]
fn fixed_price(word: u64, scale: usize) -> Option<i64> {
    let layout = leading_digits(word) == 1
        && (word >> 8) & 0xFF == u64::from(b'.')
        && leading_digits(word >> 16) >= scale;
    // The unit digit next to the decimals: `1.39147` reads as 139147.
    let digits = (word & 0xFF) | ((word >> 16) << 8);
    layout.then(|| eight_digits(digits << (8 * (7 - scale))))
}

/// Reads 1 to `max` ASCII digits from `at`; returns (value, index after them).
/// Up to eight digits at a time are found and converted as one word.
#[inline]
fn quick_digits(data: &[u8], at: usize, max: usize) -> Option<(i64, usize)> {
    let mut value = 0i64;
    let mut end = at;
    if let Some(word) = word_at(data, at) {
        let count = leading_digits(word);
        if count == 0 {
            return None;
        }
        // Digits to the top bytes; the bytes shifted in read as leading zeros.
        value = eight_digits(word << (8 * (8 - count)));
        end = at + count;
        if count < 8 {
            return (count <= max).then_some((value, end));
        }
    }
    while let Some(&b) = data.get(end) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        value = value.checked_mul(10)?.checked_add(i64::from(digit))?;
        end += 1;
    }
    (end > at && end - at <= max).then_some((value, end))
}

/// Returns the 8 bytes at `at` as a little-endian word (the first byte
/// lowest), when there are 8.
#[inline]
fn word_at(data: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = data.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Returns how many of a word's bytes, from the first, are ASCII digits (0 to 8).
#[inline]
fn leading_digits(word: u64) -> usize {
    const SEVEN: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let other = not_digits(word);
    let marks = (((other & SEVEN) + SEVEN) | other) & !SEVEN;
    (marks.trailing_zeros() / 8) as usize
}

/// Returns the value of eight ASCII digits in a word, the first byte the most
/// significant (D. Lemire's SWAR conversion; only low nibbles are read).
#[inline]
fn eight_digits(word: u64) -> i64 {
    let pairs = (word & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561) >> 8;
    let quads = (pairs & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601) >> 16;
    let value = (quads & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001) >> 32;
    // Below 10^8, so the conversion is lossless.
    i64::try_from(value & 0xFFFF_FFFF).unwrap_or(0)
}

/// Reads `digits[.digits]` at `scale` from `at` (at most 18 significant digits
/// in all, so no overflow); returns (mantissa, index after it).
#[inline(always)]
fn quick_price(data: &[u8], at: usize, scale: u8) -> Option<(i64, usize)> {
    let scale = usize::from(scale);
    // The usual FX layout, one unit digit and up to six decimals
    // (`1.39147`), read as one word.
    if let Some(word) = word_at(data, at) {
        let decimals = leading_digits(word >> 16);
        if (word >> 8) & 0xFF == u64::from(b'.')
            && leading_digits(word) == 1
            && (1..=scale).contains(&decimals)
            // Six decimals fill the word: the next byte must end them.
            && (decimals < 6 || data.get(at + 8).is_none_or(|b| !b.is_ascii_digit()))
        {
            // The unit digit next to the decimals: `1.39147` reads as 139147.
            let digits = (word & 0xFF) | ((word >> 16) << 8);
            let value = eight_digits(digits << (8 * (7 - decimals)));
            return Some((value * POW10[scale - decimals], at + 2 + decimals));
        }
    }
    let (units, end) = quick_digits(data, at, 18usize.checked_sub(scale)?)?;
    let units = units * POW10[scale];
    if data.get(end) != Some(&b'.') {
        return Some((units, end));
    }
    let (fraction, after) = quick_digits(data, end + 1, scale)?;
    Some((units + fraction * POW10[scale - (after - end - 1)], after))
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

    fn stored_zip(dir: &Path, name: &str, member: &str, text: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        let file = File::create(&path).expect("create zip");
        let mut writer = zip::ZipWriter::new(file);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        writer.start_file(member, stored).expect("start member");
        writer.write_all(text).expect("write member");
        writer.finish().expect("finish zip");
        path
    }

    fn many_rows(count: usize) -> String {
        (0..count)
            .map(|i| {
                format!(
                    "{},1.{:05},1.{:05}\r\n",
                    i * 10,
                    39_000 + i % 500,
                    39_002 + i % 500
                )
            })
            .collect()
    }

    #[test]
    fn streamed_pieces_end_at_line_ends_and_rebuild_each_member() {
        let dir = temp_dir("pieces");
        let (a, b) = (many_rows(3_000), many_rows(700));
        let path = zip_file(
            &dir,
            "20140508_quote.zip",
            &[("b_second.csv", b.as_str()), ("a_first.csv", a.as_str())],
        );
        let mut members: Vec<Vec<u8>> = Vec::new();
        let mut pieces = 0;
        stream_members(&path, ".csv", 1_000, Vec::new, |first, piece| {
            if first {
                members.push(Vec::new());
            }
            pieces += 1;
            if let Some(member) = members.last_mut() {
                member.extend_from_slice(&piece);
            }
            assert!(piece.ends_with(b"\n"), "a piece ends mid-line");
            true
        })
        .expect("readable");
        assert_eq!(members, vec![a.into_bytes(), b.into_bytes()]);
        assert!(pieces > 60, "{pieces} pieces");
        // Stopping early is not an error.
        let mut seen = 0;
        stream_members(&path, ".csv", 1_000, Vec::new, |_, _| {
            seen += 1;
            seen < 3
        })
        .expect("stops");
        assert_eq!(seen, 3);
    }

    #[test]
    fn members_read_into_kept_room_equal_members_read_fresh() {
        let dir = temp_dir("kept");
        let (long, short) = (many_rows(3_000), many_rows(700));
        let path = zip_file(
            &dir,
            "20140508_quote.zip",
            &[
                ("b_second.csv", short.as_str()),
                ("a_first.csv", long.as_str()),
            ],
        );
        let stored = stored_zip(&dir, "20140509_quote.zip", "q.csv", short.as_bytes());
        let mut buffers = MemberBuffers::default();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for file in [&path, &stored, &path] {
            let read: Result<(), LeanError> = for_each_member(file, ".csv", &mut buffers, |data| {
                seen.push(data.to_vec());
                Ok(())
            });
            read.expect("readable");
        }
        let (long, short) = (long.into_bytes(), short.into_bytes());
        assert_eq!(
            seen,
            vec![long.clone(), short.clone(), short.clone(), long, short]
        );
        // The caller's error stops the read and comes back.
        let mut calls = 0;
        let stopped = for_each_member(&path, ".csv", &mut buffers, |_| {
            calls += 1;
            Err(LeanError::NoDate("stop".to_owned()))
        });
        assert!(matches!(stopped, Err(LeanError::NoDate(_))));
        assert_eq!(calls, 1);
    }

    #[test]
    fn corrupt_members_are_errors_whole_or_streamed() {
        let dir = temp_dir("corrupt");
        let text = many_rows(50);
        let path = stored_zip(&dir, "20140508_quote.zip", "q.csv", text.as_bytes());
        let mut bytes = std::fs::read(&path).expect("read zip");
        let at = bytes
            .windows(5)
            .position(|w| w == b"1.390")
            .expect("stored text");
        bytes[at + 3] = b'7';
        std::fs::write(&path, &bytes).expect("write zip");
        let whole = read_quote_ticks(&path, 5, 0).expect_err("CRC");
        assert!(whole.to_string().contains("CRC-32 mismatch"), "{whole}");
        let kept: Result<(), LeanError> =
            for_each_member(&path, ".csv", &mut MemberBuffers::default(), |_| Ok(()));
        let kept = kept.expect_err("CRC");
        assert!(kept.to_string().contains("CRC-32 mismatch"), "{kept}");
        let streamed = stream_members(&path, ".csv", 64, Vec::new, |_, _| true).expect_err("CRC");
        assert!(streamed.to_string().contains("q.csv"), "{streamed}");
        assert!(
            streamed.to_string().contains("CRC-32 mismatch"),
            "{streamed}"
        );
    }

    #[test]
    fn corrupt_or_oversized_deflated_members_are_errors() {
        let dir = temp_dir("deflated");
        let text = many_rows(2_000);
        let path = zip_file(&dir, "20140508_quote.zip", &[("q.csv", text.as_str())]);
        let good = std::fs::read(&path).expect("read zip");
        let (ticks, _) = read_quote_ticks(&path, 5, 0).expect("readable");
        assert_eq!(ticks.bid.len(), 2_000);
        // The local header: the compressed stream starts after the name.
        let start = 30 + "q.csv".len();
        let mut bytes = good.clone();
        for b in &mut bytes[start + 40..start + 80] {
            *b ^= 0x5A;
        }
        std::fs::write(&path, &bytes).expect("write zip");
        let err = read_quote_ticks(&path, 5, 0).expect_err("corrupt stream");
        let text = err.to_string();
        assert!(
            text.contains("q.csv") && (text.contains("corrupt") || text.contains("CRC-32")),
            "{text}"
        );
        // An uncompressed size far beyond what the stream can give: refused
        // before any buffer is allocated.
        let mut bytes = good;
        let central = bytes
            .windows(4)
            .rposition(|w| w == b"PK\x01\x02")
            .expect("central directory");
        bytes[central + 24..central + 28].copy_from_slice(&0xF000_0000u32.to_le_bytes());
        bytes[22..26].copy_from_slice(&0xF000_0000u32.to_le_bytes());
        std::fs::write(&path, &bytes).expect("write zip");
        let err = read_quote_ticks(&path, 5, 0).expect_err("oversized");
        assert!(err.to_string().contains("cannot come from"), "{err}");
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

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::*;

    /// The row-by-row reader as it was before the fast path: every row through
    /// the checked path.
    fn reference(data: &[u8], scale: u8) -> (Vec<(i64, i64, i64)>, ReadReport) {
        let mut report = ReadReport::default();
        let mut out = Vec::new();
        for (line, row) in rows(data) {
            report.rows += 1;
            if let Some(tick) = checked_quote_row(row, line, 0, scale, &mut report) {
                out.push(tick);
            }
        }
        (out, report)
    }

    /// The block reader, in blocks of `block` rows.
    fn fast(data: &[u8], scale: u8, block: usize) -> (Vec<(i64, i64, i64)>, ReadReport) {
        let mut report = ReadReport::default();
        let mut out = Vec::new();
        let mut rows = QuoteRows::new(data, 0, scale);
        let mut buffer = vec![(0, 0, 0); block];
        let mut lines = 0;
        loop {
            let read = rows.read_block(&mut lines, &mut report, &mut buffer);
            if read == 0 {
                break;
            }
            out.extend_from_slice(&buffer[..read]);
        }
        let total = u64::try_from(data.split(|b| *b == b'\n').count()).expect("lines");
        let total = total - u64::from(data.ends_with(b"\n") || data.is_empty());
        assert_eq!(lines, total, "every line counted once");
        (out, report)
    }

    fn lean_row(ms: u32, bid: u32, ask: u32, decimals: usize, end: &str) -> String {
        let price = |v: u32| {
            format!("{}.{:05}", v / 100_000, v % 100_000)[..2 + decimals.min(5)].to_owned()
        };
        format!("{ms},{},{}{end}", price(bid), price(ask))
    }

    #[test]
    fn eight_digit_words_convert_exactly() {
        for (text, count, value) in [
            (&b"12345678"[..], 8, 12_345_678),
            (b"1.391470", 1, 1),
            (b"39147,1.", 5, 39_147),
            (b"0000001,", 7, 1),
            (b",1234567", 0, 0),
            (b"9999999:", 7, 9_999_999),
        ] {
            let word = word_at(text, 0).expect("eight bytes");
            let found = leading_digits(word);
            assert_eq!(found, count, "{text:?}");
            if found > 0 {
                assert_eq!(eight_digits(word << (8 * (8 - found))), value, "{text:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn fast_rows_equal_checked_rows(
            rows in prop::collection::vec(
                "[0-9]{0,10}(,[+-]?[0-9]{0,4}(\\.[0-9]{0,7})?){0,3}[a]?(\r)?",
                0..12,
            ),
            scale in 0u8..=14,
            last_newline in any::<bool>(),
            block in 1usize..5,
        ) {
            let mut text = rows.join("\n");
            if last_newline {
                text.push('\n');
            }
            prop_assert_eq!(fast(text.as_bytes(), scale, block), reference(text.as_bytes(), scale));
        }

        #[test]
        fn fast_rows_equal_checked_rows_on_lean_like_rows(
            rows in prop::collection::vec((0u32..99_999_999, 0u32..3_000_000, 0u32..3_000_000, 0usize..7), 1..40),
            scale in 0u8..=8,
            crlf in any::<bool>(),
            block in 1usize..40,
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let text: String = rows
                .iter()
                .map(|(ms, bid, ask, decimals)| lean_row(*ms, *bid, *ask, *decimals, end))
                .collect();
            prop_assert_eq!(fast(text.as_bytes(), scale, block), reference(text.as_bytes(), scale));
        }

        /// Rows of the usual FX layout with one byte changed: every byte of
        /// a row is checked by the fixed-layout path.
        #[test]
        fn fast_rows_equal_checked_rows_with_one_byte_changed(
            rows in prop::collection::vec((0u32..99_999_999, 100_000u32..999_999, 100_000u32..999_999, any::<bool>()), 3..30),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b"0123456789,.\r\n /:+-e\x80\xff".to_vec()),
        ) {
            let mut text: Vec<u8> = rows
                .iter()
                .flat_map(|(ms, bid, ask, crlf)| {
                    lean_row(*ms, *bid, *ask, 5, if *crlf { "\r\n" } else { "\n" }).into_bytes()
                })
                .collect();
            let at = at.index(text.len());
            text[at] = byte;
            prop_assert_eq!(fast(&text, 5, 7), reference(&text, 5));
        }
    }
}
