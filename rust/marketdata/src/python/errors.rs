//! The one place where market-data crate errors become Python exceptions.

use pyo3::exceptions::PyValueError;
use pyo3::{create_exception, PyErr};

use crate::price;

create_exception!(
    nexus._native,
    PriceError,
    PyValueError,
    "A text is not a valid price at the requested scale."
);

/// Converts a price error into a `PriceError` carrying its message.
pub fn to_py(err: price::PriceError) -> PyErr {
    PriceError::new_err(err.to_string())
}
