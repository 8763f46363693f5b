//! Restarts of the execution engine on the same folders: the order journal
//! restores orders, positions and the report log; reconciliation with the venue
//! (OrderStatusRequest) settles what happened while it was down. The tests run
//! one at a time (they open FIX sessions on 127.0.0.1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nexus_execution::{
    ExecType, ExecutionConfig, ExecutionEngine, ExecutionError, InstrumentConfig, JournalError,
    Order, OrderRequest, OrderStatus, OrderType, RiskLimits, Side, TimeInForce, VenueSetup,
    JOURNAL_FILE_NAME,
};
use nexus_fix::session::{
    Acceptor, AcceptorConfig, FileStore, MemoryStore, MessageStore, Session, SessionConfig,
    SessionId,
};
use nexus_venue::{InstrumentSpec, PaperVenue, VenueConfig};

const SYM: &str = "ESZ6";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nexus-restart-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(dir: &Path, venues: Vec<VenueSetup>, sessions: bool) -> ExecutionConfig {
    ExecutionConfig {
        instruments: vec![InstrumentConfig::new(SYM, 2, 0, 25)],
        venues,
        limits: RiskLimits {
            max_order_quantity: 100,
            ..RiskLimits::default()
        },
        store_dir: sessions.then(|| dir.join("fix")),
        journal_dir: Some(dir.join("orders")),
        ..ExecutionConfig::default()
    }
}

