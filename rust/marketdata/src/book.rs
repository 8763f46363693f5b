//! L2 order books: snapshots, incremental updates, top-of-book figures and sequence-gap detection.
//!
//! An [`OrderBook`] holds the aggregated price levels of one instrument. Prices and sizes are
//! fixed-point mantissas (`i64`) at the instrument's price and size scales, as produced by
//! [`Price::parse`]; a size of 0 deletes a level.
//!
//! The book follows the usual exchange protocol: a snapshot carries the sequence number it is
//! valid at, each incremental update carries the range of sequence numbers it covers
//! ([`SeqRange`]), and an update that does not continue the sequence is a gap. After a gap the
//! book refuses updates ([`BookError::NeedSnapshot`]) until a new snapshot arrives.
//!
//! Each side is a two-level sorted ladder: fixed-size chunks of up to 64 sorted levels, with the
//! best level at the end, located by an exponential search that starts at the top of the book.
//! Real feeds change levels near the top far more often than deep ones, so most updates touch the
//! last few chunks, and an insert or delete moves at most one chunk's levels.

use thiserror::Error;

use crate::price::Price;

/// A side of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Buy orders; the best level is the highest price.
    Bid,
    /// Sell orders; the best level is the lowest price.
    Ask,
}

impl Side {
    /// Returns the other side.
    #[must_use]
    pub fn opposite(self) -> Self {
        match self {
            Self::Bid => Self::Ask,
            Self::Ask => Self::Bid,
        }
    }
}

/// One aggregated price level: a price and the total size resting at it, both as fixed-point
/// mantissas at the book's scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Level {
    /// The price mantissa.
    pub price: i64,
    /// The size mantissa; 0 in an update means "delete the level".
    pub size: i64,
}

impl Level {
    /// Returns a level of `size` at `price`.
    #[must_use]
    pub const fn new(price: i64, size: i64) -> Self {
        Self { price, size }
    }
}

/// The sequence numbers one incremental update covers.
///
/// For Binance depth diffs these are `U` (`first`), `u` (`last`) and, on USD-M futures, `pu`
/// (`prev_last`, the `last` of the previous update of the same stream). For a feed with one
/// number per message, such as Bybit's `u`, `first` and `last` are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqRange {
    /// The first sequence number in the update.
    pub first: u64,
    /// The last sequence number in the update.
    pub last: u64,
    /// The last sequence number of the previous update, where the feed states it.
    pub prev_last: Option<u64>,
}

impl SeqRange {
    /// Returns the range `first..=last` with no previous-update link.
    #[must_use]
    pub const fn new(first: u64, last: u64) -> Self {
        Self {
            first,
            last,
            prev_last: None,
        }
    }

    /// Returns the range `first..=last` linked to the previous update's last number.
    #[must_use]
    pub const fn linked(first: u64, last: u64, prev_last: u64) -> Self {
        Self {
            first,
            last,
            prev_last: Some(prev_last),
        }
    }

    /// Returns the range of a single sequence number.
    #[must_use]
    pub const fn single(seq: u64) -> Self {
        Self::new(seq, seq)
    }
}

/// Whether a book can take incremental updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookState {
    /// No snapshot has been applied yet; updates are refused.
    AwaitingSnapshot,
    /// The book is in sequence and takes updates.
    Live,
    /// A gap or a bad update broke the sequence; updates are refused until a new snapshot.
    Gapped,
}

/// Why a book refused a snapshot or an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum BookError {
    /// The update does not continue the book's sequence: some updates were lost.
    #[error(
        "gap: need a new snapshot (book at sequence {book_seq}, update covers \
         {first}..={last}, previous {prev_last:?})"
    )]
    Gap {
        /// The sequence number the book was at.
        book_seq: u64,
        /// The update's first sequence number.
        first: u64,
        /// The update's last sequence number.
        last: u64,
        /// The update's link to the previous update, if it has one.
        prev_last: Option<u64>,
    },
    /// The book is not live, so it needs a snapshot before any update.
    #[error("need a new snapshot: the book is {state:?}")]
    NeedSnapshot {
        /// The state the book is in.
        state: BookState,
    },
    /// A level has a negative size.
    #[error("negative size {size} at price {price} on the {side:?} side")]
    NegativeSize {
        /// The side of the level.
        side: Side,
        /// The level's price mantissa.
        price: i64,
        /// The level's size mantissa.
        size: i64,
    },
    /// An update's first sequence number is above its last.
    #[error("inverted sequence range {first}..={last}")]
    InvertedRange {
        /// The update's first sequence number.
        first: u64,
        /// The update's last sequence number.
        last: u64,
    },
}

/// What an in-sequence update did to the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateOutcome {
    /// The update was applied.
    Applied {
        /// Whether the book is now crossed or locked (best bid at or above best ask), which
        /// only bad data causes.
        crossed: bool,
    },
    /// The update ends at or before the book's sequence number, so it was already part of the
    /// book and was skipped.
    Stale,
}

/// How an update's sequence numbers relate to a live book ([`OrderBook::check_sequence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Continuity {
    /// The update continues the book.
    InSequence,
    /// The update ends at or before the book's sequence number: it is already in the book.
    Stale,
}

/// The best levels of both sides, best first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BookDepth {
    /// Bid levels, highest price first.
    pub bids: Vec<Level>,
    /// Ask levels, lowest price first.
    pub asks: Vec<Level>,
}

/// Levels per chunk of a ladder.
const CHUNK: usize = 64;
/// A chunk below this many levels is merged with a neighbour where they fit together.
const MERGE_BELOW: usize = CHUNK / 4;
/// Two chunks merge only if the result leaves this much room for inserts.
const MERGE_MAX: usize = CHUNK * 3 / 4;

/// Up to [`CHUNK`] levels, keys ascending.
#[derive(Debug, Clone)]
struct Chunk {
    len: usize,
    keys: [i64; CHUNK],
    sizes: [i64; CHUNK],
}

impl Chunk {
    fn empty() -> Box<Self> {
        Box::new(Self {
            len: 0,
            keys: [0; CHUNK],
            sizes: [0; CHUNK],
        })
    }

