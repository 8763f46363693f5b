//! [`PaperVenue`]: the paper venue simulator behind a FIX 4.4 acceptor.
//!
//! It is an [`Application`] of the nexus-fix session layer. For each session it
//! serves:
//!
//! * NewOrderSingle (35=D): an ExecutionReport (35=8) ExecType 0 New, then one
//!   ExecType F Trade per fill (OrdStatus 1 or 2, LastQty, LastPx, Commission), then
//!   ExecType 4 Canceled when an IOC remainder or a FOK is cancelled; or a single
//!   ExecType 8 Rejected with OrdRejReason (103) and Text (58).
//! * OrderCancelRequest (35=F): ExecType 4 Canceled, or an OrderCancelReject (35=9)
//!   with CxlRejReason (102) and Text.
//! * OrderCancelReplaceRequest (35=G): ExecType 5 Replaced (then Trade reports if the
//!   new price is marketable), or an OrderCancelReject.
//! * OrderStatusRequest (35=H), found by ClOrdID (any of the order's chain) or
//!   OrderID: an ExecutionReport ExecType I (order status) with the order's
//!   OrdStatus, CumQty, LeavesQty and AvgPx; for an order the venue does not know,
//!   ExecType I with OrdStatus 8 Rejected and OrdRejReason 5 unknown order (FIX 4.4,
//!   volume 4, "Order Status Request"). The venue keeps its orders in memory: a
//!   restarted venue knows none of the orders sent to the one before.
//! * Anything else: a BusinessMessageReject (35=j), reason 3 (unsupported type).
//!
//! Quotes are fed from another thread with [`PaperVenue::on_quote`] (the venue is a
//! cheap [`Clone`] around an `Arc<Mutex<..>>`). Fills of resting orders that a quote
//! triggers are sent as unsolicited ExecutionReports through the session's outgoing
//! channel ([`nexus_fix::session::Acceptor::sender`]), registered with
//! [`PaperVenue::attach`], or all at once by [`PaperVenue::serve`]. The mutex is
//! never held while sending or sleeping, and a full channel never blocks the quote
//! feed: what does not fit waits in the venue and goes out with the next quote or
//! attach ([`PaperVenue::pending_reports`]).
//!
//! Ordering: replies to a request go out on the session thread at once, unsolicited
//! reports as soon as the connection's writer thread takes them from the channel. A
//! request racing a quote may therefore still be answered before the fill that the
//! quote made is reported (e.g. a cancel rejected as too late before the fill that
//! completed the order);
//! the state the venue reports is consistent, only the arrival order may differ.
//! Simulated latency ([`VenueConfig::latency`]) sleeps on the session thread before
//! replies and on the quote-feeding thread before unsolicited reports.
//!
//! ExecIDs carry a tag of the venue's start time (`<prefix>-<run>-E<n>`), so a
//! restarted venue never reuses the ExecID of a report its predecessor sent.
//!
//! Prices and quantities on the wire are decimals; the venue converts them to the
//! instrument's mantissas ([`InstrumentSpec`]) and rejects values with more digits
//! than the instrument's scale.

use std::collections::HashMap;

use nexus_collections::{FastHashMap, ShardedMap};
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nexus_fix::message::{tags, write_u64, Decimal, FieldAccess, Message};
use nexus_fix::session::state::{Application, OutgoingMessage, SessionId};
use nexus_fix::session::tcp::{now_nanos, Acceptor, AcceptorConfig, SessionSender, TcpError};
use nexus_fix::session::Session;
use nexus_fix::{Dictionary, DictionaryError, TimestampPrecision};
use thiserror::Error;

use crate::matching::{
    EngineConfig, Fill, InstrumentSpec, MatchingEngine, OrdType, Order, OrderId, OrderRequest,
    OrderStatus, RejectReason, Side, TimeInForce,
};

/// The FIX 4.4 subset the venue speaks (session messages, D, F, G, H, 8, 9, j).
const DICTIONARY_XML: &str = include_str!("fix44_venue.xml");

/// FIX tags used by the venue.
mod tag {
    pub const AVG_PX: u32 = 6;
    pub const CL_ORD_ID: u32 = 11;
    pub const COMMISSION: u32 = 12;
    pub const COMM_TYPE: u32 = 13;
    pub const CUM_QTY: u32 = 14;
    pub const EXEC_ID: u32 = 17;
    pub const LAST_PX: u32 = 31;
    pub const LAST_QTY: u32 = 32;
    pub const ORDER_ID: u32 = 37;
    pub const ORDER_QTY: u32 = 38;
    pub const ORD_STATUS: u32 = 39;
    pub const ORD_TYPE: u32 = 40;
    pub const ORIG_CL_ORD_ID: u32 = 41;
    pub const PRICE: u32 = 44;
    pub const SIDE: u32 = 54;
    pub const SYMBOL: u32 = 55;
    pub const TIME_IN_FORCE: u32 = 59;
    pub const TRANSACT_TIME: u32 = 60;
    pub const CXL_REJ_REASON: u32 = 102;
    pub const ORD_REJ_REASON: u32 = 103;
    pub const EXEC_TYPE: u32 = 150;
    pub const LEAVES_QTY: u32 = 151;
    pub const CXL_REJ_RESPONSE_TO: u32 = 434;
}

/// Why the venue refused something outside a FIX session.
#[derive(Debug, Error)]
pub enum VenueError {
    /// The matching engine refused (e.g. a quote for an unknown instrument).
    #[error(transparent)]
    Rejected(#[from] RejectReason),
    /// The built-in dictionary did not load.
    #[error(transparent)]
    Dictionary(#[from] DictionaryError),
}

/// Settings of a [`PaperVenue`].
#[derive(Debug, Clone)]
pub struct VenueConfig {
    /// Slippage and fees of the matching engine.
    pub engine: EngineConfig,
    /// Instruments traded from the start (more with [`PaperVenue::add_instrument`]).
    pub instruments: Vec<InstrumentSpec>,
    /// Simulated latency: how long the venue waits before answering a message and
    /// before sending unsolicited reports (default zero).
    pub latency: Duration,
    /// Prefix of OrderID (37) and ExecID (17) values, e.g. `PV`.
    pub id_prefix: String,
}

impl Default for VenueConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            instruments: Vec::new(),
            latency: Duration::ZERO,
            id_prefix: "PV".to_owned(),
        }
    }
}

