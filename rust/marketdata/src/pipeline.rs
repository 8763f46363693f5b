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
    /// The inflate thread stopped without an answer (it panicked).
    #[error("the inflate thread of {0} stopped without an answer")]
    InflateThread(String),
}

/// Bytes of CSV per piece handed from the inflate thread to the pipeline.
const PIECE_BYTES: usize = 256 * 1024;
/// Pieces in flight between the two threads (the bound on memory).
const PIECES_IN_FLIGHT: usize = 4;
/// Rows parsed, then validated, then run through bars and indicators together.
const BLOCK_ROWS: usize = 512;
/// Lean quote zips inflate to about five times their size.
const INFLATE_RATIO: u64 = 5;

thread_local! {
    /// Room for the zips inflated whole on this thread, kept from one file
    /// to the next (about the size of the largest day's CSV): no allocation
    /// and no fresh pages per file.
    static MEMBER_BUFFERS: std::cell::RefCell<lean::MemberBuffers> =
        std::cell::RefCell::new(lean::MemberBuffers::default());
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
/// quote-tick file, parsing and feeding the pipeline row by row in one pass.
///
/// With `inflate_thread`, a second thread inflates the zip in pieces of
/// about 256 KiB (at most four in flight) while this one runs the pipeline
/// on the pieces already inflated; without it, each member is inflated
/// whole first, on this thread, into room kept for this thread from one
/// call to the next. The output is the same.
///
/// # Errors
/// A [`PipelineError`] when the file cannot be read or a parameter is bad.
pub fn run_quote_pipeline(
    path: &Path,
    price_scale: u8,
    utc_offset_minutes: i32,
    ema_period: usize,
    rsi_period: usize,
    inflate_thread: bool,
) -> Result<PipelineOutput, PipelineError> {
    let day_ns = lean::file_day_start_ns(path, utc_offset_minutes)?;
    let zipped = std::fs::metadata(path).map_or(0, |m| m.len());
    let estimate = usize::try_from(zipped.saturating_mul(INFLATE_RATIO)).unwrap_or(0);
    // Parameters are checked before the file is read.
    let mut state = PipelineState::new(estimate, price_scale, ema_period, rsi_period)?;
    if !inflate_thread {
        MEMBER_BUFFERS.with_borrow_mut(|buffers| {
            lean::for_each_member(path, ".csv", buffers, |data| {
                state.lines = 0;
                state.feed(data, day_ns)
            })
        })?;
        return Ok(state.finish());
    }
    std::thread::scope(|scope| {
        let (pieces, inflated) = std::sync::mpsc::sync_channel(PIECES_IN_FLIGHT);
        // Pieces read go back to the reader for reuse (at most as many as in flight).
        let (give_back, used) = std::sync::mpsc::sync_channel::<Vec<u8>>(PIECES_IN_FLIGHT);
        let reader = scope.spawn(move || {
            let recycled = || used.try_recv().unwrap_or_default();
            let read = lean::stream_members(path, ".csv", PIECE_BYTES, recycled, |first, piece| {
                pieces.send(Ok((first, piece))).is_ok()
            });
            if let Err(error) = read {
                // The receiver may be gone already, having stopped on its own error.
                let _ = pieces.send(Err(error));
            }
        });
        let mut outcome = Ok(());
        for message in &inflated {
            let fed = message
                .map_err(PipelineError::from)
                .and_then(|(first, piece)| {
                    if first {
                        state.lines = 0;
                    }
                    let fed = state.feed(&piece, day_ns);
                    // Full means the reader has buffers enough: this one is dropped.
                    let _ = give_back.try_send(piece);
                    fed
                });
            if let Err(error) = fed {
                outcome = Err(error);
                break;
            }
        }
        drop(inflated); // a reader still sending stops at its next piece
        if reader.join().is_err() {
            outcome = outcome.and(Err(PipelineError::InflateThread(
                path.display().to_string(),
            )));
        }
        outcome
    })?;
    Ok(state.finish())
}

/// Runs the same pipeline on Lean quote CSV text already in memory (no file
/// I/O, no decompression): parse -> validate -> bars -> indicators, row by
/// row in one pass.
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
    let mut state = PipelineState::new(csv.len(), price_scale, ema_period, rsi_period)?;
    state.feed(csv, day_ns)?;
    Ok(state.finish())
}

