//! Pre-trade risk checks: every order passes them before a message leaves.
//!
//! In order: kill switch, maximum quantity, maximum notional, price collar
//! against the last market price, position limit, order-rate throttle and
//! duplicate-order guard. The first failure refuses the order with its
//! reason and a text that says the limit and the value.

use std::collections::VecDeque;

use nexus_collections::FastHashMap;
use std::fmt;

use thiserror::Error;

use crate::position::FillSide;

/// Why a pre-trade check refused an order (as `nexus.execution.v1.RejectReason`).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskReason {
    /// Quantity above the per-order maximum.
    MaxQuantity,
    /// Notional above the per-order maximum.
    MaxNotional,
    /// Limit price outside the collar around the last market price.
    PriceCollar,
    /// The fill would breach the instrument's position limit.
    PositionLimit,
    /// Order rate above the throttle.
    Throttle,
    /// Same instrument, side, quantity and price as a very recent order.
    DuplicateOrder,
    /// The kill switch is engaged.
    KillSwitch,
}

impl RiskReason {
    /// Returns the reason's number in `nexus.execution.v1.RejectReason`.
    #[must_use]
    pub fn proto_number(self) -> i32 {
        match self {
            Self::MaxQuantity => 1,
            Self::MaxNotional => 2,
            Self::PriceCollar => 3,
            Self::PositionLimit => 4,
            Self::Throttle => 5,
            Self::DuplicateOrder => 6,
            Self::KillSwitch => 7,
        }
    }
}

impl fmt::Display for RiskReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::MaxQuantity => "max quantity",
            Self::MaxNotional => "max notional",
            Self::PriceCollar => "price collar",
            Self::PositionLimit => "position limit",
            Self::Throttle => "throttle",
            Self::DuplicateOrder => "duplicate order",
            Self::KillSwitch => "kill switch",
        };
        f.write_str(name)
    }
}

/// A refused order: the reason and a text naming the limit and the value.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}: {text}")]
pub struct RiskReject {
    /// Which check refused it.
    pub reason: RiskReason,
    /// What was over which limit.
    pub text: String,
}

/// Limits of one instrument (mantissas at its price and size scales).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskLimits {
    /// Largest quantity of one order.
    pub max_order_quantity: i64,
    /// Largest notional of one order, price x quantity mantissas.
    pub max_notional: i128,
    /// Largest distance of a limit price from the last market price, in
    /// basis points; 0 disables the collar.
    pub collar_bps: u32,
    /// Largest absolute position after the order fills completely.
    pub max_position: i64,
    /// Most orders in any `throttle_window_ns`; 0 disables the throttle.
    pub max_orders_per_window: u32,
    /// The throttle's sliding window, ns.
    pub throttle_window_ns: i64,
    /// An order equal to one sent within this many ns is a duplicate; 0 disables.
    pub duplicate_window_ns: i64,
}

impl Default for RiskLimits {
    fn default() -> Self {
        Self {
            max_order_quantity: i64::MAX,
            max_notional: i128::MAX,
            collar_bps: 0,
            max_position: i64::MAX,
            max_orders_per_window: 0,
            throttle_window_ns: 1_000_000_000,
            duplicate_window_ns: 0,
        }
    }
}

/// One order as the checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskCheck<'a> {
    /// Instrument key.
    pub instrument: &'a str,
    /// Buy or sell.
    pub side: FillSide,
    /// Quantity mantissa (positive).
    pub quantity: i64,
    /// Limit price mantissa; None for market orders.
    pub limit_price: Option<i64>,
    /// Current position mantissa in the instrument (signed).
    pub position: i64,
    /// Quantity already working on the same side (open orders), which could
    /// fill too.
    pub working_same_side: i64,
    /// When the order is checked, ns.
    pub now_ns: i64,
}

/// Per-instrument limits, last prices and recent-order memory.
#[derive(Debug, Default)]
pub struct RiskEngine {
    limits: FastHashMap<String, RiskLimits>,
    default_limits: RiskLimits,
    last_price: FastHashMap<String, i64>,
    recent: VecDeque<(i64, String, FillSide, i64, Option<i64>)>,
    kill_switch: bool,
}

