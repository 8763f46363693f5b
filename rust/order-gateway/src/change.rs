//! CancelOrder and ReplaceOrder on the native path, on the terms of SubmitOrder's
//! (see `submit`): the gateway takes a request naming an order by the id the
//! service issued, with plainly valid fields, and answers it when the engine
//! accepts the change; anything else (an order named by its ClOrdID, an unknown
//! order, a value the service's validation refuses, a refusal by the engine) goes
//! to the Python service, whose answer is the authoritative one. The engine
//! refuses before it records or sends anything, so the service meets the order
//! as it was (all but a session stopping between the two: the change is then
//! recorded, and the service answers that one is pending).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use http::Response;
use nexus_execution::ExecutionError;
use nexus_oms::Order;
use prost::Message;

use crate::grpc;
use crate::proto::nexus::execution::v1 as ex;
use crate::server::{Body, GatewayInstrument, Shared};
use crate::submit::{identifier, mantissa, order_message, positive, Forward};

/// The cancel the gateway answers itself.
pub(crate) const CANCEL_ORDER_PATH: &str = "/nexus.execution.v1.ExecutionService/CancelOrder";
/// The cancel/replace the gateway answers itself.
pub(crate) const REPLACE_ORDER_PATH: &str = "/nexus.execution.v1.ExecutionService/ReplaceOrder";

/// The order named by `order_id` (digits, as the service issues them), its venue
/// (fixed when it was routed, so also the venue of the change) and its
/// instrument.
fn named_order(
    shared: &Shared,
    order_id: &str,
) -> Result<(u64, Order, String, GatewayInstrument), Forward> {
    if order_id.is_empty() || !order_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Forward::Invalid);
    }
    let id = order_id.parse::<u64>().map_err(|_| Forward::Invalid)?;
    let (order, venue) = shared
        .engine
        .order_with_venue(id)
        .ok_or(Forward::UnknownOrder)?;
    let instrument = shared
        .instruments
        .get(&order.instrument)
        .cloned()
        .ok_or(Forward::UnknownInstrument)?;
    Ok((id, order, venue, instrument))
}

/// A ClOrdID for a cancel, of the service's form: `C-` and 12 hex digits, random
/// (a reused one is refused by the order manager, and the service then answers).
fn cancel_client_order_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("C-{:012x}", hasher.finish() & 0xFFFF_FFFF_FFFF)
}

/// The engine's refusal, logged: the service answers.
fn refused(err: &ExecutionError) -> Forward {
    log::debug!("order gateway: the engine refused a change, the service answers: {err}");
    Forward::EngineRefused
}

/// The answer to a change the engine accepted.
fn answer<M: Message>(response: &M) -> Response<Body> {
    // A response holding one order is far below 4 GiB; None cannot happen.
    let framed = grpc::frame(&response.encode_to_vec()).unwrap_or_default();
    grpc::ok_response(framed)
}

impl Shared {
    /// CancelOrder: sends the cancel and answers with the order as the engine
    /// returned it (the cancel pending), or says why the service answers.
    pub(crate) fn cancel_order(&self, body: &[u8]) -> Result<Response<Body>, Forward> {
        let message = grpc::unary_message(body).ok_or(Forward::Framing)?;
        let request = ex::CancelOrderRequest::decode(message).map_err(|_| Forward::Undecodable)?;
        if request.order_id.is_empty() {
            // Named by its ClOrdID (or not at all): the service looks it up.
            return Err(Forward::ByClientOrderId);
        }
        let (id, _, venue, instrument) = named_order(self, &request.order_id)?;
        let order = self
            .engine
            .cancel(id, &cancel_client_order_id())
            .map_err(|err| refused(&err))?;
        Ok(answer(&ex::CancelOrderResponse {
            order: Some(order_message(&order, &venue, &instrument)),
        }))
    }

    /// ReplaceOrder: sends the cancel/replace (the quantity and limit price
    /// asked for, the order's own where the request has none) and answers with
    /// the order as the engine returned it, or says why the service answers.
    pub(crate) fn replace_order(&self, body: &[u8]) -> Result<Response<Body>, Forward> {
        let message = grpc::unary_message(body).ok_or(Forward::Framing)?;
        let request = ex::ReplaceOrderRequest::decode(message).map_err(|_| Forward::Undecodable)?;
        if !identifier(&request.new_client_order_id) || request.stop_price.is_some() {
            return Err(Forward::Invalid);
        }
        let (id, current, venue, instrument) = named_order(self, &request.order_id)?;
        let quantity = match &request.quantity {
            Some(q) => {
                let q = positive(Some(q)).ok_or(Forward::Invalid)?;
                mantissa(q, instrument.size_scale).ok_or(Forward::Precision)?
            }
            None => current.quantity,
        };
        let limit_price = match &request.limit_price {
            Some(p) => {
                let p = positive(Some(p)).ok_or(Forward::Invalid)?;
                Some(mantissa(p, instrument.price_scale).ok_or(Forward::Precision)?)
            }
            None => current.limit_price,
        };
        let order = self
            .engine
            .replace(id, &request.new_client_order_id, quantity, limit_price)
            .map_err(|err| refused(&err))?;
        Ok(answer(&ex::ReplaceOrderResponse {
            order: Some(order_message(&order, &venue, &instrument)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_ids_have_the_services_form_and_differ() {
        let ids: Vec<String> = (0..1000).map(|_| cancel_client_order_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 14, "{id}");
            assert!(id.starts_with("C-"));
            assert!(id[2..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }
}
