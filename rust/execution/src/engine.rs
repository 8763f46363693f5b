//! The engine: one or more venues (in-process paper venues or external FIX
//! acceptors), a FIX initiator connected to each, the order manager they share,
//! venue selection, and the application that applies the venues' reports on the
//! FIX sessions' reader threads.

use std::collections::VecDeque;

use nexus_collections::FastHashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nexus_collections::ShardedMap;
use nexus_fix::message::Message;
use nexus_fix::session::tcp::now_nanos;
use nexus_fix::session::{
    Acceptor, AcceptorConfig, Application, ClientTls, ClientTlsFiles, FileStore, Initiator,
    InitiatorConfig, MemoryStore, MessageStore, OutgoingMessage, Session, SessionConfig,
    SessionDriver, SessionId, SessionSender, StoreError, TcpError, TlsError,
};
use nexus_oms::{
    ManagerError, NewOrder, Order, OrderManager, OrderType, Position, RiskLimits, Side,
};
use nexus_venue::{EngineConfig, FeeModel, InstrumentSpec, PaperVenue, VenueConfig, VenueError};
use thiserror::Error;

use crate::wire;

mod journal;
mod reconcile;

pub use journal::{JournalError, JournalStatus, FILE_NAME as JOURNAL_FILE_NAME};

/// Most reports the log keeps; older ones are dropped (and counted).
pub const REPORT_LOG_CAPACITY: usize = 100_000;

const BEGIN_STRING: &str = "FIX.4.4";

/// Why the engine could not do what was asked.
#[derive(Debug, Error)]
pub enum ExecutionError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The request is invalid (bad argument).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The symbol is not one of the configured instruments.
    #[error("unknown instrument {0:?}")]
    UnknownInstrument(String),
    /// The order manager refused the request.
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// The paper venue refused (e.g. a bad quote) or did not load.
    #[error(transparent)]
    Venue(#[from] VenueError),
    /// The FIX acceptor or initiator could not start.
    #[error(transparent)]
    Tcp(#[from] TcpError),
    /// A thread could not be spawned.
    #[error("cannot spawn a thread: {0}")]
    Spawn(std::io::Error),
    /// A FIX message store could not be opened (unreadable, corrupt).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A venue's TLS files could not be read or used.
    #[error("TLS of venue {venue}: {source}")]
    Tls {
        /// The venue.
        venue: String,
        /// What is wrong, naming the file.
        source: TlsError,
    },
    /// The FIX session is not logged on: nothing can be sent.
    #[error("the FIX session is not logged on")]
    NotLoggedOn,
    /// The engine was stopped.
    #[error("the engine is stopped")]
    Stopped,
    /// The order journal cannot be opened, read, replayed or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// An instrument: symbol and fixed-point scales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstrumentConfig {
    /// Symbol (FIX tag 55).
    pub symbol: String,
    /// Digits after the decimal point of prices.
    pub price_scale: u8,
    /// Digits after the decimal point of quantities.
    pub qty_scale: u8,
    /// Tick size as a price mantissa (> 0).
    pub tick: i64,
}

impl InstrumentConfig {
    /// Returns an instrument configuration.
    #[must_use]
    pub fn new(symbol: &str, price_scale: u8, qty_scale: u8, tick: i64) -> Self {
        Self {
            symbol: symbol.to_owned(),
            price_scale,
            qty_scale,
            tick,
        }
    }
}

/// One venue the engine trades with, over a FIX 4.4 session of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueSetup {
    /// The venue's name: its SenderCompID (our TargetCompID); unique.
    pub name: String,
    /// Port of the in-process paper venue's acceptor on 127.0.0.1; 0 picks a
    /// free one. Unused with [`Self::connect_to`].
    pub port: u16,
    /// An external FIX 4.4 acceptor to connect to instead of starting an
    /// in-process paper venue (None: a paper venue).
    pub connect_to: Option<SocketAddr>,
    /// Fees in basis points of the fill notional: what the paper venue charges,
    /// and what venue selection assumes for an external venue.
    pub fee_bps: i64,
    /// Simulated latency of the paper venue: how long it waits before each
    /// answer. Also the prior of the measured acknowledgement time.
    pub latency: Duration,
    /// TLS to the external acceptor of [`Self::connect_to`] (None: plain TCP).
    /// Paper venues are plain TCP on 127.0.0.1.
    pub tls: Option<ClientTlsFiles>,
}

impl VenueSetup {
    /// An in-process paper venue named `name`, on a free port, without fees or
    /// latency.
    #[must_use]
    pub fn paper(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            port: 0,
            connect_to: None,
            fee_bps: 0,
            latency: Duration::ZERO,
            tls: None,
        }
    }

    /// An external FIX 4.4 acceptor at `addr` whose SenderCompID is `name`.
    #[must_use]
    pub fn external(name: &str, addr: SocketAddr) -> Self {
        Self {
            connect_to: Some(addr),
            ..Self::paper(name)
        }
    }
}

/// Settings of an [`ExecutionEngine`].
#[derive(Debug, Clone)]
pub struct ExecutionConfig {
    /// Instruments traded.
    pub instruments: Vec<InstrumentConfig>,
    /// The venues, at least one; an order goes to the one it names, or to the
    /// one venue selection picks (see [`ExecutionEngine::submit`]).
    pub venues: Vec<VenueSetup>,
    /// HeartBtInt (108) the initiators propose, in seconds (> 0).
    pub heart_bt_int: u32,
    /// Our SenderCompID (each venue's TargetCompID).
    pub sender_comp_id: String,
    /// Pre-trade risk limits, for every instrument.
    pub limits: RiskLimits,
    /// What venue selection charges for each millisecond of a venue's measured
    /// acknowledgement time, in basis points (the cost of the market moving
    /// while the order travels). Finite and not negative.
    pub latency_cost_bps_per_ms: f64,
    /// Where the FIX sessions keep their messages and sequence numbers, so that
    /// a restart resumes them (the paper venues' sessions too); None keeps
    /// them in memory and every start begins at 1.
    pub store_dir: Option<std::path::PathBuf>,
    /// Where the order journal lives (see the `journal` module): orders,
    /// positions and applied reports survive a restart, and the orders still
    /// open are reconciled with their venues (OrderStatusRequest) once their
    /// sessions log on. None keeps them in memory only.
    pub journal_dir: Option<std::path::PathBuf>,
    /// The journal is compacted (one snapshot record) once the records after
    /// the last snapshot exceed this many bytes, or the snapshot's own size.
    pub journal_compact_bytes: u64,
    /// How long [`ExecutionEngine::wait_report_after`] spins (yielding the core
    /// between looks) before it sleeps on the condition variable; zero: it
    /// sleeps at once. The caller's thread is busy meanwhile.
    pub wait_spin: Duration,
    /// Busy polling of the FIX sessions' readers (ours, and the in-process paper
    /// venues'): after each message, how long a reader keeps polling its socket
    /// without sleeping (see `AcceptorConfig::busy_poll`). Zero (the default)
    /// sleeps at once; a core per session is busy while orders flow.
    pub busy_poll: Duration,
    /// A caller of [`ExecutionEngine::wait_report_after`] reads the venues'
    /// answers from the sessions' sockets itself while it spins, and applies
    /// them on its own thread: the round trip then needs no wake-up of, nor
    /// hand-off from, the session's reader thread, which stays aside until this
    /// long after the last such read (see `InitiatorConfig::caller_reads`); a
    /// report arriving while no caller waits is applied that much later at
    /// most. Zero (the default): the reader threads apply every message.
    pub caller_reads: Duration,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            instruments: Vec::new(),
            venues: vec![VenueSetup::paper("PAPER")],
            heart_bt_int: 30,
            sender_comp_id: "NEXUS".to_owned(),
            limits: RiskLimits::default(),
            latency_cost_bps_per_ms: 0.1,
            store_dir: None,
            journal_dir: None,
            journal_compact_bytes: 16 << 20,
            wait_spin: Duration::from_micros(200),
            busy_poll: Duration::ZERO,
            caller_reads: Duration::ZERO,
        }
    }
}

