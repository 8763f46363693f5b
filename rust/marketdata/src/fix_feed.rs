//! FIX market data normalised into L2 order books: MarketDataSnapshotFullRefresh (35=W) and
//! MarketDataIncrementalRefresh (35=X) of FIX 4.2, 4.4 and FIXT 1.1/FIX 5.0 SP2.
//!
//! A [`FixBookFeed`] holds one [`OrderBook`] per configured symbol and takes whole FIX messages
//! ([`FixBookFeed::on_message`]) or a buffer of concatenated messages, such as a FIX log
//! ([`FixBookFeed::on_buffer`]). Frames are checked and split into fields by the `nexus-fix`
//! codec (BeginString, BodyLength, CheckSum); no data dictionary is needed.
//!
//! # What is read
//!
//! * Message level (body fields before NoMDEntries): Symbol (55), MDReqID (262), RptSeq (83).
//! * NoMDEntries (268) and its entries. An entry starts at the group's delimiter, MDEntryType
//!   (269) in W and MDUpdateAction (279) in X, as in all three versions; the declared count must
//!   match. The group is laid out from the wire order, not from a dictionary, so that entries may
//!   carry RptSeq and venue-specific tags that the QuickFIX FIX 4.2/4.4 specs leave out of the
//!   group (a dictionary layout would end the group at the first such tag).
//! * In each entry: MDEntryType (269: 0 bid, 1 offer, J empty book), MDEntryPx (270),
//!   MDEntrySize (271), MDPriceLevel (1023), MDUpdateAction (279: 0 new, 1 change, 2 delete,
//!   3 delete thru, 4 delete from, 5 overlay), Symbol (55, else the message's), RptSeq (83).
//!
//! # Book operations
//!
//! New, change, delete and overlay name one level by its price. Delete Thru (3) deletes the
//! side's levels from the best through a boundary, Delete From (4) from a boundary to the worst,
//! both inclusive. The boundary is the MDPriceLevel (1023) position, 1 for the best level, as FIX
//! 5.0 SP2 defines it; without 1023, the level at MDEntryPx (270). A boundary the book does not
//! have (a position beyond its depth, a price without a level) means the book has drifted from
//! the venue's and is rejected like a delete of an absent level. Empty Book (269=J, FIX 5.0 SP2)
//! empties both sides: in an X at that point of the update (later entries may add levels again),
//! in a W as the whole snapshot (a W that has levels beside it contradicts itself and is
//! rejected).
//!
//! Trades (269=2) and the other FIX entry types (index values, opening prices, ...) do not
//! change a book: they are counted as ignored ([`FixFeedStats::trades`],
//! [`FixFeedStats::other_entries`]), but their RptSeq still counts in the sequence.
//!
//! # Sequence
//!
//! RptSeq is the instrument's feed sequence number. The entries of one symbol in one X form one
//! update covering RptSeq from its first entry to its last (non-decreasing), so both the
//! per-entry numbering (each entry +1) and the per-message numbering (all entries equal) fit.
//! The update must continue the book ([`OrderBook::check_sequence`]): one that ends at or before
//! the book is stale and skipped; one that skips numbers is a gap, after which the book refuses
//! updates until the next W ([`FixBookFeed::needs_snapshot`]). A W is valid at its message-level
//! RptSeq, else at the largest RptSeq of its entries. Where a feed sends no RptSeq (standard FIX
//! 4.2/4.4), each update is taken as the next one: the FIX session's own MsgSeqNum recovery keeps
//! such a feed in order.
//!
//! # Gap buffer
//!
//! With a gap buffer ([`FixBookFeed::set_gap_buffer`], off by default), the numbered updates of a
//! book that waits for a snapshot (the update that revealed the gap included) are kept instead
//! of refused ([`MessageStatus::Buffered`]), up to a bound of level changes per book (an update
//! that changes no level counts as one). When the bound is reached the oldest buffered updates
//! are dropped and counted ([`FixFeedStats::buffer_dropped`]). When the W arrives, the buffered
//! updates that end at or before its RptSeq are dropped as already in it (counted as stale) and
//! the newer ones are applied in order under the usual rules: if the oldest kept one does not
//! continue the W (the venue's W is older than what was dropped), the book is gapped again and
//! keeps buffering. Updates without RptSeq are never buffered: nothing would tell which of them
//! the W already holds.
//!
//! # Bad input
//!
//! A message that cannot be trusted as a whole (malformed frame, broken group, W without a known
//! Symbol) is rejected with one count of its reason. Otherwise each bad entry is counted under its
//! reason ([`RejectReason`]), and **one bad entry rejects its symbol's whole update**: the entries
//! of one update are one transition of the venue's book, and applying part of it would leave a
//! book that matches neither the state before nor after. A rejected X also marks the book out of
//! sequence, since it has now missed an update; a rejected W leaves the book as it was. Entries
//! of other symbols in the same message are applied. Change or delete of a level the book does
//! not have, and a new level at a price it already has, mean the book has drifted from the venue's
//! and are rejected the same way.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use nexus_fix::message::{
    parse_u64, scan_frame, FieldRef, Message, MessageStorage, ParseOptions, Scan, Section, Splitter,
};
use thiserror::Error;

use crate::book::{BookState, Continuity, Level, OrderBook, SeqRange, Side, UpdateOutcome};
use crate::feeds::Scales;
use crate::price::Price;

/// The FIX tags read by the feed.
mod tag {
    /// Symbol (55).
    pub const SYMBOL: u32 = 55;
    /// RptSeq (83).
    pub const RPT_SEQ: u32 = 83;
    /// MDReqID (262).
    pub const MD_REQ_ID: u32 = 262;
    /// NoMDEntries (268).
    pub const NO_MD_ENTRIES: u32 = 268;
    /// MDEntryType (269).
    pub const MD_ENTRY_TYPE: u32 = 269;
    /// MDEntryPx (270).
    pub const MD_ENTRY_PX: u32 = 270;
    /// MDEntrySize (271).
    pub const MD_ENTRY_SIZE: u32 = 271;
    /// MDUpdateAction (279).
    pub const MD_UPDATE_ACTION: u32 = 279;
    /// MDPriceLevel (1023).
    pub const MD_PRICE_LEVEL: u32 = 1023;
}

/// The values of MDEntryType (269) defined by FIX 5.0 SP2 (a superset of 4.2's and 4.4's).
const KNOWN_ENTRY_TYPES: &[u8] = b"0123456789ABCDEFGHJKLMNOPQRSTUVWXYZabcdeghit";

/// How many rejections a feed keeps with their details (all are counted).
pub const MAX_KEPT_ERRORS: usize = 32;

/// Why a message or an entry was rejected, without the details: what rejections are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The bytes are not a well-framed FIX message (BodyLength, CheckSum, tags).
    Malformed,
    /// A field the message or entry needs is absent.
    MissingField,
    /// NoMDEntries does not match its entries, or an entry does not start with the delimiter.
    BadGroup,
    /// A price, size or RptSeq is not a number (at the instrument's scale).
    BadNumber,
    /// A price is zero or negative.
    NonPositivePrice,
    /// A size is negative.
    NegativeSize,
    /// A new, changed or snapshot level has size 0.
    ZeroSize,
    /// MDUpdateAction is not a FIX value.
    UnknownAction,
    /// MDEntryType is not a FIX value.
    UnknownEntryType,
    /// A change or delete of a level the book does not have (by price or by position).
    AbsentLevel,
    /// A new level at a price the book already has (or a price twice in a snapshot).
    LevelExists,
    /// The symbol has no book in this feed.
    UnknownSymbol,
    /// RptSeq goes back or skips a number between entries of one update.
    BadSequence,
}

impl RejectReason {
    /// All reasons, in counter order.
    pub const ALL: [Self; 13] = [
        Self::Malformed,
        Self::MissingField,
        Self::BadGroup,
        Self::BadNumber,
        Self::NonPositivePrice,
        Self::NegativeSize,
        Self::ZeroSize,
        Self::UnknownAction,
        Self::UnknownEntryType,
        Self::AbsentLevel,
        Self::LevelExists,
        Self::UnknownSymbol,
        Self::BadSequence,
    ];

    /// Returns the reason's stable name, as used in counters and metrics.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::MissingField => "missing_field",
            Self::BadGroup => "bad_group",
            Self::BadNumber => "bad_number",
            Self::NonPositivePrice => "non_positive_price",
            Self::NegativeSize => "negative_size",
            Self::ZeroSize => "zero_size",
            Self::UnknownAction => "unknown_action",
            Self::UnknownEntryType => "unknown_entry_type",
            Self::AbsentLevel => "absent_level",
            Self::LevelExists => "level_exists",
            Self::UnknownSymbol => "unknown_symbol",
            Self::BadSequence => "bad_sequence",
        }
    }
}

/// " in entry N" (1-based) for an entry-level error, nothing for a message-level one.
fn at(entry: &Option<u32>) -> String {
    entry.map_or_else(String::new, |e| format!(" in entry {}", e + 1))
}

/// A rejection with its details.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FixMdError {
    /// The bytes are not a well-framed FIX message.
    #[error("malformed FIX message: {0}")]
    Malformed(String),
    /// A needed field is absent.
    #[error("no field {tag}{}", at(.entry))]
    MissingField {
        /// The tag.
        tag: u32,
        /// The entry (0-based), or `None` for the message.
        entry: Option<u32>,
    },
    /// NoMDEntries does not match its entries.
    #[error("bad NoMDEntries group: {0}")]
    BadGroup(String),
    /// A field is not a number at the instrument's scale.
    #[error("field {tag} is not a valid number: {value:?}{}", at(.entry))]
    BadNumber {
        /// The tag.
        tag: u32,
        /// The entry (0-based), or `None` for the message.
        entry: Option<u32>,
        /// The text (at most 40 characters of it).
        value: String,
    },
    /// A price is zero or negative.
    #[error("non-positive price {price}{}", at(.entry))]
    NonPositivePrice {
        /// The entry (0-based).
        entry: Option<u32>,
        /// The price mantissa.
        price: i64,
    },
    /// A size is negative.
    #[error("negative size {size}{}", at(.entry))]
    NegativeSize {
        /// The entry (0-based).
        entry: Option<u32>,
        /// The size mantissa.
        size: i64,
    },
    /// A level to add, change or snapshot has size 0.
    #[error("size 0 for a level to add, change or snapshot{}", at(.entry))]
    ZeroSize {
        /// The entry (0-based).
        entry: Option<u32>,
    },
    /// MDUpdateAction is not a FIX value.
    #[error("unknown MDUpdateAction {value:?}{}", at(.entry))]
    UnknownAction {
        /// The entry (0-based).
        entry: Option<u32>,
        /// The value.
        value: String,
    },
    /// MDEntryType is not a FIX value.
    #[error("unknown MDEntryType {value:?}{}", at(.entry))]
    UnknownEntryType {
        /// The entry (0-based).
        entry: Option<u32>,
        /// The value.
        value: String,
    },
    /// A change or delete of a level the book does not have.
    #[error("{action} of absent {side:?} level at price {price}{}", at(.entry))]
    AbsentLevel {
        /// The entry (0-based).
        entry: Option<u32>,
        /// "change", "delete", "delete thru" or "delete from".
        action: &'static str,
        /// The side.
        side: Side,
        /// The price mantissa.
        price: i64,
    },
    /// A Delete Thru or Delete From at a position beyond the side's depth.
    #[error(
        "{action} position {position} of the {side:?} side, which has {depth} levels{}",
        at(.entry)
    )]
    AbsentPosition {
        /// The entry (0-based).
        entry: Option<u32>,
        /// "delete thru" or "delete from".
        action: &'static str,
        /// The side.
        side: Side,
        /// MDPriceLevel (1023), 1 for the best level.
        position: u64,
        /// The levels the side has.
        depth: usize,
    },
    /// A new level at a price the book already has.
    #[error("new {side:?} level at price {price}, which the book already has{}", at(.entry))]
    LevelExists {
        /// The entry (0-based).
        entry: Option<u32>,
        /// The side.
        side: Side,
        /// The price mantissa.
        price: i64,
    },
    /// The symbol has no book in this feed.
    #[error("no book for symbol {symbol:?}{}", at(.entry))]
    UnknownSymbol {
        /// The entry (0-based), or `None` for the message.
        entry: Option<u32>,
        /// The symbol (at most 40 characters of it).
        symbol: String,
    },
    /// RptSeq goes back or skips a number within a message.
    #[error(
        "RptSeq {rpt_seq} after {previous} in the same update (each entry must repeat or add \
         one){}",
        at(.entry)
    )]
    BadSequence {
        /// The entry (0-based).
        entry: Option<u32>,
        /// The entry's RptSeq.
        rpt_seq: u64,
        /// The previous entry's RptSeq.
        previous: u64,
    },
}

