//! The paper venue of Nexus: a simulator of a broker that Nexus trades with in
//! paper mode. Nothing here reaches a real market.
//!
//! * [`matching`]: a matching engine per instrument that fills orders against the
//!   top of book it is fed (market, limit, IOC, FOK, cancel, cancel/replace, fees).
//! * [`venue`]: [`PaperVenue`], a FIX 4.4 [`nexus_fix::session::Application`] that
//!   serves NewOrderSingle, OrderCancelRequest and OrderCancelReplaceRequest with
//!   ExecutionReports from the engine, and sends fills of resting orders triggered
//!   by later quotes as unsolicited ExecutionReports.
//! * [`market_data`]: [`MarketDataVenue`], a FIX 4.4 market-data publisher that answers
//!   MarketDataRequest with a snapshot and incremental refreshes of the books it is fed.

pub mod market_data;
pub mod matching;
#[cfg(feature = "python")]
pub mod python;
pub mod venue;

pub use market_data::{MarketDataVenue, MdVenueConfig, MdVenueError, MdVenueStats};

pub use matching::{
    EngineConfig, Execution, FeeModel, Fill, InstrumentSpec, MatchingEngine, OrdType, Order,
    OrderId, OrderRequest, OrderStatus, Quote, RejectReason, Side, TimeInForce,
};

pub use venue::{PaperVenue, VenueConfig, VenueError};
