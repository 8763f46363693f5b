//! Parsers of recorded exchange feeds (Binance depth, trades and book tickers; Bybit order-book deltas).
//!
//! * Binance, as recorded by hftbacktest: gzip files of lines `<local_ts_ns> <json>`, where the
//!   JSON is a combined-stream message (`depthUpdate`, `trade` or `bookTicker` in `data`) or a
//!   REST depth snapshot (`{"lastUpdateId",...}`). See [`parse_binance_line`] and
//!   [`read_binance_gz`].
//! * Bybit `orderbook.<depth>` websocket messages (snapshot or delta), one JSON object a line,
//!   possibly inside a zip. See [`parse_bybit_line`] and [`read_bybit_zip`].
//!
//! Prices and sizes become fixed-point mantissas at the scales given in [`Scales`], parsed
//! exactly with [`Price::parse`]. A malformed line gives a [`FeedError`] that names the reason;
//! the readers go over a whole file, keep the good events, and count the bad lines by
//! [`FeedErrorKind`].
//!
//! [`BinanceBookSync`] drives an [`OrderBook`] from Binance depth diffs and snapshots with the
//! Binance book-sync rule, and [`BybitBookMessage::apply_to`] does the same for Bybit.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::marker::PhantomData;
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use thiserror::Error;

use crate::book::{BookError, BookState, Level, OrderBook, SeqRange, UpdateOutcome};
use crate::price::{Price, PriceError};

/// The decimal places of an instrument's prices and sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scales {
    /// Decimal places of prices.
    pub price: u8,
    /// Decimal places of sizes (quantities).
    pub size: u8,
}

impl Scales {
    /// Returns scales of `price` and `size` decimal places.
    #[must_use]
    pub const fn new(price: u8, size: u8) -> Self {
        Self { price, size }
    }
}

/// Why one line of a feed could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FeedError {
    /// The line is not valid UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
    /// The line has no `<timestamp> <json>` separator.
    #[error("no space between the local timestamp and the JSON")]
    MissingTimestamp,
    /// The local timestamp is not an integer.
    #[error("bad local timestamp {0:?}")]
    BadTimestamp(String),
    /// The JSON is malformed or a field has the wrong type.
    #[error("bad JSON: {0}")]
    Json(String),
    /// The message is of a type this parser does not know.
    #[error("unknown message type {0:?}")]
    UnknownMessage(String),
    /// A field the message type needs is missing.
    #[error("{message} message without field {field:?}")]
    MissingField {
        /// The message type.
        message: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A price or size is not a decimal number at the scale.
    #[error("bad number in {field}: {error}")]
    BadNumber {
        /// The field.
        field: &'static str,
        /// Why the number is bad.
        error: PriceError,
    },
    /// A price is zero or negative.
    #[error("non-positive price {value} in {field}")]
    NonPositivePrice {
        /// The field.
        field: &'static str,
        /// The price mantissa.
        value: i64,
    },
    /// A size is negative.
    #[error("negative size {value} in {field}")]
    NegativeSize {
        /// The field.
        field: &'static str,
        /// The size mantissa.
        value: i64,
    },
}

/// The reason of a [`FeedError`], without its details: what bad lines are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeedErrorKind {
    /// [`FeedError::NotUtf8`].
    NotUtf8,
    /// [`FeedError::MissingTimestamp`].
    MissingTimestamp,
    /// [`FeedError::BadTimestamp`].
    BadTimestamp,
    /// [`FeedError::Json`].
    Json,
    /// [`FeedError::UnknownMessage`].
    UnknownMessage,
    /// [`FeedError::MissingField`].
    MissingField,
    /// [`FeedError::BadNumber`].
    BadNumber,
    /// [`FeedError::NonPositivePrice`].
    NonPositivePrice,
    /// [`FeedError::NegativeSize`].
    NegativeSize,
}

impl FeedErrorKind {
    /// All reasons, in counter order.
    pub const ALL: [Self; 9] = [
        Self::NotUtf8,
        Self::MissingTimestamp,
        Self::BadTimestamp,
        Self::Json,
        Self::UnknownMessage,
        Self::MissingField,
        Self::BadNumber,
        Self::NonPositivePrice,
        Self::NegativeSize,
    ];

    /// Returns the reason's stable name, as used in counters and metrics.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::NotUtf8 => "not_utf8",
            Self::MissingTimestamp => "missing_timestamp",
            Self::BadTimestamp => "bad_timestamp",
            Self::Json => "json",
            Self::UnknownMessage => "unknown_message",
            Self::MissingField => "missing_field",
            Self::BadNumber => "bad_number",
            Self::NonPositivePrice => "non_positive_price",
            Self::NegativeSize => "negative_size",
        }
    }
}

impl FeedError {
    /// Returns the reason of the error, without its details.
    #[must_use]
    pub fn kind(&self) -> FeedErrorKind {
        match self {
            Self::NotUtf8 => FeedErrorKind::NotUtf8,
            Self::MissingTimestamp => FeedErrorKind::MissingTimestamp,
            Self::BadTimestamp(_) => FeedErrorKind::BadTimestamp,
            Self::Json(_) => FeedErrorKind::Json,
            Self::UnknownMessage(_) => FeedErrorKind::UnknownMessage,
            Self::MissingField { .. } => FeedErrorKind::MissingField,
            Self::BadNumber { .. } => FeedErrorKind::BadNumber,
            Self::NonPositivePrice { .. } => FeedErrorKind::NonPositivePrice,
            Self::NegativeSize { .. } => FeedErrorKind::NegativeSize,
        }
    }
}

impl From<serde_json::Error> for FeedError {
    fn from(err: serde_json::Error) -> Self {
        Self::Json(err.to_string())
    }
}

/// Why a whole feed file could not be read (as opposed to one bad line in it).
#[derive(Debug, Error)]
pub enum ReadError {
    /// The file could not be opened or read, or its compression is corrupt.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The zip archive is malformed.
    #[error("zip error: {0}")]
    Zip(#[from] zip::result::ZipError),
}

/// A bad line of a file: where it is and why it is bad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The 1-based line number (counted across the members of an archive).
    pub line: u64,
    /// Why the line is bad.
    pub error: FeedError,
}

/// How many bad lines a reader keeps as examples (all are counted).
pub const MAX_KEPT_ERRORS: usize = 32;

/// Counts of the lines of a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineStats {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Blank lines, skipped.
    pub blank: u64,
    /// Lines parsed into events.
    pub events: u64,
    bad: [u64; FeedErrorKind::ALL.len()],
    /// The first bad lines, up to [`MAX_KEPT_ERRORS`].
    pub first_errors: Vec<LineError>,
}

impl LineStats {
    /// Returns the number of bad lines for `kind`.
    #[must_use]
    pub fn bad(&self, kind: FeedErrorKind) -> u64 {
        self.bad[kind as usize]
    }

    /// Returns the number of bad lines of every reason.
    #[must_use]
    pub fn bad_total(&self) -> u64 {
        self.bad.iter().sum()
    }

