//! The matching engine of the paper venue simulator: fills orders against the top
//! of book it is fed, one instrument at a time.
//!
//! There is no real order book behind it: each [`MatchingEngine::on_quote`] replaces
//! the instrument's best bid and ask, and the displayed sizes are the liquidity that
//! orders may take until the next quote (every fill consumes it).
//!
//! * Market orders fill in full at the far side (the ask for a buy, the bid for a
//!   sell), worsened by [`EngineConfig::slippage_ticks`] ticks: the simulator assumes
//!   depth beyond the top of book, the slippage models the impact.
//! * Limit orders that are marketable (a buy at or above the ask, a sell at or below
//!   the bid) fill at the far side up to the displayed size; the rest rests (or is
//!   cancelled for IOC; FOK fills in full or not at all).
//! * Resting limit orders fill at their limit price when a later quote crosses them,
//!   up to that quote's displayed size, in time priority.
//!
//! Prices and quantities are fixed-point mantissas at the instrument's scales
//! ([`InstrumentSpec`]); notional is computed in `i128`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use nexus_collections::{FastHashMap, ShardedMap};

use thiserror::Error;

/// Identifies an order in a [`MatchingEngine`].
pub type OrderId = u64;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Buy: takes the ask.
    Buy,
    /// Sell: takes the bid.
    Sell,
}

/// Market or limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrdType {
    /// Fills at the far side, whatever the price.
    Market,
    /// Fills at its limit price or better.
    Limit,
}

/// How long an order stays working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimeInForce {
    /// Rests until filled or cancelled (no session end in the simulator).
    #[default]
    Day,
    /// Good till cancel: rests until filled or cancelled.
    Gtc,
    /// Immediate or cancel: what does not fill at once is cancelled.
    Ioc,
    /// Fill or kill: fills in full at once or not at all.
    Fok,
}

/// Static description of an instrument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstrumentSpec {
    /// Symbol (55).
    pub symbol: String,
    /// Digits after the decimal point of prices.
    pub price_scale: u8,
    /// Digits after the decimal point of quantities.
    pub qty_scale: u8,
    /// Tick size as a price mantissa (> 0); limit prices must be multiples of it.
    pub tick: i64,
}

impl InstrumentSpec {
    /// Returns a spec; a `tick` below 1 is taken as 1.
    #[must_use]
    pub fn new(symbol: &str, price_scale: u8, qty_scale: u8, tick: i64) -> Self {
        Self {
            symbol: symbol.to_owned(),
            price_scale,
            qty_scale,
            tick: tick.max(1),
        }
    }
}

/// How fees are charged on fills; reported as Commission (12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeeModel {
    /// No fees.
    #[default]
    None,
    /// A fee per unit of quantity, as a price mantissa (the instrument's price scale).
    PerUnit(i64),
    /// Whole basis points of the fill's notional (price * quantity).
    Bps(i64),
}

/// Settings of a [`MatchingEngine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineConfig {
    /// Ticks added to the far side for market orders (against the order).
    pub slippage_ticks: i64,
    /// Fees charged on every fill.
    pub fees: FeeModel,
}

/// The top of book of an instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// Best bid price.
    pub bid: i64,
    /// Best ask price.
    pub ask: i64,
    /// Size at the bid still available to orders (consumed by fills).
    pub bid_size: i64,
    /// Size at the ask still available to orders (consumed by fills).
    pub ask_size: i64,
    /// Time of the quote, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
}

/// Why an order, a cancel, a replace or a quote was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RejectReason {
    /// The instrument was never added.
    #[error("unknown instrument {0}")]
    UnknownInstrument(String),
    /// No quote has been received for the instrument.
    #[error("no quote yet for {0}")]
    NoQuote(String),
    /// The quantity is not positive (or, on a replace, not above the filled quantity).
    #[error("bad quantity {0}")]
    BadQuantity(i64),
    /// A limit order without a positive price on the tick grid.
    #[error("bad price {0:?}")]
    BadPrice(Option<i64>),
    /// A quote with negative sizes, non-positive prices or bid above ask.
    #[error("bad quote")]
    BadQuote,
    /// No such order.
    #[error("unknown order {0}")]
    UnknownOrder(OrderId),
    /// The order is filled, cancelled or was never resting.
    #[error("order {0} is no longer working")]
    NotWorking(OrderId),
    /// A replace may not change the order's kind.
    #[error("unsupported change: {0}")]
    Unsupported(&'static str),
}

/// Lifecycle state of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Working, nothing filled.
    New,
    /// Working, partly filled.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Cancelled (by request, IOC remainder or FOK kill), possibly partly filled.
    Canceled,
}

