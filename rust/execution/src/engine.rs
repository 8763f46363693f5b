//! The engine: a paper venue, a FIX initiator connected to it, the order
//! manager, and the thread that applies the venue's reports.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nexus_fix::message::Message;
use nexus_fix::session::tcp::now_nanos;
use nexus_fix::session::{
    Acceptor, AcceptorConfig, AppEvent, ChannelApplication, Initiator, InitiatorConfig,
    MemoryStore, OutgoingMessage, Session, SessionConfig, SessionId, TcpError,
};
use nexus_oms::{
    ManagerError, NewOrder, Order, OrderManager, OrderType, Position, RiskLimits, Side,
};
use nexus_venue::{EngineConfig, FeeModel, InstrumentSpec, PaperVenue, VenueConfig, VenueError};
use thiserror::Error;

use crate::wire;

/// Most reports the log keeps; older ones are dropped (and counted).
pub const REPORT_LOG_CAPACITY: usize = 100_000;

/// Capacity of the channel from the FIX session to the applier thread.
const EVENT_CAPACITY: usize = 1024;

/// How often the applier thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(20);

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
    /// The FIX session is not logged on: nothing can be sent.
    #[error("the FIX session is not logged on")]
    NotLoggedOn,
    /// The engine was stopped.
    #[error("the engine is stopped")]
    Stopped,
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

/// Settings of an [`ExecutionEngine`].
#[derive(Debug, Clone)]
pub struct ExecutionConfig {
    /// Instruments traded.
    pub instruments: Vec<InstrumentConfig>,
    /// Port of the venue's acceptor on 127.0.0.1; 0 picks a free one. Unused
    /// with [`Self::connect_to`].
    pub venue_port: u16,
    /// An external FIX 4.4 acceptor to connect to instead of starting the
    /// in-process paper venue (None: the paper venue).
    pub connect_to: Option<SocketAddr>,
    /// HeartBtInt (108) the initiator proposes, in seconds (> 0).
    pub heart_bt_int: u32,
    /// Our SenderCompID (the venue's TargetCompID).
    pub sender_comp_id: String,
    /// The venue's SenderCompID (our TargetCompID).
    pub target_comp_id: String,
    /// Pre-trade risk limits, for every instrument.
    pub limits: RiskLimits,
    /// Venue fees in basis points of the fill notional.
    pub fee_bps: i64,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            instruments: Vec::new(),
            venue_port: 0,
            connect_to: None,
            heart_bt_int: 30,
            sender_comp_id: "NEXUS".to_owned(),
            target_comp_id: "PAPER".to_owned(),
            limits: RiskLimits::default(),
            fee_bps: 0,
        }
    }
}

/// How long an order stays working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimeInForce {
    /// Until the end of the day (until filled or cancelled on the paper venue).
    #[default]
    Day,
    /// Good till cancel.
    Gtc,
    /// Immediate or cancel.
    Ioc,
    /// Fill or kill.
    Fok,
}

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
}

/// The state of the FIX session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// The session id, e.g. `FIX.4.4:NEXUS->PAPER`.
    pub session_id: String,
    /// Whether it is logged on.
    pub logged_on: bool,
    /// Next MsgSeqNum we send.
    pub next_sender_seq: u64,
    /// Next MsgSeqNum we expect.
    pub next_target_seq: u64,
}

/// Orders and the report log, behind one mutex.
#[derive(Debug)]
struct Book {
    oms: OrderManager,
    tifs: HashMap<u64, TimeInForce>,
    log: VecDeque<ReportRecord>,
    next_sequence: u64,
    dropped: u64,
    unapplied: Vec<String>,
}

