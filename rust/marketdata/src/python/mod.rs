//! Python bindings of the market-data crate, mounted into `nexus._native`.
//!
//! Batch entry points release the GIL while they work and hand columns to
//! Python as numpy arrays that take over the Rust vectors (no copy).

mod book;
mod errors;
mod fix_feed;
mod fix_session;
mod indicators;

use std::cell::RefCell;
use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

pub use errors::{BookStateError, DataFileError, PriceError};

use crate::lean::{self, BarSide, ReadReport};
use crate::price::Price;
use crate::quote::{QuoteIssue, QuoteValidator};
use crate::store::{Column as StoredColumn, DayFile};
use crate::wire;

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

impl PyQuoteValidator {
    /// Checks the rows in order without the GIL, mapping each verdict.
    fn map_batch<T: Send>(
        &mut self,
        py: Python<'_>,
        ts: &[i64],
        bid: &[i64],
        ask: &[i64],
        f: impl Fn(Result<(), QuoteIssue>) -> T + Sync,
    ) -> Vec<T> {
        let inner = &mut self.inner;
        py.detach(|| {
            ts.iter()
                .zip(bid)
                .zip(ask)
                .map(|((t, b), a)| f(inner.check(*t, *b, *a)))
                .collect()
        })
    }
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

    /// Checks whole columns of quotes in order, without the GIL; returns a
    /// boolean array, True where the quote was accepted.
    ///
    /// # Errors
    /// Raises `ValueError` when the columns differ in length.
    fn check_batch<'py>(
        &mut self,
        py: Python<'py>,
        ts_ns: PyReadonlyArray1<'py, i64>,
        bid: PyReadonlyArray1<'py, i64>,
        ask: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let (ts, b, a) = same_length(&ts_ns, &bid, &ask)?;
        let accepted = self.map_batch(py, ts, b, a, |verdict| verdict.is_ok());
        Ok(accepted.into_pyarray(py))
    }

    /// Checks whole columns of quotes in order, without the GIL; returns the
    /// per-row quality flags of the contract: 0 for an accepted quote, else
    /// bit `1 << QualityIssue` of the reason it was rejected.
    ///
    /// # Errors
    /// Raises `ValueError` when the columns differ in length.
    fn flag_batch<'py>(
        &mut self,
        py: Python<'py>,
        ts_ns: PyReadonlyArray1<'py, i64>,
        bid: PyReadonlyArray1<'py, i64>,
        ask: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let (ts, b, a) = same_length(&ts_ns, &bid, &ask)?;
        let flags = self.map_batch(py, ts, b, a, |verdict| match verdict {
            Ok(()) => 0u32,
            Err(issue) => 1 << issue.proto_number(),
        });
        Ok(flags.into_pyarray(py))
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

/// Returns the three columns as slices, or a `ValueError` if their lengths differ.
fn same_length<'a>(
    ts_ns: &'a PyReadonlyArray1<'_, i64>,
    bid: &'a PyReadonlyArray1<'_, i64>,
    ask: &'a PyReadonlyArray1<'_, i64>,
) -> PyResult<(&'a [i64], &'a [i64], &'a [i64])> {
    let (ts, b, a) = (ts_ns.as_slice()?, bid.as_slice()?, ask.as_slice()?);
    if ts.len() != b.len() || ts.len() != a.len() {
        return Err(PyValueError::new_err(format!(
            "columns differ in length: ts_ns {}, bid {}, ask {}",
            ts.len(),
            b.len(),
            a.len()
        )));
    }
    Ok((ts, b, a))
}

/// The per-row flags as a slice (empty when absent), or a `ValueError` when
/// their length differs from the other columns'.
fn flag_column<'a>(
    flags: Option<&'a PyReadonlyArray1<'_, u32>>,
    rows: usize,
) -> PyResult<&'a [u32]> {
    let values: &[u32] = match flags {
        Some(f) => f.as_slice()?,
        None => &[],
    };
    if !values.is_empty() && values.len() != rows {
        return Err(PyValueError::new_err(format!(
            "flags has {} rows, the other columns {rows}",
            values.len()
        )));
    }
    Ok(values)
}