/// An order as the engine knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Engine id.
    pub id: OrderId,
    /// Instrument symbol.
    pub instrument: String,
    /// Side.
    pub side: Side,
    /// Market or limit.
    pub ord_type: OrdType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Order quantity.
    pub quantity: i64,
    /// Limit price (`None` for market orders).
    pub price: Option<i64>,
    /// Filled so far.
    pub filled: i64,
    /// Still working (0 when filled or cancelled).
    pub leaves: i64,
    /// Sum of price * quantity over fills.
    pub notional: i128,
    /// Sum of commissions over fills.
    pub commission: i64,
    /// State.
    pub status: OrderStatus,
}

impl Order {
    /// Average fill price, rounded to the nearest price mantissa (0 before any fill).
    #[must_use]
    pub fn avg_price(&self) -> i64 {
        if self.filled == 0 {
            return 0;
        }
        let q = i128::from(self.filled);
        i64::try_from(div_round(self.notional, q)).unwrap_or(i64::MAX)
    }

    /// Whether the order can still fill.
    #[must_use]
    pub fn is_working(&self) -> bool {
        matches!(self.status, OrderStatus::New | OrderStatus::PartiallyFilled)
    }
}

/// A fill of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// The order.
    pub order_id: OrderId,
    /// Fill price.
    pub price: i64,
    /// Fill quantity (> 0).
    pub quantity: i64,
    /// Fee of this fill, as a price mantissa.
    pub commission: i64,
    /// Time of the fill (of the order or of the quote that triggered it).
    pub ts_ns: i64,
}

/// What a submission or a replace did: the fills, in order, and the order after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Fills, in order.
    pub fills: Vec<Fill>,
    /// The order after the fills (status [`OrderStatus::Canceled`] when an IOC
    /// remainder or a FOK was cancelled).
    pub order: Order,
}

/// A new order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// Instrument symbol.
    pub instrument: String,
    /// Side.
    pub side: Side,
    /// Market or limit.
    pub ord_type: OrdType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Quantity mantissa (> 0).
    pub quantity: i64,
    /// Limit price mantissa (required for limit orders, ignored for market orders).
    pub price: Option<i64>,
}

struct Book {
    /// Shared, so that an order takes it without copying its symbol.
    spec: Arc<InstrumentSpec>,
    quote: Option<Quote>,
    /// Resting orders in time priority: queue sequence number to order.
    resting: BTreeMap<u64, OrderId>,
    /// Resting limit buys as (limit, queue sequence number): the ones a quote
    /// can fill (limit at or above the ask) are one range, so a quote costs
    /// what it fills, not a look at every resting order.
    buys: BTreeSet<(i64, u64)>,
    /// Resting limit sells likewise (limit at or below the bid).
    sells: BTreeSet<(i64, u64)>,
}

/// Where a resting order is queued.
#[derive(Debug, Clone, Copy)]
struct Queued {
    seq: u64,
    /// Side and limit it is indexed under (None: not a limit order).
    limit: Option<(Side, i64)>,
}

/// A matching engine per instrument against the top of book it is fed (see the
/// module documentation for the fill rules).
pub struct MatchingEngine {
    config: EngineConfig,
    books: FastHashMap<String, Book>,
    // Sharded, as every map that grows with the orders (nexus-collections).
    orders: ShardedMap<OrderId, Order>,
    /// Queue sequence number of each resting order.
    queued: ShardedMap<OrderId, Queued>,
    next_id: OrderId,
    next_seq: u64,
}

impl std::fmt::Debug for MatchingEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchingEngine")
            .field("config", &self.config)
            .field("instruments", &self.books.len())
            .field("orders", &self.orders.len())
            .finish()
    }
}

fn div_round(n: i128, d: i128) -> i128 {
    if d == 0 {
        return 0;
    }
    let q = n / d;
    let r = n % d;
    if 2 * r.abs() >= d.abs() {
        q + if (n < 0) == (d < 0) { 1 } else { -1 }
    } else {
        q
    }
}

/// `10^n`, saturated (scales beyond 38 digits are nonsense anyway).
fn pow10(n: u8) -> i128 {
    10i128.checked_pow(u32::from(n)).unwrap_or(i128::MAX)
}

impl MatchingEngine {
    /// Returns an engine without instruments.
    #[must_use]
    pub fn new(config: EngineConfig) -> Self {
        Self {
            config,
            books: FastHashMap::default(),
            orders: ShardedMap::new(),
            queued: ShardedMap::new(),
            next_id: 1,
            next_seq: 1,
        }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// Adds (or replaces the spec of) an instrument.
    pub fn add_instrument(&mut self, spec: InstrumentSpec) {
        match self.books.get_mut(&spec.symbol) {
            Some(book) => book.spec = Arc::new(spec),
            None => {
                self.books.insert(
                    spec.symbol.clone(),
                    Book {
                        spec: Arc::new(spec),
                        quote: None,
                        resting: BTreeMap::new(),
                        buys: BTreeSet::new(),
                        sells: BTreeSet::new(),
                    },
                );
            }
        }
    }

    /// The spec of `instrument`.
    #[must_use]
    pub fn instrument(&self, instrument: &str) -> Option<&InstrumentSpec> {
        self.books.get(instrument).map(|b| &*b.spec)
    }

    /// The current quote of `instrument` (sizes net of what fills consumed).
    #[must_use]
    pub fn quote(&self, instrument: &str) -> Option<Quote> {
        self.books.get(instrument).and_then(|b| b.quote)
    }

    /// The order `id`.
    #[must_use]
    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.orders.get(&id)
    }

