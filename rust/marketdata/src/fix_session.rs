//! A live FIX market-data session: a `nexus-fix` initiator that subscribes with
//! MarketDataRequest (35=V) and keeps a [`FixBookFeed`]'s books from the W and X it receives.
//!
//! # Subscriptions
//!
//! On each logon the session sends one V per instrument: MDReqID (262) `<SenderCompID>-<n>`,
//! SubscriptionRequestType (263) 1 (snapshot + updates), MarketDepth (264) as configured (0: the
//! full book), MDUpdateType (265) 1 (incremental), NoMDEntryTypes (267) bid and offer,
//! NoRelatedSym (146) with the Symbol (55). A MarketDataRequestReject (35=Y), or a
//! BusinessMessageReject (35=j) of a V, is counted and kept with its reason
//! ([`FixMdStatus::rejects`]); the instrument is not asked for again until the next logon.
//!
//! # Gaps
//!
//! FIX has no "send me a snapshot" for a running subscription other than a new V, so when a book
//! leaves sequence (an RptSeq gap, or an update rejected because the book drifted) the session
//! re-subscribes that instrument: a V with 263=2 (unsubscribe) for its current MDReqID, then a V
//! with 263=1 and a new MDReqID, which the venue answers with a W. The X messages that arrive
//! meanwhile (from the old subscription, the one that showed the gap included) are kept in the
//! feed's gap buffer, at most [`FixMdSessionConfig::gap_buffer`] level changes per book (the
//! oldest are dropped beyond that, and counted); when the W comes, those newer than its RptSeq
//! are applied on it (see [`crate::fix_feed`]). One re-subscription is in flight per instrument
//! at a time.
//!
//! # Health
//!
//! [`FixMdSession::status`] says whether the feed is [`Health::Healthy`], [`Health::Stale`]
//! (logged on, but no W or X for longer than [`FixMdSessionConfig::stale_after`]: heartbeats and
//! other session messages do not count as data) or [`Health::Disconnected`] (not logged on), with
//! the reason; each change from healthy to stale or disconnected is counted
//! ([`FixMdStatus::stale_episodes`]). A thread of the session checks every 50 ms, so episodes are
//! counted whether or not anyone asks. On logout every book is marked out of sequence and its
//! buffer emptied: the next logon subscribes afresh.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nexus_fix::message::Message;
use nexus_fix::session::{
    Application, Initiator, InitiatorConfig, MemoryStore, OutgoingMessage, Session, SessionConfig,
    SessionId, SessionSender, TcpError,
};
use nexus_fix::{Dictionary, DictionaryError};
use thiserror::Error;

use crate::book::{BookState, OrderBook};
use crate::feeds::Scales;
use crate::fix_feed::{FixBookFeed, FixFeedStats, MessageStatus};

/// The FIX 4.4 subset of market-data sessions: the session messages, V, W, X, Y and j (the
/// application messages flat, without their groups).
const DICTIONARY_XML: &str = include_str!("fix44_marketdata.xml");

/// How often the session's thread checks its health.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Most rejects kept with their reasons (all are counted).
const MAX_KEPT_REJECTS: usize = 32;

/// The FIX tags the session writes or reads besides those of the feed.
mod tag {
    pub const SYMBOL: u32 = 55;
    pub const TEXT: u32 = 58;
    pub const NO_RELATED_SYM: u32 = 146;
    pub const MD_REQ_ID: u32 = 262;
    pub const SUBSCRIPTION_REQUEST_TYPE: u32 = 263;
    pub const MARKET_DEPTH: u32 = 264;
    pub const MD_UPDATE_TYPE: u32 = 265;
    pub const NO_MD_ENTRY_TYPES: u32 = 267;
    pub const MD_ENTRY_TYPE: u32 = 269;
    pub const MD_REQ_REJ_REASON: u32 = 281;
    pub const REF_MSG_TYPE: u32 = 372;
    pub const BUSINESS_REJECT_REF_ID: u32 = 379;
    pub const BUSINESS_REJECT_REASON: u32 = 380;
}