    fn record_error(&mut self, line: u64, error: FeedError) {
        self.bad[error.kind() as usize] += 1;
        if self.first_errors.len() < MAX_KEPT_ERRORS {
            self.first_errors.push(LineError { line, error });
        }
    }
}

/// The events of a whole file and the counts of its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedFile<E> {
    /// The events of the good lines, in file order.
    pub events: Vec<E>,
    /// Counts of good, blank and bad lines.
    pub stats: LineStats,
}

impl<E> Default for FeedFile<E> {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            stats: LineStats::default(),
        }
    }
}

/// An event with the local time it was received at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded<E> {
    /// The local receive time, in nanoseconds since the Unix epoch (UTC).
    pub local_ts_ns: i64,
    /// The event.
    pub event: E,
}

/// A Binance diff-depth message (`depthUpdate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepthDiff {
    /// The symbol (`s`).
    pub symbol: String,
    /// The event time in ms since the epoch (`E`).
    pub event_time_ms: i64,
    /// The matching-engine time in ms since the epoch (`T`, USD-M futures only).
    pub transaction_time_ms: Option<i64>,
    /// The first update id in the message (`U`).
    pub first_update_id: u64,
    /// The last update id in the message (`u`).
    pub final_update_id: u64,
    /// The last update id of the previous message of the stream (`pu`, USD-M futures only).
    pub prev_final_update_id: Option<u64>,
    /// Bid level changes (`b`); size 0 deletes the level.
    pub bids: Vec<Level>,
    /// Ask level changes (`a`); size 0 deletes the level.
    pub asks: Vec<Level>,
}

impl DepthDiff {
    /// Returns the update ids the message covers, linked by `pu` where it has one.
    #[must_use]
    pub fn seq_range(&self) -> SeqRange {
        SeqRange {
            first: self.first_update_id,
            last: self.final_update_id,
            prev_last: self.prev_final_update_id,
        }
    }

    /// Returns the number of level changes in the message.
    #[must_use]
    pub fn level_count(&self) -> usize {
        self.bids.len() + self.asks.len()
    }
}

/// A Binance REST depth snapshot (`GET depth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepthSnapshot {
    /// The update id the snapshot is valid at (`lastUpdateId`).
    pub last_update_id: u64,
    /// The message time in ms since the epoch (`E`, USD-M futures only).
    pub event_time_ms: Option<i64>,
    /// The matching-engine time in ms since the epoch (`T`, USD-M futures only).
    pub transaction_time_ms: Option<i64>,
    /// Bid levels, best first.
    pub bids: Vec<Level>,
    /// Ask levels, best first.
    pub asks: Vec<Level>,
}

/// A Binance trade (`trade`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    /// The symbol (`s`).
    pub symbol: String,
    /// The event time in ms since the epoch (`E`).
    pub event_time_ms: i64,
    /// The trade time in ms since the epoch (`T`).
    pub trade_time_ms: i64,
    /// The trade id (`t`).
    pub trade_id: u64,
    /// The price mantissa (`p`).
    pub price: i64,
    /// The quantity mantissa (`q`).
    pub quantity: i64,
    /// Whether the buyer was the maker, i.e. the aggressor sold (`m`).
    pub buyer_is_maker: bool,
}

/// A Binance best bid and offer (`bookTicker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookTicker {
    /// The symbol (`s`).
    pub symbol: String,
    /// The order-book update id (`u`).
    pub update_id: u64,
    /// The event time in ms since the epoch (`E`, USD-M futures only).
    pub event_time_ms: Option<i64>,
    /// The matching-engine time in ms since the epoch (`T`, USD-M futures only).
    pub transaction_time_ms: Option<i64>,
    /// The best bid price and size (`b`, `B`).
    pub bid: Level,
    /// The best ask price and size (`a`, `A`).
    pub ask: Level,
}

/// One message of a recorded Binance feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinanceEvent {
    /// A diff-depth message.
    Depth(DepthDiff),
    /// A trade.
    Trade(Trade),
    /// A best bid and offer.
    BookTicker(BookTicker),
    /// A REST depth snapshot.
    Snapshot(DepthSnapshot),
}

/// The `b` and `a` fields: a list of `[price, size]` in depth messages, a price string in
/// book tickers.
enum SideField<'a> {
    Text(&'a str),
    Levels(Vec<[&'a str; 2]>),
}

impl<'de: 'a, 'a> Deserialize<'de> for SideField<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SideVisitor<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for SideVisitor<'a> {
            type Value = SideField<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a price string or a list of [price, size] pairs")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(SideField::Text(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut levels = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(pair) = seq.next_element::<[&'de str; 2]>()? {
                    levels.push(pair);
                }
                Ok(SideField::Levels(levels))
            }
        }

        deserializer.deserialize_any(SideVisitor(PhantomData))
    }
}

/// The union of the fields of a Binance line; which are present depends on the message type.
#[derive(Deserialize)]
struct RawBinance<'a> {
    #[serde(default, borrow)]
    stream: Option<&'a str>,
    #[serde(default, borrow)]
    data: Option<RawBinanceData<'a>>,
    #[serde(default, rename = "lastUpdateId")]
    last_update_id: Option<u64>,
    #[serde(default, rename = "E")]
    event_time: Option<i64>,
    #[serde(default, rename = "T")]
    transaction_time: Option<i64>,
    #[serde(default, borrow)]
    bids: Option<Vec<[&'a str; 2]>>,
    #[serde(default, borrow)]
    asks: Option<Vec<[&'a str; 2]>>,
}

#[derive(Deserialize)]
struct RawBinanceData<'a> {
    #[serde(default, rename = "e", borrow)]
    event_type: Option<&'a str>,
    #[serde(default, rename = "E")]
    event_time: Option<i64>,
    #[serde(default, rename = "T")]
    transaction_time: Option<i64>,
    #[serde(default, rename = "s", borrow)]
    symbol: Option<&'a str>,
    #[serde(default, rename = "U")]
    first_update_id: Option<u64>,
    #[serde(default, rename = "u")]
    final_update_id: Option<u64>,
    #[serde(default)]
    pu: Option<u64>,
    #[serde(default, borrow)]
    b: Option<SideField<'a>>,
    #[serde(default, borrow)]
    a: Option<SideField<'a>>,
    #[serde(default, rename = "B", borrow)]
    bid_size: Option<&'a str>,
    #[serde(default, rename = "A", borrow)]
    ask_size: Option<&'a str>,
    #[serde(default, rename = "t")]
    trade_id: Option<u64>,
    #[serde(default, rename = "p", borrow)]
    price: Option<&'a str>,
    #[serde(default, rename = "q", borrow)]
    quantity: Option<&'a str>,
    #[serde(default, rename = "m")]
    buyer_is_maker: Option<bool>,
}

fn required<T>(
    value: Option<T>,
    message: &'static str,
    field: &'static str,
) -> Result<T, FeedError> {
    value.ok_or(FeedError::MissingField { message, field })
}