    #[inline]
    fn find(&self, key: i64) -> Result<usize, usize> {
        self.keys[..self.len].binary_search(&key)
    }

    #[inline]
    fn insert(&mut self, at: usize, key: i64, size: i64) {
        let len = self.len;
        self.keys.copy_within(at..len, at + 1);
        self.sizes.copy_within(at..len, at + 1);
        self.keys[at] = key;
        self.sizes[at] = size;
        self.len += 1;
    }

    #[inline]
    fn remove(&mut self, at: usize) {
        let len = self.len;
        self.keys.copy_within(at + 1..len, at);
        self.sizes.copy_within(at + 1..len, at);
        self.len -= 1;
    }

    fn append(&mut self, other: &Self) {
        let (len, more) = (self.len, other.len);
        self.keys[len..len + more].copy_from_slice(&other.keys[..more]);
        self.sizes[len..len + more].copy_from_slice(&other.sizes[..more]);
        self.len += more;
    }
}

/// Returns where `key` is (`Ok`) or would go (`Err`) in the ascending `keys`, searching
/// exponentially from the end, where the best levels are.
#[inline]
fn search_from_top(keys: &[i64], key: i64) -> Result<usize, usize> {
    let mut hi = keys.len();
    let mut step = 1;
    let lo = loop {
        if step >= hi {
            break 0;
        }
        let probe = hi - step;
        if keys[probe] <= key {
            break probe;
        }
        hi = probe;
        step <<= 1;
    };
    match keys[lo..hi].binary_search(&key) {
        Ok(i) => Ok(lo + i),
        Err(i) => Err(lo + i),
    }
}

/// One side of a book: levels sorted by ascending key in chunks, best level last. Bids use the
/// price as the key and asks its bitwise complement, so that the best level is the largest key
/// on both sides.
#[derive(Debug, Clone, Default)]
struct Ladder {
    /// The first (smallest) key of each chunk.
    mins: Vec<i64>,
    /// The chunks, none empty, in ascending key order. Boxed so that splitting or merging a
    /// chunk shifts pointers, not whole 1 KiB chunks.
    #[allow(clippy::vec_box, reason = "chunks move often; boxes make that cheap")]
    chunks: Vec<Box<Chunk>>,
    /// The number of levels.
    len: usize,
}

impl Ladder {
    fn clear(&mut self) {
        self.mins.clear();
        self.chunks.clear();
        self.len = 0;
    }

    /// Replaces the contents with `sorted`: ascending, distinct keys, no zero sizes.
    fn fill(&mut self, sorted: &[(i64, i64)]) {
        self.clear();
        for part in sorted.chunks(MERGE_MAX) {
            let mut chunk = Chunk::empty();
            for (i, &(key, size)) in part.iter().enumerate() {
                chunk.keys[i] = key;
                chunk.sizes[i] = size;
            }
            chunk.len = part.len();
            self.mins.push(chunk.keys[0]);
            self.chunks.push(chunk);
        }
        self.len = sorted.len();
    }

    /// Returns the chunk where `key` is or belongs: the last chunk whose first key is at most
    /// `key`, or the first chunk.
    #[inline]
    fn chunk_for(&self, key: i64) -> usize {
        match search_from_top(&self.mins, key) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }

    /// Sets the size at `key`; a size of 0 deletes the level.
    #[inline]
    fn set(&mut self, key: i64, size: i64) {
        if self.chunks.is_empty() {
            if size != 0 {
                let mut chunk = Chunk::empty();
                chunk.insert(0, key, size);
                self.chunks.push(chunk);
                self.mins.push(key);
                self.len = 1;
            }
            return;
        }
        let ci = self.chunk_for(key);
        let chunk = &mut self.chunks[ci];
        match chunk.find(key) {
            Ok(i) if size != 0 => chunk.sizes[i] = size,
            Ok(i) => {
                chunk.remove(i);
                self.len -= 1;
                self.after_remove(ci, i);
            }
            Err(_) if size == 0 => {}
            Err(i) if chunk.len < CHUNK => {
                chunk.insert(i, key, size);
                if i == 0 {
                    self.mins[ci] = key;
                }
                self.len += 1;
            }
            Err(i) => {
                self.split_insert(ci, i, key, size);
                self.len += 1;
            }
        }
    }

    /// Splits the full chunk `ci` in two and inserts the level at position `at` of the old chunk.
    #[cold]
    fn split_insert(&mut self, ci: usize, at: usize, key: i64, size: i64) {
        let half = CHUNK / 2;
        let mut upper = Chunk::empty();
        let old = &mut self.chunks[ci];
        upper.keys[..CHUNK - half].copy_from_slice(&old.keys[half..]);
        upper.sizes[..CHUNK - half].copy_from_slice(&old.sizes[half..]);
        upper.len = CHUNK - half;
        old.len = half;
        if at <= half {
            old.insert(at, key, size);
            if at == 0 {
                self.mins[ci] = key;
            }
        } else {
            upper.insert(at - half, key, size);
        }
        self.mins.insert(ci + 1, upper.keys[0]);
        self.chunks.insert(ci + 1, upper);
    }

    /// Restores the chunk invariants after removing position `at` of chunk `ci`.
    #[inline]
    fn after_remove(&mut self, ci: usize, at: usize) {
        let len = self.chunks[ci].len;
        if len == 0 {
            self.chunks.remove(ci);
            self.mins.remove(ci);
            return;
        }
        if at == 0 {
            self.mins[ci] = self.chunks[ci].keys[0];
        }
        if len < MERGE_BELOW {
            self.merge_small(ci);
        }
    }

    /// Merges the small chunk `ci` into a neighbour where they fit together.
    #[cold]
    fn merge_small(&mut self, ci: usize) {
        let len = self.chunks[ci].len;
        if ci > 0 && self.chunks[ci - 1].len + len <= MERGE_MAX {
            let small = self.chunks.remove(ci);
            self.mins.remove(ci);
            self.chunks[ci - 1].append(&small);
        } else if ci + 1 < self.chunks.len() && self.chunks[ci + 1].len + len <= MERGE_MAX {
            let next = self.chunks.remove(ci + 1);
            self.mins.remove(ci + 1);
            self.chunks[ci].append(&next);
        }
    }

