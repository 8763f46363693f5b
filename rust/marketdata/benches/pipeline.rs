//! Ticks per second through the one-pass quote pipeline (parse, validate,
//! 1-minute bars of the mid, EMA(20) and RSI(14)) on real Lean FX ticks,
//! against the same crate's parts run one step at a time over columns in the
//! same run.
//!
//! The data is the shipped sample (`data/sample`, three OANDA EUR/USD days),
//! so the bench runs anywhere; when the shared data set is there
//! (`NEXUS_SHARED_DATA`, or `../shared/data` beside the repository) its 13
//! FXCM EUR/USD days are measured too. Each zip is inflated once before
//! timing for the in-memory case; the zip case inflates it on every run, on
//! one thread.
//!
//! The baseline is the pipeline as columns: `parse_quote_rows` into three
//! vectors, a validation pass writing flags and the accepted mids, then
//! `bars::aggregate`, `indicators::ema` and `indicators::rsi` over those
//! columns. Both produce the same flags, bars, EMA and RSI, which the bench
//! checks before timing them.
//!
//! `cargo bench -p nexus-marketdata --bench pipeline` prints ticks/s of each
//! and the ratio after Criterion's own report.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use nexus_marketdata::bars::{aggregate, Bar, BarPeriod, BarSpec};
use nexus_marketdata::indicators::{ema, rsi};
use nexus_marketdata::lean::{self, QuoteTicks, ReadReport};
use nexus_marketdata::pipeline::{run_quote_pipeline, run_quote_pipeline_csv, PipelineOutput};
use nexus_marketdata::QuoteValidator;

const PRICE_SCALE: u8 = 5;
const EMA_PERIOD: usize = 20;
const RSI_PERIOD: usize = 14;

/// One day of quotes: its zip, its CSV inflated, and its local midnight (UTC ns).
struct Day {
    zip: PathBuf,
    csv: Vec<u8>,
    day_ns: i64,
}

/// A set of days with the data time zone they were recorded in.
struct DataSet {
    label: &'static str,
    utc_offset_minutes: i32,
    days: Vec<Day>,
}

impl DataSet {
    fn load(label: &'static str, dir: &Path, utc_offset_minutes: i32) -> Option<Self> {
        let mut zips: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "zip"))
            .collect();
        zips.sort();
        let mut days = Vec::new();
        for zip in zips {
            let day_ns = lean::file_day_start_ns(&zip, utc_offset_minutes).ok()?;
            let csv = lean::read_quote_members(&zip).ok()?.concat();
            days.push(Day { zip, csv, day_ns });
        }
        (!days.is_empty()).then_some(Self {
            label,
            utc_offset_minutes,
            days,
        })
    }
}

/// The crate's parts one step at a time over columns.
fn columns_pipeline(csv: &[u8], day_ns: i64) -> PipelineOutput {
    let mut ticks = QuoteTicks::default();
    let mut report = ReadReport::default();
    lean::parse_quote_rows(csv, day_ns, PRICE_SCALE, &mut ticks, &mut report);
    let mut validator = QuoteValidator::new();
    let mut flags = Vec::with_capacity(ticks.ts_ns.len());
    let (mut ts, mut mid) = (Vec::new(), Vec::new());
    for ((&t, &bid), &ask) in ticks.ts_ns.iter().zip(&ticks.bid).zip(&ticks.ask) {
        match validator.check(t, bid, ask) {
            Ok(()) => {
                flags.push(0);
                ts.push(t);
                mid.push((bid + ask) * 5);
            }
            Err(issue) => flags.push(1 << issue.proto_number()),
        }
    }
    let unit = 10f64.powi(i32::from(PRICE_SCALE) + 1);
    #[allow(clippy::cast_precision_loss)]
    let mid_f: Vec<f64> = mid.iter().map(|&m| m as f64 / unit).collect();
    let size = vec![1; mid.len()];
    let bars: Vec<Bar> =
        aggregate(BarSpec::Time(BarPeriod::Minute1), &ts, &mid, &size).unwrap_or_default();
    PipelineOutput {
        report,
        flags,
        ema: ema(&mid_f, EMA_PERIOD).unwrap_or_default(),
        rsi: rsi(&mid_f, RSI_PERIOD).unwrap_or_default(),
        bars,
    }
}

fn one_pass(csv: &[u8], day_ns: i64) -> PipelineOutput {
    run_quote_pipeline_csv(csv, day_ns, PRICE_SCALE, EMA_PERIOD, RSI_PERIOD).unwrap_or_default()
}