fn parse_price(text: &str, scale: u8, field: &'static str) -> Result<i64, FeedError> {
    let mantissa = Price::parse(text, scale)
        .map_err(|error| FeedError::BadNumber { field, error })?
        .mantissa;
    if mantissa <= 0 {
        return Err(FeedError::NonPositivePrice {
            field,
            value: mantissa,
        });
    }
    Ok(mantissa)
}

fn parse_size(text: &str, scale: u8, field: &'static str) -> Result<i64, FeedError> {
    let mantissa = Price::parse(text, scale)
        .map_err(|error| FeedError::BadNumber { field, error })?
        .mantissa;
    if mantissa < 0 {
        return Err(FeedError::NegativeSize {
            field,
            value: mantissa,
        });
    }
    Ok(mantissa)
}

fn parse_levels(
    pairs: &[[&str; 2]],
    scales: Scales,
    price_field: &'static str,
    size_field: &'static str,
) -> Result<Vec<Level>, FeedError> {
    pairs
        .iter()
        .map(|[price, size]| {
            Ok(Level::new(
                parse_price(price, scales.price, price_field)?,
                parse_size(size, scales.size, size_field)?,
            ))
        })
        .collect()
}

fn side_levels(
    field: Option<SideField<'_>>,
    scales: Scales,
    name: &'static str,
    price_field: &'static str,
    size_field: &'static str,
) -> Result<Vec<Level>, FeedError> {
    match required(field, "depthUpdate", name)? {
        SideField::Levels(pairs) => parse_levels(&pairs, scales, price_field, size_field),
        SideField::Text(_) => Err(FeedError::Json(format!(
            "depthUpdate field {name:?} is a string, not a list of levels"
        ))),
    }
}

fn side_price(
    field: Option<SideField<'_>>,
    scales: Scales,
    name: &'static str,
) -> Result<i64, FeedError> {
    match required(field, "bookTicker", name)? {
        SideField::Text(text) => parse_price(text, scales.price, name),
        SideField::Levels(_) => Err(FeedError::Json(format!(
            "bookTicker field {name:?} is a list, not a price"
        ))),
    }
}

/// Parses the JSON of one Binance message: a combined-stream message or a REST depth snapshot.
///
/// # Errors
/// Returns a [`FeedError`] saying why the JSON is not a known, well-formed message.
pub fn parse_binance_json(json: &str, scales: Scales) -> Result<BinanceEvent, FeedError> {
    let raw: RawBinance<'_> = serde_json::from_str(json)?;
    if let Some(last_update_id) = raw.last_update_id {
        const MSG: &str = "depth snapshot";
        return Ok(BinanceEvent::Snapshot(DepthSnapshot {
            last_update_id,
            event_time_ms: raw.event_time,
            transaction_time_ms: raw.transaction_time,
            bids: parse_levels(
                &required(raw.bids, MSG, "bids")?,
                scales,
                "bids.price",
                "bids.size",
            )?,
            asks: parse_levels(
                &required(raw.asks, MSG, "asks")?,
                scales,
                "asks.price",
                "asks.size",
            )?,
        }));
    }
    let data = required(raw.data, "combined stream", "data")?;
    // Spot book tickers carry no "e"; their stream name says what they are.
    let event_type = match (data.event_type, raw.stream) {
        (Some(event_type), _) => event_type,
        (None, Some(stream)) if stream.ends_with("@bookTicker") => "bookTicker",
        (None, stream) => {
            return Err(FeedError::UnknownMessage(format!(
                "no event type (stream {})",
                stream.unwrap_or("unnamed")
            )))
        }
    };
    match event_type {
        "depthUpdate" => {
            const MSG: &str = "depthUpdate";
            Ok(BinanceEvent::Depth(DepthDiff {
                symbol: required(data.symbol, MSG, "s")?.to_owned(),
                event_time_ms: required(data.event_time, MSG, "E")?,
                transaction_time_ms: data.transaction_time,
                first_update_id: required(data.first_update_id, MSG, "U")?,
                final_update_id: required(data.final_update_id, MSG, "u")?,
                prev_final_update_id: data.pu,
                bids: side_levels(data.b, scales, "b", "b.price", "b.size")?,
                asks: side_levels(data.a, scales, "a", "a.price", "a.size")?,
            }))
        }
        "trade" => {
            const MSG: &str = "trade";
            Ok(BinanceEvent::Trade(Trade {
                symbol: required(data.symbol, MSG, "s")?.to_owned(),
                event_time_ms: required(data.event_time, MSG, "E")?,
                trade_time_ms: required(data.transaction_time, MSG, "T")?,
                trade_id: required(data.trade_id, MSG, "t")?,
                price: parse_price(required(data.price, MSG, "p")?, scales.price, "p")?,
                quantity: parse_size(required(data.quantity, MSG, "q")?, scales.size, "q")?,
                buyer_is_maker: required(data.buyer_is_maker, MSG, "m")?,
            }))
        }
        "bookTicker" => {
            const MSG: &str = "bookTicker";
            Ok(BinanceEvent::BookTicker(BookTicker {
                symbol: required(data.symbol, MSG, "s")?.to_owned(),
                update_id: required(data.final_update_id, MSG, "u")?,
                event_time_ms: data.event_time,
                transaction_time_ms: data.transaction_time,
                bid: Level::new(
                    side_price(data.b, scales, "b")?,
                    parse_size(required(data.bid_size, MSG, "B")?, scales.size, "B")?,
                ),
                ask: Level::new(
                    side_price(data.a, scales, "a")?,
                    parse_size(required(data.ask_size, MSG, "A")?, scales.size, "A")?,
                ),
            }))
        }
        other => Err(FeedError::UnknownMessage(other.to_owned())),
    }
}

/// Parses one hftbacktest line, `<local_ts_ns> <json>`, of a recorded Binance feed.
///
/// # Errors
/// Returns a [`FeedError`] saying why the line is malformed.
pub fn parse_binance_line(line: &str, scales: Scales) -> Result<Recorded<BinanceEvent>, FeedError> {
    let (ts, json) = line.split_once(' ').ok_or(FeedError::MissingTimestamp)?;
    let local_ts_ns = ts
        .parse::<i64>()
        .map_err(|_| FeedError::BadTimestamp(ts.chars().take(40).collect()))?;
    Ok(Recorded {
        local_ts_ns,
        event: parse_binance_json(json, scales)?,
    })
}

/// Whether a Bybit order-book message replaces the book or changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BybitKind {
    /// The whole book (`"snapshot"`).
    Snapshot,
    /// Level changes (`"delta"`); size 0 deletes the level.
    Delta,
}