    /// Ids of the resting orders of `instrument`, in time priority.
    #[must_use]
    pub fn resting(&self, instrument: &str) -> Vec<OrderId> {
        self.books
            .get(instrument)
            .map(|b| b.resting.values().copied().collect())
            .unwrap_or_default()
    }

    /// Commission of a fill of `quantity` at `price` on `spec`.
    fn commission(&self, spec: &InstrumentSpec, price: i64, quantity: i64) -> i64 {
        let q = i128::from(quantity);
        let scale = pow10(spec.qty_scale);
        let c = match self.config.fees {
            FeeModel::None => Some(0),
            FeeModel::PerUnit(fee) => i128::from(fee).checked_mul(q).map(|n| div_round(n, scale)),
            FeeModel::Bps(bps) => i128::from(price)
                .checked_mul(q)
                .and_then(|n| n.checked_mul(i128::from(bps)))
                .map(|n| div_round(n, scale.saturating_mul(10_000))),
        };
        // Saturate absurd fees rather than overflow.
        c.and_then(|c| i64::try_from(c).ok()).unwrap_or(i64::MAX)
    }

    /// Records a fill on `order` (already checked: 0 < quantity <= leaves).
    fn apply_fill(
        &self,
        spec: &InstrumentSpec,
        order: &mut Order,
        price: i64,
        quantity: i64,
        ts_ns: i64,
    ) -> Fill {
        let commission = self.commission(spec, price, quantity);
        order.filled += quantity;
        order.leaves -= quantity;
        order.notional += i128::from(price) * i128::from(quantity);
        order.commission = order.commission.saturating_add(commission);
        order.status = if order.leaves == 0 {
            OrderStatus::Filled
        } else {
            OrderStatus::PartiallyFilled
        };
        Fill {
            order_id: order.id,
            price,
            quantity,
            commission,
            ts_ns,
        }
    }

    /// Feeds the top of book of `instrument` and fills the resting orders it
    /// crosses, in time priority, at their limit prices, up to the displayed sizes.
    ///
    /// # Errors
    /// [`RejectReason::UnknownInstrument`], or [`RejectReason::BadQuote`] for
    /// negative sizes, non-positive prices or a crossed quote (bid above ask).
    pub fn on_quote(
        &mut self,
        instrument: &str,
        bid: i64,
        ask: i64,
        bid_size: i64,
        ask_size: i64,
        ts_ns: i64,
    ) -> Result<Vec<Fill>, RejectReason> {
        let Some(book) = self.books.get_mut(instrument) else {
            return Err(RejectReason::UnknownInstrument(instrument.to_owned()));
        };
        if bid <= 0 || ask <= 0 || bid > ask || bid_size < 0 || ask_size < 0 {
            return Err(RejectReason::BadQuote);
        }
        let mut quote = Quote {
            bid,
            ask,
            bid_size,
            ask_size,
            ts_ns,
        };
        let spec = Arc::clone(&book.spec);
        // The resting orders this quote can fill, in time priority (the others
        // would be passed over below).
        let mut seqs: Vec<u64> = book
            .buys
            .range((ask, 0)..)
            .chain(book.sells.range(..=(bid, u64::MAX)))
            .map(|&(_, seq)| seq)
            .collect();
        seqs.sort_unstable();
        let ids: Vec<OrderId> = seqs
            .iter()
            .filter_map(|seq| book.resting.get(seq).copied())
            .collect();
        let mut fills = Vec::new();
        let mut done = Vec::new();
        for id in ids {
            let Some(mut order) = self.orders.remove(&id) else {
                done.push(id);
                continue;
            };
            let Some(limit) = order.price else {
                self.orders.insert(id, order);
                continue;
            };
            let available = match order.side {
                Side::Buy if ask <= limit => &mut quote.ask_size,
                Side::Sell if bid >= limit => &mut quote.bid_size,
                _ => {
                    self.orders.insert(id, order);
                    continue;
                }
            };
            let quantity = order.leaves.min(*available);
            if quantity > 0 {
                *available -= quantity;
                fills.push(self.apply_fill(&spec, &mut order, limit, quantity, ts_ns));
                if !order.is_working() {
                    done.push(id);
                }
            }
            self.orders.insert(id, order);
        }
        for id in done {
            self.dequeue(id);
        }
        if let Some(book) = self.books.get_mut(instrument) {
            book.quote = Some(quote);
        }
        Ok(fills)
    }

