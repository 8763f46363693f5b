//! Delta updates per second of the L2 book on real data: the Binance USD-M BTCUSDT diffs of
//! `shared/data` (6,547 diffs, 443,262 level changes after the snapshot), parsed into memory
//! once and replayed many times, through `OrderBook` and through a naive book on two
//! `BTreeMap`s as the baseline.
//!
//! Prints `book: nexus X updates/s | btreemap Y updates/s | ratio Z` from a hand-timed run,
//! then runs the same two replays under criterion. Skips, with a message, when the data is
//! absent (`$NEXUS_SHARED_DATA`, or else `../../../shared/data` from this crate).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use nexus_marketdata::book::{Level, OrderBook, SeqRange, UpdateOutcome};
use nexus_marketdata::feeds::{
    read_binance_gz, BinanceBookSync, BinanceEvent, BinanceMarket, DepthDiff, Scales, SyncStep,
};

const FILE: &str = "market/crypto/hftbacktest_binance_usdm/btcusdt_20240808.gz";

/// The naive baseline: two ordered maps and the same `pu` sequence check.
#[derive(Clone, Default)]
struct BTreeBook {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    sequence: u64,
}

impl BTreeBook {
    fn from_book(book: &OrderBook) -> Self {
        let side = |side| {
            book.levels(side)
                .map(|l: Level| (l.price, l.size))
                .collect()
        };
        Self {
            bids: side(nexus_marketdata::book::Side::Bid),
            asks: side(nexus_marketdata::book::Side::Ask),
            sequence: book.sequence(),
        }
    }

    fn apply_update(&mut self, seq: SeqRange, bids: &[Level], asks: &[Level]) -> bool {
        if seq.last <= self.sequence {
            return false;
        }
        if seq.prev_last.is_some_and(|prev| prev != self.sequence) {
            return false;
        }
        for (map, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for level in levels {
                if level.size == 0 {
                    map.remove(&level.price);
                } else {
                    map.insert(level.price, level.size);
                }
            }
        }
        self.sequence = seq.last;
        true
    }

    /// Returns the best bid and ask levels.
    fn top(&self) -> (Option<Level>, Option<Level>) {
        let level = |(&price, &size): (&i64, &i64)| Level::new(price, size);
        (
            self.bids.iter().next_back().map(level),
            self.asks.iter().next().map(level),
        )
    }
}

struct Workload {
    /// The book right after the snapshot and the buffered diffs.
    start: OrderBook,
    /// The diffs that follow.
    diffs: Vec<DepthDiff>,
    /// Their level changes.
    level_updates: u64,
}

fn load() -> Option<Workload> {
    let root = std::env::var_os("NEXUS_SHARED_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
        PathBuf::from,
    );
    let path = root.join(FILE);
    if !path.is_file() {
        eprintln!(
            "skipping the book bench: no {} (set NEXUS_SHARED_DATA)",
            path.display()
        );
        return None;
    }
    let scales = Scales::new(2, 3);
    let file = match read_binance_gz(&path, scales) {
        Ok(file) => file,
        Err(err) => {
            eprintln!(
                "skipping the book bench: cannot read {}: {err}",
                path.display()
            );
            return None;
        }
    };
    let mut sync = BinanceBookSync::new(BinanceMarket::UsdM, scales);
    let mut start = None;
    let mut diffs = Vec::new();
    for record in file.events {
        match (&start, record.event) {
            (None, event) => {
                if let Ok(SyncStep::Synced { .. }) = sync.on_event(&event) {
                    start = Some(sync.book().clone());
                }
            }
            (Some(_), BinanceEvent::Depth(diff)) => diffs.push(diff),
            (Some(_), _) => {}
        }
    }
    let Some(start) = start else {
        eprintln!("skipping the book bench: {FILE} never synced");
        return None;
    };
    let level_updates = diffs.iter().map(|d| d.level_count() as u64).sum();
    Some(Workload {
        start,
        diffs,
        level_updates,
    })
}

/// One replay through `OrderBook`; returns the number of diffs applied.
fn replay_nexus(work: &Workload) -> usize {
    let mut book = work.start.clone();
    let mut applied = 0;
    for diff in &work.diffs {
        if let Ok(UpdateOutcome::Applied { .. }) =
            book.apply_update(diff.seq_range(), &diff.bids, &diff.asks)
        {
            applied += 1;
        }
        black_box((book.best_bid(), book.best_ask()));
    }
    applied
}

/// One replay through the `BTreeMap` baseline; returns the number of diffs applied.
fn replay_btree(start: &BTreeBook, work: &Workload) -> usize {
    let mut book = start.clone();
    let mut applied = 0;
    for diff in &work.diffs {
        if book.apply_update(diff.seq_range(), &diff.bids, &diff.asks) {
            applied += 1;
        }
        black_box(book.top());
    }
    applied
}

/// Returns the best rates (updates/s) of `first` and `second` over passes timed by hand for
/// `budget`, alternating the two so that both see the same machine load.
fn rates(
    level_updates: u64,
    budget: Duration,
    mut first: impl FnMut() -> usize,
    mut second: impl FnMut() -> usize,
) -> (f64, f64) {
    let began = Instant::now();
    let (mut best_first, mut best_second) = (Duration::MAX, Duration::MAX);
    let mut passes = 0;
    while passes < 5 || began.elapsed() < budget {
        let t = Instant::now();
        black_box(first());
        best_first = best_first.min(t.elapsed());
        let t = Instant::now();
        black_box(second());
        best_second = best_second.min(t.elapsed());
        passes += 1;
    }
    let rate = |best: Duration| level_updates as f64 / best.as_secs_f64();
    (rate(best_first), rate(best_second))
}

fn main() {
    let Some(work) = load() else { return };
    let btree_start = BTreeBook::from_book(&work.start);
    let applied = replay_nexus(&work);
    let applied_btree = replay_btree(&btree_start, &work);
    if applied != work.diffs.len() || applied_btree != applied {
        eprintln!(
            "the book bench replay is out of sequence: {applied} / {applied_btree} of {} diffs",
            work.diffs.len()
        );
        return;
    }
    // Under `cargo test --benches`, only check that the replays run.
    let benching = std::env::args().any(|arg| arg == "--bench");
    if !benching {
        return;
    }

    let (nexus, btree) = rates(
        work.level_updates,
        Duration::from_secs(4),
        || replay_nexus(&work),
        || replay_btree(&btree_start, &work),
    );
    println!(
        "book: nexus {:.2}M updates/s | btreemap {:.2}M updates/s | ratio {:.2} \
         ({} diffs, {} level updates per replay, best of alternating passes)",
        nexus / 1e6,
        btree / 1e6,
        nexus / btree,
        work.diffs.len(),
        work.level_updates
    );

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("book_replay_btcusdt_usdm");
    group.throughput(Throughput::Elements(work.level_updates));
    group.bench_function("nexus_order_book", |b| b.iter(|| replay_nexus(&work)));
    group.bench_function("btreemap_baseline", |b| {
        b.iter(|| replay_btree(&btree_start, &work))
    });
    group.finish();
    criterion.final_summary();
}