/// What the venue remembers of an order besides the engine's state.
#[derive(Debug, Clone)]
struct OrderInfo {
    /// The session's number (`Inner::sessions`).
    session: usize,
    /// The ClOrdID of the latest accepted request on the order.
    cl_ord_id: String,
    /// The ClOrdID it replaced or cancelled (OrigClOrdID of the next report).
    orig_cl_ord_id: Option<String>,
}

struct Inner {
    engine: MatchingEngine,
    // Sharded, as every map that grows with the orders (nexus-collections).
    orders: ShardedMap<OrderId, OrderInfo>,
    /// Every session that has sent an order, numbered in order of appearance: an
    /// order names its session by number, and ClOrdIDs are looked up per session
    /// without copying the session id.
    sessions: Vec<SessionId>,
    session_numbers: FastHashMap<SessionId, usize>,
    /// Per session number, the orders by ClOrdID.
    by_cl_ord_id: Vec<ShardedMap<String, OrderId>>,
    senders: FastHashMap<SessionId, SessionSender>,
    /// Unsolicited reports not yet handed to a session channel.
    pending: FastHashMap<SessionId, Vec<OutgoingMessage>>,
    next_exec_id: u64,
    prefix: String,
    /// Start time of the venue in base 36 milliseconds: part of every ExecID.
    run: String,
}

/// The paper venue: a simulator of a broker, serving FIX 4.4 order entry from a
/// [`MatchingEngine`] fed with quotes. See the module documentation.
#[derive(Clone)]
pub struct PaperVenue {
    inner: Arc<Mutex<Inner>>,
    latency: Duration,
}

impl std::fmt::Debug for PaperVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaperVenue")
            .field("latency", &self.latency)
            .finish_non_exhaustive()
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[usize::try_from(n % 36).unwrap_or(0)]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn pow10(n: u8) -> Option<i64> {
    10i64.checked_pow(u32::from(n))
}

/// Converts a wire decimal to a mantissa at `scale`; `None` when it has more digits
/// after the point than `scale` allows, or overflows.
fn to_mantissa(d: Decimal, scale: u8) -> Option<i64> {
    if d.scale <= scale {
        d.mantissa.checked_mul(pow10(scale - d.scale)?)
    } else {
        let div = pow10(d.scale - scale)?;
        (d.mantissa % div == 0).then(|| d.mantissa / div)
    }
}

fn side_code(side: Side) -> &'static str {
    match side {
        Side::Buy => "1",
        Side::Sell => "2",
    }
}

fn status_code(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::New => "0",
        OrderStatus::PartiallyFilled => "1",
        OrderStatus::Filled => "2",
        OrderStatus::Canceled => "4",
    }
}

/// OrdRejReason (103) of an engine reject.
fn ord_rej_reason(reason: &RejectReason) -> &'static str {
    match reason {
        RejectReason::UnknownInstrument(_) => "1",
        RejectReason::BadQuantity(_) => "13",
        RejectReason::UnknownOrder(_) => "5",
        RejectReason::Unsupported(_) => "11",
        RejectReason::NoQuote(_)
        | RejectReason::BadPrice(_)
        | RejectReason::BadQuote
        | RejectReason::NotWorking(_) => "99",
    }
}

/// A refusal of a request, before or by the engine.
struct Refusal {
    /// OrdRejReason (103) or CxlRejReason (102).
    code: &'static str,
    text: String,
}

impl Refusal {
    fn new(code: &'static str, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }
}

/// An unsolicited report to hand to a session's channel.
type Delivery = (SessionId, SessionSender, OutgoingMessage);

/// Parsed order fields of a D or G.
struct OrderFields {
    side: Side,
    ord_type: OrdType,
    tif: TimeInForce,
    quantity: i64,
    price: Option<i64>,
}

/// Progress of an order through a sequence of reports.
#[derive(Clone, Copy)]
struct Progress {
    cum: i64,
    notional: i128,
}

impl Progress {
    fn avg(self) -> i64 {
        if self.cum == 0 {
            return 0;
        }
        let q = i128::from(self.cum);
        let n = self.notional;
        // Half up, without doubling n (which could overflow).
        let rounded = n / q + i128::from(n % q >= q - n % q);
        i64::try_from(rounded).unwrap_or(i64::MAX)
    }
}

impl Inner {
    /// Adds the next ExecID (17) to `m`: `PREFIX-RUN-E<n>`.
    fn with_exec_id(&mut self, m: OutgoingMessage) -> OutgoingMessage {
        let id = self.next_exec_id;
        self.next_exec_id += 1;
        m.field_with(tag::EXEC_ID, |out| {
            out.extend_from_slice(self.prefix.as_bytes());
            out.push(b'-');
            out.extend_from_slice(self.run.as_bytes());
            out.extend_from_slice(b"-E");
            write_u64(out, id);
        })
    }

    /// Writes the OrderID (37) of order `id`: `PREFIX-<id>`.
    fn write_order_id(&self, out: &mut Vec<u8>, id: OrderId) {
        out.extend_from_slice(self.prefix.as_bytes());
        out.push(b'-');
        write_u64(out, id);
    }

    fn spec(&self, symbol: &str) -> Result<&InstrumentSpec, Refusal> {
        self.engine
            .instrument(symbol)
            .ok_or_else(|| Refusal::new("1", format!("unknown instrument {symbol}")))
    }

    /// Parses side, type, time in force, quantity and price of a D or G.
    fn order_fields(msg: &Message<'_>, spec: &InstrumentSpec) -> Result<OrderFields, Refusal> {
        let side = match msg.get(tag::SIDE) {
            Some(b"1") => Side::Buy,
            Some(b"2") => Side::Sell,
            _ => return Err(Refusal::new("11", "unsupported side")),
        };
        let ord_type = match msg.get(tag::ORD_TYPE) {
            Some(b"1") => OrdType::Market,
            Some(b"2") => OrdType::Limit,
            _ => return Err(Refusal::new("11", "unsupported order type")),
        };
        let tif = match msg.get(tag::TIME_IN_FORCE) {
            None | Some(b"0") => TimeInForce::Day,
            Some(b"1") => TimeInForce::Gtc,
            Some(b"3") => TimeInForce::Ioc,
            Some(b"4") => TimeInForce::Fok,
            Some(_) => return Err(Refusal::new("11", "unsupported time in force")),
        };
        let quantity = msg
            .get_decimal(tag::ORDER_QTY)
            .ok()
            .and_then(|d| to_mantissa(d, spec.qty_scale))
            .ok_or_else(|| Refusal::new("13", "bad quantity"))?;
        let price = match (ord_type, msg.get(tag::PRICE)) {
            (OrdType::Market, _) | (OrdType::Limit, None) => None,
            (OrdType::Limit, Some(_)) => Some(
                msg.get_decimal(tag::PRICE)
                    .ok()
                    .and_then(|d| to_mantissa(d, spec.price_scale))
                    .ok_or_else(|| Refusal::new("99", "bad price"))?,
            ),
        };
        Ok(OrderFields {
            side,
            ord_type,
            tif,
            quantity,
            price,
        })
    }