/// How long an order stays working: the same four the paper venue matches.
pub use nexus_venue::TimeInForce;

/// A new order, as a caller asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// The caller's ClOrdID; unique.
    pub client_order_id: String,
    /// Symbol of a configured instrument.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Market or limit.
    pub order_type: OrderType,
    /// Quantity mantissa.
    pub quantity: i64,
    /// Limit price mantissa, for limit orders only.
    pub limit_price: Option<i64>,
    /// Time in force.
    pub time_in_force: TimeInForce,
    /// Venues the order may go to: empty for any, one to route it there, several
    /// to let venue selection choose among them.
    pub venues: Vec<String>,
}

/// The kind of a logged report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecType {
    /// The venue acknowledged the order.
    New,
    /// A fill.
    Trade,
    /// The order was cancelled.
    Canceled,
    /// The order was replaced.
    Replaced,
    /// The venue rejected the order.
    Rejected,
    /// The order expired.
    Expired,
    /// The venue refused a cancel or replace.
    CancelRejected,
}

impl ExecType {
    /// The snake_case name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Trade => "trade",
            Self::Canceled => "canceled",
            Self::Replaced => "replaced",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::CancelRejected => "cancel_rejected",
        }
    }
}

/// One report applied to the order manager, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRecord {
    /// Position in the log: 1, 2, 3, ... without gaps.
    pub sequence: u64,
    /// ExecID of the report (`CXLREJ-<MsgSeqNum>` for a cancel reject).
    pub exec_id: String,
    /// What happened.
    pub exec_type: ExecType,
    /// The order after the report.
    pub order: Order,
    /// Fill quantity (0 unless a trade).
    pub last_quantity: i64,
    /// Fill price of a trade.
    pub last_price: Option<i64>,
    /// Commission of a trade (price mantissa).
    pub commission: Option<i64>,
    /// The venue the order went to.
    pub venue: String,
}

/// The state of one FIX session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// The venue at the other end.
    pub venue: String,
    /// Whether the venue is the in-process paper venue (a simulator).
    pub simulated: bool,
    /// The session id, e.g. `FIX.4.4:NEXUS->PAPER`.
    pub session_id: String,
    /// Whether it is logged on.
    pub logged_on: bool,
    /// Next MsgSeqNum we send.
    pub next_sender_seq: u64,
    /// Next MsgSeqNum we expect.
    pub next_target_seq: u64,
    /// Connections to the venue dropped for a transport failure (a TLS
    /// handshake or TLS error, a plaintext/TLS mismatch) since the start.
    pub transport_failures: u64,
    /// Why the last one was dropped.
    pub last_transport_failure: Option<String>,
}

/// Weight of a new acknowledgement time in its moving average.
const LATENCY_EWMA_ALPHA: f64 = 0.1;

/// Orders and the report log, behind one mutex.
#[derive(Debug)]
struct Book {
    oms: OrderManager,
    // Sharded, as every map that grows with the orders (nexus-collections).
    tifs: ShardedMap<u64, TimeInForce>,
    log: VecDeque<ReportRecord>,
    next_sequence: u64,
    dropped: u64,
    unapplied: Vec<String>,
    /// Venue (index) of every order.
    venue_of: ShardedMap<u64, usize>,
    /// When each order not yet answered was sent.
    sent_at: ShardedMap<u64, Instant>,
    /// Moving average of each venue's time from NewOrderSingle to its first
    /// report, in milliseconds.
    ack_ms: Vec<f64>,
    /// Orders routed to each venue.
    routed: Vec<u64>,
    /// The order journal, when configured.
    journal: Option<journal::Journal>,
    /// Reconciliation with the venues after a restart.
    recon: reconcile::Reconciliation,
}

impl Book {
    fn new(oms: OrderManager, venues: &[VenueSetup]) -> Self {
        Self {
            oms,
            tifs: ShardedMap::new(),
            log: VecDeque::new(),
            next_sequence: 1,
            dropped: 0,
            unapplied: Vec::new(),
            venue_of: ShardedMap::new(),
            sent_at: ShardedMap::new(),
            ack_ms: venues
                .iter()
                .map(|v| v.latency.as_secs_f64() * 1e3)
                .collect(),
            routed: vec![0; venues.len()],
            journal: None,
            recon: reconcile::Reconciliation::default(),
        }
    }

    fn observe_ack(&mut self, order_id: u64) {
        let Some(sent) = self.sent_at.remove(&order_id) else {
            return;
        };
        let Some(&venue) = self.venue_of.get(&order_id) else {
            return;
        };
        if let Some(avg) = self.ack_ms.get_mut(venue) {
            let ms = sent.elapsed().as_secs_f64() * 1e3;
            *avg += LATENCY_EWMA_ALPHA * (ms - *avg);
        }
    }

    fn push(&mut self, mut record: ReportRecord) {
        record.sequence = self.next_sequence;
        self.next_sequence += 1;
        if self.log.len() >= REPORT_LOG_CAPACITY {
            self.log.pop_front();
            self.dropped += 1;
        }
        self.log.push_back(record);
    }

