//! Reconciliation with the venues after a restart, the way a FIX order manager
//! does it: every order the journal restored open is asked about with an
//! OrderStatusRequest (35=H) once its venue's session logs on, and the answer
//! (an ExecutionReport with ExecType I) is applied:
//!
//! * a fill the venue counts and we do not (CumQty above ours) becomes a trade
//!   of the difference, at the price that makes our average the venue's AvgPx;
//! * a replace the venue took (it reports the replace's ClOrdID) is applied; a
//!   change it never took is dropped (as a cancel reject);
//! * Canceled or Expired at the venue ends the order so; New acknowledges one
//!   still pending;
//! * an order the venue does not know (OrdStatus 8 Rejected with OrdRejReason 5,
//!   FIX 4.4) ends as [`nexus_oms::ExecKind::Lost`]: Rejected if it was never
//!   acknowledged, else Canceled, with the reason. The in-process paper venue
//!   restarts empty, so every order resting there before a restart ends so.
//!
//! Derived reports carry ExecIDs `STATUS-<order id>-<what>`, so that a second
//! answer changes nothing; a trade report whose CumQty is already counted (a
//! resend under a new ExecID, or a fill already taken from a status answer) is
//! not applied twice ([`already_counted`]).

use std::collections::BTreeSet;
use std::sync::mpsc::TrySendError;
use std::sync::Mutex;

use nexus_fix::message::Message;
use nexus_fix::session::{SessionId, SessionSender};
use nexus_oms::{ExecKind, ExecutionReport, OrderStatus, PendingChange};

use super::{lock, Book, ExecType, InstrumentConfig, ReportRecord};
use crate::wire::{self, Translated};

/// Where reconciliation stands.
#[derive(Debug, Default)]
pub(crate) struct Reconciliation {
    /// Each venue's outgoing channel, once the links run.
    senders: Vec<SessionSender>,
    /// Venues whose session logged on before the channels were handed over.
    early: BTreeSet<usize>,
    /// Orders restored open and not yet answered for.
    pending: BTreeSet<u64>,
    /// Status requests sent.
    pub(crate) asked: u64,
    /// Status answers applied.
    pub(crate) answered: u64,
}

/// After the journal is replayed: every open order is to be asked about.
pub(super) fn restored(book: &mut Book) {
    book.recon.pending = book
        .oms
        .orders()
        .into_iter()
        .filter(|o| !o.status.is_terminal())
        .map(|o| o.order_id)
        .collect();
}

/// Orders restored open and not yet answered for by their venue.
pub(super) fn unanswered(book: &Book) -> usize {
    book.recon.pending.len()
}

/// Hands over the venues' outgoing channels once the links run; asks the venues
/// whose session has logged on already.
pub(super) fn install(book: &Mutex<Book>, senders: Vec<SessionSender>) {
    let mut book = lock(book);
    book.recon.senders = senders;
    let early = std::mem::take(&mut book.recon.early);
    for venue in early {
        ask(&mut book, venue);
    }
}

/// A session logged on: asks its venue about the orders still to reconcile.
pub(super) fn on_logon(book: &Mutex<Book>, session: &SessionId, venues: &[String]) {
    let Some(venue) = venues.iter().position(|v| *v == session.target_comp_id) else {
        return;
    };
    let mut book = lock(book);
    if book.recon.pending.is_empty() {
        return;
    }
    if book.recon.senders.is_empty() {
        book.recon.early.insert(venue);
    } else {
        ask(&mut book, venue);
    }
}

/// Sends an OrderStatusRequest for every order still to reconcile at `venue`,
/// without blocking (what does not fit in the channel is noted and asked again
/// at the next logon).
fn ask(book: &mut Book, venue: usize) {
    let Some(sender) = book.recon.senders.get(venue).cloned() else {
        return;
    };
    let ids: Vec<u64> = book.recon.pending.iter().copied().collect();
    for id in ids {
        if book.venue_of.get(&id) != Some(&venue) {
            continue;
        }
        let Some(order) = book.oms.order(id) else {
            continue;
        };
        match sender.try_send(wire::status_request(order)) {
            Ok(()) => book.recon.asked += 1,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                book.note_unapplied(format!(
                    "order status request for order {id} not sent (channel full or closed); \
                     asked again at the next logon"
                ));
                return;
            }
        }
    }
}

