//! Throughput of the streaming update path of all indicators together, on
//! about a million synthetic EURUSD-like mid prices, against a deliberately
//! naive baseline in the same run.
//!
//! The baseline recomputes every windowed indicator (SMA, Bollinger bands,
//! rolling VWAP, realised volatility) from its whole window at each value;
//! the recursive ones (EMA, RSI, ATR, MACD, cumulative VWAP) have no
//! from-scratch form short of rereading the whole history, so the baseline
//! runs the same textbook recurrences written plainly. Both paths compute
//! the same numbers, which the bench checks before timing them.
//!
//! `cargo bench -p nexus-marketdata --bench indicators` prints values/s for
//! both and their ratio after Criterion's own report.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use nexus_marketdata::indicators::{
    Atr, Bollinger, Ema, IndicatorError, Macd, RealisedVol, RollingVwap, Rsi, Sma, Vwap,
};

const VALUES: usize = 1_000_000;
const WINDOW: usize = 20;
const RSI_PERIOD: usize = 14;
const ATR_PERIOD: usize = 14;
const MACD_FAST: usize = 12;
const MACD_SLOW: usize = 26;
const MACD_SIGNAL: usize = 9;

/// Synthetic ticks: a mid random walk in half-pips around 1.38, a spread of
/// one to three pips and a size of 1 to 10.
struct Data {
    mid: Vec<f64>,
    ask: Vec<f64>,
    bid: Vec<f64>,
    size: Vec<f64>,
}

#[allow(clippy::cast_precision_loss)]
fn synthetic(n: usize) -> Data {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut half_pips: i64 = 276_000;
    let mut data = Data {
        mid: Vec::with_capacity(n),
        ask: Vec::with_capacity(n),
        bid: Vec::with_capacity(n),
        size: Vec::with_capacity(n),
    };
    for _ in 0..n {
        let r = next();
        half_pips += match r % 8 {
            0 => -1,
            1 => 1,
            _ => 0,
        };
        let spread = 2 + (r >> 8) % 5;
        let mid = half_pips as f64 * 0.000_005;
        let half_spread = spread as f64 * 0.000_005;
        data.mid.push(mid);
        data.ask.push(mid + half_spread);
        data.bid.push(mid - half_spread);
        data.size.push((1 + (r >> 16) % 10) as f64);
    }
    data
}

/// The crate's streaming indicators, updated together.
struct Streaming {
    sma: Sma,
    ema: Ema,
    rsi: Rsi,
    atr: Atr,
    macd: Macd,
    bollinger: Bollinger,
    vwap: Vwap,
    rolling_vwap: RollingVwap,
    realised_vol: RealisedVol,
}

impl Streaming {
    fn new() -> Result<Self, IndicatorError> {
        Ok(Self {
            sma: Sma::new(WINDOW)?,
            ema: Ema::new(WINDOW)?,
            rsi: Rsi::new(RSI_PERIOD)?,
            atr: Atr::new(ATR_PERIOD)?,
            macd: Macd::new(MACD_FAST, MACD_SLOW, MACD_SIGNAL)?,
            bollinger: Bollinger::new(WINDOW, 2.0, 2.0)?,
            vwap: Vwap::new(),
            rolling_vwap: RollingVwap::new(WINDOW)?,
            realised_vol: RealisedVol::new(WINDOW)?,
        })
    }

    /// Feeds every value; returns the sum of all outputs.
    fn run(&mut self, d: &Data) -> f64 {
        let mut sum = 0.0;
        for i in 0..d.mid.len() {
            let (p, v) = (d.mid[i], d.size[i]);
            sum += self.sma.update(p).unwrap_or(0.0);
            sum += self.ema.update(p).unwrap_or(0.0);
            sum += self.rsi.update(p).unwrap_or(0.0);
            sum += self.atr.update(d.ask[i], d.bid[i], p).unwrap_or(0.0);
            if let Some(m) = self.macd.update(p) {
                sum += m.macd + m.signal + m.histogram;
            }
            if let Some(b) = self.bollinger.update(p) {
                sum += b.upper + b.middle + b.lower;
            }
            sum += self.vwap.update(p, v).unwrap_or(0.0);
            sum += self.rolling_vwap.update(p, v).unwrap_or(0.0);
            sum += self.realised_vol.update(p).unwrap_or(0.0);
        }
        sum
    }
}

#[allow(clippy::cast_precision_loss)]
fn mean(w: &[f64]) -> f64 {
    w.iter().sum::<f64>() / w.len() as f64
}

/// Two-pass standard deviation with divisor `len - ddof`.
#[allow(clippy::cast_precision_loss)]
fn std_dev(w: &[f64], ddof: usize) -> f64 {
    let m = mean(w);
    (w.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (w.len() - ddof) as f64).sqrt()
}

/// An EMA seeded with the mean of its first `n` inputs, written plainly.
struct PlainEma {
    n: usize,
    seen: Vec<f64>,
    value: Option<f64>,
}