/// A Bybit `orderbook.<depth>.<symbol>` websocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BybitBookMessage {
    /// The topic, e.g. `orderbook.500.XRPUSDT`.
    pub topic: String,
    /// Snapshot or delta (`type`).
    pub kind: BybitKind,
    /// The time the system produced the message, in ms since the epoch (`ts`).
    pub ts_ms: i64,
    /// The matching-engine time, in ms since the epoch (`cts`), where given.
    pub cts_ms: Option<i64>,
    /// The symbol (`data.s`).
    pub symbol: String,
    /// The update id (`data.u`), consecutive between messages of one stream.
    pub update_id: u64,
    /// The cross sequence (`data.seq`).
    pub cross_seq: u64,
    /// Bid levels (`data.b`).
    pub bids: Vec<Level>,
    /// Ask levels (`data.a`).
    pub asks: Vec<Level>,
}

impl BybitBookMessage {
    /// Applies the message to `book`: a snapshot replaces the book, a delta must follow the
    /// previous message's update id (`u`) by exactly one.
    ///
    /// # Errors
    /// Returns the [`BookError`] of [`OrderBook::apply_snapshot`] or
    /// [`OrderBook::apply_update`]; a [`BookError::Gap`] means a new snapshot is needed.
    pub fn apply_to(&self, book: &mut OrderBook) -> Result<UpdateOutcome, BookError> {
        match self.kind {
            BybitKind::Snapshot => {
                book.apply_snapshot(&self.bids, &self.asks, self.update_id)?;
                Ok(UpdateOutcome::Applied {
                    crossed: book.is_crossed(),
                })
            }
            BybitKind::Delta => {
                book.apply_update(SeqRange::single(self.update_id), &self.bids, &self.asks)
            }
        }
    }
}

#[derive(Deserialize)]
struct RawBybit<'a> {
    #[serde(default, borrow)]
    topic: Option<&'a str>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(default)]
    ts: Option<i64>,
    #[serde(default)]
    cts: Option<i64>,
    #[serde(default, borrow)]
    data: Option<RawBybitData<'a>>,
}

#[derive(Deserialize)]
struct RawBybitData<'a> {
    #[serde(default, rename = "s", borrow)]
    symbol: Option<&'a str>,
    #[serde(default, borrow)]
    b: Option<Vec<[&'a str; 2]>>,
    #[serde(default, borrow)]
    a: Option<Vec<[&'a str; 2]>>,
    #[serde(default)]
    u: Option<u64>,
    #[serde(default)]
    seq: Option<u64>,
}

/// Parses one line of a Bybit order-book recording (one websocket message as JSON).
///
/// # Errors
/// Returns a [`FeedError`] saying why the line is not a well-formed order-book message.
pub fn parse_bybit_line(line: &str, scales: Scales) -> Result<BybitBookMessage, FeedError> {
    const MSG: &str = "orderbook";
    let raw: RawBybit<'_> = serde_json::from_str(line)?;
    let topic = required(raw.topic, MSG, "topic")?;
    if !topic.starts_with("orderbook.") {
        return Err(FeedError::UnknownMessage(topic.to_owned()));
    }
    let kind = match required(raw.kind, MSG, "type")? {
        "snapshot" => BybitKind::Snapshot,
        "delta" => BybitKind::Delta,
        other => return Err(FeedError::UnknownMessage(format!("{topic} {other}"))),
    };
    let data = required(raw.data, MSG, "data")?;
    Ok(BybitBookMessage {
        topic: topic.to_owned(),
        kind,
        ts_ms: required(raw.ts, MSG, "ts")?,
        cts_ms: raw.cts,
        symbol: required(data.symbol, MSG, "data.s")?.to_owned(),
        update_id: required(data.u, MSG, "data.u")?,
        cross_seq: required(data.seq, MSG, "data.seq")?,
        bids: parse_levels(
            &required(data.b, MSG, "data.b")?,
            scales,
            "data.b.price",
            "data.b.size",
        )?,
        asks: parse_levels(
            &required(data.a, MSG, "data.a")?,
            scales,
            "data.a.price",
            "data.a.size",
        )?,
    })
}

/// Reads lines from `reader` into `file`, parsing each non-blank one with `parse`. Line numbers
/// continue from `file.stats.lines`, so that they run on across the members of an archive.
fn read_lines_into<R: BufRead, E>(
    mut reader: R,
    file: &mut FeedFile<E>,
    mut parse: impl FnMut(&str) -> Result<E, FeedError>,
) -> Result<(), ReadError> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        file.stats.lines += 1;
        let line_no = file.stats.lines;
        let bytes = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let parsed = std::str::from_utf8(bytes)
            .map_err(|_| FeedError::NotUtf8)
            .and_then(|line| {
                if line.trim().is_empty() {
                    Ok(None)
                } else {
                    parse(line).map(Some)
                }
            });
        match parsed {
            Ok(Some(event)) => {
                file.stats.events += 1;
                file.events.push(event);
            }
            Ok(None) => file.stats.blank += 1,
            Err(error) => file.stats.record_error(line_no, error),
        }
    }
}

/// Reads a whole recorded Binance feed (uncompressed lines `<local_ts_ns> <json>`).
///
/// # Errors
/// Returns a [`ReadError`] if reading fails; bad lines are counted, not errors.
pub fn read_binance_lines<R: BufRead>(
    reader: R,
    scales: Scales,
) -> Result<FeedFile<Recorded<BinanceEvent>>, ReadError> {
    let mut file = FeedFile::default();
    read_lines_into(reader, &mut file, |line| parse_binance_line(line, scales))?;
    Ok(file)
}

/// Reads a whole gzip-compressed recorded Binance feed, such as hftbacktest's
/// `btcusdt_20240808.gz`.
///
/// # Errors
/// Returns a [`ReadError`] if the file cannot be opened or read or is not valid gzip; bad
/// lines are counted, not errors.
pub fn read_binance_gz(
    path: impl AsRef<Path>,
    scales: Scales,
) -> Result<FeedFile<Recorded<BinanceEvent>>, ReadError> {
    let file = File::open(path)?;
    read_binance_lines(
        BufReader::new(MultiGzDecoder::new(BufReader::new(file))),
        scales,
    )
}

/// Reads a whole Bybit order-book recording (uncompressed JSON lines).
///
/// # Errors
/// Returns a [`ReadError`] if reading fails; bad lines are counted, not errors.
pub fn read_bybit_lines<R: BufRead>(
    reader: R,
    scales: Scales,
) -> Result<FeedFile<BybitBookMessage>, ReadError> {
    let mut file = FeedFile::default();
    read_lines_into(reader, &mut file, |line| parse_bybit_line(line, scales))?;
    Ok(file)
}

/// Reads every member of a zip of Bybit order-book recordings, in archive order, such as
/// nautilus_trader's `xrpusdt-ob500.data.zip`.
///
/// # Errors
/// Returns a [`ReadError`] if the file cannot be opened or read or is not a valid zip; bad
/// lines are counted, not errors.
pub fn read_bybit_zip(
    path: impl AsRef<Path>,
    scales: Scales,
) -> Result<FeedFile<BybitBookMessage>, ReadError> {
    let mut archive = zip::ZipArchive::new(BufReader::new(File::open(path)?))?;
    let mut file = FeedFile::default();
    for index in 0..archive.len() {
        let member = archive.by_index(index)?;
        if member.is_dir() {
            continue;
        }
        read_lines_into(BufReader::new(member), &mut file, |line| {
            parse_bybit_line(line, scales)
        })?;
    }
    Ok(file)
}

