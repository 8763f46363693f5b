//! The execution engine end to end: order manager -> FIX initiator -> paper venue
//! over TCP on 127.0.0.1 and back. The tests run one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nexus_execution::{
    ExecType, ExecutionConfig, ExecutionEngine, ExecutionError, InstrumentConfig, OrderRequest,
    OrderStatus, OrderType, ReportRecord, RiskLimits, RiskReason, Side, TimeInForce, VenueSetup,
};

const SYM: &str = "ESZ6";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn engine() -> ExecutionEngine {
    let engine = ExecutionEngine::start(ExecutionConfig {
        instruments: vec![InstrumentConfig::new(SYM, 2, 0, 25)],
        limits: RiskLimits {
            max_order_quantity: 100,
            ..RiskLimits::default()
        },
        ..ExecutionConfig::default()
    })
    .unwrap();
    assert!(engine.wait_logged_on(Duration::from_secs(5)));
    engine
}

fn limit(id: &str, side: Side, quantity: i64, price: i64) -> OrderRequest {
    OrderRequest {
        client_order_id: id.to_owned(),
        symbol: SYM.to_owned(),
        side,
        order_type: OrderType::Limit,
        quantity,
        limit_price: Some(price),
        time_in_force: TimeInForce::Day,
        venues: Vec::new(),
    }
}

/// Polls the report log from `after` until `done` holds for the reports seen.
fn wait_reports(
    engine: &ExecutionEngine,
    after: u64,
    done: impl Fn(&[ReportRecord]) -> bool,
) -> Vec<ReportRecord> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen: Vec<ReportRecord> = Vec::new();
    loop {
        let last = seen.last().map_or(after, |r| r.sequence);
        seen.extend(engine.reports_since(last, 1000));
        if done(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "timed out; got {seen:#?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn marketable_order_fills_and_updates_the_position() {
    let _serial = serial();
    let started = Instant::now();
    let engine = engine();
    engine
        .on_quote(SYM, 10_000, 10_025, 5, 20, 1_700_000_000_000_000_000)
        .unwrap();
    let order = engine.submit(limit("B1", Side::Buy, 10, 10_050)).unwrap();
    assert_eq!(order.status, OrderStatus::PendingNew);
    let reports = wait_reports(&engine, 0, |r| {
        r.iter().any(|r| r.order.status == OrderStatus::Filled)
    });
    assert_eq!(
        reports.iter().map(|r| r.exec_type).collect::<Vec<_>>(),
        [ExecType::New, ExecType::Trade]
    );
    assert_eq!(
        reports.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        [1, 2]
    );
    let fill = &reports[1];
    assert_eq!((fill.last_quantity, fill.last_price), (10, Some(10_025)));
    assert_eq!(fill.order.filled, 10);
    assert_eq!(fill.order.average_price(), Some(10_025));
    let order = engine.order(order.order_id).unwrap();
    assert_eq!(order.status, OrderStatus::Filled);
    let positions = engine.positions();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].0, SYM);
    assert_eq!(positions[0].1.quantity, 10);
    assert_eq!(positions[0].1.average_price(), Some(10_025));
    assert!(engine.reports_since(2, 10).is_empty());
    assert_eq!(engine.reports_since(1, 10).len(), 1);
    assert!(engine.unapplied().is_empty(), "{:?}", engine.unapplied());
    let session = engine.session_state();
    assert!(session.logged_on);
    assert_eq!(session.session_id, "FIX.4.4:NEXUS->PAPER");
    assert!(session.next_sender_seq >= 3 && session.next_target_seq >= 4);
    engine.stop();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn risk_rejected_order_never_reaches_the_venue() {
    let _serial = serial();
    let engine = engine();
    engine.on_quote(SYM, 10_000, 10_025, 5, 20, 1).unwrap();
    let order = engine.submit(limit("BIG", Side::Buy, 101, 10_050)).unwrap();
    assert_eq!(order.status, OrderStatus::Rejected);
    assert_eq!(
        order.risk_reject.as_ref().map(|r| r.reason),
        Some(RiskReason::MaxQuantity)
    );
    let before = engine.session_state().next_sender_seq;
    std::thread::sleep(Duration::from_millis(100));
    assert!(engine.reports_since(0, 10).is_empty());
    assert_eq!(engine.session_state().next_sender_seq, before);
    assert_eq!(
        engine
            .venue()
            .unwrap()
            .with_engine(|e| e.resting(SYM).len()),
        0
    );
    // Bad arguments are errors, not orders.
    assert!(matches!(
        engine.submit(limit("BIG", Side::Buy, 1, 10_000)),
        Err(ExecutionError::Manager(_))
    ));
    assert!(matches!(
        engine.submit(OrderRequest {
            symbol: "XXX".into(),
            ..limit("X1", Side::Buy, 1, 10_000)
        }),
        Err(ExecutionError::UnknownInstrument(_))
    ));
    assert!(matches!(
        engine.submit(limit("", Side::Buy, 1, 10_000)),
        Err(ExecutionError::Invalid(_))
    ));
    engine.stop();
    assert!(matches!(
        engine.submit(limit("LATE", Side::Buy, 1, 10_000)),
        Err(ExecutionError::Stopped)
    ));
}