    /// Returns the best (largest) key and its size.
    #[inline]
    fn best(&self) -> Option<(i64, i64)> {
        let chunk = self.chunks.last()?;
        let last = chunk.len.checked_sub(1)?;
        Some((chunk.keys[last], chunk.sizes[last]))
    }

    fn get(&self, key: i64) -> Option<i64> {
        if self.chunks.is_empty() {
            return None;
        }
        let chunk = &self.chunks[self.chunk_for(key)];
        chunk.find(key).ok().map(|i| chunk.sizes[i])
    }

    /// Returns the levels best first, as (key, size).
    fn iter_best_first(&self) -> impl DoubleEndedIterator<Item = (i64, i64)> + '_ {
        self.chunks.iter().rev().flat_map(|chunk| {
            chunk.keys[..chunk.len]
                .iter()
                .copied()
                .zip(chunk.sizes[..chunk.len].iter().copied())
                .rev()
        })
    }
}

/// The ladder key of a price on `side`: larger is better on both sides.
#[inline]
fn key_of(side: Side, price: i64) -> i64 {
    match side {
        Side::Bid => price,
        Side::Ask => !price,
    }
}

/// The price of a ladder key on `side` (the key transform is its own inverse).
#[inline]
fn price_of(side: Side, key: i64) -> i64 {
    key_of(side, key)
}

/// An L2 order book of one instrument, with fixed-point prices and sizes.
///
/// ```
/// use nexus_marketdata::book::{Level, OrderBook, SeqRange, Side, UpdateOutcome};
///
/// let mut book = OrderBook::new(2, 3);
/// book.apply_snapshot(&[Level::new(10_000, 1_500)], &[Level::new(10_010, 500)], 100)?;
/// let outcome = book.apply_update(SeqRange::new(101, 103), &[Level::new(10_005, 200)], &[])?;
/// assert_eq!(outcome, UpdateOutcome::Applied { crossed: false });
/// assert_eq!(book.best_bid(), Some(Level::new(10_005, 200)));
/// assert_eq!(book.spread(), Some(5));
/// # Ok::<(), nexus_marketdata::book::BookError>(())
/// ```
#[derive(Debug, Clone)]
pub struct OrderBook {
    price_scale: u8,
    size_scale: u8,
    bids: Ladder,
    asks: Ladder,
    state: BookState,
    sequence: u64,
    /// Whether an update has been applied since the last snapshot.
    continued: bool,
}

impl OrderBook {
    /// Returns an empty book, awaiting a snapshot, whose prices have `price_scale` decimal places
    /// and sizes `size_scale`.
    #[must_use]
    pub fn new(price_scale: u8, size_scale: u8) -> Self {
        Self {
            price_scale,
            size_scale,
            bids: Ladder::default(),
            asks: Ladder::default(),
            state: BookState::AwaitingSnapshot,
            sequence: 0,
            continued: false,
        }
    }

    /// Returns the number of decimal places of prices.
    #[must_use]
    pub fn price_scale(&self) -> u8 {
        self.price_scale
    }

    /// Returns the number of decimal places of sizes.
    #[must_use]
    pub fn size_scale(&self) -> u8 {
        self.size_scale
    }

    /// Returns whether the book takes updates.
    #[must_use]
    pub fn state(&self) -> BookState {
        self.state
    }

    /// Returns the sequence number of the last snapshot or update applied.
    #[must_use]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Replaces the whole book with a snapshot valid at `sequence`, and makes it live.
    ///
    /// The levels may come in any order; levels of size 0 are skipped, and where a price
    /// repeats, its last level wins. A crossed snapshot is accepted; [`Self::is_crossed`]
    /// reports it.
    ///
    /// # Errors
    /// Returns [`BookError::NegativeSize`] if a level has a negative size; the book is then
    /// unchanged.
    pub fn apply_snapshot(
        &mut self,
        bids: &[Level],
        asks: &[Level],
        sequence: u64,
    ) -> Result<(), BookError> {
        check_sizes(Side::Bid, bids)?;
        check_sizes(Side::Ask, asks)?;
        let mut scratch = Vec::with_capacity(bids.len().max(asks.len()));
        fill_side(&mut self.bids, Side::Bid, bids, &mut scratch);
        fill_side(&mut self.asks, Side::Ask, asks, &mut scratch);
        self.sequence = sequence;
        self.state = BookState::Live;
        self.continued = false;
        Ok(())
    }

    /// Sets the size at one price outside any sequence; a size of 0 deletes the level.
    ///
    /// # Errors
    /// Returns [`BookError::NeedSnapshot`] unless the book is live, and
    /// [`BookError::NegativeSize`] for a negative size; in both cases the book is unchanged.
    pub fn apply_delta(&mut self, side: Side, price: i64, size: i64) -> Result<(), BookError> {
        if self.state != BookState::Live {
            return Err(BookError::NeedSnapshot { state: self.state });
        }
        if size < 0 {
            return Err(BookError::NegativeSize { side, price, size });
        }
        self.ladder_mut(side).set(key_of(side, price), size);
        Ok(())
    }

    /// Returns whether an update covering `seq` would continue the book, without changing it:
    /// the sequence rule of [`Self::apply_update`], for callers that must check an update
    /// against the book's levels before applying it.
    ///
    /// # Errors
    /// Returns [`BookError::NeedSnapshot`] unless the book is live, [`BookError::InvertedRange`]
    /// for `first > last` and [`BookError::Gap`] for an update out of sequence.
    pub fn check_sequence(&self, seq: SeqRange) -> Result<Continuity, BookError> {
        if self.state != BookState::Live {
            return Err(BookError::NeedSnapshot { state: self.state });
        }
        if seq.first > seq.last {
            return Err(BookError::InvertedRange {
                first: seq.first,
                last: seq.last,
            });
        }
        if seq.last <= self.sequence {
            return Ok(Continuity::Stale);
        }
        let in_sequence = if self.continued {
            match seq.prev_last {
                Some(prev) => prev == self.sequence,
                None => seq.first == self.sequence.saturating_add(1),
            }
        } else {
            seq.first <= self.sequence.saturating_add(1)
                || seq.prev_last.is_some_and(|prev| prev <= self.sequence)
        };
        if in_sequence {
            Ok(Continuity::InSequence)
        } else {
            Err(BookError::Gap {
                book_seq: self.sequence,
                first: seq.first,
                last: seq.last,
                prev_last: seq.prev_last,
            })
        }
    }

