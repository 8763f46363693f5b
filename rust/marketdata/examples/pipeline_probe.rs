//! Runs the one-pass quote pipeline over a set of Lean quote zips for
//! instruction counts and profiles: no timing, no baseline.
//!
//! `cargo run --release -p nexus-marketdata --example pipeline_probe -- MODE ROUNDS DIR [UTC_OFFSET_MINUTES]`
//!
//! MODE is `csv` (each day's CSV inflated once before the rounds, then run
//! from memory) or `zip` (each round reads and inflates the zips on this
//! thread). It prints the ticks handled. Under `valgrind --tool=cachegrind`,
//! two runs differing only in ROUNDS give the cost of a tick: the difference
//! in instructions divided by the difference in ticks (which leaves out
//! loading the days and starting the program).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nexus_marketdata::lean;
use nexus_marketdata::pipeline::{run_quote_pipeline, run_quote_pipeline_csv, PipelineError};

const PRICE_SCALE: u8 = 5;
const EMA_PERIOD: usize = 20;
const RSI_PERIOD: usize = 14;

fn zips(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut zips: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "zip"))
        .collect();
    zips.sort();
    Ok(zips)
}

fn run(mode: &str, rounds: usize, dir: &Path, utc_offset_minutes: i32) -> Result<usize, String> {
    let zips = zips(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut days = Vec::new();
    if mode == "csv" {
        for zip in &zips {
            let day_ns =
                lean::file_day_start_ns(zip, utc_offset_minutes).map_err(|e| e.to_string())?;
            let csv = lean::read_quote_members(zip)
                .map_err(|e| e.to_string())?
                .concat();
            days.push((csv, day_ns));
        }
    } else if mode != "zip" {
        return Err(format!("mode {mode}: csv or zip"));
    }
    let mut ticks = 0;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = std::time::Instant::now();
        let outputs: Result<Vec<_>, PipelineError> = if mode == "csv" {
            days.iter()
                .map(|(csv, day_ns)| {
                    run_quote_pipeline_csv(csv, *day_ns, PRICE_SCALE, EMA_PERIOD, RSI_PERIOD)
                })
                .collect()
        } else {
            zips.iter()
                .map(|zip| {
                    run_quote_pipeline(
                        zip,
                        PRICE_SCALE,
                        utc_offset_minutes,
                        EMA_PERIOD,
                        RSI_PERIOD,
                        false,
                    )
                })
                .collect()
        };
        let outputs = outputs.map_err(|e| e.to_string())?;
        times.push(start.elapsed());
        ticks += outputs.iter().map(|out| out.flags.len()).sum::<usize>();
    }
    times.sort();
    if let (Some(best), Some(median)) = (times.first(), times.get(times.len() / 2)) {
        #[allow(clippy::cast_precision_loss)]
        let per_tick =
            |d: &std::time::Duration| d.as_secs_f64() * 1e9 * rounds as f64 / ticks.max(1) as f64;
        eprintln!(
            "ns/tick: best {:.2}, median {:.2} of {rounds} rounds",
            per_tick(best),
            per_tick(median)
        );
    }
    Ok(ticks)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(rounds), Some(dir)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: pipeline_probe csv|zip ROUNDS DIR [UTC_OFFSET_MINUTES]");
        return ExitCode::FAILURE;
    };
    let Ok(rounds) = rounds.parse::<usize>() else {
        eprintln!("ROUNDS must be a whole number, not {rounds}");
        return ExitCode::FAILURE;
    };
    let offset = match args.get(3).map(|s| s.parse::<i32>()) {
        None => -300,
        Some(Ok(minutes)) => minutes,
        Some(Err(e)) => {
            eprintln!("UTC_OFFSET_MINUTES: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(mode, rounds, Path::new(dir), offset) {
        Ok(ticks) => {
            println!("{ticks}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("{why}");
            ExitCode::FAILURE
        }
    }
}