#[test]
fn venue_reject_is_reported() {
    let _serial = serial();
    let engine = engine();
    engine.on_quote(SYM, 10_000, 10_025, 5, 20, 1).unwrap();
    // Off the 0.25 tick: the venue refuses it.
    let order = engine.submit(limit("OFF", Side::Buy, 1, 10_001)).unwrap();
    let reports = wait_reports(&engine, 0, |r| !r.is_empty());
    assert_eq!(reports[0].exec_type, ExecType::Rejected);
    let order = engine.order(order.order_id).unwrap();
    assert_eq!(order.status, OrderStatus::Rejected);
    assert!(order.risk_reject.is_none());
    assert!(order.reject.is_some());
}

#[test]
fn resting_order_is_replaced_and_cancelled() {
    let _serial = serial();
    let engine = engine();
    engine.on_quote(SYM, 10_000, 10_025, 5, 20, 1).unwrap();
    let order = engine.submit(limit("S1", Side::Sell, 5, 10_100)).unwrap();
    wait_reports(&engine, 0, |r| r.len() == 1);
    assert_eq!(
        engine.order(order.order_id).unwrap().status,
        OrderStatus::New
    );

    engine
        .replace(order.order_id, "S2", 4, Some(10_125))
        .unwrap();
    let reports = wait_reports(&engine, 1, |r| r.len() == 1);
    assert_eq!(reports[0].exec_type, ExecType::Replaced);
    assert_eq!(reports[0].order.quantity, 4);
    assert_eq!(reports[0].order.limit_price, Some(10_125));
    assert_eq!(reports[0].order.client_order_id(), "S2");

    let pending = engine.cancel(order.order_id, "S3").unwrap();
    assert!(pending.pending.is_some());
    let reports = wait_reports(&engine, 2, |r| r.len() == 1);
    assert_eq!(reports[0].exec_type, ExecType::Canceled);
    assert_eq!(reports[0].order.status, OrderStatus::Canceled);
    assert!(engine
        .venue()
        .unwrap()
        .with_engine(|e| e.resting(SYM).is_empty()));
    // A closed order cannot be cancelled again.
    assert!(engine.cancel(order.order_id, "S4").is_err());
}

