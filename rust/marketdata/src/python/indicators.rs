//! Python bindings of the indicators and bar aggregation: whole numpy arrays
//! in, numpy arrays out (owning the Rust vectors), without the GIL.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::bars::{self, BarPeriod, BarSpec};
use crate::indicators::{self, IndicatorError};

type Floats<'py> = Bound<'py, PyArray1<f64>>;
type Ints<'py> = Bound<'py, PyArray1<i64>>;

fn err(e: IndicatorError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Simple moving average (TA-Lib `SMA`), NaN during the lookback.
///
/// # Errors
/// Raises `ValueError` for a period below 2.
#[pyfunction]
fn sma<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
    period: usize,
) -> PyResult<Floats<'py>> {
    let v = values.as_slice()?;
    Ok(py
        .detach(|| indicators::sma(v, period))
        .map_err(err)?
        .into_pyarray(py))
}

/// Exponential moving average seeded with the SMA (TA-Lib `EMA`).
///
/// # Errors
/// Raises `ValueError` for a period below 2.
#[pyfunction]
fn ema<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
    period: usize,
) -> PyResult<Floats<'py>> {
    let v = values.as_slice()?;
    Ok(py
        .detach(|| indicators::ema(v, period))
        .map_err(err)?
        .into_pyarray(py))
}

/// Wilder's relative strength index (TA-Lib `RSI`).
///
/// # Errors
/// Raises `ValueError` for a period below 2.
#[pyfunction]
fn rsi<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
    period: usize,
) -> PyResult<Floats<'py>> {
    let v = values.as_slice()?;
    Ok(py
        .detach(|| indicators::rsi(v, period))
        .map_err(err)?
        .into_pyarray(py))
}

/// MACD line, signal and histogram (TA-Lib `MACD`).
///
/// # Errors
/// Raises `ValueError` for bad periods.
#[pyfunction]
#[pyo3(signature = (values, fast = 12, slow = 26, signal = 9))]
fn macd<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
    fast: usize,
    slow: usize,
    signal: usize,
) -> PyResult<(Floats<'py>, Floats<'py>, Floats<'py>)> {
    let v = values.as_slice()?;
    let s = py
        .detach(|| indicators::macd(v, fast, slow, signal))
        .map_err(err)?;
    Ok((
        s.macd.into_pyarray(py),
        s.signal.into_pyarray(py),
        s.histogram.into_pyarray(py),
    ))
}

/// Bollinger bands: upper, middle (SMA), lower (TA-Lib `BBANDS`).
///
/// # Errors
/// Raises `ValueError` for a bad period or multiplier.
#[pyfunction]
#[pyo3(signature = (values, period = 20, k_up = 2.0, k_down = 2.0))]
fn bollinger<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
    period: usize,
    k_up: f64,
    k_down: f64,
) -> PyResult<(Floats<'py>, Floats<'py>, Floats<'py>)> {
    let v = values.as_slice()?;
    let s = py
        .detach(|| indicators::bollinger(v, period, k_up, k_down))
        .map_err(err)?;
    Ok((
        s.upper.into_pyarray(py),
        s.middle.into_pyarray(py),
        s.lower.into_pyarray(py),
    ))
}

/// Wilder's average true range (TA-Lib `ATR`).
///
/// # Errors
/// Raises `ValueError` for a bad period or columns of different lengths.
#[pyfunction]
fn atr<'py>(
    py: Python<'py>,
    high: PyReadonlyArray1<'py, f64>,
    low: PyReadonlyArray1<'py, f64>,
    close: PyReadonlyArray1<'py, f64>,
    period: usize,
) -> PyResult<Floats<'py>> {
    let (h, l, c) = (high.as_slice()?, low.as_slice()?, close.as_slice()?);
    Ok(py
        .detach(|| indicators::atr(h, l, c, period))
        .map_err(err)?
        .into_pyarray(py))
}