/// Which Binance market a depth stream is from: it decides how consecutive diffs link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinanceMarket {
    /// USD-M futures: each diff's `pu` must equal the previous diff's `u`.
    UsdM,
    /// Spot: each diff's `U` must be the previous diff's `u` + 1.
    Spot,
}

/// What one message did to a [`BinanceBookSync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncStep {
    /// The diff was kept until a snapshot arrives.
    Buffered,
    /// The diff ends at or before the book's update id and was dropped.
    Stale,
    /// The diff was applied.
    Applied {
        /// Whether the book is now crossed or locked (bad data).
        crossed: bool,
    },
    /// The snapshot was applied and the buffered diffs replayed over it.
    Synced {
        /// Buffered diffs applied.
        replayed: usize,
        /// Buffered diffs dropped as older than the snapshot.
        stale: usize,
        /// Whether the book is now crossed or locked (bad data).
        crossed: bool,
    },
    /// The event is not about the book (a trade or a book ticker).
    Ignored,
}

/// Counters of a [`BinanceBookSync`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Diffs received.
    pub diffs: u64,
    /// Diffs buffered while waiting for a snapshot.
    pub buffered: u64,
    /// Buffered diffs dropped because the buffer was full (the oldest go first).
    pub overflowed: u64,
    /// Diffs dropped as older than the book.
    pub stale: u64,
    /// Diffs applied to the book.
    pub applied: u64,
    /// Level changes applied to the book.
    pub level_updates: u64,
    /// Snapshots applied.
    pub snapshots: u64,
    /// Gaps found: each one means a new snapshot is needed.
    pub gaps: u64,
    /// Diffs that left the book crossed or locked.
    pub crossed: u64,
}

/// How many diffs a [`BinanceBookSync`] buffers while waiting for a snapshot.
pub const MAX_BUFFERED_DIFFS: usize = 100_000;

/// Keeps an [`OrderBook`] in sync with a Binance diff-depth stream and REST snapshots.
///
/// The rule is Binance's: buffer the diffs until a snapshot arrives; then drop the diffs with
/// `u <= lastUpdateId`; the first diff applied must straddle `lastUpdateId + 1`
/// (`U <= lastUpdateId + 1`; on USD-M futures, whose update ids are shared by all symbols,
/// `pu <= lastUpdateId` also does); every later diff must link to the previous one
/// (`pu` = previous `u` on USD-M, `U` = previous `u` + 1 on spot). A diff that does not is a
/// gap: the book stops taking diffs, buffers them again and waits for the next snapshot.
#[derive(Debug, Clone)]
pub struct BinanceBookSync {
    book: OrderBook,
    market: BinanceMarket,
    buffer: VecDeque<DepthDiff>,
    stats: SyncStats,
}

impl BinanceBookSync {
    /// Returns a sync for `market` with an empty book at `scales`, awaiting a snapshot.
    #[must_use]
    pub fn new(market: BinanceMarket, scales: Scales) -> Self {
        Self {
            book: OrderBook::new(scales.price, scales.size),
            market,
            buffer: VecDeque::new(),
            stats: SyncStats::default(),
        }
    }

    /// Returns the book.
    #[must_use]
    pub fn book(&self) -> &OrderBook {
        &self.book
    }

    /// Returns the book, giving up the sync.
    #[must_use]
    pub fn into_book(self) -> OrderBook {
        self.book
    }

    /// Returns the counters.
    #[must_use]
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Returns the number of diffs waiting for a snapshot.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    fn seq_range(&self, diff: &DepthDiff) -> SeqRange {
        match self.market {
            BinanceMarket::UsdM => diff.seq_range(),
            BinanceMarket::Spot => SeqRange::new(diff.first_update_id, diff.final_update_id),
        }
    }

    fn buffer_diff(&mut self, diff: DepthDiff) {
        if self.buffer.len() >= MAX_BUFFERED_DIFFS {
            self.buffer.pop_front();
            self.stats.overflowed += 1;
        }
        self.buffer.push_back(diff);
        self.stats.buffered += 1;
    }

    /// Applies `diff` to a live book, or buffers it while the book waits for a snapshot.
    fn apply(&mut self, diff: &DepthDiff) -> Result<UpdateOutcome, BookError> {
        let result = self
            .book
            .apply_update(self.seq_range(diff), &diff.bids, &diff.asks);
        match result {
            Ok(UpdateOutcome::Stale) => self.stats.stale += 1,
            Ok(UpdateOutcome::Applied { crossed }) => {
                self.stats.applied += 1;
                self.stats.level_updates += diff.level_count() as u64;
                self.stats.crossed += u64::from(crossed);
            }
            Err(_) => self.stats.gaps += 1,
        }
        result
    }

    /// Handles one diff: applies it to a live book, or buffers it while the book awaits a
    /// snapshot.
    ///
    /// # Errors
    /// Returns [`BookError::Gap`] (or another [`BookError`] of a bad diff) when the diff does
    /// not continue the book; the diff is then buffered and the book waits for a new snapshot.
    pub fn on_diff(&mut self, diff: &DepthDiff) -> Result<SyncStep, BookError> {
        self.stats.diffs += 1;
        if self.book.state() != BookState::Live {
            self.buffer_diff(diff.clone());
            return Ok(SyncStep::Buffered);
        }
        match self.apply(diff) {
            Ok(UpdateOutcome::Stale) => Ok(SyncStep::Stale),
            Ok(UpdateOutcome::Applied { crossed }) => Ok(SyncStep::Applied { crossed }),
            Err(err) => {
                self.buffer_diff(diff.clone());
                Err(err)
            }
        }
    }

    /// Applies a snapshot and replays the buffered diffs over it.
    ///
    /// # Errors
    /// Returns [`BookError::NegativeSize`] for a bad snapshot (the book is then unchanged), or
    /// [`BookError::Gap`] when the buffered diffs do not reach the snapshot; the diffs from the
    /// failing one on stay buffered for the next snapshot.
    pub fn on_snapshot(&mut self, snapshot: &DepthSnapshot) -> Result<SyncStep, BookError> {
        self.book
            .apply_snapshot(&snapshot.bids, &snapshot.asks, snapshot.last_update_id)?;
        self.stats.snapshots += 1;
        let mut replayed = 0;
        let mut stale = 0;
        while let Some(diff) = self.buffer.pop_front() {
            match self.apply(&diff) {
                Ok(UpdateOutcome::Stale) => stale += 1,
                Ok(UpdateOutcome::Applied { .. }) => replayed += 1,
                Err(err) => {
                    self.buffer.push_front(diff);
                    return Err(err);
                }
            }
        }
        Ok(SyncStep::Synced {
            replayed,
            stale,
            crossed: self.book.is_crossed(),
        })
    }