/// Applies an order status answer (ExecType I); returns false when `msg` is not
/// one (it is then for [`super::apply`]).
pub(super) fn on_status(
    book: &mut Book,
    msg: &Message<'_>,
    instruments: &nexus_collections::FastHashMap<String, InstrumentConfig>,
    venues: &[String],
) -> bool {
    let status = match wire::status_report(msg, |s| instruments.get(s).cloned()) {
        Ok(Some(s)) => s,
        Ok(None) => return false,
        Err(why) => {
            book.note_unapplied(why);
            return true;
        }
    };
    let Some(order) = book
        .oms
        .order_by_client_id(&status.client_order_id)
        .cloned()
    else {
        book.note_unapplied(format!(
            "order status of {}: no such order",
            status.client_order_id
        ));
        return true;
    };
    let id = order.order_id;
    book.recon.pending.remove(&id);
    book.recon.answered += 1;
    let venue = book
        .venue_of
        .get(&id)
        .and_then(|&i| venues.get(i))
        .cloned()
        .unwrap_or_default();
    let text = status.text.clone().unwrap_or_default();
    let derived = |what: String, kind: ExecKind| ExecutionReport {
        client_order_id: status.client_order_id.clone(),
        exec_id: format!("STATUS-{id}-{what}"),
        kind,
    };

    if status.ord_status == b'8' && status.ord_rej_reason.as_deref() == Some("5") {
        if !order.status.is_terminal() {
            let exec_type = if order.status == OrderStatus::PendingNew {
                ExecType::Rejected
            } else {
                ExecType::Canceled
            };
            let why = format!(
                "the venue does not know the order ({}): it is not working there; \
                 a paper venue restarts empty",
                if text.is_empty() {
                    "unknown order"
                } else {
                    &text
                }
            );
            let report = ExecutionReport {
                client_order_id: order.client_order_id().to_owned(),
                ..derived("lost".into(), ExecKind::Lost(why))
            };
            apply_derived(book, &report, exec_type, None, &venue);
        }
        return true;
    }

    // A change in flight: taken if the venue answers under its ClOrdID.
    match &order.pending {
        Some(PendingChange::Replace(cl, _, _)) if *cl == status.client_order_id => {
            let report = derived(format!("replaced-{cl}"), ExecKind::Replaced);
            apply_derived(book, &report, ExecType::Replaced, None, &venue);
        }
        Some(PendingChange::Cancel(cl)) if *cl == status.client_order_id => {}
        Some(PendingChange::Cancel(cl) | PendingChange::Replace(cl, _, _)) => {
            let report = ExecutionReport {
                client_order_id: cl.clone(),
                ..derived(
                    format!("dropped-{cl}"),
                    ExecKind::CancelRejected(
                        "the venue had not taken the change when it was asked after a restart"
                            .into(),
                    ),
                )
            };
            apply_derived(book, &report, ExecType::CancelRejected, None, &venue);
        }
        None => {}
    }

    // Fills the venue counts and we do not.
    let Some(order) = book.oms.order(id).cloned() else {
        return true;
    };
    let missing = status.cum_quantity - order.filled;
    if missing > 0 && !order.status.is_terminal() {
        let venue_cost = i128::from(status.cum_quantity) * i128::from(status.average_price);
        let cost = venue_cost - order.filled_cost;
        let m = i128::from(missing);
        let price = i64::try_from((cost + m / 2) / m)
            .unwrap_or(status.average_price)
            .max(1);
        let report = derived(
            format!("fill-{}", status.cum_quantity),
            ExecKind::Trade {
                quantity: missing,
                price,
            },
        );
        apply_derived(
            book,
            &report,
            ExecType::Trade,
            Some((missing, price)),
            &venue,
        );
    }

    let Some(order) = book.oms.order(id).cloned() else {
        return true;
    };
    if order.status.is_terminal() {
        return true;
    }
    let end = match status.ord_status {
        b'4' | b'3' => Some((ExecKind::Canceled, ExecType::Canceled, "canceled")),
        b'C' => Some((ExecKind::Expired, ExecType::Expired, "expired")),
        b'8' if order.status == OrderStatus::PendingNew => Some((
            ExecKind::Rejected(if text.is_empty() {
                "rejected by the venue".into()
            } else {
                text.clone()
            }),
            ExecType::Rejected,
            "rejected",
        )),
        b'0' | b'1' if order.status == OrderStatus::PendingNew => {
            Some((ExecKind::New, ExecType::New, "new"))
        }
        _ => None,
    };
    if let Some((kind, exec_type, what)) = end {
        let report = derived(what.into(), kind);
        apply_derived(book, &report, exec_type, None, &venue);
    }
    true
}

/// Applies a report derived from a status answer as a venue report is applied:
/// to the manager, the journal and the report log.
fn apply_derived(
    book: &mut Book,
    report: &ExecutionReport,
    exec_type: ExecType,
    fill: Option<(i64, i64)>,
    venue: &str,
) {
    match book.oms.on_execution_report(report) {
        Ok(true) => {
            let Some(order) = book
                .oms
                .order_by_client_id(&report.client_order_id)
                .cloned()
            else {
                return;
            };
            let last = (fill.map_or(0, |f| f.0), fill.map(|f| f.1), None);
            book.push(ReportRecord {
                sequence: 0,
                exec_id: report.exec_id.clone(),
                exec_type,
                order,
                last_quantity: last.0,
                last_price: last.1,
                commission: None,
                venue: venue.to_owned(),
            });
            super::journal::record_report(book, report, exec_type, last, venue);
        }
        Ok(false) => {}
        Err(e) => book.note_unapplied(format!(
            "{} (ExecID {}, from an order status answer): {e}",
            report.client_order_id, report.exec_id
        )),
    }
}

/// Why a trade report is not applied when the fill it reports is already
/// counted: its CumQty is at most what the order has filled (a resend under a
/// new ExecID, or a fill taken from a status answer first); None to apply it.
pub(super) fn already_counted(book: &Book, translated: &Translated) -> Option<String> {
    let cum = translated.cum_quantity?;
    if !matches!(translated.report.kind, ExecKind::Trade { .. })
        || book.oms.knows_exec_id(&translated.report.exec_id)
    {
        return None;
    }
    let order = book
        .oms
        .order_by_client_id(&translated.report.client_order_id)?;
    (cum <= order.filled).then(|| {
        format!(
            "{} (ExecID {}): trade with CumQty {cum} already counted (filled {}); not applied again",
            translated.report.client_order_id, translated.report.exec_id, order.filled
        )
    })
}
