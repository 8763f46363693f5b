//! Stopping the execution engine ends every thread it started. Alone in its test
//! binary, so that no other test's threads are counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use nexus_execution::{
    ExecutionConfig, ExecutionEngine, InstrumentConfig, OrderRequest, OrderType, Side, TimeInForce,
};

const SYM: &str = "ESZ6";

fn threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(Iterator::count)
}

#[test]
fn stop_leaves_no_threads() {
    let before = threads();
    let engine = ExecutionEngine::start(ExecutionConfig {
        instruments: vec![InstrumentConfig::new(SYM, 2, 0, 25)],
        ..ExecutionConfig::default()
    })
    .unwrap();
    assert!(engine.wait_logged_on(Duration::from_secs(5)));
    engine.on_quote(SYM, 10_000, 10_025, 5, 20, 1).unwrap();
    engine
        .submit(OrderRequest {
            client_order_id: "T1".into(),
            symbol: SYM.into(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            quantity: 1,
            limit_price: Some(10_025),
            time_in_force: TimeInForce::Ioc,
            venues: Vec::new(),
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.reports_since(0, 10).len() < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    engine.stop();
    let session = engine.session_state();
    assert!(!session.logged_on);
    assert!(session.next_sender_seq > 2, "{session:?}");
    assert!(!engine.wait_logged_on(Duration::from_millis(10)));
    engine.stop();
    drop(engine);
    if let (Some(before), Some(_)) = (before, threads()) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while threads() != Some(before) {
            assert!(Instant::now() < deadline, "threads left: {:?}", threads());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