fn report_dict<'py>(py: Python<'py>, report: &ReadReport) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("rows", report.rows)?;
    let bad = PyDict::new(py);
    for (reason, count) in &report.bad_rows {
        bad.set_item(*reason, *count)?;
    }
    dict.set_item("bad_rows", bad)?;
    dict.set_item("first_bad_lines", report.first_bad_lines.clone())?;
    dict.set_item("empty_rows", report.empty_rows)?;
    Ok(dict)
}

type Column<'py> = Bound<'py, PyArray1<i64>>;

/// Reads a Lean quote-tick zip into (ts_ns, bid, ask, report), without the GIL.
///
/// # Errors
/// Raises `OSError` or `DataFileError` naming the file and the reason.
#[pyfunction]
#[pyo3(signature = (path, price_scale, utc_offset_minutes = 0))]
fn read_lean_quote_ticks(
    py: Python<'_>,
    path: PathBuf,
    price_scale: u8,
    utc_offset_minutes: i32,
) -> PyResult<(Column<'_>, Column<'_>, Column<'_>, Bound<'_, PyDict>)> {
    let (ticks, report) = py
        .detach(|| lean::read_quote_ticks(&path, price_scale, utc_offset_minutes))
        .map_err(errors::lean_to_py)?;
    Ok((
        ticks.ts_ns.into_pyarray(py),
        ticks.bid.into_pyarray(py),
        ticks.ask.into_pyarray(py),
        report_dict(py, &report)?,
    ))
}

/// Reads a Lean futures trade-tick zip into a list of
/// (contract, ts_ns, price, size) and a report, without the GIL.
///
/// # Errors
/// Raises `OSError` or `DataFileError` naming the file and the reason.
#[pyfunction]
#[pyo3(signature = (path, price_scale, size_scale = 0, utc_offset_minutes = 0))]
#[allow(clippy::type_complexity)]
fn read_lean_trade_ticks(
    py: Python<'_>,
    path: PathBuf,
    price_scale: u8,
    size_scale: u8,
    utc_offset_minutes: i32,
) -> PyResult<(
    Vec<(String, Column<'_>, Column<'_>, Column<'_>)>,
    Bound<'_, PyDict>,
)> {
    let (series, report) = py
        .detach(|| lean::read_trade_ticks(&path, price_scale, size_scale, utc_offset_minutes))
        .map_err(errors::lean_to_py)?;
    let out = series
        .into_iter()
        .map(|(contract, t)| {
            (
                contract,
                t.ts_ns.into_pyarray(py),
                t.price.into_pyarray(py),
                t.size.into_pyarray(py),
            )
        })
        .collect();
    Ok((out, report_dict(py, &report)?))
}

/// One bar series for Python: (contract, ts_ns, open, high, low, close, volume).
type BarColumns<'py> = (
    String,
    Column<'py>,
    Column<'py>,
    Column<'py>,
    Column<'py>,
    Column<'py>,
    Column<'py>,
);

fn bar_columns(py: Python<'_>, series: Vec<(String, lean::Bars)>) -> Vec<BarColumns<'_>> {
    series
        .into_iter()
        .map(|(contract, b)| {
            (
                contract,
                b.ts_ns.into_pyarray(py),
                b.open.into_pyarray(py),
                b.high.into_pyarray(py),
                b.low.into_pyarray(py),
                b.close.into_pyarray(py),
                b.volume.into_pyarray(py),
            )
        })
        .collect()
}

/// Reads one side ("bid" or "ask") of a Lean minute quote-bar zip into a
/// list of (contract, ts_ns, open, high, low, close, volume) and a report,
/// without the GIL.
///
/// # Errors
/// Raises `ValueError` for an unknown side, `OSError` or `DataFileError`
/// naming the file and the reason.
#[pyfunction]
#[pyo3(signature = (path, side, price_scale, utc_offset_minutes = 0))]
fn read_lean_quote_bars<'py>(
    py: Python<'py>,
    path: PathBuf,
    side: &str,
    price_scale: u8,
    utc_offset_minutes: i32,
) -> PyResult<(Vec<BarColumns<'py>>, Bound<'py, PyDict>)> {
    let side = match side {
        "bid" => BarSide::Bid,
        "ask" => BarSide::Ask,
        other => {
            return Err(PyValueError::new_err(format!(
                "side must be 'bid' or 'ask', not {other:?}"
            )))
        }
    };
    let (series, report) = py
        .detach(|| lean::read_quote_bars(&path, side, price_scale, utc_offset_minutes))
        .map_err(errors::lean_to_py)?;
    Ok((bar_columns(py, series), report_dict(py, &report)?))
}