    /// Applies one sequenced update: the level changes of both sides, in order.
    ///
    /// An update that ends at or before the book's sequence number is skipped as
    /// [`UpdateOutcome::Stale`]. The first update after a snapshot must cover the snapshot's
    /// sequence number + 1 (`first <= sequence + 1`), or link back to at or before the snapshot
    /// (`prev_last <= sequence`: on Binance USD-M futures, update ids are shared by all symbols,
    /// so one symbol's `first` can lie beyond `sequence + 1` with nothing lost). Every later
    /// update must link to the previous one: `prev_last == sequence` where the update has a
    /// link, `first == sequence + 1` where it does not.
    ///
    /// # Errors
    /// Returns [`BookError::NeedSnapshot`] unless the book is live, and, after which the book
    /// needs a new snapshot, [`BookError::Gap`] for an update out of sequence,
    /// [`BookError::InvertedRange`] for `first > last` and [`BookError::NegativeSize`] for a
    /// negative size. On error no level changes.
    pub fn apply_update(
        &mut self,
        seq: SeqRange,
        bids: &[Level],
        asks: &[Level],
    ) -> Result<UpdateOutcome, BookError> {
        match self.check_sequence(seq) {
            Ok(Continuity::InSequence) => {}
            Ok(Continuity::Stale) => return Ok(UpdateOutcome::Stale),
            Err(err) => {
                if self.state == BookState::Live {
                    self.state = BookState::Gapped;
                }
                return Err(err);
            }
        }
        if let Err(err) = check_sizes(Side::Bid, bids).and_then(|()| check_sizes(Side::Ask, asks)) {
            self.state = BookState::Gapped;
            return Err(err);
        }
        for level in bids {
            self.bids.set(level.price, level.size);
        }
        for level in asks {
            self.asks.set(!level.price, level.size);
        }
        self.sequence = seq.last;
        self.continued = true;
        Ok(UpdateOutcome::Applied {
            crossed: self.is_crossed(),
        })
    }

    /// Marks the book out of sequence (after a disconnect, say): updates are refused until the
    /// next snapshot. The levels are kept.
    pub fn invalidate(&mut self) {
        if self.state == BookState::Live {
            self.state = BookState::Gapped;
        }
    }

    fn ladder(&self, side: Side) -> &Ladder {
        match side {
            Side::Bid => &self.bids,
            Side::Ask => &self.asks,
        }
    }

    fn ladder_mut(&mut self, side: Side) -> &mut Ladder {
        match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        }
    }

    /// Returns the best level of `side`, if the side has any.
    #[must_use]
    #[inline]
    pub fn best(&self, side: Side) -> Option<Level> {
        self.ladder(side)
            .best()
            .map(|(key, size)| Level::new(price_of(side, key), size))
    }

    /// Returns the highest bid level.
    #[must_use]
    #[inline]
    pub fn best_bid(&self) -> Option<Level> {
        self.best(Side::Bid)
    }

    /// Returns the lowest ask level.
    #[must_use]
    #[inline]
    pub fn best_ask(&self) -> Option<Level> {
        self.best(Side::Ask)
    }

    /// Returns the size resting at `price` on `side`, if there is a level there.
    #[must_use]
    pub fn size_at(&self, side: Side, price: i64) -> Option<i64> {
        self.ladder(side).get(key_of(side, price))
    }

    /// Returns the levels of `side`, best first.
    pub fn levels(&self, side: Side) -> impl DoubleEndedIterator<Item = Level> + '_ {
        self.ladder(side)
            .iter_best_first()
            .map(move |(key, size)| Level::new(price_of(side, key), size))
    }

    /// Returns up to `n` levels of each side, best first.
    #[must_use]
    pub fn depth(&self, n: usize) -> BookDepth {
        BookDepth {
            bids: self.levels(Side::Bid).take(n).collect(),
            asks: self.levels(Side::Ask).take(n).collect(),
        }
    }

    /// Returns the number of levels on `side`.
    #[must_use]
    pub fn level_count(&self, side: Side) -> usize {
        self.ladder(side).len
    }

    /// Returns whether both sides are empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bids.len == 0 && self.asks.len == 0
    }

    /// Returns the total size over all levels of `side` (as a mantissa at the size scale).
    #[must_use]
    pub fn total_size(&self, side: Side) -> i128 {
        self.ladder(side)
            .iter_best_first()
            .map(|(_, size)| i128::from(size))
            .sum()
    }

    /// Returns the best ask minus the best bid, as a price mantissa; negative when crossed.
    #[must_use]
    pub fn spread(&self) -> Option<i64> {
        let (bid, ask) = (self.best_bid()?, self.best_ask()?);
        ask.price.checked_sub(bid.price)
    }

    /// Returns whether the book is crossed or locked: the best bid at or above the best ask,
    /// which no exchange book shows, so it means bad or missing data.
    #[must_use]
    #[inline]
    pub fn is_crossed(&self) -> bool {
        match (self.best_bid(), self.best_ask()) {
            (Some(bid), Some(ask)) => bid.price >= ask.price,
            _ => false,
        }
    }

    /// Returns the mid price `(best bid + best ask) / 2`, in price units (not a mantissa).
    #[must_use]
    pub fn mid(&self) -> Option<f64> {
        let (bid, ask) = (self.best_bid()?, self.best_ask()?);
        let sum = i128::from(bid.price) + i128::from(ask.price);
        Some(self.unscale_price(sum as f64 / 2.0))
    }

    /// Returns the size-weighted mid price of the top of the book,
    /// `(bid * ask_size + ask * bid_size) / (bid_size + ask_size)`, in price units: it leans
    /// towards the side with less size, where the price is likelier to move.
    #[must_use]
    pub fn micro_price(&self) -> Option<f64> {
        let (bid, ask) = (self.best_bid()?, self.best_ask()?);
        let weighted = i128::from(bid.price) * i128::from(ask.size)
            + i128::from(ask.price) * i128::from(bid.size);
        let total = i128::from(bid.size) + i128::from(ask.size);
        if total == 0 {
            return None;
        }
        Some(self.unscale_price(weighted as f64 / total as f64))
    }

    /// Returns the top-of-book size imbalance `(bid_size - ask_size) / (bid_size + ask_size)`,
    /// in [-1, 1]: positive when more size rests on the bid.
    #[must_use]
    pub fn imbalance(&self) -> Option<f64> {
        let (bid, ask) = (self.best_bid()?, self.best_ask()?);
        let total = i128::from(bid.size) + i128::from(ask.size);
        if total == 0 {
            return None;
        }
        let diff = i128::from(bid.size) - i128::from(ask.size);
        Some(diff as f64 / total as f64)
    }

    /// Returns a price mantissa of this book as a [`Price`].
    #[must_use]
    pub fn price(&self, mantissa: i64) -> Price {
        Price {
            mantissa,
            scale: self.price_scale,
        }
    }

    /// Returns a size mantissa of this book as a [`Price`]-like fixed-point number.
    #[must_use]
    pub fn size(&self, mantissa: i64) -> Price {
        Price {
            mantissa,
            scale: self.size_scale,
        }
    }

    fn unscale_price(&self, mantissa: f64) -> f64 {
        mantissa / 10f64.powi(i32::from(self.price_scale))
    }
}