impl Book {
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

/// The execution engine. See the crate documentation.
///
/// Every method takes `&self`; the engine is `Send + Sync`.
pub struct ExecutionEngine {
    instruments: Arc<HashMap<String, InstrumentConfig>>,
    order_of_instruments: Vec<String>,
    /// The in-process paper venue (None when connected to an external acceptor).
    venue: Option<PaperVenue>,
    acceptor: Mutex<Option<Acceptor>>,
    initiator: Mutex<Option<Initiator>>,
    sender: SyncSender<OutgoingMessage>,
    book: Arc<Mutex<Book>>,
    /// Notified (with `book`) each time the applier has handled a venue message.
    reported: Arc<Condvar>,
    /// Held from the order-manager update to the send, so that requests leave in
    /// the order the order manager saw them.
    send_lock: Mutex<()>,
    applier: Mutex<Option<JoinHandle<()>>>,
    stop_flag: Arc<AtomicBool>,
    stopped: AtomicBool,
    session_id: SessionId,
    venue_session_id: SessionId,
    venue_addr: SocketAddr,
    kill_counter: AtomicU64,
    /// Sequence numbers of the session when it was stopped.
    final_seq_nums: Mutex<(u64, u64)>,
}

impl std::fmt::Debug for ExecutionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionEngine")
            .field("session_id", &self.session_id)
            .field("venue_addr", &self.venue_addr)
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
    /// Starts the venue, the initiator and the applier thread. The session logs on
    /// in the background: see [`Self::wait_logged_on`].
    ///
    /// # Errors
    /// [`ExecutionError::Config`] for an invalid configuration, and the errors of
    /// starting the venue, the FIX endpoints or the thread.
    pub fn start(config: ExecutionConfig) -> Result<Self, ExecutionError> {
        check_comp_id("sender", &config.sender_comp_id)?;
        check_comp_id("target", &config.target_comp_id)?;
        if config.sender_comp_id == config.target_comp_id {
            return Err(ExecutionError::Config(
                "sender and target must differ".into(),
            ));
        }
        if config.heart_bt_int == 0 {
            return Err(ExecutionError::Config(
                "heart_bt_int must be positive".into(),
            ));
        }
        if config.fee_bps < 0 {
            return Err(ExecutionError::Config(format!(
                "fee_bps must not be negative, got {}",
                config.fee_bps
            )));
        }
        let mut instruments = HashMap::new();
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

        let dictionary = Arc::new(PaperVenue::dictionary()?);
        let venue_session_id =
            SessionId::new(BEGIN_STRING, &config.target_comp_id, &config.sender_comp_id);
        let session_id =
            SessionId::new(BEGIN_STRING, &config.sender_comp_id, &config.target_comp_id);
        let (venue, mut acceptor, venue_addr) = match config.connect_to {
            Some(addr) => (None, None, addr),
            None => {
                let (venue, acceptor) =
                    start_paper_venue(&config, &venue_session_id, Arc::clone(&dictionary))?;
                let addr = acceptor.local_addr();
                (Some(venue), Some(acceptor), addr)
            }
        };

        let mut oms = OrderManager::new(config.limits);
        for spec in &config.instruments {
            oms.risk_mut().set_limits(&spec.symbol, config.limits);
        }
        let book = Arc::new(Mutex::new(Book {
            oms,
            tifs: HashMap::new(),
            log: VecDeque::new(),
            next_sequence: 1,
            dropped: 0,
            unapplied: Vec::new(),
        }));

        let (app, rx) = ChannelApplication::new(EVENT_CAPACITY);
        let stop_flag = Arc::new(AtomicBool::new(false));
        let reported = Arc::new(Condvar::new());
        let applier = {
            let book = Arc::clone(&book);
            let reported = Arc::clone(&reported);
            let instruments = Arc::clone(&instruments);
            let stop_flag = Arc::clone(&stop_flag);
            std::thread::Builder::new()
                .name("nexus-execution".to_owned())
                .spawn(move || apply_loop(&rx, &book, &reported, &instruments, &stop_flag))
        };
        let applier = match applier {
            Ok(handle) => handle,
            Err(e) => {
                if let Some(a) = acceptor.as_mut() {
                    a.stop();
                }
                return Err(ExecutionError::Spawn(e));
            }
        };
        let mut session_config = SessionConfig::new(session_id.clone());
        session_config.heart_bt_int = config.heart_bt_int;
        let session = Session::new(session_config, dictionary, Box::new(MemoryStore::new()));
        let mut initiator_config = InitiatorConfig::new(venue_addr);
        initiator_config.reconnect_min = Duration::from_millis(50);
        let initiator = match Initiator::start(initiator_config, session, Arc::new(app)) {
            Ok(i) => i,
            Err(e) => {
                if let Some(a) = acceptor.as_mut() {
                    a.stop();
                }
                stop_flag.store(true, Ordering::Release);
                let _ = applier.join();
                return Err(e.into());
            }
        };
        Ok(Self {
            instruments,
            order_of_instruments,
            venue,
            acceptor: Mutex::new(acceptor),
            sender: initiator.sender(),
            initiator: Mutex::new(Some(initiator)),
            book,
            reported,
            send_lock: Mutex::new(()),
            applier: Mutex::new(Some(applier)),
            stop_flag,
            stopped: AtomicBool::new(false),
            session_id,
            venue_session_id,
            venue_addr,
            kill_counter: AtomicU64::new(1),
            final_seq_nums: Mutex::new((1, 1)),
        })
    }

