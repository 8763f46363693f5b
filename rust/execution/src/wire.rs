//! FIX 4.4 messages of the engine: the requests it sends (D, F, G) and the
//! translation of the venue's answers (8, 9) into order-manager reports.

use nexus_fix::message::{parse_decimal, Decimal, Message};
use nexus_fix::session::tcp::now_nanos;
use nexus_fix::session::OutgoingMessage;
use nexus_fix::TimestampPrecision;
use nexus_oms::{ExecKind, ExecutionReport, Order, OrderType, Side};

use crate::engine::{ExecType, InstrumentConfig, TimeInForce};

const AVG_PX: u32 = 6;
const CL_ORD_ID: u32 = 11;
const COMMISSION: u32 = 12;
const CUM_QTY: u32 = 14;
const EXEC_ID: u32 = 17;
const LAST_PX: u32 = 31;
const LAST_QTY: u32 = 32;
const ORDER_QTY: u32 = 38;
const ORD_STATUS: u32 = 39;
const ORD_TYPE: u32 = 40;
const ORIG_CL_ORD_ID: u32 = 41;
const PRICE: u32 = 44;
const SIDE: u32 = 54;
const SYMBOL: u32 = 55;
const TEXT: u32 = 58;
const TIME_IN_FORCE: u32 = 59;
const TRANSACT_TIME: u32 = 60;
const ORD_REJ_REASON: u32 = 103;
const CXL_REJ_REASON: u32 = 102;
const EXEC_TYPE: u32 = 150;

/// Converts a wire decimal to a mantissa at `scale`; None when it has more
/// digits than `scale` allows or overflows.
pub(crate) fn mantissa(value: &[u8], scale: u8) -> Option<i64> {
    let d = parse_decimal(value)?;
    if d.scale <= scale {
        d.mantissa
            .checked_mul(10i64.checked_pow(u32::from(scale - d.scale))?)
    } else {
        let div = 10i64.checked_pow(u32::from(d.scale - scale))?;
        (d.mantissa % div == 0).then(|| d.mantissa / div)
    }
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Buy => "1",
        Side::Sell => "2",
    }
}

fn ord_type(order_type: OrderType) -> &'static str {
    match order_type {
        OrderType::Market => "1",
        OrderType::Limit => "2",
    }
}

fn tif(tif: TimeInForce) -> &'static str {
    match tif {
        TimeInForce::Day => "0",
        TimeInForce::Gtc => "1",
        TimeInForce::Ioc => "3",
        TimeInForce::Fok => "4",
    }
}

/// NewOrderSingle (D) of a freshly accepted order.
pub(crate) fn new_order_single(
    order: &Order,
    spec: &InstrumentConfig,
    time_in_force: TimeInForce,
) -> OutgoingMessage {
    let mut m = OutgoingMessage::new("D")
        .field(CL_ORD_ID, order.client_order_id())
        .field(SYMBOL, &order.instrument)
        .field(SIDE, side(order.side))
        .field_timestamp(TRANSACT_TIME, now_nanos(), TimestampPrecision::Millis)
        .field_decimal(ORDER_QTY, Decimal::new(order.quantity, spec.qty_scale))
        .field(ORD_TYPE, ord_type(order.order_type));
    if let Some(price) = order.limit_price {
        m = m.field_decimal(PRICE, Decimal::new(price, spec.price_scale));
    }
    m.field(TIME_IN_FORCE, tif(time_in_force))
}

/// OrderCancelRequest (F) of `order` (whose current ClOrdID is `orig`).
pub(crate) fn cancel_request(
    order: &Order,
    orig: &str,
    new_client_order_id: &str,
    spec: &InstrumentConfig,
) -> OutgoingMessage {
    OutgoingMessage::new("F")
        .field(ORIG_CL_ORD_ID, orig)
        .field(CL_ORD_ID, new_client_order_id)
        .field(SYMBOL, &order.instrument)
        .field(SIDE, side(order.side))
        .field_timestamp(TRANSACT_TIME, now_nanos(), TimestampPrecision::Millis)
        .field_decimal(ORDER_QTY, Decimal::new(order.quantity, spec.qty_scale))
}