impl FixMdError {
    /// Returns the reason of the error, without its details.
    #[must_use]
    pub fn reason(&self) -> RejectReason {
        match self {
            Self::Malformed(_) => RejectReason::Malformed,
            Self::MissingField { .. } => RejectReason::MissingField,
            Self::BadGroup(_) => RejectReason::BadGroup,
            Self::BadNumber { .. } => RejectReason::BadNumber,
            Self::NonPositivePrice { .. } => RejectReason::NonPositivePrice,
            Self::NegativeSize { .. } => RejectReason::NegativeSize,
            Self::ZeroSize { .. } => RejectReason::ZeroSize,
            Self::UnknownAction { .. } => RejectReason::UnknownAction,
            Self::UnknownEntryType { .. } => RejectReason::UnknownEntryType,
            Self::AbsentLevel { .. } | Self::AbsentPosition { .. } => RejectReason::AbsentLevel,
            Self::LevelExists { .. } => RejectReason::LevelExists,
            Self::UnknownSymbol { .. } => RejectReason::UnknownSymbol,
            Self::BadSequence { .. } => RejectReason::BadSequence,
        }
    }
}

/// What one message did, overall.
///
/// A message that touches several books reports the most serious outcome, in this order:
/// rejected, gap, awaiting snapshot, buffered, snapshot, applied, stale, ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    /// The message, or an entry of it, was rejected for this reason (the first one found).
    Rejected(RejectReason),
    /// An update skipped RptSeq numbers: its book needs a new snapshot.
    Gap,
    /// An update was refused because its book waits for a snapshot.
    AwaitingSnapshot,
    /// An update was kept in the gap buffer until its book's snapshot arrives.
    Buffered,
    /// A W replaced its book.
    Snapshot,
    /// X updates were applied.
    Applied,
    /// Every update was already in its book (RptSeq at or before the book's).
    Stale,
    /// Nothing for a book: another message type, or only trades and other entry types.
    Ignored,
}

impl MessageStatus {
    /// Returns the status's stable name (a rejection without its reason).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Rejected(_) => "rejected",
            Self::Gap => "gap",
            Self::AwaitingSnapshot => "awaiting_snapshot",
            Self::Buffered => "buffered",
            Self::Snapshot => "snapshot",
            Self::Applied => "applied",
            Self::Stale => "stale",
            Self::Ignored => "ignored",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Self::Rejected(_) => 7,
            Self::Gap => 6,
            Self::AwaitingSnapshot => 5,
            Self::Buffered => 4,
            Self::Snapshot => 3,
            Self::Applied => 2,
            Self::Stale => 1,
            Self::Ignored => 0,
        }
    }

    /// Returns the more serious of `self` and `other` (the first on a tie).
    fn worst(self, other: Self) -> Self {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// The result of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOutcome {
    /// What the message did.
    pub status: MessageStatus,
    /// MDReqID (262), to tie the message to its request.
    pub md_req_id: Option<String>,
    /// The first rejection of the message, with its details.
    pub error: Option<FixMdError>,
}

impl MessageOutcome {
    fn rejected(error: FixMdError) -> Self {
        Self {
            status: MessageStatus::Rejected(error.reason()),
            md_req_id: None,
            error: Some(error),
        }
    }
}

/// A rejection kept with the number of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptError {
    /// The 1-based number of the message in the feed.
    pub message: u64,
    /// The rejection.
    pub error: FixMdError,
}

/// Counters of a [`FixBookFeed`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixFeedStats {
    /// Messages (and unparsable stretches of a buffer) received.
    pub messages: u64,
    /// Messages of other types than W and X, ignored.
    pub other_messages: u64,
    /// W messages applied.
    pub snapshots: u64,
    /// Book updates (the entries of one symbol in one X) applied.
    pub updates_applied: u64,
    /// Level changes applied by those updates.
    pub level_updates: u64,
    /// Book updates skipped as already in the book.
    pub stale: u64,
    /// Gaps found: each one means the book needs a new snapshot.
    pub gaps: u64,
    /// Book updates refused because the book waits for a snapshot.
    pub awaiting_snapshot: u64,
    /// Snapshots and updates that left the book crossed or locked.
    pub crossed: u64,
    /// Book updates (X) and snapshots (W) rejected for a bad entry.
    pub updates_rejected: u64,
    /// Trade entries (269=2), ignored.
    pub trades: u64,
    /// Entries of other types than bid, offer, trade and empty book, ignored.
    pub other_entries: u64,
    /// Updates kept in the gap buffer while their book waited for a snapshot.
    pub buffered: u64,
    /// Buffered updates applied after their book's snapshot.
    pub buffer_applied: u64,
    /// Buffered updates dropped because the buffer of their book was full.
    pub buffer_dropped: u64,
    rejected: [u64; RejectReason::ALL.len()],
    /// The first rejections, up to [`MAX_KEPT_ERRORS`].
    pub first_errors: Vec<KeptError>,
}

impl FixFeedStats {
    /// Returns the number of rejections for `reason`: one per rejected message for a
    /// message-level reason, one per bad entry otherwise.
    #[must_use]
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason as usize]
    }

    /// Returns the number of rejections of every reason.
    #[must_use]
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    fn record(&mut self, error: &FixMdError) {
        self.rejected[error.reason() as usize] += 1;
        if self.first_errors.len() < MAX_KEPT_ERRORS {
            self.first_errors.push(KeptError {
                message: self.messages,
                error: error.clone(),
            });
        }
    }
}

/// The fields of one NoMDEntries entry that the feed reads.
#[derive(Debug, Clone, Copy, Default)]
struct EntryFields {
    action: Option<FieldRef>,
    entry_type: Option<FieldRef>,
    price: Option<FieldRef>,
    size: Option<FieldRef>,
    symbol: Option<FieldRef>,
    rpt_seq: Option<FieldRef>,
    price_level: Option<FieldRef>,
}

impl EntryFields {
    /// The slot of `tag`, if the feed reads it.
    fn slot(&mut self, tag: u32) -> Option<&mut Option<FieldRef>> {
        match tag {
            tag::MD_UPDATE_ACTION => Some(&mut self.action),
            tag::MD_ENTRY_TYPE => Some(&mut self.entry_type),
            tag::MD_ENTRY_PX => Some(&mut self.price),
            tag::MD_ENTRY_SIZE => Some(&mut self.size),
            tag::SYMBOL => Some(&mut self.symbol),
            tag::RPT_SEQ => Some(&mut self.rpt_seq),
            tag::MD_PRICE_LEVEL => Some(&mut self.price_level),
            _ => None,
        }
    }
}

/// The body of a W or X: message-level fields and the entries.
#[derive(Debug, Default)]
struct Body {
    symbol: Option<FieldRef>,
    md_req_id: Option<FieldRef>,
    rpt_seq: Option<FieldRef>,
}

/// What an entry does to one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    New,
    Change,
    Delete,
    /// Sets the level whether or not it exists (FIX 5.0 SP2 Overlay).
    Overlay,
}

/// Where a Delete Thru or Delete From stops (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    /// MDPriceLevel (1023): 1 is the best level.
    Position(u64),
    /// The level at this price (MDEntryPx, 270).
    Price(i64),
}

/// What one checked entry does to a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// New, change, delete or overlay of the level at a price: (action, side, price, size).
    Level(Action, Side, i64, i64),
    /// Delete Thru (`thru`: from the best level through the boundary) or Delete From (from the
    /// boundary to the worst level) of one side.
    Range {
        thru: bool,
        side: Side,
        boundary: Boundary,
    },
    /// Empty Book (269=J): both sides emptied.
    Empty,
}

/// One checked entry of a book update.
#[derive(Debug, Clone, Copy)]
struct Op {
    /// The entry's 0-based number in the message.
    entry: u32,
    /// The book change, or `None` for an entry that does not change a book (a trade).
    change: Option<Change>,
    rpt_seq: Option<u64>,
}

/// An update kept while its book waits for a snapshot.
#[derive(Debug, Clone)]
struct Pending {
    seq: SeqRange,
    ops: Vec<Op>,
}

impl Pending {
    /// What the update costs against the buffer's bound: its entries, at least one.
    fn cost(&self) -> usize {
        self.ops.len().max(1)
    }
}

/// One instrument of the feed.
#[derive(Debug, Clone)]
struct Instrument {
    symbol: Box<str>,
    scales: Scales,
    book: OrderBook,
    /// Updates buffered while the book is not live, oldest first.
    pending: VecDeque<Pending>,
    /// The cost of `pending`.
    pending_cost: usize,
}

/// Keeps L2 order books in sync with FIX market-data messages (35=W and 35=X), and counts what
/// it refused; see the [module documentation](self) for the rules.
///
/// ```
/// use nexus_marketdata::feeds::Scales;
/// use nexus_marketdata::fix_feed::{FixBookFeed, MessageStatus};
///
/// let mut feed = FixBookFeed::new();
/// feed.add_instrument("EUR/USD", Scales::new(5, 0));
/// let w = nexus_fix::encode("FIX.4.4", b"35=W\x0155=EUR/USD\x0183=7\x01268=2\x01\
///     269=0\x01270=1.08001\x01271=1000000\x01269=1\x01270=1.08004\x01271=500000\x01");
/// assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
/// let x = nexus_fix::encode("FIX.4.4", b"35=X\x01268=1\x01\
///     279=2\x01269=1\x0155=EUR/USD\x0183=8\x01270=1.08004\x01");
/// assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
/// let book = feed.book("EUR/USD").unwrap();
/// assert_eq!(book.best_ask(), None);
/// assert_eq!(book.sequence(), 8);
/// ```
#[derive(Debug, Default)]
pub struct FixBookFeed {
    index: HashMap<Box<str>, usize>,
    instruments: Vec<Instrument>,
    stats: FixFeedStats,
    storage: Option<MessageStorage>,
    entries: Vec<EntryFields>,
    ops: Vec<Op>,
    bids: Vec<Level>,
    asks: Vec<Level>,
    /// Level presence changed by earlier entries of the update being checked.
    overlay: Vec<(Side, i64, bool)>,
    /// Most level changes buffered per book while it waits for a snapshot (0: no buffer).
    gap_buffer: usize,
}

impl FixBookFeed {
    /// Returns a feed with no instruments.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an instrument with an empty book awaiting a snapshot; an instrument already there
    /// gets a new empty book at `scales`.
    pub fn add_instrument(&mut self, symbol: &str, scales: Scales) {
        let instrument = Instrument {
            symbol: symbol.into(),
            scales,
            book: OrderBook::new(scales.price, scales.size),
            pending: VecDeque::new(),
            pending_cost: 0,
        };
        match self.index.get(symbol) {
            Some(&i) => {
                if let Some(slot) = self.instruments.get_mut(i) {
                    *slot = instrument;
                }
            }
            None => {
                self.index.insert(symbol.into(), self.instruments.len());
                self.instruments.push(instrument);
            }
        }
    }

    /// Returns the book of `symbol`.
    #[must_use]
    pub fn book(&self, symbol: &str) -> Option<&OrderBook> {
        let i = *self.index.get(symbol)?;
        self.instruments.get(i).map(|inst| &inst.book)
    }

