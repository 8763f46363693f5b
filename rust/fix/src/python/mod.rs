//! Python bindings of the FIX crate, mounted into `nexus._native`.

mod errors;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

pub use errors::{FixFrameError, FixParseError};

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;

use crate::dictionary::Dictionary;
use crate::frame;
use crate::message::{Message, MessageBuilder, ParseOptions, TimestampPrecision};
use crate::validate::Validator;

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

/// A parsed FIX message: owns its bytes and the offsets of its fields.
#[pyclass(name = "FixMessage", module = "nexus._native", frozen)]
pub struct PyFixMessage {
    data: Vec<u8>,
    fields: Vec<(u32, usize, usize)>,
    msg_type: String,
}

fn parse_owned(data: &[u8], options: &ParseOptions<'_>) -> PyResult<PyFixMessage> {
    let msg = Message::parse_with_options(data, options).map_err(errors::parse_to_py)?;
    let fields = msg
        .fields()
        .iter()
        .map(|f| {
            let r = f.value_range();
            (f.tag(), r.start, r.end)
        })
        .collect();
    let msg_type = String::from_utf8_lossy(msg.msg_type()).into_owned();
    Ok(PyFixMessage {
        data: data.to_vec(),
        fields,
        msg_type,
    })
}

#[pymethods]
impl PyFixMessage {
    /// Parses one complete FIX message.
    ///
    /// # Errors
    /// Raises `FixParseError` saying why the bytes are not a FIX message.
    #[new]
    fn new(data: &[u8]) -> PyResult<Self> {
        parse_owned(data, &ParseOptions::default())
    }

    /// MsgType (35).
    #[getter]
    fn msg_type(&self) -> &str {
        &self.msg_type
    }

    /// The value of the first field with `tag`, or None.
    fn get<'py>(&self, py: Python<'py>, tag: u32) -> Option<Bound<'py, PyBytes>> {
        self.fields
            .iter()
            .find(|(t, _, _)| *t == tag)
            .map(|(_, a, b)| PyBytes::new(py, &self.data[*a..*b]))
    }

    /// Every field in message order, as (tag, value).
    fn fields<'py>(&self, py: Python<'py>) -> Vec<(u32, Bound<'py, PyBytes>)> {
        self.fields
            .iter()
            .map(|(t, a, b)| (*t, PyBytes::new(py, &self.data[*a..*b])))
            .collect()
    }

    fn __len__(&self) -> usize {
        self.fields.len()
    }

    /// The message's bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.data)
    }
}

/// A FIX data dictionary loaded from a QuickFIX XML spec, with validation.
#[pyclass(name = "FixDictionary", module = "nexus._native", frozen)]
pub struct PyFixDictionary {
    inner: Dictionary,
}

#[pymethods]
impl PyFixDictionary {
    /// Loads a QuickFIX XML data dictionary.
    ///
    /// # Errors
    /// Raises `ValueError` naming the file and the element that is wrong.
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.detach(|| Dictionary::from_file(&path))
            .map(|inner| Self { inner })
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The FIX version, e.g. "FIX.4.4".
    #[getter]
    fn version(&self) -> String {
        self.inner.version().to_owned()
    }

    /// Parses one message using the dictionary (groups, raw data).
    ///
    /// # Errors
    /// Raises `FixParseError` saying why the bytes are not a FIX message.
    fn parse(&self, data: &[u8]) -> PyResult<PyFixMessage> {
        parse_owned(data, &ParseOptions::with_dictionary(&self.inner))
    }

    /// Validates one message: None when valid, else (SessionRejectReason,
    /// RefTagID or None, text) as the session would send in a Reject.
    ///
    /// # Errors
    /// Raises `FixParseError` for bytes that are not a FIX message at all.
    fn validate(&self, data: &[u8]) -> PyResult<Option<(u32, Option<i64>, String)>> {
        let validator = Validator::new(&self.inner);
        let msg = validator.parse(data).map_err(errors::parse_to_py)?;
        Ok(validator
            .validate(&msg)
            .err()
            .map(|r| (r.reason.code(), r.ref_tag_id, r.text.to_owned())))
    }
}

/// Builds a framed message: standard header (8, 9, 35, 49, 56, 34, 52 with
/// milliseconds), then `fields` in order, BodyLength and CheckSum.
#[pyfunction]
#[pyo3(signature = (begin_string, msg_type, sender, target, seq_num, sending_time_ns, fields))]
#[allow(clippy::too_many_arguments)] // mirrors the Python signature, one argument per header field
fn fix_build<'py>(
    py: Python<'py>,
    begin_string: &str,
    msg_type: &str,
    sender: &str,
    target: &str,
    seq_num: u64,
    sending_time_ns: i64,
    fields: Vec<(u32, Vec<u8>)>,
) -> Bound<'py, PyBytes> {
    let mut builder = MessageBuilder::new(begin_string, msg_type);
    builder
        .sender_comp_id(sender)
        .target_comp_id(target)
        .msg_seq_num(seq_num)
        .sending_time(sending_time_ns, TimestampPrecision::Millis);
    for (tag, value) in &fields {
        builder.field(*tag, value);
    }
    PyBytes::new(py, &builder.encode())
}

/// Adds the FIX functions, classes and exceptions to `module`.
///
/// # Errors
/// Fails only if the module cannot take a new attribute.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyFixFrame>()?;
    module.add_class::<PyFixMessage>()?;
    module.add_class::<PyFixDictionary>()?;
    module.add_function(wrap_pyfunction!(fix_build, module)?)?;
    module.add("FixParseError", module.py().get_type::<FixParseError>())?;
    module.add_function(wrap_pyfunction!(fix_checksum, module)?)?;
    module.add_function(wrap_pyfunction!(fix_verify_frame, module)?)?;
    module.add_function(wrap_pyfunction!(fix_encode_frame, module)?)?;
    module.add("FixFrameError", module.py().get_type::<FixFrameError>())?;
    Ok(())
}