#[test]
fn kill_switch_cancels_open_orders_and_blocks_new_ones() {
    let _serial = serial();
    let engine = engine();
    engine.on_quote(SYM, 10_000, 10_025, 5, 20, 1).unwrap();
    let a = engine.submit(limit("K1", Side::Buy, 3, 9_900)).unwrap();
    let b = engine.submit(limit("K2", Side::Sell, 3, 10_200)).unwrap();
    wait_reports(&engine, 0, |r| r.len() == 2);
    let ids = engine.set_kill_switch(true).unwrap();
    assert_eq!(ids, vec![a.order_id, b.order_id]);
    wait_reports(&engine, 2, |r| r.len() == 2);
    for id in ids {
        assert_eq!(engine.order(id).unwrap().status, OrderStatus::Canceled);
    }
    let blocked = engine.submit(limit("K3", Side::Buy, 1, 9_900)).unwrap();
    assert_eq!(blocked.status, OrderStatus::Rejected);
    assert_eq!(
        blocked.risk_reject.map(|r| r.reason),
        Some(RiskReason::KillSwitch)
    );
    assert!(engine.set_kill_switch(false).unwrap().is_empty());
    let after = engine.submit(limit("K4", Side::Buy, 1, 9_900)).unwrap();
    assert_eq!(after.status, OrderStatus::PendingNew);
}

#[test]
fn market_orders_round_trip_and_realize_pnl() {
    let _serial = serial();
    let engine = engine();
    engine.on_quote(SYM, 10_000, 10_025, 50, 50, 1).unwrap();
    let market = |id: &str, side| OrderRequest {
        order_type: OrderType::Market,
        limit_price: None,
        time_in_force: TimeInForce::Ioc,
        ..limit(id, side, 4, 0)
    };
    let buy = engine.submit(market("M1", Side::Buy)).unwrap();
    let sell = engine.submit(market("M2", Side::Sell)).unwrap();
    wait_reports(&engine, 0, |r| {
        r.iter()
            .filter(|r| r.order.status == OrderStatus::Filled)
            .count()
            == 2
    });
    assert_eq!(
        engine.order(buy.order_id).unwrap().average_price(),
        Some(10_025)
    );
    assert_eq!(
        engine.order(sell.order_id).unwrap().average_price(),
        Some(10_000)
    );
    let (_, position) = engine.positions().remove(0);
    assert_eq!(position.quantity, 0);
    // Bought 4 at 100.25, sold 4 at 100.00: -0.25 x 4 = -100 mantissa units.
    assert_eq!(position.realized, -100);
}

#[test]
fn bad_configuration_is_refused() {
    assert!(matches!(
        ExecutionEngine::start(ExecutionConfig::default()),
        Err(ExecutionError::Config(_))
    ));
    assert!(matches!(
        ExecutionEngine::start(ExecutionConfig {
            instruments: vec![InstrumentConfig::new(SYM, 2, 0, 0)],
            ..ExecutionConfig::default()
        }),
        Err(ExecutionError::Config(_))
    ));
}

#[test]
fn connects_to_an_external_acceptor() {
    use std::sync::Arc;

    use nexus_fix::session::{AcceptorConfig, MemoryStore, Session, SessionConfig, SessionId};
    use nexus_venue::{InstrumentSpec, PaperVenue, VenueConfig};

    let _serial = serial();
    let venue = PaperVenue::new(VenueConfig {
        instruments: vec![InstrumentSpec::new(SYM, 2, 0, 25)],
        ..VenueConfig::default()
    });
    let session = Session::new(
        SessionConfig::new(SessionId::new("FIX.4.4", "BROKER", "NEXUS")),
        Arc::new(PaperVenue::dictionary().unwrap()),
        Box::new(MemoryStore::new()),
    );
    let mut acceptor = venue
        .serve(AcceptorConfig::localhost(), vec![session])
        .unwrap();
    let engine = ExecutionEngine::start(ExecutionConfig {
        instruments: vec![InstrumentConfig::new(SYM, 2, 0, 25)],
        venues: vec![VenueSetup::external("BROKER", acceptor.local_addr())],
        heart_bt_int: 5,
        ..ExecutionConfig::default()
    })
    .unwrap();
    assert!(engine.wait_logged_on(Duration::from_secs(5)));
    assert!(engine.venue().is_none());
    assert_eq!(engine.venue_addr(), acceptor.local_addr());
    // Only the risk engine sees the quote; the external venue is fed apart.
    engine.on_quote(SYM, 10_000, 10_025, 5, 20, 1).unwrap();
    assert!(engine.on_quote(SYM, 10_025, 10_000, 5, 20, 1).is_err());
    venue.on_quote(SYM, 10_000, 10_025, 5, 20, 1).unwrap();
    engine.submit(limit("X1", Side::Buy, 2, 10_025)).unwrap();
    let reports = wait_reports(&engine, 0, |r| {
        r.iter().any(|r| r.order.status == OrderStatus::Filled)
    });
    assert_eq!(reports[0].exec_type, ExecType::New);
    assert_eq!(engine.positions()[0].1.quantity, 2);
    engine.stop();
    assert!(!engine.session_state().logged_on);
    acceptor.stop();
}