/// Returns the FIX 4.4 data dictionary of market-data sessions: the session messages and
/// MarketDataRequest (V), MarketDataSnapshotFullRefresh (W), MarketDataIncrementalRefresh (X),
/// MarketDataRequestReject (Y) and BusinessMessageReject (j), declared without their groups.
/// Usable on both sides of a session that does not validate application messages.
///
/// # Errors
/// [`DictionaryError`] if the built-in XML does not load (a bug).
pub fn dictionary() -> Result<Dictionary, DictionaryError> {
    Dictionary::from_xml(DICTIONARY_XML, "fix44_marketdata.xml")
}

/// Why a session could not start.
#[derive(Debug, Error)]
pub enum FixMdSessionError {
    /// The configuration is invalid.
    #[error("invalid market-data session configuration: {0}")]
    Config(String),
    /// The built-in dictionary did not load.
    #[error(transparent)]
    Dictionary(#[from] DictionaryError),
    /// The initiator thread could not start.
    #[error(transparent)]
    Tcp(#[from] TcpError),
    /// The health thread could not be spawned.
    #[error("cannot spawn a thread: {0}")]
    Spawn(std::io::Error),
}

/// Settings of a [`FixMdSession`].
#[derive(Debug, Clone)]
pub struct FixMdSessionConfig {
    /// The venue's FIX acceptor.
    pub addr: SocketAddr,
    /// BeginString: `FIX.4.4` or `FIX.4.2`.
    pub begin_string: String,
    /// Our SenderCompID.
    pub sender_comp_id: String,
    /// The venue's CompID (our TargetCompID).
    pub target_comp_id: String,
    /// The instruments to subscribe, with their scales.
    pub instruments: Vec<(String, Scales)>,
    /// MarketDepth (264) asked for: 0 the full book, 1 top of book, N levels.
    pub depth: u32,
    /// HeartBtInt (108), seconds.
    pub heart_bt_int: u32,
    /// Longer than this without a W or X while logged on is stale.
    pub stale_after: Duration,
    /// Most level changes buffered per book while it waits for a snapshot.
    pub gap_buffer: usize,
    /// First delay before reconnecting (doubled up to 5 s).
    pub reconnect_min: Duration,
}

impl FixMdSessionConfig {
    /// Returns a FIX 4.4 configuration for `instruments` at `addr`: full depth, HeartBtInt 30,
    /// stale after 5 s, a gap buffer of 10,000 level changes per book, reconnecting after 100 ms.
    #[must_use]
    pub fn new(
        addr: SocketAddr,
        sender_comp_id: &str,
        target_comp_id: &str,
        instruments: Vec<(String, Scales)>,
    ) -> Self {
        Self {
            addr,
            begin_string: "FIX.4.4".to_owned(),
            sender_comp_id: sender_comp_id.to_owned(),
            target_comp_id: target_comp_id.to_owned(),
            instruments,
            depth: 0,
            heart_bt_int: 30,
            stale_after: Duration::from_secs(5),
            gap_buffer: 10_000,
            reconnect_min: Duration::from_millis(100),
        }
    }

    fn check(&self) -> Result<(), FixMdSessionError> {
        let bad = |why: String| Err(FixMdSessionError::Config(why));
        if !matches!(self.begin_string.as_str(), "FIX.4.4" | "FIX.4.2") {
            return bad(format!(
                "BeginString must be FIX.4.4 or FIX.4.2, got {:?}",
                self.begin_string
            ));
        }
        for (what, id) in [
            ("SenderCompID", &self.sender_comp_id),
            ("TargetCompID", &self.target_comp_id),
        ] {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return bad(format!(
                    "{what} must be printable ASCII without spaces, got {id:?}"
                ));
            }
        }
        if self.instruments.is_empty() {
            return bad("no instruments to subscribe".to_owned());
        }
        if let Some((symbol, _)) = self
            .instruments
            .iter()
            .find(|(s, _)| s.is_empty() || s.bytes().any(|b| b < b' ' || b == 0x7f))
        {
            return bad(format!(
                "symbol {symbol:?} is empty or has control characters"
            ));
        }
        if self.heart_bt_int == 0 {
            return bad("HeartBtInt must be at least 1 s".to_owned());
        }
        if self.stale_after.is_zero() {
            return bad("the stale threshold must be above 0".to_owned());
        }
        Ok(())
    }
}

/// Whether a live source delivers data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Logged on, and data within the stale threshold.
    Healthy,
    /// Logged on, but no data for longer than the stale threshold.
    Stale,
    /// Not logged on.
    Disconnected,
}

