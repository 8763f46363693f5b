//! The paper venue of Nexus: a simulator of a broker that Nexus trades with in
//! paper mode. Nothing here reaches a real market.
//!
//! * [`matching`]: a matching engine per instrument that fills orders against the
//!   top of book it is fed (market, limit, IOC, FOK, cancel, cancel/replace, fees).
//! * [`venue`]: [`PaperVenue`], a FIX 4.4 [`nexus_fix::session::Application`] that
//!   serves NewOrderSingle, OrderCancelRequest and OrderCancelReplaceRequest with
//!   ExecutionReports from the engine, and sends fills of resting orders triggered
//!   by later quotes as unsolicited ExecutionReports.

pub mod matching;
pub mod venue;

pub use matching::{
    EngineConfig, Execution, FeeModel, Fill, InstrumentSpec, MatchingEngine, OrdType, Order,
    OrderId, OrderRequest, OrderStatus, Quote, RejectReason, Side, TimeInForce,
};

pub use venue::{PaperVenue, VenueConfig, VenueError};
