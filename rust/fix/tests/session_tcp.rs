//! The session layer over real TCP on 127.0.0.1: an initiator and an acceptor of
//! Nexus talking to each other, file stores surviving a restart, reconnection with
//! back-off and duplicate-identity refusal. Uses a small built-in dictionary, so it
//! needs no shared data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod session_common;
use session_common::{
    acceptor_id, dictionary, initiator_id, next_event, order, wait_for, Exchange, TempDir,
};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use nexus_fix::message::{FieldAccess, Message};
use nexus_fix::session::tcp::now_nanos;
use nexus_fix::session::Initiator;
use nexus_fix::session::{
    Acceptor, AcceptorConfig, AppEvent, ChannelApplication, FileStore, InitiatorConfig,
    MemoryStore, OutgoingMessage, Session, SessionConfig, SessionId,
};
use nexus_fix::{frame, Dictionary};

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("nexus-fix-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    TempDir(dir)
}

fn start_acceptor(store: FileStore, bind: Option<std::net::SocketAddr>) -> Acceptor {
    let mut config = AcceptorConfig::localhost();
    if let Some(bind) = bind {
        config.bind = bind;
    }
    let session = Session::new(
        SessionConfig::new(acceptor_id()),
        dictionary(),
        Box::new(store),
    );
    Acceptor::start(config, vec![session], Arc::new(Exchange)).unwrap()
}

fn start_initiator(
    addr: std::net::SocketAddr,
    store: Box<dyn nexus_fix::session::MessageStore>,
) -> (Initiator, Receiver<AppEvent>) {
    let mut config = SessionConfig::new(initiator_id());
    config.heart_bt_int = 1;
    let session = Session::new(config, dictionary(), store);
    let (app, rx) = ChannelApplication::new(16);
    let mut icfg = InitiatorConfig::new(addr);
    icfg.reconnect_min = Duration::from_millis(50);
    icfg.reconnect_max = Duration::from_millis(400);
    (Initiator::start(icfg, session, Arc::new(app)).unwrap(), rx)
}