fn start(config: ExecutionConfig) -> ExecutionEngine {
    let engine = ExecutionEngine::start(config).unwrap();
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
        time_in_force: TimeInForce::Gtc,
        venues: Vec::new(),
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn status_of(engine: &ExecutionEngine, id: u64) -> Option<OrderStatus> {
    engine.order(id).map(|o| o.status)
}

/// Waits until every restored open order is answered for.
fn wait_reconciled(engine: &ExecutionEngine) {
    wait_for("reconciliation", || {
        engine.journal_status().is_some_and(|s| s.unreconciled == 0)
    });
}

#[test]
fn orders_positions_and_reports_survive_a_restart() {
    let _serial = serial();
    let dir = temp("paper");
    let paper = || vec![VenueSetup::paper("PAPER")];
    let engine = start(config(&dir, paper(), true));
    engine.on_quote(SYM, 10_000, 10_025, 50, 50, 1).unwrap();
    let b1 = engine.submit(limit("B1", Side::Buy, 10, 10_025)).unwrap();
    let b2 = engine.submit(limit("B2", Side::Buy, 6, 10_050)).unwrap();
    wait_for("fills", || {
        status_of(&engine, b2.order_id) == Some(OrderStatus::Filled)
            && status_of(&engine, b1.order_id) == Some(OrderStatus::Filled)
    });
    let s1 = engine.submit(limit("S1", Side::Sell, 4, 10_000)).unwrap();
    let rest = engine.submit(limit("R1", Side::Buy, 5, 9_900)).unwrap();
    let refused = engine.submit(limit("BIG", Side::Buy, 101, 9_900)).unwrap();
    assert_eq!(refused.status, OrderStatus::Rejected);
    wait_for("the sell fill and the resting ack", || {
        status_of(&engine, s1.order_id) == Some(OrderStatus::Filled)
            && status_of(&engine, rest.order_id) == Some(OrderStatus::New)
    });
    engine
        .replace(rest.order_id, "R1b", 7, Some(9_925))
        .unwrap();
    wait_for("the replace", || {
        engine.order(rest.order_id).unwrap().client_order_id() == "R1b"
    });
    let orders = engine.orders();
    let positions = engine.positions();
    let reports = engine.reports_since(0, 1000);
    let last = engine.last_sequence();
    assert!(positions[0].1.realized != 0, "{positions:?}");
    assert_eq!(positions[0].1.quantity, 12);
    engine.stop();

    let engine = start(config(&dir, paper(), true));
    // Before the venue answers: all as it was (the resting order may already
    // be reconciled, see below).
    assert_eq!(engine.positions(), positions);
    assert!(engine.last_sequence() >= last);
    assert_eq!(engine.reports_since(0, reports.len()), reports);
    wait_reconciled(&engine);
    let status = engine.journal_status().unwrap();
    assert_eq!((status.status_requests, status.status_answers), (1, 1));
    assert!(status.replayed > 0 && status.notes.is_empty(), "{status:?}");
    // The paper venue restarted empty: the order resting there is gone, and
    // says so; every other order is as it was.
    let after = engine.orders();
    assert_eq!(after.len(), orders.len());
    for (before, after) in orders.iter().zip(&after) {
        if before.order_id == rest.order_id {
            assert_eq!(after.status, OrderStatus::Canceled);
            assert_eq!((after.quantity, after.limit_price), (7, Some(9_925)));
            assert!(
                after.reject.as_deref().unwrap().contains("does not know"),
                "{after:?}"
            );
        } else {
            assert_eq!(before, after);
        }
    }
    let lost = engine.reports_since(last, 10);
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].exec_type, ExecType::Canceled);
    assert_eq!(engine.positions(), positions);
    assert_eq!(
        engine.positions()[0].1.average_price(),
        positions[0].1.average_price()
    );
    // ClOrdIDs stay taken; ids go on; the restored engine trades on.
    assert!(matches!(
        engine.submit(limit("B1", Side::Buy, 1, 10_025)),
        Err(ExecutionError::Manager(_))
    ));
    engine.on_quote(SYM, 10_000, 10_025, 50, 50, 2).unwrap();
    let next = engine.submit(limit("B3", Side::Buy, 1, 10_025)).unwrap();
    assert_eq!(next.order_id, refused.order_id + 1);
    wait_for("B3 fill", || {
        status_of(&engine, next.order_id) == Some(OrderStatus::Filled)
    });
    assert_eq!(engine.positions()[0].1.quantity, 13);
    assert!(engine.unapplied().is_empty(), "{:?}", engine.unapplied());
    let final_orders = engine.orders();
    let final_positions = engine.positions();
    engine.stop();

    // A torn last record (a crash in mid-write) is cut off with the reason;
    // the state is what the records before it say.
    let journal = dir.join("orders").join(JOURNAL_FILE_NAME);
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&journal, &bytes).unwrap();
    let engine = start(config(&dir, paper(), true));
    let status = engine.journal_status().unwrap();
    assert_eq!(status.notes.len(), 1, "{status:?}");
    assert!(status.notes[0].contains("torn"), "{:?}", status.notes);
    assert_eq!(engine.orders(), final_orders);
    assert_eq!(engine.positions(), final_positions);
    engine.stop();

    // A bad record before the last: the start is refused, naming the file.
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[20] ^= 0x55;
    std::fs::write(&journal, &bytes).unwrap();
    match ExecutionEngine::start(config(&dir, paper(), true)) {
        Err(ExecutionError::Journal(e @ JournalError::Corrupt { .. })) => {
            assert!(e.to_string().contains(JOURNAL_FILE_NAME), "{e}");
        }
        other => panic!("expected a corrupt journal, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A paper venue behind its own acceptor, which outlives the engine.
struct Broker {
    venue: PaperVenue,
    acceptor: Acceptor,
}

impl Broker {
    fn start(store: Box<dyn MessageStore>, port: u16) -> Self {
        let venue = PaperVenue::new(VenueConfig {
            instruments: vec![InstrumentSpec::new(SYM, 2, 0, 25)],
            id_prefix: "BRK".into(),
            ..VenueConfig::default()
        });
        let acceptor = Self::serve(&venue, store, port);
        Self { venue, acceptor }
    }

    fn serve(venue: &PaperVenue, store: Box<dyn MessageStore>, port: u16) -> Acceptor {
        let session = Session::new(
            SessionConfig::new(SessionId::new("FIX.4.4", "BROKER", "NEXUS")),
            Arc::new(PaperVenue::dictionary().unwrap()),
            store,
        );
        let mut config = AcceptorConfig::localhost();
        config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        venue.serve(config, vec![session]).unwrap()
    }

    fn setup(&self) -> Vec<VenueSetup> {
        vec![VenueSetup::external("BROKER", self.acceptor.local_addr())]
    }
}

fn trades_of(engine: &ExecutionEngine, order_id: u64) -> Vec<(String, i64)> {
    engine
        .reports_since(0, 1000)
        .into_iter()
        .filter(|r| r.exec_type == ExecType::Trade && r.order.order_id == order_id)
        .map(|r| (r.exec_id, r.last_quantity))
        .collect()
}

#[test]
fn a_fill_made_while_down_is_applied_exactly_once() {
    let _serial = serial();
    let dir = temp("external");
    let store = FileStore::open(dir.join("broker"), "broker").unwrap();
    let mut broker = Broker::start(Box::new(store), 0);
    broker
        .venue
        .on_quote(SYM, 10_000, 10_025, 50, 50, 1)
        .unwrap();
    let engine = start(config(&dir, broker.setup(), true));
    let rest = engine.submit(limit("R1", Side::Buy, 5, 10_000)).unwrap();
    wait_for("the ack", || {
        status_of(&engine, rest.order_id) == Some(OrderStatus::New)
    });
    engine.stop();

    // While we are down the order fills at the venue; its report waits there.
    assert_eq!(
        broker.venue.on_quote(SYM, 9_950, 9_975, 50, 50, 2).unwrap(),
        1
    );

    let engine = start(config(&dir, broker.setup(), true));
    wait_reconciled(&engine);
    // Both the venue's report and its answer to the status request arrive, in
    // either order; the fill counts once.
    wait_for("the report and the answer", || {
        let trades = trades_of(&engine, rest.order_id);
        let counted = engine
            .unapplied()
            .iter()
            .any(|u| u.contains("already counted"));
        trades.iter().any(|(id, _)| id.starts_with("BRK-")) || counted
    });
    std::thread::sleep(Duration::from_millis(100));
    let order = engine.order(rest.order_id).unwrap();
    assert_eq!((order.status, order.filled), (OrderStatus::Filled, 5));
    // A resting limit fills at its price.
    assert_eq!(order.average_price(), Some(10_000));
    assert_eq!(trades_of(&engine, rest.order_id).len(), 1);
    assert_eq!(engine.positions()[0].1.quantity, 5);
    assert_eq!(engine.positions()[0].1.average_price(), Some(10_000));
    let orders = engine.orders();
    let positions = engine.positions();
    engine.stop();

    // And once more after another restart: the journal replays it once, and
    // nothing is open, so nothing is asked.
    let engine = start(config(&dir, broker.setup(), true));
    assert_eq!(engine.orders(), orders);
    assert_eq!(engine.positions(), positions);
    assert_eq!(engine.journal_status().unwrap().status_requests, 0);
    engine.stop();
    broker.acceptor.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fill_whose_report_was_lost_is_taken_from_the_order_status() {
    let _serial = serial();
    let dir = temp("lost-report");
    let mut broker = Broker::start(Box::new(MemoryStore::new()), 0);
    let port = broker.acceptor.local_addr().port();
    broker
        .venue
        .on_quote(SYM, 10_000, 10_025, 50, 50, 1)
        .unwrap();
    // No session store: both ends start again at 1, nothing is resent.
    let engine = start(config(&dir, broker.setup(), false));
    let rest = engine.submit(limit("R1", Side::Buy, 5, 10_000)).unwrap();
    let other = engine.submit(limit("R2", Side::Buy, 2, 9_000)).unwrap();
    wait_for("the acks", || {
        status_of(&engine, rest.order_id) == Some(OrderStatus::New)
            && status_of(&engine, other.order_id) == Some(OrderStatus::New)
    });
    engine.stop();
    broker.acceptor.stop();
    // 3 of 5 fill while nobody listens: the report is lost for good.
    assert_eq!(
        broker.venue.on_quote(SYM, 9_950, 9_975, 3, 3, 2).unwrap(),
        1
    );
    broker.acceptor = Broker::serve(&broker.venue, Box::new(MemoryStore::new()), port);

    let engine = start(config(&dir, broker.setup(), false));
    wait_reconciled(&engine);
    wait_for("the derived fill", || {
        engine.order(rest.order_id).is_some_and(|o| o.filled == 3)
    });
    let order = engine.order(rest.order_id).unwrap();
    assert_eq!(order.status, OrderStatus::PartiallyFilled);
    assert_eq!(order.average_price(), Some(10_000));
    assert_eq!(engine.positions()[0].1.quantity, 3);
    assert_eq!(status_of(&engine, other.order_id), Some(OrderStatus::New));
    let trades = trades_of(&engine, rest.order_id);
    assert_eq!(
        trades,
        vec![(format!("STATUS-{}-fill-3", rest.order_id), 3)]
    );
    // The rest fills with a real report, whose CumQty (5) goes beyond ours.
    broker.venue.on_quote(SYM, 9_950, 9_975, 9, 9, 3).unwrap();
    wait_for("the last fill", || {
        status_of(&engine, rest.order_id) == Some(OrderStatus::Filled)
    });
    assert_eq!(engine.positions()[0].1.quantity, 5);
    assert!(engine.unapplied().is_empty(), "{:?}", engine.unapplied());
    engine.stop();
    broker.acceptor.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compaction_keeps_the_state_and_bounds_the_file() {
    let _serial = serial();
    let dir = temp("compact");
    let small = || ExecutionConfig {
        journal_compact_bytes: 4096,
        ..config(&dir, vec![VenueSetup::paper("PAPER")], true)
    };
    let engine = start(small());
    engine.on_quote(SYM, 10_000, 10_025, 500, 500, 1).unwrap();
    let mut last: Option<Order> = None;
    for i in 0..40 {
        let side = if i % 3 == 0 { Side::Sell } else { Side::Buy };
        let price = if side == Side::Buy { 10_025 } else { 10_000 };
        last = Some(
            engine
                .submit(limit(&format!("C{i}"), side, 1 + i % 4, price))
                .unwrap(),
        );
    }
    let last = last.unwrap();
    wait_for("the fills", || {
        status_of(&engine, last.order_id) == Some(OrderStatus::Filled)
            && engine
                .orders()
                .iter()
                .all(|o| o.status == OrderStatus::Filled)
    });
    let orders = engine.orders();
    let positions = engine.positions();
    let sequence = engine.last_sequence();
    // Compactions run on a thread of their own; a stop finishes the last one.
    engine.stop();
    let status = engine.journal_status().unwrap();
    assert!(status.compactions > 0, "{status:?}");
    assert!(status.notes.is_empty(), "{:?}", status.notes);
    let size = std::fs::metadata(&status.path).unwrap().len();
    assert_eq!(size, status.bytes);
    assert!(size < 3 * 4096 + 64 * 1024, "{size} bytes");

    let engine = start(small());
    assert_eq!(engine.orders(), orders);
    assert_eq!(engine.positions(), positions);
    // The log keeps the reports since the last snapshot; numbering goes on.
    assert_eq!(engine.last_sequence(), sequence);
    engine.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