impl Health {
    /// Returns the state's stable name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Stale => "stale",
            Self::Disconnected => "disconnected",
        }
    }
}

/// A MarketDataRequestReject (Y) or BusinessMessageReject (j) of one of our requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdReject {
    /// MDReqID (262), or BusinessRejectRefID (379) of a j.
    pub md_req_id: String,
    /// The instrument asked for, when the MDReqID is ours.
    pub symbol: Option<String>,
    /// MDReqRejReason (281) of a Y, or BusinessRejectReason (380) of a j.
    pub code: Option<String>,
    /// What the code and Text (58) say.
    pub reason: String,
}

/// What a [`FixMdSession`] has done and how it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct FixMdStatus {
    /// Healthy, stale or disconnected.
    pub health: Health,
    /// Why it is not healthy (empty when healthy).
    pub reason: String,
    /// Whether the FIX session is logged on.
    pub logged_on: bool,
    /// Logons so far.
    pub logons: u64,
    /// Times the feed went from healthy to stale or disconnected.
    pub stale_episodes: u64,
    /// Seconds since the last W or X (None: none yet).
    pub since_data_s: Option<f64>,
    /// MarketDataRequests sent (subscribe and unsubscribe).
    pub requests_sent: u64,
    /// Re-subscriptions sent to get a snapshot after a book left sequence.
    pub resubscriptions: u64,
    /// MarketDataRequestRejects (Y) and BusinessMessageRejects (j) received.
    pub rejects: u64,
    /// The first rejects, with their reasons (at most 32).
    pub first_rejects: Vec<MdReject>,
    /// W and X messages received.
    pub data_messages: u64,
    /// Other application messages received (ignored).
    pub other_messages: u64,
    /// Data messages by outcome: the status name, `rejected:<reason>` for a rejection.
    pub outcomes: BTreeMap<String, u64>,
    /// Instruments whose book is not live (awaiting a snapshot).
    pub needs_snapshot: Vec<String>,
}

/// The session's state, behind one lock.
struct State {
    feed: FixBookFeed,
    sender: Option<SessionSender>,
    logged_on: bool,
    /// A logon whose subscriptions wait for the sender.
    subscribe_pending: bool,
    logged_on_at: Option<Instant>,
    last_data: Option<Instant>,
    next_req: u64,
    /// MDReqID -> symbol of every request of this logon.
    requests: HashMap<String, String>,
    /// Symbol -> MDReqID of its current subscription.
    active: HashMap<String, String>,
    /// Symbols whose (re)subscription waits for its W.
    requested: HashSet<String>,
    /// Symbols the venue refused this logon.
    refused: HashSet<String>,
    health: Health,
    reason: String,
    logons: u64,
    stale_episodes: u64,
    requests_sent: u64,
    resubscriptions: u64,
    rejects: u64,
    first_rejects: Vec<MdReject>,
    data_messages: u64,
    other_messages: u64,
    outcomes: BTreeMap<String, u64>,
    /// Messages a full outgoing channel refused (counted; the health check retries logon
    /// subscriptions).
    unsent: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    fn new(feed: FixBookFeed) -> Self {
        Self {
            feed,
            sender: None,
            logged_on: false,
            subscribe_pending: false,
            logged_on_at: None,
            last_data: None,
            next_req: 0,
            requests: HashMap::new(),
            active: HashMap::new(),
            requested: HashSet::new(),
            refused: HashSet::new(),
            health: Health::Disconnected,
            reason: "not logged on yet".to_owned(),
            logons: 0,
            stale_episodes: 0,
            requests_sent: 0,
            resubscriptions: 0,
            rejects: 0,
            first_rejects: Vec::new(),
            data_messages: 0,
            other_messages: 0,
            outcomes: BTreeMap::new(),
            unsent: 0,
        }
    }

