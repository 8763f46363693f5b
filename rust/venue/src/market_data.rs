//! [`MarketDataVenue`]: the market-data side of the paper venue simulator, behind a FIX 4.4
//! acceptor of its own. Nothing here reaches a real market.
//!
//! It is an [`Application`] of the nexus-fix session layer that answers MarketDataRequest
//! (35=V):
//!
//! * SubscriptionRequestType (263) 1: a MarketDataSnapshotFullRefresh (35=W) per symbol at once,
//!   then a MarketDataIncrementalRefresh (35=X) whenever the symbol's book changes, until a 263=2
//!   with the same MDReqID (262) or the session's logout; 263=0: the W only.
//! * Anything it cannot serve: a MarketDataRequestReject (35=Y) with MDReqRejReason (281) and
//!   Text (58): 0 unknown symbol, 1 MDReqID already subscribed, 4 SubscriptionRequestType not 0,
//!   1 or 2, 5 MarketDepth (264) below the venue's depth (ask 0, the full book, or at least the
//!   depth), 6 MDUpdateType (265) not 1 (incremental), 8 MDEntryType (269) not bid or offer; a
//!   Y without a reason code for a missing field. Other message types: a BusinessMessageReject
//!   (35=j), reason 3.
//!
//! Books are fed from another thread ([`MarketDataVenue::set_book`], or
//! [`MarketDataVenue::on_quote`] for a top of book), trimmed to the venue's depth (levels per
//! side, [`MdVenueConfig::depth`]). Each change is one X with the new (279=0), changed (1) and
//! deleted (2) levels, every entry carrying the symbol's RptSeq (83), which counts the symbol's
//! changes across all subscriptions (one number per message), so that a re-subscription's W
//! continues the same sequence. Xs go out through each session's outgoing channel without
//! blocking: one that does not fit (a subscriber not keeping up) is dropped and counted, and the
//! subscriber sees an RptSeq gap.
//!
//! Fault injection for tests: [`MarketDataVenue::drop_next_updates`] withholds a symbol's next
//! changes from every subscriber (their RptSeq is used), as a lost packet would.

use std::collections::{BTreeMap, HashMap};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nexus_fix::message::{tags, Decimal, Message, Section};
use nexus_fix::session::state::{Application, OutgoingMessage, SessionId};
use nexus_fix::session::tcp::{Acceptor, AcceptorConfig, SessionSender, TcpError};
use nexus_fix::session::Session;
use thiserror::Error;

/// FIX tags used by the market-data venue.
mod tag {
    pub const SYMBOL: u32 = 55;
    pub const RPT_SEQ: u32 = 83;
    pub const MD_REQ_ID: u32 = 262;
    pub const SUBSCRIPTION_REQUEST_TYPE: u32 = 263;
    pub const MARKET_DEPTH: u32 = 264;
    pub const MD_UPDATE_TYPE: u32 = 265;
    pub const NO_MD_ENTRIES: u32 = 268;
    pub const MD_ENTRY_TYPE: u32 = 269;
    pub const MD_ENTRY_PX: u32 = 270;
    pub const MD_ENTRY_SIZE: u32 = 271;
    pub const MD_UPDATE_ACTION: u32 = 279;
    pub const MD_REQ_REJ_REASON: u32 = 281;
}

/// Both sides of a book as (price, size) mantissa pairs, best first: (bids, asks).
pub type BookLevels = (Vec<(i64, i64)>, Vec<(i64, i64)>);

/// Why the venue refused a book or a setting.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MdVenueError {
    /// The symbol is not one of the venue's instruments.
    #[error("unknown instrument {0:?}")]
    UnknownInstrument(String),
    /// A level has a price or size that is not positive, or a price twice on a side.
    #[error("bad {side} level {price} x {size}: prices and sizes must be positive and distinct")]
    BadLevel {
        /// "bid" or "ask".
        side: &'static str,
        /// The price mantissa.
        price: i64,
        /// The size mantissa.
        size: i64,
    },
    /// The configuration is invalid.
    #[error("invalid market-data venue configuration: {0}")]
    Config(String),
}

