//! The one place where FIX crate errors become Python exceptions.

use pyo3::exceptions::PyValueError;
use pyo3::{create_exception, PyErr};

use crate::frame::FrameError;
use crate::message::ParseError;

create_exception!(
    nexus._native,
    FixFrameError,
    PyValueError,
    "A byte sequence is not a well-framed FIX message."
);

create_exception!(
    nexus._native,
    FixParseError,
    PyValueError,
    "Bytes are not a FIX message the codec can parse."
);

/// Converts a parse error into a `FixParseError` carrying its message.
pub fn parse_to_py(err: ParseError) -> PyErr {
    FixParseError::new_err(err.to_string())
}

/// Converts a framing error into a `FixFrameError` carrying its message.
pub fn to_py(err: FrameError) -> PyErr {
    FixFrameError::new_err(err.to_string())
}
