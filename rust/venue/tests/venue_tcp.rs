//! The Nexus initiator (nexus-fix) against the paper venue simulator behind a
//! nexus-fix acceptor, over TCP on 127.0.0.1: logon, a limit order that partially
//! fills against the quote, the unsolicited fill of its resting remainder when a
//! later quote crosses it, cancel/replace and cancel of another resting order,
//! rejects, logout. Needs no shared data (the venue ships its dictionary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_fix::message::Message;
use nexus_fix::session::tcp::now_nanos;
use nexus_fix::session::{
    AcceptorConfig, AppEvent, ChannelApplication, Initiator, InitiatorConfig, MemoryStore,
    OutgoingMessage, Session, SessionConfig, SessionId,
};
use nexus_venue::{EngineConfig, FeeModel, InstrumentSpec, PaperVenue, VenueConfig};

const SYM: &str = "ESZ6";

fn venue_id() -> SessionId {
    SessionId::new("FIX.4.4", "PAPER", "NEXUS")
}

fn nexus_id() -> SessionId {
    SessionId::new("FIX.4.4", "NEXUS", "PAPER")
}

/// The fields of a received message, as text.
#[derive(Debug)]
struct Received {
    msg_type: String,
    fields: Vec<(u32, String)>,
}

impl Received {
    fn get(&self, tag: u32) -> &str {
        self.fields
            .iter()
            .find(|(t, _)| *t == tag)
            .map_or_else(|| panic!("tag {tag} missing in {self:?}"), |(_, v)| v)
    }

    fn has(&self, tag: u32) -> bool {
        self.fields.iter().any(|(t, _)| *t == tag)
    }

    /// Asserts ClOrdID, ExecType, OrdStatus, CumQty, LeavesQty, AvgPx.
    fn assert_er(
        &self,
        cl_ord_id: &str,
        exec_type: &str,
        status: &str,
        cum: &str,
        leaves: &str,
        avg: &str,
    ) {
        assert_eq!(self.msg_type, "8", "{self:?}");
        assert_eq!(
            [
                self.get(11),
                self.get(150),
                self.get(39),
                self.get(14),
                self.get(151),
                self.get(6)
            ],
            [cl_ord_id, exec_type, status, cum, leaves, avg],
            "{self:?}"
        );
        assert!(!self.get(17).is_empty());
        assert!(!self.get(37).is_empty());
    }

    /// Asserts LastQty, LastPx and Commission of a Trade report.
    fn assert_fill(&self, last_qty: &str, last_px: &str, commission: &str) {
        assert_eq!(
            [self.get(32), self.get(31), self.get(12), self.get(13)],
            [last_qty, last_px, commission, "3"],
            "{self:?}"
        );
    }
}

struct Client {
    rx: Receiver<AppEvent>,
    exec_ids: HashSet<String>,
}