    /// A V for `symbol`: subscribe (263=1) under `md_req_id`, or unsubscribe (263=2).
    fn request(md_req_id: &str, subscribe: bool, depth: u32, symbol: &str) -> OutgoingMessage {
        OutgoingMessage::new("V")
            .field(tag::MD_REQ_ID, md_req_id)
            .field(
                tag::SUBSCRIPTION_REQUEST_TYPE,
                if subscribe { "1" } else { "2" },
            )
            .field(tag::MARKET_DEPTH, depth.to_string())
            .field(tag::MD_UPDATE_TYPE, "1")
            .field(tag::NO_MD_ENTRY_TYPES, "2")
            .field(tag::MD_ENTRY_TYPE, "0")
            .field(tag::MD_ENTRY_TYPE, "1")
            .field(tag::NO_RELATED_SYM, "1")
            .field(tag::SYMBOL, symbol)
    }

    /// The messages that (re)subscribe `symbol`: an unsubscribe of its current request, if
    /// any, then a subscribe under a new MDReqID.
    fn subscribe(&mut self, config: &FixMdSessionConfig, symbol: &str) -> Vec<OutgoingMessage> {
        let mut out = Vec::with_capacity(2);
        if let Some(old) = self.active.remove(symbol) {
            out.push(Self::request(&old, false, config.depth, symbol));
            self.resubscriptions += 1;
        }
        self.next_req += 1;
        let id = format!("{}-{}", config.sender_comp_id, self.next_req);
        out.push(Self::request(&id, true, config.depth, symbol));
        self.requests.insert(id.clone(), symbol.to_owned());
        self.active.insert(symbol.to_owned(), id);
        self.requested.insert(symbol.to_owned());
        self.requests_sent += out.len() as u64;
        out
    }

    /// Sends the subscriptions of a new logon through the session's channel, if it is known.
    fn subscribe_all(&mut self, config: &FixMdSessionConfig) {
        let Some(sender) = self.sender.clone() else {
            self.subscribe_pending = true;
            return;
        };
        self.subscribe_pending = false;
        let symbols: Vec<String> = self.feed.symbols().map(str::to_owned).collect();
        for symbol in symbols {
            for msg in self.subscribe(config, &symbol) {
                if sender.try_send(msg).is_err() {
                    self.unsent += 1;
                }
            }
        }
    }

    /// Re-subscribes the books that left sequence and have no request in flight.
    fn resubscribe_gapped(&mut self, config: &FixMdSessionConfig) -> Vec<OutgoingMessage> {
        let live: Vec<String> = self
            .requested
            .iter()
            .filter(|s| {
                self.feed
                    .book(s)
                    .is_some_and(|b| b.state() == BookState::Live)
            })
            .cloned()
            .collect();
        for symbol in live {
            self.requested.remove(&symbol);
        }
        let gapped: Vec<String> = self
            .feed
            .needs_snapshot()
            .filter(|s| !self.requested.contains(*s) && !self.refused.contains(*s))
            .map(str::to_owned)
            .collect();
        let mut out = Vec::new();
        for symbol in gapped {
            out.extend(self.subscribe(config, &symbol));
        }
        out
    }

    fn on_reject(&mut self, md_req_id: String, code: Option<String>, reason: String) {
        self.rejects += 1;
        let symbol = self.requests.get(&md_req_id).cloned();
        if let Some(symbol) = &symbol {
            self.requested.remove(symbol);
            self.active.remove(symbol);
            self.refused.insert(symbol.clone());
        }
        if self.first_rejects.len() < MAX_KEPT_REJECTS {
            self.first_rejects.push(MdReject {
                md_req_id,
                symbol,
                code,
                reason,
            });
        }
    }

    /// Works out the health at `now` and counts a change from healthy.
    fn refresh(&mut self, now: Instant, stale_after: Duration) {
        let (health, reason) = if !self.logged_on {
            (
                Health::Disconnected,
                if self.logons == 0 {
                    "not logged on yet".to_owned()
                } else {
                    "logged out".to_owned()
                },
            )
        } else {
            let since = self.last_data.or(self.logged_on_at).map(|t| now - t);
            match since {
                Some(silent) if silent > stale_after => (
                    Health::Stale,
                    format!(
                        "no market data for {:.1} s (threshold {:.1} s; heartbeats do not count)",
                        silent.as_secs_f64(),
                        stale_after.as_secs_f64()
                    ),
                ),
                _ => (Health::Healthy, String::new()),
            }
        };
        if self.health == Health::Healthy && health != Health::Healthy {
            self.stale_episodes += 1;
        }
        self.health = health;
        self.reason = reason;
    }
}

