//! The one place where execution-engine errors become Python exceptions.

use nexus_fix::session::TlsError;
use nexus_oms::ManagerError;
use pyo3::exceptions::PyValueError;
use pyo3::{create_exception, PyErr};

use crate::engine::ExecutionError as EngineError;

create_exception!(
    nexus._native,
    ExecutionError,
    PyValueError,
    "The execution engine failed: it could not start, the FIX session is not logged on, \
     the engine is stopped, or the order cannot be changed in its state."
);

/// Converts an engine error: bad arguments become `ValueError`, engine failures
/// `ExecutionError` (a `ValueError` too); both carry the message.
pub fn to_py(err: EngineError) -> PyErr {
    match &err {
        EngineError::Config(_)
        | EngineError::Invalid(_)
        | EngineError::UnknownInstrument(_)
        | EngineError::Manager(
            ManagerError::DuplicateClientOrderId(_)
            | ManagerError::Invalid(_)
            | ManagerError::UnknownOrder(_),
        ) => PyValueError::new_err(err.to_string()),
        EngineError::Store(_)
        | EngineError::Journal(_)
        | EngineError::Tls {
            source: TlsError::Read { .. },
            ..
        } => pyo3::exceptions::PyOSError::new_err(err.to_string()),
        EngineError::Tls { .. } => PyValueError::new_err(err.to_string()),
        _ => ExecutionError::new_err(err.to_string()),
    }
}