    fn check_order(
        spec: &InstrumentSpec,
        ord_type: OrdType,
        quantity: i64,
        price: Option<i64>,
    ) -> Result<Option<i64>, RejectReason> {
        if quantity <= 0 {
            return Err(RejectReason::BadQuantity(quantity));
        }
        match ord_type {
            OrdType::Market => Ok(None),
            OrdType::Limit => match price {
                Some(p) if p > 0 && p % spec.tick == 0 => Ok(Some(p)),
                other => Err(RejectReason::BadPrice(other)),
            },
        }
    }

    /// Takes liquidity for `order` from `quote` at once; returns the fills.
    fn take(
        &self,
        spec: &InstrumentSpec,
        quote: &mut Quote,
        order: &mut Order,
        ts_ns: i64,
    ) -> Vec<Fill> {
        let (far, available) = match order.side {
            Side::Buy => (quote.ask, &mut quote.ask_size),
            Side::Sell => (quote.bid, &mut quote.bid_size),
        };
        let (price, quantity) = match (order.ord_type, order.price) {
            (OrdType::Market, _) => {
                let slip = self.config.slippage_ticks.saturating_mul(spec.tick);
                let price = match order.side {
                    Side::Buy => far.saturating_add(slip),
                    Side::Sell => far.saturating_sub(slip).max(spec.tick),
                };
                (price, order.leaves)
            }
            (OrdType::Limit, Some(limit)) => {
                let marketable = match order.side {
                    Side::Buy => far <= limit,
                    Side::Sell => far >= limit,
                };
                if !marketable {
                    return Vec::new();
                }
                (far, order.leaves.min(*available))
            }
            (OrdType::Limit, None) => return Vec::new(),
        };
        if order.tif == TimeInForce::Fok && quantity < order.leaves {
            return Vec::new();
        }
        if quantity <= 0 {
            return Vec::new();
        }
        *available = available.saturating_sub(quantity).max(0);
        vec![self.apply_fill(spec, order, price, quantity, ts_ns)]
    }

    /// Submits an order: it fills at once as far as the current quote allows, then
    /// rests (Day, GTC limit orders) or has its remainder cancelled (IOC, FOK).
    ///
    /// # Errors
    /// [`RejectReason::UnknownInstrument`], [`RejectReason::NoQuote`],
    /// [`RejectReason::BadQuantity`] or [`RejectReason::BadPrice`]; nothing changes.
    pub fn submit(&mut self, request: OrderRequest, ts_ns: i64) -> Result<Execution, RejectReason> {
        let Some(book) = self.books.get(&request.instrument) else {
            return Err(RejectReason::UnknownInstrument(request.instrument));
        };
        let spec = Arc::clone(&book.spec);
        let Some(mut quote) = book.quote else {
            return Err(RejectReason::NoQuote(request.instrument));
        };
        let price = Self::check_order(&spec, request.ord_type, request.quantity, request.price)?;
        let id = self.next_id;
        self.next_id += 1;
        let mut order = Order {
            id,
            instrument: request.instrument,
            side: request.side,
            ord_type: request.ord_type,
            tif: request.tif,
            quantity: request.quantity,
            price,
            filled: 0,
            leaves: request.quantity,
            notional: 0,
            commission: 0,
            status: OrderStatus::New,
        };
        let fills = self.take(&spec, &mut quote, &mut order, ts_ns);
        let rests = order.is_working()
            && order.ord_type == OrdType::Limit
            && matches!(order.tif, TimeInForce::Day | TimeInForce::Gtc);
        if order.is_working() && !rests {
            order.leaves = 0;
            order.status = OrderStatus::Canceled;
        }
        if let Some(book) = self.books.get_mut(&order.instrument) {
            book.quote = Some(quote);
        }
        self.orders.insert(id, order.clone());
        if rests {
            self.enqueue(id);
        }
        Ok(Execution { fills, order })
    }

    /// Cancels the working order `id`; returns it cancelled.
    ///
    /// # Errors
    /// [`RejectReason::UnknownOrder`] or [`RejectReason::NotWorking`].
    pub fn cancel(&mut self, id: OrderId) -> Result<Order, RejectReason> {
        let order = self
            .orders
            .get_mut(&id)
            .ok_or(RejectReason::UnknownOrder(id))?;
        if !order.is_working() {
            return Err(RejectReason::NotWorking(id));
        }
        order.leaves = 0;
        order.status = OrderStatus::Canceled;
        let order = order.clone();
        self.dequeue(id);
        Ok(order)
    }