    /// Returns the symbols, in the order they were added.
    pub fn symbols(&self) -> impl Iterator<Item = &str> + '_ {
        self.instruments.iter().map(|inst| &*inst.symbol)
    }

    /// Returns the symbols whose book is not live: they need a snapshot (a new
    /// MarketDataRequest).
    pub fn needs_snapshot(&self) -> impl Iterator<Item = &str> + '_ {
        self.instruments
            .iter()
            .filter(|inst| inst.book.state() != BookState::Live)
            .map(|inst| &*inst.symbol)
    }

    /// Returns the counters.
    #[must_use]
    pub fn stats(&self) -> &FixFeedStats {
        &self.stats
    }

    /// Sets the gap buffer: at most `max_changes` level changes kept per book while it waits for
    /// a snapshot (see the [module documentation](self#gap-buffer)); 0 turns it off. Lowering
    /// the bound drops the oldest buffered updates that no longer fit.
    pub fn set_gap_buffer(&mut self, max_changes: usize) {
        self.gap_buffer = max_changes;
        for inst in &mut self.instruments {
            while inst.pending_cost > max_changes {
                let Some(old) = inst.pending.pop_front() else {
                    break;
                };
                inst.pending_cost -= old.cost();
                self.stats.buffer_dropped += 1;
            }
        }
    }

    /// Returns the bound of the gap buffer, in level changes per book (0: off).
    #[must_use]
    pub fn gap_buffer(&self) -> usize {
        self.gap_buffer
    }

    /// Returns the number of updates buffered for `symbol`.
    #[must_use]
    pub fn buffered(&self, symbol: &str) -> usize {
        self.index
            .get(symbol)
            .and_then(|&i| self.instruments.get(i))
            .map_or(0, |inst| inst.pending.len())
    }

    /// Marks every book out of sequence and empties the gap buffers: after a lost connection or
    /// an ended subscription, nothing received before tells what the books hold now.
    pub fn invalidate_all(&mut self) {
        for inst in &mut self.instruments {
            inst.book.invalidate();
            inst.pending.clear();
            inst.pending_cost = 0;
        }
    }

    /// Takes a buffer of whole FIX messages back to back (a FIX log; whitespace between them is
    /// skipped) and returns the outcome of each, in order. Bytes that are not a message, and a
    /// truncated message at the end, give a [`RejectReason::Malformed`] outcome each.
    pub fn on_buffer(&mut self, bytes: &[u8]) -> Vec<MessageOutcome> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let rest = bytes.get(pos..).unwrap_or_default();
            match scan_frame(rest, Splitter::DEFAULT_MAX_BODY_LENGTH) {
                Scan::Frame { start, end } => {
                    self.garbage(rest.get(..start).unwrap_or_default(), &mut out);
                    out.push(self.on_message(rest.get(start..end).unwrap_or_default()));
                    pos += end;
                }
                Scan::Error { error, consumed } => {
                    // The bytes start with "8=FIX" but cannot be a message.
                    self.stats.messages += 1;
                    out.push(self.reject(FixMdError::Malformed(error.to_string())));
                    pos += consumed.max(1);
                }
                Scan::Incomplete { .. } => {
                    self.garbage(rest, &mut out);
                    break;
                }
            }
        }
        out
    }

    /// Counts a stretch of bytes between messages that is not whitespace as one malformed
    /// message.
    fn garbage(&mut self, bytes: &[u8], out: &mut Vec<MessageOutcome>) {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.stats.messages += 1;
        let shown: String = String::from_utf8_lossy(bytes).chars().take(40).collect();
        out.push(self.reject(FixMdError::Malformed(format!(
            "{} bytes that are not a whole FIX message: {shown:?}",
            bytes.len()
        ))));
    }

    fn reject(&mut self, error: FixMdError) -> MessageOutcome {
        self.stats.record(&error);
        MessageOutcome::rejected(error)
    }

    /// Takes one whole FIX message (from `8=` to the CheckSum field) and applies it to the
    /// books: a W replaces its symbol's book, an X updates the books of its entries' symbols.
    /// Other message types are counted and ignored.
    pub fn on_message(&mut self, frame: &[u8]) -> MessageOutcome {
        self.stats.messages += 1;
        let storage = self.storage.take().unwrap_or_default();
        let msg = match Message::parse_reusing(frame, &ParseOptions::default(), storage) {
            Ok(msg) => msg,
            Err(err) => return self.reject(FixMdError::Malformed(err.to_string())),
        };
        let outcome = match msg.msg_type() {
            b"W" | b"X" => self.on_market_data(&msg),
            _ => {
                self.stats.other_messages += 1;
                MessageOutcome {
                    status: MessageStatus::Ignored,
                    md_req_id: None,
                    error: None,
                }
            }
        };
        self.storage = Some(msg.into_storage());
        outcome
    }

    fn on_market_data(&mut self, msg: &Message<'_>) -> MessageOutcome {
        let snapshot = msg.msg_type() == b"W";
        let body = match self.lay_out(msg, snapshot) {
            Ok(body) => body,
            Err(err) => return self.reject(err),
        };
        let md_req_id = body
            .md_req_id
            .map(|f| String::from_utf8_lossy(msg.value(&f)).into_owned());
        let mut outcome = if snapshot {
            self.on_snapshot(msg, &body)
        } else {
            self.on_increment(msg, &body)
        };
        outcome.md_req_id = md_req_id;
        outcome
    }

    /// Splits the body into message-level fields and NoMDEntries entries (in `self.entries`).
    fn lay_out(&mut self, msg: &Message<'_>, snapshot: bool) -> Result<Body, FixMdError> {
        let delimiter = if snapshot {
            tag::MD_ENTRY_TYPE
        } else {
            tag::MD_UPDATE_ACTION
        };
        self.entries.clear();
        let mut body = Body::default();
        let mut count = None;
        for field in msg.fields() {
            if field.section() != Section::Body || field.is_negative() {
                continue;
            }
            let t = field.tag();
            if count.is_none() {
                match t {
                    tag::SYMBOL => body.symbol = body.symbol.or(Some(*field)),
                    tag::MD_REQ_ID => body.md_req_id = body.md_req_id.or(Some(*field)),
                    tag::RPT_SEQ => body.rpt_seq = body.rpt_seq.or(Some(*field)),
                    tag::NO_MD_ENTRIES => count = Some(*field),
                    _ => {}
                }
                continue;
            }
            if t == delimiter {
                self.entries.push(EntryFields::default());
            }
            let n = self.entries.len();
            let Some(entry) = self.entries.last_mut() else {
                return Err(FixMdError::BadGroup(format!(
                    "the first entry starts with tag {t}, not the delimiter {delimiter}"
                )));
            };
            if let Some(slot) = entry.slot(t) {
                if slot.is_some() {
                    return Err(FixMdError::BadGroup(format!(
                        "tag {t} twice in entry {n} (a missing delimiter {delimiter}?)"
                    )));
                }
                *slot = Some(*field);
            }
        }
        let count = count.ok_or(FixMdError::MissingField {
            tag: tag::NO_MD_ENTRIES,
            entry: None,
        })?;
        let text = msg.value(&count);
        let declared = parse_u64(text).ok_or_else(|| FixMdError::BadNumber {
            tag: tag::NO_MD_ENTRIES,
            entry: None,
            value: shown(text),
        })?;
        if declared != self.entries.len() as u64 {
            return Err(FixMdError::BadGroup(format!(
                "NoMDEntries (268) declares {declared} entries, {} found",
                self.entries.len()
            )));
        }
        Ok(body)
    }

    /// Counts `error` against an update and keeps the first one.
    fn entry_error(&mut self, error: FixMdError, first: &mut Option<FixMdError>) {
        self.stats.record(&error);
        if first.is_none() {
            *first = Some(error);
        }
    }

    fn on_snapshot(&mut self, msg: &Message<'_>, body: &Body) -> MessageOutcome {
        let Some(symbol_field) = body.symbol else {
            return self.reject(FixMdError::MissingField {
                tag: tag::SYMBOL,
                entry: None,
            });
        };
        let symbol = msg.value(&symbol_field);
        let Some((i, scales)) = self.instrument(symbol) else {
            return self.reject(FixMdError::UnknownSymbol {
                entry: None,
                symbol: shown(symbol),
            });
        };
        let mut first = None;
        self.bids.clear();
        self.asks.clear();
        let mut max_seq: Option<u64> = None;
        let mut empty_book = false;
        for n in 0..self.entries.len() {
            let Some(entry) = self.entries.get(n).copied() else {
                break;
            };
            match snapshot_entry(msg, &entry, n as u32, scales) {
                Ok(op) => {
                    self.count_ignored(msg, &entry, op);
                    if let Some(seq) = op.rpt_seq {
                        max_seq = Some(max_seq.map_or(seq, |m| m.max(seq)));
                    }
                    match op.change {
                        Some(Change::Level(_, Side::Bid, price, size)) => {
                            self.bids.push(Level::new(price, size));
                        }
                        Some(Change::Level(_, Side::Ask, price, size)) => {
                            self.asks.push(Level::new(price, size));
                        }
                        Some(Change::Empty) => empty_book = true,
                        Some(Change::Range { .. }) | None => {}
                    }
                }
                Err(err) => self.entry_error(err, &mut first),
            }
        }
        let sequence = match body.rpt_seq {
            Some(f) => match parse_u64(msg.value(&f)) {
                Some(seq) => Some(seq),
                None => {
                    let err = FixMdError::BadNumber {
                        tag: tag::RPT_SEQ,
                        entry: None,
                        value: shown(msg.value(&f)),
                    };
                    self.entry_error(err, &mut first);
                    None
                }
            },
            None => max_seq,
        };
        if first.is_none() && empty_book && !(self.bids.is_empty() && self.asks.is_empty()) {
            let err = FixMdError::BadGroup(format!(
                "Empty Book (269=J) beside {} levels",
                self.bids.len() + self.asks.len()
            ));
            self.stats.record(&err);
            first = Some(err);
        }
        if first.is_none() {
            for (side, levels) in [(Side::Bid, &self.bids), (Side::Ask, &self.asks)] {
                if let Some(price) = repeated_price(levels) {
                    first = Some(FixMdError::LevelExists {
                        entry: None,
                        side,
                        price,
                    });
                    break;
                }
            }
            if let Some(err) = &first {
                self.stats.record(err);
            }
        }
        if let Some(error) = first {
            self.stats.updates_rejected += 1;
            return MessageOutcome {
                status: MessageStatus::Rejected(error.reason()),
                md_req_id: None,
                error: Some(error),
            };
        }
        let Some(inst) = self.instruments.get_mut(i) else {
            return MessageOutcome::rejected(FixMdError::UnknownSymbol {
                entry: None,
                symbol: shown(symbol),
            });
        };
        // Sizes were checked positive, so the book cannot refuse the snapshot.
        let snapshot_seq = sequence.unwrap_or(0);
        let _ = inst
            .book
            .apply_snapshot(&self.bids, &self.asks, snapshot_seq);
        self.stats.snapshots += 1;
        self.stats.crossed += u64::from(inst.book.is_crossed());
        let pending = std::mem::take(&mut inst.pending);
        inst.pending_cost = 0;
        let mut status = MessageStatus::Snapshot;
        let mut first = None;
        for update in pending {
            if update.seq.last <= snapshot_seq {
                self.stats.stale += 1;
                continue;
            }
            self.ops = update.ops;
            let result = self.apply_ops(i, update.seq, true, &mut first);
            if result == MessageStatus::Applied {
                self.stats.buffer_applied += 1;
            }
            status = status.worst(result);
        }
        MessageOutcome {
            status,
            md_req_id: None,
            error: first,
        }
    }

    /// Counts an entry that does not change a book (a trade or another entry type).
    fn count_ignored(&mut self, msg: &Message<'_>, entry: &EntryFields, op: Op) {
        if op.change.is_some() {
            return;
        }
        let is_trade = entry.entry_type.is_some_and(|f| msg.value(&f) == b"2");
        if is_trade {
            self.stats.trades += 1;
        } else {
            self.stats.other_entries += 1;
        }
    }

    /// Returns the index and scales of the instrument `symbol`.
    fn instrument(&self, symbol: &[u8]) -> Option<(usize, Scales)> {
        let symbol = std::str::from_utf8(symbol).ok()?;
        let i = *self.index.get(symbol)?;
        self.instruments.get(i).map(|inst| (i, inst.scales))
    }

    fn on_increment(&mut self, msg: &Message<'_>, body: &Body) -> MessageOutcome {
        let mut status = MessageStatus::Ignored;
        let mut first = None;
        // The book of each entry, in entry order; None where the entry has no known symbol.
        let mut targets: Vec<usize> = Vec::new();
        let mut book_of: Vec<Option<usize>> = Vec::with_capacity(self.entries.len());
        for n in 0..self.entries.len() {
            let Some(entry) = self.entries.get(n).copied() else {
                break;
            };
            let Some(field) = entry.symbol.or(body.symbol) else {
                self.entry_error(
                    FixMdError::MissingField {
                        tag: tag::SYMBOL,
                        entry: Some(n as u32),
                    },
                    &mut first,
                );
                book_of.push(None);
                continue;
            };
            let symbol = msg.value(&field);
            match self.instrument(symbol) {
                Some((i, _)) => {
                    if !targets.contains(&i) {
                        targets.push(i);
                    }
                    book_of.push(Some(i));
                }
                None => {
                    self.entry_error(
                        FixMdError::UnknownSymbol {
                            entry: Some(n as u32),
                            symbol: shown(symbol),
                        },
                        &mut first,
                    );
                    book_of.push(None);
                }
            }
        }
        if let Some(err) = &first {
            status = MessageStatus::Rejected(err.reason());
        }
        for &i in &targets {
            let result = self.update_book(msg, i, &book_of, &mut first);
            status = status.worst(result);
        }
        MessageOutcome {
            status,
            md_req_id: None,
            error: first,
        }
    }

    /// Applies the entries of book `i` (those with `book_of[n] == Some(i)`) as one update.
    fn update_book(
        &mut self,
        msg: &Message<'_>,
        i: usize,
        book_of: &[Option<usize>],
        first: &mut Option<FixMdError>,
    ) -> MessageStatus {
        let Some(scales) = self.instruments.get(i).map(|inst| inst.scales) else {
            return MessageStatus::Ignored;
        };
        let mut bad: Option<FixMdError> = None;
        self.ops.clear();
        let mut numbered = 0usize;
        let mut unnumbered: Option<u32> = None;
        let mut previous: Option<u64> = None;
        for (n, owner) in book_of.iter().enumerate() {
            if *owner != Some(i) {
                continue;
            }
            let Some(entry) = self.entries.get(n).copied() else {
                continue;
            };
            let op = match increment_entry(msg, &entry, n as u32, scales) {
                Ok(op) => op,
                Err(err) => {
                    self.record_bad(err, &mut bad, first);
                    continue;
                }
            };
            match (op.rpt_seq, previous) {
                (Some(seq), Some(prev)) if seq < prev || seq - prev > 1 => {
                    let err = FixMdError::BadSequence {
                        entry: Some(n as u32),
                        rpt_seq: seq,
                        previous: prev,
                    };
                    self.record_bad(err, &mut bad, first);
                    continue;
                }
                (Some(seq), _) => {
                    numbered += 1;
                    previous = Some(seq);
                }
                (None, _) => {
                    unnumbered.get_or_insert(n as u32);
                }
            }
            self.count_ignored(msg, &entry, op);
            self.ops.push(op);
        }
        if bad.is_none() && numbered > 0 {
            if let Some(n) = unnumbered {
                let err = FixMdError::MissingField {
                    tag: tag::RPT_SEQ,
                    entry: Some(n),
                };
                self.record_bad(err, &mut bad, first);
            }
        }
        let Some(inst) = self.instruments.get_mut(i) else {
            return MessageStatus::Ignored;
        };
        if let Some(err) = bad {
            inst.book.invalidate();
            self.stats.updates_rejected += 1;
            return MessageStatus::Rejected(err.reason());
        }
        // Only trades and other entry types change no level, but their RptSeq still moves the
        // book's sequence on.
        let changes = self.ops.iter().any(|op| op.change.is_some());
        if !changes && numbered == 0 {
            return MessageStatus::Ignored;
        }
        let seq = match (
            self.ops.iter().find_map(|op| op.rpt_seq),
            self.ops.iter().rev().find_map(|op| op.rpt_seq),
        ) {
            (Some(first_seq), Some(last_seq)) => SeqRange::new(first_seq, last_seq),
            _ => SeqRange::single(inst.book.sequence().saturating_add(1)),
        };
        self.apply_ops(i, seq, numbered > 0, first)
    }

    /// Applies the checked update in `self.ops`, covering `seq`, to book `i`: the sequence rule,
    /// the gap buffer (for a `numbered` update), the level checks and the book change.
    fn apply_ops(
        &mut self,
        i: usize,
        seq: SeqRange,
        numbered: bool,
        first: &mut Option<FixMdError>,
    ) -> MessageStatus {
        let changes = self.ops.iter().any(|op| op.change.is_some());
        let buffer = self.gap_buffer > 0 && numbered;
        let Some(inst) = self.instruments.get_mut(i) else {
            return MessageStatus::Ignored;
        };
        match inst.book.check_sequence(seq) {
            Ok(Continuity::InSequence) => {}
            Ok(Continuity::Stale) if !changes => return MessageStatus::Ignored,
            Ok(Continuity::Stale) => {
                self.stats.stale += 1;
                return MessageStatus::Stale;
            }
            Err(_) if inst.book.state() != BookState::Live => {
                if buffer {
                    self.buffer(i, seq);
                    return MessageStatus::Buffered;
                }
                self.stats.awaiting_snapshot += 1;
                return MessageStatus::AwaitingSnapshot;
            }
            Err(_) => {
                inst.book.invalidate();
                self.stats.gaps += 1;
                if buffer {
                    // The update that shows the gap is newer than what was lost: keep it too.
                    self.buffer(i, seq);
                }
                return MessageStatus::Gap;
            }
        }
        self.bids.clear();
        self.asks.clear();
        let ranged = self
            .ops
            .iter()
            .any(|op| matches!(op.change, Some(Change::Range { .. } | Change::Empty)));
        let checked = if ranged {
            check_on_copy(&inst.book, &self.ops, &mut self.bids, &mut self.asks)
        } else {
            check_levels(
                &inst.book,
                &self.ops,
                &mut self.overlay,
                &mut self.bids,
                &mut self.asks,
            )
        };
        if let Err(err) = checked {
            inst.book.invalidate();
            self.stats.record(&err);
            self.stats.updates_rejected += 1;
            let reason = err.reason();
            if first.is_none() {
                *first = Some(err);
            }
            return MessageStatus::Rejected(reason);
        }
        match inst.book.apply_update(seq, &self.bids, &self.asks) {
            Ok(UpdateOutcome::Applied { .. }) if !changes => MessageStatus::Ignored,
            Ok(UpdateOutcome::Applied { crossed }) => {
                self.stats.updates_applied += 1;
                self.stats.level_updates += (self.bids.len() + self.asks.len()) as u64;
                self.stats.crossed += u64::from(crossed);
                MessageStatus::Applied
            }
            Ok(UpdateOutcome::Stale) => {
                self.stats.stale += 1;
                MessageStatus::Stale
            }
            Err(_) => {
                self.stats.gaps += 1;
                MessageStatus::Gap
            }
        }
    }

    /// Keeps the update in `self.ops`, covering `seq`, in the gap buffer of book `i`, dropping
    /// the oldest buffered updates that no longer fit.
    fn buffer(&mut self, i: usize, seq: SeqRange) {
        let update = Pending {
            seq,
            ops: self.ops.clone(),
        };
        let cost = update.cost();
        let Some(inst) = self.instruments.get_mut(i) else {
            return;
        };
        if cost > self.gap_buffer {
            self.stats.buffer_dropped += 1;
            return;
        }
        while inst.pending_cost + cost > self.gap_buffer {
            let Some(old) = inst.pending.pop_front() else {
                break;
            };
            inst.pending_cost -= old.cost();
            self.stats.buffer_dropped += 1;
        }
        inst.pending_cost += cost;
        inst.pending.push_back(update);
        self.stats.buffered += 1;
    }

    fn record_bad(
        &mut self,
        err: FixMdError,
        bad: &mut Option<FixMdError>,
        first: &mut Option<FixMdError>,
    ) {
        self.stats.record(&err);
        if bad.is_none() {
            *bad = Some(err.clone());
        }
        if first.is_none() {
            *first = Some(err);
        }
    }
}