/// Settings of a [`MarketDataVenue`].
#[derive(Debug, Clone)]
pub struct MdVenueConfig {
    /// The instruments: (symbol, price scale, size scale).
    pub instruments: Vec<(String, u8, u8)>,
    /// Levels published per side (at least 1; 1 is a top of book).
    pub depth: usize,
}

/// What the venue has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MdVenueStats {
    /// MarketDataRequests received.
    pub requests: u64,
    /// MarketDataRequestRejects sent.
    pub rejects: u64,
    /// Snapshots (W) sent.
    pub snapshots: u64,
    /// Incremental refreshes (X) handed to session channels.
    pub increments: u64,
    /// Xs dropped because a session's channel was full.
    pub dropped_full: u64,
    /// Book changes withheld from every subscriber by [`MarketDataVenue::drop_next_updates`].
    pub withheld: u64,
    /// Subscriptions now active.
    pub subscriptions: usize,
}

#[derive(Debug)]
struct Book {
    price_scale: u8,
    size_scale: u8,
    /// Price -> size, at most `depth` levels each.
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    rpt_seq: u64,
    withhold: u64,
}

#[derive(Debug, Clone)]
struct Subscription {
    session: SessionId,
    md_req_id: String,
    symbol: String,
}

#[derive(Debug)]
struct Inner {
    books: HashMap<String, Book>,
    subscriptions: Vec<Subscription>,
    senders: HashMap<SessionId, SessionSender>,
    stats: MdVenueStats,
}

/// The market-data venue (a simulator); see the module documentation. A cheap [`Clone`] around
/// shared state.
#[derive(Debug, Clone)]
pub struct MarketDataVenue {
    inner: Arc<Mutex<Inner>>,
    depth: usize,
}