impl Client {
    fn next(&mut self) -> Received {
        match self.rx.recv_timeout(Duration::from_secs(5)).unwrap() {
            AppEvent::Message(session, bytes) => {
                assert_eq!(session, nexus_id());
                let msg = Message::parse(&bytes).unwrap();
                let received = Received {
                    msg_type: String::from_utf8_lossy(msg.msg_type()).into_owned(),
                    fields: msg
                        .iter()
                        .map(|(t, v)| (t, String::from_utf8_lossy(v).into_owned()))
                        .collect(),
                };
                if received.msg_type == "8" {
                    let exec_id = received.get(17).to_owned();
                    assert!(self.exec_ids.insert(exec_id), "ExecID reused: {received:?}");
                }
                received
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn assert_quiet(&self) {
        assert!(
            self.rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "unexpected message"
        );
    }
}

fn order(cl_ord_id: &str, side: &str, qty: &str, price: &str) -> OutgoingMessage {
    OutgoingMessage::new("D")
        .field(11, cl_ord_id)
        .field(55, SYM)
        .field(54, side)
        .field(60, timestamp())
        .field(38, qty)
        .field(40, "2")
        .field(44, price)
        .field(59, "0")
}

fn timestamp() -> Vec<u8> {
    let mut out = Vec::new();
    nexus_fix::message::write_utc_timestamp(
        &mut out,
        now_nanos(),
        nexus_fix::TimestampPrecision::Millis,
    );
    out
}

/// Threads of this process (Linux), to check that none is left behind.
fn threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(Iterator::count)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn nexus_trades_with_the_paper_venue_over_tcp() {
    let started = Instant::now();
    let threads_before = threads();
    let dictionary = Arc::new(PaperVenue::dictionary().unwrap());
    let venue = PaperVenue::new(VenueConfig {
        engine: EngineConfig {
            slippage_ticks: 0,
            fees: FeeModel::PerUnit(50),
        },
        instruments: vec![InstrumentSpec::new(SYM, 2, 0, 25)],
        ..VenueConfig::default()
    });
    let session = Session::new(
        SessionConfig::new(venue_id()),
        Arc::clone(&dictionary),
        Box::new(MemoryStore::new()),
    );
    let mut acceptor = venue
        .serve(AcceptorConfig::localhost(), vec![session])
        .unwrap();

    let session = Session::new(
        SessionConfig::new(nexus_id()),
        Arc::clone(&dictionary),
        Box::new(MemoryStore::new()),
    );
    let (app, rx) = ChannelApplication::new(64);
    let mut initiator = Initiator::start(
        InitiatorConfig::new(acceptor.local_addr()),
        session,
        Arc::new(app),
    )
    .unwrap();
    let mut client = Client {
        rx,
        exec_ids: HashSet::new(),
    };
    assert_eq!(
        client.rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        AppEvent::Logon(nexus_id())
    );
    wait_for("venue logon", || acceptor.is_logged_on(&venue_id()));
    let orders = initiator.sender();

    // 100.00 x 100.25, 5 x 7. Buy 10 @ 100.50: 7 fill at 100.25, 3 rest.
    assert_eq!(
        venue
            .on_quote(SYM, 10_000, 10_025, 5, 7, now_nanos())
            .unwrap(),
        0
    );
    orders.send(order("O1", "1", "10", "100.50")).unwrap();
    let new = client.next();
    new.assert_er("O1", "0", "0", "0", "10", "0.00");
    assert_eq!(
        (new.get(55), new.get(54), new.get(38), new.get(44)),
        (SYM, "1", "10", "100.50")
    );
    let order_id = new.get(37).to_owned();
    let fill = client.next();
    fill.assert_er("O1", "F", "1", "7", "3", "100.25");
    fill.assert_fill("7", "100.25", "3.50");
    assert_eq!(fill.get(37), order_id);
    client.assert_quiet();

    // A quote at 100.50 crosses the remainder: unsolicited fill at the limit.
    assert_eq!(
        venue
            .on_quote(SYM, 10_000, 10_050, 5, 9, now_nanos())
            .unwrap(),
        1
    );
    let fill = client.next();
    // AvgPx (100.25 * 7 + 100.50 * 3) / 10 = 100.325, rounded half up.
    fill.assert_er("O1", "F", "2", "10", "0", "100.33");
    fill.assert_fill("3", "100.50", "1.50");
    assert_eq!(fill.get(37), order_id);

    // Another order rests: sell 5 @ 101.00 against a 100.00 bid.
    orders.send(order("O2", "2", "5", "101.00")).unwrap();
    let new = client.next();
    new.assert_er("O2", "0", "0", "0", "5", "0.00");
    let order_id = new.get(37).to_owned();
    client.assert_quiet();

    // Cancel/replace it to 4 @ 101.25.
    orders
        .send(
            OutgoingMessage::new("G")
                .field(37, &order_id)
                .field(41, "O2")
                .field(11, "O3")
                .field(55, SYM)
                .field(54, "2")
                .field(60, timestamp())
                .field(38, "4")
                .field(40, "2")
                .field(44, "101.25"),
        )
        .unwrap();
    let replaced = client.next();
    replaced.assert_er("O3", "5", "0", "0", "4", "0.00");
    assert_eq!(
        (replaced.get(41), replaced.get(37)),
        ("O2", order_id.as_str())
    );
    assert_eq!((replaced.get(38), replaced.get(44)), ("4", "101.25"));

    // Cancel it.
    let cancel = |orig: &str, cl: &str| {
        OutgoingMessage::new("F")
            .field(41, orig)
            .field(11, cl)
            .field(55, SYM)
            .field(54, "2")
            .field(60, timestamp())
            .field(38, "4")
    };
    orders.send(cancel("O3", "O4")).unwrap();
    let canceled = client.next();
    canceled.assert_er("O4", "4", "4", "0", "0", "0.00");
    assert_eq!(
        (canceled.get(41), canceled.get(37)),
        ("O3", order_id.as_str())
    );
    assert!(venue.with_engine(|e| e.resting(SYM).is_empty()));

    // A quote that would have crossed it fills nothing.
    assert_eq!(
        venue
            .on_quote(SYM, 10_125, 10_150, 9, 9, now_nanos())
            .unwrap(),
        0
    );
    client.assert_quiet();

    // Cancelling again: too late; an unknown order: unknown.
    orders.send(cancel("O4", "O5")).unwrap();
    let reject = client.next();
    assert_eq!(reject.msg_type, "9");
    assert_eq!(
        [
            reject.get(11),
            reject.get(41),
            reject.get(39),
            reject.get(434),
            reject.get(102)
        ],
        ["O5", "O4", "4", "1", "0"]
    );
    orders.send(cancel("NOPE", "O6")).unwrap();
    let reject = client.next();
    assert_eq!(
        [reject.msg_type.as_str(), reject.get(37), reject.get(102)],
        ["9", "NONE", "1"]
    );
    assert!(reject.has(58));

    // Rejected orders: unknown instrument, duplicate ClOrdID.
    let mut unknown = order("O7", "1", "1", "1.00");
    unknown.body.set(1, b"XXX");
    orders.send(unknown).unwrap();
    let rejected = client.next();
    rejected.assert_er("O7", "8", "8", "0", "0", "0");
    assert_eq!((rejected.get(103), rejected.get(37)), ("1", "NONE"));
    orders.send(order("O1", "1", "1", "100.00")).unwrap();
    let rejected = client.next();
    rejected.assert_er("O1", "8", "8", "0", "0", "0");
    assert_eq!(rejected.get(103), "6");

    // OrderStatusRequest: the order's state (ExecType I), or unknown order.
    for (id, status, reason) in [("O1", None, None), ("O9", Some("8"), Some("5"))] {
        orders
            .send(
                OutgoingMessage::new("H")
                    .field(11, id)
                    .field(55, SYM)
                    .field(54, "1"),
            )
            .unwrap();
        let answer = client.next();
        assert_eq!(
            [answer.msg_type.as_str(), answer.get(150), answer.get(11)],
            ["8", "I", id]
        );
        if let Some(status) = status {
            assert_eq!(answer.get(39), status);
        } else {
            assert_ne!(answer.get(39), "8");
        }
        assert_eq!(answer.has(103).then(|| answer.get(103)), reason);
    }
    client.assert_quiet();

    // Logout.
    initiator.stop();
    assert_eq!(
        client.rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        AppEvent::Logout(nexus_id())
    );
    wait_for("venue logout", || !acceptor.is_logged_on(&venue_id()));
    acceptor.stop();
    assert_eq!(venue.pending_reports(), 0);
    if let (Some(before), Some(_)) = (threads_before, threads()) {
        wait_for("threads to end", || threads() == Some(before));
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
