//! The execution engine of Nexus: the order manager ([`nexus_oms`]) trading with
//! the paper venue ([`nexus_venue`]) over a FIX 4.4 session ([`nexus_fix`]), all in
//! one process.
//!
//! [`ExecutionEngine::start`] starts, for each configured venue, a paper-venue
//! acceptor on `127.0.0.1` and a FIX initiator connected to it, and one order
//! manager with pre-trade risk limits for all of them. Orders that pass the risk
//! checks leave as NewOrderSingle to the venue they name or the one venue
//! selection picks (lowest fees plus a cost per millisecond of measured
//! acknowledgement time); the execution reports that come back are applied to
//! the order manager on a background thread and appended to a bounded, gap-free
//! report log that callers poll ([`ExecutionEngine::reports_since`]).
//!
//! A venue with [`VenueSetup::connect_to`] is an external FIX 4.4 acceptor (e.g.
//! a QuickFIX one) instead, and no paper venue is started for it.
//!
//! Prices and quantities are fixed-point mantissas at the scales of each
//! instrument ([`InstrumentConfig`]).

pub mod engine;
mod wire;

#[cfg(feature = "python")]
pub mod python;

pub use engine::{
    ExecType, ExecutionConfig, ExecutionEngine, ExecutionError, InstrumentConfig, JournalError,
    JournalStatus, OrderRequest, ReportRecord, SessionState, TimeInForce, VenueSetup, VenueStats,
    JOURNAL_FILE_NAME, REPORT_LOG_CAPACITY,
};
pub use nexus_oms::{Order, OrderStatus, OrderType, Position, RiskLimits, RiskReason, Side};