    fn note_unapplied(&mut self, why: String) {
        if self.unapplied.len() >= 1000 {
            self.unapplied.remove(0);
        }
        self.unapplied.push(why);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One venue and the FIX session to it.
struct VenueLink {
    setup: VenueSetup,
    /// The in-process paper venue (None when connected to an external acceptor).
    paper: Option<PaperVenue>,
    acceptor: Mutex<Option<Acceptor>>,
    initiator: Mutex<Option<Initiator>>,
    /// For a waiting caller to read the session's socket itself
    /// ([`ExecutionConfig::caller_reads`]).
    driver: SessionDriver,
    /// The session's queue (for messages that must not block, e.g. order status
    /// requests sent from the reader thread).
    sender: SessionSender,
    session_id: SessionId,
    venue_session_id: SessionId,
    addr: SocketAddr,
    /// Sequence numbers of the session when it was stopped.
    final_seq_nums: Mutex<(u64, u64)>,
    /// Transport failures of the initiator when it was stopped.
    final_failures: Mutex<(u64, Option<String>)>,
}

impl VenueLink {
    fn is_logged_on(&self) -> bool {
        let initiator = lock(&self.initiator)
            .as_ref()
            .is_some_and(Initiator::is_logged_on);
        initiator
            && (self.paper.is_none()
                || lock(&self.acceptor)
                    .as_ref()
                    .is_some_and(|a| a.is_logged_on(&self.venue_session_id)))
    }

    /// Sends on the caller's thread (numbered, stored and written before this
    /// returns) while the session is logged on; queued for the next logon
    /// otherwise.
    fn send(&self, msgs: Vec<OutgoingMessage>) -> Result<(), ExecutionError> {
        let initiator = lock(&self.initiator);
        let initiator = initiator.as_ref().ok_or(ExecutionError::Stopped)?;
        for msg in msgs {
            initiator
                .send_now(msg)
                .map_err(|_| ExecutionError::Stopped)?;
        }
        Ok(())
    }

    /// As [`Self::send`], one message.
    fn send_one(&self, msg: OutgoingMessage) -> Result<(), ExecutionError> {
        let initiator = lock(&self.initiator);
        let initiator = initiator.as_ref().ok_or(ExecutionError::Stopped)?;
        initiator.send_now(msg).map_err(|_| ExecutionError::Stopped)
    }

    fn state(&self) -> SessionState {
        let initiator = lock(&self.initiator);
        let (logged_on, (next_sender_seq, next_target_seq), failures) = match initiator.as_ref() {
            Some(i) => (
                i.is_logged_on(),
                i.seq_nums(),
                (i.transport_failures(), i.last_transport_failure()),
            ),
            None => (
                false,
                *lock(&self.final_seq_nums),
                lock(&self.final_failures).clone(),
            ),
        };
        SessionState {
            venue: self.setup.name.clone(),
            simulated: self.paper.is_some(),
            session_id: self.session_id.to_string(),
            logged_on,
            next_sender_seq,
            next_target_seq,
            transport_failures: failures.0,
            last_transport_failure: failures.1,
        }
    }

    fn stop(&self) {
        let initiator = lock(&self.initiator).take();
        if let Some(mut initiator) = initiator {
            initiator.stop();
            *lock(&self.final_seq_nums) = initiator.seq_nums();
            *lock(&self.final_failures) = (
                initiator.transport_failures(),
                initiator.last_transport_failure(),
            );
        }
    }

    fn stop_acceptor(&self) {
        let acceptor = lock(&self.acceptor).take();
        if let Some(mut acceptor) = acceptor {
            acceptor.stop();
        }
    }
}

/// How venue selection saw one venue.
#[derive(Debug, Clone, PartialEq)]
pub struct VenueStats {
    /// The venue's name.
    pub name: String,
    /// Its fees, basis points.
    pub fee_bps: i64,
    /// Moving average of its acknowledgement time, milliseconds.
    pub ack_ms: f64,
    /// What venue selection charges for it now: fees plus latency cost, bps.
    pub cost_bps: f64,
    /// Orders routed to it.
    pub routed: u64,
    /// Whether its session is logged on.
    pub logged_on: bool,
    /// Whether it is an in-process paper venue (a simulator).
    pub simulated: bool,
}

/// The execution engine. See the crate documentation.
///
/// Every method takes `&self`; the engine is `Send + Sync`.
pub struct ExecutionEngine {
    instruments: Arc<FastHashMap<String, InstrumentConfig>>,
    order_of_instruments: Vec<String>,
    venues: Vec<VenueLink>,
    latency_cost_bps_per_ms: f64,
    book: Arc<Mutex<Book>>,
    /// Notified (with `book`) each time a venue message has been handled.
    reported: Arc<Condvar>,
    /// The latest report sequence number announced to waiters.
    published: Arc<AtomicU64>,
    /// How long [`Self::wait_report_after`] spins before it sleeps.
    wait_spin: Duration,
    /// [`ExecutionConfig::caller_reads`]: whether the spinning waiter reads.
    caller_reads: Duration,
    /// Held from the order-manager update to the send, so that requests leave in
    /// the order the order manager saw them.
    send_lock: Mutex<()>,
    stopped: AtomicBool,
    kill_counter: AtomicU64,
}

impl std::fmt::Debug for ExecutionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let venues: Vec<_> = self
            .venues
            .iter()
            .map(|v| (&v.setup.name, v.addr))
            .collect();
        f.debug_struct("ExecutionEngine")
            .field("venues", &venues)
            .finish_non_exhaustive()
    }
}

fn check_comp_id(what: &str, id: &str) -> Result<(), ExecutionError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ExecutionError::Config(format!(
            "{what} must be non-empty printable ASCII without spaces, got {id:?}"
        )));
    }
    Ok(())
}

fn check_client_order_id(id: &str) -> Result<(), ExecutionError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ExecutionError::Invalid(format!(
            "client order id must be non-empty printable ASCII without spaces, got {id:?}"
        )));
    }
    Ok(())
}