    /// An ExecutionReport of `order` with the given ExecType, OrdStatus and progress.
    fn report(
        &mut self,
        order: &Order,
        exec_type: &str,
        status: &str,
        progress: Progress,
        ts_ns: i64,
    ) -> OutgoingMessage {
        let (ps, qs) = self
            .engine
            .instrument(&order.instrument)
            .map_or((0, 0), |s| (s.price_scale, s.qty_scale));
        let mut m = OutgoingMessage::new("8")
            .field_with(tag::ORDER_ID, |out| self.write_order_id(out, order.id));
        if let Some(info) = self.orders.get(&order.id) {
            m = m.field(tag::CL_ORD_ID, &info.cl_ord_id);
            if let Some(orig) = &info.orig_cl_ord_id {
                m = m.field(tag::ORIG_CL_ORD_ID, orig);
            }
        }
        m = self
            .with_exec_id(m)
            .field(tag::EXEC_TYPE, exec_type)
            .field(tag::ORD_STATUS, status)
            .field(tag::SYMBOL, &order.instrument)
            .field(tag::SIDE, side_code(order.side))
            .field_decimal(tag::ORDER_QTY, Decimal::new(order.quantity, qs))
            .field(
                tag::ORD_TYPE,
                match order.ord_type {
                    OrdType::Market => "1",
                    OrdType::Limit => "2",
                },
            );
        if let Some(p) = order.price {
            m = m.field_decimal(tag::PRICE, Decimal::new(p, ps));
        }
        let leaves = if status == "4" {
            0
        } else {
            order.quantity - progress.cum
        };
        m.field(
            tag::TIME_IN_FORCE,
            match order.tif {
                TimeInForce::Day => "0",
                TimeInForce::Gtc => "1",
                TimeInForce::Ioc => "3",
                TimeInForce::Fok => "4",
            },
        )
        .field_decimal(tag::LEAVES_QTY, Decimal::new(leaves.max(0), qs))
        .field_decimal(tag::CUM_QTY, Decimal::new(progress.cum, qs))
        .field_decimal(tag::AVG_PX, Decimal::new(progress.avg(), ps))
        .field_timestamp(tag::TRANSACT_TIME, ts_ns, TimestampPrecision::Millis)
    }

    /// Appends to `out` the trade reports for `fills` of `order` (its state after
    /// them), then a Canceled report when the order ended cancelled (IOC remainder,
    /// FOK kill).
    fn fill_reports(
        &mut self,
        order: &Order,
        fills: &[Fill],
        ts_ns: i64,
        out: &mut Vec<OutgoingMessage>,
    ) {
        let (ps, qs) = self
            .engine
            .instrument(&order.instrument)
            .map_or((0, 0), |s| (s.price_scale, s.qty_scale));
        let filled_now: i64 = fills.iter().map(|f| f.quantity).sum();
        let notional_now: i128 = fills
            .iter()
            .map(|f| i128::from(f.price) * i128::from(f.quantity))
            .sum();
        let mut progress = Progress {
            cum: order.filled - filled_now,
            notional: order.notional - notional_now,
        };
        for f in fills {
            progress.cum += f.quantity;
            progress.notional += i128::from(f.price) * i128::from(f.quantity);
            let status = if progress.cum >= order.quantity {
                "2"
            } else {
                "1"
            };
            let m = self
                .report(order, "F", status, progress, f.ts_ns)
                .field_decimal(tag::LAST_QTY, Decimal::new(f.quantity, qs))
                .field_decimal(tag::LAST_PX, Decimal::new(f.price, ps))
                .field_decimal(tag::COMMISSION, Decimal::new(f.commission, ps))
                .field(tag::COMM_TYPE, "3");
            out.push(m);
        }
        if order.status == OrderStatus::Canceled {
            out.push(self.report(order, "4", "4", progress, ts_ns));
        }
    }

    fn reject_order(
        &mut self,
        msg: &Message<'_>,
        refusal: &Refusal,
        ts_ns: i64,
    ) -> OutgoingMessage {
        let m = OutgoingMessage::new("8")
            .field(tag::ORDER_ID, "NONE")
            .field(tag::CL_ORD_ID, msg.get(tag::CL_ORD_ID).unwrap_or_default());
        let mut m = self
            .with_exec_id(m)
            .field(tag::EXEC_TYPE, "8")
            .field(tag::ORD_STATUS, "8")
            .field(tag::ORD_REJ_REASON, refusal.code)
            .field(tag::SYMBOL, msg.get(tag::SYMBOL).unwrap_or_default());
        if let Some(side @ (b"1" | b"2")) = msg.get(tag::SIDE) {
            m = m.field(tag::SIDE, side);
        } else {
            m = m.field(tag::SIDE, "1");
        }
        if let Some(q) = msg.get(tag::ORDER_QTY) {
            m = m.field(tag::ORDER_QTY, q);
        }
        m.field(tag::LEAVES_QTY, "0")
            .field(tag::CUM_QTY, "0")
            .field(tag::AVG_PX, "0")
            .field_timestamp(tag::TRANSACT_TIME, ts_ns, TimestampPrecision::Millis)
            .field(tags::TEXT, &refusal.text)
    }

    fn new_order(&mut self, session: &SessionId, msg: &Message<'_>) -> Vec<OutgoingMessage> {
        let ts = now_nanos();
        match self.try_new_order(session, msg, ts) {
            Ok(reports) => reports,
            Err(refusal) => vec![self.reject_order(msg, &refusal, ts)],
        }
    }