fn check_sizes(side: Side, levels: &[Level]) -> Result<(), BookError> {
    match levels.iter().find(|level| level.size < 0) {
        Some(level) => Err(BookError::NegativeSize {
            side,
            price: level.price,
            size: level.size,
        }),
        None => Ok(()),
    }
}

/// Fills `ladder` from snapshot levels in any order (last of a repeated price wins).
fn fill_side(ladder: &mut Ladder, side: Side, levels: &[Level], scratch: &mut Vec<(i64, i64)>) {
    scratch.clear();
    scratch.extend(
        levels
            .iter()
            .map(|level| (key_of(side, level.price), level.size)),
    );
    // Stable, so that among equal keys the input order stays and the last can win.
    scratch.sort_by_key(|&(key, _)| key);
    let mut write = 0;
    for read in 0..scratch.len() {
        let item = scratch[read];
        if write > 0 && scratch[write - 1].0 == item.0 {
            scratch[write - 1] = item;
        } else {
            scratch[write] = item;
            write += 1;
        }
    }
    scratch.truncate(write);
    scratch.retain(|&(_, size)| size != 0);
    ladder.fill(scratch);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(price: i64, size: i64) -> Level {
        Level::new(price, size)
    }

    fn live_book() -> OrderBook {
        let mut book = OrderBook::new(2, 3);
        book.apply_snapshot(
            &[lv(100, 5), lv(99, 7), lv(98, 1)],
            &[lv(101, 3), lv(102, 4), lv(105, 9)],
            10,
        )
        .unwrap();
        book
    }

    #[test]
    fn new_book_awaits_a_snapshot_and_refuses_updates() {
        let mut book = OrderBook::new(2, 3);
        assert_eq!(book.state(), BookState::AwaitingSnapshot);
        assert!(book.is_empty());
        assert_eq!(book.best_bid(), None);
        assert_eq!(book.mid(), None);
        assert_eq!(
            book.apply_delta(Side::Bid, 100, 1),
            Err(BookError::NeedSnapshot {
                state: BookState::AwaitingSnapshot
            })
        );
        assert_eq!(
            book.apply_update(SeqRange::new(1, 1), &[], &[]),
            Err(BookError::NeedSnapshot {
                state: BookState::AwaitingSnapshot
            })
        );
    }

    #[test]
    fn snapshot_sorts_skips_zero_and_last_duplicate_wins() {
        let mut book = OrderBook::new(2, 3);
        book.apply_snapshot(
            &[lv(98, 1), lv(100, 5), lv(99, 0), lv(97, 2), lv(98, 3)],
            &[lv(105, 9), lv(101, 3), lv(102, 0)],
            42,
        )
        .unwrap();
        assert_eq!(book.state(), BookState::Live);
        assert_eq!(book.sequence(), 42);
        let depth = book.depth(10);
        assert_eq!(depth.bids, vec![lv(100, 5), lv(98, 3), lv(97, 2)]);
        assert_eq!(depth.asks, vec![lv(101, 3), lv(105, 9)]);
        assert_eq!(book.level_count(Side::Bid), 3);
        assert_eq!(book.total_size(Side::Bid), 10);
    }

    #[test]
    fn negative_snapshot_size_is_rejected_and_book_unchanged() {
        let mut book = live_book();
        let before = book.depth(10);
        assert_eq!(
            book.apply_snapshot(&[lv(1, -1)], &[], 99),
            Err(BookError::NegativeSize {
                side: Side::Bid,
                price: 1,
                size: -1
            })
        );
        assert_eq!(book.depth(10), before);
        assert_eq!(book.sequence(), 10);
    }

    #[test]
    fn deltas_insert_modify_delete() {
        let mut book = live_book();
        book.apply_delta(Side::Bid, 100, 8).unwrap();
        book.apply_delta(Side::Bid, 99, 0).unwrap();
        book.apply_delta(Side::Bid, 100_000, 0).unwrap(); // deleting a missing level is a no-op
        book.apply_delta(Side::Ask, 100, 2).unwrap(); // a new best ask, still not crossed
        assert_eq!(book.best_ask(), Some(lv(100, 2)));
        assert!(book.is_crossed()); // 100 bid, 100 ask: locked counts as crossed
        book.apply_delta(Side::Ask, 100, 0).unwrap();
        assert!(!book.is_crossed());
        assert_eq!(book.depth(2).bids, vec![lv(100, 8), lv(98, 1)]);
        assert_eq!(book.size_at(Side::Bid, 99), None);
        assert_eq!(book.size_at(Side::Bid, 98), Some(1));
        assert_eq!(
            book.apply_delta(Side::Ask, 103, -4),
            Err(BookError::NegativeSize {
                side: Side::Ask,
                price: 103,
                size: -4
            })
        );
        assert_eq!(book.state(), BookState::Live);
    }

    #[test]
    fn top_of_book_figures() {
        let book = live_book(); // 100 x 5 / 101 x 3
        assert_eq!(book.spread(), Some(1));
        assert_eq!(book.mid(), Some(1.005));
        // (100 * 3 + 101 * 5) / 8 = 100.625 mantissa units
        let micro = book.micro_price().unwrap();
        assert!((micro - 1.00625).abs() < 1e-12, "{micro}");
        let imbalance = book.imbalance().unwrap();
        assert!((imbalance - 0.25).abs() < 1e-12, "{imbalance}");
        assert!(!book.is_crossed());
        assert_eq!(book.price(10_125).to_string(), "101.25");
        assert_eq!(book.size(1_500).to_string(), "1.500");
    }

    #[test]
    fn one_sided_book_has_no_top_figures() {
        let mut book = OrderBook::new(0, 0);
        book.apply_snapshot(&[lv(5, 1)], &[], 0).unwrap();
        assert_eq!(book.spread(), None);
        assert_eq!(book.mid(), None);
        assert_eq!(book.micro_price(), None);
        assert_eq!(book.imbalance(), None);
        assert!(!book.is_crossed());
    }

    #[test]
    fn first_update_must_straddle_the_snapshot() {
        let mut book = live_book(); // sequence 10
        assert_eq!(
            book.apply_update(SeqRange::new(5, 10), &[lv(100, 1)], &[]),
            Ok(UpdateOutcome::Stale)
        );
        assert_eq!(book.best_bid(), Some(lv(100, 5)));
        assert_eq!(
            book.apply_update(SeqRange::new(8, 12), &[lv(100, 1)], &[]),
            Ok(UpdateOutcome::Applied { crossed: false })
        );
        assert_eq!(book.sequence(), 12);
        assert_eq!(book.best_bid(), Some(lv(100, 1)));

        let mut book = live_book();
        assert_eq!(
            book.apply_update(SeqRange::new(12, 15), &[], &[]),
            Err(BookError::Gap {
                book_seq: 10,
                first: 12,
                last: 15,
                prev_last: None
            })
        );
        assert_eq!(book.state(), BookState::Gapped);
    }

    #[test]
    fn first_linked_update_may_start_beyond_the_snapshot() {
        // USD-M: ids are shared across symbols, so U can exceed lastUpdateId + 1.
        let mut book = live_book();
        assert_eq!(
            book.apply_update(SeqRange::linked(50, 60, 10), &[], &[]),
            Ok(UpdateOutcome::Applied { crossed: false })
        );
        let mut book = live_book();
        assert!(matches!(
            book.apply_update(SeqRange::linked(50, 60, 11), &[], &[]),
            Err(BookError::Gap { .. })
        ));
    }

    #[test]
    fn later_updates_must_link_and_a_gap_refuses_until_snapshot() {
        let mut book = live_book();
        book.apply_update(SeqRange::linked(9, 20, 3), &[], &[])
            .unwrap();
        book.apply_update(SeqRange::linked(25, 30, 20), &[lv(99, 1)], &[])
            .unwrap();
        assert_eq!(book.sequence(), 30);
        let gap = book.apply_update(SeqRange::linked(41, 50, 40), &[lv(100, 0)], &[]);
        assert_eq!(
            gap,
            Err(BookError::Gap {
                book_seq: 30,
                first: 41,
                last: 50,
                prev_last: Some(40)
            })
        );
        // Nothing of the refused update was applied.
        assert_eq!(book.best_bid(), Some(lv(100, 5)));
        let refused = Err(BookError::NeedSnapshot {
            state: BookState::Gapped,
        });
        assert_eq!(
            book.apply_update(SeqRange::linked(51, 60, 50), &[], &[]),
            refused
        );
        assert_eq!(
            book.apply_delta(Side::Bid, 1, 1),
            Err(BookError::NeedSnapshot {
                state: BookState::Gapped
            })
        );
        book.apply_snapshot(&[lv(90, 1)], &[lv(95, 1)], 55).unwrap();
        assert_eq!(book.state(), BookState::Live);
        assert_eq!(
            book.apply_update(SeqRange::linked(51, 60, 50), &[lv(91, 2)], &[]),
            Ok(UpdateOutcome::Applied { crossed: false })
        );
        assert_eq!(book.best_bid(), Some(lv(91, 2)));
    }

    #[test]
    fn unlinked_updates_must_be_contiguous() {
        let mut book = live_book();
        book.apply_update(SeqRange::single(11), &[], &[]).unwrap();
        book.apply_update(SeqRange::new(12, 14), &[], &[]).unwrap();
        assert_eq!(
            book.apply_update(SeqRange::single(14), &[], &[]),
            Ok(UpdateOutcome::Stale)
        );
        assert!(matches!(
            book.apply_update(SeqRange::single(16), &[], &[]),
            Err(BookError::Gap { book_seq: 14, .. })
        ));
    }

    #[test]
    fn bad_updates_break_the_sequence() {
        let mut book = live_book();
        assert_eq!(
            book.apply_update(SeqRange::new(12, 11), &[], &[]),
            Err(BookError::InvertedRange {
                first: 12,
                last: 11
            })
        );
        assert_eq!(book.state(), BookState::Gapped);

        let mut book = live_book();
        assert_eq!(
            book.apply_update(SeqRange::single(11), &[lv(100, 1)], &[lv(101, -1)]),
            Err(BookError::NegativeSize {
                side: Side::Ask,
                price: 101,
                size: -1
            })
        );
        assert_eq!(book.state(), BookState::Gapped);
        assert_eq!(book.best_bid(), Some(lv(100, 5)));
    }

    #[test]
    fn crossed_updates_are_reported_not_panicked_on() {
        let mut book = live_book();
        let outcome = book.apply_update(SeqRange::single(11), &[lv(103, 1)], &[]);
        assert_eq!(outcome, Ok(UpdateOutcome::Applied { crossed: true }));
        assert!(book.is_crossed());
        assert_eq!(book.spread(), Some(-2));
        assert!(book.mid().is_some());
        assert!(book.micro_price().is_some());
        let outcome = book.apply_update(SeqRange::single(12), &[lv(103, 0)], &[]);
        assert_eq!(outcome, Ok(UpdateOutcome::Applied { crossed: false }));

        let mut crossed = OrderBook::new(0, 0);
        crossed
            .apply_snapshot(&[lv(10, 1)], &[lv(9, 1)], 1)
            .unwrap();
        assert!(crossed.is_crossed());
    }

    #[test]
    fn invalidate_requires_a_new_snapshot() {
        let mut book = live_book();
        book.invalidate();
        assert_eq!(book.state(), BookState::Gapped);
        assert_eq!(book.best_bid(), Some(lv(100, 5)));
        let mut fresh = OrderBook::new(0, 0);
        fresh.invalidate();
        assert_eq!(fresh.state(), BookState::AwaitingSnapshot);
    }

    #[test]
    fn many_levels_split_and_merge_chunks() {
        let mut book = OrderBook::new(0, 0);
        book.apply_snapshot(&[], &[], 0).unwrap();
        // Insert 1000 bids from the worst up, then asks from the best down, then delete most.
        for p in 1..=1000 {
            book.apply_delta(Side::Bid, p, p).unwrap();
            book.apply_delta(Side::Ask, 3000 - p, p).unwrap();
        }
        assert_eq!(book.level_count(Side::Bid), 1000);
        assert_eq!(book.best_bid(), Some(lv(1000, 1000)));
        assert_eq!(book.best_ask(), Some(lv(2000, 1000)));
        let bids: Vec<i64> = book.levels(Side::Bid).map(|l| l.price).collect();
        assert_eq!(bids, (1..=1000).rev().collect::<Vec<_>>());
        for p in (1..=1000).filter(|p| p % 7 != 0) {
            book.apply_delta(Side::Bid, p, 0).unwrap();
            book.apply_delta(Side::Ask, 3000 - p, 0).unwrap();
        }
        assert_eq!(book.level_count(Side::Bid), 142);
        assert_eq!(book.best_bid(), Some(lv(994, 994)));
        assert_eq!(book.best_ask(), Some(lv(2006, 994)));
        let asks: Vec<i64> = book.levels(Side::Ask).map(|l| l.price).collect();
        assert_eq!(
            asks,
            (1..=1000)
                .rev()
                .filter(|p| p % 7 == 0)
                .map(|p| 3000 - p)
                .collect::<Vec<_>>()
        );
        // Worst-first iteration too.
        assert_eq!(book.levels(Side::Bid).next_back(), Some(lv(7, 7)));
        assert_eq!(book.size_at(Side::Ask, 2006), Some(994));
        assert_eq!(book.size_at(Side::Ask, 2007), None);
        assert_eq!(
            book.total_size(Side::Bid),
            i128::from((1..=1000).filter(|p| p % 7 == 0).sum::<i64>())
        );
    }

    #[test]
    fn extreme_prices_do_not_overflow() {
        let mut book = OrderBook::new(0, 0);
        book.apply_snapshot(
            &[lv(i64::MIN, i64::MAX), lv(i64::MAX - 1, 1)],
            &[lv(i64::MAX, i64::MAX), lv(i64::MIN + 1, 1)],
            u64::MAX,
        )
        .unwrap();
        assert_eq!(book.best_bid(), Some(lv(i64::MAX - 1, 1)));
        assert_eq!(book.best_ask(), Some(lv(i64::MIN + 1, 1)));
        assert!(book.is_crossed());
        assert_eq!(book.spread(), None); // i64::MIN + 1 - (i64::MAX - 1) overflows
        assert!(book.micro_price().is_some());
        assert!(book.imbalance().is_some());
        assert_eq!(
            book.apply_update(SeqRange::single(u64::MAX), &[], &[]),
            Ok(UpdateOutcome::Stale)
        );
    }
}