/// The pipeline between ticks: validator, indicators, bar builder and outputs.
struct PipelineState {
    price_scale: u8,
    /// Lines of the current member read so far.
    lines: u64,
    unit: f64,
    validator: QuoteValidator,
    ema: Ema,
    rsi: Rsi,
    bars: BarAggregator,
    out: PipelineOutput,
}

impl PipelineState {
    fn new(
        csv_bytes: usize,
        price_scale: u8,
        ema_period: usize,
        rsi_period: usize,
    ) -> Result<Self, PipelineError> {
        // Lean quote rows take 20 to 26 bytes.
        let ticks = csv_bytes / 20 + 1;
        Ok(Self {
            price_scale,
            lines: 0,
            unit: 10f64.powi(i32::from(price_scale) + 1),
            validator: QuoteValidator::new(),
            ema: Ema::new(ema_period)?,
            rsi: Rsi::new(rsi_period)?,
            bars: BarAggregator::new(BarSpec::Time(BarPeriod::Minute1))?,
            out: PipelineOutput {
                report: ReadReport::default(),
                flags: Vec::with_capacity(ticks),
                ema: Vec::with_capacity(ticks),
                rsi: Vec::with_capacity(ticks),
                bars: Vec::with_capacity(ticks / 50 + 1),
            },
        })
    }

    /// Parses `csv` and runs each good row through the pipeline, a block of
    /// rows at a time: each step runs over the block in a loop of its own
    /// (parse, validate, then bars and indicators of the accepted ticks),
    /// which keeps its state in registers, and the block stays in L1 cache.
    fn feed(&mut self, csv: &[u8], day_ns: i64) -> Result<(), PipelineError> {
        let mut rows = lean::QuoteRows::new(csv, day_ns, self.price_scale);
        let mut block = [(0i64, 0i64, 0i64); BLOCK_ROWS];
        let mut flags = [0u32; BLOCK_ROWS];
        let mut accepted = [(0i64, 0i64); BLOCK_ROWS];
        let mut mids = [0.0; BLOCK_ROWS];
        let mut mid_ticks = [(0i64, 0i64); BLOCK_ROWS];
        loop {
            let read = rows.read_block(&mut self.lines, &mut self.out.report, &mut block);
            if read == 0 {
                return Ok(());
            }
            let count =
                self.validator
                    .check_block(&block[..read], &mut flags[..read], &mut accepted);
            self.out.flags.extend_from_slice(&flags[..read]);
            self.accepted(&accepted[..count], &mut mids, &mut mid_ticks)?;
        }
    }

    /// Runs accepted (time, bid + ask) ticks through the bars and indicators,
    /// each in a loop of its own over a copy of its state (kept in
    /// registers); `mids` and `mid_ticks` are room for the block's mids.
    fn accepted(
        &mut self,
        ticks: &[(i64, i64)],
        mids: &mut [f64; BLOCK_ROWS],
        mid_ticks: &mut [(i64, i64); BLOCK_ROWS],
    ) -> Result<(), PipelineError> {
        // The mid, (bid + ask) / 2, is exact at one more decimal place:
        // (bid + ask) x 5. (Saturating: no quote comes near 9 x 10^17 units
        // of its scale.) Computed in the RSI's loop, whose steps wait for
        // each other, and not in the EMA's, whose fused multiply-add is a
        // call (no FMA instruction on the x86-64 baseline) across which the
        // RSI's state would go through memory.
        let n = ticks.len().min(BLOCK_ROWS);
        let out = &mut self.out;
        let mut rsi = self.rsi.clone();
        let unit = self.unit;
        out.rsi
            .extend(mids.iter_mut().zip(mid_ticks.iter_mut()).zip(ticks).map(
                |((mid, tick), &(ts, sum))| {
                    *tick = (ts, sum.saturating_mul(5));
                    #[allow(clippy::cast_precision_loss)]
                    let exact = tick.1 as f64;
                    *mid = exact / unit; // finite: an integer over 10^(scale + 1)
                    rsi.update_finite(*mid).unwrap_or(f64::NAN)
                },
            ));
        self.rsi = rsi;
        let mids = &mids[..n];
        let mut ema = self.ema.clone();
        out.ema.extend(
            mids.iter()
                .map(|&x| ema.update_finite(x).unwrap_or(f64::NAN)),
        );
        self.ema = ema;
        let mid_ticks = &mid_ticks[..mids.len()];
        self.bars.update_block(mid_ticks, 1, &mut out.bars)?;
        Ok(())
    }

