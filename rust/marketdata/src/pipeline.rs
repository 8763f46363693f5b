//! The per-tick market-data pipeline in one call: read a day of quotes,
//! validate each, build 1-minute bars of the mid, and update streaming
//! indicators tick by tick (the path a live feed takes, measured against a
//! numpy/pandas pipeline by `nexus bench pipeline`).

use std::path::Path;

use crate::bars::{Bar, BarAggregator, BarError, BarPeriod, BarSpec};
use crate::indicators::{Ema, IndicatorError, Rsi};
use crate::lean::{self, LeanError, ReadReport};
use crate::quote::QuoteValidator;

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] LeanError),
    /// A bad indicator parameter.
    #[error(transparent)]
    Indicator(#[from] IndicatorError),
    /// Bar aggregation refused a tick.
    #[error(transparent)]
    Bars(#[from] BarError),
}

/// What the pipeline produced for one file.
#[derive(Debug, Default, Clone)]
pub struct PipelineOutput {
    /// Parse report of the file.
    pub report: ReadReport,
    /// Quality flags per parsed tick (0 = accepted).
    pub flags: Vec<u32>,
    /// EMA of the mid after each accepted tick (NaN during warm-up).
    pub ema: Vec<f64>,
    /// RSI of the mid after each accepted tick (NaN during warm-up).
    pub rsi: Vec<f64>,
    /// 1-minute bars of the mid (mantissas at price scale + 1).
    pub bars: Vec<Bar>,
}

/// Runs read -> validate -> mid -> 1-minute bars -> EMA and RSI over a Lean
/// quote-tick file.
///
/// # Errors
/// A [`PipelineError`] when the file cannot be read or a parameter is bad.
pub fn run_quote_pipeline(
    path: &Path,
    price_scale: u8,
    utc_offset_minutes: i32,
    ema_period: usize,
    rsi_period: usize,
) -> Result<PipelineOutput, PipelineError> {
    let (ticks, report) = lean::read_quote_ticks(path, price_scale, utc_offset_minutes)?;
    run_on_ticks(&ticks, report, price_scale, ema_period, rsi_period)
}

/// Runs the same pipeline on Lean quote CSV text already in memory (no file
/// I/O, no decompression): parse -> validate -> bars -> indicators.
///
/// # Errors
/// A [`PipelineError`] for a bad parameter.
pub fn run_quote_pipeline_csv(
    csv: &[u8],
    day_ns: i64,
    price_scale: u8,
    ema_period: usize,
    rsi_period: usize,
) -> Result<PipelineOutput, PipelineError> {
    let mut ticks = lean::QuoteTicks::default();
    let mut report = ReadReport::default();
    lean::parse_quote_rows(csv, day_ns, price_scale, &mut ticks, &mut report);
    run_on_ticks(&ticks, report, price_scale, ema_period, rsi_period)
}

fn run_on_ticks(
    ticks: &lean::QuoteTicks,
    report: ReadReport,
    price_scale: u8,
    ema_period: usize,
    rsi_period: usize,
) -> Result<PipelineOutput, PipelineError> {
    let mut validator = QuoteValidator::new();
    let mut ema = Ema::new(ema_period)?;
    let mut rsi = Rsi::new(rsi_period)?;
    let mut bars = BarAggregator::new(BarSpec::Time(BarPeriod::Minute1))?;
    let n = ticks.ts_ns.len();
    let mut out = PipelineOutput {
        report,
        flags: Vec::with_capacity(n),
        ema: Vec::with_capacity(n),
        rsi: Vec::with_capacity(n),
        bars: Vec::with_capacity(n / 50 + 1),
    };
    let unit = 10f64.powi(i32::from(price_scale) + 1);
    for i in 0..n {
        let (ts, bid, ask) = (ticks.ts_ns[i], ticks.bid[i], ticks.ask[i]);
        match validator.check(ts, bid, ask) {
            Ok(()) => out.flags.push(0),
            Err(issue) => {
                out.flags.push(1 << issue.proto_number());
                continue;
            }
        }
        // The mid at one more decimal place is exact.
        let mid = bid + ask;
        #[allow(clippy::cast_precision_loss)]
        let mid_f = mid as f64 / unit;
        out.ema.push(ema.update(mid_f).unwrap_or(f64::NAN));
        out.rsi.push(rsi.update(mid_f).unwrap_or(f64::NAN));
        if let Some(bar) = bars.update(ts, mid, 1)? {
            out.bars.push(bar);
        }
    }
    if let Some(bar) = bars.flush() {
        out.bars.push(bar);
    }
    Ok(out)
}