/// Checks the level changes of an update against `book` as the earlier changes leave it (their
/// presence tracked in `overlay`) and lists them per side.
fn check_levels(
    book: &OrderBook,
    ops: &[Op],
    overlay: &mut Vec<(Side, i64, bool)>,
    bids: &mut Vec<Level>,
    asks: &mut Vec<Level>,
) -> Result<(), FixMdError> {
    overlay.clear();
    for op in ops {
        let Some(Change::Level(action, side, price, size)) = op.change else {
            continue;
        };
        let present = overlay
            .iter()
            .rev()
            .find(|(s, p, _)| *s == side && *p == price)
            .map_or_else(|| book.size_at(side, price).is_some(), |o| o.2);
        level_allowed(action, side, price, present, op.entry)?;
        let size = if action == Action::Delete { 0 } else { size };
        overlay.push((side, price, size != 0));
        match side {
            Side::Bid => bids.push(Level::new(price, size)),
            Side::Ask => asks.push(Level::new(price, size)),
        }
    }
    Ok(())
}

/// Checks whether `action` may touch the level at `price`, given whether the book has it.
fn level_allowed(
    action: Action,
    side: Side,
    price: i64,
    present: bool,
    entry: u32,
) -> Result<(), FixMdError> {
    let entry = Some(entry);
    match action {
        Action::New if present => Err(FixMdError::LevelExists { entry, side, price }),
        Action::Change | Action::Delete if !present => Err(FixMdError::AbsentLevel {
            entry,
            action: if action == Action::Change {
                "change"
            } else {
                "delete"
            },
            side,
            price,
        }),
        _ => Ok(()),
    }
}

/// Checks an update with Delete Thru, Delete From or Empty Book entries, which touch levels by
/// position, by running it on a copy of `book`, and lists the level changes per side (each
/// range expanded into the deletes of its levels).
fn check_on_copy(
    book: &OrderBook,
    ops: &[Op],
    bids: &mut Vec<Level>,
    asks: &mut Vec<Level>,
) -> Result<(), FixMdError> {
    let mut copy = book.clone();
    let mut gone: Vec<(Side, Level)> = Vec::new();
    for op in ops {
        gone.clear();
        match op.change {
            None => continue,
            Some(Change::Level(action, side, price, size)) => {
                let present = copy.size_at(side, price).is_some();
                level_allowed(action, side, price, present, op.entry)?;
                let size = if action == Action::Delete { 0 } else { size };
                gone.push((side, Level::new(price, size)));
            }
            Some(Change::Range {
                thru,
                side,
                boundary,
            }) => {
                let action = if thru { "delete thru" } else { "delete from" };
                let levels: Vec<Level> = copy.levels(side).collect();
                let at = match boundary {
                    Boundary::Position(position) => usize::try_from(position)
                        .ok()
                        .filter(|&p| p >= 1 && p <= levels.len())
                        .map(|p| p - 1)
                        .ok_or(FixMdError::AbsentPosition {
                            entry: Some(op.entry),
                            action,
                            side,
                            position,
                            depth: levels.len(),
                        })?,
                    Boundary::Price(price) => levels.iter().position(|l| l.price == price).ok_or(
                        FixMdError::AbsentLevel {
                            entry: Some(op.entry),
                            action,
                            side,
                            price,
                        },
                    )?,
                };
                let range = if thru {
                    levels.get(..=at)
                } else {
                    levels.get(at..)
                };
                gone.extend(
                    range
                        .unwrap_or_default()
                        .iter()
                        .map(|l| (side, Level::new(l.price, 0))),
                );
            }
            Some(Change::Empty) => {
                for side in [Side::Bid, Side::Ask] {
                    gone.extend(copy.levels(side).map(|l| (side, Level::new(l.price, 0))));
                }
            }
        }
        for &(side, level) in &gone {
            // The copy is live (the update passed the sequence check) and sizes are not
            // negative, so it cannot refuse.
            let _ = copy.apply_delta(side, level.price, level.size);
            match side {
                Side::Bid => bids.push(level),
                Side::Ask => asks.push(level),
            }
        }
    }
    Ok(())
}

/// Returns a price that appears twice among `levels`.
fn repeated_price(levels: &[Level]) -> Option<i64> {
    let mut prices: Vec<i64> = levels.iter().map(|l| l.price).collect();
    prices.sort_unstable();
    prices.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// At most 40 characters of a field value, for an error message.
fn shown(value: &[u8]) -> String {
    String::from_utf8_lossy(value).chars().take(40).collect()
}

/// What an entry type is to a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    /// A bid (0) or offer (1) level.
    Level(Side),
    /// Empty Book (J).
    Empty,
    /// Another FIX type: a trade, an index value, ...
    Other,
}

/// Reads MDEntryType (269).
fn entry_kind(msg: &Message<'_>, entry: &EntryFields, n: u32) -> Result<EntryKind, FixMdError> {
    let field = entry.entry_type.ok_or(FixMdError::MissingField {
        tag: tag::MD_ENTRY_TYPE,
        entry: Some(n),
    })?;
    match msg.value(&field) {
        b"0" => Ok(EntryKind::Level(Side::Bid)),
        b"1" => Ok(EntryKind::Level(Side::Ask)),
        b"J" => Ok(EntryKind::Empty),
        [c] if KNOWN_ENTRY_TYPES.contains(c) => Ok(EntryKind::Other),
        other => Err(FixMdError::UnknownEntryType {
            entry: Some(n),
            value: shown(other),
        }),
    }
}