/// A refusal of a V: MDReqRejReason (None: a missing field) and Text.
struct Refusal(Option<&'static str>, String);

/// The parsed body of a V.
struct Request {
    md_req_id: String,
    kind: u8,
    symbols: Vec<String>,
}

impl Book {
    /// Returns the entries that take the book to `bids` and `asks` (already trimmed), and
    /// applies them.
    fn diff(&mut self, bids: &BTreeMap<i64, i64>, asks: &BTreeMap<i64, i64>) -> Vec<Entry> {
        let mut out = Vec::new();
        for (side, old, new) in [(0u8, &mut self.bids, bids), (1u8, &mut self.asks, asks)] {
            for (&price, &size) in old.iter() {
                if !new.contains_key(&price) {
                    out.push(Entry {
                        action: b'2',
                        side,
                        price,
                        size,
                    });
                }
            }
            for (&price, &size) in new {
                match old.get(&price) {
                    None => out.push(Entry {
                        action: b'0',
                        side,
                        price,
                        size,
                    }),
                    Some(&was) if was != size => out.push(Entry {
                        action: b'1',
                        side,
                        price,
                        size,
                    }),
                    Some(_) => {}
                }
            }
            old.clone_from(new);
        }
        out
    }
}

/// One X entry.
struct Entry {
    action: u8,
    side: u8,
    price: i64,
    size: i64,
}

impl Inner {
    fn snapshot(&mut self, md_req_id: &str, symbol: &str) -> Option<OutgoingMessage> {
        let book = self.books.get(symbol)?;
        let count = book.bids.len() + book.asks.len();
        let mut m = OutgoingMessage::new("W")
            .field(tag::MD_REQ_ID, md_req_id)
            .field(tag::SYMBOL, symbol)
            .field(tag::RPT_SEQ, book.rpt_seq.to_string())
            .field(tag::NO_MD_ENTRIES, count.to_string());
        for (side, levels) in [("0", &book.bids), ("1", &book.asks)] {
            let best_first: Box<dyn Iterator<Item = (&i64, &i64)>> = if side == "0" {
                Box::new(levels.iter().rev())
            } else {
                Box::new(levels.iter())
            };
            for (&price, &size) in best_first {
                m = m
                    .field(tag::MD_ENTRY_TYPE, side)
                    .field_decimal(tag::MD_ENTRY_PX, Decimal::new(price, book.price_scale))
                    .field_decimal(tag::MD_ENTRY_SIZE, Decimal::new(size, book.size_scale));
            }
        }
        self.stats.snapshots += 1;
        Some(m)
    }

    fn reject(&mut self, md_req_id: &str, refusal: Refusal) -> OutgoingMessage {
        self.stats.rejects += 1;
        let mut m = OutgoingMessage::new("Y").field(tag::MD_REQ_ID, md_req_id);
        if let Some(code) = refusal.0 {
            m = m.field(tag::MD_REQ_REJ_REASON, code);
        }
        m.field(tags::TEXT, refusal.1)
    }

    fn parse(&self, msg: &Message<'_>, depth: usize) -> Result<Request, (String, Refusal)> {
        let md_req_id = msg
            .get(tag::MD_REQ_ID)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let fail = |code, text: String| Err((md_req_id.clone(), Refusal(code, text)));
        if md_req_id.is_empty() {
            return fail(None, "MDReqID (262) is missing".to_owned());
        }
        let kind = match msg.get(tag::SUBSCRIPTION_REQUEST_TYPE) {
            Some([k @ (b'0' | b'1' | b'2')]) => *k,
            Some(other) => {
                return fail(
                    Some("4"),
                    format!(
                        "SubscriptionRequestType {:?} is not 0, 1 or 2",
                        String::from_utf8_lossy(other)
                    ),
                )
            }
            None => return fail(None, "SubscriptionRequestType (263) is missing".to_owned()),
        };
        let asked = match msg.get(tag::MARKET_DEPTH) {
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|t| t.parse::<usize>().ok()),
            None => return fail(None, "MarketDepth (264) is missing".to_owned()),
        };
        match asked {
            Some(0) => {}
            Some(n) if n >= depth => {}
            _ => {
                return fail(
                    Some("5"),
                    format!(
                        "MarketDepth {:?}: this venue publishes {depth} levels a side; ask 0 \
                         (the full book) or at least {depth}",
                        String::from_utf8_lossy(msg.get(tag::MARKET_DEPTH).unwrap_or_default())
                    ),
                )
            }
        }
        if kind == b'1' && !matches!(msg.get(tag::MD_UPDATE_TYPE), None | Some(b"1")) {
            return fail(
                Some("6"),
                "MDUpdateType must be 1 (incremental refresh)".to_owned(),
            );
        }
        let mut entry_types = 0;
        let mut symbols = Vec::new();
        for field in msg.fields() {
            if field.section() != Section::Body {
                continue;
            }
            let value = msg.value(field);
            match field.tag() {
                tag::MD_ENTRY_TYPE if value == b"0" || value == b"1" => entry_types += 1,
                tag::MD_ENTRY_TYPE => {
                    return fail(
                        Some("8"),
                        format!(
                            "MDEntryType {:?}: this venue publishes bids (0) and offers (1) only",
                            String::from_utf8_lossy(value)
                        ),
                    )
                }
                tag::SYMBOL => symbols.push(String::from_utf8_lossy(value).into_owned()),
                _ => {}
            }
        }
        if kind != b'2' && entry_types == 0 {
            return fail(None, "no MDEntryType (NoMDEntryTypes, 267)".to_owned());
        }
        if symbols.is_empty() {
            return fail(None, "no Symbol (NoRelatedSym, 146)".to_owned());
        }
        if let Some(unknown) = symbols.iter().find(|s| !self.books.contains_key(*s)) {
            return fail(Some("0"), format!("unknown symbol {unknown:?}"));
        }
        Ok(Request {
            md_req_id,
            kind,
            symbols,
        })
    }

    fn on_request(
        &mut self,
        session: &SessionId,
        msg: &Message<'_>,
        depth: usize,
    ) -> Vec<OutgoingMessage> {
        self.stats.requests += 1;
        let request = match self.parse(msg, depth) {
            Ok(r) => r,
            Err((id, refusal)) => return vec![self.reject(&id, refusal)],
        };
        let id = request.md_req_id;
        match request.kind {
            b'2' => {
                self.subscriptions
                    .retain(|s| !(&s.session == session && s.md_req_id == id));
                Vec::new()
            }
            kind => {
                if kind == b'1'
                    && self
                        .subscriptions
                        .iter()
                        .any(|s| &s.session == session && s.md_req_id == id)
                {
                    let text = format!("MDReqID {id:?} is already subscribed");
                    return vec![self.reject(&id, Refusal(Some("1"), text))];
                }
                let mut out = Vec::new();
                for symbol in request.symbols {
                    out.extend(self.snapshot(&id, &symbol));
                    if kind == b'1' {
                        self.subscriptions.push(Subscription {
                            session: session.clone(),
                            md_req_id: id.clone(),
                            symbol,
                        });
                    }
                }
                out
            }
        }
    }
}