#[test]
fn zero_heartbeat_interval_is_refused() {
    assert!(matches!(
        ExecutionEngine::start(ExecutionConfig {
            instruments: vec![InstrumentConfig::new(SYM, 2, 0, 25)],
            heart_bt_int: 0,
            ..ExecutionConfig::default()
        }),
        Err(ExecutionError::Config(_))
    ));
}

fn two_venues(latency_cost_bps_per_ms: f64, slow_latency: Duration) -> ExecutionEngine {
    let engine = ExecutionEngine::start(ExecutionConfig {
        instruments: vec![InstrumentConfig::new(SYM, 2, 0, 25)],
        venues: vec![
            VenueSetup {
                fee_bps: 3,
                ..VenueSetup::paper("FAST")
            },
            VenueSetup {
                fee_bps: 1,
                latency: slow_latency,
                ..VenueSetup::paper("CHEAP")
            },
        ],
        latency_cost_bps_per_ms,
        ..ExecutionConfig::default()
    })
    .unwrap();
    assert!(engine.wait_logged_on(Duration::from_secs(5)));
    engine
}

#[test]
fn venue_selection_weighs_fees_against_latency() {
    let _serial = serial();
    // Latency free: the cheaper venue wins on fees.
    let engine = two_venues(0.0, Duration::from_millis(30));
    engine.on_quote(SYM, 10_000, 10_025, 50, 50, 1).unwrap();
    engine.submit(limit("R1", Side::Buy, 1, 10_025)).unwrap();
    let reports = wait_reports(&engine, 0, |r| {
        r.iter().any(|r| r.order.status == OrderStatus::Filled)
    });
    assert!(reports.iter().all(|r| r.venue == "CHEAP"));
    let fill = reports
        .iter()
        .find(|r| r.exec_type == ExecType::Trade)
        .unwrap();
    // CHEAP's 1 bp of 1 x 100.25 is 0.010025: 1 hundredth.
    assert_eq!(fill.commission, Some(1));
    let stats = engine.venue_stats();
    assert_eq!(stats[1].routed, 1);
    assert!(
        stats[1].ack_ms > 0.0,
        "the acknowledgement time was measured"
    );
    engine.stop();

    // At 1 bp per millisecond, 30 ms of latency outweighs 2 bp of fees.
    let engine = two_venues(1.0, Duration::from_millis(30));
    engine.on_quote(SYM, 10_000, 10_025, 50, 50, 1).unwrap();
    let order = engine.submit(limit("R2", Side::Buy, 1, 10_025)).unwrap();
    let reports = wait_reports(&engine, 0, |r| {
        r.iter().any(|r| r.order.status == OrderStatus::Filled)
    });
    assert!(reports.iter().all(|r| r.venue == "FAST"));
    // FAST's 3 bp: 0.030075, 3 hundredths.
    assert!(reports
        .iter()
        .any(|r| r.exec_type == ExecType::Trade && r.commission == Some(3)));
    assert_eq!(
        engine.order_with_venue(order.order_id).map(|(_, v)| v),
        Some("FAST".to_owned())
    );
    // A venue named on the order wins over selection; an unknown one is refused.
    let named = OrderRequest {
        venues: vec!["CHEAP".into()],
        ..limit("R3", Side::Buy, 1, 10_025)
    };
    let named = engine.submit(named).unwrap();
    let unknown = OrderRequest {
        venues: vec!["NOWHERE".into()],
        ..limit("R4", Side::Buy, 1, 10_025)
    };
    assert!(matches!(
        engine.submit(unknown),
        Err(ExecutionError::Invalid(why)) if why.contains("NOWHERE") && why.contains("CHEAP")
    ));
    let reports = wait_reports(&engine, 0, |r| {
        r.iter()
            .filter(|r| r.order.status == OrderStatus::Filled)
            .count()
            == 2
    });
    assert!(reports
        .iter()
        .filter(|r| r.order.order_id == named.order_id)
        .all(|r| r.venue == "CHEAP"));
    // One order manager: the position adds up over both venues.
    assert_eq!(engine.positions()[0].1.quantity, 2);
    let sessions = engine.sessions();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s.logged_on && s.simulated));
    assert_eq!(sessions[1].session_id, "FIX.4.4:NEXUS->CHEAP");
    engine.stop();
}