    fn finish(mut self) -> PipelineOutput {
        if let Some(bar) = self.bars.flush() {
            self.out.bars.push(bar);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A day of quotes with bad rows spread over it, as a deflated Lean zip.
    fn day_zip(tag: &str) -> (std::path::PathBuf, String) {
        let mut text = String::new();
        for i in 0..60_000u32 {
            let bid = 139_000 + (i * 7919) % 300;
            match i % 9_973 {
                17 => text.push_str("oops\n"),
                18 => text.push_str(&format!("{},1.3912345,1.3\n", i * 100)),
                _ => text.push_str(&format!(
                    "{},{}.{:05},{}.{:05}\r\n",
                    i * 100,
                    bid / 100_000,
                    bid % 100_000,
                    (bid + 1 + i % 3) / 100_000,
                    (bid + 1 + i % 3) % 100_000
                )),
            }
        }
        let dir = std::env::temp_dir().join(format!("nexus-pipeline-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("20140508_quote.zip");
        let mut writer = zip::ZipWriter::new(std::fs::File::create(&path).expect("create"));
        writer
            .start_file(
                "20140508_eurusd_tick_quote.csv",
                zip::write::SimpleFileOptions::default(),
            )
            .expect("member");
        writer.write_all(text.as_bytes()).expect("write");
        writer.finish().expect("finish");
        (path, text)
    }

    #[test]
    fn both_zip_paths_equal_the_csv_path_line_numbers_included() {
        let (path, text) = day_zip("threads");
        assert!(
            text.len() > 4 * PIECE_BYTES,
            "the file must span several pieces"
        );
        let day_ns = lean::file_day_start_ns(&path, -300).expect("dated");
        let csv = run_quote_pipeline_csv(text.as_bytes(), day_ns, 5, 20, 14).expect("csv");
        for inflate_thread in [true, false] {
            let zip = run_quote_pipeline(&path, 5, -300, 20, 14, inflate_thread).expect("zip");
            assert_eq!(zip.report, csv.report, "inflate_thread {inflate_thread}");
            assert_eq!(zip.flags, csv.flags);
            assert_eq!(zip.bars, csv.bars);
            assert_eq!(zip.ema.len(), csv.ema.len());
            assert!(zip
                .ema
                .iter()
                .zip(&csv.ema)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!(zip
                .rsi
                .iter()
                .zip(&csv.rsi)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        assert_eq!(csv.report.rows, 60_000);
        assert_eq!(csv.report.bad_total(), 14);
        // Line numbers count from the top of the file, across pieces.
        assert_eq!(
            csv.report.first_bad_lines[..2],
            [(18, "wrong_field_count"), (19, "price_too_precise")]
        );
        assert_eq!(
            csv.report.first_bad_lines[10],
            (5 * 9_973 + 18, "wrong_field_count")
        );
        let accepted = csv.flags.iter().filter(|f| **f == 0).count();
        assert!(
            csv.bars.len() > 90 && accepted > 30_000,
            "{} bars, {accepted} accepted",
            csv.bars.len()
        );
    }

    #[test]
    fn read_errors_come_back_from_the_inflate_thread() {
        let dir = std::env::temp_dir().join(format!("nexus-pipeline-err-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let missing = dir.join("20140509_quote.zip");
        for inflate_thread in [true, false] {
            let err =
                run_quote_pipeline(&missing, 5, 0, 20, 14, inflate_thread).expect_err("missing");
            assert!(
                matches!(err, PipelineError::Read(LeanError::Io { .. })),
                "{err}"
            );
            // Parameters are checked first, whichever path reads the file.
            let bad_period =
                run_quote_pipeline(&missing, 5, 0, 1, 14, inflate_thread).expect_err("period");
            assert!(
                matches!(bad_period, PipelineError::Indicator(_)),
                "{bad_period}"
            );
        }
    }
}