/// OrderCancelReplaceRequest (G) of `order` to `quantity` at `limit_price`.
pub(crate) fn replace_request(
    order: &Order,
    orig: &str,
    new_client_order_id: &str,
    quantity: i64,
    limit_price: Option<i64>,
    spec: &InstrumentConfig,
    time_in_force: TimeInForce,
) -> OutgoingMessage {
    let mut m = OutgoingMessage::new("G")
        .field(ORIG_CL_ORD_ID, orig)
        .field(CL_ORD_ID, new_client_order_id)
        .field(SYMBOL, &order.instrument)
        .field(SIDE, side(order.side))
        .field_timestamp(TRANSACT_TIME, now_nanos(), TimestampPrecision::Millis)
        .field_decimal(ORDER_QTY, Decimal::new(quantity, spec.qty_scale))
        .field(ORD_TYPE, ord_type(order.order_type));
    if let Some(price) = limit_price {
        m = m.field_decimal(PRICE, Decimal::new(price, spec.price_scale));
    }
    m.field(TIME_IN_FORCE, tif(time_in_force))
}

/// A venue message translated for the order manager, with the fill details
/// the report log keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Translated {
    /// What the order manager applies.
    pub report: ExecutionReport,
    /// The kind of report, for the log.
    pub exec_type: ExecType,
    /// Fill quantity (0 unless a trade).
    pub last_quantity: i64,
    /// Fill price of a trade.
    pub last_price: Option<i64>,
    /// Commission of a trade.
    pub commission: Option<i64>,
    /// CumQty (14) of a trade: what the venue has filled of the order with it.
    pub cum_quantity: Option<i64>,
}

fn text(msg: &Message<'_>, what: &str, reason_tag: u32) -> String {
    if let Some(t) = msg.get(TEXT) {
        return String::from_utf8_lossy(t).into_owned();
    }
    match msg.get(reason_tag) {
        Some(code) => format!("{what} (reason {})", String::from_utf8_lossy(code)),
        None => what.to_owned(),
    }
}

/// Translates an ExecutionReport (8) or OrderCancelReject (9); None for other
/// message types (and for reports whose fields cannot be read, with why).
pub(crate) fn translate<'s>(
    msg: &Message<'_>,
    spec: impl Fn(&[u8]) -> Option<&'s InstrumentConfig>,
) -> Result<Option<Translated>, String> {
    let string = |tag: u32| {
        msg.get(tag)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    match msg.msg_type() {
        b"8" => {
            let client_order_id = string(CL_ORD_ID).ok_or("ExecutionReport without ClOrdID")?;
            let exec_id = string(EXEC_ID).ok_or("ExecutionReport without ExecID")?;
            let mut out = Translated {
                report: ExecutionReport {
                    client_order_id,
                    exec_id,
                    kind: ExecKind::New,
                },
                exec_type: ExecType::New,
                last_quantity: 0,
                last_price: None,
                commission: None,
                cum_quantity: None,
            };
            let (kind, exec_type) = match msg.get(EXEC_TYPE) {
                Some(b"0") => (ExecKind::New, ExecType::New),
                Some(b"F" | b"1" | b"2") => {
                    let symbol = msg.get(SYMBOL).unwrap_or_default();
                    let spec = spec(symbol).ok_or_else(|| {
                        format!("unknown symbol {}", String::from_utf8_lossy(symbol))
                    })?;
                    let quantity = msg
                        .get(LAST_QTY)
                        .and_then(|v| mantissa(v, spec.qty_scale))
                        .ok_or("trade without a valid LastQty")?;
                    let price = msg
                        .get(LAST_PX)
                        .and_then(|v| mantissa(v, spec.price_scale))
                        .ok_or("trade without a valid LastPx")?;
                    out.last_quantity = quantity;
                    out.last_price = Some(price);
                    out.commission = msg
                        .get(COMMISSION)
                        .and_then(|v| mantissa(v, spec.price_scale));
                    out.cum_quantity = msg.get(CUM_QTY).and_then(|v| mantissa(v, spec.qty_scale));
                    (ExecKind::Trade { quantity, price }, ExecType::Trade)
                }
                Some(b"4") => (ExecKind::Canceled, ExecType::Canceled),
                Some(b"5") => (ExecKind::Replaced, ExecType::Replaced),
                Some(b"8") => (
                    ExecKind::Rejected(text(msg, "rejected by the venue", ORD_REJ_REASON)),
                    ExecType::Rejected,
                ),
                Some(b"C") => (ExecKind::Expired, ExecType::Expired),
                // Pending, restated, status reports: nothing for the order manager.
                _ => return Ok(None),
            };
            out.report.kind = kind;
            out.exec_type = exec_type;
            Ok(Some(out))
        }
        b"9" => {
            let client_order_id = string(CL_ORD_ID).ok_or("OrderCancelReject without ClOrdID")?;
            // No ExecID on a cancel reject: a request's ClOrdID is unique and gets
            // one answer (the MsgSeqNum is not unique once a session restarts at 1).
            let exec_id = format!("CXLREJ-{client_order_id}");
            Ok(Some(Translated {
                report: ExecutionReport {
                    client_order_id,
                    exec_id,
                    kind: ExecKind::CancelRejected(text(
                        msg,
                        "cancel rejected by the venue",
                        CXL_REJ_REASON,
                    )),
                },
                exec_type: ExecType::CancelRejected,
                last_quantity: 0,
                last_price: None,
                commission: None,
                cum_quantity: None,
            }))
        }
        _ => Ok(None),
    }
}

/// OrderStatusRequest (H) of `order`, under its current ClOrdID.
pub(crate) fn status_request(order: &Order) -> OutgoingMessage {
    OutgoingMessage::new("H")
        .field(CL_ORD_ID, order.client_order_id())
        .field(SYMBOL, &order.instrument)
        .field(SIDE, side(order.side))
}

/// An ExecutionReport with ExecType I (order status), as the venue states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusReport {
    /// ClOrdID (11): the venue's latest for the order.
    pub client_order_id: String,
    /// OrdStatus (39).
    pub ord_status: u8,
    /// OrdRejReason (103), when rejected.
    pub ord_rej_reason: Option<String>,
    /// CumQty (14) mantissa.
    pub cum_quantity: i64,
    /// AvgPx (6) mantissa.
    pub average_price: i64,
    /// Text (58).
    pub text: Option<String>,
}

