//! End-to-end replays of the real recorded feeds in `shared/data/market/crypto` (see
//! `shared/data/SOURCES.md`): parse every line, rebuild the L2 book, and check it against the
//! counts SOURCES.md gives, an independent naive book, and the exchange's own best bid/offer.
//!
//! The tests skip, with a message, when the data is absent. The data folder is
//! `$NEXUS_SHARED_DATA`, or else `../../../shared/data` from this crate.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use nexus_marketdata::book::{BookError, BookState, Level, OrderBook, Side, UpdateOutcome};
use nexus_marketdata::feeds::{
    read_binance_gz, read_bybit_zip, BinanceBookSync, BinanceEvent, BinanceMarket, BybitKind,
    Scales, SyncStep,
};

fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("NEXUS_SHARED_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
        PathBuf::from,
    );
    if dir.join("market/crypto").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: no shared data at {} (set NEXUS_SHARED_DATA)",
            dir.display()
        );
        None
    }
}

/// A naive book on two BTreeMaps, built independently of `OrderBook`.
#[derive(Default)]
struct NaiveBook {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
}

impl NaiveBook {
    fn reset(&mut self, bids: &[Level], asks: &[Level]) {
        self.bids.clear();
        self.asks.clear();
        self.apply(bids, asks);
    }

    fn apply(&mut self, bids: &[Level], asks: &[Level]) {
        for (map, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for level in levels {
                if level.size == 0 {
                    map.remove(&level.price);
                } else {
                    map.insert(level.price, level.size);
                }
            }
        }
    }

    fn best_bid(&self) -> Option<Level> {
        self.bids
            .iter()
            .next_back()
            .map(|(&price, &size)| Level::new(price, size))
    }

    fn best_ask(&self) -> Option<Level> {
        self.asks
            .iter()
            .next()
            .map(|(&price, &size)| Level::new(price, size))
    }

    fn levels(&self, side: Side) -> Vec<Level> {
        let to_level = |(&price, &size): (&i64, &i64)| Level::new(price, size);
        match side {
            Side::Bid => self.bids.iter().rev().map(to_level).collect(),
            Side::Ask => self.asks.iter().map(to_level).collect(),
        }
    }
}

fn assert_same_book(book: &OrderBook, naive: &NaiveBook) {
    for side in [Side::Bid, Side::Ask] {
        let levels: Vec<Level> = book.levels(side).collect();
        assert_eq!(levels, naive.levels(side), "{side:?} levels differ");
        let total: i128 = levels.iter().map(|l| i128::from(l.size)).sum();
        assert_eq!(book.total_size(side), total);
    }
}

struct Expected {
    lines: u64,
    diffs: usize,
    trades: usize,
    tickers: usize,
    stale: u64,
    applied: u64,
}