    /// Replaces the quantity and limit price of the resting limit order `id`. The
    /// new quantity includes what is filled already (it must exceed it); the order
    /// keeps its time priority unless its price changes or its quantity grows, and
    /// fills at once if the new price is marketable.
    ///
    /// # Errors
    /// [`RejectReason::UnknownOrder`], [`RejectReason::NotWorking`],
    /// [`RejectReason::BadQuantity`], [`RejectReason::BadPrice`] or
    /// [`RejectReason::Unsupported`] (market orders); nothing changes then.
    pub fn replace(
        &mut self,
        id: OrderId,
        quantity: i64,
        price: Option<i64>,
        ts_ns: i64,
    ) -> Result<Execution, RejectReason> {
        let order = self.orders.get(&id).ok_or(RejectReason::UnknownOrder(id))?;
        if !order.is_working() {
            return Err(RejectReason::NotWorking(id));
        }
        if order.ord_type != OrdType::Limit {
            return Err(RejectReason::Unsupported("replace of a market order"));
        }
        let Some(book) = self.books.get(&order.instrument) else {
            return Err(RejectReason::UnknownInstrument(order.instrument.clone()));
        };
        let spec = Arc::clone(&book.spec);
        let new_price = Self::check_order(&spec, OrdType::Limit, quantity, price)?;
        if quantity <= order.filled {
            return Err(RejectReason::BadQuantity(quantity));
        }
        let mut order = order.clone();
        let loses_priority = new_price != order.price || quantity > order.quantity;
        order.leaves = quantity - order.filled;
        order.quantity = quantity;
        order.price = new_price;
        let mut quote = book.quote;
        let fills = match quote.as_mut() {
            Some(q) => self.take(&spec, q, &mut order, ts_ns),
            None => Vec::new(),
        };
        if let Some(book) = self.books.get_mut(&order.instrument) {
            book.quote = quote;
        }
        let working = order.is_working();
        self.orders.insert(id, order.clone());
        if !working {
            self.dequeue(id);
        } else if loses_priority {
            self.dequeue(id);
            self.enqueue(id);
        }
        Ok(Execution { fills, order })
    }

    /// Puts the order `id` at the back of its instrument's queue.
    fn enqueue(&mut self, id: OrderId) {
        let Some(order) = self.orders.get(&id) else {
            return;
        };
        if let Some(book) = self.books.get_mut(&order.instrument) {
            let seq = self.next_seq;
            self.next_seq += 1;
            book.resting.insert(seq, id);
            let limit = order.price.map(|price| (order.side, price));
            match limit {
                Some((Side::Buy, price)) => book.buys.insert((price, seq)),
                Some((Side::Sell, price)) => book.sells.insert((price, seq)),
                None => false,
            };
            self.queued.insert(id, Queued { seq, limit });
        }
    }