#[test]
fn venues_must_be_distinct_and_not_ourselves() {
    let config = |venues: Vec<VenueSetup>| ExecutionConfig {
        instruments: vec![InstrumentConfig::new(SYM, 2, 0, 25)],
        venues,
        ..ExecutionConfig::default()
    };
    for venues in [
        vec![],
        vec![VenueSetup::paper("A"), VenueSetup::paper("A")],
        vec![VenueSetup::paper("NEXUS")],
        vec![VenueSetup {
            fee_bps: -1,
            ..VenueSetup::paper("A")
        }],
    ] {
        assert!(matches!(
            ExecutionEngine::start(config(venues)),
            Err(ExecutionError::Config(_))
        ));
    }
}

#[test]
fn sequence_numbers_resume_after_a_restart_with_a_store_dir() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("nexus-exec-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || ExecutionConfig {
        instruments: vec![InstrumentConfig::new(SYM, 2, 0, 25)],
        store_dir: Some(dir.clone()),
        ..ExecutionConfig::default()
    };
    let engine = ExecutionEngine::start(config()).unwrap();
    assert!(engine.wait_logged_on(Duration::from_secs(5)));
    engine.on_quote(SYM, 10_000, 10_025, 50, 50, 1).unwrap();
    engine.submit(limit("S1", Side::Buy, 1, 10_025)).unwrap();
    wait_reports(&engine, 0, |r| {
        r.iter().any(|r| r.order.status == OrderStatus::Filled)
    });
    let before = engine.session_state();
    engine.stop();
    let after_stop = engine.session_state();
    assert!(after_stop.next_sender_seq > 2, "{after_stop:?}");
    assert!(before.next_sender_seq >= 3);

    // A new engine on the same folder logs on where the last one stopped (its
    // Logon takes the next number) and both ends agree: it trades on.
    let engine = ExecutionEngine::start(config()).unwrap();
    assert!(engine.wait_logged_on(Duration::from_secs(5)));
    let resumed = engine.session_state();
    assert!(
        resumed.next_sender_seq > after_stop.next_sender_seq,
        "{resumed:?} after {after_stop:?}"
    );
    engine.on_quote(SYM, 10_000, 10_025, 50, 50, 1).unwrap();
    engine.submit(limit("S2", Side::Buy, 1, 10_025)).unwrap();
    wait_reports(&engine, 0, |r| {
        r.iter().any(|r| r.order.status == OrderStatus::Filled)
    });
    engine.stop();
    assert!(
        std::fs::read_dir(&dir).unwrap().count() >= 4,
        "two stores, two files each"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // A store that cannot be opened fails the start with the reason.
    let file = std::env::temp_dir().join(format!("nexus-exec-notadir-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap();
    let refused = ExecutionEngine::start(ExecutionConfig {
        store_dir: Some(file.clone()),
        ..config()
    });
    assert!(matches!(refused, Err(ExecutionError::Store(_))));
    let _ = std::fs::remove_file(&file);
}

/// An engine whose FIX readers busy-poll for longer than a test (from the first
/// message to the end), with `caller_reads`, HeartBtInt 1, logged on, quoted.
fn start_polling(caller_reads: Duration) -> ExecutionEngine {
    let engine = ExecutionEngine::start(ExecutionConfig {
        instruments: vec![InstrumentConfig::new(SYM, 2, 0, 25)],
        busy_poll: Duration::from_secs(60),
        caller_reads,
        heart_bt_int: 1,
        ..ExecutionConfig::default()
    })
    .unwrap();
    assert!(engine.wait_logged_on(Duration::from_secs(5)));
    engine
        .on_quote(SYM, 10_000, 10_025, 5, 20, 1_700_000_000_000_000_000)
        .unwrap();
    engine
}

/// Submits 200 resting buy orders at `price`, each waited for (spinning, as
/// `wait_report_after` does) until its New is logged; returns the last report's
/// sequence number.
fn rest_orders_one_at_a_time(engine: &ExecutionEngine, prefix: &str, price: i64) -> u64 {
    let mut last = engine.last_sequence();
    for i in 0..200 {
        let order = engine
            .submit(limit(&format!("{prefix}{i}"), Side::Buy, 1, price))
            .unwrap();
        let seq = engine.wait_report_after(last, Duration::from_secs(5));
        assert!(seq > last, "no report for order {i}");
        let report = engine.reports_since(last, 1).remove(0);
        assert_eq!(
            (report.exec_type, report.order.order_id),
            (ExecType::New, order.order_id)
        );
        last = seq;
    }
    last
}

/// With no orders for three heartbeat intervals (HeartBtInt 1), heartbeats go
/// both ways and the session stays logged on; then the engine stops in time.
fn heartbeats_flow_then_stop(engine: &ExecutionEngine) {
    let before = engine.session_state();
    std::thread::sleep(Duration::from_millis(3_500));
    let after = engine.session_state();
    assert!(after.logged_on);
    assert!(
        after.next_sender_seq > before.next_sender_seq
            && after.next_target_seq > before.next_target_seq,
        "heartbeats both ways: {before:?} -> {after:?}"
    );
    let stopping = Instant::now();
    engine.stop();
    assert!(stopping.elapsed() < Duration::from_secs(5));
}

#[test]
fn busy_polling_readers_trade_keep_their_timers_and_stop() {
    let _serial = serial();
    let engine = start_polling(Duration::ZERO);
    rest_orders_one_at_a_time(&engine, "P", 5_000);
    // Silent for three heartbeat intervals: the polling readers still run the
    // session timers (a missed heartbeat would end the session).
    heartbeats_flow_then_stop(&engine);
}

#[test]
fn callers_reading_their_reports_trade_and_late_fills_still_arrive() {
    let _serial = serial();
    let engine = start_polling(Duration::from_millis(300));
    let last = rest_orders_one_at_a_time(&engine, "R", 9_000);
    // No caller waits: the fills the quote below triggers at the venue are
    // applied by the session's reader once the linger (300 ms) has passed.
    let quoted = Instant::now();
    engine
        .on_quote(SYM, 8_900, 8_950, 500, 500, 1_700_000_000_000_000_001)
        .unwrap();
    let reports = wait_reports(&engine, last, |r| {
        r.iter().filter(|r| r.exec_type == ExecType::Trade).count() == 200
    });
    assert!(
        quoted.elapsed() < Duration::from_secs(3),
        "{:?}",
        quoted.elapsed()
    );
    assert!(reports
        .iter()
        .all(|r| r.order.client_order_id().starts_with('R')));
    assert_eq!(engine.positions()[0].1.quantity, 200);
    // Silent for three heartbeat intervals: the timers still run.
    heartbeats_flow_then_stop(&engine);
}
