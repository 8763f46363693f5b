//! The order manager: orders and their ClOrdID chains, execution reports,
//! positions, pre-trade checks and the kill switch.

use nexus_collections::{FastHashMap, ShardedMap, ShardedSet};

use thiserror::Error;

use crate::position::{FillSide, Position};
use crate::risk::{RiskCheck, RiskEngine, RiskLimits, RiskReject};
use crate::state::{transition, ExecEvent, OrderStatus, TransitionError};

/// Buy or sell.
pub type Side = FillSide;

/// Market or limit.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderType {
    /// At the best available price.
    Market,
    /// At the limit price or better.
    Limit,
}

/// A request to place an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The caller's ClOrdID; unique.
    pub client_order_id: String,
    /// Instrument key.
    pub instrument: String,
    /// Buy or sell.
    pub side: Side,
    /// Market or limit.
    pub order_type: OrderType,
    /// Quantity mantissa; positive.
    pub quantity: i64,
    /// Limit price mantissa, for limit orders.
    pub limit_price: Option<i64>,
    /// When it is placed, ns.
    pub now_ns: i64,
}

/// A cancel or replace sent and not yet answered.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingChange {
    /// A cancel under this ClOrdID.
    Cancel(String),
    /// A replace under this ClOrdID, to this quantity and limit price.
    Replace(String, i64, Option<i64>),
}

/// An order and its state.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Nexus's id, stable across the ClOrdID chain.
    pub order_id: u64,
    /// Every ClOrdID of the chain, oldest first; the last is current.
    pub chain: Vec<String>,
    /// Instrument key.
    pub instrument: String,
    /// Buy or sell.
    pub side: Side,
    /// Market or limit.
    pub order_type: OrderType,
    /// Total quantity.
    pub quantity: i64,
    /// Limit price.
    pub limit_price: Option<i64>,
    /// Status.
    pub status: OrderStatus,
    /// Quantity filled.
    pub filled: i64,
    /// Sum of fill quantity x price, for the average price.
    pub filled_cost: i128,
    /// A cancel or replace in flight.
    pub pending: Option<PendingChange>,
    /// Why it was refused, by a risk check or the venue.
    pub reject: Option<String>,
    /// The risk check that refused it, if one did.
    pub risk_reject: Option<RiskReject>,
}

impl Order {
    /// The current ClOrdID.
    #[must_use]
    pub fn client_order_id(&self) -> &str {
        self.chain.last().map_or("", String::as_str)
    }

    /// Quantity still working.
    #[must_use]
    pub fn leaves(&self) -> i64 {
        if self.status.is_terminal() {
            0
        } else {
            self.quantity - self.filled
        }
    }

    /// Average fill price (truncated), None before the first fill.
    #[must_use]
    pub fn average_price(&self) -> Option<i64> {
        (self.filled > 0)
            .then(|| i64::try_from(self.filled_cost / i128::from(self.filled)).ok())
            .flatten()
    }

    fn is_open(&self) -> bool {
        !self.status.is_terminal()
    }
}

/// What a venue's execution report says.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecKind {
    /// Acknowledged.
    New,
    /// A fill of `quantity` at `price`.
    Trade {
        /// Fill quantity mantissa.
        quantity: i64,
        /// Fill price mantissa.
        price: i64,
    },
    /// Cancelled.
    Canceled,
    /// Replaced: the pending replace took effect.
    Replaced,
    /// Rejected by the venue.
    Rejected(String),
    /// Expired.
    Expired,
    /// The pending cancel or replace was refused (OrderCancelReject).
    CancelRejected(String),
    /// The venue does not know the order (its answer to an order status
    /// request, e.g. after a restart): an order it never acknowledged becomes
    /// Rejected, a working one Canceled; a change in flight is dropped and the
    /// text is kept as the order's reason.
    Lost(String),
}

/// An execution report, as the FIX layer hands it over.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionReport {
    /// ClOrdID (11) the report is about.
    pub client_order_id: String,
    /// ExecID (17); reports with a seen ExecID are ignored (resends).
    pub exec_id: String,
    /// What happened.
    pub kind: ExecKind,
}

