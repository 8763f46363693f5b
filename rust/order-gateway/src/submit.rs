//! SubmitOrder on the native path. The gateway takes a request only when it is
//! plainly valid and plainly new; anything else (a malformed field, a retry, an
//! unknown instrument, a refusal by the engine) goes to the Python service,
//! which gives the one authoritative answer, so the two paths cannot disagree
//! on an error. An order the gateway takes is answered exactly as the service
//! answers it (tests/integration compares them field by field).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Response;
use nexus_execution::{ExecutionError, OrderRequest, OrderStatus, TimeInForce};
use nexus_oms::{ManagerError, Order, OrderType, RiskReason, Side};
use prost::Message;

use crate::grpc;
use crate::proto::nexus::common::v1 as common;
use crate::proto::nexus::execution::v1 as ex;
use crate::server::{Body, GatewayInstrument, Shared};

/// The method the gateway answers itself.
pub(crate) const SUBMIT_ORDER_PATH: &str = "/nexus.execution.v1.ExecutionService/SubmitOrder";

/// Longest client-chosen id (as the service's validation).
const MAX_ID: usize = 64;
/// Decimal scales a request may carry (as the service's validation).
const MAX_SCALE: i32 = 18;
/// Longest one wait for the venue's answer on a blocking thread.
const WAIT_STEP: Duration = Duration::from_millis(50);

/// Why a call went to the service behind instead of the native path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// A method the gateway does not answer itself.
    OtherMethod = 0,
    /// Not one uncompressed message.
    Framing,
    /// Not a SubmitOrderRequest.
    Undecodable,
    /// A field the service's validation would refuse.
    Invalid,
    /// Stop orders and good-till-date: the service's answer.
    Unsupported,
    /// A venue that is not configured.
    UnknownVenue,
    /// An instrument the execution service does not trade.
    UnknownInstrument,
    /// More decimal places than the instrument has, or out of range.
    Precision,
    /// A ClOrdID the order manager already knows (a retry: the service
    /// answers it).
    Known,
    /// The engine refused to submit or change the order (not logged on,
    /// stopped, a change already pending, ...).
    EngineRefused,
    /// A cancel or replace of an order the engine does not know.
    UnknownOrder,
    /// A cancel naming the order by its ClOrdID only (the service looks it up).
    ByClientOrderId,
}

impl Forward {
    /// Every reason, in counter order.
    pub const ALL: [Self; 12] = [
        Self::OtherMethod,
        Self::Framing,
        Self::Undecodable,
        Self::Invalid,
        Self::Unsupported,
        Self::UnknownVenue,
        Self::UnknownInstrument,
        Self::Precision,
        Self::Known,
        Self::EngineRefused,
        Self::UnknownOrder,
        Self::ByClientOrderId,
    ];

    /// The reason's name on the metrics.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::OtherMethod => "other_method",
            Self::Framing => "framing",
            Self::Undecodable => "undecodable",
            Self::Invalid => "invalid",
            Self::Unsupported => "unsupported",
            Self::UnknownVenue => "unknown_venue",
            Self::UnknownInstrument => "unknown_instrument",
            Self::Precision => "precision",
            Self::Known => "known_client_order_id",
            Self::EngineRefused => "engine_refused",
            Self::UnknownOrder => "unknown_order",
            Self::ByClientOrderId => "by_client_order_id",
        }
    }
}

/// A request the native path takes.
#[derive(Debug)]
pub(crate) struct Plan {
    order: OrderRequest,
    instrument: GatewayInstrument,
    await_venue_ack: bool,
}

