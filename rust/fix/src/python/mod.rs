//! Python bindings of the FIX crate, mounted into `nexus._native`.

mod errors;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

pub use errors::FixFrameError;

use crate::frame;

/// The framing fields of a checked FIX message.
#[pyclass(name = "FixFrame", module = "nexus._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct PyFixFrame {
    /// BeginString (8).
    pub begin_string: String,
    /// BodyLength (9).
    pub body_length: usize,
    /// MsgType (35).
    pub msg_type: String,
    /// CheckSum (10).
    pub checksum: u8,
}

#[pymethods]
impl PyFixFrame {
    fn __repr__(&self) -> String {
        format!(
            "FixFrame(begin_string={:?}, body_length={}, msg_type={:?}, checksum={})",
            self.begin_string, self.body_length, self.msg_type, self.checksum
        )
    }
}

/// Returns the FIX checksum (sum of the bytes modulo 256) of `data`.
#[pyfunction]
fn fix_checksum(data: &[u8]) -> u8 {
    frame::checksum(data)
}

/// Checks the framing of one FIX message and returns its framing fields.
///
/// # Errors
/// Raises `FixFrameError` saying what is wrong with the frame.
#[pyfunction]
fn fix_verify_frame(data: &[u8]) -> PyResult<PyFixFrame> {
    let f = frame::verify(data).map_err(errors::to_py)?;
    Ok(PyFixFrame {
        begin_string: f.begin_string,
        body_length: f.body_length,
        msg_type: f.msg_type,
        checksum: f.checksum,
    })
}

/// Frames a message body (starting with `35=`, ending with SOH) with
/// BeginString, BodyLength and CheckSum.
#[pyfunction]
fn fix_encode_frame<'py>(py: Python<'py>, begin_string: &str, body: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &frame::encode(begin_string, body))
}

/// Adds the FIX functions, classes and exceptions to `module`.
///
/// # Errors
/// Fails only if the module cannot take a new attribute.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyFixFrame>()?;
    module.add_function(wrap_pyfunction!(fix_checksum, module)?)?;
    module.add_function(wrap_pyfunction!(fix_verify_frame, module)?)?;
    module.add_function(wrap_pyfunction!(fix_encode_frame, module)?)?;
    module.add("FixFrameError", module.py().get_type::<FixFrameError>())?;
    Ok(())
}