/// Why the manager could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManagerError {
    /// The ClOrdID was used before.
    #[error("ClOrdID {0:?} is already in use")]
    DuplicateClientOrderId(String),
    /// No order has that id or ClOrdID.
    #[error("no order {0:?}")]
    UnknownOrder(String),
    /// The order is closed or has a change in flight.
    #[error("order {order:?} cannot be changed: {why}")]
    NotChangeable {
        /// The order's current ClOrdID.
        order: String,
        /// Why.
        why: String,
    },
    /// The request itself is invalid.
    #[error("invalid order: {0}")]
    Invalid(String),
    /// The report does not fit the order's state.
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// Everything the order manager must keep across a restart: what
/// [`OrderManager::state`] returns and [`OrderManager::restore_state`] takes.
/// The risk engine's memory of recent orders (throttle, duplicate guard) and
/// last prices are not part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ManagerState {
    /// Every order, in id order.
    pub orders: Vec<Order>,
    /// Every non-default position, by instrument, sorted.
    pub positions: Vec<(String, Position)>,
    /// Every ExecID applied, sorted (resends of them are ignored).
    pub exec_ids: Vec<String>,
    /// The id the next order gets.
    pub next_id: u64,
    /// Whether the kill switch is engaged.
    pub kill_switch: bool,
}

/// Orders, positions and the pre-trade risk engine of one trading account.
#[derive(Debug, Default)]
pub struct OrderManager {
    // Sharded: these grow with every order and report of the day, and a plain
    // map's growth stalls one insert for tens of milliseconds at 100k entries.
    orders: ShardedMap<u64, Order>,
    by_client_id: ShardedMap<String, u64>,
    exec_ids: ShardedSet<String>,
    positions: FastHashMap<String, Position>,
    /// Leaves quantity of the open orders, per instrument: buys, sells.
    working: FastHashMap<String, [i64; 2]>,
    risk: RiskEngine,
    next_id: u64,
}

/// The index of `side` in a per-side pair: buys 0, sells 1.
fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

/// Adds `delta` to the quantity working on `side` of `instrument` (a key is
/// allocated only for an instrument's first order).
fn add_working(
    working: &mut FastHashMap<String, [i64; 2]>,
    instrument: &str,
    side: Side,
    delta: i64,
) {
    if let Some(w) = working.get_mut(instrument) {
        w[side_index(side)] += delta;
        return;
    }
    let mut w = [0; 2];
    w[side_index(side)] = delta;
    working.insert(instrument.to_owned(), w);
}

impl OrderManager {
    /// Returns a manager whose instruments default to `limits`.
    #[must_use]
    pub fn new(limits: RiskLimits) -> Self {
        Self {
            risk: RiskEngine::new(limits),
            next_id: 1,
            ..Self::default()
        }
    }

    /// The risk engine, to set limits and last prices.
    pub fn risk_mut(&mut self) -> &mut RiskEngine {
        &mut self.risk
    }

    /// Returns an order by Nexus id.
    #[must_use]
    pub fn order(&self, order_id: u64) -> Option<&Order> {
        self.orders.get(&order_id)
    }

    /// Returns the order any ClOrdID of whose chain is `client_order_id`.
    #[must_use]
    pub fn order_by_client_id(&self, client_order_id: &str) -> Option<&Order> {
        self.by_client_id
            .get(client_order_id)
            .and_then(|id| self.orders.get(id))
    }

    /// Returns the position of an instrument (flat when none).
    #[must_use]
    pub fn position(&self, instrument: &str) -> Position {
        self.positions.get(instrument).copied().unwrap_or_default()
    }

    /// Every order, in id order.
    #[must_use]
    pub fn orders(&self) -> Vec<&Order> {
        let mut all: Vec<&Order> = self.orders.values().collect();
        all.sort_by_key(|o| o.order_id);
        all
    }

    /// Whether a report with this ExecID has been applied.
    #[must_use]
    pub fn knows_exec_id(&self, exec_id: &str) -> bool {
        self.exec_ids.contains(exec_id)
    }