impl ExecutionEngine {
    /// Starts the venues and an initiator to each. The
    /// sessions log on in the background: see [`Self::wait_logged_on`].
    ///
    /// # Errors
    /// [`ExecutionError::Config`] for an invalid configuration, and the errors of
    /// starting a venue, the FIX endpoints or the thread.
    pub fn start(config: ExecutionConfig) -> Result<Self, ExecutionError> {
        check_comp_id("sender", &config.sender_comp_id)?;
        if config.venues.is_empty() {
            return Err(ExecutionError::Config("no venues".into()));
        }
        let mut names = std::collections::HashSet::new();
        for venue in &config.venues {
            check_comp_id("venue name", &venue.name)?;
            if venue.name == config.sender_comp_id {
                return Err(ExecutionError::Config(format!(
                    "venue {} has our own SenderCompID",
                    venue.name
                )));
            }
            if !names.insert(venue.name.as_str()) {
                return Err(ExecutionError::Config(format!(
                    "venue {} configured twice",
                    venue.name
                )));
            }
            if venue.tls.is_some() && venue.connect_to.is_none() {
                return Err(ExecutionError::Config(format!(
                    "venue {}: TLS is for external venues (connect_to); paper venues are plain TCP on 127.0.0.1",
                    venue.name
                )));
            }
            if venue.fee_bps < 0 {
                return Err(ExecutionError::Config(format!(
                    "fee_bps of {} must not be negative, got {}",
                    venue.name, venue.fee_bps
                )));
            }
        }
        if !(config.latency_cost_bps_per_ms.is_finite() && config.latency_cost_bps_per_ms >= 0.0) {
            return Err(ExecutionError::Config(format!(
                "latency_cost_bps_per_ms must be finite and not negative, got {}",
                config.latency_cost_bps_per_ms
            )));
        }
        if config.heart_bt_int == 0 {
            return Err(ExecutionError::Config(
                "heart_bt_int must be positive".into(),
            ));
        }
        let mut instruments = FastHashMap::default();
        let mut order_of_instruments = Vec::new();
        for spec in &config.instruments {
            check_client_order_id(&spec.symbol)
                .map_err(|_| ExecutionError::Config(format!("bad symbol {:?}", spec.symbol)))?;
            if spec.tick <= 0 {
                return Err(ExecutionError::Config(format!(
                    "tick of {} must be positive, got {}",
                    spec.symbol, spec.tick
                )));
            }
            if spec.price_scale > 18 || spec.qty_scale > 18 {
                return Err(ExecutionError::Config(format!(
                    "scales of {} must be at most 18",
                    spec.symbol
                )));
            }
            if instruments
                .insert(spec.symbol.clone(), spec.clone())
                .is_some()
            {
                return Err(ExecutionError::Config(format!(
                    "instrument {} configured twice",
                    spec.symbol
                )));
            }
            order_of_instruments.push(spec.symbol.clone());
        }
        if instruments.is_empty() {
            return Err(ExecutionError::Config("no instruments".into()));
        }
        let instruments = Arc::new(instruments);

        let limits = config.limits;
        let symbols: Vec<String> = config
            .instruments
            .iter()
            .map(|i| i.symbol.clone())
            .collect();
        let fresh = journal::FreshManager(Arc::new(move || {
            let mut oms = OrderManager::new(limits);
            for symbol in &symbols {
                oms.risk_mut().set_limits(symbol, limits);
            }
            oms
        }));
        let oms = (fresh.0)();
        let venue_names: Arc<Vec<String>> =
            Arc::new(config.venues.iter().map(|v| v.name.clone()).collect());
        let mut book = Book::new(oms, &config.venues);
        if let Some(dir) = &config.journal_dir {
            journal::open(
                &mut book,
                dir,
                config.journal_compact_bytes,
                &venue_names,
                fresh,
            )?;
        }
        let book = Arc::new(Mutex::new(book));

        let reported = Arc::new(Condvar::new());
        let published = Arc::new(AtomicU64::new(lock(&book).next_sequence - 1));
        let app = Arc::new(Reports {
            book: Arc::clone(&book),
            reported: Arc::clone(&reported),
            wake: AtomicBool::new(false),
            published: Arc::clone(&published),
            instruments: Arc::clone(&instruments),
            venues: venue_names,
        });
        let dictionary = Arc::new(PaperVenue::dictionary()?);
        let mut venues: Vec<VenueLink> = Vec::with_capacity(config.venues.len());
        for setup in &config.venues {
            match start_link(&config, setup, &dictionary, &app) {
                Ok(link) => venues.push(link),
                Err(e) => {
                    for link in &venues {
                        link.stop();
                        link.stop_acceptor();
                    }
                    return Err(e);
                }
            }
        }
        reconcile::install(&book, venues.iter().map(|l| l.sender.clone()).collect());
        Ok(Self {
            instruments,
            order_of_instruments,
            venues,
            latency_cost_bps_per_ms: config.latency_cost_bps_per_ms,
            book,
            reported,
            published,
            wait_spin: config.wait_spin,
            caller_reads: config.caller_reads,
            send_lock: Mutex::new(()),
            stopped: AtomicBool::new(false),
            kill_counter: AtomicU64::new(1),
        })
    }

    /// Address of the first venue's acceptor (the paper venue's, or the external
    /// one of [`VenueSetup::connect_to`]).
    #[must_use]
    pub fn venue_addr(&self) -> SocketAddr {
        self.venues[0].addr
    }

    /// The first venue's in-process paper venue (for inspection, e.g. its
    /// resting orders); None when it is an external acceptor.
    #[must_use]
    pub fn venue(&self) -> Option<&PaperVenue> {
        self.venues[0].paper.as_ref()
    }

    /// The in-process paper venue named `name`, if there is one.
    #[must_use]
    pub fn paper_venue(&self, name: &str) -> Option<&PaperVenue> {
        self.venues
            .iter()
            .find(|v| v.setup.name == name)
            .and_then(|v| v.paper.as_ref())
    }