fn from_zip(day: &Day, utc_offset_minutes: i32) -> PipelineOutput {
    run_quote_pipeline(
        &day.zip,
        PRICE_SCALE,
        utc_offset_minutes,
        EMA_PERIOD,
        RSI_PERIOD,
        false,
    )
    .unwrap_or_default()
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Why the two pipelines disagree on a day, if they do.
fn disagreement(set: &DataSet, day: &Day) -> Option<String> {
    let ours = one_pass(&day.csv, day.day_ns);
    let zipped = from_zip(day, set.utc_offset_minutes);
    let theirs = columns_pipeline(&day.csv, day.day_ns);
    let name = day.zip.display();
    if ours.report.rows == 0 {
        return Some(format!("{name}: no rows read"));
    }
    for (what, other) in [("zip path", &zipped), ("columns baseline", &theirs)] {
        let same = ours.report == other.report
            && ours.flags == other.flags
            && ours.bars == other.bars
            && same_bits(&ours.ema, &other.ema)
            && same_bits(&ours.rsi, &other.rsi);
        if !same {
            return Some(format!(
                "{name}: the one-pass pipeline and the {what} differ"
            ));
        }
    }
    None
}

/// Median wall time of `runs` runs of `f` over every day.
fn median_of(runs: usize, mut f: impl FnMut() -> usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn total_flags(outputs: impl Iterator<Item = PipelineOutput>) -> usize {
    outputs.map(|out| out.flags.len()).sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // As Criterion decides: `cargo bench` passes --bench; `cargo test
    // --benches` and `cargo bench -- --test` only smoke-test.
    let timing = has("--bench") && !has("--test") && !has("--list");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = std::env::var_os("NEXUS_SHARED_DATA")
        .map_or_else(|| root.join("../shared/data"), PathBuf::from);
    let sets: Vec<DataSet> = [
        DataSet::load(
            "sample OANDA EUR/USD, 3 days",
            &root.join("data/sample/market/fx/ticks/lean_oanda_eurusd"),
            0,
        ),
        DataSet::load(
            "shared FXCM EUR/USD, 13 days",
            &shared.join("market/fx/ticks/lean_fxcm_eurusd"),
            -300,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if sets.is_empty() {
        eprintln!("pipeline bench: no data under {}", root.display());
        std::process::exit(1);
    }
    for set in &sets {
        for day in &set.days {
            if let Some(why) = disagreement(set, day) {
                eprintln!("{why}");
                std::process::exit(1);
            }
        }
    }
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut lines = Vec::new();
    for set in &sets {
        let ticks: usize = total_flags(set.days.iter().map(|d| one_pass(&d.csv, d.day_ns)));
        let csv_pass = || total_flags(set.days.iter().map(|d| one_pass(&d.csv, d.day_ns)));
        let zip_pass = || total_flags(set.days.iter().map(|d| from_zip(d, set.utc_offset_minutes)));
        let columns_pass =
            || total_flags(set.days.iter().map(|d| columns_pipeline(&d.csv, d.day_ns)));
        let mut group = criterion.benchmark_group(format!("pipeline {}", set.label));
        group.throughput(Throughput::Elements(ticks as u64));
        group.bench_function("one_pass_csv", |b| b.iter(csv_pass));
        group.bench_function("one_pass_zip", |b| b.iter(zip_pass));
        group.bench_function("columns_baseline_csv", |b| b.iter(columns_pass));
        group.finish();
        if timing {
            let runs = 15;
            let rate = |d: Duration| ticks as f64 / d.as_secs_f64();
            let ns = |d: Duration| d.as_secs_f64() * 1e9 / ticks as f64;
            let (csv, zip, columns) = (
                median_of(runs, csv_pass),
                median_of(runs, zip_pass),
                median_of(runs, columns_pass),
            );
            lines.push(format!(
                "pipeline, {} ({ticks} ticks), 1 thread, median of {runs}: \
                 one pass from CSV {:.1} M ticks/s ({:.1} ns/tick), from zip {:.1} M ticks/s \
                 ({:.1} ns/tick); columns baseline from CSV {:.1} M ticks/s ({:.1} ns/tick); \
                 one pass/columns = {:.2}x",
                set.label,
                rate(csv) / 1e6,
                ns(csv),
                rate(zip) / 1e6,
                ns(zip),
                rate(columns) / 1e6,
                ns(columns),
                columns.as_secs_f64() / csv.as_secs_f64(),
            ));
        }
    }
    criterion.final_summary();
    for line in lines {
        println!("{line}");
    }
}