    /// Returns the state to keep across a restart (see [`ManagerState`]).
    #[must_use]
    pub fn state(&self) -> ManagerState {
        let mut positions: Vec<(String, Position)> = self
            .positions
            .iter()
            .filter(|(_, p)| **p != Position::default())
            .map(|(k, p)| (k.clone(), *p))
            .collect();
        positions.sort_by(|a, b| a.0.cmp(&b.0));
        let mut exec_ids: Vec<String> = self.exec_ids.iter().cloned().collect();
        exec_ids.sort_unstable();
        ManagerState {
            orders: self.orders().into_iter().cloned().collect(),
            positions,
            exec_ids,
            next_id: self.next_id,
            kill_switch: self.risk.kill_switch(),
        }
    }

    /// Replaces the orders, positions, applied ExecIDs and kill switch with
    /// `state` (risk limits stay as they are).
    ///
    /// # Errors
    /// [`ManagerError::Invalid`] when the state contradicts itself (an order
    /// id or ClOrdID twice, an id not below `next_id`); the manager is then
    /// left empty.
    pub fn restore_state(&mut self, state: ManagerState) -> Result<(), ManagerError> {
        self.clear();
        self.positions = state.positions.into_iter().collect();
        self.exec_ids = state.exec_ids.into_iter().collect();
        self.next_id = state.next_id.max(1);
        self.risk.set_kill_switch(state.kill_switch);
        for order in state.orders {
            let checked = if order.order_id >= state.next_id {
                Err(ManagerError::Invalid(format!(
                    "order id {} is not below the next id {}",
                    order.order_id, state.next_id
                )))
            } else {
                self.restore_order(order)
            };
            if let Err(e) = checked {
                self.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.orders.clear();
        self.by_client_id.clear();
        self.working.clear();
        self.positions.clear();
        self.exec_ids.clear();
        self.next_id = 1;
    }

    /// Records an order as it is, without the pre-trade checks: an order the
    /// manager accepted or refused before a restart (as [`Self::submit`]
    /// returned it). The next order id moves past it.
    ///
    /// # Errors
    /// [`ManagerError::Invalid`] when its id or one of its ClOrdIDs is taken.
    pub fn restore_order(&mut self, order: Order) -> Result<(), ManagerError> {
        if self.orders.contains_key(&order.order_id) {
            return Err(ManagerError::Invalid(format!(
                "order id {} restored twice",
                order.order_id
            )));
        }
        let pending = match &order.pending {
            Some(PendingChange::Cancel(id) | PendingChange::Replace(id, _, _)) => Some(id),
            None => None,
        };
        let ids: Vec<&String> = order.chain.iter().chain(pending).collect();
        if let Some(taken) = ids
            .iter()
            .find(|id| self.by_client_id.contains_key(id.as_str()))
        {
            return Err(ManagerError::Invalid(format!(
                "ClOrdID {taken:?} restored twice"
            )));
        }
        for id in ids {
            self.by_client_id.insert(id.clone(), order.order_id);
        }
        add_working(
            &mut self.working,
            &order.instrument,
            order.side,
            order.leaves(),
        );
        self.next_id = self.next_id.max(order.order_id + 1);
        self.orders.insert(order.order_id, order);
        Ok(())
    }

    /// Quantity still working on one side of an instrument: a running total
    /// kept by `submit` and `on_execution_report`, so the check costs the
    /// same with ten open orders as with a hundred thousand.
    fn working_same_side(&self, instrument: &str, side: Side) -> i64 {
        self.working
            .get(instrument)
            .map_or(0, |w| w[side_index(side)])
    }

    /// Checks and records a new order. A refused order is recorded too, with
    /// status Rejected and its reason, and returned: the caller sends only
    /// orders whose status is PendingNew.
    ///
    /// # Errors
    /// Returns [`ManagerError::DuplicateClientOrderId`] for a reused ClOrdID
    /// and [`ManagerError::Invalid`] for a non-positive quantity or a limit
    /// order without a price.
    pub fn submit(&mut self, new: NewOrder) -> Result<&Order, ManagerError> {
        if self.by_client_id.contains_key(&new.client_order_id) {
            return Err(ManagerError::DuplicateClientOrderId(new.client_order_id));
        }
        if new.quantity <= 0 {
            return Err(ManagerError::Invalid(format!(
                "quantity must be positive, got {}",
                new.quantity
            )));
        }
        if (new.order_type == OrderType::Limit) != new.limit_price.is_some() {
            return Err(ManagerError::Invalid(
                "a limit order needs a limit price and a market order has none".into(),
            ));
        }
        let check = RiskCheck {
            instrument: &new.instrument,
            side: new.side,
            quantity: new.quantity,
            limit_price: new.limit_price,
            position: self.position(&new.instrument).quantity,
            working_same_side: self.working_same_side(&new.instrument, new.side),
            now_ns: new.now_ns,
        };
        let verdict = self.risk.check(&check);
        let order_id = self.next_id;
        self.next_id += 1;
        let order = Order {
            order_id,
            chain: vec![new.client_order_id.clone()],
            instrument: new.instrument,
            side: new.side,
            order_type: new.order_type,
            quantity: new.quantity,
            limit_price: new.limit_price,
            status: if verdict.is_ok() {
                OrderStatus::PendingNew
            } else {
                OrderStatus::Rejected
            },
            filled: 0,
            filled_cost: 0,
            pending: None,
            reject: verdict.as_ref().err().map(ToString::to_string),
            risk_reject: verdict.err(),
        };
        self.by_client_id.insert(new.client_order_id, order_id);
        add_working(
            &mut self.working,
            &order.instrument,
            order.side,
            order.leaves(),
        );
        Ok(self.orders.entry(order_id).or_insert(order))
    }

    fn changeable(
        &mut self,
        order_id: u64,
        new_client_id: &str,
    ) -> Result<&mut Order, ManagerError> {
        if self.by_client_id.contains_key(new_client_id) {
            return Err(ManagerError::DuplicateClientOrderId(
                new_client_id.to_owned(),
            ));
        }
        let order = self
            .orders
            .get_mut(&order_id)
            .ok_or_else(|| ManagerError::UnknownOrder(order_id.to_string()))?;
        let why = if order.status.is_terminal() {
            Some(format!("it is {:?}", order.status))
        } else if order.pending.is_some() {
            Some("a cancel or replace is already in flight".to_owned())
        } else {
            None
        };
        match why {
            Some(why) => Err(ManagerError::NotChangeable {
                order: order.client_order_id().to_owned(),
                why,
            }),
            None => Ok(order),
        }
    }

    /// Records a cancel request under `new_client_id` (OrigClOrdID is the
    /// current one); the caller sends the OrderCancelRequest.
    ///
    /// # Errors
    /// Unknown order, closed order, a change already in flight, or a reused ClOrdID.
    pub fn cancel(&mut self, order_id: u64, new_client_id: &str) -> Result<&Order, ManagerError> {
        let order = self.changeable(order_id, new_client_id)?;
        order.pending = Some(PendingChange::Cancel(new_client_id.to_owned()));
        self.by_client_id.insert(new_client_id.to_owned(), order_id);
        self.orders
            .get(&order_id)
            .ok_or_else(|| ManagerError::UnknownOrder(order_id.to_string()))
    }

    /// Records a cancel/replace request to `quantity` and `limit_price`.
    /// The new quantity must exceed what has filled; the new order passes the
    /// quantity, notional and collar checks again.
    ///
    /// # Errors
    /// As for [`Self::cancel`], plus an invalid quantity.
    pub fn replace(
        &mut self,
        order_id: u64,
        new_client_id: &str,
        quantity: i64,
        limit_price: Option<i64>,
    ) -> Result<&Order, ManagerError> {
        let order = self.changeable(order_id, new_client_id)?;
        if quantity <= order.filled {
            return Err(ManagerError::Invalid(format!(
                "new quantity {quantity} must exceed the filled {}",
                order.filled
            )));
        }
        order.pending = Some(PendingChange::Replace(
            new_client_id.to_owned(),
            quantity,
            limit_price,
        ));
        self.by_client_id.insert(new_client_id.to_owned(), order_id);
        self.orders
            .get(&order_id)
            .ok_or_else(|| ManagerError::UnknownOrder(order_id.to_string()))
    }

    /// Applies an execution report. Returns false for a report already seen
    /// (same ExecID), which changes nothing.
    ///
    /// # Errors
    /// [`ManagerError::UnknownOrder`] for a ClOrdID no order has (the caller
    /// must keep such a report, never drop it), or a transition error for a
    /// report that does not fit the order's state.
    pub fn on_execution_report(&mut self, report: &ExecutionReport) -> Result<bool, ManagerError> {
        if self.exec_ids.contains(&report.exec_id) {
            return Ok(false);
        }
        let order_id = *self
            .by_client_id
            .get(&report.client_order_id)
            .ok_or_else(|| ManagerError::UnknownOrder(report.client_order_id.clone()))?;
        let before = self
            .orders
            .get(&order_id)
            .map(Order::leaves)
            .ok_or_else(|| ManagerError::UnknownOrder(report.client_order_id.clone()))?;
        let applied = self.apply_report(order_id, report);
        if let Some(order) = self.orders.get(&order_id) {
            let change = order.leaves() - before;
            add_working(&mut self.working, &order.instrument, order.side, change);
        }
        applied?;
        self.exec_ids.insert(report.exec_id.clone());
        Ok(true)
    }

    fn apply_report(
        &mut self,
        order_id: u64,
        report: &ExecutionReport,
    ) -> Result<(), ManagerError> {
        let order = self
            .orders
            .get_mut(&order_id)
            .ok_or_else(|| ManagerError::UnknownOrder(report.client_order_id.clone()))?;
        match &report.kind {
            ExecKind::New => order.status = transition(order.status, ExecEvent::New)?,
            ExecKind::Trade { quantity, price } => {
                let complete = order.filled + quantity >= order.quantity;
                order.status = transition(order.status, ExecEvent::Trade { complete })?;
                order.filled += quantity;
                order.filled_cost += i128::from(*quantity) * i128::from(*price);
                // The key is allocated only for an instrument's first fill.
                if let Some(position) = self.positions.get_mut(&order.instrument) {
                    position.apply_fill(order.side, *quantity, *price);
                } else {
                    let mut position = Position::default();
                    position.apply_fill(order.side, *quantity, *price);
                    self.positions.insert(order.instrument.clone(), position);
                }
            }
            ExecKind::Canceled => {
                order.status = transition(order.status, ExecEvent::Canceled)?;
                if let Some(PendingChange::Cancel(id)) = order.pending.take() {
                    order.chain.push(id);
                }
            }
            ExecKind::Replaced => match order.pending.take() {
                Some(PendingChange::Replace(id, quantity, price)) => {
                    order.chain.push(id);
                    order.quantity = quantity;
                    order.limit_price = price;
                }
                other => {
                    order.pending = other;
                    return Err(TransitionError {
                        from: order.status,
                        event: ExecEvent::Replaced,
                    }
                    .into());
                }
            },
            ExecKind::Rejected(text) => {
                order.status = transition(order.status, ExecEvent::Rejected)?;
                order.reject = Some(text.clone());
            }
            ExecKind::Expired => order.status = transition(order.status, ExecEvent::Expired)?,
            ExecKind::CancelRejected(text) => {
                order.pending = None;
                order.reject = Some(text.clone());
            }
            ExecKind::Lost(text) => {
                let event = if order.status == OrderStatus::PendingNew {
                    ExecEvent::Rejected
                } else {
                    ExecEvent::Canceled
                };
                order.status = transition(order.status, event)?;
                order.pending = None;
                order.reject = Some(text.clone());
            }
        }
        Ok(())
    }

    /// Engages or releases the kill switch. Engaging returns the ids of the
    /// open orders, for which the caller sends cancels.
    pub fn set_kill_switch(&mut self, engaged: bool) -> Vec<u64> {
        self.risk.set_kill_switch(engaged);
        if !engaged {
            return Vec::new();
        }
        let mut open: Vec<u64> = self
            .orders
            .values()
            .filter(|o| o.is_open() && !matches!(o.pending, Some(PendingChange::Cancel(_))))
            .map(|o| o.order_id)
            .collect();
        open.sort_unstable();
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::RiskReason;

    fn limit(id: &str, side: Side, quantity: i64, price: i64) -> NewOrder {
        NewOrder {
            client_order_id: id.into(),
            instrument: "EURUSD".into(),
            side,
            order_type: OrderType::Limit,
            quantity,
            limit_price: Some(price),
            now_ns: 0,
        }
    }

    fn report(id: &str, exec_id: &str, kind: ExecKind) -> ExecutionReport {
        ExecutionReport {
            client_order_id: id.into(),
            exec_id: exec_id.into(),
            kind,
        }
    }

    #[test]
    fn fills_update_the_order_and_the_position() {
        let mut m = OrderManager::new(RiskLimits::default());
        let id = m
            .submit(limit("A", Side::Buy, 100, 110_000))
            .expect("ok")
            .order_id;
        assert!(m
            .on_execution_report(&report("A", "e1", ExecKind::New))
            .expect("fits"));
        m.on_execution_report(&report(
            "A",
            "e2",
            ExecKind::Trade {
                quantity: 40,
                price: 110_000,
            },
        ))
        .expect("fits");
        m.on_execution_report(&report(
            "A",
            "e3",
            ExecKind::Trade {
                quantity: 60,
                price: 110_010,
            },
        ))
        .expect("fits");
        let order = m.order(id).expect("exists");
        assert_eq!(order.status, OrderStatus::Filled);
        assert_eq!(order.average_price(), Some(110_006));
        assert_eq!(order.leaves(), 0);
        assert_eq!(m.position("EURUSD").quantity, 100);
        // A resent report (same ExecID) changes nothing.
        assert!(!m
            .on_execution_report(&report(
                "A",
                "e3",
                ExecKind::Trade {
                    quantity: 60,
                    price: 110_010
                }
            ))
            .expect("ignored"));
        assert_eq!(m.position("EURUSD").quantity, 100);
    }

    #[test]
    fn cancel_replace_chain() {
        let mut m = OrderManager::new(RiskLimits::default());
        let id = m
            .submit(limit("A", Side::Sell, 100, 110_000))
            .expect("ok")
            .order_id;
        m.on_execution_report(&report("A", "e1", ExecKind::New))
            .expect("fits");
        m.replace(id, "B", 150, Some(110_020))
            .expect("replace sent");
        assert!(matches!(
            m.cancel(id, "C"),
            Err(ManagerError::NotChangeable { .. })
        ));
        m.on_execution_report(&report("B", "e2", ExecKind::Replaced))
            .expect("fits");
        let order = m.order(id).expect("exists");
        assert_eq!(order.chain, vec!["A".to_string(), "B".to_string()]);
        assert_eq!((order.quantity, order.limit_price), (150, Some(110_020)));
        m.cancel(id, "C").expect("cancel sent");
        m.on_execution_report(&report("C", "e3", ExecKind::Canceled))
            .expect("fits");
        let order = m
            .order_by_client_id("A")
            .expect("any id of the chain finds it");
        assert_eq!(order.status, OrderStatus::Canceled);
        assert_eq!(order.client_order_id(), "C");
        assert!(matches!(
            m.cancel(id, "D"),
            Err(ManagerError::NotChangeable { .. })
        ));
    }

    #[test]
    fn cancel_reject_clears_the_pending_change() {
        let mut m = OrderManager::new(RiskLimits::default());
        let id = m
            .submit(limit("A", Side::Buy, 10, 100))
            .expect("ok")
            .order_id;
        m.on_execution_report(&report("A", "e1", ExecKind::New))
            .expect("fits");
        m.cancel(id, "B").expect("sent");
        m.on_execution_report(&report(
            "B",
            "e2",
            ExecKind::CancelRejected("too late".into()),
        ))
        .expect("fits");
        let order = m.order(id).expect("exists");
        assert_eq!(
            (order.status, order.pending.clone()),
            (OrderStatus::New, None)
        );
        m.cancel(id, "C").expect("can try again");
    }

    #[test]
    fn risk_refusals_are_recorded_with_their_reason() {
        let mut m = OrderManager::new(RiskLimits {
            max_position: 150,
            ..RiskLimits::default()
        });
        m.submit(limit("A", Side::Buy, 100, 100)).expect("ok");
        // 100 working + 100 more would exceed 150.
        let refused = m.submit(limit("B", Side::Buy, 100, 100)).expect("recorded");
        assert_eq!(refused.status, OrderStatus::Rejected);
        assert_eq!(
            refused.risk_reject.as_ref().map(|r| r.reason),
            Some(RiskReason::PositionLimit)
        );
        assert!(matches!(
            m.submit(limit("A", Side::Buy, 1, 100)),
            Err(ManagerError::DuplicateClientOrderId(_))
        ));
    }

    #[test]
    fn kill_switch_blocks_and_lists_open_orders() {
        let mut m = OrderManager::new(RiskLimits::default());
        let a = m
            .submit(limit("A", Side::Buy, 10, 100))
            .expect("ok")
            .order_id;
        let b = m
            .submit(limit("B", Side::Sell, 10, 101))
            .expect("ok")
            .order_id;
        m.on_execution_report(&report(
            "B",
            "e1",
            ExecKind::Trade {
                quantity: 10,
                price: 101,
            },
        ))
        .expect("fits");
        assert_eq!(m.set_kill_switch(true), vec![a]);
        let blocked = m.submit(limit("C", Side::Buy, 1, 100)).expect("recorded");
        assert_eq!(
            blocked.risk_reject.as_ref().map(|r| r.reason),
            Some(RiskReason::KillSwitch)
        );
        assert_eq!(m.order(b).map(|o| o.status), Some(OrderStatus::Filled));
        m.set_kill_switch(false);
        let allowed = m.submit(limit("D", Side::Buy, 1, 100)).expect("ok");
        assert_eq!(allowed.status, OrderStatus::PendingNew);
    }

    fn naive_working(m: &OrderManager, instrument: &str, side: Side) -> i64 {
        m.orders()
            .iter()
            .filter(|o| o.instrument == instrument && o.side == side && o.is_open())
            .map(|o| o.leaves())
            .sum()
    }

    #[test]
    fn running_working_total_equals_the_naive_sum() {
        let mut m = OrderManager::new(RiskLimits::default());
        let check = |m: &OrderManager| {
            for side in [Side::Buy, Side::Sell] {
                assert_eq!(
                    m.working_same_side("EURUSD", side),
                    naive_working(m, "EURUSD", side)
                );
            }
        };
        let a = m
            .submit(limit("A", Side::Buy, 100, 10))
            .expect("ok")
            .order_id;
        let b = m
            .submit(limit("B", Side::Buy, 50, 10))
            .expect("ok")
            .order_id;
        m.submit(limit("C", Side::Sell, 70, 11)).expect("ok");
        check(&m);
        m.on_execution_report(&report("A", "e1", ExecKind::New))
            .expect("fits");
        m.on_execution_report(&report(
            "A",
            "e2",
            ExecKind::Trade {
                quantity: 30,
                price: 10,
            },
        ))
        .expect("fits");
        check(&m);
        m.replace(a, "A2", 120, Some(10)).expect("sent");
        m.on_execution_report(&report("A2", "e3", ExecKind::Replaced))
            .expect("fits");
        check(&m);
        assert_eq!(m.working_same_side("EURUSD", Side::Buy), 90 + 50);
        m.on_execution_report(&report("B", "e3b", ExecKind::New))
            .expect("fits");
        m.cancel(b, "B2").expect("sent");
        m.on_execution_report(&report("B2", "e4", ExecKind::Canceled))
            .expect("fits");
        m.on_execution_report(&report("C", "e5", ExecKind::Rejected("no".into())))
            .expect("fits");
        // A report that does not fit changes nothing.
        assert!(m
            .on_execution_report(&report("C", "e6", ExecKind::New))
            .is_err());
        check(&m);
        assert_eq!(m.working_same_side("EURUSD", Side::Sell), 0);
        m.on_execution_report(&report(
            "A2",
            "e7",
            ExecKind::Trade {
                quantity: 90,
                price: 10,
            },
        ))
        .expect("fits");
        check(&m);
        assert_eq!(m.working_same_side("EURUSD", Side::Buy), 0);
    }

    #[test]
    fn state_round_trips_and_restored_orders_keep_working() {
        let mut m = OrderManager::new(RiskLimits::default());
        let a = m
            .submit(limit("A", Side::Buy, 100, 10))
            .expect("ok")
            .order_id;
        m.submit(limit("B", Side::Sell, 50, 12)).expect("ok");
        m.on_execution_report(&report("A", "e1", ExecKind::New))
            .expect("fits");
        m.on_execution_report(&report(
            "A",
            "e2",
            ExecKind::Trade {
                quantity: 30,
                price: 10,
            },
        ))
        .expect("fits");
        m.cancel(a, "A2").expect("sent");
        m.set_kill_switch(true);
        let state = m.state();
        let mut r = OrderManager::new(RiskLimits::default());
        r.restore_state(state.clone()).expect("consistent");
        assert_eq!(r.state(), state);
        assert_eq!(r.position("EURUSD"), m.position("EURUSD"));
        for side in [Side::Buy, Side::Sell] {
            assert_eq!(
                r.working_same_side("EURUSD", side),
                m.working_same_side("EURUSD", side)
            );
        }
        // Resends of applied reports are still ignored; the pending cancel
        // and every ClOrdID are known; new ids continue.
        assert!(!r
            .on_execution_report(&report("A", "e2", ExecKind::New))
            .expect("ignored"));
        assert!(matches!(
            r.submit(limit("A2", Side::Buy, 1, 10)),
            Err(ManagerError::DuplicateClientOrderId(_))
        ));
        r.on_execution_report(&report("A2", "e3", ExecKind::Canceled))
            .expect("fits");
        assert_eq!(r.order(a).map(|o| o.status), Some(OrderStatus::Canceled));
        r.set_kill_switch(false);
        assert_eq!(
            r.submit(limit("C", Side::Buy, 1, 10)).expect("ok").order_id,
            3
        );

        let mut twice = state.clone();
        twice.orders.push(twice.orders[0].clone());
        let mut bad = OrderManager::new(RiskLimits::default());
        assert!(matches!(
            bad.restore_state(twice),
            Err(ManagerError::Invalid(_))
        ));
        assert!(bad.orders().is_empty());
    }

    #[test]
    fn lost_orders_end_with_their_reason() {
        let mut m = OrderManager::new(RiskLimits::default());
        let a = m
            .submit(limit("A", Side::Buy, 10, 10))
            .expect("ok")
            .order_id;
        let b = m
            .submit(limit("B", Side::Buy, 10, 10))
            .expect("ok")
            .order_id;
        m.on_execution_report(&report("B", "e1", ExecKind::New))
            .expect("fits");
        m.cancel(b, "B2").expect("sent");
        for id in ["A", "B"] {
            m.on_execution_report(&report(
                id,
                &format!("lost-{id}"),
                ExecKind::Lost("gone".into()),
            ))
            .expect("fits");
        }
        let (a, b) = (m.order(a).expect("a"), m.order(b).expect("b"));
        assert_eq!(
            (a.status, a.reject.as_deref()),
            (OrderStatus::Rejected, Some("gone"))
        );
        assert_eq!((b.status, b.pending.clone()), (OrderStatus::Canceled, None));
        assert_eq!(m.working_same_side("EURUSD", Side::Buy), 0);
        assert!(m
            .on_execution_report(&report("A", "again", ExecKind::Lost("gone".into())))
            .is_err());
    }

    #[test]
    fn unknown_reports_are_errors_not_silence() {
        let mut m = OrderManager::new(RiskLimits::default());
        assert_eq!(
            m.on_execution_report(&report("nope", "e1", ExecKind::New)),
            Err(ManagerError::UnknownOrder("nope".into()))
        );
    }
}