fn rpt_seq(msg: &Message<'_>, entry: &EntryFields, n: u32) -> Result<Option<u64>, FixMdError> {
    entry
        .rpt_seq
        .map(|f| {
            let text = msg.value(&f);
            parse_u64(text).ok_or_else(|| FixMdError::BadNumber {
                tag: tag::RPT_SEQ,
                entry: Some(n),
                value: shown(text),
            })
        })
        .transpose()
}

/// Parses a fixed-point number of field `tag` at `scale`.
fn number(
    msg: &Message<'_>,
    field: Option<FieldRef>,
    tag: u32,
    n: u32,
    scale: u8,
) -> Result<i64, FixMdError> {
    let field = field.ok_or(FixMdError::MissingField {
        tag,
        entry: Some(n),
    })?;
    let text = msg.value(&field);
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| Price::parse(t, scale).ok())
        .map(|p| p.mantissa)
        .ok_or_else(|| FixMdError::BadNumber {
            tag,
            entry: Some(n),
            value: shown(text),
        })
}

fn price(msg: &Message<'_>, entry: &EntryFields, n: u32, scale: u8) -> Result<i64, FixMdError> {
    let price = number(msg, entry.price, tag::MD_ENTRY_PX, n, scale)?;
    if price <= 0 {
        return Err(FixMdError::NonPositivePrice {
            entry: Some(n),
            price,
        });
    }
    Ok(price)
}

fn size(msg: &Message<'_>, entry: &EntryFields, n: u32, scale: u8) -> Result<i64, FixMdError> {
    let size = number(msg, entry.size, tag::MD_ENTRY_SIZE, n, scale)?;
    match size {
        s if s < 0 => Err(FixMdError::NegativeSize {
            entry: Some(n),
            size: s,
        }),
        0 => Err(FixMdError::ZeroSize { entry: Some(n) }),
        s => Ok(s),
    }
}

/// Checks one entry of a W.
fn snapshot_entry(
    msg: &Message<'_>,
    entry: &EntryFields,
    n: u32,
    scales: Scales,
) -> Result<Op, FixMdError> {
    let kind = entry_kind(msg, entry, n)?;
    let rpt_seq = rpt_seq(msg, entry, n)?;
    let change = match kind {
        EntryKind::Level(side) => Some(Change::Level(
            Action::New,
            side,
            price(msg, entry, n, scales.price)?,
            size(msg, entry, n, scales.size)?,
        )),
        EntryKind::Empty => Some(Change::Empty),
        EntryKind::Other => None,
    };
    Ok(Op {
        entry: n,
        change,
        rpt_seq,
    })
}

/// Checks one entry of an X.
fn increment_entry(
    msg: &Message<'_>,
    entry: &EntryFields,
    n: u32,
    scales: Scales,
) -> Result<Op, FixMdError> {
    let field = entry.action.ok_or(FixMdError::MissingField {
        tag: tag::MD_UPDATE_ACTION,
        entry: Some(n),
    })?;
    // (level action, or Some(thru) for Delete Thru / Delete From)
    let (action, range) = match msg.value(&field) {
        b"0" => (Action::New, None),
        b"1" => (Action::Change, None),
        b"2" => (Action::Delete, None),
        b"3" => (Action::Delete, Some(true)),
        b"4" => (Action::Delete, Some(false)),
        b"5" => (Action::Overlay, None),
        other => {
            return Err(FixMdError::UnknownAction {
                entry: Some(n),
                value: shown(other),
            })
        }
    };
    let kind = entry_kind(msg, entry, n)?;
    let rpt_seq = rpt_seq(msg, entry, n)?;
    let change = match (kind, range) {
        (EntryKind::Level(side), Some(thru)) => Some(Change::Range {
            thru,
            side,
            boundary: boundary(msg, entry, n, scales.price)?,
        }),
        (EntryKind::Level(side), None) => {
            let price = price(msg, entry, n, scales.price)?;
            let size = match action {
                Action::Delete => 0,
                _ => size(msg, entry, n, scales.size)?,
            };
            Some(Change::Level(action, side, price, size))
        }
        (EntryKind::Empty, _) => Some(Change::Empty),
        (EntryKind::Other, _) => None,
    };
    Ok(Op {
        entry: n,
        change,
        rpt_seq,
    })
}