/// Cumulative volume-weighted average price.
///
/// # Errors
/// Raises `ValueError` for columns of different lengths.
#[pyfunction]
fn vwap<'py>(
    py: Python<'py>,
    price: PyReadonlyArray1<'py, f64>,
    volume: PyReadonlyArray1<'py, f64>,
) -> PyResult<Floats<'py>> {
    let (p, v) = (price.as_slice()?, volume.as_slice()?);
    Ok(py
        .detach(|| indicators::vwap(p, v))
        .map_err(err)?
        .into_pyarray(py))
}

/// VWAP over the last `window` observations.
///
/// # Errors
/// Raises `ValueError` for a bad window or columns of different lengths.
#[pyfunction]
fn rolling_vwap<'py>(
    py: Python<'py>,
    price: PyReadonlyArray1<'py, f64>,
    volume: PyReadonlyArray1<'py, f64>,
    window: usize,
) -> PyResult<Floats<'py>> {
    let (p, v) = (price.as_slice()?, volume.as_slice()?);
    Ok(py
        .detach(|| indicators::rolling_vwap(p, v, window))
        .map_err(err)?
        .into_pyarray(py))
}

/// Rolling sample standard deviation of log returns (not annualised).
///
/// # Errors
/// Raises `ValueError` for a bad window.
#[pyfunction]
fn realised_volatility<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray1<'py, f64>,
    window: usize,
) -> PyResult<Floats<'py>> {
    let p = prices.as_slice()?;
    Ok(py
        .detach(|| indicators::realised_volatility(p, window))
        .map_err(err)?
        .into_pyarray(py))
}

/// One bar series for Python: (ts_open_ns, ts_close_ns, open, high, low, close, volume, ticks).
type BarColumns<'py> = (
    Ints<'py>,
    Ints<'py>,
    Ints<'py>,
    Ints<'py>,
    Ints<'py>,
    Ints<'py>,
    Ints<'py>,
    Bound<'py, PyArray1<u64>>,
);

/// What a pipeline run returns to Python: flags, EMA, RSI, bar columns, rows read.
type PipelineColumns<'py> = (
    Bound<'py, PyArray1<u32>>,
    Floats<'py>,
    Floats<'py>,
    BarColumns<'py>,
    u64,
);

fn spec(kind: &str, size: i64) -> PyResult<BarSpec> {
    let period = |p| Ok(BarSpec::Time(p));
    match (kind, size) {
        ("1m", _) => period(BarPeriod::Minute1),
        ("5m", _) => period(BarPeriod::Minute5),
        ("15m", _) => period(BarPeriod::Minute15),
        ("1h", _) => period(BarPeriod::Hour1),
        ("1d", _) => period(BarPeriod::Day1),
        ("ticks", n) if n > 0 => Ok(BarSpec::Ticks(n.unsigned_abs())),
        ("volume", v) if v > 0 => Ok(BarSpec::Volume(v)),
        _ => Err(PyValueError::new_err(format!(
            "bars: kind must be 1m, 5m, 15m, 1h, 1d, or ticks/volume with a positive size; \
             got {kind:?} with {size}"
        ))),
    }
}

/// Aggregates ticks into bars: `kind` is a timeframe (1m, 5m, 15m, 1h, 1d;
/// UTC-aligned periods) or "ticks"/"volume" with a positive `size`.
///
/// # Errors
/// Raises `ValueError` for an unknown kind, columns of different lengths,
/// time going backwards or a negative size.
#[pyfunction]
#[pyo3(signature = (kind, ts_ns, price, size, bar_size = 0))]
fn aggregate_bars<'py>(
    py: Python<'py>,
    kind: &str,
    ts_ns: PyReadonlyArray1<'py, i64>,
    price: PyReadonlyArray1<'py, i64>,
    size: PyReadonlyArray1<'py, i64>,
    bar_size: i64,
) -> PyResult<BarColumns<'py>> {
    let spec = spec(kind, bar_size)?;
    let (t, p, s) = (ts_ns.as_slice()?, price.as_slice()?, size.as_slice()?);
    let out = py
        .detach(|| bars::aggregate(spec, t, p, s))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(bar_columns(py, &out))
}

