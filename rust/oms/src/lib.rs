//! The order manager of Nexus: the order state machine driven by execution
//! reports, ClOrdID chains for cancel/replace, positions and average prices
//! from fills, and the pre-trade risk checks that run before a message leaves.
//!
//! Prices and quantities are fixed-point mantissas at the instrument's scale
//! (as everywhere in Nexus); notional and P&L use i128 so that no product
//! overflows.

pub mod manager;
pub mod position;
pub mod risk;
pub mod state;

pub use manager::{
    ExecKind, ExecutionReport, ManagerError, ManagerState, NewOrder, Order, OrderManager,
    OrderType, PendingChange, Side,
};
pub use position::{FillSide, Position};
pub use risk::{RiskCheck, RiskEngine, RiskLimits, RiskReason, RiskReject};
pub use state::{transition, ExecEvent, OrderStatus, TransitionError};
