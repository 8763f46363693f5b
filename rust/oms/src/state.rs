//! The order state machine: which execution report may follow which state.

use thiserror::Error;

/// The state of an order (FIX OrdStatus, as in `nexus.execution.v1.OrderStatus`).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Sent, not yet acknowledged.
    PendingNew,
    /// Acknowledged and working.
    New,
    /// Partly filled and still working.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Cancelled.
    Canceled,
    /// Replaced by a newer order of the chain.
    Replaced,
    /// Refused.
    Rejected,
    /// Expired by its time in force.
    Expired,
}

impl OrderStatus {
    /// Whether no further execution report can change the order.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Filled | Self::Canceled | Self::Replaced | Self::Rejected | Self::Expired
        )
    }
}

/// What an execution report says happened (FIX ExecType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecEvent {
    /// The venue acknowledged the order.
    New,
    /// A fill; `complete` when nothing is left.
    Trade {
        /// Whether leaves quantity is now zero.
        complete: bool,
    },
    /// The order was cancelled.
    Canceled,
    /// The order was replaced.
    Replaced,
    /// The order was rejected.
    Rejected,
    /// The order expired.
    Expired,
}

/// An execution report that cannot apply to an order in its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("execution report {event:?} cannot apply to an order in state {from:?}")]
pub struct TransitionError {
    /// The order's state.
    pub from: OrderStatus,
    /// The event that does not fit it.
    pub event: ExecEvent,
}

/// Returns the state an order moves to when `event` is reported.
///
/// # Errors
/// Returns [`TransitionError`] for an event that cannot follow `from`,
/// e.g. any event on a terminal order, or an acknowledgement after a fill.
pub fn transition(from: OrderStatus, event: ExecEvent) -> Result<OrderStatus, TransitionError> {
    use OrderStatus as S;
    let to = match (from, event) {
        (s, _) if s.is_terminal() => None,
        (S::PendingNew, ExecEvent::New) => Some(S::New),
        (S::PendingNew, ExecEvent::Rejected) => Some(S::Rejected),
        (S::PendingNew | S::New | S::PartiallyFilled, ExecEvent::Trade { complete: true }) => {
            Some(S::Filled)
        }
        (S::PendingNew | S::New | S::PartiallyFilled, ExecEvent::Trade { complete: false }) => {
            Some(S::PartiallyFilled)
        }
        (S::New | S::PartiallyFilled, ExecEvent::Canceled) => Some(S::Canceled),
        (S::New | S::PartiallyFilled, ExecEvent::Replaced) => Some(S::Replaced),
        (S::New | S::PartiallyFilled, ExecEvent::Expired) => Some(S::Expired),
        _ => None,
    };
    to.ok_or(TransitionError { from, event })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_life_cycle() {
        let s = transition(OrderStatus::PendingNew, ExecEvent::New);
        assert_eq!(s, Ok(OrderStatus::New));
        let s = transition(OrderStatus::New, ExecEvent::Trade { complete: false });
        assert_eq!(s, Ok(OrderStatus::PartiallyFilled));
        let s = transition(
            OrderStatus::PartiallyFilled,
            ExecEvent::Trade { complete: true },
        );
        assert_eq!(s, Ok(OrderStatus::Filled));
    }

    #[test]
    fn terminal_orders_accept_nothing() {
        for from in [
            OrderStatus::Filled,
            OrderStatus::Canceled,
            OrderStatus::Rejected,
        ] {
            assert_eq!(
                transition(from, ExecEvent::New),
                Err(TransitionError {
                    from,
                    event: ExecEvent::New
                })
            );
        }
    }

    #[test]
    fn ack_after_fill_is_refused() {
        assert!(transition(OrderStatus::PartiallyFilled, ExecEvent::New).is_err());
        assert!(transition(OrderStatus::PendingNew, ExecEvent::Canceled).is_err());
    }
}