/// 1-64 printable ASCII characters without spaces.
pub(crate) fn identifier(value: &str) -> bool {
    (1..=MAX_ID).contains(&value.len()) && value.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

/// A present, positive Decimal with a valid scale.
pub(crate) fn positive(value: Option<&common::Decimal>) -> Option<common::Decimal> {
    value
        .filter(|d| (-MAX_SCALE..=MAX_SCALE).contains(&d.scale) && d.mantissa > 0)
        .copied()
}

/// The value as a mantissa at `scale`; None when it has more decimal places or
/// does not fit.
pub(crate) fn mantissa(value: common::Decimal, scale: u8) -> Option<i64> {
    let shift = i32::from(scale) - value.scale; // -18..=36
    let m = i128::from(value.mantissa);
    let scaled = if shift >= 0 {
        m.checked_mul(10_i128.checked_pow(shift.unsigned_abs())?)?
    } else {
        let divisor = 10_i128.checked_pow(shift.unsigned_abs())?;
        if m % divisor != 0 {
            return None;
        }
        m / divisor
    };
    i64::try_from(scaled).ok()
}

impl Shared {
    /// The native plan for a request body, or why it goes to the service.
    pub(crate) fn plan(&self, body: &[u8]) -> Result<Plan, Forward> {
        let message = grpc::unary_message(body).ok_or(Forward::Framing)?;
        let request = ex::SubmitOrderRequest::decode(message).map_err(|_| Forward::Undecodable)?;
        if !identifier(&request.client_order_id)
            || !(request.account.is_empty() || identifier(&request.account))
        {
            return Err(Forward::Invalid);
        }
        let side = match common::Side::try_from(request.side) {
            Ok(common::Side::Buy) => Side::Buy,
            Ok(common::Side::Sell) => Side::Sell,
            _ => return Err(Forward::Invalid),
        };
        let order_type = match ex::OrderType::try_from(request.order_type) {
            Ok(ex::OrderType::Market) => OrderType::Market,
            Ok(ex::OrderType::Limit) => OrderType::Limit,
            Ok(ex::OrderType::Stop | ex::OrderType::StopLimit) => return Err(Forward::Unsupported),
            _ => return Err(Forward::Invalid),
        };
        if request.stop_price.is_some() {
            return Err(Forward::Invalid); // only stop orders take one
        }
        let time_in_force = match ex::TimeInForce::try_from(request.time_in_force) {
            Ok(ex::TimeInForce::Unspecified | ex::TimeInForce::Day) => TimeInForce::Day,
            Ok(ex::TimeInForce::Gtc) => TimeInForce::Gtc,
            Ok(ex::TimeInForce::Ioc) => TimeInForce::Ioc,
            Ok(ex::TimeInForce::Fok) => TimeInForce::Fok,
            Ok(ex::TimeInForce::Gtd) => return Err(Forward::Unsupported),
            Err(_) => return Err(Forward::Invalid),
        };
        let quantity = positive(request.quantity.as_ref()).ok_or(Forward::Invalid)?;
        let limit = match order_type {
            OrderType::Limit => {
                Some(positive(request.limit_price.as_ref()).ok_or(Forward::Invalid)?)
            }
            OrderType::Market if request.limit_price.is_some() => return Err(Forward::Invalid),
            OrderType::Market => None,
        };
        if !request.venue.is_empty() && !self.venues.contains(&request.venue) {
            return Err(Forward::UnknownVenue);
        }
        let named = request.instrument.as_ref().ok_or(Forward::Invalid)?;
        let instrument = self
            .instruments
            .get(&named.symbol)
            .filter(|i| i.venue == named.venue)
            .ok_or(Forward::UnknownInstrument)?;
        let quantity = mantissa(quantity, instrument.size_scale).ok_or(Forward::Precision)?;
        let limit_price = match limit {
            Some(price) => Some(mantissa(price, instrument.price_scale).ok_or(Forward::Precision)?),
            None => None,
        };
        Ok(Plan {
            order: OrderRequest {
                client_order_id: request.client_order_id,
                symbol: instrument.symbol.clone(),
                side,
                order_type,
                quantity,
                limit_price,
                time_in_force,
                venues: if request.venue.is_empty() {
                    Vec::new()
                } else {
                    vec![request.venue]
                },
            },
            instrument: instrument.clone(),
            await_venue_ack: request.await_venue_ack,
        })
    }
}

/// Submits a planned order and answers with it: as the engine returned it, or,
/// with `await_venue_ack`, once the venue's first answer has moved it on from
/// PENDING_NEW (or as it stands after `budget`).
pub(crate) async fn execute(
    shared: &Arc<Shared>,
    plan: Plan,
    budget: Duration,
) -> Result<Response<Body>, Forward> {
    let engine = &shared.engine;
    let logged_before = engine.last_sequence();
    let order = engine.submit(plan.order).map_err(|err| match err {
        // The order manager looks the ClOrdID up before anything else (nothing
        // recorded, nothing sent): a retry, which the service answers.
        ExecutionError::Manager(ManagerError::DuplicateClientOrderId(_)) => Forward::Known,
        err => {
            log::debug!("order gateway: the engine refused an order, the service answers: {err}");
            Forward::EngineRefused
        }
    })?;
    let (order, venue) = if plan.await_venue_ack && order.status == OrderStatus::PendingNew {
        venue_answer(shared, order, logged_before, budget).await
    } else {
        let venue = engine
            .order_with_venue(order.order_id)
            .map(|(_, venue)| venue)
            .unwrap_or_default();
        (order, venue)
    };
    let response = ex::SubmitOrderResponse {
        order: Some(order_message(&order, &venue, &plan.instrument)),
    };
    // A SubmitOrderResponse is far below 4 GiB; None cannot happen.
    let framed = grpc::frame(&response.encode_to_vec()).unwrap_or_default();
    Ok(grpc::ok_response(framed))
}

/// The order once its venue has answered (it is no longer PENDING_NEW), or as
/// it stands when `budget` has passed.
async fn venue_answer(
    shared: &Arc<Shared>,
    order: Order,
    logged_before: u64,
    budget: Duration,
) -> (Order, String) {
    let engine = &shared.engine;
    let deadline = Instant::now() + budget;
    // Most venues answer within tens of microseconds: a short wait on this
    // thread (the engine spins, then sleeps) saves a hop to a blocking thread.
    let mut seen = engine
        .wait_report_after(logged_before, budget.min(shared.ack_spin))
        .max(logged_before);
    loop {
        // Noted before looking: a report logged after the look ends the wait.
        seen = seen.max(engine.last_sequence());
        let Some((current, venue)) = engine.order_with_venue(order.order_id) else {
            return (order, String::new());
        };
        if current.status != OrderStatus::PendingNew {
            return (current, venue);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (current, venue);
        }
        let engine = Arc::clone(engine);
        let after = seen;
        // Slower answers are awaited on a blocking thread, the runtime's free;
        // in steps, so that a call its client gave up frees the thread soon.
        let step = left.min(WAIT_STEP);
        seen = tokio::task::spawn_blocking(move || engine.wait_report_sleeping(after, step))
            .await
            .unwrap_or(after);
    }
}

fn decimal(mantissa: i64, scale: u8) -> common::Decimal {
    common::Decimal {
        mantissa,
        scale: i32::from(scale),
    }
}

/// The order as the service's `_order` builds it.
pub(crate) fn order_message(
    order: &Order,
    venue: &str,
    instrument: &GatewayInstrument,
) -> ex::Order {
    let status = match order.status {
        OrderStatus::PendingNew => ex::OrderStatus::PendingNew,
        OrderStatus::New => ex::OrderStatus::New,
        OrderStatus::PartiallyFilled => ex::OrderStatus::PartiallyFilled,
        OrderStatus::Filled => ex::OrderStatus::Filled,
        OrderStatus::Canceled => ex::OrderStatus::Canceled,
        OrderStatus::Replaced => ex::OrderStatus::Replaced,
        OrderStatus::Rejected => ex::OrderStatus::Rejected,
        OrderStatus::Expired => ex::OrderStatus::Expired,
    };
    let reject_reason = match (&order.risk_reject, order.status) {
        (Some(reject), _) => match reject.reason {
            RiskReason::MaxQuantity => ex::RejectReason::MaxQuantity,
            RiskReason::MaxNotional => ex::RejectReason::MaxNotional,
            RiskReason::PriceCollar => ex::RejectReason::PriceCollar,
            RiskReason::PositionLimit => ex::RejectReason::PositionLimit,
            RiskReason::Throttle => ex::RejectReason::Throttle,
            RiskReason::DuplicateOrder => ex::RejectReason::DuplicateOrder,
            RiskReason::KillSwitch => ex::RejectReason::KillSwitch,
        },
        (None, OrderStatus::Rejected) => ex::RejectReason::Venue,
        (None, _) => ex::RejectReason::Unspecified,
    };
    ex::Order {
        order_id: order.order_id.to_string(),
        client_order_id: order.client_order_id().to_owned(),
        instrument: Some(common::InstrumentId {
            symbol: instrument.symbol.clone(),
            venue: instrument.venue.clone(),
        }),
        side: match order.side {
            Side::Buy => common::Side::Buy,
            Side::Sell => common::Side::Sell,
        } as i32,
        order_type: match order.order_type {
            OrderType::Limit => ex::OrderType::Limit,
            OrderType::Market => ex::OrderType::Market,
        } as i32,
        quantity: Some(decimal(order.quantity, instrument.size_scale)),
        limit_price: order
            .limit_price
            .map(|p| decimal(p, instrument.price_scale)),
        status: status as i32,
        filled_quantity: Some(decimal(order.filled, instrument.size_scale)),
        leaves_quantity: Some(decimal(order.leaves(), instrument.size_scale)),
        average_price: order
            .average_price()
            .map(|p| decimal(p, instrument.price_scale)),
        reject_reason: reject_reason as i32,
        text: order.reject.clone().unwrap_or_default(),
        venue: venue.to_owned(),
        ..ex::Order::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(mantissa: i64, scale: i32) -> common::Decimal {
        common::Decimal { mantissa, scale }
    }

    #[test]
    fn mantissas_are_exact_or_refused() {
        assert_eq!(mantissa(d(1000, 0), 0), Some(1000));
        assert_eq!(mantissa(d(100_000, 5), 5), Some(100_000));
        assert_eq!(mantissa(d(11, 1), 5), Some(110_000));
        assert_eq!(mantissa(d(110_000, 5), 1), Some(11));
        assert_eq!(mantissa(d(110_001, 5), 1), None, "more decimal places");
        assert_eq!(
            mantissa(d(5, -3), 0),
            Some(5000),
            "negative scales multiply"
        );
        assert_eq!(mantissa(d(i64::MAX, 0), 1), None, "does not fit");
        assert_eq!(mantissa(d(1, -18), 18), None, "10^36 does not fit an i64");
    }

    #[test]
    fn identifiers_as_the_service_checks_them() {
        assert!(identifier("rt-1"));
        assert!(identifier(&"x".repeat(64)));
        assert!(!identifier(&"x".repeat(65)));
        assert!(!identifier(""));
        assert!(!identifier("a b"));
        assert!(!identifier("é"));
        assert!(!identifier("tab\there"));
    }

    #[test]
    fn every_forward_reason_has_its_own_counter_slot() {
        for (i, reason) in Forward::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
        let mut labels: Vec<_> = Forward::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Forward::ALL.len());
    }
}