/// The state shared by the session thread, the health thread and readers.
struct Shared {
    config: FixMdSessionConfig,
    state: Mutex<State>,
    stop: AtomicBool,
}

/// The [`Application`] of the session: the shared state.
struct MdApplication(Arc<Shared>);

impl Application for MdApplication {
    fn on_logon(&self, _: &SessionId) {
        let shared = &self.0;
        let mut state = lock(&shared.state);
        state.logged_on = true;
        state.logons += 1;
        state.logged_on_at = Some(Instant::now());
        state.last_data = None;
        state.requests.clear();
        state.active.clear();
        state.requested.clear();
        state.refused.clear();
        state.feed.invalidate_all();
        state.subscribe_all(&shared.config);
        state.refresh(Instant::now(), shared.config.stale_after);
    }

    fn on_logout(&self, _: &SessionId) {
        let shared = &self.0;
        let mut state = lock(&shared.state);
        state.logged_on = false;
        state.subscribe_pending = false;
        state.feed.invalidate_all();
        state.active.clear();
        state.requested.clear();
        state.refresh(Instant::now(), shared.config.stale_after);
    }

    fn on_message(&self, _: &SessionId, msg: &Message<'_>, replies: &mut Vec<OutgoingMessage>) {
        let shared = &self.0;
        let mut state = lock(&shared.state);
        match msg.msg_type() {
            b"W" | b"X" => {
                state.last_data = Some(Instant::now());
                state.data_messages += 1;
                let outcome = state.feed.on_message(msg.as_bytes());
                let key = match outcome.status {
                    MessageStatus::Rejected(reason) => format!("rejected:{}", reason.name()),
                    other => other.name().to_owned(),
                };
                *state.outcomes.entry(key).or_default() += 1;
                replies.extend(state.resubscribe_gapped(&shared.config));
            }
            b"Y" => {
                let id = text(msg, tag::MD_REQ_ID);
                let code = msg
                    .get(tag::MD_REQ_REJ_REASON)
                    .map(|c| String::from_utf8_lossy(c).into_owned());
                let reason = format!(
                    "MarketDataRequestReject: {}{}",
                    code.as_deref().map_or("no reason code", md_req_rej_reason),
                    msg.get(tag::TEXT).map_or_else(String::new, |t| format!(
                        " ({})",
                        String::from_utf8_lossy(t)
                    ))
                );
                state.on_reject(id, code, reason);
            }
            b"j" if msg.get(tag::REF_MSG_TYPE) == Some(b"V") => {
                let id = text(msg, tag::BUSINESS_REJECT_REF_ID);
                let code = msg
                    .get(tag::BUSINESS_REJECT_REASON)
                    .map(|c| String::from_utf8_lossy(c).into_owned());
                let reason = format!(
                    "BusinessMessageReject of MarketDataRequest: reason {}{}",
                    code.as_deref().unwrap_or("?"),
                    msg.get(tag::TEXT).map_or_else(String::new, |t| format!(
                        " ({})",
                        String::from_utf8_lossy(t)
                    ))
                );
                state.on_reject(id, code, reason);
            }
            _ => state.other_messages += 1,
        }
    }
}

fn text(msg: &Message<'_>, tag: u32) -> String {
    msg.get(tag)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// What an MDReqRejReason (281) code means (FIX 4.4).
fn md_req_rej_reason(code: &str) -> &'static str {
    match code {
        "0" => "unknown symbol",
        "1" => "duplicate MDReqID",
        "2" => "insufficient bandwidth",
        "3" => "insufficient permissions",
        "4" => "unsupported SubscriptionRequestType",
        "5" => "unsupported MarketDepth",
        "6" => "unsupported MDUpdateType",
        "7" => "unsupported AggregatedBook",
        "8" => "unsupported MDEntryType",
        "9" => "unsupported TradingSessionID",
        "A" => "unsupported Scope",
        "B" => "unsupported OpenCloseSettlFlag",
        "C" => "unsupported MDImplicitDelete",
        _ => "other reason",
    }
}