/// Reads a Lean minute trade-bar zip into a list of
/// (contract, ts_ns, open, high, low, close, volume) and a report, without the GIL.
///
/// # Errors
/// Raises `OSError` or `DataFileError` naming the file and the reason.
#[pyfunction]
#[pyo3(signature = (path, price_scale, size_scale = 0, utc_offset_minutes = 0))]
fn read_lean_trade_bars(
    py: Python<'_>,
    path: PathBuf,
    price_scale: u8,
    size_scale: u8,
    utc_offset_minutes: i32,
) -> PyResult<(Vec<BarColumns<'_>>, Bound<'_, PyDict>)> {
    let (series, report) = py
        .detach(|| lean::read_trade_bars(&path, price_scale, size_scale, utc_offset_minutes))
        .map_err(errors::lean_to_py)?;
    Ok((bar_columns(py, series), report_dict(py, &report)?))
}

/// Encodes a serialized `nexus.marketdata.v1.StreamTicksResponse` with one
/// quote batch from numpy columns, without the GIL (an empty `ts_ns` encodes
/// no batch, for the end-of-replay message).
///
/// # Errors
/// Raises `ValueError` when the columns differ in length.
#[pyfunction]
#[pyo3(signature = (symbol, venue, price_scale, size_scale, ts_ns, bid, ask, flags = None, sequence = 0, dropped_ticks = 0, end_of_replay = false))]
#[allow(clippy::too_many_arguments)]
fn encode_stream_ticks<'py>(
    py: Python<'py>,
    symbol: &str,
    venue: &str,
    price_scale: i32,
    size_scale: i32,
    ts_ns: PyReadonlyArray1<'py, i64>,
    bid: PyReadonlyArray1<'py, i64>,
    ask: PyReadonlyArray1<'py, i64>,
    flags: Option<PyReadonlyArray1<'py, u32>>,
    sequence: u64,
    dropped_ticks: u64,
    end_of_replay: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let (ts, b, a) = same_length(&ts_ns, &bid, &ask)?;
    let flag_values = flag_column(flags.as_ref(), ts.len())?;
    let bytes = py.detach(|| {
        let columns = wire::QuoteColumns {
            symbol,
            venue,
            price_scale,
            size_scale,
            ts_ns: ts,
            bid: b,
            ask: a,
            flags: flag_values,
        };
        let batch = (!ts.is_empty()).then_some(&columns);
        wire::stream_ticks_response(batch, sequence, dropped_ticks, end_of_replay)
    });
    Ok(PyBytes::new(py, &bytes))
}

/// A Parquet day file of the store, read one row group at a time.
#[pyclass(name = "ParquetDay", module = "nexus._native", frozen)]
#[derive(Debug)]
pub struct PyParquetDay {
    inner: DayFile,
}

#[pymethods]
impl PyParquetDay {
    /// Opens a day file and reads its footer, without the GIL.
    ///
    /// # Errors
    /// Raises `OSError` when the file cannot be opened and `DataFileError`
    /// when it is not Parquet.
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| DayFile::open(&path))
            .map_err(errors::store_to_py)?;
        Ok(Self { inner })
    }

    /// The number of row groups.
    #[getter]
    fn row_groups(&self) -> usize {
        self.inner.row_groups()
    }

    /// The number of rows of the file.
    #[getter]
    fn rows(&self) -> usize {
        self.inner.rows()
    }

    /// Returns the named columns of row group `index` as numpy arrays (int64,
    /// int32 or uint32, as stored), decoded without the GIL.
    ///
    /// # Errors
    /// Raises `DataFileError` naming the file and the reason when the row
    /// group or a column is missing, a column is not a non-null INT64/INT32,
    /// or a page does not decode.
    fn read_row_group<'py>(
        &self,
        py: Python<'py>,
        index: usize,
        columns: Vec<String>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        let decoded = py
            .detach(|| self.inner.read_row_group(index, &names))
            .map_err(errors::store_to_py)?;
        Ok(decoded
            .into_iter()
            .map(|column| match column {
                StoredColumn::Int64(v) => v.into_pyarray(py).into_any(),
                StoredColumn::Int32(v) => v.into_pyarray(py).into_any(),
                StoredColumn::UInt32(v) => v.into_pyarray(py).into_any(),
            })
            .collect())
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// The largest encode buffer a thread keeps between calls; a larger one (a
/// call with more rows than the servicer's 65,536-tick slices) is freed.
const ENCODE_BUFFER_KEPT_BYTES: usize = 8 << 20;

