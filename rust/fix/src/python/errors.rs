//! The one place where FIX crate errors become Python exceptions.

use pyo3::exceptions::PyValueError;
use pyo3::{create_exception, PyErr};

use crate::frame::FrameError;

create_exception!(
    nexus._native,
    FixFrameError,
    PyValueError,
    "A byte sequence is not a well-framed FIX message."
);

/// Converts a framing error into a `FixFrameError` carrying its message.
pub fn to_py(err: FrameError) -> PyErr {
    FixFrameError::new_err(err.to_string())
}