/// Replays one hftbacktest file through `BinanceBookSync` and checks it all.
fn replay_binance(relative: &str, market: BinanceMarket, scales: Scales, expected: &Expected) {
    let Some(root) = shared_data() else { return };
    let file = read_binance_gz(root.join(relative), scales).expect("readable file");

    // Line counts per message type, as SOURCES.md gives them.
    assert_eq!(file.stats.lines, expected.lines, "{relative}: lines");
    assert_eq!(
        file.stats.bad_total(),
        0,
        "{relative}: {:?}",
        file.stats.first_errors
    );
    assert_eq!(file.stats.blank, 0);
    let count =
        |pred: fn(&BinanceEvent) -> bool| file.events.iter().filter(|r| pred(&r.event)).count();
    assert_eq!(
        count(|e| matches!(e, BinanceEvent::Depth(_))),
        expected.diffs,
        "{relative}: diffs"
    );
    assert_eq!(
        count(|e| matches!(e, BinanceEvent::Trade(_))),
        expected.trades,
        "{relative}: trades"
    );
    assert_eq!(
        count(|e| matches!(e, BinanceEvent::BookTicker(_))),
        expected.tickers,
        "{relative}: tickers"
    );
    assert_eq!(
        count(|e| matches!(e, BinanceEvent::Snapshot(_))),
        1,
        "{relative}: snapshots"
    );
    // The recorder's clock never runs backwards.
    assert!(file
        .events
        .windows(2)
        .all(|w| w[0].local_ts_ns <= w[1].local_ts_ns));

    // The book under test, and an independent naive replay: buffer until the snapshot, drop
    // what the snapshot already holds, apply the rest in order.
    let mut sync = BinanceBookSync::new(market, scales);
    let mut naive = NaiveBook::default();
    let mut naive_pending = Vec::new();
    let mut naive_last_update: Option<u64> = None;
    let mut tops = HashMap::new();
    let mut tickers = Vec::new();
    let mut top_checks = 0;
    for record in &file.events {
        let step = sync
            .on_event(&record.event)
            .expect("no gap in the recording");
        match &record.event {
            BinanceEvent::Depth(diff) => match naive_last_update {
                None => naive_pending.push(diff.clone()),
                Some(last) if diff.final_update_id <= last => {
                    assert_eq!(step, SyncStep::Stale);
                }
                Some(_) => {
                    naive.apply(&diff.bids, &diff.asks);
                    naive_last_update = Some(diff.final_update_id);
                    assert_eq!(step, SyncStep::Applied { crossed: false });
                }
            },
            BinanceEvent::Snapshot(snapshot) => {
                naive.reset(&snapshot.bids, &snapshot.asks);
                naive_last_update = Some(snapshot.last_update_id);
                for diff in naive_pending.drain(..) {
                    if diff.final_update_id > snapshot.last_update_id {
                        naive.apply(&diff.bids, &diff.asks);
                        naive_last_update = Some(diff.final_update_id);
                    }
                }
                assert!(
                    matches!(step, SyncStep::Synced { crossed: false, .. }),
                    "{step:?}"
                );
                assert_same_book(sync.book(), &naive);
            }
            BinanceEvent::BookTicker(ticker) => tickers.push(ticker),
            BinanceEvent::Trade(_) => {}
        }
        if naive_last_update.is_some() && matches!(record.event, BinanceEvent::Depth(_)) {
            let book = sync.book();
            assert_eq!(book.best_bid(), naive.best_bid());
            assert_eq!(book.best_ask(), naive.best_ask());
            assert!(!book.is_crossed());
            let bid = book.best_bid().expect("a bid");
            let ask = book.best_ask().expect("an ask");
            let unit = 10f64.powi(i32::from(scales.price));
            let (bid_px, ask_px) = (bid.price as f64 / unit, ask.price as f64 / unit);
            let micro = book.micro_price().expect("a micro-price");
            assert!(
                micro >= bid_px && micro <= ask_px,
                "{bid_px} {micro} {ask_px}"
            );
            let mid = book.mid().expect("a mid");
            assert!((mid - (bid_px + ask_px) / 2.0).abs() < 1e-9);
            let imbalance = book.imbalance().expect("an imbalance");
            assert!((-1.0..=1.0).contains(&imbalance));
            assert!(book.spread().is_some_and(|spread| spread > 0));
            tops.insert(book.sequence(), (book.best_bid(), book.best_ask()));
            top_checks += 1;
        }
    }
    // The exchange's own best bid/offer, where it carries the same update id as the last
    // change of a diff, must be the top of the book after that diff. (The book-ticker stream
    // is faster than the depth stream, so the two arrive in either order.)
    let mut ticker_checks = 0;
    for ticker in tickers {
        if let Some(&(bid, ask)) = tops.get(&ticker.update_id) {
            assert_eq!(
                bid,
                Some(ticker.bid),
                "{relative}: ticker {}",
                ticker.update_id
            );
            assert_eq!(
                ask,
                Some(ticker.ask),
                "{relative}: ticker {}",
                ticker.update_id
            );
            ticker_checks += 1;
        }
    }
    assert_same_book(sync.book(), &naive);

    let stats = *sync.stats();
    assert_eq!(stats.diffs, expected.diffs as u64);
    assert_eq!(stats.snapshots, 1);
    assert_eq!(stats.gaps, 0);
    assert_eq!(stats.crossed, 0);
    assert_eq!(stats.stale, expected.stale, "{relative}: stale diffs");
    assert_eq!(stats.applied, expected.applied, "{relative}: applied diffs");
    assert_eq!(stats.stale + stats.applied, expected.diffs as u64);
    assert!(
        top_checks > expected.applied / 2,
        "{relative}: only {top_checks} top checks"
    );
    // Book tickers and diffs share update ids often enough to be a real check.
    assert!(
        ticker_checks > 400,
        "{relative}: only {ticker_checks} ticker checks"
    );
    eprintln!(
        "{relative}: {} diffs applied ({} level updates), {ticker_checks} book tickers matched, \
         final book {} bids / {} asks",
        stats.applied,
        stats.level_updates,
        sync.book().level_count(Side::Bid),
        sync.book().level_count(Side::Ask)
    );
}

#[test]
fn binance_usdm_btcusdt_replays_end_to_end() {
    replay_binance(
        "market/crypto/hftbacktest_binance_usdm/btcusdt_20240808.gz",
        BinanceMarket::UsdM,
        Scales::new(2, 3),
        &Expected {
            lines: 93_954,
            diffs: 6_551,
            trades: 21_313,
            tickers: 66_089,
            stale: 4,
            applied: 6_547,
        },
    );
}

