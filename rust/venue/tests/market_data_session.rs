//! A live FIX market-data session of Nexus (`nexus_marketdata::fix_session`) against the
//! market-data venue simulator over real TCP on 127.0.0.1: subscription, snapshot and
//! increments, re-subscription after an RptSeq gap with the increments buffered meanwhile,
//! MarketDataRequestReject, and stale detection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_fix::session::{
    Acceptor, AcceptorConfig, MemoryStore, Session, SessionConfig, SessionId,
};
use nexus_marketdata::book::{BookState, OrderBook, Side};
use nexus_marketdata::feeds::Scales;
use nexus_marketdata::fix_session::{self, FixMdSession, FixMdSessionConfig, Health};
use nexus_venue::{MarketDataVenue, MdVenueConfig};

const SCALES: Scales = Scales::new(2, 3);

fn venue(depth: usize) -> (MarketDataVenue, Acceptor) {
    let venue = MarketDataVenue::new(MdVenueConfig {
        instruments: vec![("BTCUSDT".into(), 2, 3), ("ETHUSDT".into(), 2, 3)],
        depth,
    })
    .unwrap();
    let mut config = SessionConfig::new(SessionId::new("FIX.4.4", "PAPER-MD", "NEXUS"));
    config.validate = false;
    let session = Session::new(
        config,
        Arc::new(fix_session::dictionary().unwrap()),
        Box::new(MemoryStore::new()),
    );
    let acceptor = venue
        .serve(AcceptorConfig::localhost(), vec![session])
        .unwrap();
    (venue, acceptor)
}