    /// Address of the acceptor the initiator connects to (the paper venue's,
    /// or the external one of [`ExecutionConfig::connect_to`]).
    #[must_use]
    pub fn venue_addr(&self) -> SocketAddr {
        self.venue_addr
    }

    /// The in-process paper venue (for inspection, e.g. its resting orders);
    /// None when connected to an external acceptor.
    #[must_use]
    pub fn venue(&self) -> Option<&PaperVenue> {
        self.venue.as_ref()
    }

    fn is_logged_on(&self) -> bool {
        let initiator = lock(&self.initiator)
            .as_ref()
            .is_some_and(Initiator::is_logged_on);
        initiator
            && (self.venue.is_none()
                || lock(&self.acceptor)
                    .as_ref()
                    .is_some_and(|a| a.is_logged_on(&self.venue_session_id)))
    }

    /// Waits until both ends of the session are logged on; false on timeout or
    /// when stopped.
    pub fn wait_logged_on(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return false;
            }
            if self.is_logged_on() {
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

    /// Feeds a top of book to the paper venue, if in-process (it may fill resting
    /// orders), and its mid price to the risk engine as the last price.
    ///
    /// # Errors
    /// [`ExecutionError::UnknownInstrument`], or the venue's refusal of a bad quote.
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
        if let Some(venue) = &self.venue {
            venue.on_quote(symbol, bid, ask, bid_size, ask_size, ts_ns)?;
        } else if bid <= 0 || ask <= 0 || bid > ask {
            return Err(ExecutionError::Invalid(format!(
                "bad quote: bid {bid}, ask {ask}"
            )));
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
        if !self.is_logged_on() {
            return Err(ExecutionError::NotLoggedOn);
        }
        Ok(())
    }

    fn send(&self, msgs: Vec<OutgoingMessage>) -> Result<(), ExecutionError> {
        for msg in msgs {
            self.sender.send(msg).map_err(|_| ExecutionError::Stopped)?;
        }
        Ok(())
    }

    /// Checks and records a new order; if the risk checks pass, sends it as a
    /// NewOrderSingle. Returns the order: PendingNew when sent, Rejected (with
    /// its risk reason) when refused, and then never sent.
    ///
    /// # Errors
    /// Invalid requests (unknown instrument, bad ClOrdID, reused ClOrdID,
    /// quantity, price), [`ExecutionError::NotLoggedOn`] or
    /// [`ExecutionError::Stopped`].
    pub fn submit(&self, request: OrderRequest) -> Result<Order, ExecutionError> {
        check_client_order_id(&request.client_order_id)?;
        let spec = self.spec(&request.symbol)?.clone();
        if let Some(price) = request.limit_price {
            if price <= 0 {
                return Err(ExecutionError::Invalid(format!(
                    "limit price must be positive, got {price}"
                )));
            }
        }
        self.check_running()?;
        let _send = lock(&self.send_lock);
        let (order, msg) = {
            let mut book = lock(&self.book);
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
            let msg = (order.status == nexus_oms::OrderStatus::PendingNew)
                .then(|| wire::new_order_single(&order, &spec, request.time_in_force));
            (order, msg)
        };
        if let Some(msg) = msg {
            self.send(vec![msg])?;
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
        let (order, msg) = {
            let mut book = lock(&self.book);
            let orig = book
                .oms
                .order(order_id)
                .map(|o| o.client_order_id().to_owned())
                .ok_or_else(|| ManagerError::UnknownOrder(order_id.to_string()))?;
            let order = book.oms.cancel(order_id, new_client_order_id)?.clone();
            let spec = self.spec(&order.instrument)?;
            let msg = wire::cancel_request(&order, &orig, new_client_order_id, spec);
            (order, msg)
        };
        self.send(vec![msg])?;
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
        let (order, msg) = {
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
            let tif = book.tifs.get(&order_id).copied().unwrap_or_default();
            let order = book
                .oms
                .replace(order_id, new_client_order_id, quantity, limit_price)?
                .clone();
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
            (order, msg)
        };
        self.send(vec![msg])?;
        Ok(order)
    }

    /// Every order, by id.
    #[must_use]
    pub fn orders(&self) -> Vec<Order> {
        lock(&self.book).oms.orders().into_iter().cloned().collect()
    }

    /// One order by id.
    #[must_use]
    pub fn order(&self, order_id: u64) -> Option<Order> {
        lock(&self.book).oms.order(order_id).cloned()
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
        book.log.iter().skip(skip).take(max).cloned().collect()
    }

    /// Waits until the log holds a report with a sequence number above `sequence`,
    /// or `timeout` passes; returns the sequence number of the latest logged report
    /// (at most `sequence` when none came in time). Wakes as the report is logged,
    /// without polling.
    #[must_use]
    pub fn wait_report_after(&self, sequence: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
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
    /// a cancel for every open order; returns their ids (an order with a replace
    /// in flight cannot be cancelled until it is answered and is left out).
    ///
    /// # Errors
    /// [`ExecutionError::Stopped`] when the cancels cannot be sent.
    pub fn set_kill_switch(&self, engaged: bool) -> Result<Vec<u64>, ExecutionError> {
        let _send = lock(&self.send_lock);
        let (ids, msgs) = {
            let mut book = lock(&self.book);
            let open = book.oms.set_kill_switch(engaged);
            let mut ids = Vec::with_capacity(open.len());
            let mut msgs = Vec::with_capacity(open.len());
            for id in open {
                let Some(orig) = book.oms.order(id).map(|o| o.client_order_id().to_owned()) else {
                    continue;
                };
                let n = self.kill_counter.fetch_add(1, Ordering::Relaxed);
                let cl_ord_id = format!("KILL-{id}-{n}");
                let Ok(order) = book.oms.cancel(id, &cl_ord_id) else {
                    continue;
                };
                let Some(spec) = self.instruments.get(&order.instrument) else {
                    continue;
                };
                msgs.push(wire::cancel_request(order, &orig, &cl_ord_id, spec));
                ids.push(id);
            }
            (ids, msgs)
        };
        if !msgs.is_empty() {
            if self.stopped.load(Ordering::Acquire) {
                return Err(ExecutionError::Stopped);
            }
            self.send(msgs)?;
        }
        Ok(ids)
    }

    /// The state of the FIX session.
    #[must_use]
    pub fn session_state(&self) -> SessionState {
        let initiator = lock(&self.initiator);
        let (logged_on, (next_sender_seq, next_target_seq)) = match initiator.as_ref() {
            Some(i) => (i.is_logged_on(), i.seq_nums()),
            None => (false, *lock(&self.final_seq_nums)),
        };
        SessionState {
            session_id: self.session_id.to_string(),
            logged_on,
            next_sender_seq,
            next_target_seq,
        }
    }

    /// Logs out, stops the initiator, the applier thread and the venue, and joins
    /// their threads. Idempotent; also done on drop.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let initiator = lock(&self.initiator).take();
        if let Some(mut initiator) = initiator {
            initiator.stop();
            *lock(&self.final_seq_nums) = initiator.seq_nums();
        }
        self.stop_flag.store(true, Ordering::Release);
        let applier = lock(&self.applier).take();
        if let Some(handle) = applier {
            let _ = handle.join();
        }
        let acceptor = lock(&self.acceptor).take();
        if let Some(mut acceptor) = acceptor {
            acceptor.stop();
        }
    }
}

impl Drop for ExecutionEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the paper venue and its acceptor on 127.0.0.1 for `session_id`.
fn start_paper_venue(
    config: &ExecutionConfig,
    session_id: &SessionId,
    dictionary: Arc<nexus_fix::Dictionary>,
) -> Result<(PaperVenue, Acceptor), ExecutionError> {
    let venue = PaperVenue::new(VenueConfig {
        engine: EngineConfig {
            slippage_ticks: 0,
            fees: if config.fee_bps > 0 {
                FeeModel::Bps(config.fee_bps)
            } else {
                FeeModel::None
            },
        },
        instruments: config
            .instruments
            .iter()
            .map(|s| InstrumentSpec::new(&s.symbol, s.price_scale, s.qty_scale, s.tick))
            .collect(),
        ..VenueConfig::default()
    });
    let mut acceptor_config = AcceptorConfig::localhost();
    acceptor_config.bind = SocketAddr::from(([127, 0, 0, 1], config.venue_port));
    let session = Session::new(
        SessionConfig::new(session_id.clone()),
        dictionary,
        Box::new(MemoryStore::new()),
    );
    let acceptor = venue.serve(acceptor_config, vec![session])?;
    Ok((venue, acceptor))
}

fn apply_loop(
    rx: &Receiver<AppEvent>,
    book: &Mutex<Book>,
    reported: &Condvar,
    instruments: &HashMap<String, InstrumentConfig>,
    stop: &AtomicBool,
) {
    loop {
        match rx.recv_timeout(POLL) {
            Ok(AppEvent::Message(_, bytes)) => {
                apply(&bytes, book, instruments);
                reported.notify_all();
            }
            Ok(AppEvent::Logon(_) | AppEvent::Logout(_)) => {}
            Err(RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::Acquire) {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn apply(bytes: &[u8], book: &Mutex<Book>, instruments: &HashMap<String, InstrumentConfig>) {
    let mut book = lock(book);
    let msg = match Message::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            book.note_unapplied(format!("unparsable message: {e}"));
            return;
        }
    };
    let translated = match wire::translate(&msg, |s| instruments.get(s).cloned()) {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(why) => {
            book.note_unapplied(why);
            return;
        }
    };
    match book.oms.on_execution_report(&translated.report) {
        Ok(true) => {
            let Some(order) = book
                .oms
                .order_by_client_id(&translated.report.client_order_id)
                .cloned()
            else {
                return;
            };
            book.push(ReportRecord {
                sequence: 0,
                exec_id: translated.report.exec_id,
                exec_type: translated.exec_type,
                order,
                last_quantity: translated.last_quantity,
                last_price: translated.last_price,
                commission: translated.commission,
            });
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
        }
    }

    #[test]
    fn report_log_is_bounded_and_gap_free() {
        let mut book = Book {
            oms: OrderManager::new(RiskLimits::default()),
            tifs: HashMap::new(),
            log: VecDeque::new(),
            next_sequence: 1,
            dropped: 0,
            unapplied: Vec::new(),
        };
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