/// Reads where a Delete Thru or Delete From stops: MDPriceLevel (1023), else MDEntryPx (270).
fn boundary(
    msg: &Message<'_>,
    entry: &EntryFields,
    n: u32,
    scale: u8,
) -> Result<Boundary, FixMdError> {
    match entry.price_level {
        Some(field) => {
            let text = msg.value(&field);
            parse_u64(text)
                .filter(|&p| p >= 1)
                .map(Boundary::Position)
                .ok_or_else(|| FixMdError::BadNumber {
                    tag: tag::MD_PRICE_LEVEL,
                    entry: Some(n),
                    value: shown(text),
                })
        }
        None if entry.price.is_none() => Err(FixMdError::MissingField {
            tag: tag::MD_PRICE_LEVEL,
            entry: Some(n),
        }),
        None => price(msg, entry, n, scale).map(Boundary::Price),
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(reason) => write!(f, "rejected:{}", reason.name()),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BTC: Scales = Scales::new(2, 3);

    /// Frames `body` (`|` for SOH, starting at MsgType) under `begin` with BodyLength and
    /// CheckSum.
    fn fix(begin: &str, body: &str) -> Vec<u8> {
        nexus_fix::encode(begin, body.replace('|', "\u{1}").as_bytes())
    }

    fn fix44(body: &str) -> Vec<u8> {
        fix("FIX.4.4", body)
    }

    fn feed() -> FixBookFeed {
        let mut feed = FixBookFeed::new();
        feed.add_instrument("BTCUSDT", BTC);
        feed.add_instrument("ETHUSDT", BTC);
        feed
    }

    /// A W for BTCUSDT at RptSeq 10: bids 100.00 x 1, 99.50 x 2; asks 101.00 x 3, 102.00 x 4.
    fn snapshot() -> Vec<u8> {
        fix44(
            "35=W|262=req-1|55=BTCUSDT|83=10|268=4|269=0|270=100|271=1|269=0|270=99.5|271=2\
             |269=1|270=101.00|271=3|269=1|270=102|271=4.000|",
        )
    }

    fn live() -> FixBookFeed {
        let mut feed = feed();
        assert_eq!(feed.on_message(&snapshot()).status, MessageStatus::Snapshot);
        feed
    }

    /// Both sides as (price, size), best first.
    type Sides = (Vec<(i64, i64)>, Vec<(i64, i64)>);

    fn depth(feed: &FixBookFeed, symbol: &str) -> Sides {
        let d = feed.book(symbol).unwrap().depth(usize::MAX);
        (
            d.bids.iter().map(|l| (l.price, l.size)).collect(),
            d.asks.iter().map(|l| (l.price, l.size)).collect(),
        )
    }

    fn state(feed: &FixBookFeed, symbol: &str) -> BookState {
        feed.book(symbol).unwrap().state()
    }

    #[test]
    fn snapshot_builds_the_book() {
        let mut feed = feed();
        assert_eq!(feed.needs_snapshot().count(), 2);
        let outcome = feed.on_message(&snapshot());
        assert_eq!(
            outcome,
            MessageOutcome {
                status: MessageStatus::Snapshot,
                md_req_id: Some("req-1".into()),
                error: None
            }
        );
        assert_eq!(
            depth(&feed, "BTCUSDT"),
            (
                vec![(10_000, 1_000), (9_950, 2_000)],
                vec![(10_100, 3_000), (10_200, 4_000)]
            )
        );
        let book = feed.book("BTCUSDT").unwrap();
        assert_eq!(book.sequence(), 10);
        assert_eq!(book.state(), BookState::Live);
        assert_eq!(feed.needs_snapshot().collect::<Vec<_>>(), vec!["ETHUSDT"]);
        assert_eq!(feed.stats().snapshots, 1);
        assert_eq!(feed.stats().rejected_total(), 0);
    }

    #[test]
    fn increments_new_change_delete_overlay() {
        let mut feed = live();
        let x = fix44(
            "35=X|262=req-1|268=5|279=0|269=0|55=BTCUSDT|83=11|270=100.5|271=0.5\
             |279=1|269=1|55=BTCUSDT|83=12|270=101|271=7\
             |279=2|269=0|55=BTCUSDT|83=13|270=99.5\
             |279=5|269=1|55=BTCUSDT|83=14|270=103|271=1\
             |279=5|269=1|55=BTCUSDT|83=15|270=103|271=2|",
        );
        let outcome = feed.on_message(&x);
        assert_eq!(outcome.status, MessageStatus::Applied, "{outcome:?}");
        assert_eq!(outcome.md_req_id.as_deref(), Some("req-1"));
        assert_eq!(
            depth(&feed, "BTCUSDT"),
            (
                vec![(10_050, 500), (10_000, 1_000)],
                vec![(10_100, 7_000), (10_200, 4_000), (10_300, 2_000)]
            )
        );
        let stats = feed.stats();
        assert_eq!(stats.updates_applied, 1);
        assert_eq!(stats.level_updates, 5);
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 15);
    }

    #[test]
    fn per_message_rpt_seq_numbering_continues_too() {
        let mut feed = live();
        for (seq, px) in [(11, "100.1"), (12, "100.2")] {
            let x = fix44(&format!(
                "35=X|268=2|279=0|269=0|55=BTCUSDT|83={seq}|270={px}|271=1\
                 |279=2|269=0|55=BTCUSDT|83={seq}|270={px}|"
            ));
            assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        }
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 12);
        assert_eq!(depth(&feed, "BTCUSDT").0.len(), 2);
    }

    #[test]
    fn entries_of_one_message_see_each_other() {
        let mut feed = live();
        // New then change then delete of the same new level; delete then re-add an old one.
        let x = fix44(
            "35=X|268=5|279=0|269=0|55=BTCUSDT|83=11|270=100.5|271=1\
             |279=1|269=0|55=BTCUSDT|83=12|270=100.5|271=2\
             |279=2|269=0|55=BTCUSDT|83=13|270=100.5\
             |279=2|269=1|55=BTCUSDT|83=14|270=101\
             |279=0|269=1|55=BTCUSDT|83=15|270=101|271=9|",
        );
        assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        assert_eq!(
            depth(&feed, "BTCUSDT"),
            (
                vec![(10_000, 1_000), (9_950, 2_000)],
                vec![(10_100, 9_000), (10_200, 4_000)]
            )
        );
    }

    #[test]
    fn a_gap_in_rpt_seq_needs_a_new_snapshot() {
        let mut feed = live();
        let before = depth(&feed, "BTCUSDT");
        let skip = fix44("35=X|268=1|279=0|269=0|55=BTCUSDT|83=12|270=98|271=1|");
        assert_eq!(feed.on_message(&skip).status, MessageStatus::Gap);
        assert_eq!(state(&feed, "BTCUSDT"), BookState::Gapped);
        assert_eq!(depth(&feed, "BTCUSDT"), before);
        assert_eq!(
            feed.needs_snapshot().collect::<Vec<_>>(),
            vec!["BTCUSDT", "ETHUSDT"]
        );
        let next = fix44("35=X|268=1|279=0|269=0|55=BTCUSDT|83=13|270=97|271=1|");
        assert_eq!(
            feed.on_message(&next).status,
            MessageStatus::AwaitingSnapshot
        );
        assert_eq!(feed.stats().gaps, 1);
        assert_eq!(feed.stats().awaiting_snapshot, 1);
        // A new snapshot at 12 makes the book live; 13 then continues it.
        let w = fix44("35=W|55=BTCUSDT|83=12|268=1|269=1|270=105|271=1|");
        assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
        assert_eq!(feed.on_message(&next).status, MessageStatus::Applied);
        assert_eq!(
            depth(&feed, "BTCUSDT"),
            (vec![(9_700, 1_000)], vec![(10_500, 1_000)])
        );
    }

    #[test]
    fn stale_updates_are_skipped() {
        let mut feed = live();
        let old = fix44("35=X|268=1|279=2|269=0|55=BTCUSDT|83=10|270=100|");
        assert_eq!(feed.on_message(&old).status, MessageStatus::Stale);
        assert_eq!(feed.stats().stale, 1);
        assert_eq!(depth(&feed, "BTCUSDT").0[0], (10_000, 1_000));
        assert_eq!(state(&feed, "BTCUSDT"), BookState::Live);
    }

    /// Each bad X entry: its reason, its counter, the book unchanged and out of sequence.
    #[test]
    fn bad_entries_reject_the_update_with_a_reason() {
        let cases: [(&str, RejectReason); 18] = [
            (
                "279=0|269=0|55=BTCUSDT|83=11|271=1",
                RejectReason::MissingField,
            ),
            (
                "279=0|55=BTCUSDT|83=11|270=98|271=1",
                RejectReason::MissingField,
            ),
            (
                "279=0|269=0|55=BTCUSDT|83=11|270=98",
                RejectReason::MissingField,
            ),
            (
                "279=0|269=0|55=BTCUSDT|83=11|270=0|271=1",
                RejectReason::NonPositivePrice,
            ),
            (
                "279=0|269=0|55=BTCUSDT|83=11|270=-5|271=1",
                RejectReason::NonPositivePrice,
            ),
            (
                "279=0|269=0|55=BTCUSDT|83=11|270=98|271=-1",
                RejectReason::NegativeSize,
            ),
            (
                "279=1|269=0|55=BTCUSDT|83=11|270=100|271=0",
                RejectReason::ZeroSize,
            ),
            (
                "279=0|269=0|55=BTCUSDT|83=11|270=98.001|271=1",
                RejectReason::BadNumber,
            ),
            (
                "279=0|269=0|55=BTCUSDT|83=x|270=98|271=1",
                RejectReason::BadNumber,
            ),
            (
                "279=9|269=0|55=BTCUSDT|83=11|270=98|271=1",
                RejectReason::UnknownAction,
            ),
            (
                "279=6|269=0|55=BTCUSDT|83=11|270=98|271=1",
                RejectReason::UnknownAction,
            ),
            (
                "279=3|269=0|55=BTCUSDT|83=11|1023=4",
                RejectReason::AbsentLevel,
            ),
            (
                "279=4|269=1|55=BTCUSDT|83=11|270=101.5",
                RejectReason::AbsentLevel,
            ),
            (
                "279=4|269=1|55=BTCUSDT|83=11|1023=0",
                RejectReason::BadNumber,
            ),
            ("279=3|269=1|55=BTCUSDT|83=11", RejectReason::MissingField),
            (
                "279=0|269=~|55=BTCUSDT|83=11|270=98|271=1",
                RejectReason::UnknownEntryType,
            ),
            (
                "279=2|269=0|55=BTCUSDT|83=11|270=98",
                RejectReason::AbsentLevel,
            ),
            (
                "279=0|269=1|55=BTCUSDT|83=11|270=101|271=1",
                RejectReason::LevelExists,
            ),
        ];
        for (entry, reason) in cases {
            let mut feed = live();
            let before = depth(&feed, "BTCUSDT");
            // A good entry first: the bad one must take it down too.
            let x = fix44(&format!(
                "35=X|268=2|279=0|269=0|55=BTCUSDT|83=11|270=99|271=1|{entry}|"
            ));
            let outcome = feed.on_message(&x);
            assert_eq!(outcome.status, MessageStatus::Rejected(reason), "{entry}");
            assert_eq!(outcome.error.as_ref().map(FixMdError::reason), Some(reason));
            assert_eq!(feed.stats().rejected(reason), 1, "{entry}");
            assert_eq!(feed.stats().rejected_total(), 1, "{entry}");
            assert_eq!(feed.stats().updates_rejected, 1);
            assert_eq!(depth(&feed, "BTCUSDT"), before, "{entry}");
            assert_eq!(state(&feed, "BTCUSDT"), BookState::Gapped, "{entry}");
            assert_eq!(feed.stats().first_errors[0].message, 2);
        }
    }

    #[test]
    fn change_of_an_absent_level_is_rejected() {
        let mut feed = live();
        let x = fix44("35=X|268=1|279=1|269=0|55=BTCUSDT|83=11|270=42|271=1|");
        let outcome = feed.on_message(&x);
        assert_eq!(
            outcome.error,
            Some(FixMdError::AbsentLevel {
                entry: Some(0),
                action: "change",
                side: Side::Bid,
                price: 4_200
            })
        );
        assert_eq!(
            outcome.error.unwrap().to_string(),
            "change of absent Bid level at price 4200 in entry 1"
        );
        let mut feed = live();
        let x = fix44("35=X|268=1|279=3|269=0|55=BTCUSDT|83=11|1023=5|");
        assert_eq!(
            feed.on_message(&x).error.unwrap().to_string(),
            "delete thru position 5 of the Bid side, which has 2 levels in entry 1"
        );
    }

    /// A book of `n` bid and `n` ask levels at RptSeq 10: bids 100, 99, ...; asks 101, 102, ...
    /// (size = 10 x the distance from the touch + 1).
    fn deep(n: i64) -> FixBookFeed {
        let mut entries = String::new();
        for k in 0..n {
            entries.push_str(&format!("269=0|270={}|271={}|", 100 - k, 10 * k + 1));
            entries.push_str(&format!("269=1|270={}|271={}|", 101 + k, 10 * k + 1));
        }
        let mut feed = feed();
        let w = fix44(&format!("35=W|55=BTCUSDT|83=10|268={}|{entries}", 2 * n));
        assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
        feed
    }

    /// The levels of a side of `deep` as (price, size) mantissas, best first, filtered.
    fn expected(n: i64, bid: bool, keep: impl Fn(i64) -> bool) -> Vec<(i64, i64)> {
        (0..n)
            .filter(|&k| keep(k))
            .map(|k| {
                let price = if bid { 100 - k } else { 101 + k };
                (price * 100, (10 * k + 1) * 1_000)
            })
            .collect()
    }

    #[test]
    fn delete_thru_removes_the_best_levels_through_the_boundary() {
        // By position: bids levels 1..=3 go; by price: asks through 103 (positions 1..=3).
        let mut feed = deep(6);
        let x = fix44(
            "35=X|268=2|279=3|269=0|55=BTCUSDT|83=11|1023=3\
             |279=3|269=1|55=BTCUSDT|83=12|270=103|",
        );
        let outcome = feed.on_message(&x);
        assert_eq!(outcome.status, MessageStatus::Applied, "{outcome:?}");
        assert_eq!(
            depth(&feed, "BTCUSDT"),
            (
                expected(6, true, |k| k >= 3),
                expected(6, false, |k| k >= 3)
            )
        );
        assert_eq!(feed.stats().level_updates, 6);
        // Through the last level: the side is empty.
        let x = fix44("35=X|268=1|279=3|269=0|55=BTCUSDT|83=13|1023=3|");
        assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        assert!(depth(&feed, "BTCUSDT").0.is_empty());
    }

    #[test]
    fn delete_from_removes_the_boundary_and_everything_worse() {
        let mut feed = deep(6);
        let x = fix44(
            "35=X|268=2|279=4|269=0|55=BTCUSDT|83=11|1023=5\
             |279=4|269=1|55=BTCUSDT|83=12|270=102|",
        );
        assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        assert_eq!(
            depth(&feed, "BTCUSDT"),
            (expected(6, true, |k| k < 4), expected(6, false, |k| k < 1))
        );
        // 1023 wins over 270 when both are sent.
        let x = fix44("35=X|268=1|279=4|269=0|55=BTCUSDT|83=13|1023=2|270=100|");
        assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        assert_eq!(depth(&feed, "BTCUSDT").0, expected(6, true, |k| k == 0));
    }

    #[test]
    fn ranges_see_the_earlier_entries_of_their_update() {
        // A new best bid, then Delete Thru 2 removes it and the old best; a new level after.
        let mut feed = deep(4);
        let x = fix44(
            "35=X|268=3|279=0|269=0|55=BTCUSDT|83=11|270=100.5|271=7\
             |279=3|269=0|55=BTCUSDT|83=12|1023=2\
             |279=0|269=0|55=BTCUSDT|83=13|270=99.5|271=9|",
        );
        assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        let mut want = vec![(9_950, 9_000)];
        want.extend(expected(4, true, |k| k >= 1));
        assert_eq!(depth(&feed, "BTCUSDT").0, want);
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 13);
    }

    #[test]
    fn a_bad_range_rejects_the_whole_update() {
        let mut feed = deep(3);
        let before = depth(&feed, "BTCUSDT");
        let x = fix44(
            "35=X|268=2|279=3|269=0|55=BTCUSDT|83=11|1023=1\
             |279=4|269=1|55=BTCUSDT|83=12|1023=4|",
        );
        let outcome = feed.on_message(&x);
        assert_eq!(
            outcome.status,
            MessageStatus::Rejected(RejectReason::AbsentLevel)
        );
        assert_eq!(depth(&feed, "BTCUSDT"), before);
        assert_eq!(state(&feed, "BTCUSDT"), BookState::Gapped);
    }

    #[test]
    fn empty_book_in_x_clears_both_sides_at_its_place() {
        let mut feed = live();
        let x = fix44(
            "35=X|268=3|279=0|269=0|55=BTCUSDT|83=11|270=100.5|271=1\
             |279=0|269=J|55=BTCUSDT|83=12\
             |279=0|269=1|55=BTCUSDT|83=13|270=104|271=2|",
        );
        assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        assert_eq!(depth(&feed, "BTCUSDT"), (vec![], vec![(10_400, 2_000)]));
        assert_eq!(feed.stats().other_entries, 0);
        // FIXT 1.1 / FIX 5.0 SP2, the version that defines J.
        let x = fix(
            "FIXT.1.1",
            "35=X|1128=9|268=1|279=0|269=J|55=BTCUSDT|83=14|",
        );
        assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        assert_eq!(depth(&feed, "BTCUSDT"), (vec![], vec![]));
        assert_eq!(state(&feed, "BTCUSDT"), BookState::Live);
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 14);
    }

    #[test]
    fn empty_book_in_w_is_an_empty_snapshot() {
        let mut feed = live();
        let w = fix("FIXT.1.1", "35=W|1128=9|55=BTCUSDT|83=20|268=1|269=J|");
        assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
        assert_eq!(depth(&feed, "BTCUSDT"), (vec![], vec![]));
        assert_eq!(state(&feed, "BTCUSDT"), BookState::Live);
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 20);
        let contradiction = fix44("35=W|55=BTCUSDT|83=30|268=2|269=J|269=0|270=1|271=1|");
        assert_eq!(
            feed.on_message(&contradiction).status,
            MessageStatus::Rejected(RejectReason::BadGroup)
        );
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 20);
    }

    #[test]
    fn the_gap_buffer_keeps_updates_until_the_snapshot() {
        let mut feed = live();
        feed.set_gap_buffer(100);
        // 11 is lost; 12 shows the gap and is kept, so are 13 and 14.
        let x = |seq: u64, px: &str| {
            fix44(&format!(
                "35=X|268=1|279=0|269=0|55=BTCUSDT|83={seq}|270={px}|271=1|"
            ))
        };
        assert_eq!(feed.on_message(&x(12, "98")).status, MessageStatus::Gap);
        assert_eq!(
            feed.on_message(&x(13, "97")).status,
            MessageStatus::Buffered
        );
        assert_eq!(
            feed.on_message(&x(14, "96")).status,
            MessageStatus::Buffered
        );
        assert_eq!(feed.buffered("BTCUSDT"), 3);
        assert_eq!(feed.stats().awaiting_snapshot, 0);
        // The venue's W at 12 holds 11 and 12 (its bid 98 included); 13 and 14 apply on it.
        let w = fix44("35=W|55=BTCUSDT|83=12|268=2|269=0|270=98|271=1|269=1|270=101|271=1|");
        assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
        assert_eq!(
            depth(&feed, "BTCUSDT").0,
            vec![(9_800, 1_000), (9_700, 1_000), (9_600, 1_000)]
        );
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 14);
        assert_eq!(feed.buffered("BTCUSDT"), 0);
        let stats = feed.stats();
        assert_eq!(
            (stats.buffered, stats.buffer_applied, stats.stale),
            (3, 2, 1)
        );
        assert_eq!(feed.on_message(&x(15, "95")).status, MessageStatus::Applied);
    }

    #[test]
    fn the_gap_buffer_is_bounded_and_drops_the_oldest() {
        let mut feed = live();
        feed.set_gap_buffer(2);
        let x = |seq: u64, px: &str| {
            fix44(&format!(
                "35=X|268=1|279=0|269=0|55=BTCUSDT|83={seq}|270={px}|271=1|"
            ))
        };
        assert_eq!(feed.on_message(&x(12, "98")).status, MessageStatus::Gap);
        for (seq, px) in [(13, "97"), (14, "96"), (15, "95")] {
            assert_eq!(feed.on_message(&x(seq, px)).status, MessageStatus::Buffered);
        }
        assert_eq!(feed.buffered("BTCUSDT"), 2);
        assert_eq!(feed.stats().buffer_dropped, 2);
        // A W at 12: 13 was dropped, so 14 does not continue it: gapped again, 14 and 15 kept.
        let w = fix44("35=W|55=BTCUSDT|83=12|268=1|269=1|270=101|271=1|");
        assert_eq!(feed.on_message(&w).status, MessageStatus::Gap);
        assert_eq!(state(&feed, "BTCUSDT"), BookState::Gapped);
        assert_eq!(feed.buffered("BTCUSDT"), 2);
        // A W at 13 takes both.
        let w = fix44("35=W|55=BTCUSDT|83=13|268=1|269=1|270=101|271=1|");
        assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 15);
        assert_eq!(
            depth(&feed, "BTCUSDT").0,
            vec![(9_600, 1_000), (9_500, 1_000)]
        );
        // Updates without RptSeq are never buffered; an invalidated feed forgets its buffer.
        let mut feed = live();
        feed.set_gap_buffer(10);
        feed.invalidate_all();
        let unnumbered = fix44("35=X|268=1|279=0|269=0|55=BTCUSDT|270=98|271=1|");
        assert_eq!(
            feed.on_message(&unnumbered).status,
            MessageStatus::AwaitingSnapshot
        );
        assert_eq!(
            feed.on_message(&x(12, "98")).status,
            MessageStatus::Buffered
        );
        feed.invalidate_all();
        assert_eq!(feed.buffered("BTCUSDT"), 0);
    }

    #[test]
    fn a_bad_entry_of_one_symbol_leaves_the_others_alone() {
        let mut feed = live();
        let w = fix44("35=W|55=ETHUSDT|83=500|268=1|269=0|270=30|271=1|");
        assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
        let x = fix44(
            "35=X|268=3|279=0|269=0|55=ETHUSDT|83=501|270=31|271=2\
             |279=0|269=0|55=BTCUSDT|83=11|270=98|271=-1\
             |279=0|269=1|55=ETHUSDT|83=502|270=32|271=3|",
        );
        let outcome = feed.on_message(&x);
        assert_eq!(
            outcome.status,
            MessageStatus::Rejected(RejectReason::NegativeSize)
        );
        assert_eq!(
            depth(&feed, "ETHUSDT"),
            (vec![(3_100, 2_000), (3_000, 1_000)], vec![(3_200, 3_000)])
        );
        assert_eq!(state(&feed, "ETHUSDT"), BookState::Live);
        assert_eq!(state(&feed, "BTCUSDT"), BookState::Gapped);
        assert_eq!(feed.stats().updates_applied, 1);
    }

    #[test]
    fn unknown_symbols_are_counted() {
        let mut feed = live();
        let w = fix44("35=W|55=DOGE|268=1|269=0|270=1|271=1|");
        let outcome = feed.on_message(&w);
        assert_eq!(
            outcome.status,
            MessageStatus::Rejected(RejectReason::UnknownSymbol)
        );
        assert_eq!(
            outcome.error.unwrap().to_string(),
            "no book for symbol \"DOGE\""
        );
        // In an X, only the unknown symbol's entries go.
        let x = fix44(
            "35=X|268=2|279=0|269=0|55=DOGE|83=1|270=1|271=1\
             |279=0|269=0|55=BTCUSDT|83=11|270=98|271=1|",
        );
        let outcome = feed.on_message(&x);
        assert_eq!(
            outcome.status,
            MessageStatus::Rejected(RejectReason::UnknownSymbol)
        );
        assert_eq!(feed.stats().rejected(RejectReason::UnknownSymbol), 2);
        assert_eq!(feed.stats().updates_applied, 1);
        assert_eq!(state(&feed, "BTCUSDT"), BookState::Live);
        // An X entry with no symbol at all, and a W without Symbol.
        let x = fix44("35=X|268=1|279=0|269=0|83=12|270=98|271=1|");
        assert_eq!(
            feed.on_message(&x).error,
            Some(FixMdError::MissingField {
                tag: 55,
                entry: Some(0)
            })
        );
        let w = fix44("35=W|268=0|");
        assert_eq!(
            feed.on_message(&w).status,
            MessageStatus::Rejected(RejectReason::MissingField)
        );
    }

    #[test]
    fn a_message_level_symbol_applies_to_every_x_entry() {
        let mut feed = live();
        let x = fix44("35=X|55=BTCUSDT|268=1|279=0|269=1|83=11|270=100.75|271=1|");
        assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        assert_eq!(
            feed.book("BTCUSDT").unwrap().best_ask(),
            Some(Level::new(10_075, 1_000))
        );
    }

    #[test]
    fn broken_groups_and_frames_are_malformed_messages() {
        let cases: [(Vec<u8>, RejectReason); 7] = [
            (
                fix44("35=X|268=2|279=0|269=0|55=BTCUSDT|83=11|270=98|271=1|"),
                RejectReason::BadGroup,
            ),
            (
                fix44("35=X|268=1|269=0|279=0|55=BTCUSDT|83=11|270=98|271=1|"),
                RejectReason::BadGroup,
            ),
            (
                // Two entries without the second delimiter.
                fix44("35=X|268=1|279=0|269=0|55=BTCUSDT|83=11|270=98|271=1|269=1|270=99|"),
                RejectReason::BadGroup,
            ),
            (fix44("35=X|55=BTCUSDT|"), RejectReason::MissingField),
            (fix44("35=X|268=x|"), RejectReason::BadNumber),
            (
                {
                    let mut bad = snapshot();
                    let n = bad.len();
                    bad[n - 2] = if bad[n - 2] == b'0' { b'1' } else { b'0' };
                    bad
                },
                RejectReason::Malformed,
            ),
            (
                b"8=FIX.4.4\x019=5\x0135=W\x01".to_vec(),
                RejectReason::Malformed,
            ),
        ];
        for (bytes, reason) in cases {
            let mut feed = live();
            let before = depth(&feed, "BTCUSDT");
            let outcome = feed.on_message(&bytes);
            assert_eq!(
                outcome.status,
                MessageStatus::Rejected(reason),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            assert_eq!(feed.stats().rejected(reason), 1);
            assert_eq!(feed.stats().rejected_total(), 1);
            // Nothing of a broken message reaches the book, which stays in sequence.
            assert_eq!(depth(&feed, "BTCUSDT"), before);
            assert_eq!(state(&feed, "BTCUSDT"), BookState::Live);
        }
    }

    #[test]
    fn a_bad_snapshot_leaves_the_book_as_it_was() {
        let mut feed = live();
        let before = depth(&feed, "BTCUSDT");
        for (body, reason) in [
            (
                "35=W|55=BTCUSDT|83=20|268=1|269=0|270=-1|271=1|",
                RejectReason::NonPositivePrice,
            ),
            (
                "35=W|55=BTCUSDT|83=20|268=2|269=0|270=1|271=1|269=0|270=1|271=2|",
                RejectReason::LevelExists,
            ),
            (
                "35=W|55=BTCUSDT|83=20|268=1|269=0|270=1|271=0|",
                RejectReason::ZeroSize,
            ),
            (
                "35=W|55=BTCUSDT|83=y|268=1|269=0|270=1|271=1|",
                RejectReason::BadNumber,
            ),
        ] {
            let outcome = feed.on_message(&fix44(body));
            assert_eq!(outcome.status, MessageStatus::Rejected(reason), "{body}");
            assert_eq!(depth(&feed, "BTCUSDT"), before);
            assert_eq!(state(&feed, "BTCUSDT"), BookState::Live);
            assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 10);
        }
        assert_eq!(feed.stats().updates_rejected, 4);
        assert_eq!(feed.stats().snapshots, 1);
    }

    #[test]
    fn trades_and_other_entry_types_are_counted_not_booked() {
        let mut feed = live();
        let x = fix44(
            "35=X|268=3|279=0|269=2|55=BTCUSDT|83=11|270=100|271=5\
             |279=0|269=0|55=BTCUSDT|83=12|270=99|271=1\
             |279=0|269=4|55=BTCUSDT|83=13|270=-3|",
        );
        assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        assert_eq!(feed.stats().trades, 1);
        assert_eq!(feed.stats().other_entries, 1);
        // The trades' RptSeq counts: the book is at 13.
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 13);
        let trades_only = fix44("35=X|268=1|279=0|269=2|55=BTCUSDT|83=14|270=100|271=5|");
        assert_eq!(feed.on_message(&trades_only).status, MessageStatus::Ignored);
        // A trade-only message moves the sequence on, so the next book update is no gap.
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 14);
        let next = fix44("35=X|268=1|279=2|269=0|55=BTCUSDT|83=15|270=99|");
        assert_eq!(feed.on_message(&next).status, MessageStatus::Applied);
        let skipped = fix44("35=X|268=1|279=0|269=2|55=BTCUSDT|83=17|270=100|271=5|");
        assert_eq!(feed.on_message(&skipped).status, MessageStatus::Gap);
        // W trades are skipped too.
        let w = fix44("35=W|55=BTCUSDT|268=2|269=2|270=1|271=1|269=1|270=120|271=1|");
        assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
        assert_eq!(feed.stats().trades, 4);
        assert_eq!(depth(&feed, "BTCUSDT"), (vec![], vec![(12_000, 1_000)]));
    }

    #[test]
    fn rpt_seq_must_not_go_back_skip_or_be_partial() {
        let mut feed = live();
        let x = fix44(
            "35=X|268=2|279=0|269=0|55=BTCUSDT|83=12|270=99|271=1\
             |279=0|269=0|55=BTCUSDT|83=11|270=98|271=1|",
        );
        assert_eq!(
            feed.on_message(&x).status,
            MessageStatus::Rejected(RejectReason::BadSequence)
        );
        // A hole between entries: an entry of the update is missing.
        let mut feed = live();
        let x = fix44(
            "35=X|268=2|279=0|269=0|55=BTCUSDT|83=11|270=99|271=1\
             |279=0|269=0|55=BTCUSDT|83=13|270=98|271=1|",
        );
        assert_eq!(
            feed.on_message(&x).error,
            Some(FixMdError::BadSequence {
                entry: Some(1),
                rpt_seq: 13,
                previous: 11
            })
        );
        assert_eq!(state(&feed, "BTCUSDT"), BookState::Gapped);
        let mut feed = live();
        let x = fix44(
            "35=X|268=2|279=0|269=0|55=BTCUSDT|83=11|270=99|271=1\
             |279=0|269=0|55=BTCUSDT|270=98|271=1|",
        );
        assert_eq!(
            feed.on_message(&x).error,
            Some(FixMdError::MissingField {
                tag: 83,
                entry: Some(1)
            })
        );
    }

    #[test]
    fn a_feed_without_rpt_seq_takes_updates_in_order() {
        // FIX 4.2 defines no RptSeq in W or X.
        let mut feed = feed();
        let w = fix("FIX.4.2", "35=W|55=BTCUSDT|268=1|269=0|270=100|271=1|");
        assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
        for px in ["100.5", "101"] {
            let x = fix(
                "FIX.4.2",
                &format!("35=X|268=1|279=0|269=0|55=BTCUSDT|270={px}|271=1|"),
            );
            assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        }
        assert_eq!(depth(&feed, "BTCUSDT").0.len(), 3);
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 2);
    }

    #[test]
    fn fixt_and_other_message_types() {
        let mut feed = feed();
        let w = fix(
            "FIXT.1.1",
            "35=W|1128=9|262=r|55=BTCUSDT|268=2|269=0|270=1|271=1|83=5|269=1|270=2|271=1|83=5|",
        );
        assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
        assert_eq!(feed.book("BTCUSDT").unwrap().sequence(), 5);
        let x = fix(
            "FIXT.1.1",
            "35=X|1128=9|268=1|279=1|269=1|55=BTCUSDT|83=6|270=2|271=3|813=0|",
        );
        assert_eq!(feed.on_message(&x).status, MessageStatus::Applied);
        let heartbeat = fix("FIXT.1.1", "35=0|");
        assert_eq!(feed.on_message(&heartbeat).status, MessageStatus::Ignored);
        assert_eq!(feed.stats().other_messages, 1);
        assert_eq!(feed.stats().messages, 3);
    }

    #[test]
    fn buffers_split_into_messages_and_garbage_is_counted() {
        let mut log = Vec::new();
        log.extend_from_slice(&snapshot());
        log.extend_from_slice(b"\n");
        log.extend_from_slice(&fix44(
            "35=X|268=1|279=0|269=0|55=BTCUSDT|83=11|270=99|271=1|",
        ));
        log.extend_from_slice(b"\r\nnot fix at all\n");
        log.extend_from_slice(b"8=FIX.4.4\x019=abc\x01");
        log.extend_from_slice(&fix44("35=X|268=1|279=2|269=0|55=BTCUSDT|83=12|270=99|"));
        let truncated = fix44("35=X|268=1|279=2|269=0|55=BTCUSDT|83=13|270=100|");
        log.extend_from_slice(&truncated[..truncated.len() - 4]);
        let mut feed = feed();
        let statuses: Vec<String> = feed
            .on_buffer(&log)
            .iter()
            .map(|o| o.status.to_string())
            .collect();
        assert_eq!(
            statuses,
            [
                "snapshot",
                "applied",
                "rejected:malformed",
                "rejected:malformed",
                "applied",
                "rejected:malformed"
            ]
        );
        assert_eq!(feed.stats().rejected(RejectReason::Malformed), 3);
        assert_eq!(feed.stats().messages, 6);
        assert_eq!(
            depth(&feed, "BTCUSDT").0,
            vec![(10_000, 1_000), (9_950, 2_000)]
        );
    }

    #[test]
    fn kept_errors_are_bounded() {
        let mut feed = feed();
        for _ in 0..(MAX_KEPT_ERRORS + 5) {
            feed.on_message(b"garbage");
        }
        assert_eq!(feed.stats().first_errors.len(), MAX_KEPT_ERRORS);
        assert_eq!(
            feed.stats().rejected(RejectReason::Malformed),
            MAX_KEPT_ERRORS as u64 + 5
        );
    }

    #[test]
    fn add_instrument_again_resets_its_book() {
        let mut feed = live();
        feed.add_instrument("BTCUSDT", Scales::new(1, 0));
        assert_eq!(state(&feed, "BTCUSDT"), BookState::AwaitingSnapshot);
        assert_eq!(feed.symbols().collect::<Vec<_>>(), ["BTCUSDT", "ETHUSDT"]);
        assert_eq!(feed.book("BTCUSDT").unwrap().price_scale(), 1);
        assert!(feed.book("XRP").is_none());
    }
}