fn bar_columns<'py>(py: Python<'py>, out: &[bars::Bar]) -> BarColumns<'py> {
    let col = |f: fn(&bars::Bar) -> i64| out.iter().map(f).collect::<Vec<i64>>().into_pyarray(py);
    (
        col(|b| b.ts_open_ns),
        col(|b| b.ts_close_ns),
        col(|b| b.open),
        col(|b| b.high),
        col(|b| b.low),
        col(|b| b.close),
        col(|b| b.volume),
        out.iter()
            .map(|b| b.tick_count)
            .collect::<Vec<u64>>()
            .into_pyarray(py),
    )
}

/// Runs the per-tick pipeline over a Lean quote-tick file, without the GIL:
/// read, validate, mid, 1-minute bars, EMA and RSI. Returns (flags per tick,
/// EMA and RSI per accepted tick, bar columns of the mid at price_scale + 1,
/// rows read). With `inflate_thread` (the default) a second thread inflates
/// the zip while this one runs the pipeline; the output is the same.
///
/// # Errors
/// Raises `OSError`/`DataFileError` for the file, `ValueError` for parameters.
#[pyfunction]
#[pyo3(signature = (
    path, price_scale, utc_offset_minutes = 0, ema_period = 20, rsi_period = 14,
    inflate_thread = true
))]
fn run_quote_pipeline<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    price_scale: u8,
    utc_offset_minutes: i32,
    ema_period: usize,
    rsi_period: usize,
    inflate_thread: bool,
) -> PyResult<PipelineColumns<'py>> {
    let out = py
        .detach(|| {
            crate::pipeline::run_quote_pipeline(
                &path,
                price_scale,
                utc_offset_minutes,
                ema_period,
                rsi_period,
                inflate_thread,
            )
        })
        .map_err(super::errors::pipeline_to_py)?;
    Ok((
        out.flags.into_pyarray(py),
        out.ema.into_pyarray(py),
        out.rsi.into_pyarray(py),
        bar_columns(py, &out.bars),
        out.report.rows,
    ))
}

/// Runs the pipeline on Lean quote CSV text already in memory (no I/O, no
/// decompression); returns the same as `run_quote_pipeline`.
///
/// # Errors
/// Raises `ValueError` for parameters.
#[pyfunction]
#[pyo3(signature = (csv, day_ns, price_scale, ema_period = 20, rsi_period = 14))]
fn run_quote_pipeline_csv<'py>(
    py: Python<'py>,
    csv: &[u8],
    day_ns: i64,
    price_scale: u8,
    ema_period: usize,
    rsi_period: usize,
) -> PyResult<PipelineColumns<'py>> {
    let out = py
        .detach(|| {
            crate::pipeline::run_quote_pipeline_csv(
                csv,
                day_ns,
                price_scale,
                ema_period,
                rsi_period,
            )
        })
        .map_err(super::errors::pipeline_to_py)?;
    Ok((
        out.flags.into_pyarray(py),
        out.ema.into_pyarray(py),
        out.rsi.into_pyarray(py),
        bar_columns(py, &out.bars),
        out.report.rows,
    ))
}

/// Adds the indicator and bar functions to `module`.
///
/// # Errors
/// Fails only if the module cannot take a new attribute.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(sma, module)?)?;
    module.add_function(wrap_pyfunction!(ema, module)?)?;
    module.add_function(wrap_pyfunction!(rsi, module)?)?;
    module.add_function(wrap_pyfunction!(macd, module)?)?;
    module.add_function(wrap_pyfunction!(bollinger, module)?)?;
    module.add_function(wrap_pyfunction!(atr, module)?)?;
    module.add_function(wrap_pyfunction!(vwap, module)?)?;
    module.add_function(wrap_pyfunction!(rolling_vwap, module)?)?;
    module.add_function(wrap_pyfunction!(realised_volatility, module)?)?;
    module.add_function(wrap_pyfunction!(aggregate_bars, module)?)?;
    module.add_function(wrap_pyfunction!(run_quote_pipeline, module)?)?;
    module.add_function(wrap_pyfunction!(run_quote_pipeline_csv, module)?)?;
    Ok(())
}