    /// Waits until both ends of every session are logged on; false on timeout
    /// or when stopped.
    pub fn wait_logged_on(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return false;
            }
            if self.venues.iter().all(VenueLink::is_logged_on) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
        }
    }

    fn spec(&self, symbol: &str) -> Result<&InstrumentConfig, ExecutionError> {
        self.instruments
            .get(symbol)
            .ok_or_else(|| ExecutionError::UnknownInstrument(symbol.to_owned()))
    }

    /// Feeds a top of book to every in-process paper venue (it may fill resting
    /// orders), and its mid price to the risk engine as the last price.
    ///
    /// # Errors
    /// [`ExecutionError::UnknownInstrument`], or a bad quote (non-positive or
    /// crossed prices; the paper venues' own refusals).
    pub fn on_quote(
        &self,
        symbol: &str,
        bid: i64,
        ask: i64,
        bid_size: i64,
        ask_size: i64,
        ts_ns: i64,
    ) -> Result<(), ExecutionError> {
        self.spec(symbol)?;
        if bid <= 0 || ask <= 0 || bid > ask {
            return Err(ExecutionError::Invalid(format!(
                "bad quote: bid {bid}, ask {ask}"
            )));
        }
        for link in &self.venues {
            if let Some(venue) = &link.paper {
                venue.on_quote(symbol, bid, ask, bid_size, ask_size, ts_ns)?;
            }
        }
        let mid = (i128::from(bid) + i128::from(ask)) / 2;
        if let Ok(mid) = i64::try_from(mid) {
            lock(&self.book).oms.risk_mut().set_last_price(symbol, mid);
        }
        Ok(())
    }

    fn check_running(&self) -> Result<(), ExecutionError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(ExecutionError::Stopped);
        }
        Ok(())
    }

    fn venue_index(&self, name: &str) -> Result<usize, ExecutionError> {
        self.venues
            .iter()
            .position(|v| v.setup.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.venues.iter().map(|v| v.setup.name.as_str()).collect();
                ExecutionError::Invalid(format!(
                    "unknown venue {name:?}; configured: {}",
                    known.join(", ")
                ))
            })
    }

    fn cost_bps(&self, book: &Book, venue: usize) -> f64 {
        #[allow(clippy::cast_precision_loss)] // fees are a few bps
        let fee = self.venues[venue].setup.fee_bps as f64;
        fee + self.latency_cost_bps_per_ms * book.ack_ms[venue]
    }

    /// Which venues are logged on. Read before the book is locked: the FIX
    /// reader threads hold a session lock while they apply reports, which takes
    /// the book lock, so the book lock must never wait for a session lock.
    fn online(&self) -> Online {
        let mut online = Online::default();
        for (i, link) in self.venues.iter().enumerate() {
            if link.is_logged_on() {
                online.set(i);
            }
        }
        online
    }

    /// Venue selection: among the venues asked for (all when none), those
    /// logged on; the one with the lowest fees plus latency cost, the first
    /// configured on a tie.
    fn select_venue(
        &self,
        book: &Book,
        online: &Online,
        asked: &[String],
    ) -> Result<usize, ExecutionError> {
        let pick = |candidates: &mut dyn Iterator<Item = usize>| {
            candidates
                .filter(|&i| online.get(i))
                .min_by(|&a, &b| {
                    self.cost_bps(book, a)
                        .total_cmp(&self.cost_bps(book, b))
                        .then(a.cmp(&b))
                })
                .ok_or(ExecutionError::NotLoggedOn)
        };
        if asked.is_empty() {
            return pick(&mut (0..self.venues.len()));
        }
        let mut candidates = Vec::with_capacity(asked.len());
        for name in asked {
            candidates.push(self.venue_index(name)?);
        }
        pick(&mut candidates.into_iter())
    }

    /// The venue of an order, which must be logged on to take a cancel or replace.
    fn link_of(
        &self,
        book: &Book,
        online: &Online,
        order_id: u64,
    ) -> Result<&VenueLink, ExecutionError> {
        let venue = book
            .venue_of
            .get(&order_id)
            .copied()
            .filter(|&i| i < self.venues.len())
            .ok_or_else(|| ManagerError::UnknownOrder(order_id.to_string()))?;
        if !online.get(venue) {
            return Err(ExecutionError::NotLoggedOn);
        }
        Ok(&self.venues[venue])
    }

    /// Checks and records a new order; if the risk checks pass, sends it as a
    /// NewOrderSingle to the venue it names, or the one venue selection picks
    /// (see [`OrderRequest::venues`]: the lowest fees plus
    /// [`ExecutionConfig::latency_cost_bps_per_ms`] times the venue's measured
    /// acknowledgement time, among the venues logged on). Returns the order:
    /// PendingNew when sent, Rejected (with its risk reason) when refused, and
    /// then never sent.
    ///
    /// # Errors
    /// Invalid requests (unknown instrument or venue, bad ClOrdID, reused
    /// ClOrdID, quantity, price), [`ExecutionError::NotLoggedOn`] when no venue
    /// asked for is logged on, or [`ExecutionError::Stopped`].
    pub fn submit(&self, request: OrderRequest) -> Result<Order, ExecutionError> {
        check_client_order_id(&request.client_order_id)?;
        let spec = self.spec(&request.symbol)?;
        if let Some(price) = request.limit_price {
            if price <= 0 {
                return Err(ExecutionError::Invalid(format!(
                    "limit price must be positive, got {price}"
                )));
            }
        }
        self.check_running()?;
        let _send = lock(&self.send_lock);
        let online = self.online();
        let (order, msg, venue) = {
            let mut book = lock(&self.book);
            let venue = self.select_venue(&book, &online, &request.venues)?;
            let order = book
                .oms
                .submit(NewOrder {
                    client_order_id: request.client_order_id,
                    instrument: request.symbol,
                    side: request.side,
                    order_type: request.order_type,
                    quantity: request.quantity,
                    limit_price: request.limit_price,
                    now_ns: now_nanos(),
                })?
                .clone();
            book.tifs.insert(order.order_id, request.time_in_force);
            book.venue_of.insert(order.order_id, venue);
            journal::record_submit(&mut book, &order, venue, request.time_in_force)?;
            let msg = (order.status == nexus_oms::OrderStatus::PendingNew).then(|| {
                book.routed[venue] += 1;
                book.sent_at.insert(order.order_id, Instant::now());
                wire::new_order_single(&order, spec, request.time_in_force)
            });
            (order, msg, venue)
        };
        if let Some(msg) = msg {
            self.venues[venue].send_one(msg)?;
        }
        Ok(order)
    }

    /// Sends an OrderCancelRequest for `order_id` under `new_client_order_id`.
    /// Returns the order with the cancel pending.
    ///
    /// # Errors
    /// Unknown or closed order, a change already in flight, a reused ClOrdID,
    /// [`ExecutionError::NotLoggedOn`] or [`ExecutionError::Stopped`].
    pub fn cancel(
        &self,
        order_id: u64,
        new_client_order_id: &str,
    ) -> Result<Order, ExecutionError> {
        check_client_order_id(new_client_order_id)?;
        self.check_running()?;
        let _send = lock(&self.send_lock);
        let online = self.online();
        let (order, msg, link) = {
            let mut book = lock(&self.book);
            let orig = book
                .oms
                .order(order_id)
                .map(|o| o.client_order_id().to_owned())
                .ok_or_else(|| ManagerError::UnknownOrder(order_id.to_string()))?;
            let link = self.link_of(&book, &online, order_id)?;
            let order = book.oms.cancel(order_id, new_client_order_id)?.clone();
            journal::record_change(&mut book, order_id, new_client_order_id, None)?;
            let spec = self.spec(&order.instrument)?;
            let msg = wire::cancel_request(&order, &orig, new_client_order_id, spec);
            (order, msg, link)
        };
        link.send_one(msg)?;
        Ok(order)
    }

    /// Sends an OrderCancelReplaceRequest for `order_id` to `quantity` at
    /// `limit_price` under `new_client_order_id`. Returns the order with the
    /// replace pending.
    ///
    /// # Errors
    /// As for [`Self::cancel`], plus an invalid quantity or price (a limit order
    /// needs a price, a market order has none).
    pub fn replace(
        &self,
        order_id: u64,
        new_client_order_id: &str,
        quantity: i64,
        limit_price: Option<i64>,
    ) -> Result<Order, ExecutionError> {
        check_client_order_id(new_client_order_id)?;
        if quantity <= 0 {
            return Err(ExecutionError::Invalid(format!(
                "quantity must be positive, got {quantity}"
            )));
        }
        self.check_running()?;
        let _send = lock(&self.send_lock);
        let online = self.online();
        let (order, msg, link) = {
            let mut book = lock(&self.book);
            let current = book
                .oms
                .order(order_id)
                .ok_or_else(|| ManagerError::UnknownOrder(order_id.to_string()))?;
            match (current.order_type, limit_price) {
                (OrderType::Limit, None) => {
                    return Err(ExecutionError::Invalid(
                        "a limit order needs a limit price".into(),
                    ))
                }
                (OrderType::Market, Some(_)) => {
                    return Err(ExecutionError::Invalid(
                        "a market order has no limit price".into(),
                    ))
                }
                (_, Some(p)) if p <= 0 => {
                    return Err(ExecutionError::Invalid(format!(
                        "limit price must be positive, got {p}"
                    )))
                }
                _ => {}
            }
            let orig = current.client_order_id().to_owned();
            let link = self.link_of(&book, &online, order_id)?;
            let tif = book.tifs.get(&order_id).copied().unwrap_or_default();
            let order = book
                .oms
                .replace(order_id, new_client_order_id, quantity, limit_price)?
                .clone();
            journal::record_change(
                &mut book,
                order_id,
                new_client_order_id,
                Some((quantity, limit_price)),
            )?;
            let spec = self.spec(&order.instrument)?;
            let msg = wire::replace_request(
                &order,
                &orig,
                new_client_order_id,
                quantity,
                limit_price,
                spec,
                tif,
            );
            (order, msg, link)
        };
        link.send_one(msg)?;
        Ok(order)
    }

    /// Every order, by id.
    #[must_use]
    pub fn orders(&self) -> Vec<Order> {
        lock(&self.book).oms.orders().into_iter().cloned().collect()
    }

    /// Every order by id, with the name of the venue it went to.
    #[must_use]
    pub fn orders_with_venues(&self) -> Vec<(Order, String)> {
        let book = lock(&self.book);
        book.oms
            .orders()
            .into_iter()
            .map(|o| (o.clone(), self.venue_name(&book, o.order_id)))
            .collect()
    }

    fn venue_name(&self, book: &Book, order_id: u64) -> String {
        book.venue_of
            .get(&order_id)
            .and_then(|&i| self.venues.get(i))
            .map(|v| v.setup.name.clone())
            .unwrap_or_default()
    }

    /// One order by id.
    #[must_use]
    pub fn order(&self, order_id: u64) -> Option<Order> {
        lock(&self.book).oms.order(order_id).cloned()
    }

    /// One order by id, with the name of the venue it went to.
    #[must_use]
    pub fn order_with_venue(&self, order_id: u64) -> Option<(Order, String)> {
        let book = lock(&self.book);
        let order = book.oms.order(order_id)?.clone();
        let venue = self.venue_name(&book, order_id);
        Some((order, venue))
    }

    /// The order any ClOrdID of whose chain is `client_order_id`, with the name
    /// of the venue it went to.
    #[must_use]
    pub fn order_by_client_id(&self, client_order_id: &str) -> Option<(Order, String)> {
        let book = lock(&self.book);
        let order = book.oms.order_by_client_id(client_order_id)?.clone();
        let venue = self.venue_name(&book, order.order_id);
        Some((order, venue))
    }

    /// The position of every configured instrument, in configuration order.
    #[must_use]
    pub fn positions(&self) -> Vec<(String, Position)> {
        let book = lock(&self.book);
        self.order_of_instruments
            .iter()
            .map(|s| (s.clone(), book.oms.position(s)))
            .collect()
    }

    /// How venue selection sees each venue now, in configuration order.
    #[must_use]
    pub fn venue_stats(&self) -> Vec<VenueStats> {
        let online = self.online();
        let book = lock(&self.book);
        self.venues
            .iter()
            .enumerate()
            .map(|(i, v)| VenueStats {
                name: v.setup.name.clone(),
                fee_bps: v.setup.fee_bps,
                ack_ms: book.ack_ms[i],
                cost_bps: self.cost_bps(&book, i),
                routed: book.routed[i],
                logged_on: online.get(i),
                simulated: v.paper.is_some(),
            })
            .collect()
    }

    /// Up to `max` logged reports with a sequence number above `sequence`
    /// (0 for the first), oldest first.
    #[must_use]
    pub fn reports_since(&self, sequence: u64, max: usize) -> Vec<ReportRecord> {
        let book = lock(&self.book);
        let Some(first) = book.log.front().map(|r| r.sequence) else {
            return Vec::new();
        };
        let skip =
            usize::try_from(sequence.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        let skip = skip.min(book.log.len());
        // A range of the deque: no walk over the reports before it.
        book.log.range(skip..).take(max).cloned().collect()
    }

    /// Waits until the log holds a report with a sequence number above `sequence`,
    /// or `timeout` passes; returns the sequence number of the latest logged report
    /// (at most `sequence` when none came in time). Spins first for up to
    /// [`ExecutionConfig::wait_spin`] (yielding the core between looks), then
    /// sleeps until the report is logged.
    #[must_use]
    pub fn wait_report_after(&self, sequence: u64, timeout: Duration) -> u64 {
        self.wait_report(sequence, timeout, self.wait_spin)
    }

    /// As [`Self::wait_report_after`] without the spin (for a thread that
    /// watches the log and must not keep a core busy).
    #[must_use]
    pub fn wait_report_sleeping(&self, sequence: u64, timeout: Duration) -> u64 {
        self.wait_report(sequence, timeout, Duration::ZERO)
    }

    fn wait_report(&self, sequence: u64, timeout: Duration, spin: Duration) -> u64 {
        let start = Instant::now();
        let deadline = start + timeout;
        if !spin.is_zero() {
            // A venue usually answers within tens of microseconds: spinning (and
            // yielding the core to whoever needs it) saves the wake-up of a
            // sleeping thread, which costs as much again on a virtual machine.
            // With `caller_reads`, the spinning caller reads the answer itself.
            let spin_until = start + timeout.min(spin);
            loop {
                let published = self.published.load(Ordering::Acquire);
                if published > sequence {
                    return published;
                }
                if Instant::now() >= spin_until {
                    break;
                }
                let mut read = false;
                for link in &self.venues {
                    read |= link.driver.pump();
                }
                if !read {
                    std::thread::yield_now();
                }
            }
            // About to sleep: the reader threads read again.
            if !self.caller_reads.is_zero() {
                for link in &self.venues {
                    link.driver.release();
                }
            }
        }
        let mut book = lock(&self.book);
        loop {
            let last = book.next_sequence - 1;
            let now = Instant::now();
            if last > sequence || now >= deadline {
                return last;
            }
            book = match self.reported.wait_timeout(book, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Sequence number of the latest logged report (0 before the first).
    #[must_use]
    pub fn last_sequence(&self) -> u64 {
        lock(&self.book).next_sequence - 1
    }

    /// Reports dropped from the front of the full log.
    #[must_use]
    pub fn reports_dropped(&self) -> u64 {
        lock(&self.book).dropped
    }

    /// Venue messages that could not be applied (unknown order, a report that
    /// does not fit the order's state, unreadable fields), most recent last,
    /// with why.
    #[must_use]
    pub fn unapplied(&self) -> Vec<String> {
        lock(&self.book).unapplied.clone()
    }

    /// Engages or releases the kill switch. Engaging blocks new orders and sends
    /// a cancel for every open order, to its venue; returns their ids (an order
    /// with a replace in flight cannot be cancelled until it is answered and is
    /// left out).
    ///
    /// # Errors
    /// [`ExecutionError::Stopped`] when the cancels cannot be sent.
    pub fn set_kill_switch(&self, engaged: bool) -> Result<Vec<u64>, ExecutionError> {
        let _send = lock(&self.send_lock);
        let (ids, msgs) = {
            let mut book = lock(&self.book);
            let open = book.oms.set_kill_switch(engaged);
            journal::record_kill_switch(&mut book, engaged);
            let mut ids = Vec::with_capacity(open.len());
            let mut msgs: Vec<Vec<OutgoingMessage>> = vec![Vec::new(); self.venues.len()];
            for id in open {
                let Some(orig) = book.oms.order(id).map(|o| o.client_order_id().to_owned()) else {
                    continue;
                };
                let Some(&venue) = book.venue_of.get(&id) else {
                    continue;
                };
                let n = self.kill_counter.fetch_add(1, Ordering::Relaxed);
                let cl_ord_id = format!("KILL-{id}-{n}");
                let Ok(order) = book.oms.cancel(id, &cl_ord_id).cloned() else {
                    continue;
                };
                journal::record_kill_cancel(&mut book, id, &cl_ord_id);
                let Some(spec) = self.instruments.get(&order.instrument) else {
                    continue;
                };
                msgs[venue].push(wire::cancel_request(&order, &orig, &cl_ord_id, spec));
                ids.push(id);
            }
            (ids, msgs)
        };
        if msgs.iter().any(|m| !m.is_empty()) && self.stopped.load(Ordering::Acquire) {
            return Err(ExecutionError::Stopped);
        }
        for (link, msgs) in self.venues.iter().zip(msgs) {
            if !msgs.is_empty() {
                link.send(msgs)?;
            }
        }
        Ok(ids)
    }

    /// What the order journal has done (None without one), with where
    /// reconciliation stands: status requests sent, answers applied, and
    /// restored open orders not answered for yet.
    #[must_use]
    pub fn journal_status(&self) -> Option<JournalStatus> {
        let book = lock(&self.book);
        journal::status(&book).map(|mut s| {
            s.status_requests = book.recon.asked;
            s.status_answers = book.recon.answered;
            s.unreconciled = reconcile::unanswered(&book) as u64;
            s
        })
    }

    /// The state of the first venue's FIX session.
    #[must_use]
    pub fn session_state(&self) -> SessionState {
        self.venues[0].state()
    }

    /// The state of every FIX session, in configuration order.
    #[must_use]
    pub fn sessions(&self) -> Vec<SessionState> {
        self.venues.iter().map(VenueLink::state).collect()
    }

    /// Logs out, stops the initiators and the venues, and joins their threads.
    /// Idempotent; also done on drop.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        for link in &self.venues {
            link.stop();
        }
        for link in &self.venues {
            link.stop_acceptor();
        }
        // A compaction still running is finished, so that the journal is
        // compact at a stop.
        journal::settle(&mut lock(&self.book), Duration::from_secs(30));
    }
}

impl Drop for ExecutionEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The message store of a session: files named after it in
/// [`ExecutionConfig::store_dir`], or memory.
fn message_store(
    config: &ExecutionConfig,
    id: &SessionId,
) -> Result<Box<dyn MessageStore>, ExecutionError> {
    Ok(match &config.store_dir {
        Some(dir) => {
            let name = format!(
                "{}-{}-{}",
                id.begin_string, id.sender_comp_id, id.target_comp_id
            );
            Box::new(FileStore::open(dir, &name)?)
        }
        None => Box::new(MemoryStore::new()),
    })
}

/// Starts one venue (a paper venue and its acceptor on 127.0.0.1, unless the
/// setup names an external acceptor) and the initiator connected to it.
fn start_link(
    config: &ExecutionConfig,
    setup: &VenueSetup,
    dictionary: &Arc<nexus_fix::Dictionary>,
    app: &Arc<Reports>,
) -> Result<VenueLink, ExecutionError> {
    let venue_session_id = SessionId::new(BEGIN_STRING, &setup.name, &config.sender_comp_id);
    let session_id = SessionId::new(BEGIN_STRING, &config.sender_comp_id, &setup.name);
    let tls = setup
        .tls
        .as_ref()
        .map(ClientTls::load)
        .transpose()
        .map_err(|source| ExecutionError::Tls {
            venue: setup.name.clone(),
            source,
        })?;
    // Opened first: a bad store fails the start before anything runs.
    let initiator_store = message_store(config, &session_id)?;
    let (paper, mut acceptor, addr) = match setup.connect_to {
        Some(addr) => (None, None, addr),
        None => {
            let venue = PaperVenue::new(VenueConfig {
                engine: EngineConfig {
                    slippage_ticks: 0,
                    fees: if setup.fee_bps > 0 {
                        FeeModel::Bps(setup.fee_bps)
                    } else {
                        FeeModel::None
                    },
                },
                instruments: config
                    .instruments
                    .iter()
                    .map(|s| InstrumentSpec::new(&s.symbol, s.price_scale, s.qty_scale, s.tick))
                    .collect(),
                latency: setup.latency,
                id_prefix: setup.name.clone(),
            });
            let mut acceptor_config = AcceptorConfig::localhost();
            acceptor_config.bind = SocketAddr::from(([127, 0, 0, 1], setup.port));
            acceptor_config.busy_poll = config.busy_poll;
            let session = Session::new(
                SessionConfig::new(venue_session_id.clone()),
                Arc::clone(dictionary),
                message_store(config, &venue_session_id)?,
            );
            let acceptor = venue.serve(acceptor_config, vec![session])?;
            let addr = acceptor.local_addr();
            (Some(venue), Some(acceptor), addr)
        }
    };
    let mut session_config = SessionConfig::new(session_id.clone());
    session_config.heart_bt_int = config.heart_bt_int;
    let session = Session::new(session_config, Arc::clone(dictionary), initiator_store);
    let mut initiator_config = InitiatorConfig::new(addr);
    initiator_config.reconnect_min = Duration::from_millis(50);
    initiator_config.tls = tls;
    initiator_config.busy_poll = config.busy_poll;
    initiator_config.caller_reads = config.caller_reads;
    let app: Arc<Reports> = Arc::clone(app);
    let initiator = match Initiator::start(initiator_config, session, app) {
        Ok(i) => i,
        Err(e) => {
            if let Some(a) = acceptor.as_mut() {
                a.stop();
            }
            return Err(e.into());
        }
    };
    Ok(VenueLink {
        setup: setup.clone(),
        paper,
        acceptor: Mutex::new(acceptor),
        sender: initiator.sender(),
        driver: initiator.driver(),
        initiator: Mutex::new(Some(initiator)),
        session_id,
        venue_session_id,
        addr,
        final_seq_nums: Mutex::new((1, 1)),
        final_failures: Mutex::new((0, None)),
    })
}

/// The FIX application of the engine's sessions: applies each venue message to
/// the order manager on the session's reader thread, as it is read (no hand-off
/// to another thread), and wakes the waiters of [`ExecutionEngine::wait_report_after`].
struct Reports {
    book: Arc<Mutex<Book>>,
    reported: Arc<Condvar>,
    /// A report was applied and its waiters are not woken yet.
    wake: AtomicBool,
    /// Sequence number of the latest report whose waiters were woken (what
    /// [`ExecutionEngine::wait_report_after`] spins on before it sleeps).
    published: Arc<AtomicU64>,
    instruments: Arc<FastHashMap<String, InstrumentConfig>>,
    venues: Arc<Vec<String>>,
}

impl Application for Reports {
    fn on_logon(&self, session: &SessionId) {
        reconcile::on_logon(&self.book, session, &self.venues);
    }

    fn on_message(&self, session: &SessionId, msg: &Message<'_>, _: &mut Vec<OutgoingMessage>) {
        let venue = self
            .venues
            .iter()
            .position(|v| *v == session.target_comp_id);
        apply(msg, venue, &self.book, &self.instruments, &self.venues);
        self.wake.store(true, Ordering::Release);
    }

    fn after_message(&self, _session: &SessionId) {
        // Woken here, not in on_message: a waiter (e.g. a caller about to send the
        // next order) would otherwise wake only to block on the session lock
        // that the reader thread still holds.
        if self.wake.swap(false, Ordering::AcqRel) {
            let last = lock(&self.book).next_sequence - 1;
            self.published.fetch_max(last, Ordering::AcqRel);
            self.reported.notify_all();
        }
    }
}

/// Which venues are logged on, by index: a bitmask, and a list beyond the
/// first 64 venues (so that the usual few take no allocation).
#[derive(Debug, Default)]
struct Online {
    mask: u64,
    more: Vec<usize>,
}

impl Online {
    /// The bit of `venue` in the mask (None past the first 64).
    fn bit(venue: usize) -> Option<u64> {
        u32::try_from(venue).ok().and_then(|v| 1u64.checked_shl(v))
    }

    fn set(&mut self, venue: usize) {
        match Self::bit(venue) {
            Some(bit) => self.mask |= bit,
            None => self.more.push(venue),
        }
    }

    fn get(&self, venue: usize) -> bool {
        match Self::bit(venue) {
            Some(bit) => self.mask & bit != 0,
            None => self.more.contains(&venue),
        }
    }
}

/// Applies one venue message to the order manager and logs the report. A report
/// from another venue than the one the order went to is not applied (noted).
fn apply(
    msg: &Message<'_>,
    venue: Option<usize>,
    book: &Mutex<Book>,
    instruments: &FastHashMap<String, InstrumentConfig>,
    venues: &[String],
) {
    let mut book = lock(book);
    if reconcile::on_status(&mut book, msg, instruments, venues) {
        return;
    }
    let translated = match wire::translate(msg, |s| {
        std::str::from_utf8(s).ok().and_then(|s| instruments.get(s))
    }) {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(why) => {
            book.note_unapplied(why);
            return;
        }
    };
    let routed = book
        .oms
        .order_by_client_id(&translated.report.client_order_id)
        .and_then(|o| book.venue_of.get(&o.order_id).copied());
    if let (Some(routed), Some(from)) = (routed, venue) {
        if routed != from {
            let why = format!(
                "{} (ExecID {}): reported by {} but routed to {}",
                translated.report.client_order_id,
                translated.report.exec_id,
                venues[from],
                venues[routed]
            );
            book.note_unapplied(why);
            return;
        }
    }
    if let Some(why) = reconcile::already_counted(&book, &translated) {
        book.note_unapplied(why);
        return;
    }
    match book.oms.on_execution_report(&translated.report) {
        Ok(true) => {
            let Some(order) = book
                .oms
                .order_by_client_id(&translated.report.client_order_id)
                .cloned()
            else {
                return;
            };
            book.observe_ack(order.order_id);
            let venue = routed
                .and_then(|i| venues.get(i))
                .map_or("", String::as_str);
            book.push(ReportRecord {
                sequence: 0,
                exec_id: translated.report.exec_id.clone(),
                exec_type: translated.exec_type,
                order,
                last_quantity: translated.last_quantity,
                last_price: translated.last_price,
                commission: translated.commission,
                venue: venue.to_owned(),
            });
            // After the push: a compaction then snapshots the log with it.
            journal::record_report(
                &mut book,
                &translated.report,
                translated.exec_type,
                (
                    translated.last_quantity,
                    translated.last_price,
                    translated.commission,
                ),
                venue,
            );
        }
        Ok(false) => {}
        Err(e) => book.note_unapplied(format!(
            "{} (ExecID {}): {e}",
            translated.report.client_order_id, translated.report.exec_id
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_venues_past_the_mask() {
        let up = [0, 5, 63, 64, 200];
        let mut online = Online::default();
        for v in up {
            online.set(v);
        }
        for v in 0..300 {
            assert_eq!(online.get(v), up.contains(&v), "venue {v}");
        }
    }

    #[allow(clippy::unwrap_used)]
    fn record() -> ReportRecord {
        let mut oms = OrderManager::new(RiskLimits::default());
        let order = oms
            .submit(NewOrder {
                client_order_id: "A".into(),
                instrument: "X".into(),
                side: Side::Buy,
                order_type: OrderType::Market,
                quantity: 1,
                limit_price: None,
                now_ns: 0,
            })
            .unwrap()
            .clone();
        ReportRecord {
            sequence: 0,
            exec_id: "E".into(),
            exec_type: ExecType::New,
            order,
            last_quantity: 0,
            last_price: None,
            commission: None,
            venue: "PAPER".into(),
        }
    }

    #[test]
    fn report_log_is_bounded_and_gap_free() {
        let mut book = Book::new(
            OrderManager::new(RiskLimits::default()),
            &[VenueSetup::paper("PAPER")],
        );
        let r = record();
        for _ in 0..REPORT_LOG_CAPACITY + 5 {
            book.push(r.clone());
        }
        assert_eq!(book.log.len(), REPORT_LOG_CAPACITY);
        assert_eq!(book.dropped, 5);
        assert_eq!(book.log.front().map(|r| r.sequence), Some(6));
        assert!(book
            .log
            .iter()
            .zip(book.log.iter().skip(1))
            .all(|(a, b)| b.sequence == a.sequence + 1));
    }
}