/// A live FIX market-data session; see the [module documentation](self).
///
/// Every method takes `&self`; the session is `Send + Sync`. Dropping it stops it.
pub struct FixMdSession {
    shared: Arc<Shared>,
    initiator: Mutex<Option<Initiator>>,
    health_thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for FixMdSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixMdSession")
            .field("addr", &self.shared.config.addr)
            .finish_non_exhaustive()
    }
}

impl FixMdSession {
    /// Starts connecting to the venue, logging on and subscribing (in the background; the
    /// session reconnects until stopped).
    ///
    /// # Errors
    /// [`FixMdSessionError::Config`] for a bad configuration, and the thread or dictionary
    /// errors.
    pub fn start(config: FixMdSessionConfig) -> Result<Self, FixMdSessionError> {
        config.check()?;
        let mut feed = FixBookFeed::new();
        for (symbol, scales) in &config.instruments {
            feed.add_instrument(symbol, *scales);
        }
        feed.set_gap_buffer(config.gap_buffer);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(feed)),
            stop: AtomicBool::new(false),
            config,
        });
        let config = &shared.config;
        let id = SessionId::new(
            &config.begin_string,
            &config.sender_comp_id,
            &config.target_comp_id,
        );
        let mut session_config = SessionConfig::new(id);
        session_config.heart_bt_int = config.heart_bt_int;
        // A market-data session keeps nothing across logons: the books are subscribed afresh.
        session_config.reset_on_logon = true;
        // The feed checks W and X itself, counting each reason; a venue's extra tags must not
        // turn into session Rejects.
        session_config.validate = false;
        let session = Session::new(
            session_config,
            Arc::new(dictionary()?),
            Box::new(MemoryStore::new()),
        );
        let mut initiator_config = InitiatorConfig::new(config.addr);
        initiator_config.reconnect_min = config.reconnect_min;
        let app = Arc::new(MdApplication(Arc::clone(&shared)));
        let initiator = Initiator::start(initiator_config, session, app)?;
        {
            let mut state = lock(&shared.state);
            state.sender = Some(initiator.sender());
            if state.subscribe_pending && state.logged_on {
                state.subscribe_all(&shared.config);
            }
        }
        let health_thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("fix-md-health".to_owned())
                .spawn(move || health_loop(&shared))
                .map_err(FixMdSessionError::Spawn)?
        };
        Ok(Self {
            shared,
            initiator: Mutex::new(Some(initiator)),
            health_thread: Mutex::new(Some(health_thread)),
        })
    }

    /// Returns the configuration.
    #[must_use]
    pub fn config(&self) -> &FixMdSessionConfig {
        &self.shared.config
    }

    /// Returns a copy of the book of `symbol`, if the session has it.
    #[must_use]
    pub fn book(&self, symbol: &str) -> Option<OrderBook> {
        lock(&self.shared.state).feed.book(symbol).cloned()
    }

    /// Runs `f` on the book of `symbol` under the session's lock (no copy).
    pub fn with_book<R>(&self, symbol: &str, f: impl FnOnce(&OrderBook) -> R) -> Option<R> {
        lock(&self.shared.state).feed.book(symbol).map(f)
    }

    /// Returns a copy of the feed's counters (see [`FixFeedStats`]).
    #[must_use]
    pub fn feed_stats(&self) -> FixFeedStats {
        lock(&self.shared.state).feed.stats().clone()
    }

    /// Returns the session's health and counters, as of now.
    #[must_use]
    pub fn status(&self) -> FixMdStatus {
        let now = Instant::now();
        let mut state = lock(&self.shared.state);
        state.refresh(now, self.shared.config.stale_after);
        FixMdStatus {
            health: state.health,
            reason: state.reason.clone(),
            logged_on: state.logged_on,
            logons: state.logons,
            stale_episodes: state.stale_episodes,
            since_data_s: state.last_data.map(|t| (now - t).as_secs_f64()),
            requests_sent: state.requests_sent,
            resubscriptions: state.resubscriptions,
            rejects: state.rejects,
            first_rejects: state.first_rejects.clone(),
            data_messages: state.data_messages,
            other_messages: state.other_messages,
            outcomes: state.outcomes.clone(),
            needs_snapshot: state.feed.needs_snapshot().map(str::to_owned).collect(),
        }
    }

    /// Logs out (briefly waiting for the answer), disconnects and joins the threads.
    /// Idempotent; also done on drop.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let initiator = lock(&self.initiator).take();
        if let Some(mut initiator) = initiator {
            initiator.stop();
        }
        let thread = lock(&self.health_thread).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for FixMdSession {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Checks the health every [`CHECK_EVERY`], and sends the subscriptions of a logon that came
/// before the session knew its outgoing channel.
fn health_loop(shared: &Shared) {
    while !shared.stop.load(Ordering::Acquire) {
        {
            let mut state = lock(&shared.state);
            if state.subscribe_pending && state.logged_on {
                state.subscribe_all(&shared.config);
            }
            state.refresh(Instant::now(), shared.config.stale_after);
        }
        std::thread::sleep(CHECK_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_loads_and_knows_market_data() {
        let d = dictionary().unwrap();
        for msg_type in [&b"V"[..], b"W", b"X", b"Y", b"j", b"A", b"0"] {
            assert!(d.message(msg_type).is_some(), "{msg_type:?}");
        }
    }

    #[test]
    fn requests_carry_every_field_a_venue_needs() {
        let body = State::request("NEXUS-7", true, 10, "EUR/USD").body;
        let tags: Vec<(u32, &[u8])> = body.iter().collect();
        assert_eq!(
            tags,
            vec![
                (262, &b"NEXUS-7"[..]),
                (263, b"1"),
                (264, b"10"),
                (265, b"1"),
                (267, b"2"),
                (269, b"0"),
                (269, b"1"),
                (146, b"1"),
                (55, b"EUR/USD"),
            ]
        );
        assert_eq!(
            State::request("x", false, 0, "A").body.get(1).map(|f| f.1),
            Some(&b"2"[..])
        );
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let good = FixMdSessionConfig::new(
            addr,
            "NEXUS",
            "VENUE",
            vec![("A".into(), Scales::new(2, 0))],
        );
        let mut cases = Vec::new();
        let mut c = good.clone();
        c.begin_string = "FIXT.1.1".into();
        cases.push((c, "BeginString"));
        let mut c = good.clone();
        c.sender_comp_id = "NE XUS".into();
        cases.push((c, "SenderCompID"));
        let mut c = good.clone();
        c.instruments.clear();
        cases.push((c, "no instruments"));
        let mut c = good.clone();
        c.stale_after = Duration::ZERO;
        cases.push((c, "stale threshold"));
        for (config, why) in cases {
            let err = FixMdSession::start(config).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn health_counts_each_episode_once() {
        let mut feed = FixBookFeed::new();
        feed.add_instrument("A", Scales::new(2, 0));
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let config = FixMdSessionConfig::new(addr, "N", "V", vec![("A".into(), Scales::new(2, 0))]);
        let shared = Shared {
            state: Mutex::new(State::new(feed)),
            stop: AtomicBool::new(false),
            config,
        };
        let mut state = lock(&shared.state);
        let t0 = Instant::now();
        let stale = Duration::from_secs(5);
        state.refresh(t0, stale);
        assert_eq!(
            (state.health, state.stale_episodes),
            (Health::Disconnected, 0)
        );
        state.logged_on = true;
        state.logons = 1;
        state.logged_on_at = Some(t0);
        state.refresh(t0 + Duration::from_secs(4), stale);
        assert_eq!(state.health, Health::Healthy);
        state.refresh(t0 + Duration::from_secs(6), stale);
        assert_eq!((state.health, state.stale_episodes), (Health::Stale, 1));
        assert!(
            state.reason.starts_with("no market data for 6.0 s"),
            "{}",
            state.reason
        );
        state.refresh(t0 + Duration::from_secs(7), stale);
        assert_eq!(state.stale_episodes, 1);
        state.last_data = Some(t0 + Duration::from_secs(7));
        state.refresh(t0 + Duration::from_secs(8), stale);
        assert_eq!((state.health, state.reason.as_str()), (Health::Healthy, ""));
        state.logged_on = false;
        state.refresh(t0 + Duration::from_secs(8), stale);
        assert_eq!(
            (state.health, state.stale_episodes),
            (Health::Disconnected, 2)
        );
        assert_eq!(state.reason, "logged out");
    }
}