#[test]
fn binance_usdm_ethusdt_replays_end_to_end() {
    // ETH's first diff after the snapshot starts beyond lastUpdateId + 1 (USD-M update ids are
    // shared by all symbols) but links to it with pu == lastUpdateId.
    replay_binance(
        "market/crypto/hftbacktest_binance_usdm/ethusdt_20240808.gz",
        BinanceMarket::UsdM,
        Scales::new(2, 3),
        &Expected {
            lines: 74_655,
            diffs: 6_586,
            trades: 14_076,
            tickers: 53_992,
            stale: 6,
            applied: 6_580,
        },
    );
}

#[test]
fn binance_spot_btcusdt_replays_end_to_end() {
    replay_binance(
        "market/crypto/hftbacktest_binance_spot/btcusdt_20240808.gz",
        BinanceMarket::Spot,
        Scales::new(2, 8),
        &Expected {
            lines: 41_249,
            diffs: 3_451,
            trades: 9_757,
            tickers: 28_040,
            stale: 2,
            applied: 3_449,
        },
    );
}

#[test]
fn a_dropped_diff_in_real_data_is_a_gap() {
    let Some(root) = shared_data() else { return };
    let path = root.join("market/crypto/hftbacktest_binance_usdm/btcusdt_20240808.gz");
    let file = read_binance_gz(path, Scales::new(2, 3)).expect("readable file");
    let mut sync = BinanceBookSync::new(BinanceMarket::UsdM, Scales::new(2, 3));
    let mut diffs_after_sync = 0;
    let mut gap = None;
    for record in &file.events {
        if let BinanceEvent::Depth(_) = record.event {
            if sync.book().state() == BookState::Live {
                diffs_after_sync += 1;
                if diffs_after_sync == 100 {
                    continue; // lose one diff
                }
            }
        }
        if let Err(err) = sync.on_event(&record.event) {
            gap = Some(err);
            break;
        }
    }
    let Some(BookError::Gap {
        prev_last,
        book_seq,
        ..
    }) = gap
    else {
        panic!("no gap reported: {gap:?}")
    };
    assert!(prev_last.is_some_and(|prev| prev > book_seq));
    assert_eq!(sync.book().state(), BookState::Gapped);
    assert_eq!(sync.stats().gaps, 1);
}

#[test]
fn bybit_xrpusdt_replays_end_to_end() {
    let Some(root) = shared_data() else { return };
    let path = root.join("market/crypto/nautilus_bybit/xrpusdt-ob500.data.zip");
    let scales = Scales::new(4, 0);
    let file = read_bybit_zip(path, scales).expect("readable zip");
    assert_eq!(file.stats.lines, 50);
    assert_eq!(file.stats.events, 50);
    assert_eq!(file.stats.bad_total(), 0, "{:?}", file.stats.first_errors);
    let snapshots = file
        .events
        .iter()
        .filter(|m| m.kind == BybitKind::Snapshot)
        .count();
    assert_eq!(snapshots, 1);
    assert_eq!(file.events[0].kind, BybitKind::Snapshot);
    assert_eq!(file.events[0].bids.len(), 500);
    assert_eq!(file.events[0].asks.len(), 500);
    assert!(file
        .events
        .iter()
        .all(|m| m.symbol == "XRPUSDT" && m.topic == "orderbook.500.XRPUSDT"));

    let mut book = OrderBook::new(scales.price, scales.size);
    let mut naive = NaiveBook::default();
    for message in &file.events {
        let outcome = message
            .apply_to(&mut book)
            .expect("no gap in the recording");
        assert_eq!(outcome, UpdateOutcome::Applied { crossed: false });
        match message.kind {
            BybitKind::Snapshot => naive.reset(&message.bids, &message.asks),
            BybitKind::Delta => naive.apply(&message.bids, &message.asks),
        }
        assert_eq!(book.best_bid(), naive.best_bid());
        assert_eq!(book.best_ask(), naive.best_ask());
    }
    assert_same_book(&book, &naive);
    assert_eq!(book.sequence(), file.events[49].update_id);
    // Figures computed separately from the raw file with Python's decimal module.
    assert_eq!(book.level_count(Side::Bid), 500);
    assert_eq!(book.level_count(Side::Ask), 500);
    assert_eq!(book.best_bid(), Some(Level::new(19_537, 10_605)));
    assert_eq!(book.best_ask(), Some(Level::new(19_538, 6_702)));
    assert_eq!(book.total_size(Side::Bid), 8_328_816);
    assert_eq!(book.total_size(Side::Ask), 9_911_460);
    assert_eq!(book.spread(), Some(1));
}
