//! The market-data engine of Nexus: fixed-point prices, tick types, feed
//! parsers (recorded exchange feeds, FIX market data), validation, L2 order
//! books, bars and indicators, reads of the store's Parquet days and the wire
//! encoding of tick streams.

pub mod bars;
pub mod book;
pub mod feeds;
pub mod fix_feed;
pub mod fix_session;
pub mod indicators;
pub mod lean;
pub mod pipeline;
pub mod price;
#[cfg(feature = "python")]
pub mod python;
pub mod quote;
pub mod store;
pub mod wire;

pub use price::{parse_mantissa, MantissaError, Price, PriceError, MAX_SCALE};
pub use quote::{QuoteIssue, QuoteValidator};