#[cfg(test)]
mod property_tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    type Side2 = [BTreeMap<i64, i64>; 2];

    fn fix44(body: &str) -> Vec<u8> {
        nexus_fix::encode("FIX.4.4", body.replace('|', "\u{1}").as_bytes())
    }

    /// Turns wanted level sizes into a valid X against `reference` (which it updates): new,
    /// change or delete by what the reference holds, one RptSeq per entry from `seq`.
    fn encode_update(
        reference: &mut Side2,
        changes: &[(usize, i64, i64)],
        seq: &mut u64,
    ) -> Option<Vec<u8>> {
        let mut entries = Vec::new();
        for &(side, price, size) in changes {
            let book = &mut reference[side];
            let action = match (book.contains_key(&price), size) {
                (false, 0) => continue,
                (true, 0) => {
                    book.remove(&price);
                    2
                }
                (true, _) => {
                    book.insert(price, size);
                    1
                }
                (false, _) => {
                    book.insert(price, size);
                    0
                }
            };
            *seq += 1;
            entries.push(format!(
                "279={action}|269={side}|55=X|83={seq}|270={}.{:02}|271={size}|",
                price / 100,
                price % 100
            ));
        }
        (!entries.is_empty())
            .then(|| fix44(&format!("35=X|268={}|{}", entries.len(), entries.concat())))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// A stream of valid W and X messages builds the book a BTreeMap reference holds.
        #[test]
        fn valid_streams_match_a_reference_book(
            snapshot in prop::collection::vec((0usize..2, 1i64..400, 1i64..50), 0..60),
            updates in prop::collection::vec(
                prop::collection::vec((0usize..2, 1i64..400, prop_oneof![Just(0i64), 1i64..50]), 1..12),
                0..40,
            ),
        ) {
            let mut feed = FixBookFeed::new();
            feed.add_instrument("X", Scales::new(2, 0));
            let mut reference: Side2 = [BTreeMap::new(), BTreeMap::new()];
            for &(side, price, size) in &snapshot {
                reference[side].entry(price).or_insert(size);
            }
            let mut entries = String::new();
            for (side, book) in reference.iter().enumerate() {
                for (price, size) in book {
                    entries.push_str(&format!("269={side}|270={}.{:02}|271={size}|", price / 100, price % 100));
                }
            }
            let count = reference[0].len() + reference[1].len();
            let w = fix44(&format!("35=W|55=X|83=1000|268={count}|{entries}"));
            prop_assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
            let mut seq = 1000;
            for update in &updates {
                let Some(x) = encode_update(&mut reference, update, &mut seq) else { continue };
                let outcome = feed.on_message(&x);
                prop_assert!(
                    matches!(outcome.status, MessageStatus::Applied),
                    "{:?}", outcome
                );
                let book = feed.book("X").unwrap();
                let bids: Vec<(i64, i64)> = book.levels(Side::Bid).map(|l| (l.price, l.size)).collect();
                let asks: Vec<(i64, i64)> = book.levels(Side::Ask).map(|l| (l.price, l.size)).collect();
                let want_bids: Vec<(i64, i64)> = reference[0].iter().rev().map(|(p, s)| (*p, *s)).collect();
                let want_asks: Vec<(i64, i64)> = reference[1].iter().map(|(p, s)| (*p, *s)).collect();
                prop_assert_eq!(bids, want_bids);
                prop_assert_eq!(asks, want_asks);
                prop_assert_eq!(book.sequence(), seq);
            }
            prop_assert_eq!(feed.stats().rejected_total(), 0);
        }

        /// Any corruption of a valid message's body (re-framed, so that it passes the frame
        /// checks) is applied whole or rejected whole with a counted reason: never a panic,
        /// never a partly applied update.
        #[test]
        fn corrupted_messages_never_half_apply(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut feed = FixBookFeed::new();
            feed.add_instrument("X", Scales::new(2, 0));
            let w = fix44("35=W|55=X|83=10|268=2|269=0|270=1.00|271=5|269=1|270=2.00|271=5|");
            prop_assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
            let mut body = "35=X|268=3|279=0|269=0|55=X|83=11|270=1.50|271=1\
                 |279=2|269=1|55=X|83=12|270=2.00\
                 |279=1|269=0|55=X|83=13|270=1.00|271=9|"
                .replace('|', "\u{1}")
                .into_bytes();
            for (index, byte) in &flips {
                let i = index.index(body.len());
                body[i] = *byte;
            }
            if truncate {
                body.truncate(cut.index(body.len()));
            }
            let before = feed.book("X").unwrap().depth(usize::MAX);
            let rejected_before = feed.stats().rejected_total();
            let outcome = feed.on_message(&nexus_fix::encode("FIX.4.4", &body));
            prop_assert_eq!(feed.stats().messages, 2);
            let after = feed.book("X").unwrap().depth(usize::MAX);
            match outcome.status {
                MessageStatus::Applied => {
                    prop_assert_eq!(feed.stats().updates_applied, 1);
                    prop_assert!(feed.book("X").unwrap().sequence() > 10);
                }
                MessageStatus::Rejected(reason) => {
                    prop_assert!(feed.stats().rejected(reason) >= 1);
                    prop_assert!(feed.stats().rejected_total() > rejected_before);
                    // An entry of an unknown (or no) symbol is dropped alone: it may belong to
                    // another book. Every other rejection leaves the book untouched.
                    let dropped_alone = matches!(
                        outcome.error,
                        Some(FixMdError::UnknownSymbol { .. } | FixMdError::MissingField { tag: 55, .. })
                    );
                    if !dropped_alone {
                        prop_assert_eq!(after, before);
                    }
                }
                _ => prop_assert_eq!(after, before),
            }
        }

        /// Delete Thru, Delete From (by position or by price) and Empty Book entries mixed with
        /// new levels build the book a BTreeMap reference holds.
        #[test]
        fn ranges_match_a_reference_book(
            snapshot in prop::collection::btree_set(1i64..200, 1..40),
            updates in prop::collection::vec(
                (0usize..2, 0u8..5, any::<prop::sample::Index>(), 1i64..200),
                1..30,
            ),
        ) {
            let mut feed = FixBookFeed::new();
            feed.add_instrument("X", Scales::new(0, 0));
            let mut reference: Side2 = [BTreeMap::new(), BTreeMap::new()];
            // Bids below 1000, asks above: the sides never share a price.
            let mut entries = String::new();
            for &p in &snapshot {
                reference[0].insert(p, p);
                reference[1].insert(1000 + p, p);
                entries.push_str(&format!("269=0|270={p}|271={p}|269=1|270={}|271={p}|", 1000 + p));
            }
            let w = fix44(&format!("35=W|55=X|83=1|268={}|{entries}", 2 * snapshot.len()));
            prop_assert_eq!(feed.on_message(&w).status, MessageStatus::Snapshot);
            let mut seq = 1;
            for &(side, kind, index, price) in &updates {
                let book = &mut reference[side];
                // Best first: highest bid, lowest ask.
                let best_first: Vec<i64> = if side == 0 {
                    book.keys().rev().copied().collect()
                } else {
                    book.keys().copied().collect()
                };
                let entry = match kind {
                    0..=3 if !best_first.is_empty() => {
                        let at = index.index(best_first.len());
                        let thru = kind % 2 == 0;
                        let (gone, keep): (Vec<i64>, Vec<i64>) = if thru {
                            (best_first[..=at].to_vec(), best_first[at + 1..].to_vec())
                        } else {
                            (best_first[at..].to_vec(), best_first[..at].to_vec())
                        };
                        prop_assert_eq!(gone.len() + keep.len(), best_first.len());
                        for p in gone {
                            book.remove(&p);
                        }
                        let boundary = if kind < 2 {
                            format!("1023={}", at + 1)
                        } else {
                            format!("270={}", best_first[at])
                        };
                        format!("279={}|269={side}|55=X|83={}|{boundary}|", if thru { 3 } else { 4 }, seq + 1)
                    }
                    4 if index.index(4) == 0 => {
                        reference[0].clear();
                        reference[1].clear();
                        format!("279=0|269=J|55=X|83={}|", seq + 1)
                    }
                    _ => {
                        let p = if side == 0 { price } else { 1000 + price };
                        if book.contains_key(&p) {
                            continue;
                        }
                        book.insert(p, 7);
                        format!("279=0|269={side}|55=X|83={}|270={p}|271=7|", seq + 1)
                    }
                };
                seq += 1;
                let outcome = feed.on_message(&fix44(&format!("35=X|268=1|{entry}")));
                prop_assert_eq!(outcome.status, MessageStatus::Applied, "{:?}", outcome);
                let book = feed.book("X").unwrap();
                let bids: Vec<(i64, i64)> = book.levels(Side::Bid).map(|l| (l.price, l.size)).collect();
                let asks: Vec<(i64, i64)> = book.levels(Side::Ask).map(|l| (l.price, l.size)).collect();
                let want_bids: Vec<(i64, i64)> = reference[0].iter().rev().map(|(p, s)| (*p, *s)).collect();
                let want_asks: Vec<(i64, i64)> = reference[1].iter().map(|(p, s)| (*p, *s)).collect();
                prop_assert_eq!(bids, want_bids);
                prop_assert_eq!(asks, want_asks);
            }
        }

        /// Bytes that are not FIX never panic the feed and are counted.
        #[test]
        fn arbitrary_bytes_are_counted(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut feed = FixBookFeed::new();
            feed.add_instrument("X", Scales::new(2, 0));
            let outcomes = feed.on_buffer(&bytes);
            prop_assert_eq!(outcomes.len() as u64, feed.stats().messages);
            let rejected = outcomes.iter().filter(|o| matches!(o.status, MessageStatus::Rejected(_))).count();
            prop_assert_eq!(rejected as u64, feed.stats().rejected_total());
        }
    }
}