    /// Takes the order `id` out of its instrument's queue.
    fn dequeue(&mut self, id: OrderId) {
        let Some(Queued { seq, limit }) = self.queued.remove(&id) else {
            return;
        };
        if let Some(book) = self
            .orders
            .get(&id)
            .and_then(|o| self.books.get_mut(&o.instrument))
        {
            book.resting.remove(&seq);
            // Under the limit it was queued with (a replace may have changed
            // the order's since).
            match limit {
                Some((Side::Buy, price)) => book.buys.remove(&(price, seq)),
                Some((Side::Sell, price)) => book.sells.remove(&(price, seq)),
                None => false,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SYM: &str = "ESZ6";

    /// Prices at scale 2 (tick 0.25 = 25), quantities at scale 0.
    fn engine(config: EngineConfig) -> MatchingEngine {
        let mut e = MatchingEngine::new(config);
        e.add_instrument(InstrumentSpec::new(SYM, 2, 0, 25));
        e
    }

    fn quoted(config: EngineConfig) -> MatchingEngine {
        let mut e = engine(config);
        assert!(e.on_quote(SYM, 10_000, 10_025, 5, 7, 1).unwrap().is_empty());
        e
    }

    fn limit(side: Side, quantity: i64, price: i64, tif: TimeInForce) -> OrderRequest {
        OrderRequest {
            instrument: SYM.to_owned(),
            side,
            ord_type: OrdType::Limit,
            tif,
            quantity,
            price: Some(price),
        }
    }

    fn market(side: Side, quantity: i64) -> OrderRequest {
        OrderRequest {
            instrument: SYM.to_owned(),
            side,
            ord_type: OrdType::Market,
            tif: TimeInForce::Day,
            quantity,
            price: None,
        }
    }

    #[test]
    fn rejects_unknown_instrument_no_quote_and_bad_values() {
        let mut e = engine(EngineConfig::default());
        let mut req = market(Side::Buy, 1);
        req.instrument = "XXX".to_owned();
        assert_eq!(
            e.submit(req, 0),
            Err(RejectReason::UnknownInstrument("XXX".to_owned()))
        );
        assert_eq!(
            e.submit(market(Side::Buy, 1), 0),
            Err(RejectReason::NoQuote(SYM.to_owned()))
        );
        e.on_quote(SYM, 10_000, 10_025, 5, 7, 1).unwrap();
        assert_eq!(
            e.submit(market(Side::Buy, 0), 0),
            Err(RejectReason::BadQuantity(0))
        );
        assert_eq!(
            e.submit(limit(Side::Buy, 1, 10_010, TimeInForce::Day), 0),
            Err(RejectReason::BadPrice(Some(10_010)))
        );
        let mut no_price = limit(Side::Buy, 1, 0, TimeInForce::Day);
        no_price.price = None;
        assert_eq!(e.submit(no_price, 0), Err(RejectReason::BadPrice(None)));
        assert_eq!(
            e.on_quote(SYM, 10_050, 10_025, 1, 1, 2),
            Err(RejectReason::BadQuote)
        );
        assert_eq!(
            e.on_quote("XXX", 1, 2, 1, 1, 2),
            Err(RejectReason::UnknownInstrument("XXX".to_owned()))
        );
    }

    #[test]
    fn market_orders_fill_in_full_at_the_far_side_with_slippage() {
        let config = EngineConfig {
            slippage_ticks: 2,
            fees: FeeModel::PerUnit(150),
        };
        let mut e = quoted(config);
        let buy = e.submit(market(Side::Buy, 10), 5).unwrap();
        assert_eq!(buy.fills.len(), 1);
        assert_eq!(buy.fills[0].price, 10_025 + 50);
        assert_eq!(buy.fills[0].quantity, 10);
        assert_eq!(buy.fills[0].commission, 1_500);
        assert_eq!(buy.order.status, OrderStatus::Filled);
        assert_eq!(buy.order.avg_price(), 10_075);
        assert_eq!(e.quote(SYM).unwrap().ask_size, 0);
        let sell = e.submit(market(Side::Sell, 3), 6).unwrap();
        assert_eq!(sell.fills[0].price, 10_000 - 50);
        assert!(e.resting(SYM).is_empty());
    }

    #[test]
    fn marketable_limit_fills_up_to_the_quote_and_rests_then_fills_on_a_crossing_quote() {
        let mut e = quoted(EngineConfig {
            slippage_ticks: 0,
            fees: FeeModel::Bps(10),
        });
        let ex = e
            .submit(limit(Side::Buy, 10, 10_050, TimeInForce::Day), 5)
            .unwrap();
        assert_eq!(ex.fills.len(), 1);
        assert_eq!((ex.fills[0].price, ex.fills[0].quantity), (10_025, 7));
        // 10 bps of 100.25 * 7 = 0.70175 -> 70 hundredths.
        assert_eq!(ex.fills[0].commission, 70);
        assert_eq!(ex.order.status, OrderStatus::PartiallyFilled);
        assert_eq!((ex.order.filled, ex.order.leaves), (7, 3));
        assert_eq!(e.resting(SYM), vec![ex.order.id]);
        // A quote that does not cross leaves it alone.
        assert!(e.on_quote(SYM, 10_050, 10_075, 5, 5, 6).unwrap().is_empty());
        // A crossing quote fills the rest at the limit price, up to its size.
        let fills = e.on_quote(SYM, 10_000, 10_050, 5, 2, 7).unwrap();
        assert_eq!(fills.len(), 1);
        assert_eq!(
            (fills[0].price, fills[0].quantity, fills[0].ts_ns),
            (10_050, 2, 7)
        );
        let fills = e.on_quote(SYM, 10_000, 10_025, 5, 9, 8).unwrap();
        assert_eq!((fills[0].price, fills[0].quantity), (10_050, 1));
        let order = e.order(ex.order.id).unwrap();
        assert_eq!(order.status, OrderStatus::Filled);
        assert_eq!(order.avg_price(), (10_025 * 7 + 10_050 * 3 + 5) / 10);
        assert!(e.resting(SYM).is_empty());
        assert_eq!(e.quote(SYM).unwrap().ask_size, 8);
    }

    #[test]
    fn resting_orders_fill_in_time_priority_and_share_the_quote() {
        let mut e = quoted(EngineConfig::default());
        let a = e
            .submit(limit(Side::Sell, 4, 10_100, TimeInForce::Gtc), 1)
            .unwrap();
        let b = e
            .submit(limit(Side::Sell, 4, 10_075, TimeInForce::Day), 2)
            .unwrap();
        assert!(a.fills.is_empty() && b.fills.is_empty());
        assert_eq!(e.resting(SYM), vec![a.order.id, b.order.id]);
        let fills = e.on_quote(SYM, 10_100, 10_125, 6, 1, 3).unwrap();
        assert_eq!(fills.len(), 2);
        assert_eq!(
            (fills[0].order_id, fills[0].quantity, fills[0].price),
            (a.order.id, 4, 10_100)
        );
        assert_eq!(
            (fills[1].order_id, fills[1].quantity, fills[1].price),
            (b.order.id, 2, 10_075)
        );
        assert_eq!(e.resting(SYM), vec![b.order.id]);
    }

    #[test]
    fn ioc_and_fok() {
        let mut e = quoted(EngineConfig::default());
        let ioc = e
            .submit(limit(Side::Buy, 10, 10_025, TimeInForce::Ioc), 1)
            .unwrap();
        assert_eq!(ioc.fills[0].quantity, 7);
        assert_eq!(ioc.order.status, OrderStatus::Canceled);
        assert_eq!((ioc.order.filled, ioc.order.leaves), (7, 0));
        let fok = e
            .submit(limit(Side::Sell, 6, 10_000, TimeInForce::Fok), 2)
            .unwrap();
        assert!(fok.fills.is_empty());
        assert_eq!(fok.order.status, OrderStatus::Canceled);
        let fok = e
            .submit(limit(Side::Sell, 5, 10_000, TimeInForce::Fok), 3)
            .unwrap();
        assert_eq!(fok.fills[0].quantity, 5);
        assert_eq!(fok.order.status, OrderStatus::Filled);
        let ioc = e
            .submit(limit(Side::Sell, 5, 9_000, TimeInForce::Ioc), 4)
            .unwrap();
        assert!(ioc.fills.is_empty());
        assert_eq!(ioc.order.status, OrderStatus::Canceled);
        assert!(e.resting(SYM).is_empty());
    }

    #[test]
    fn cancel_and_replace() {
        let mut e = quoted(EngineConfig::default());
        let a = e
            .submit(limit(Side::Buy, 5, 9_900, TimeInForce::Day), 1)
            .unwrap();
        let b = e
            .submit(limit(Side::Buy, 5, 9_900, TimeInForce::Day), 2)
            .unwrap();
        // Shrinking keeps the priority; a new price loses it.
        let r = e.replace(a.order.id, 3, Some(9_900), 3).unwrap();
        assert!(r.fills.is_empty());
        assert_eq!((r.order.quantity, r.order.leaves), (3, 3));
        assert_eq!(e.resting(SYM), vec![a.order.id, b.order.id]);
        e.replace(a.order.id, 3, Some(9_875), 4).unwrap();
        assert_eq!(e.resting(SYM), vec![b.order.id, a.order.id]);
        assert_eq!(
            e.replace(a.order.id, 0, Some(9_875), 5),
            Err(RejectReason::BadQuantity(0))
        );
        assert_eq!(
            e.replace(a.order.id, 3, Some(9_876), 5),
            Err(RejectReason::BadPrice(Some(9_876)))
        );
        // A marketable replace fills at once.
        let r = e.replace(b.order.id, 5, Some(10_025), 6).unwrap();
        assert_eq!((r.fills[0].price, r.fills[0].quantity), (10_025, 5));
        assert_eq!(r.order.status, OrderStatus::Filled);
        assert_eq!(e.resting(SYM), vec![a.order.id]);
        assert_eq!(
            e.cancel(b.order.id),
            Err(RejectReason::NotWorking(b.order.id))
        );
        let c = e.cancel(a.order.id).unwrap();
        assert_eq!((c.status, c.leaves), (OrderStatus::Canceled, 0));
        assert!(e.resting(SYM).is_empty());
        assert_eq!(e.cancel(99), Err(RejectReason::UnknownOrder(99)));
        let m = e.submit(market(Side::Buy, 1), 7).unwrap();
        assert_eq!(
            e.replace(m.order.id, 2, None, 8),
            Err(RejectReason::NotWorking(m.order.id))
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Quote(i64, i64, i64, i64),
        Submit(bool, bool, u8, i64, i64),
        Cancel(u64),
        Replace(u64, i64, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (90i64..110, 0i64..4, 0i64..20, 0i64..20).prop_map(|(b, w, bs, as_)| Op::Quote(
                b * 25,
                (b + w) * 25,
                bs,
                as_
            )),
            (any::<bool>(), any::<bool>(), 0u8..4, -1i64..30, 88i64..112)
                .prop_map(|(buy, mkt, tif, q, p)| Op::Submit(buy, mkt, tif, q, p * 25)),
            (1u64..40).prop_map(Op::Cancel),
            (1u64..40, -1i64..30, 88i64..112).prop_map(|(id, q, p)| Op::Replace(id, q, p * 25)),
        ]
    }

    proptest! {
        /// Whatever happens: filled + leaves == quantity while working, fills never
        /// beat the quote they were made against, never exceed its size, and fees
        /// are charged per unit.
        #[test]
        fn invariants_hold(ops in proptest::collection::vec(op(), 1..80), slip in 0i64..3) {
            let mut e = engine(EngineConfig { slippage_ticks: slip, fees: FeeModel::PerUnit(1) });
            let mut ts = 0;
            for op in ops {
                ts += 1;
                let before = e.quote(SYM);
                let fills = match op {
                    Op::Quote(bid, ask, bs, as_) => {
                        let fills = e.on_quote(SYM, bid, ask, bs, as_, ts).unwrap();
                        let mut taken_bid = 0;
                        let mut taken_ask = 0;
                        for f in &fills {
                            let o = e.order(f.order_id).unwrap();
                            let limit = o.price.unwrap();
                            prop_assert_eq!(f.price, limit);
                            match o.side {
                                Side::Buy => { prop_assert!(f.price >= ask); taken_ask += f.quantity; }
                                Side::Sell => { prop_assert!(f.price <= bid); taken_bid += f.quantity; }
                            }
                        }
                        prop_assert!(taken_bid <= bs && taken_ask <= as_);
                        fills
                    }
                    Op::Submit(buy, mkt, tif, q, p) => {
                        let req = OrderRequest {
                            instrument: SYM.to_owned(),
                            side: if buy { Side::Buy } else { Side::Sell },
                            ord_type: if mkt { OrdType::Market } else { OrdType::Limit },
                            tif: [TimeInForce::Day, TimeInForce::Gtc, TimeInForce::Ioc, TimeInForce::Fok][usize::from(tif)],
                            quantity: q,
                            price: Some(p),
                        };
                        match e.submit(req.clone(), ts) {
                            Ok(ex) => {
                                let quote = before.unwrap();
                                for f in &ex.fills {
                                    match req.side {
                                        Side::Buy => prop_assert!(f.price >= quote.ask),
                                        Side::Sell => prop_assert!(f.price <= quote.bid),
                                    }
                                    if !mkt {
                                        match req.side {
                                            Side::Buy => prop_assert!(f.price <= p),
                                            Side::Sell => prop_assert!(f.price >= p),
                                        }
                                        let size = if buy { quote.ask_size } else { quote.bid_size };
                                        prop_assert!(f.quantity <= size);
                                    }
                                }
                                if req.tif == TimeInForce::Fok {
                                    prop_assert!(ex.order.status == OrderStatus::Filled || ex.fills.is_empty());
                                }
                                if matches!(req.tif, TimeInForce::Ioc | TimeInForce::Fok) || mkt {
                                    prop_assert!(!ex.order.is_working());
                                }
                                ex.fills
                            }
                            Err(_) => {
                                prop_assert!(before.is_none() || q <= 0);
                                Vec::new()
                            }
                        }
                    }
                    Op::Cancel(id) => {
                        if let Ok(o) = e.cancel(id) {
                            prop_assert_eq!(o.status, OrderStatus::Canceled);
                        }
                        Vec::new()
                    }
                    Op::Replace(id, q, p) => e.replace(id, q, Some(p), ts).map(|x| x.fills).unwrap_or_default(),
                };
                for f in &fills {
                    prop_assert!(f.quantity > 0);
                    prop_assert_eq!(f.commission, f.quantity);
                }
                let resting = e.resting(SYM);
                // The price index holds exactly the resting limit orders, each
                // under its current side and limit: the range a quote takes is
                // then the orders a scan of the whole queue would fill.
                let book = &e.books[SYM];
                let mut indexed: Vec<(Side, i64, u64)> = book.buys.iter().map(|&(p, s)| (Side::Buy, p, s))
                    .chain(book.sells.iter().map(|&(p, s)| (Side::Sell, p, s)))
                    .collect();
                indexed.sort_by_key(|&(_, _, seq)| seq);
                let expected: Vec<(Side, i64, u64)> = book.resting.iter()
                    .filter_map(|(&seq, id)| e.orders.get(id).and_then(|o| o.price.map(|p| (o.side, p, seq))))
                    .collect();
                prop_assert_eq!(indexed, expected);
                for id in 1..=40 {
                    if let Some(o) = e.order(id) {
                        prop_assert!(o.filled >= 0 && o.leaves >= 0 && o.filled <= o.quantity);
                        if o.is_working() {
                            prop_assert_eq!(o.filled + o.leaves, o.quantity);
                            prop_assert!(resting.contains(&id));
                        } else {
                            prop_assert!(!resting.contains(&id));
                            prop_assert_eq!(o.leaves, 0);
                        }
                        if o.status == OrderStatus::Filled {
                            prop_assert_eq!(o.filled, o.quantity);
                        }
                        prop_assert_eq!(o.commission, o.filled);
                    }
                }
                if let Some(q) = e.quote(SYM) {
                    prop_assert!(q.bid_size >= 0 && q.ask_size >= 0);
                }
            }
        }
    }
}