#[cfg(test)]
mod property_tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// A naive reference book.
    #[derive(Default)]
    struct Reference {
        bids: BTreeMap<i64, i64>,
        asks: BTreeMap<i64, i64>,
    }

    impl Reference {
        fn set(&mut self, side: Side, price: i64, size: i64) {
            let map = match side {
                Side::Bid => &mut self.bids,
                Side::Ask => &mut self.asks,
            };
            if size == 0 {
                map.remove(&price);
            } else {
                map.insert(price, size);
            }
        }

        fn levels(&self, side: Side) -> Vec<Level> {
            match side {
                Side::Bid => self
                    .bids
                    .iter()
                    .rev()
                    .map(|(&p, &s)| Level::new(p, s))
                    .collect(),
                Side::Ask => self.asks.iter().map(|(&p, &s)| Level::new(p, s)).collect(),
            }
        }
    }

    fn side() -> impl Strategy<Value = Side> {
        prop_oneof![Just(Side::Bid), Just(Side::Ask)]
    }

    /// Level changes on a narrow price band so that levels are hit repeatedly; size 0 often.
    fn change(lo: i64, hi: i64) -> impl Strategy<Value = (Side, i64, i64)> {
        (side(), lo..hi, prop_oneof![Just(0i64), 1i64..1_000])
    }

    fn check_against(book: &OrderBook, reference: &Reference) -> Result<(), TestCaseError> {
        for side in [Side::Bid, Side::Ask] {
            let levels: Vec<Level> = book.levels(side).collect();
            prop_assert_eq!(&levels, &reference.levels(side));
            prop_assert!(levels.iter().all(|l| l.size > 0), "zero-size level");
            let sorted = levels.windows(2).all(|w| match side {
                Side::Bid => w[0].price > w[1].price,
                Side::Ask => w[0].price < w[1].price,
            });
            prop_assert!(sorted, "depth not sorted best first");
            prop_assert_eq!(book.level_count(side), levels.len());
            let total: i128 = levels.iter().map(|l| i128::from(l.size)).sum();
            prop_assert_eq!(book.total_size(side), total);
            prop_assert_eq!(book.best(side), levels.first().copied());
        }
        let depth = book.depth(5);
        prop_assert_eq!(
            depth.bids,
            reference
                .levels(Side::Bid)
                .into_iter()
                .take(5)
                .collect::<Vec<_>>()
        );
        prop_assert_eq!(
            depth.asks,
            reference
                .levels(Side::Ask)
                .into_iter()
                .take(5)
                .collect::<Vec<_>>()
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// With bids always below 1000 and asks at or above, the book never crosses.
        #[test]
        fn uncrossed_input_keeps_bid_below_ask(
            snap_bids in prop::collection::vec((1i64..1000, 1i64..100), 0..200),
            snap_asks in prop::collection::vec((1000i64..2000, 1i64..100), 0..200),
            updates in prop::collection::vec(
                prop::collection::vec((side(), 0i64..1000, prop_oneof![Just(0i64), 1i64..50]), 0..40),
                0..60,
            ),
        ) {
            let mut book = OrderBook::new(2, 0);
            let mut reference = Reference::default();
            let bids: Vec<Level> = snap_bids.iter().map(|&(p, s)| Level::new(p, s)).collect();
            let asks: Vec<Level> = snap_asks.iter().map(|&(p, s)| Level::new(p, s)).collect();
            book.apply_snapshot(&bids, &asks, 0).unwrap();
            for l in &bids { reference.set(Side::Bid, l.price, l.size); }
            for l in &asks { reference.set(Side::Ask, l.price, l.size); }
            check_against(&book, &reference)?;
            for (i, update) in updates.iter().enumerate() {
                let seq = u64::try_from(i).unwrap() + 1;
                let mut ub = Vec::new();
                let mut ua = Vec::new();
                for &(side, offset, size) in update {
                    match side {
                        Side::Bid => { ub.push(Level::new(1 + offset % 999, size)); reference.set(Side::Bid, 1 + offset % 999, size); }
                        Side::Ask => { ua.push(Level::new(1000 + offset, size)); reference.set(Side::Ask, 1000 + offset, size); }
                    }
                }
                let outcome = book.apply_update(SeqRange::single(seq), &ub, &ua);
                prop_assert_eq!(outcome, Ok(UpdateOutcome::Applied { crossed: false }));
                prop_assert!(!book.is_crossed());
                if let (Some(b), Some(a)) = (book.best_bid(), book.best_ask()) {
                    prop_assert!(b.price < a.price);
                    prop_assert!(book.spread().unwrap() > 0);
                    let micro = book.micro_price().unwrap();
                    prop_assert!(micro >= b.price as f64 / 100.0 && micro <= a.price as f64 / 100.0);
                    let imbalance = book.imbalance().unwrap();
                    prop_assert!((-1.0..=1.0).contains(&imbalance));
                }
                check_against(&book, &reference)?;
            }
        }

        /// Any mix of deltas, crossing or not, matches the reference book level for level.
        #[test]
        fn matches_btreemap_reference(
            snapshot in prop::collection::vec(change(-300, 300), 0..300),
            changes in prop::collection::vec(change(-300, 300), 0..2000),
        ) {
            let mut book = OrderBook::new(0, 0);
            let mut reference = Reference::default();
            let bids: Vec<Level> = snapshot.iter().filter(|c| c.0 == Side::Bid).map(|c| Level::new(c.1, c.2)).collect();
            let asks: Vec<Level> = snapshot.iter().filter(|c| c.0 == Side::Ask).map(|c| Level::new(c.1, c.2)).collect();
            book.apply_snapshot(&bids, &asks, 7).unwrap();
            for &(side, price, size) in &snapshot { reference.set(side, price, size); }
            check_against(&book, &reference)?;
            for &(side, price, size) in &changes {
                book.apply_delta(side, price, size).unwrap();
                reference.set(side, price, size);
                let crossed = match (reference.bids.keys().next_back(), reference.asks.keys().next()) {
                    (Some(b), Some(a)) => b >= a,
                    _ => false,
                };
                prop_assert_eq!(book.is_crossed(), crossed);
            }
            check_against(&book, &reference)?;
            prop_assert_eq!(book.sequence(), 7);
        }

        /// Gap detection matches the linking rule, and a gapped book changes nothing.
        #[test]
        fn gaps_are_detected_exactly(
            start in 1u64..1_000,
            steps in prop::collection::vec((0u64..3, 0u64..3, 1u64..4, any::<bool>()), 1..50),
        ) {
            let mut book = OrderBook::new(0, 0);
            book.apply_snapshot(&[Level::new(1, 1)], &[Level::new(2, 1)], start).unwrap();
            let mut last = start;
            let mut live = true;
            let mut first_update = true;
            for &(first_offset, link_offset, len, linked) in &steps {
                // first_offset 0: overlaps the book, 1: contiguous, 2: skips one.
                let first = last + first_offset;
                // link_offset 0: links before the book's sequence, 1: exactly to it, 2: beyond.
                let prev = last + link_offset - 1;
                let range = if linked {
                    SeqRange::linked(first, first + len, prev)
                } else {
                    SeqRange::new(first, first + len)
                };
                let size = i64::try_from(len).unwrap();
                let before = book.depth(usize::MAX);
                let outcome = book.apply_update(range, &[Level::new(1, size)], &[]);
                if !live {
                    prop_assert_eq!(outcome, Err(BookError::NeedSnapshot { state: BookState::Gapped }));
                    prop_assert_eq!(book.depth(usize::MAX), before);
                    continue;
                }
                let in_sequence = match (first_update, linked) {
                    (true, true) => first_offset <= 1 || link_offset <= 1,
                    (true, false) => first_offset <= 1,
                    (false, true) => link_offset == 1,
                    (false, false) => first_offset == 1,
                };
                if in_sequence {
                    prop_assert_eq!(outcome, Ok(UpdateOutcome::Applied { crossed: false }));
                    last = first + len;
                    prop_assert_eq!(book.sequence(), last);
                    prop_assert_eq!(book.best_bid(), Some(Level::new(1, size)));
                    first_update = false;
                } else {
                    prop_assert!(matches!(outcome, Err(BookError::Gap { .. })), "{:?}", outcome);
                    prop_assert_eq!(book.state(), BookState::Gapped);
                    prop_assert_eq!(book.depth(usize::MAX), before);
                    live = false;
                }
            }
        }
    }
}
