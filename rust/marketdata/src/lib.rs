//! The market-data engine of Nexus: fixed-point prices, tick types and their
//! validation (normalisation, order books, bars and indicators grow here).

pub mod price;
#[cfg(feature = "python")]
pub mod python;
pub mod quote;

pub use price::{Price, PriceError, MAX_SCALE};
pub use quote::{QuoteIssue, QuoteValidator};