thread_local! {
    /// Each thread's buffer for `encode_stream_ticks_batches`.
    static ENCODE_BUFFER: RefCell<wire::EncodedMessages> =
        RefCell::new(wire::EncodedMessages::default());
}

/// Encodes quote columns as consecutive `StreamTicksResponse` messages of at
/// most `batch_size` rows each, numbered from `first_sequence`, without the
/// GIL: one call per stored chunk instead of one per message, all messages
/// written into one buffer.
///
/// # Errors
/// Raises `ValueError` when the columns differ in length or `batch_size` is 0.
#[pyfunction]
#[pyo3(signature = (symbol, venue, price_scale, size_scale, ts_ns, bid, ask, flags, batch_size, first_sequence, dropped_ticks = 0))]
#[allow(clippy::too_many_arguments)]
fn encode_stream_ticks_batches<'py>(
    py: Python<'py>,
    symbol: &str,
    venue: &str,
    price_scale: i32,
    size_scale: i32,
    ts_ns: PyReadonlyArray1<'py, i64>,
    bid: PyReadonlyArray1<'py, i64>,
    ask: PyReadonlyArray1<'py, i64>,
    flags: Option<PyReadonlyArray1<'py, u32>>,
    batch_size: usize,
    first_sequence: u64,
    dropped_ticks: u64,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let (ts, b, a) = same_length(&ts_ns, &bid, &ask)?;
    let flag_values = flag_column(flags.as_ref(), ts.len())?;
    if batch_size == 0 {
        return Err(PyValueError::new_err("batch_size must be positive"));
    }
    let columns = wire::QuoteColumns {
        symbol,
        venue,
        price_scale,
        size_scale,
        ts_ns: ts,
        bid: b,
        ask: a,
        flags: flag_values,
    };
    // All messages are written without the GIL into this thread's buffer
    // (kept between calls: no allocation, no page faults); only the copies
    // into Python bytes need the GIL.
    ENCODE_BUFFER.with(|cell| {
        let mut encoded = cell.borrow_mut();
        let target: &mut wire::EncodedMessages = &mut encoded;
        py.detach(|| target.encode(&columns, batch_size, first_sequence, dropped_ticks));
        let messages = encoded.iter().map(|m| PyBytes::new(py, m)).collect();
        if encoded.capacity() > ENCODE_BUFFER_KEPT_BYTES {
            *encoded = wire::EncodedMessages::default();
        }
        Ok(messages)
    })
}

/// Adds the market-data functions, classes and exceptions to `module`.
///
/// # Errors
/// Fails only if the module cannot take a new attribute.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyQuoteValidator>()?;
    module.add_class::<PyParquetDay>()?;
    module.add_function(wrap_pyfunction!(parse_price, module)?)?;
    module.add_function(wrap_pyfunction!(read_lean_quote_ticks, module)?)?;
    module.add_function(wrap_pyfunction!(read_lean_trade_ticks, module)?)?;
    module.add_function(wrap_pyfunction!(read_lean_quote_bars, module)?)?;
    module.add_function(wrap_pyfunction!(read_lean_trade_bars, module)?)?;
    module.add_function(wrap_pyfunction!(encode_stream_ticks, module)?)?;
    module.add_function(wrap_pyfunction!(encode_stream_ticks_batches, module)?)?;
    module.add("PriceError", module.py().get_type::<PriceError>())?;
    book::register(module)?;
    fix_feed::register(module)?;
    fix_session::register(module)?;
    indicators::register(module)?;
    module.add("DataFileError", module.py().get_type::<DataFileError>())?;
    Ok(())
}