    fn try_new_order(
        &mut self,
        session: &SessionId,
        msg: &Message<'_>,
        ts: i64,
    ) -> Result<Vec<OutgoingMessage>, Refusal> {
        let cl_ord_id = msg
            .get_str(tag::CL_ORD_ID)
            .map_err(|_| Refusal::new("99", "missing ClOrdID"))?;
        if self.order_of(session, cl_ord_id).is_some() {
            return Err(Refusal::new("6", format!("duplicate ClOrdID {cl_ord_id}")));
        }
        let symbol = msg.get_str(tag::SYMBOL).unwrap_or_default();
        let fields = Self::order_fields(msg, self.spec(symbol)?)?;
        let request = OrderRequest {
            instrument: symbol.to_owned(),
            side: fields.side,
            ord_type: fields.ord_type,
            tif: fields.tif,
            quantity: fields.quantity,
            price: fields.price,
        };
        let execution = self
            .engine
            .submit(request, ts)
            .map_err(|r| Refusal::new(ord_rej_reason(&r), r.to_string()))?;
        let order = execution.order;
        let number = self.session_number(session);
        self.orders.insert(
            order.id,
            OrderInfo {
                session: number,
                cl_ord_id: cl_ord_id.to_owned(),
                orig_cl_ord_id: None,
            },
        );
        self.name_order(number, cl_ord_id.to_owned(), order.id);
        let zero = Progress {
            cum: 0,
            notional: 0,
        };
        // The report of the order as accepted (status and progress come from the
        // arguments, the rest of the order does not change), then its fills.
        let mut out = Vec::with_capacity(execution.fills.len() + 2);
        out.push(self.report(&order, "0", "0", zero, ts));
        self.fill_reports(&order, &execution.fills, ts, &mut out);
        Ok(out)
    }

    /// Answers an OrderStatusRequest: ExecType I with the order's state, or
    /// OrdStatus 8 with OrdRejReason 5 when no order of the session has that
    /// ClOrdID (11) or OrderID (37).
    fn status(&mut self, session: &SessionId, msg: &Message<'_>) -> OutgoingMessage {
        let ts = now_nanos();
        let cl_ord_id = msg.get_str(tag::CL_ORD_ID).unwrap_or_default();
        let id = self
            .order_of(session, cl_ord_id)
            .or_else(|| self.order_by_order_id(session, msg));
        if let Some(order) = id.and_then(|id| self.engine.order(id).cloned()) {
            let progress = Progress {
                cum: order.filled,
                notional: order.notional,
            };
            return self.report(&order, "I", status_code(order.status), progress, ts);
        }
        let m = OutgoingMessage::new("8")
            .field(tag::ORDER_ID, "NONE")
            .field(tag::CL_ORD_ID, cl_ord_id);
        let mut m = self
            .with_exec_id(m)
            .field(tag::EXEC_TYPE, "I")
            .field(tag::ORD_STATUS, "8")
            .field(tag::ORD_REJ_REASON, "5")
            .field(tag::SYMBOL, msg.get(tag::SYMBOL).unwrap_or_default());
        m = match msg.get(tag::SIDE) {
            Some(side @ (b"1" | b"2")) => m.field(tag::SIDE, side),
            _ => m.field(tag::SIDE, "1"),
        };
        m.field(tag::LEAVES_QTY, "0")
            .field(tag::CUM_QTY, "0")
            .field(tag::AVG_PX, "0")
            .field_timestamp(tag::TRANSACT_TIME, ts, TimestampPrecision::Millis)
            .field(tags::TEXT, "unknown order")
    }

    /// Finds the order of a cancel or replace: OrigClOrdID (41), else OrderID (37).
    fn find(&self, session: &SessionId, msg: &Message<'_>) -> Option<OrderId> {
        let orig = msg.get_str(tag::ORIG_CL_ORD_ID).unwrap_or_default();
        self.order_of(session, orig)
            .or_else(|| self.order_by_order_id(session, msg))
    }

    /// The order of `session` named by OrderID (37), as this venue writes them.
    fn order_by_order_id(&self, session: &SessionId, msg: &Message<'_>) -> Option<OrderId> {
        let id: OrderId = msg
            .get_str(tag::ORDER_ID)
            .ok()?
            .strip_prefix(&self.prefix)?
            .strip_prefix('-')?
            .parse()
            .ok()?;
        let number = self.session_numbers.get(session)?;
        self.orders
            .get(&id)
            .is_some_and(|info| info.session == *number)
            .then_some(id)
    }

    /// The order of `session` whose current or earlier ClOrdID is `cl_ord_id`.
    fn order_of(&self, session: &SessionId, cl_ord_id: &str) -> Option<OrderId> {
        let number = *self.session_numbers.get(session)?;
        self.by_cl_ord_id.get(number)?.get(cl_ord_id).copied()
    }

    /// The number of `session`, given on its first order.
    fn session_number(&mut self, session: &SessionId) -> usize {
        if let Some(&number) = self.session_numbers.get(session) {
            return number;
        }
        let number = self.sessions.len();
        self.sessions.push(session.clone());
        self.session_numbers.insert(session.clone(), number);
        self.by_cl_ord_id.push(ShardedMap::new());
        number
    }

    /// Records that ClOrdID `cl_ord_id` of session `number` names order `id`.
    fn name_order(&mut self, number: usize, cl_ord_id: String, id: OrderId) {
        if let Some(names) = self.by_cl_ord_id.get_mut(number) {
            names.insert(cl_ord_id, id);
        }
    }

    fn cancel_reject(
        &self,
        msg: &Message<'_>,
        id: Option<OrderId>,
        response_to: &str,
        refusal: &Refusal,
    ) -> OutgoingMessage {
        let status = id
            .and_then(|id| self.engine.order(id))
            .map_or("8", |o| status_code(o.status));
        OutgoingMessage::new("9")
            .field_with(tag::ORDER_ID, |out| match id {
                Some(id) => self.write_order_id(out, id),
                None => out.extend_from_slice(b"NONE"),
            })
            .field(tag::CL_ORD_ID, msg.get(tag::CL_ORD_ID).unwrap_or_default())
            .field(
                tag::ORIG_CL_ORD_ID,
                msg.get(tag::ORIG_CL_ORD_ID).unwrap_or_default(),
            )
            .field(tag::ORD_STATUS, status)
            .field_timestamp(tag::TRANSACT_TIME, now_nanos(), TimestampPrecision::Millis)
            .field(tag::CXL_REJ_RESPONSE_TO, response_to)
            .field(tag::CXL_REJ_REASON, refusal.code)
            .field(tags::TEXT, &refusal.text)
    }

