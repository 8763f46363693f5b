//! The one place where market-data crate errors become Python exceptions.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::{create_exception, PyErr};

use crate::lean::LeanError;
use crate::pipeline::PipelineError;
use crate::price;
use crate::store::StoreReadError;

create_exception!(
    nexus._native,
    PriceError,
    PyValueError,
    "A text is not a valid price at the requested scale."
);

create_exception!(
    nexus._native,
    DataFileError,
    PyValueError,
    "A market-data file is not in the format its reader expects."
);

create_exception!(
    nexus._native,
    BookStateError,
    PyValueError,
    "An order book refused a snapshot or an update (gap, negative size, not live)."
);

/// Converts a price error into a `PriceError` carrying its message.
pub fn to_py(err: price::PriceError) -> PyErr {
    PriceError::new_err(err.to_string())
}

/// Converts a Lean reader error: I/O problems become `OSError`, format
/// problems `DataFileError`; both carry the path and the reason.
pub fn lean_to_py(err: LeanError) -> PyErr {
    match err {
        LeanError::Io { .. } => PyOSError::new_err(err.to_string()),
        _ => DataFileError::new_err(err.to_string()),
    }
}

/// Converts a store read error: a file that cannot be opened becomes
/// `OSError`, anything else `DataFileError`; both carry the path and reason.
pub fn store_to_py(err: StoreReadError) -> PyErr {
    match err {
        StoreReadError::Io { .. } => PyOSError::new_err(err.to_string()),
        _ => DataFileError::new_err(err.to_string()),
    }
}

/// Converts a pipeline error: read errors as [`lean_to_py`] does, a lost
/// inflate thread `RuntimeError`, bad parameters `ValueError`.
pub fn pipeline_to_py(err: PipelineError) -> PyErr {
    match err {
        PipelineError::Read(read) => lean_to_py(read),
        PipelineError::InflateThread(_) => PyRuntimeError::new_err(err.to_string()),
        PipelineError::Indicator(_) | PipelineError::Bars(_) => {
            PyValueError::new_err(err.to_string())
        }
    }
}