    /// Handles any Binance event: diffs and snapshots go to the book, others are ignored.
    ///
    /// # Errors
    /// Returns the errors of [`Self::on_diff`] and [`Self::on_snapshot`].
    pub fn on_event(&mut self, event: &BinanceEvent) -> Result<SyncStep, BookError> {
        match event {
            BinanceEvent::Depth(diff) => self.on_diff(diff),
            BinanceEvent::Snapshot(snapshot) => self.on_snapshot(snapshot),
            BinanceEvent::Trade(_) | BinanceEvent::BookTicker(_) => Ok(SyncStep::Ignored),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    const USDM: Scales = Scales::new(2, 3);
    const SPOT: Scales = Scales::new(8, 8);

    const USDM_DEPTH: &str = r#"1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,"T":1723161256298,"s":"BTCUSDT","U":5123107832006,"u":5123107837557,"pu":5123107831937,"b":[["58710.20","0.014"],["61510.90","0.000"]],"a":[["61800.30","2.5"]]}}"#;
    const SPOT_DEPTH: &str = r#"1723161253937085768 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT","U":50093239189,"u":50093239202,"b":[["61737.63000000","0.00000000"]],"a":[["61837.64000000","1.54698000"]]}}"#;
    const USDM_TICKER: &str = r#"1723161255088169167 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}"#;
    const SPOT_TICKER: &str = r#"1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;
    const USDM_TRADE: &str = r#"1723161255088176367 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}"#;
    const SPOT_TRADE: &str = r#"1723161254347673567 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255619,"s":"BTCUSDT","t":3735683260,"p":"61837.63000000","q":"0.04800000","T":1723161255617,"m":true,"M":true}}"#;
    const SNAPSHOT: &str = r#"1723161255319702566 {"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,"bids":[["61800.20","2.909"],["61800.10","0.696"]],"asks":[["61800.30","1.1"]]}"#;

    #[test]
    fn parses_usdm_depth_diff() {
        let rec = parse_binance_line(USDM_DEPTH, USDM).unwrap();
        assert_eq!(rec.local_ts_ns, 1_723_161_255_030_314_667);
        let BinanceEvent::Depth(diff) = rec.event else {
            panic!("not a diff: {rec:?}")
        };
        assert_eq!(diff.symbol, "BTCUSDT");
        assert_eq!(diff.event_time_ms, 1_723_161_256_299);
        assert_eq!(diff.transaction_time_ms, Some(1_723_161_256_298));
        assert_eq!(
            diff.seq_range(),
            SeqRange::linked(5_123_107_832_006, 5_123_107_837_557, 5_123_107_831_937)
        );
        assert_eq!(
            diff.bids,
            vec![Level::new(5_871_020, 14), Level::new(6_151_090, 0)]
        );
        assert_eq!(diff.asks, vec![Level::new(6_180_030, 2_500)]);
        assert_eq!(diff.level_count(), 3);
    }

    #[test]
    fn parses_spot_depth_diff_without_pu() {
        let rec = parse_binance_line(SPOT_DEPTH, SPOT).unwrap();
        let BinanceEvent::Depth(diff) = rec.event else {
            panic!("not a diff: {rec:?}")
        };
        assert_eq!(diff.prev_final_update_id, None);
        assert_eq!(diff.transaction_time_ms, None);
        assert_eq!(diff.bids, vec![Level::new(6_173_763_000_000, 0)]);
        assert_eq!(diff.asks, vec![Level::new(6_183_764_000_000, 154_698_000)]);
    }

    #[test]
    fn parses_book_tickers_of_both_markets() {
        let rec = parse_binance_line(USDM_TICKER, USDM).unwrap();
        assert_eq!(
            rec.event,
            BinanceEvent::BookTicker(BookTicker {
                symbol: "BTCUSDT".into(),
                update_id: 5_123_107_839_020,
                event_time_ms: Some(1_723_161_256_313),
                transaction_time_ms: Some(1_723_161_256_313),
                bid: Level::new(6_180_020, 2_507),
                ask: Level::new(6_180_030, 2_510),
            })
        );
        // Spot book tickers have no "e": the stream name tells.
        let rec = parse_binance_line(SPOT_TICKER, SPOT).unwrap();
        let BinanceEvent::BookTicker(ticker) = rec.event else {
            panic!("not a ticker: {rec:?}")
        };
        assert_eq!(ticker.update_id, 50_093_239_212);
        assert_eq!(ticker.event_time_ms, None);
        assert_eq!(ticker.bid, Level::new(6_183_763_000_000, 378_826_000));
    }

    #[test]
    fn parses_trades_of_both_markets() {
        let rec = parse_binance_line(USDM_TRADE, USDM).unwrap();
        assert_eq!(
            rec.event,
            BinanceEvent::Trade(Trade {
                symbol: "BTCUSDT".into(),
                event_time_ms: 1_723_161_256_322,
                trade_time_ms: 1_723_161_256_322,
                trade_id: 5_266_583_935,
                price: 6_180_030,
                quantity: 6,
                buyer_is_maker: false,
            })
        );
        let rec = parse_binance_line(SPOT_TRADE, SPOT).unwrap();
        let BinanceEvent::Trade(trade) = rec.event else {
            panic!("not a trade: {rec:?}")
        };
        assert!(trade.buyer_is_maker);
        assert_eq!(trade.quantity, 4_800_000);
    }

    #[test]
    fn parses_rest_snapshot() {
        let rec = parse_binance_line(SNAPSHOT, USDM).unwrap();
        assert_eq!(
            rec.event,
            BinanceEvent::Snapshot(DepthSnapshot {
                last_update_id: 5_123_107_852_948,
                event_time_ms: Some(1_723_161_256_501),
                transaction_time_ms: Some(1_723_161_256_493),
                bids: vec![Level::new(6_180_020, 2_909), Level::new(6_180_010, 696)],
                asks: vec![Level::new(6_180_030, 1_100)],
            })
        );
    }

    #[test]
    fn malformed_binance_lines_give_reasons() {
        let cases: [(&str, FeedErrorKind); 15] = [
            ("1723161255030314667", FeedErrorKind::MissingTimestamp),
            ("abc {}", FeedErrorKind::BadTimestamp),
            ("1 {not json", FeedErrorKind::Json),
            ("1 \"text\"", FeedErrorKind::Json),
            ("1 []", FeedErrorKind::MissingField),
            (
                r#"1 {"stream":"x","data":{"e":"kline"}}"#,
                FeedErrorKind::UnknownMessage,
            ),
            (
                r#"1 {"stream":"x@aggTrade","data":{"s":"X"}}"#,
                FeedErrorKind::UnknownMessage,
            ),
            (r#"1 {"stream":"x"}"#, FeedErrorKind::MissingField),
            (
                r#"1 {"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[]}}"#,
                FeedErrorKind::MissingField,
            ),
            (
                r#"1 {"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1.001","1"]],"a":[]}}"#,
                FeedErrorKind::BadNumber,
            ),
            (
                r#"1 {"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["-1","1"]],"a":[]}}"#,
                FeedErrorKind::NonPositivePrice,
            ),
            (
                r#"1 {"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","-1"]],"a":[]}}"#,
                FeedErrorKind::NegativeSize,
            ),
            (
                r#"1 {"data":{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":"1.0","a":[]}}"#,
                FeedErrorKind::Json,
            ),
            (
                r#"1 {"data":{"e":"bookTicker","u":1,"s":"X","b":[],"B":"1","a":"1","A":"1"}}"#,
                FeedErrorKind::Json,
            ),
            (
                r#"1 {"lastUpdateId":5,"bids":[]}"#,
                FeedErrorKind::MissingField,
            ),
        ];
        for (line, kind) in cases {
            let err = parse_binance_line(line, USDM).unwrap_err();
            assert_eq!(err.kind(), kind, "{line}: {err}");
            assert!(!err.to_string().is_empty());
        }
        assert_eq!(
            parse_binance_line(
                r#"1 {"data":{"e":"trade","E":1,"T":1,"s":"X","t":1,"q":"1","m":true}}"#,
                USDM
            ),
            Err(FeedError::MissingField {
                message: "trade",
                field: "p"
            })
        );
    }

    #[test]
    fn reader_keeps_good_events_and_counts_bad_lines() {
        let text = format!(
            "{USDM_DEPTH}\n\n{USDM_TICKER}\r\ngarbage\n1 {{broken\n{SNAPSHOT}\n{USDM_TRADE}"
        );
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\n1 \xff\xfe\n");
        let file = read_binance_lines(Cursor::new(bytes), USDM).unwrap();
        assert_eq!(file.stats.lines, 8);
        assert_eq!(file.stats.blank, 1);
        assert_eq!(file.stats.events, 4);
        assert_eq!(file.events.len(), 4);
        assert_eq!(file.stats.bad_total(), 3);
        assert_eq!(file.stats.bad(FeedErrorKind::MissingTimestamp), 1);
        assert_eq!(file.stats.bad(FeedErrorKind::Json), 1);
        assert_eq!(file.stats.bad(FeedErrorKind::NotUtf8), 1);
        let lines: Vec<u64> = file.stats.first_errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4, 5, 8]);
        assert!(matches!(file.events[3].event, BinanceEvent::Trade(_)));
        for kind in FeedErrorKind::ALL {
            assert!(!kind.name().is_empty());
        }
    }

    #[test]
    fn reads_gzip_files_and_reports_missing_ones() {
        let dir = std::env::temp_dir().join(format!("nexus-feeds-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sample.gz");
        let mut encoder = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::default(),
        );
        writeln!(encoder, "{SPOT_DEPTH}\n{SPOT_TICKER}\n{SPOT_TRADE}").unwrap();
        encoder.finish().unwrap();
        let file = read_binance_gz(&path, SPOT).unwrap();
        assert_eq!(file.stats.events, 3);
        assert_eq!(file.stats.bad_total(), 0);
        assert!(matches!(
            read_binance_gz(dir.join("missing.gz"), SPOT),
            Err(ReadError::Io(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    const BYBIT_SNAPSHOT: &str = r#"{"topic":"orderbook.500.XRPUSDT","type":"snapshot","ts":1733011200691,"data":{"s":"XRPUSDT","b":[["1.9531","6203"],["1.9530","2409"]],"a":[["1.9535","100"]],"u":20254869,"seq":130020238981},"cts":1733011200589}"#;
    const BYBIT_DELTA: &str = r#"{"topic":"orderbook.500.XRPUSDT","type":"delta","ts":1733011200693,"data":{"s":"XRPUSDT","b":[["1.9531","0"],["1.9532","7"]],"a":[],"u":20254870,"seq":130020238990},"cts":1733011200590}"#;
    const XRP: Scales = Scales::new(4, 0);

    #[test]
    fn parses_bybit_snapshot_and_delta_and_drives_a_book() {
        let snapshot = parse_bybit_line(BYBIT_SNAPSHOT, XRP).unwrap();
        assert_eq!(snapshot.kind, BybitKind::Snapshot);
        assert_eq!(snapshot.topic, "orderbook.500.XRPUSDT");
        assert_eq!(snapshot.symbol, "XRPUSDT");
        assert_eq!(snapshot.ts_ms, 1_733_011_200_691);
        assert_eq!(snapshot.cts_ms, Some(1_733_011_200_589));
        assert_eq!(snapshot.update_id, 20_254_869);
        assert_eq!(snapshot.cross_seq, 130_020_238_981);
        assert_eq!(
            snapshot.bids,
            vec![Level::new(19_531, 6_203), Level::new(19_530, 2_409)]
        );
        let delta = parse_bybit_line(BYBIT_DELTA, XRP).unwrap();
        assert_eq!(delta.kind, BybitKind::Delta);

        let mut book = OrderBook::new(4, 0);
        assert!(delta.apply_to(&mut book).is_err());
        assert_eq!(
            snapshot.apply_to(&mut book),
            Ok(UpdateOutcome::Applied { crossed: false })
        );
        assert_eq!(
            delta.apply_to(&mut book),
            Ok(UpdateOutcome::Applied { crossed: false })
        );
        assert_eq!(book.best_bid(), Some(Level::new(19_532, 7)));
        assert_eq!(book.size_at(crate::book::Side::Bid, 19_531), None);
        assert_eq!(delta.apply_to(&mut book), Ok(UpdateOutcome::Stale));
        let mut skipped = delta.clone();
        skipped.update_id += 2;
        assert!(matches!(
            skipped.apply_to(&mut book),
            Err(BookError::Gap { .. })
        ));
    }

    #[test]
    fn malformed_bybit_lines_give_reasons() {
        let cases: [(&str, FeedErrorKind); 6] = [
            ("{", FeedErrorKind::Json),
            (
                r#"{"topic":"publicTrade.XRPUSDT","type":"snapshot"}"#,
                FeedErrorKind::UnknownMessage,
            ),
            (
                r#"{"topic":"orderbook.1.X","type":"weird"}"#,
                FeedErrorKind::UnknownMessage,
            ),
            (
                r#"{"topic":"orderbook.1.X","type":"delta","ts":1}"#,
                FeedErrorKind::MissingField,
            ),
            (
                r#"{"topic":"orderbook.1.X","type":"delta","ts":1,"data":{"s":"X","b":[["1.23456","1"]],"a":[],"u":1,"seq":1}}"#,
                FeedErrorKind::BadNumber,
            ),
            (
                r#"{"topic":"orderbook.1.X","type":"delta","ts":1,"data":{"s":"X","b":[["1","1"]],"a":[],"seq":1}}"#,
                FeedErrorKind::MissingField,
            ),
        ];
        for (line, kind) in cases {
            let err = parse_bybit_line(line, XRP).unwrap_err();
            assert_eq!(err.kind(), kind, "{line}: {err}");
        }
        let file = read_bybit_lines(
            Cursor::new(format!("{BYBIT_SNAPSHOT}\n{{\n{BYBIT_DELTA}\n")),
            XRP,
        )
        .unwrap();
        assert_eq!(file.events.len(), 2);
        assert_eq!(file.stats.bad(FeedErrorKind::Json), 1);
        assert_eq!(file.stats.first_errors[0].line, 2);
    }

    fn diff(first: u64, last: u64, prev: Option<u64>, bids: &[(i64, i64)]) -> DepthDiff {
        DepthDiff {
            symbol: "X".into(),
            event_time_ms: 0,
            transaction_time_ms: None,
            first_update_id: first,
            final_update_id: last,
            prev_final_update_id: prev,
            bids: bids.iter().map(|&(p, s)| Level::new(p, s)).collect(),
            asks: Vec::new(),
        }
    }

    fn snapshot(last_update_id: u64) -> DepthSnapshot {
        DepthSnapshot {
            last_update_id,
            event_time_ms: None,
            transaction_time_ms: None,
            bids: vec![Level::new(100, 1)],
            asks: vec![Level::new(200, 1)],
        }
    }

    #[test]
    fn usdm_sync_buffers_drops_straddles_and_links() {
        let mut sync = BinanceBookSync::new(BinanceMarket::UsdM, Scales::new(0, 0));
        assert_eq!(
            sync.on_diff(&diff(1, 5, Some(0), &[(90, 1)])),
            Ok(SyncStep::Buffered)
        );
        assert_eq!(
            sync.on_diff(&diff(6, 9, Some(5), &[(91, 1)])),
            Ok(SyncStep::Buffered)
        );
        assert_eq!(
            sync.on_diff(&diff(12, 15, Some(9), &[(92, 1)])),
            Ok(SyncStep::Buffered)
        );
        assert_eq!(sync.buffered(), 3);
        // Snapshot at 9: the first two are stale; the third starts past 10 but links to 9.
        assert_eq!(
            sync.on_snapshot(&snapshot(9)),
            Ok(SyncStep::Synced {
                replayed: 1,
                stale: 2,
                crossed: false
            })
        );
        assert_eq!(sync.book().best_bid(), Some(Level::new(100, 1)));
        assert_eq!(sync.book().size_at(crate::book::Side::Bid, 92), Some(1));
        assert_eq!(sync.book().size_at(crate::book::Side::Bid, 91), None);
        assert_eq!(
            sync.on_diff(&diff(20, 22, Some(15), &[(150, 2)])),
            Ok(SyncStep::Applied { crossed: false })
        );
        assert_eq!(
            sync.on_event(&BinanceEvent::Depth(diff(23, 24, Some(22), &[(250, 1)]))),
            Ok(SyncStep::Applied { crossed: true })
        );
        // pu 30 != 24: a gap; the diff is kept for the next snapshot.
        assert!(matches!(
            sync.on_diff(&diff(31, 33, Some(30), &[(250, 0)])),
            Err(BookError::Gap { book_seq: 24, .. })
        ));
        assert_eq!(
            sync.on_diff(&diff(34, 35, Some(33), &[])),
            Ok(SyncStep::Buffered)
        );
        assert_eq!(sync.buffered(), 2);
        assert_eq!(
            sync.on_snapshot(&snapshot(32)),
            Ok(SyncStep::Synced {
                replayed: 2,
                stale: 0,
                crossed: false
            })
        );
        assert_eq!(sync.book().sequence(), 35);
        let stats = *sync.stats();
        assert_eq!(stats.diffs, 7);
        assert_eq!(stats.stale, 2);
        assert_eq!(stats.applied, 5);
        assert_eq!(stats.gaps, 1);
        assert_eq!(stats.snapshots, 2);
        assert_eq!(stats.crossed, 1);
        assert_eq!(stats.level_updates, 4);
        assert!(matches!(
            sync.on_event(&parse_binance_line(USDM_TRADE, USDM).unwrap().event),
            Ok(SyncStep::Ignored)
        ));
    }

    #[test]
    fn spot_sync_needs_contiguous_ids_and_a_straddling_first_diff() {
        let mut sync = BinanceBookSync::new(BinanceMarket::Spot, Scales::new(0, 0));
        sync.on_diff(&diff(12, 15, None, &[])).unwrap();
        // The first diff after the snapshot (at 9) starts at 12 > 10: the snapshot is too old.
        assert!(matches!(
            sync.on_snapshot(&snapshot(9)),
            Err(BookError::Gap {
                book_seq: 9,
                first: 12,
                ..
            })
        ));
        assert_eq!(sync.buffered(), 1);
        assert_eq!(
            sync.on_snapshot(&snapshot(13)),
            Ok(SyncStep::Synced {
                replayed: 1,
                stale: 0,
                crossed: false
            })
        );
        assert_eq!(
            sync.on_diff(&diff(16, 18, Some(999), &[])),
            Ok(SyncStep::Applied { crossed: false })
        );
        assert!(matches!(
            sync.on_diff(&diff(20, 21, None, &[])),
            Err(BookError::Gap { .. })
        ));
        let book = sync.into_book();
        assert_eq!(book.state(), BookState::Gapped);
    }

    #[test]
    fn buffer_is_bounded() {
        let mut sync = BinanceBookSync::new(BinanceMarket::Spot, Scales::new(0, 0));
        for i in 0..(MAX_BUFFERED_DIFFS as u64 + 5) {
            sync.on_diff(&diff(i + 1, i + 1, None, &[])).unwrap();
        }
        assert_eq!(sync.buffered(), MAX_BUFFERED_DIFFS);
        assert_eq!(sync.stats().overflowed, 5);
    }
}

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn binance_parser_never_panics(line in "\\PC{0,200}") {
            let _ = parse_binance_line(&line, Scales::new(2, 3));
        }

        #[test]
        fn bybit_parser_never_panics(line in "\\PC{0,200}") {
            let _ = parse_bybit_line(&line, Scales::new(4, 0));
        }

        /// Structured but hostile depth messages: any strings as prices and sizes.
        #[test]
        fn depth_levels_parse_or_fail_cleanly(
            price in "-?[0-9]{0,22}(\\.[0-9]{0,6})?",
            size in "-?[0-9]{0,22}(\\.[0-9]{0,6})?",
        ) {
            let line = format!(
                r#"1 {{"data":{{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["{price}","{size}"]],"a":[]}}}}"#
            );
            match parse_binance_line(&line, Scales::new(2, 3)) {
                Ok(rec) => {
                    let BinanceEvent::Depth(diff) = rec.event else {
                        return Err(TestCaseError::fail("not a diff"));
                    };
                    prop_assert!(diff.bids[0].price > 0);
                    prop_assert!(diff.bids[0].size >= 0);
                }
                Err(err) => prop_assert!(matches!(
                    err.kind(),
                    FeedErrorKind::BadNumber | FeedErrorKind::NonPositivePrice | FeedErrorKind::NegativeSize
                )),
            }
        }
    }
}