    /// Checks ClOrdID, order and Side/Symbol of a cancel or replace.
    fn check_change(
        &self,
        session: &SessionId,
        msg: &Message<'_>,
    ) -> Result<(OrderId, String), (Option<OrderId>, Refusal)> {
        let Some(id) = self.find(session, msg) else {
            return Err((None, Refusal::new("1", "unknown order")));
        };
        let cl_ord_id = match msg.get_str(tag::CL_ORD_ID) {
            Ok(c) if self.order_of(session, c).is_none() => c.to_owned(),
            _ => return Err((Some(id), Refusal::new("6", "duplicate or missing ClOrdID"))),
        };
        let Some(order) = self.engine.order(id) else {
            return Err((None, Refusal::new("1", "unknown order")));
        };
        if msg.get(tag::SYMBOL) != Some(order.instrument.as_bytes())
            || msg.get(tag::SIDE) != Some(side_code(order.side).as_bytes())
        {
            return Err((Some(id), Refusal::new("99", "Symbol or Side differs")));
        }
        if !order.is_working() {
            return Err((Some(id), Refusal::new("0", "too late: order not working")));
        }
        Ok((id, cl_ord_id))
    }

    /// Records that the order `id` now answers to `cl_ord_id` (on the session that
    /// placed it, the only one that finds it).
    fn rename(&mut self, id: OrderId, cl_ord_id: String) {
        let Some(info) = self.orders.get_mut(&id) else {
            return;
        };
        let number = info.session;
        let orig = std::mem::replace(&mut info.cl_ord_id, cl_ord_id.clone());
        info.orig_cl_ord_id = Some(orig);
        self.name_order(number, cl_ord_id, id);
    }

    fn cancel(&mut self, session: &SessionId, msg: &Message<'_>) -> Vec<OutgoingMessage> {
        let (id, cl_ord_id) = match self.check_change(session, msg) {
            Ok(v) => v,
            Err((id, refusal)) => return vec![self.cancel_reject(msg, id, "1", &refusal)],
        };
        match self.engine.cancel(id) {
            Ok(order) => {
                self.rename(id, cl_ord_id);
                let progress = Progress {
                    cum: order.filled,
                    notional: order.notional,
                };
                vec![self.report(&order, "4", "4", progress, now_nanos())]
            }
            Err(r) => {
                let refusal = Refusal::new("0", r.to_string());
                vec![self.cancel_reject(msg, Some(id), "1", &refusal)]
            }
        }
    }

    fn replace(&mut self, session: &SessionId, msg: &Message<'_>) -> Vec<OutgoingMessage> {
        let (id, cl_ord_id) = match self.check_change(session, msg) {
            Ok(v) => v,
            Err((id, refusal)) => return vec![self.cancel_reject(msg, id, "2", &refusal)],
        };
        let ts = now_nanos();
        let fields = self
            .engine
            .order(id)
            .ok_or_else(|| Refusal::new("1", "unknown order"))
            .and_then(|o| self.spec(&o.instrument))
            .and_then(|spec| Self::order_fields(msg, spec))
            .and_then(|f| match f.ord_type {
                OrdType::Limit => Ok(f),
                OrdType::Market => Err(Refusal::new("99", "cannot replace to a market order")),
            });
        let fields = match fields {
            Ok(f) => f,
            Err(refusal) => {
                // OrdRejReason codes of the order fields are not CxlRejReasons.
                let refusal = Refusal::new("99", refusal.text);
                return vec![self.cancel_reject(msg, Some(id), "2", &refusal)];
            }
        };
        match self.engine.replace(id, fields.quantity, fields.price, ts) {
            Ok(execution) => {
                self.rename(id, cl_ord_id);
                let order = execution.order;
                let filled_now: i64 = execution.fills.iter().map(|f| f.quantity).sum();
                let notional_now: i128 = execution
                    .fills
                    .iter()
                    .map(|f| i128::from(f.price) * i128::from(f.quantity))
                    .sum();
                let before = Progress {
                    cum: order.filled - filled_now,
                    notional: order.notional - notional_now,
                };
                let mut replaced = order.clone();
                replaced.status = if before.cum == 0 {
                    OrderStatus::New
                } else {
                    OrderStatus::PartiallyFilled
                };
                let status = status_code(replaced.status);
                let mut out = vec![self.report(&replaced, "5", status, before, ts)];
                self.fill_reports(&order, &execution.fills, ts, &mut out);
                out
            }
            Err(r) => {
                let code = match r {
                    RejectReason::NotWorking(_) => "0",
                    RejectReason::UnknownOrder(_) => "1",
                    _ => "99",
                };
                vec![self.cancel_reject(msg, Some(id), "2", &Refusal::new(code, r.to_string()))]
            }
        }
    }

    /// Hands the pending unsolicited reports of every attached session to its
    /// channel, without blocking; returns the (channel, message) pairs to send.
    fn drain_pending(&mut self) -> Vec<Delivery> {
        let mut out = Vec::new();
        for (session, queue) in &mut self.pending {
            if let Some(sender) = self.senders.get(session) {
                out.extend(
                    queue
                        .drain(..)
                        .map(|m| (session.clone(), sender.clone(), m)),
                );
            }
        }
        self.pending.retain(|_, q| !q.is_empty());
        out
    }
}

impl PaperVenue {
    /// Returns a venue with the instruments of `config` and no orders.
    #[must_use]
    pub fn new(config: VenueConfig) -> Self {
        let mut engine = MatchingEngine::new(config.engine);
        for spec in config.instruments {
            engine.add_instrument(spec);
        }
        Self {
            inner: Arc::new(Mutex::new(Inner {
                engine,
                orders: ShardedMap::new(),
                sessions: Vec::new(),
                session_numbers: FastHashMap::default(),
                by_cl_ord_id: Vec::new(),
                senders: FastHashMap::default(),
                pending: FastHashMap::default(),
                next_exec_id: 1,
                prefix: config.id_prefix,
                run: base36(u64::try_from(now_nanos() / 1_000_000).unwrap_or(0)),
            })),
            latency: config.latency,
        }
    }