impl MarketDataVenue {
    /// Returns a venue with the instruments of `config`, empty books and no subscriptions.
    ///
    /// # Errors
    /// [`MdVenueError::Config`] for a depth of 0 or a symbol given twice.
    pub fn new(config: MdVenueConfig) -> Result<Self, MdVenueError> {
        if config.depth == 0 {
            return Err(MdVenueError::Config(
                "depth must be at least 1 level".to_owned(),
            ));
        }
        let mut books = HashMap::new();
        for (symbol, price_scale, size_scale) in config.instruments {
            let book = Book {
                price_scale,
                size_scale,
                bids: BTreeMap::new(),
                asks: BTreeMap::new(),
                rpt_seq: 0,
                withhold: 0,
            };
            if books.insert(symbol.clone(), book).is_some() {
                return Err(MdVenueError::Config(format!(
                    "symbol {symbol:?} given twice"
                )));
            }
        }
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                books,
                subscriptions: Vec::new(),
                senders: HashMap::new(),
                stats: MdVenueStats::default(),
            })),
            depth: config.depth,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a nexus-fix [`Acceptor`] for `sessions` with this venue as the application, and
    /// attaches every session's outgoing channel for the Xs. The sessions should not validate
    /// application messages against a dictionary that lacks V
    /// (`nexus_marketdata::fix_session::dictionary` with validation off is one that works).
    ///
    /// # Errors
    /// [`TcpError`] when the acceptor cannot start.
    pub fn serve(
        &self,
        config: AcceptorConfig,
        sessions: Vec<Session>,
    ) -> Result<Acceptor, TcpError> {
        crate::venue::serve_attached(config, sessions, Arc::new(self.clone()), |id, sender| {
            self.attach(id, sender);
        })
    }

    /// Registers the outgoing channel of `session` for its Xs.
    pub fn attach(&self, session: SessionId, sender: SessionSender) {
        self.lock().senders.insert(session, sender);
    }

    /// Sets the book of `symbol` (price and size mantissas at its scales, any order), trimmed
    /// to the venue's depth, and sends the change as one X to every subscription of the symbol.
    /// Returns the number of entries of the X (0: nothing changed, nothing sent).
    ///
    /// # Errors
    /// [`MdVenueError::UnknownInstrument`], and [`MdVenueError::BadLevel`] for a price or size
    /// that is not positive or a price twice on a side; the book is then unchanged.
    pub fn set_book(
        &self,
        symbol: &str,
        bids: &[(i64, i64)],
        asks: &[(i64, i64)],
    ) -> Result<usize, MdVenueError> {
        let mut wanted: [BTreeMap<i64, i64>; 2] = [BTreeMap::new(), BTreeMap::new()];
        for (i, (name, levels)) in [("bid", bids), ("ask", asks)].into_iter().enumerate() {
            for &(price, size) in levels {
                if price <= 0 || size <= 0 || wanted[i].insert(price, size).is_some() {
                    return Err(MdVenueError::BadLevel {
                        side: name,
                        price,
                        size,
                    });
                }
            }
        }
        let [mut new_bids, mut new_asks] = wanted;
        while new_bids.len() > self.depth {
            new_bids.pop_first();
        }
        while new_asks.len() > self.depth {
            new_asks.pop_last();
        }
        let mut inner = self.lock();
        let book = inner
            .books
            .get_mut(symbol)
            .ok_or_else(|| MdVenueError::UnknownInstrument(symbol.to_owned()))?;
        let entries = book.diff(&new_bids, &new_asks);
        if entries.is_empty() {
            return Ok(0);
        }
        book.rpt_seq += 1;
        if book.withhold > 0 {
            book.withhold -= 1;
            inner.stats.withheld += 1;
            return Ok(entries.len());
        }
        let (seq, ps, ss) = (book.rpt_seq, book.price_scale, book.size_scale);
        let targets: Vec<Subscription> = inner
            .subscriptions
            .iter()
            .filter(|s| s.symbol == symbol)
            .cloned()
            .collect();
        for sub in targets {
            let Some(sender) = inner.senders.get(&sub.session).cloned() else {
                continue;
            };
            let mut m = OutgoingMessage::new("X")
                .field(tag::MD_REQ_ID, &sub.md_req_id)
                .field(tag::NO_MD_ENTRIES, entries.len().to_string());
            for e in &entries {
                m = m
                    .field(tag::MD_UPDATE_ACTION, [e.action])
                    .field(tag::MD_ENTRY_TYPE, [b'0' + e.side])
                    .field(tag::SYMBOL, symbol)
                    .field(tag::RPT_SEQ, seq.to_string())
                    .field_decimal(tag::MD_ENTRY_PX, Decimal::new(e.price, ps));
                if e.action != b'2' {
                    m = m.field_decimal(tag::MD_ENTRY_SIZE, Decimal::new(e.size, ss));
                }
            }
            // Sent under the lock, without blocking, so that Xs leave in RptSeq order.
            match sender.try_send(m) {
                Ok(()) => inner.stats.increments += 1,
                Err(_) => inner.stats.dropped_full += 1,
            }
        }
        Ok(entries.len())
    }

    /// Sets the top of book of `symbol`: one level a side (see [`Self::set_book`]).
    ///
    /// # Errors
    /// As [`Self::set_book`].
    pub fn on_quote(
        &self,
        symbol: &str,
        bid: i64,
        ask: i64,
        bid_size: i64,
        ask_size: i64,
    ) -> Result<usize, MdVenueError> {
        self.set_book(symbol, &[(bid, bid_size)], &[(ask, ask_size)])
    }

    /// Withholds the next `count` changes of `symbol` from every subscriber, as if they were
    /// lost on the way: their RptSeq is used, so subscribers see a gap (fault injection).
    ///
    /// # Errors
    /// [`MdVenueError::UnknownInstrument`].
    pub fn drop_next_updates(&self, symbol: &str, count: u64) -> Result<(), MdVenueError> {
        let mut inner = self.lock();
        let book = inner
            .books
            .get_mut(symbol)
            .ok_or_else(|| MdVenueError::UnknownInstrument(symbol.to_owned()))?;
        book.withhold += count;
        Ok(())
    }

    /// Returns the venue's book of `symbol` as (bids best first, asks best first).
    #[must_use]
    pub fn book(&self, symbol: &str) -> Option<BookLevels> {
        let inner = self.lock();
        let book = inner.books.get(symbol)?;
        Some((
            book.bids.iter().rev().map(|(p, s)| (*p, *s)).collect(),
            book.asks.iter().map(|(p, s)| (*p, *s)).collect(),
        ))
    }

    /// Returns the venue's counters.
    #[must_use]
    pub fn stats(&self) -> MdVenueStats {
        let inner = self.lock();
        let mut stats = inner.stats.clone();
        stats.subscriptions = inner.subscriptions.len();
        stats
    }
}

impl Application for MarketDataVenue {
    fn on_logout(&self, session: &SessionId) {
        self.lock().subscriptions.retain(|s| &s.session != session);
    }

    fn on_message(
        &self,
        session: &SessionId,
        msg: &Message<'_>,
        replies: &mut Vec<OutgoingMessage>,
    ) {
        let mut inner = self.lock();
        if msg.msg_type() == b"V" {
            replies.extend(inner.on_request(session, msg, self.depth));
            return;
        }
        let other = msg.msg_type();
        let mut reject = OutgoingMessage::new("j");
        if let Some(seq) = msg.get(tags::MSG_SEQ_NUM) {
            reject = reject.field(tags::REF_SEQ_NUM, seq);
        }
        replies.push(
            reject
                .field(tags::REF_MSG_TYPE, other)
                .field(tags::BUSINESS_REJECT_REASON, "3")
                .field(
                    tags::TEXT,
                    format!(
                        "unsupported message type {}",
                        String::from_utf8_lossy(other)
                    ),
                ),
        );
    }
}
