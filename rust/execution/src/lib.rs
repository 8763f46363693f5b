//! The execution engine of Nexus: the order manager ([`nexus_oms`]) trading with
//! the paper venue ([`nexus_venue`]) over a FIX 4.4 session ([`nexus_fix`]), all in
//! one process.
//!
//! [`ExecutionEngine::start`] starts a paper-venue acceptor on `127.0.0.1`, a FIX
//! initiator connected to it and an order manager with pre-trade risk limits.
//! Orders that pass the risk checks leave as NewOrderSingle; the execution reports
//! that come back are applied to the order manager on a background thread and
//! appended to a bounded, gap-free report log that callers poll
//! ([`ExecutionEngine::reports_since`]).
//!
//! With [`ExecutionConfig::connect_to`] the initiator connects to an external
//! FIX 4.4 acceptor (e.g. a QuickFIX one) instead, and no paper venue is started.
//!
//! Prices and quantities are fixed-point mantissas at the scales of each
//! instrument ([`InstrumentConfig`]).

pub mod engine;
mod wire;

#[cfg(feature = "python")]
pub mod python;

pub use engine::{
    ExecType, ExecutionConfig, ExecutionEngine, ExecutionError, InstrumentConfig, OrderRequest,
    ReportRecord, SessionState, TimeInForce, REPORT_LOG_CAPACITY,
};
pub use nexus_oms::{Order, OrderStatus, OrderType, Position, RiskLimits, RiskReason, Side};