    /// The FIX 4.4 data dictionary the venue speaks: the session messages and
    /// NewOrderSingle, OrderCancelRequest, OrderCancelReplaceRequest,
    /// OrderStatusRequest, ExecutionReport, OrderCancelReject
    /// and BusinessMessageReject. Usable on both sides of a session.
    ///
    /// # Errors
    /// [`VenueError::Dictionary`] if the built-in XML does not load (a bug).
    pub fn dictionary() -> Result<Dictionary, VenueError> {
        Ok(Dictionary::from_xml(DICTIONARY_XML, "fix44_venue.xml")?)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds (or updates) an instrument.
    pub fn add_instrument(&self, spec: InstrumentSpec) {
        self.lock().engine.add_instrument(spec);
    }

    /// Registers the outgoing channel of `session` (from
    /// [`nexus_fix::session::Acceptor::sender`]) for unsolicited reports; reports
    /// queued for it so far are sent now.
    pub fn attach(&self, session: SessionId, sender: SessionSender) {
        let sends = {
            let mut inner = self.lock();
            inner.senders.insert(session, sender);
            inner.drain_pending()
        };
        self.deliver(sends);
    }

    /// Starts a nexus-fix [`Acceptor`] for `sessions` with this venue as the
    /// application, and attaches every session's outgoing channel
    /// ([`PaperVenue::attach`]) for unsolicited reports.
    ///
    /// # Errors
    /// [`TcpError`] when the acceptor cannot start.
    pub fn serve(
        &self,
        config: AcceptorConfig,
        sessions: Vec<Session>,
    ) -> Result<Acceptor, TcpError> {
        serve_attached(config, sessions, Arc::new(self.clone()), |id, sender| {
            self.attach(id, sender);
        })
    }

    /// Forgets the outgoing channel of `session`; its unsolicited reports are
    /// queued until it is attached again.
    pub fn detach(&self, session: &SessionId) {
        self.lock().senders.remove(session);
    }

    /// Feeds the top of book of `instrument` (price and size mantissas at its
    /// scales, time in nanoseconds since the Unix epoch) and sends the fills of the
    /// resting orders it crosses as unsolicited ExecutionReports (after the
    /// configured latency). Returns the number of fills.
    ///
    /// # Errors
    /// [`VenueError::Rejected`] for an unknown instrument or a bad quote.
    pub fn on_quote(
        &self,
        instrument: &str,
        bid: i64,
        ask: i64,
        bid_size: i64,
        ask_size: i64,
        ts_ns: i64,
    ) -> Result<usize, VenueError> {
        let (count, sends) = {
            let mut inner = self.lock();
            let fills = inner
                .engine
                .on_quote(instrument, bid, ask, bid_size, ask_size, ts_ns)?;
            for fill in &fills {
                let Some(order) = inner.engine.order(fill.order_id).cloned() else {
                    continue;
                };
                let Some(session) = inner
                    .orders
                    .get(&fill.order_id)
                    .and_then(|i| inner.sessions.get(i.session))
                    .cloned()
                else {
                    continue;
                };
                let mut reports = Vec::new();
                inner.fill_reports(&order, std::slice::from_ref(fill), ts_ns, &mut reports);
                inner.pending.entry(session).or_default().extend(reports);
            }
            (fills.len(), inner.drain_pending())
        };
        if !sends.is_empty() && !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
        self.deliver(sends);
        Ok(count)
    }

    /// Sends without blocking; what does not fit (a full channel: the session is
    /// not logged on or not keeping up) is queued again for the next attempt.
    fn deliver(&self, sends: Vec<Delivery>) {
        let mut unsent: Vec<(SessionId, OutgoingMessage)> = Vec::new();
        for (session, sender, msg) in sends {
            if unsent.iter().any(|(s, _)| s == &session) {
                // Keep the order: nothing overtakes a report already queued again.
                unsent.push((session, msg));
                continue;
            }
            match sender.try_send(msg) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(msg)) => unsent.push((session, msg)),
            }
        }
        if unsent.is_empty() {
            return;
        }
        let mut by_session: HashMap<SessionId, Vec<OutgoingMessage>> = HashMap::new();
        for (session, msg) in unsent {
            by_session.entry(session).or_default().push(msg);
        }
        let mut inner = self.lock();
        for (session, mut msgs) in by_session {
            // Ahead of anything queued since.
            let queue = inner.pending.entry(session).or_default();
            msgs.append(queue);
            *queue = msgs;
        }
    }

    /// The engine's state of the order with OrderID (37) `order_id`.
    #[must_use]
    pub fn order(&self, order_id: &str) -> Option<Order> {
        let inner = self.lock();
        let id: OrderId = order_id
            .strip_prefix(&inner.prefix)?
            .strip_prefix('-')?
            .parse()
            .ok()?;
        inner.engine.order(id).cloned()
    }

    /// Runs `f` on the matching engine (for inspection).
    pub fn with_engine<R>(&self, f: impl FnOnce(&MatchingEngine) -> R) -> R {
        f(&self.lock().engine)
    }

    /// Unsolicited reports waiting for a channel, over all sessions.
    #[must_use]
    pub fn pending_reports(&self) -> usize {
        self.lock().pending.values().map(Vec::len).sum()
    }
}