#[test]
fn initiator_and_acceptor_exchange_messages_and_survive_restart() {
    let dir = temp_dir("tcp-restart");
    let acceptor = start_acceptor(FileStore::open(&dir, "acceptor").unwrap(), None);
    let addr = acceptor.local_addr();
    let (mut initiator, rx) =
        start_initiator(addr, Box::new(FileStore::open(&dir, "initiator").unwrap()));
    assert_eq!(next_event(&rx), AppEvent::Logon(initiator_id()));
    wait_for("acceptor logon", Duration::from_secs(5), || {
        acceptor.is_logged_on(&acceptor_id())
    });
    let orders = initiator.sender();
    for id in ["O1", "O2"] {
        orders.send(order(id)).unwrap();
        match next_event(&rx) {
            AppEvent::Message(session, bytes) => {
                assert_eq!(session, initiator_id());
                let msg = Message::parse(&bytes).unwrap();
                assert_eq!(msg.msg_type(), b"8");
                assert_eq!(msg.get_str(11).unwrap(), id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Let a heartbeat or two go by (HeartBtInt 1 s).
    std::thread::sleep(Duration::from_millis(1300));
    assert!(initiator.is_logged_on());
    initiator.stop();
    assert_eq!(next_event(&rx), AppEvent::Logout(initiator_id()));
    wait_for("acceptor logout", Duration::from_secs(5), || {
        !acceptor.is_logged_on(&acceptor_id())
    });
    let (sender_seq, target_seq) = acceptor.seq_nums(&acceptor_id()).unwrap();
    assert!(
        sender_seq >= 5 && target_seq >= 5,
        "{sender_seq} {target_seq}"
    );
    let initiator_seqs = initiator.seq_nums();
    assert_eq!(initiator_seqs, (target_seq, sender_seq));
    drop(initiator);
    drop(acceptor);

    // Restart both from their files: the sequence numbers carry on.
    let store = FileStore::open(&dir, "acceptor").unwrap();
    let acceptor = start_acceptor(store, Some(addr));
    assert_eq!(
        acceptor.seq_nums(&acceptor_id()),
        Some((sender_seq, target_seq))
    );
    let (mut initiator, rx) =
        start_initiator(addr, Box::new(FileStore::open(&dir, "initiator").unwrap()));
    assert_eq!(next_event(&rx), AppEvent::Logon(initiator_id()));
    assert_eq!(initiator.seq_nums(), (target_seq + 1, sender_seq + 1));
    initiator.stop();
    drop(acceptor);
}

#[test]
fn initiator_reconnects_with_backoff() {
    let dir = temp_dir("tcp-reconnect");
    // Find a free port, then leave it closed while the initiator starts.
    let probe = start_acceptor(FileStore::open(&dir, "probe").unwrap(), None);
    let addr = probe.local_addr();
    drop(probe);
    let (mut initiator, rx) = start_initiator(addr, Box::new(MemoryStore::new()));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!initiator.is_logged_on());
    let acceptor = start_acceptor(FileStore::open(&dir, "acceptor").unwrap(), Some(addr));
    assert_eq!(next_event(&rx), AppEvent::Logon(initiator_id()));
    drop(acceptor);
    // The acceptor logged out and closed: the initiator notices and retries.
    assert_eq!(next_event(&rx), AppEvent::Logout(initiator_id()));
    let acceptor = start_acceptor(FileStore::open(&dir, "acceptor").unwrap(), Some(addr));
    assert_eq!(next_event(&rx), AppEvent::Logon(initiator_id()));
    initiator.stop();
    drop(acceptor);
}

/// A Logon from TW to ISLD (as the initiator of these tests would send it).
fn raw_logon(seq: u64) -> Vec<u8> {
    raw_logon_from("TW", "ISLD", seq, "")
}

/// A Logon from `sender` to `target` numbered `seq`, with `extra` fields
/// (`tag=value` each followed by SOH) after HeartBtInt.
fn raw_logon_from(sender: &str, target: &str, seq: u64, extra: &str) -> Vec<u8> {
    let mut ts = Vec::new();
    nexus_fix::message::write_utc_timestamp(
        &mut ts,
        now_nanos(),
        nexus_fix::TimestampPrecision::Seconds,
    );
    let body = format!(
        "35=A\u{1}34={seq}\u{1}49={sender}\u{1}52={}\u{1}56={target}\u{1}98=0\u{1}108=30\u{1}{extra}",
        String::from_utf8_lossy(&ts)
    );
    frame::encode("FIX.4.4", body.as_bytes())
}

fn read_some(stream: &mut TcpStream) -> Option<Vec<u8>> {
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(buf[..n].to_vec()),
    }
}

#[test]
fn duplicate_identity_is_refused() {
    let dir = temp_dir("tcp-duplicate");
    let acceptor = start_acceptor(FileStore::open(&dir, "acceptor").unwrap(), None);
    let mut first = TcpStream::connect(acceptor.local_addr()).unwrap();
    first.write_all(&raw_logon(1)).unwrap();
    let answer = read_some(&mut first).expect("logon answer");
    assert_eq!(Message::parse(&answer).unwrap().msg_type(), b"A");
    let mut second = TcpStream::connect(acceptor.local_addr()).unwrap();
    second.write_all(&raw_logon(1)).unwrap();
    assert_eq!(
        read_some(&mut second),
        None,
        "second connection must be dropped"
    );
    assert!(acceptor.is_logged_on(&acceptor_id()));
    drop(first);
    wait_for("logout after close", Duration::from_secs(5), || {
        !acceptor.is_logged_on(&acceptor_id())
    });
    drop(acceptor);
}

#[test]
fn logon_outside_the_schedule_is_refused() {
    let dir = temp_dir("tcp-schedule");
    let hour = (now_nanos() / 1_000_000_000 / 3600 % 24) as u32;
    let mut config = AcceptorConfig::localhost();
    // A window that opens two hours from now and closes an hour later.
    config.schedule =
        nexus_fix::session::Schedule::daily(((hour + 2) % 24, 0, 0), ((hour + 3) % 24, 0, 0), 0);
    let session = Session::new(
        SessionConfig::new(acceptor_id()),
        dictionary(),
        Box::new(FileStore::open(&dir, "acceptor").unwrap()),
    );
    let acceptor = Acceptor::start(config, vec![session], Arc::new(Exchange)).unwrap();
    let mut stream = TcpStream::connect(acceptor.local_addr()).unwrap();
    stream.write_all(&raw_logon(1)).unwrap();
    assert_eq!(read_some(&mut stream), None);
    assert!(!acceptor.is_logged_on(&acceptor_id()));
    drop(acceptor);
}

fn shared_spec(file: &str) -> Option<Arc<Dictionary>> {
    let dir = match std::env::var_os("NEXUS_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    let path = dir.join("fix/spec").join(file);
    if !path.is_file() {
        eprintln!(
            "skipping: {} not found (set NEXUS_SHARED_DATA)",
            path.display()
        );
        return None;
    }
    Some(Arc::new(Dictionary::from_file(path).unwrap()))
}

#[test]
fn fixt_session_with_fix50sp2_application_messages() {
    let (Some(transport), Some(application)) =
        (shared_spec("FIXT11.xml"), shared_spec("FIX50SP2.xml"))
    else {
        return;
    };
    let mut acfg = SessionConfig::new(SessionId::new("FIXT.1.1", "ISLD", "TW"));
    acfg.default_appl_ver_id = Some("9".to_owned());
    let acceptor_session = Session::fixt(
        acfg,
        Arc::clone(&transport),
        Arc::clone(&application),
        Box::new(MemoryStore::new()),
    );
    let (exchange, orders) = ChannelApplication::new(16);
    let acceptor = Acceptor::start(
        AcceptorConfig::localhost(),
        vec![acceptor_session],
        Arc::new(exchange),
    )
    .unwrap();
    let mut icfg = SessionConfig::new(SessionId::new("FIXT.1.1", "TW", "ISLD"));
    icfg.default_appl_ver_id = Some("9".to_owned());
    icfg.reset_on_logon = true;
    let initiator_session =
        Session::fixt(icfg, transport, application, Box::new(MemoryStore::new()));
    let (client, events) = ChannelApplication::new(16);
    let mut initiator = Initiator::start(
        InitiatorConfig::new(acceptor.local_addr()),
        initiator_session,
        Arc::new(client),
    )
    .unwrap();
    assert!(matches!(next_event(&events), AppEvent::Logon(_)));
    assert!(matches!(next_event(&orders), AppEvent::Logon(_)));
    let mut ts = Vec::new();
    nexus_fix::message::write_utc_timestamp(
        &mut ts,
        now_nanos(),
        nexus_fix::TimestampPrecision::Millis,
    );
    initiator
        .sender()
        .send(
            OutgoingMessage::new("D")
                .field(11, "F1")
                .field(55, "EUR/USD")
                .field(54, "1")
                .field(60, ts)
                .field(38, "1000000")
                .field(40, "1"),
        )
        .unwrap();
    match next_event(&orders) {
        AppEvent::Message(_, bytes) => {
            let msg = Message::parse(&bytes).unwrap();
            assert_eq!(msg.begin_string(), b"FIXT.1.1");
            assert_eq!(msg.get_str(11).unwrap(), "F1");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        acceptor.seq_nums(&SessionId::new("FIXT.1.1", "ISLD", "TW")),
        Some((2, 3))
    );
    initiator.stop();
    drop(acceptor);
}

#[test]
fn send_now_numbers_on_the_callers_thread_and_never_overtakes_queued_messages() {
    // A free port with nothing listening yet: the initiator keeps reconnecting.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (initiator, rx) = start_initiator(addr, Box::new(MemoryStore::new()));
    // Not logged on: queued, in order.
    for id in ["Q1", "Q2", "Q3"] {
        initiator.send_now(order(id)).unwrap();
    }
    assert!(!initiator.is_logged_on());
    let dir = temp_dir("tcp-send-now");
    let _acceptor = start_acceptor(FileStore::open(&dir, "acceptor").unwrap(), Some(addr));
    assert_eq!(next_event(&rx), AppEvent::Logon(initiator_id()));
    let mut seen = Vec::new();
    let take = |seen: &mut Vec<String>| match next_event(&rx) {
        AppEvent::Message(_, bytes) => {
            let msg = Message::parse(&bytes).unwrap();
            seen.push(msg.get_str(11).unwrap().to_owned());
        }
        other => panic!("unexpected {other:?}"),
    };
    // Sent right after the logon, possibly while the queue is still draining:
    // never ahead of Q1..Q3.
    initiator.send_now(order("N1")).unwrap();
    for _ in 0..4 {
        take(&mut seen);
    }
    assert_eq!(seen, ["Q1", "Q2", "Q3", "N1"]);
    // Logged on and nothing queued: numbered before send_now returns.
    let (before, _) = initiator.seq_nums();
    initiator.send_now(order("N2")).unwrap();
    assert_eq!(initiator.seq_nums().0, before + 1);
    take(&mut seen);
    assert_eq!(seen.last().map(String::as_str), Some("N2"));
}

/// Records each application message's ClOrdID with the name of the thread that
/// handed it over, and each logon and logout.
#[derive(Default)]
struct ThreadRecorder {
    seen: std::sync::Mutex<Vec<(String, String)>>,
    logons: std::sync::atomic::AtomicUsize,
    logouts: std::sync::atomic::AtomicUsize,
}

impl nexus_fix::session::Application for ThreadRecorder {
    fn on_logon(&self, _: &SessionId) {
        self.logons
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn on_logout(&self, _: &SessionId) {
        self.logouts
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn on_message(&self, _: &SessionId, msg: &Message<'_>, _: &mut Vec<OutgoingMessage>) {
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        let id = msg.get_str(11).unwrap_or_default().to_owned();
        self.seen.lock().unwrap().push((id, thread));
    }
}

impl ThreadRecorder {
    /// The thread that handed over `id`, once it has been.
    fn thread_of(&self, id: &str) -> Option<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter().find(|(i, _)| i == id).map(|(_, t)| t.clone())
    }
}

fn start_reading_initiator(
    addr: std::net::SocketAddr,
    caller_reads: Duration,
) -> (Initiator, Arc<ThreadRecorder>) {
    let mut config = SessionConfig::new(initiator_id());
    config.heart_bt_int = 30;
    config.reset_on_logon = true;
    let session = Session::new(config, dictionary(), Box::new(MemoryStore::new()));
    let app = Arc::new(ThreadRecorder::default());
    let mut icfg = InitiatorConfig::new(addr);
    icfg.reconnect_min = Duration::from_millis(50);
    icfg.reconnect_max = Duration::from_millis(200);
    icfg.caller_reads = caller_reads;
    let app_dyn: Arc<dyn nexus_fix::session::Application> = Arc::clone(&app) as _;
    (Initiator::start(icfg, session, app_dyn).unwrap(), app)
}

#[test]
fn a_waiting_caller_reads_its_answers_and_the_reader_takes_over_when_it_stops() {
    let dir = temp_dir("tcp-caller-reads");
    let acceptor = start_acceptor(FileStore::open(&dir, "acceptor").unwrap(), None);
    let linger = Duration::from_millis(300);
    let (mut initiator, app) = start_reading_initiator(acceptor.local_addr(), linger);
    wait_for("logon", Duration::from_secs(5), || {
        initiator.is_logged_on() && acceptor.is_logged_on(&acceptor_id())
    });
    let driver = initiator.driver();
    let me = std::thread::current().name().unwrap_or("?").to_owned();
    // Once the reader has seen a caller and stepped aside (its blocking read
    // ends within 20 ms), every answer is read and applied by the caller.
    assert!(!driver.pump());
    std::thread::sleep(Duration::from_millis(60));
    for i in 0..50 {
        let id = format!("C{i}");
        initiator.send_now(order(&id)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while app.thread_of(&id).is_none() {
            assert!(std::time::Instant::now() < deadline, "no answer to {id}");
            driver.pump();
        }
        assert_eq!(app.thread_of(&id).as_deref(), Some(me.as_str()), "{id}");
    }
    // The caller stops reading without a word: a message the acceptor sends on
    // its own is read by the reader once the linger has passed.
    let acceptor_sends = acceptor.sender(&acceptor_id()).unwrap();
    // Sends `id` from the acceptor on its own; how long until the reader
    // thread handed it over.
    let unsolicited = |id: &str| {
        let sent = std::time::Instant::now();
        acceptor_sends
            .send(OutgoingMessage::new("8").field(11, id))
            .unwrap();
        wait_for(id, Duration::from_secs(5), || app.thread_of(id).is_some());
        assert_eq!(app.thread_of(id).as_deref(), Some("fix-initiator"));
        sent.elapsed()
    };
    let took = unsolicited("U1");
    assert!(took < linger * 3, "{took:?}");
    // A caller that releases hands reading back at once.
    assert!(!driver.pump());
    driver.release();
    let took = unsolicited("U2");
    assert!(took < linger, "{took:?}");
    // The acceptor logs out while the caller reads: the caller applies the
    // Logout and leaves the disconnect to the connection's thread.
    std::thread::sleep(Duration::from_millis(60));
    let stopper = std::thread::spawn(move || drop(acceptor));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while initiator.is_logged_on() {
        assert!(std::time::Instant::now() < deadline, "still logged on");
        driver.pump();
    }
    stopper.join().unwrap();
    assert_eq!(app.logouts.load(std::sync::atomic::Ordering::Acquire), 1);
    initiator.stop();
}

#[test]
fn a_peer_that_vanishes_while_the_caller_reads_is_noticed_and_reconnected() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (mut initiator, app) = start_reading_initiator(addr, Duration::from_secs(10));
    // A bare peer: answers the logon, then closes the socket without a Logout.
    let (mut peer, _) = listener.accept().unwrap();
    let logon = read_some(&mut peer).expect("logon");
    assert_eq!(Message::parse(&logon).unwrap().msg_type(), b"A");
    // The acceptor's answer, as the initiator reset its numbers (141=Y).
    peer.write_all(&raw_logon_from("ISLD", "TW", 1, "141=Y\u{1}"))
        .unwrap();
    wait_for("logon", Duration::from_secs(5), || initiator.is_logged_on());
    let driver = initiator.driver();
    driver.pump();
    // The reader steps aside (a 10 s linger: only the caller reads from here).
    std::thread::sleep(Duration::from_millis(60));
    drop(peer);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while initiator.is_logged_on() {
        assert!(
            std::time::Instant::now() < deadline,
            "the close went unnoticed"
        );
        driver.pump();
    }
    // The connection's thread tore the connection down and reconnects.
    listener.set_nonblocking(false).unwrap();
    let (mut again, _) = listener.accept().unwrap();
    let logon = read_some(&mut again).expect("second logon");
    assert_eq!(Message::parse(&logon).unwrap().msg_type(), b"A");
    assert_eq!(app.logons.load(std::sync::atomic::Ordering::Acquire), 1);
    initiator.stop();
}