impl RiskEngine {
    /// Returns an engine with `default_limits` for instruments without their own.
    #[must_use]
    pub fn new(default_limits: RiskLimits) -> Self {
        Self {
            default_limits,
            ..Self::default()
        }
    }

    /// The limits of instruments without their own.
    #[must_use]
    pub fn default_limits(&self) -> RiskLimits {
        self.default_limits
    }

    /// Sets the limits of one instrument.
    pub fn set_limits(&mut self, instrument: &str, limits: RiskLimits) {
        self.limits.insert(instrument.to_owned(), limits);
    }

    /// Records the last market price of an instrument (for the collar and notional of market orders).
    pub fn set_last_price(&mut self, instrument: &str, price: i64) {
        self.last_price.insert(instrument.to_owned(), price);
    }

    /// Engages or releases the kill switch.
    pub fn set_kill_switch(&mut self, engaged: bool) {
        self.kill_switch = engaged;
    }

    /// Whether the kill switch is engaged.
    #[must_use]
    pub fn kill_switch(&self) -> bool {
        self.kill_switch
    }

    fn limits(&self, instrument: &str) -> RiskLimits {
        self.limits
            .get(instrument)
            .copied()
            .unwrap_or(self.default_limits)
    }

    /// Runs every check on `order`; on success the order counts towards the
    /// throttle and the duplicate guard.
    ///
    /// # Errors
    /// Returns the first [`RiskReject`] found.
    pub fn check(&mut self, order: &RiskCheck<'_>) -> Result<(), RiskReject> {
        let limits = self.limits(order.instrument);
        let reject = |reason, text: String| Err(RiskReject { reason, text });
        if self.kill_switch {
            return reject(RiskReason::KillSwitch, "new orders are blocked".into());
        }
        if order.quantity > limits.max_order_quantity {
            return reject(
                RiskReason::MaxQuantity,
                format!(
                    "quantity {} > {}",
                    order.quantity, limits.max_order_quantity
                ),
            );
        }
        let last = self.last_price.get(order.instrument).copied();
        if let Some(price) = order.limit_price.or(last) {
            let notional = i128::from(order.quantity) * i128::from(price);
            if notional > limits.max_notional {
                return reject(
                    RiskReason::MaxNotional,
                    format!("notional {notional} > {}", limits.max_notional),
                );
            }
        }
        if let (Some(limit), Some(last), true) = (order.limit_price, last, limits.collar_bps > 0) {
            let distance_bps =
                (i128::from(limit) - i128::from(last)).abs() * 10_000 / i128::from(last.max(1));
            if distance_bps > i128::from(limits.collar_bps) {
                return reject(
                    RiskReason::PriceCollar,
                    format!(
                        "limit {limit} is {distance_bps} bp from last {last} (collar {} bp)",
                        limits.collar_bps
                    ),
                );
            }
        }
        let signed = match order.side {
            FillSide::Buy => i128::from(order.quantity) + i128::from(order.working_same_side),
            FillSide::Sell => -(i128::from(order.quantity) + i128::from(order.working_same_side)),
        };
        let after = i128::from(order.position) + signed;
        if after.abs() > i128::from(limits.max_position) {
            return reject(
                RiskReason::PositionLimit,
                format!(
                    "position would reach {after} (limit {})",
                    limits.max_position
                ),
            );
        }
        let horizon = limits.throttle_window_ns.max(limits.duplicate_window_ns);
        while self
            .recent
            .front()
            .is_some_and(|r| r.0 <= order.now_ns - horizon)
        {
            self.recent.pop_front();
        }
        if limits.max_orders_per_window > 0 {
            let in_window = self
                .recent
                .iter()
                .filter(|r| {
                    r.1 == order.instrument && r.0 > order.now_ns - limits.throttle_window_ns
                })
                .count();
            if in_window >= limits.max_orders_per_window as usize {
                return reject(
                    RiskReason::Throttle,
                    format!(
                        "{in_window} orders in the last {} ms (limit {})",
                        limits.throttle_window_ns / 1_000_000,
                        limits.max_orders_per_window
                    ),
                );
            }
        }
        if limits.duplicate_window_ns > 0
            && self.recent.iter().any(|r| {
                r.0 > order.now_ns - limits.duplicate_window_ns
                    && r.1 == order.instrument
                    && r.2 == order.side
                    && r.3 == order.quantity
                    && r.4 == order.limit_price
            })
        {
            return reject(
                RiskReason::DuplicateOrder,
                format!(
                    "same order sent within the last {} ms",
                    limits.duplicate_window_ns / 1_000_000
                ),
            );
        }
        self.recent.push_back((
            order.now_ns,
            order.instrument.to_owned(),
            order.side,
            order.quantity,
            order.limit_price,
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(quantity: i64, limit: Option<i64>, now_ns: i64) -> RiskCheck<'static> {
        RiskCheck {
            instrument: "EURUSD",
            side: FillSide::Buy,
            quantity,
            limit_price: limit,
            position: 0,
            working_same_side: 0,
            now_ns,
        }
    }

    fn reason(engine: &mut RiskEngine, o: &RiskCheck<'_>) -> Option<RiskReason> {
        engine.check(o).err().map(|r| r.reason)
    }

    #[test]
    fn each_limit_refuses_with_its_reason() {
        let mut engine = RiskEngine::new(RiskLimits {
            max_order_quantity: 1_000,
            max_notional: 1_000 * 120_000,
            collar_bps: 50,
            max_position: 1_500,
            max_orders_per_window: 3,
            throttle_window_ns: 1_000,
            duplicate_window_ns: 100,
        });
        engine.set_last_price("EURUSD", 110_000);
        assert_eq!(
            reason(&mut engine, &order(1_001, Some(110_000), 0)),
            Some(RiskReason::MaxQuantity)
        );
        assert_eq!(
            reason(&mut engine, &order(1_000, Some(130_000), 0)),
            Some(RiskReason::MaxNotional)
        );
        assert_eq!(
            reason(&mut engine, &order(10, Some(111_000), 0)),
            Some(RiskReason::PriceCollar)
        );
        let mut big = order(600, Some(110_000), 0);
        big.position = 1_000;
        assert_eq!(reason(&mut engine, &big), Some(RiskReason::PositionLimit));
        assert_eq!(reason(&mut engine, &order(10, Some(110_000), 0)), None);
        assert_eq!(
            reason(&mut engine, &order(10, Some(110_000), 50)),
            Some(RiskReason::DuplicateOrder)
        );
        assert_eq!(reason(&mut engine, &order(11, Some(110_000), 60)), None);
        assert_eq!(reason(&mut engine, &order(12, Some(110_000), 70)), None);
        assert_eq!(
            reason(&mut engine, &order(13, Some(110_000), 80)),
            Some(RiskReason::Throttle)
        );
        // The window slides: a second later the throttle has room again.
        assert_eq!(reason(&mut engine, &order(13, Some(110_000), 1_100)), None);
        engine.set_kill_switch(true);
        assert_eq!(
            reason(&mut engine, &order(1, None, 2_000)),
            Some(RiskReason::KillSwitch)
        );
    }

    #[test]
    fn texts_name_the_limit_and_the_value() {
        let mut engine = RiskEngine::new(RiskLimits {
            max_order_quantity: 5,
            ..RiskLimits::default()
        });
        let err = engine
            .check(&order(6, None, 0))
            .expect_err("over the limit");
        assert_eq!(err.to_string(), "max quantity: quantity 6 > 5");
        assert_eq!(err.reason.proto_number(), 1);
    }

    #[test]
    fn working_orders_count_towards_the_position_limit() {
        let mut engine = RiskEngine::new(RiskLimits {
            max_position: 100,
            ..RiskLimits::default()
        });
        let mut o = order(60, None, 0);
        o.working_same_side = 50;
        assert_eq!(reason(&mut engine, &o), Some(RiskReason::PositionLimit));
        o.working_same_side = 30;
        assert_eq!(reason(&mut engine, &o), None);
    }
}