impl PlainEma {
    fn new(n: usize) -> Self {
        Self {
            n,
            seen: Vec::new(),
            value: None,
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn update(&mut self, x: f64) -> Option<f64> {
        let k = 2.0 / (self.n + 1) as f64;
        self.value = match self.value {
            Some(v) => Some(v + k * (x - v)),
            None => {
                self.seen.push(x);
                (self.seen.len() == self.n).then(|| mean(&self.seen))
            }
        };
        self.value
    }
}

/// A Wilder average seeded with the mean of its first `n` inputs.
struct PlainWilder {
    n: usize,
    seen: Vec<f64>,
    value: Option<f64>,
}

impl PlainWilder {
    fn new(n: usize) -> Self {
        Self {
            n,
            seen: Vec::new(),
            value: None,
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn update(&mut self, x: f64) -> Option<f64> {
        self.value = match self.value {
            Some(v) => Some((v * (self.n - 1) as f64 + x) / self.n as f64),
            None => {
                self.seen.push(x);
                (self.seen.len() == self.n).then(|| mean(&self.seen))
            }
        };
        self.value
    }
}

/// The baseline: windows recomputed from scratch at every value.
fn naive(d: &Data) -> f64 {
    let mut sum = 0.0;
    let mut ema = PlainEma::new(WINDOW);
    let mut gain = PlainWilder::new(RSI_PERIOD);
    let mut loss = PlainWilder::new(RSI_PERIOD);
    let mut atr = PlainWilder::new(ATR_PERIOD);
    let mut slow = PlainEma::new(MACD_SLOW);
    let mut fast: Option<f64> = None;
    let mut signal = PlainEma::new(MACD_SIGNAL);
    let (mut pv, mut vol) = (0.0, 0.0);
    let kf = 2.0 / (MACD_FAST as f64 + 1.0);
    for i in 0..d.mid.len() {
        let p = d.mid[i];
        let window = |n: usize| (i + 1 >= n).then(|| &d.mid[i + 1 - n..=i]);
        if let Some(w) = window(WINDOW) {
            // SMA and Bollinger bands, each from the whole window.
            sum += mean(w);
            let (m, sd) = (mean(w), std_dev(w, 0));
            sum += (m + 2.0 * sd) + m + (m - 2.0 * sd);
            // Rolling VWAP from the whole window.
            let (mut wpv, mut wv) = (0.0, 0.0);
            for j in i + 1 - WINDOW..=i {
                wpv += d.mid[j] * d.size[j];
                wv += d.size[j];
            }
            sum += wpv / wv;
        }
        if let Some(w) = window(WINDOW + 1) {
            let returns: Vec<f64> = w.windows(2).map(|r| (r[1] / r[0]).ln()).collect();
            sum += std_dev(&returns, 1);
        }
        sum += ema.update(p).unwrap_or(0.0);
        if i > 0 {
            let change = p - d.mid[i - 1];
            let g = gain.update(change.max(0.0));
            let l = loss.update((-change).max(0.0));
            if let (Some(g), Some(l)) = (g, l) {
                sum += if g + l == 0.0 {
                    0.0
                } else {
                    100.0 - 100.0 / (1.0 + g / l)
                };
            }
            let prev = d.mid[i - 1];
            let tr = (d.ask[i] - d.bid[i])
                .max((d.ask[i] - prev).abs())
                .max((d.bid[i] - prev).abs());
            sum += atr.update(tr).unwrap_or(0.0);
        }
        // MACD: both EMAs start at index slow - 1.
        if let Some(s) = slow.update(p) {
            let f = match fast {
                Some(f) => f + kf * (p - f),
                None => mean(&d.mid[i + 1 - MACD_FAST..=i]),
            };
            fast = Some(f);
            if let Some(sig) = signal.update(f - s) {
                sum += (f - s) + sig + (f - s - sig);
            }
        }
        pv += p * d.size[i];
        vol += d.size[i];
        sum += pv / vol;
    }
    sum
}

/// Best wall time of `runs` runs of `f`, and its last result.
fn best_of(runs: usize, mut f: impl FnMut() -> f64) -> (Duration, f64) {
    let mut best = Duration::MAX;
    let mut out = 0.0;
    for _ in 0..runs {
        let start = Instant::now();
        out = black_box(f());
        best = best.min(start.elapsed());
    }
    (best, out)
}

fn checksums_agree(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs()
}

#[allow(clippy::cast_precision_loss)]
fn main() -> Result<(), IndicatorError> {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // As Criterion decides: `cargo bench` passes --bench; `cargo test
    // --benches` and `cargo bench -- --test` only smoke-test.
    let timing = has("--bench") && !has("--test") && !has("--list");
    let n = if timing { VALUES } else { 20_000 };
    let data = synthetic(n);

    let streaming = Streaming::new()?.run(&data);
    let baseline = naive(&data);
    if !checksums_agree(streaming, baseline) {
        eprintln!("streaming and naive disagree: {streaming} vs {baseline}");
        std::process::exit(1);
    }

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut group = criterion.benchmark_group("indicators_all");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("streaming", |b| {
        b.iter(|| Streaming::new().map(|mut s| s.run(black_box(&data))))
    });
    group.bench_function("naive_baseline", |b| b.iter(|| naive(black_box(&data))));
    group.finish();
    criterion.final_summary();

    if timing {
        let (fast, _) = best_of(5, || Streaming::new().map_or(0.0, |mut s| s.run(&data)));
        let (slow, _) = best_of(3, || naive(&data));
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        println!(
            "all indicators, {n} values: streaming {:.1} M values/s ({:.1} ns/value), \
             naive {:.1} M values/s ({:.1} ns/value), streaming/naive = {:.2}x",
            rate(fast) / 1e6,
            fast.as_secs_f64() * 1e9 / n as f64,
            rate(slow) / 1e6,
            slow.as_secs_f64() * 1e9 / n as f64,
            slow.as_secs_f64() / fast.as_secs_f64(),
        );
    }
    Ok(())
}