impl Application for PaperVenue {
    fn on_message(
        &self,
        session: &SessionId,
        msg: &Message<'_>,
        replies: &mut Vec<OutgoingMessage>,
    ) {
        {
            let mut inner = self.lock();
            match msg.msg_type() {
                b"D" => replies.extend(inner.new_order(session, msg)),
                b"F" => replies.extend(inner.cancel(session, msg)),
                b"G" => replies.extend(inner.replace(session, msg)),
                b"H" => replies.push(inner.status(session, msg)),
                other => {
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
        }
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
    }
}

/// Starts an [`Acceptor`] for `sessions` calling `app`, then hands each
/// session's outgoing channel to `attach` (the simulators' way to send
/// unsolicited messages).
pub(crate) fn serve_attached(
    config: AcceptorConfig,
    sessions: Vec<Session>,
    app: Arc<dyn Application>,
    mut attach: impl FnMut(SessionId, SessionSender),
) -> Result<Acceptor, TcpError> {
    let ids: Vec<SessionId> = sessions.iter().map(|s| s.id().clone()).collect();
    let acceptor = Acceptor::start(config, sessions, app)?;
    for id in ids {
        if let Some(sender) = acceptor.sender(&id) {
            attach(id, sender);
        }
    }
    Ok(acceptor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_fix::message::MessageBuilder;
    use std::time::Instant;

    const SYM: &str = "ESZ6";

    fn venue(latency: Duration, fees: crate::FeeModel) -> PaperVenue {
        PaperVenue::new(VenueConfig {
            engine: EngineConfig {
                slippage_ticks: 1,
                fees,
            },
            instruments: vec![InstrumentSpec::new(SYM, 2, 0, 25)],
            latency,
            ..VenueConfig::default()
        })
    }

    fn session() -> SessionId {
        SessionId::new("FIX.4.4", "PAPER", "NEXUS")
    }

    /// Sends `msg_type` with `fields` to the venue; returns the replies as
    /// (MsgType, fields).
    fn send(v: &PaperVenue, msg_type: &str, fields: &[(u32, &str)]) -> Vec<OutgoingMessage> {
        send_as(v, &session(), msg_type, fields)
    }

    /// As [`send`], on `session`.
    fn send_as(
        v: &PaperVenue,
        session: &SessionId,
        msg_type: &str,
        fields: &[(u32, &str)],
    ) -> Vec<OutgoingMessage> {
        let mut b = MessageBuilder::new("FIX.4.4", msg_type);
        b.sender_comp_id("NEXUS")
            .target_comp_id("PAPER")
            .msg_seq_num(7)
            .sending_time(now_nanos(), TimestampPrecision::Millis);
        for (tag, value) in fields {
            b.field_str(*tag, value);
        }
        let mut frame = Vec::new();
        b.encode_into(&mut frame);
        let msg = Message::parse(&frame).unwrap();
        let mut replies = Vec::new();
        v.on_message(session, &msg, &mut replies);
        replies
    }

    fn get(m: &OutgoingMessage, tag: u32) -> &str {
        m.body
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
            .unwrap_or_else(|| panic!("{tag} missing in {m:?}"))
    }

    /// (ExecType, OrdStatus, CumQty, LeavesQty, AvgPx).
    fn er(m: &OutgoingMessage) -> [&str; 5] {
        assert_eq!(m.msg_type, "8");
        [get(m, 150), get(m, 39), get(m, 14), get(m, 151), get(m, 6)]
    }

    fn nos<'a>(id: &'a str, side: &'a str, qty: &'a str, tif: &'a str) -> Vec<(u32, &'a str)> {
        vec![
            (11, id),
            (55, SYM),
            (54, side),
            (38, qty),
            (40, "2"),
            (59, tif),
        ]
    }

    fn quote(v: &PaperVenue) {
        v.on_quote(SYM, 10_000, 10_025, 5, 7, 1).unwrap();
    }

    #[test]
    fn dictionary_loads() {
        let d = PaperVenue::dictionary().unwrap();
        assert!(format!("{d:?}").len() > 10);
    }

    #[test]
    fn ioc_remainder_is_cancelled_and_reported() {
        let v = venue(Duration::ZERO, crate::FeeModel::Bps(10));
        quote(&v);
        let mut f = nos("A", "1", "10", "3");
        f.push((44, "100.25"));
        let r = send(&v, "D", &f);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(er(&r[0]), ["0", "0", "0", "10", "0.00"]);
        assert_eq!(er(&r[1]), ["F", "1", "7", "3", "100.25"]);
        // 10 bps of 701.75.
        assert_eq!(get(&r[1], 12), "0.70");
        assert_eq!(er(&r[2]), ["4", "4", "7", "0", "100.25"]);
        assert_eq!(get(&r[2], 59), "3");
    }

    #[test]
    fn fok_is_killed_and_market_orders_slip() {
        let v = venue(Duration::ZERO, crate::FeeModel::None);
        quote(&v);
        let mut f = nos("A", "2", "6", "4");
        f.push((44, "100.00"));
        let r = send(&v, "D", &f);
        assert_eq!(r.len(), 2);
        assert_eq!(er(&r[1]), ["4", "4", "0", "0", "0.00"]);
        let r = send(
            &v,
            "D",
            &[(11, "B"), (55, SYM), (54, "2"), (38, "20"), (40, "1")],
        );
        assert_eq!(r.len(), 2);
        assert_eq!(er(&r[1]), ["F", "2", "20", "0", "99.75"]);
        assert_eq!((get(&r[1], 31), get(&r[1], 32)), ("99.75", "20"));
    }

    #[test]
    fn bad_orders_are_rejected_with_reasons() {
        let v = venue(Duration::ZERO, crate::FeeModel::None);
        let mut f = nos("A", "1", "1", "0");
        f.push((44, "100.00"));
        let r = send(&v, "D", &f);
        assert_eq!(er(&r[0])[..2], ["8", "8"]);
        assert_eq!(get(&r[0], 103), "99");
        assert!(get(&r[0], 58).contains("no quote"));
        quote(&v);
        let cases: [(&[(u32, &str)], &str); 4] = [
            (&[(38, "1.5"), (44, "100.00")], "13"),
            (&[(38, "0"), (44, "100.00")], "13"),
            (&[(38, "1"), (44, "100.10")], "99"),
            (&[(38, "1"), (44, "100.001")], "99"),
        ];
        for (i, (extra, code)) in cases.iter().enumerate() {
            let id = format!("X{i}");
            let mut f = vec![(11, id.as_str()), (55, SYM), (54, "1"), (40, "2")];
            f.extend_from_slice(extra);
            let r = send(&v, "D", &f);
            assert_eq!(r.len(), 1);
            assert_eq!(
                (get(&r[0], 150), get(&r[0], 103)),
                ("8", *code),
                "{extra:?}"
            );
        }
        let r = send(
            &v,
            "D",
            &[(11, "Y"), (55, SYM), (54, "1"), (38, "1"), (40, "3")],
        );
        assert_eq!(get(&r[0], 103), "11");
    }

    #[test]
    fn replace_to_a_marketable_price_fills_at_once() {
        let v = venue(Duration::ZERO, crate::FeeModel::PerUnit(10));
        quote(&v);
        let mut f = nos("A", "1", "10", "1");
        f.push((44, "99.00"));
        assert_eq!(send(&v, "D", &f).len(), 1);
        let r = send(
            &v,
            "G",
            &[
                (41, "A"),
                (11, "B"),
                (55, SYM),
                (54, "1"),
                (38, "5"),
                (40, "2"),
                (44, "100.25"),
            ],
        );
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(er(&r[0]), ["5", "0", "0", "5", "0.00"]);
        assert_eq!(er(&r[1]), ["F", "2", "5", "0", "100.25"]);
        assert_eq!(
            (get(&r[1], 11), get(&r[1], 41), get(&r[1], 12)),
            ("B", "A", "0.50")
        );
        // Replacing a filled order: too late.
        let r = send(
            &v,
            "G",
            &[
                (41, "B"),
                (11, "C"),
                (55, SYM),
                (54, "1"),
                (38, "6"),
                (40, "2"),
                (44, "100.25"),
            ],
        );
        assert_eq!(r[0].msg_type, "9");
        assert_eq!(
            (get(&r[0], 434), get(&r[0], 102), get(&r[0], 39)),
            ("2", "0", "2")
        );
        // Wrong side.
        let mut f = nos("D", "1", "10", "1");
        f.push((44, "99.00"));
        send(&v, "D", &f);
        let r = send(&v, "F", &[(41, "D"), (11, "E"), (55, SYM), (54, "2")]);
        assert_eq!((r[0].msg_type.as_str(), get(&r[0], 102)), ("9", "99"));
    }

    #[test]
    fn unsolicited_reports_wait_for_a_channel_with_room() {
        let v = venue(Duration::ZERO, crate::FeeModel::None);
        quote(&v);
        for id in ["A", "B"] {
            let mut f = nos(id, "2", "2", "1");
            f.push((44, "101.00"));
            send(&v, "D", &f);
        }
        assert_eq!(v.on_quote(SYM, 10_100, 10_125, 9, 9, 2).unwrap(), 2);
        assert_eq!(v.pending_reports(), 2);
        let (tx, rx) = SessionSender::channel(1);
        v.attach(session(), tx);
        assert_eq!(v.pending_reports(), 1);
        let first = rx.try_recv().unwrap();
        assert_eq!((get(&first, 11), get(&first, 39)), ("A", "2"));
        assert_eq!(get(&first, 60), "19700101-00:00:00.000");
        assert_eq!(v.on_quote(SYM, 10_000, 10_025, 9, 9, 3).unwrap(), 0);
        let second = rx.try_recv().unwrap();
        assert_eq!(get(&second, 11), "B");
        assert_eq!(v.pending_reports(), 0);
        v.detach(&session());
        assert!(matches!(
            v.on_quote("XXX", 1, 2, 1, 1, 4),
            Err(VenueError::Rejected(RejectReason::UnknownInstrument(_)))
        ));
    }

    #[test]
    fn latency_delays_replies() {
        let v = venue(Duration::from_millis(60), crate::FeeModel::None);
        let start = Instant::now();
        let r = send(&v, "8", &[(11, "A"), (55, SYM), (54, "1")]);
        assert!(start.elapsed() >= Duration::from_millis(60));
        assert_eq!(
            (r[0].msg_type.as_str(), get(&r[0], 45), get(&r[0], 380)),
            ("j", "7", "3")
        );
    }

    #[test]
    fn sessions_keep_their_orders_apart() {
        let v = venue(Duration::ZERO, crate::FeeModel::None);
        quote(&v);
        let other = SessionId::new("FIX.4.4", "PAPER", "OTHER");
        let mut f = nos("A", "1", "10", "1");
        f.push((44, "99.00"));
        // The same ClOrdID on two sessions: two orders, no duplicate.
        let mine = send(&v, "D", &f);
        let theirs = send_as(&v, &other, "D", &f);
        assert_eq!((er(&mine[0])[0], er(&theirs[0])[0]), ("0", "0"));
        let (my_id, their_id) = (get(&mine[0], 37), get(&theirs[0], 37));
        assert_ne!(my_id, their_id);
        // A repeat on one session is a duplicate there only.
        assert_eq!(get(&send(&v, "D", &f)[0], 103), "6");
        // A session finds its own order, by ClOrdID or OrderID, and not the other's.
        let status = |s: &SessionId, fields: &[(u32, &str)]| {
            let r = send_as(&v, s, "H", fields);
            (get(&r[0], 37).to_owned(), get(&r[0], 39).to_owned())
        };
        let by_cl = [(11, "A"), (55, SYM), (54, "1")];
        assert_eq!(
            status(&other, &by_cl),
            (their_id.to_owned(), "0".to_owned())
        );
        let by_id = [(11, "?"), (37, my_id), (55, SYM), (54, "1")];
        assert_eq!(status(&session(), &by_id).0, my_id);
        assert_eq!(status(&other, &by_id), ("NONE".to_owned(), "8".to_owned()));
        // Cancelling through the other session's OrderID is refused; its own works.
        let cancel = |s: &SessionId, orig: &str, id: &str, order_id: &str| {
            send_as(
                &v,
                s,
                "F",
                &[(41, orig), (11, id), (37, order_id), (55, SYM), (54, "1")],
            )
        };
        let refused = cancel(&other, "?", "C1", my_id);
        assert_eq!(
            (refused[0].msg_type.as_str(), get(&refused[0], 102)),
            ("9", "1")
        );
        let done = cancel(&other, "A", "C2", their_id);
        assert_eq!((er(&done[0])[0], get(&done[0], 37)), ("4", their_id));
        // The first session's order is still working.
        assert_eq!(
            status(&session(), &by_cl),
            (my_id.to_owned(), "0".to_owned())
        );
    }

    #[test]
    fn order_status_requests_report_the_order_or_unknown() {
        let v = venue(Duration::ZERO, crate::FeeModel::None);
        quote(&v);
        let mut f = nos("A", "1", "10", "1");
        f.push((44, "99.00"));
        send(&v, "D", &f);
        let r = send(
            &v,
            "G",
            &[
                (41, "A"),
                (11, "B"),
                (55, SYM),
                (54, "1"),
                (38, "12"),
                (40, "2"),
                (44, "99.00"),
            ],
        );
        assert_eq!(get(&r[0], 150), "5");
        // Found under either ClOrdID of the chain; reported under the latest.
        for id in ["A", "B"] {
            let r = send(&v, "H", &[(11, id), (55, SYM), (54, "1")]);
            assert_eq!(r.len(), 1);
            assert_eq!(er(&r[0]), ["I", "0", "0", "12", "0.00"]);
            assert_eq!(get(&r[0], 11), "B");
        }
        // A partial fill shows in the status.
        assert_eq!(v.on_quote(SYM, 9_875, 9_900, 5, 5, 2).unwrap(), 1);
        let r = send(&v, "H", &[(11, "B"), (55, SYM), (54, "1")]);
        assert_eq!(er(&r[0]), ["I", "1", "5", "7", "99.00"]);
        let order_id = get(&r[0], 37).to_owned();
        let r = send(&v, "H", &[(11, "?"), (37, &order_id), (55, SYM), (54, "1")]);
        assert_eq!(get(&r[0], 11), "B");
        let r = send(&v, "H", &[(11, "NOPE"), (55, SYM), (54, "2")]);
        assert_eq!(er(&r[0]), ["I", "8", "0", "0", "0"]);
        assert_eq!(
            (get(&r[0], 103), get(&r[0], 11), get(&r[0], 54)),
            ("5", "NOPE", "2")
        );
        // ExecIDs of a venue started later differ from this one's.
        let ids: Vec<String> = r.iter().map(|m| get(m, 17).to_owned()).collect();
        std::thread::sleep(Duration::from_millis(2));
        let w = venue(Duration::ZERO, crate::FeeModel::None);
        let other = send(&w, "H", &[(11, "NOPE"), (55, SYM), (54, "2")]);
        assert_ne!(get(&other[0], 17), ids[0]);
    }
}
