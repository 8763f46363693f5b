//! Python bindings of the market-data crate, mounted into `nexus._native`.

mod errors;

use pyo3::prelude::*;

pub use errors::PriceError;

use crate::price::Price;
use crate::quote::{QuoteIssue, QuoteValidator};

/// Parses a decimal text into a fixed-point mantissa at `scale` places.
///
/// # Errors
/// Raises `PriceError` saying why the text is not a price at that scale.
#[pyfunction]
fn parse_price(text: &str, scale: u8) -> PyResult<i64> {
    Price::parse(text, scale)
        .map(|p| p.mantissa)
        .map_err(errors::to_py)
}

/// Checks quotes of one instrument in order and counts rejections by reason.
#[pyclass(name = "QuoteValidator", module = "nexus._native")]
#[derive(Debug, Default)]
pub struct PyQuoteValidator {
    inner: QuoteValidator,
}

#[pymethods]
impl PyQuoteValidator {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Checks one quote; returns None if accepted, else the reason's name.
    fn check(&mut self, ts_ns: i64, bid: i64, ask: i64) -> Option<&'static str> {
        self.inner
            .check(ts_ns, bid, ask)
            .err()
            .map(QuoteIssue::name)
    }

    /// Quotes accepted so far.
    #[getter]
    fn accepted(&self) -> u64 {
        self.inner.accepted()
    }

    /// Rejections so far, by reason name (every reason present, zero or not).
    fn rejections(&self) -> Vec<(&'static str, u64)> {
        QuoteIssue::ALL
            .iter()
            .map(|issue| (issue.name(), self.inner.rejected(*issue)))
            .collect()
    }
}

/// Adds the market-data functions, classes and exceptions to `module`.
///
/// # Errors
/// Fails only if the module cannot take a new attribute.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyQuoteValidator>()?;
    module.add_function(wrap_pyfunction!(parse_price, module)?)?;
    module.add("PriceError", module.py().get_type::<PriceError>())?;
    Ok(())
}