/// Reads an order status report (35=8, 150=I); Ok(None) for any other message.
///
/// # Errors
/// Why a status report cannot be read (missing ClOrdID or OrdStatus, bad CumQty
/// or AvgPx).
pub(crate) fn status_report(
    msg: &Message<'_>,
    spec: impl Fn(&str) -> Option<InstrumentConfig>,
) -> Result<Option<StatusReport>, String> {
    if msg.msg_type() != b"8" || msg.get(EXEC_TYPE) != Some(b"I") {
        return Ok(None);
    }
    let string = |tag: u32| {
        msg.get(tag)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let client_order_id = string(CL_ORD_ID).ok_or("order status report without ClOrdID")?;
    let ord_status = match msg.get(ORD_STATUS) {
        Some([b]) => *b,
        _ => {
            return Err(format!(
                "order status report of {client_order_id} without OrdStatus"
            ))
        }
    };
    let ord_rej_reason = string(ORD_REJ_REASON);
    let (cum_quantity, average_price) = if ord_status == b'8' {
        (0, 0)
    } else {
        let symbol = string(SYMBOL).unwrap_or_default();
        let spec = spec(&symbol).ok_or_else(|| format!("unknown symbol {symbol}"))?;
        let cum = msg
            .get(CUM_QTY)
            .and_then(|v| mantissa(v, spec.qty_scale))
            .ok_or("order status report without a valid CumQty")?;
        let avg = msg
            .get(AVG_PX)
            .and_then(|v| mantissa(v, spec.price_scale))
            .ok_or("order status report without a valid AvgPx")?;
        (cum, avg)
    };
    Ok(Some(StatusReport {
        client_order_id,
        ord_status,
        ord_rej_reason,
        cum_quantity,
        average_price,
        text: string(TEXT),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip() {
        let m = OutgoingMessage::new("D").field_decimal(PRICE, Decimal::new(10_025, 2));
        assert_eq!(m.body.value(PRICE), Some(&b"100.25"[..]));
        assert_eq!(mantissa(b"100.25", 2), Some(10_025));
        assert_eq!(mantissa(b"100.5", 2), Some(10_050));
        assert_eq!(mantissa(b"7", 0), Some(7));
        assert_eq!(mantissa(b"1.001", 2), None);
        assert_eq!(mantissa(b"x", 2), None);
    }
}