fn session(acceptor: &Acceptor, depth: u32, stale_after: Duration) -> FixMdSession {
    let mut config = FixMdSessionConfig::new(
        acceptor.local_addr(),
        "NEXUS",
        "PAPER-MD",
        vec![("BTCUSDT".into(), SCALES), ("ETHUSDT".into(), SCALES)],
    );
    config.depth = depth;
    config.stale_after = stale_after;
    config.reconnect_min = Duration::from_millis(20);
    FixMdSession::start(config).unwrap()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

type Sides = (Vec<(i64, i64)>, Vec<(i64, i64)>);

fn sides(book: &OrderBook) -> Sides {
    let side = |s| book.levels(s).map(|l| (l.price, l.size)).collect();
    (side(Side::Bid), side(Side::Ask))
}

/// A deterministic book that moves with `step`: `n` levels a side around 100.00.
fn book_at(step: i64, n: i64) -> Sides {
    let mid = 10_000 + (step % 7) * 10;
    let bids = (0..n)
        .map(|k| (mid - 10 - 10 * k, 1_000 + ((step + k) % 5) * 100))
        .collect();
    let asks = (0..n)
        .map(|k| (mid + 10 + 10 * k, 2_000 + ((step * 3 + k) % 4) * 100))
        .collect();
    (bids, asks)
}

fn converged(session: &FixMdSession, venue: &MarketDataVenue, symbol: &str) -> bool {
    let Some(book) = session.book(symbol) else {
        return false;
    };
    book.state() == BookState::Live && Some(sides(&book)) == venue.book(symbol)
}

#[test]
fn the_session_keeps_the_venues_books() {
    let (venue, acceptor) = venue(5);
    let (bids, asks) = book_at(0, 8);
    venue.set_book("BTCUSDT", &bids, &asks).unwrap();
    let md = session(&acceptor, 0, Duration::from_secs(5));
    wait_for("the snapshot", || converged(&md, &venue, "BTCUSDT"));
    // Trimmed to the venue's depth of 5.
    assert_eq!(md.book("BTCUSDT").unwrap().level_count(Side::Bid), 5);
    for step in 1..200 {
        let (bids, asks) = book_at(step, 3 + step % 6);
        venue.set_book("BTCUSDT", &bids, &asks).unwrap();
        venue
            .on_quote("ETHUSDT", 3_000 + step, 3_010 + step, 5, 7)
            .unwrap();
    }
    wait_for("the increments", || {
        converged(&md, &venue, "BTCUSDT") && converged(&md, &venue, "ETHUSDT")
    });
    let status = md.status();
    assert_eq!(status.health, Health::Healthy, "{status:?}");
    assert!(status.logged_on);
    assert_eq!(status.requests_sent, 2);
    assert_eq!(status.resubscriptions, 0);
    assert_eq!(status.outcomes.get("snapshot"), Some(&2));
    // Every step moves both books (the BTCUSDT mid moves each step): one X each.
    assert_eq!(
        status.outcomes.get("applied"),
        Some(&(199 * 2)),
        "{status:?}"
    );
    assert_eq!(md.feed_stats().rejected_total(), 0);
    // The first book (RptSeq 1, in the W) and 199 changes.
    assert_eq!(md.book("BTCUSDT").unwrap().sequence(), 200);
    md.stop();
    wait_for("the venue to drop the subscriptions", || {
        venue.stats().subscriptions == 0
    });
}

#[test]
fn a_gap_resubscribes_and_applies_the_buffered_increments() {
    let (venue, acceptor) = venue(4);
    let (bids, asks) = book_at(0, 4);
    venue.set_book("BTCUSDT", &bids, &asks).unwrap();
    venue.on_quote("ETHUSDT", 3_000, 3_010, 5, 7).unwrap();
    let md = session(&acceptor, 4, Duration::from_secs(5));
    wait_for("the snapshot", || {
        converged(&md, &venue, "BTCUSDT") && converged(&md, &venue, "ETHUSDT")
    });
    // Two changes are lost on the way; the next ones show the gap.
    venue.drop_next_updates("BTCUSDT", 2).unwrap();
    for step in 1..50 {
        let (bids, asks) = book_at(step, 4);
        venue.set_book("BTCUSDT", &bids, &asks).unwrap();
        venue
            .on_quote("ETHUSDT", 3_000 + step, 3_010 + step, 5, 7)
            .unwrap();
    }
    wait_for("the re-subscription", || md.status().resubscriptions == 1);
    wait_for("the books", || {
        converged(&md, &venue, "BTCUSDT") && converged(&md, &venue, "ETHUSDT")
    });
    let status = md.status();
    let stats = md.feed_stats();
    assert_eq!(stats.gaps, 1, "{stats:?}");
    // The X that showed the gap at least was buffered; it is older than the new W, or applied.
    assert!(stats.buffered >= 1, "{stats:?}");
    assert_eq!(stats.buffer_dropped, 0);
    assert_eq!(stats.rejected_total(), 0);
    assert_eq!(venue.stats().withheld, 2);
    // unsubscribe + subscribe, besides the two first subscriptions.
    assert_eq!(status.requests_sent, 4, "{status:?}");
    assert_eq!(venue.stats().snapshots, 3);
    assert_eq!(venue.stats().subscriptions, 2);
    assert_eq!(status.health, Health::Healthy);
    // The ETHUSDT book never left sequence.
    assert_eq!(md.book("ETHUSDT").unwrap().sequence(), 50);
}

#[test]
fn a_request_the_venue_refuses_is_surfaced_with_its_reason() {
    let (venue, acceptor) = venue(10);
    let md = session(&acceptor, 3, Duration::from_secs(5));
    wait_for("the rejects", || md.status().rejects == 2);
    let status = md.status();
    let reject = &status.first_rejects[0];
    assert_eq!(reject.code.as_deref(), Some("5"));
    assert!(reject.symbol.is_some());
    assert!(
        reject.reason.starts_with("MarketDataRequestReject: unsupported MarketDepth (MarketDepth \"3\": this venue publishes 10 levels"),
        "{}",
        reject.reason
    );
    assert_eq!(venue.stats().rejects, 2);
    assert_eq!(venue.stats().subscriptions, 0);
    // Not asked again: the venue would refuse again.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(md.status().requests_sent, 2);
    assert_eq!(
        md.status().needs_snapshot,
        vec!["BTCUSDT".to_owned(), "ETHUSDT".to_owned()]
    );
}

#[test]
fn silence_and_logout_are_stale_and_data_recovers() {
    let (venue, mut acceptor) = venue(1);
    venue.on_quote("BTCUSDT", 10_000, 10_010, 5, 7).unwrap();
    let stale_after = Duration::from_millis(300);
    let md = session(&acceptor, 1, stale_after);
    wait_for("the snapshot", || converged(&md, &venue, "BTCUSDT"));
    assert_eq!(md.status().health, Health::Healthy);
    // Silent: heartbeats would not count either (HeartBtInt is 30 s here, the test below
    // checks a session whose heartbeats flow).
    wait_for("stale", || md.status().health == Health::Stale);
    let status = md.status();
    assert_eq!(status.stale_episodes, 1);
    assert!(
        status.reason.starts_with("no market data for"),
        "{}",
        status.reason
    );
    assert!(status.logged_on);
    venue.on_quote("BTCUSDT", 10_001, 10_010, 5, 7).unwrap();
    wait_for("healthy again", || md.status().health == Health::Healthy);
    assert_eq!(md.status().stale_episodes, 1);
    acceptor.stop();
    wait_for("disconnected", || {
        md.status().health == Health::Disconnected
    });
    let status = md.status();
    assert_eq!(status.reason, "logged out");
    assert_eq!(status.stale_episodes, 2);
    assert_eq!(md.book("BTCUSDT").unwrap().state(), BookState::Gapped);
}

#[test]
fn heartbeats_do_not_count_as_data() {
    let (venue, acceptor) = venue(1);
    venue.on_quote("BTCUSDT", 10_000, 10_010, 5, 7).unwrap();
    let mut config = FixMdSessionConfig::new(
        acceptor.local_addr(),
        "NEXUS",
        "PAPER-MD",
        vec![("BTCUSDT".into(), SCALES)],
    );
    config.heart_bt_int = 1;
    config.stale_after = Duration::from_millis(1_500);
    let md = FixMdSession::start(config).unwrap();
    wait_for("the snapshot", || converged(&md, &venue, "BTCUSDT"));
    // Heartbeats flow every second both ways, but no market data: stale after 1.5 s.
    let started = Instant::now();
    wait_for("stale", || md.status().health == Health::Stale);
    assert!(started.elapsed() >= Duration::from_millis(1_000));
    assert!(md.status().logged_on);
    assert_eq!(md.status().data_messages, 1);
}
