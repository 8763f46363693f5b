//! Unit tests of the session state machine, driven with a synthetic clock.

use std::sync::{Arc, Mutex};

use super::*;
use crate::dictionary::Dictionary;
use crate::frame::{self, SOH};
use crate::message::{write_utc_timestamp, FieldAccess, Message, TimestampPrecision};
use crate::session::store::MemoryStore;

const XML: &str = include_str!("test_dictionary.xml");
const S: i64 = 1_000_000_000;
/// 2025-01-01T00:00:00Z
const T0: i64 = 1_735_689_600 * S;

fn dictionary() -> Arc<Dictionary> {
    Arc::new(Dictionary::from_xml(XML, "test_dictionary.xml").expect("test dictionary"))
}

fn acceptor() -> Session {
    let mut config = SessionConfig::new(SessionId::new("FIX.4.4", "ISLD", "TW"));
    config.reset_on_logon = true;
    Session::new(config, dictionary(), Box::new(MemoryStore::new()))
}

/// A session TW -> ISLD that initiates, resetting the numbers at logon or not.
fn initiator(reset_on_logon: bool) -> Session {
    let mut config = SessionConfig::new(SessionId::new("FIX.4.4", "TW", "ISLD"));
    config.initiate = true;
    config.reset_on_logon = reset_on_logon;
    Session::new(config, dictionary(), Box::new(MemoryStore::new()))
}

/// Builds a frame from `35=..|34=..|...` with 49/56 of the counterparty and
/// SendingTime `at` (added when the text has no 52).
fn frame_at(text: &str, at: i64) -> Vec<u8> {
    let mut body = Vec::new();
    let mut ts = Vec::new();
    write_utc_timestamp(&mut ts, at, TimestampPrecision::Seconds);
    let mut fields: Vec<String> = text
        .split('|')
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect();
    if !fields.iter().any(|f| f.starts_with("49=")) {
        fields.insert(1, "49=TW".to_owned());
    }
    if !fields.iter().any(|f| f.starts_with("56=")) {
        fields.insert(2, "56=ISLD".to_owned());
    }
    if !fields.iter().any(|f| f.starts_with("52=")) {
        fields.insert(2, format!("52={}", String::from_utf8_lossy(&ts)));
    }
    for f in fields {
        body.extend_from_slice(f.as_bytes());
        body.push(SOH);
    }
    frame::encode("FIX.4.4", &body)
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\u{1}', "|")
}

fn field(bytes: &[u8], tag: u32) -> Option<String> {
    Message::parse(bytes)
        .ok()
        .and_then(|m| m.get_str(tag).ok().map(str::to_owned))
}

#[derive(Default)]
struct Recorder {
    orders: Mutex<Vec<String>>,
    logons: Mutex<u32>,
}

impl Application for Recorder {
    fn on_logon(&self, _: &SessionId) {
        *self.logons.lock().unwrap() += 1;
    }
    fn on_message(&self, _: &SessionId, msg: &Message<'_>, replies: &mut Vec<OutgoingMessage>) {
        let id = msg.get_str(11).unwrap_or_default().to_owned();
        self.orders.lock().unwrap().push(id.clone());
        replies.push(OutgoingMessage::new("8").field(11, id));
    }
}

fn feed(s: &mut Session, app: &Recorder, text: &str, now: i64) -> Outbox {
    let mut out = Outbox::new();
    s.on_frame(&frame_at(text, now), now, app, &mut out);
    out
}

fn logged_on() -> (Session, Recorder) {
    let mut s = acceptor();
    let app = Recorder::default();
    s.on_connect(T0);
    let out = feed(&mut s, &app, "35=A|34=1|98=0|108=30|", T0);
    assert_eq!(out.messages.len(), 1, "{:?}", out.events);
    assert!(s.is_logged_on());
    (s, app)
}

#[test]
fn logon_is_answered_in_tag_order() {
    let (s, app) = logged_on();
    assert_eq!(*app.logons.lock().unwrap(), 1);
    assert_eq!(s.next_sender_seq(), 2);
    assert_eq!(s.next_target_seq(), 2);
    let mut s = acceptor();
    s.on_connect(T0);
    let out = feed(&mut s, &app, "35=A|34=1|98=0|108=30|141=Y|", T0);
    let text = show(&out.messages[0]);
    assert!(
        text.starts_with(
            "8=FIX.4.4|9=67|35=A|34=1|49=ISLD|52=20250101-00:00:00.000|56=TW|98=0|108=30|141=Y|10="
        ),
        "{text}"
    );
}

#[test]
fn first_message_must_be_a_valid_logon() {
    let mut s = acceptor();
    let app = Recorder::default();
    s.on_connect(T0);
    let out = feed(&mut s, &app, "35=0|34=1|", T0);
    assert!(
        out.disconnect,
        "{:?} {:?}",
        out.events,
        out.messages.iter().map(|m| show(m)).collect::<Vec<_>>()
    );
    // Bad SendingTime on the Logon: Logout with a reason, disconnect.
    let mut s = acceptor();
    s.on_connect(T0);
    let mut out = Outbox::new();
    s.on_frame(
        &frame_at("35=A|34=1|98=0|108=30|", T0 - 200 * S),
        T0,
        &app,
        &mut out,
    );
    assert!(out.disconnect);
    assert_eq!(field(&out.messages[0], 35).as_deref(), Some("5"));
}

#[test]
fn heartbeats_test_requests_and_timeout() {
    let (mut s, app) = logged_on();
    let mut out = Outbox::new();
    s.tick(T0 + 29 * S, &mut out);
    assert!(out.messages.is_empty());
    s.tick(T0 + 30 * S, &mut out);
    assert_eq!(field(&out.messages[0], 35).as_deref(), Some("0"));
    out.clear();
    s.tick(T0 + 36 * S, &mut out);
    assert_eq!(field(&out.messages[0], 35).as_deref(), Some("1"));
    assert_eq!(field(&out.messages[0], 112).as_deref(), Some("TEST"));
    out.clear();
    // The answer resets the timers.
    let answered = feed(&mut s, &app, "35=0|34=2|112=TEST|", T0 + 37 * S);
    assert!(!answered.disconnect);
    s.tick(T0 + 60 * S, &mut out);
    assert!(!out.disconnect);
    s.tick(T0 + 37 * S + 72 * S, &mut out);
    assert!(out.disconnect, "{:?}", out.events);
}

#[test]
fn test_request_is_answered() {
    let (mut s, app) = logged_on();
    let out = feed(&mut s, &app, "35=1|34=2|112=PING|", T0);
    assert_eq!(field(&out.messages[0], 35).as_deref(), Some("0"));
    assert_eq!(field(&out.messages[0], 112).as_deref(), Some("PING"));
}

#[test]
fn gap_is_filled_by_resend_then_queue_is_processed() {
    let (mut s, app) = logged_on();
    let out = feed(&mut s, &app, "35=D|34=4|11=C|55=X|54=1|", T0);
    assert_eq!(field(&out.messages[0], 35).as_deref(), Some("2"));
    assert_eq!(field(&out.messages[0], 7).as_deref(), Some("2"));
    assert_eq!(field(&out.messages[0], 16).as_deref(), Some("0"));
    assert!(app.orders.lock().unwrap().is_empty());
    feed(
        &mut s,
        &app,
        "35=D|34=2|43=Y|122=20241231-23:59:59|11=A|55=X|54=1|",
        T0,
    );
    let out = feed(&mut s, &app, "35=D|34=3|11=B|55=X|54=1|", T0);
    assert_eq!(*app.orders.lock().unwrap(), vec!["A", "B", "C"]);
    assert_eq!(out.messages.len(), 2);
    assert_eq!(s.next_target_seq(), 5);
}

#[test]
fn too_low_without_poss_dup_logs_out() {
    let (mut s, app) = logged_on();
    feed(&mut s, &app, "35=0|34=2|", T0);
    let out = feed(&mut s, &app, "35=0|34=2|", T0);
    assert!(out.disconnect);
    assert_eq!(
        field(&out.messages[0], 58).as_deref(),
        Some("MsgSeqNum too low, expecting 3 but received 2")
    );
}

#[test]
fn poss_dup_checks() {
    let (mut s, app) = logged_on();
    feed(&mut s, &app, "35=0|34=2|", T0);
    // Duplicate with OrigSendingTime: ignored.
    let out = feed(&mut s, &app, "35=0|34=2|43=Y|122=20241231-23:59:59|", T0);
    assert!(out.messages.is_empty() && !out.disconnect);
    // Without OrigSendingTime: Reject 373=1 371=122.
    let out = feed(&mut s, &app, "35=0|34=2|43=Y|", T0);
    assert_eq!(field(&out.messages[0], 35).as_deref(), Some("3"));
    assert_eq!(field(&out.messages[0], 371).as_deref(), Some("122"));
    // OrigSendingTime after SendingTime: Reject 373=10 and Logout.
    let out = feed(&mut s, &app, "35=0|34=2|43=Y|122=20250101-00:00:10|", T0);
    assert_eq!(field(&out.messages[0], 373).as_deref(), Some("10"));
    assert_eq!(field(&out.messages[1], 35).as_deref(), Some("5"));
    assert!(s.is_logging_out());
}

#[test]
fn invalid_message_is_rejected_and_counted() {
    let (mut s, app) = logged_on();
    let out = feed(&mut s, &app, "35=D|34=2|11=A|55=X|54=9|", T0);
    let reject = &out.messages[0];
    assert_eq!(field(reject, 35).as_deref(), Some("3"), "{}", show(reject));
    assert_eq!(field(reject, 373).as_deref(), Some("5"));
    assert_eq!(field(reject, 371).as_deref(), Some("54"));
    assert_eq!(s.next_target_seq(), 3);
    assert!(app.orders.lock().unwrap().is_empty());
}

#[test]
fn comp_id_and_sending_time_problems() {
    let (mut s, app) = logged_on();
    let out = feed(&mut s, &app, "35=0|34=2|49=XX|", T0);
    assert_eq!(field(&out.messages[0], 373).as_deref(), Some("9"));
    assert_eq!(field(&out.messages[1], 35).as_deref(), Some("5"));
    let (mut s, app) = logged_on();
    let out = feed(&mut s, &app, "35=0|34=2|", T0 + 121 * S);
    let _ = out;
    let out = feed(
        &mut s,
        &app,
        &format!("35=0|34=3|52={}|", "20241231-23:57:00"),
        T0,
    );
    assert_eq!(field(&out.messages[0], 373).as_deref(), Some("10"));
}

#[test]
fn resend_request_resends_application_messages_and_gap_fills_admin() {
    let (mut s, app) = logged_on();
    // Our seq 2: execution report (reply to the order); 3: heartbeat; 4: another report.
    feed(&mut s, &app, "35=D|34=2|11=A|55=X|54=1|", T0);
    let mut out = Outbox::new();
    s.tick(T0 + 30 * S, &mut out);
    feed(&mut s, &app, "35=D|34=3|11=B|55=X|54=1|", T0 + 30 * S);
    assert_eq!(s.next_sender_seq(), 5);
    let out = feed(&mut s, &app, "35=2|34=4|7=1|16=0|", T0 + 31 * S);
    let got: Vec<String> = out.messages.iter().map(|m| show(m)).collect();
    assert_eq!(got.len(), 4, "{got:#?}");
    // 1 (Logon): gap fill to 2.
    assert_eq!(field(&out.messages[0], 35).as_deref(), Some("4"));
    assert_eq!(field(&out.messages[0], 34).as_deref(), Some("1"));
    assert_eq!(field(&out.messages[0], 36).as_deref(), Some("2"));
    assert_eq!(field(&out.messages[0], 123).as_deref(), Some("Y"));
    // 2: resent with PossDupFlag and OrigSendingTime.
    assert_eq!(field(&out.messages[1], 35).as_deref(), Some("8"));
    assert_eq!(field(&out.messages[1], 43).as_deref(), Some("Y"));
    assert_eq!(
        field(&out.messages[1], 122).as_deref(),
        Some("20250101-00:00:00.000")
    );
    // 3 (Heartbeat): gap fill to 4, then 4 resent.
    assert_eq!(field(&out.messages[2], 36).as_deref(), Some("4"));
    assert_eq!(field(&out.messages[3], 34).as_deref(), Some("4"));
    assert_eq!(s.next_sender_seq(), 5);
    assert_eq!(s.next_target_seq(), 5);
}

#[test]
fn sequence_reset() {
    let (mut s, app) = logged_on();
    feed(&mut s, &app, "35=4|34=0|36=20|", T0);
    assert_eq!(s.next_target_seq(), 20);
    let out = feed(&mut s, &app, "35=4|34=0|36=5|123=N|", T0);
    assert_eq!(field(&out.messages[0], 373).as_deref(), Some("5"));
    assert_eq!(s.next_target_seq(), 20);
    feed(&mut s, &app, "35=4|34=20|36=30|123=Y|", T0);
    assert_eq!(s.next_target_seq(), 30);
}

#[test]
fn logout_handshake_both_ways() {
    let (mut s, app) = logged_on();
    let out = feed(&mut s, &app, "35=5|34=2|", T0);
    assert_eq!(field(&out.messages[0], 35).as_deref(), Some("5"));
    assert!(out.disconnect);
    let (mut s, app) = logged_on();
    let mut out = Outbox::new();
    s.logout(Some("bye"), T0, &mut out);
    assert!(!out.disconnect);
    let out = feed(&mut s, &app, "35=5|34=2|", T0);
    assert!(out.messages.is_empty());
    assert!(out.disconnect);
    // No answer: disconnect after the logout timeout.
    let (mut s, _) = logged_on();
    let mut out = Outbox::new();
    s.logout(None, T0, &mut out);
    s.tick(T0 + S, &mut out);
    assert!(!out.disconnect);
    s.tick(T0 + 2 * S, &mut out);
    assert!(out.disconnect);
}

#[test]
fn initiator_logon_with_reset() {
    let mut s = initiator(true);
    let app = Recorder::default();
    let mut out = Outbox::new();
    s.on_connect(T0);
    s.start_logon(T0, &mut out);
    assert_eq!(field(&out.messages[0], 141).as_deref(), Some("Y"));
    assert!(!s.is_logged_on());
    let answer = frame_at(
        "35=A|34=1|49=ISLD|52=20250101-00:00:00|56=TW|98=0|108=30|141=Y|",
        T0,
    );
    let mut out = Outbox::new();
    s.on_frame(&answer, T0, &app, &mut out);
    assert!(s.is_logged_on(), "{:?}", out.events);
    assert!(out.messages.is_empty());
    assert!(s.send(OutgoingMessage::new("D").field(11, "X"), T0, &mut out));
    assert_eq!(field(&out.messages[0], 34).as_deref(), Some("2"));
    // Logon timeout when the acceptor never answers.
    let mut out = Outbox::new();
    s.on_connect(T0);
    s.start_logon(T0, &mut out);
    s.tick(T0 + 10 * S, &mut out);
    assert!(out.disconnect);
}

#[test]
fn garbled_messages_are_ignored() {
    let (mut s, app) = logged_on();
    let mut bad = frame_at("35=0|34=2|", T0);
    let len = bad.len();
    bad[len - 3] = b'9'; // wrong CheckSum
    bad[len - 2] = b'9';
    let mut out = Outbox::new();
    s.on_frame(&bad, T0, &app, &mut out);
    assert!(out.messages.is_empty() && !out.disconnect);
    assert!(matches!(out.events.first(), Some(SessionEvent::Garbled(_))));
    assert_eq!(s.next_target_seq(), 2);
}

#[test]
fn wrong_begin_string_logs_out() {
    let (mut s, app) = logged_on();
    let body = "35=1|34=2|49=TW|52=20250101-00:00:00|56=ISLD|112=X|".replace('|', "\u{1}");
    let mut out = Outbox::new();
    s.on_frame(
        &frame::encode("FIX.4.1", body.as_bytes()),
        T0,
        &app,
        &mut out,
    );
    assert_eq!(field(&out.messages[0], 35).as_deref(), Some("5"));
    assert_eq!(
        field(&out.messages[0], 58).as_deref(),
        Some("Incorrect BeginString")
    );
    assert!(s.is_logging_out());
}

#[test]
fn second_logon_while_logged_on_disconnects() {
    let (mut s, app) = logged_on();
    let out = feed(&mut s, &app, "35=A|34=2|98=0|108=30|", T0);
    assert!(out.disconnect);
}

#[test]
fn received_reject_is_counted() {
    let (mut s, app) = logged_on();
    let out = feed(&mut s, &app, "35=3|34=2|45=1|", T0);
    assert!(out.messages.is_empty() && !out.disconnect);
    assert_eq!(s.next_target_seq(), 3);
}

#[test]
fn disconnect_notifies_and_clears_connection_state() {
    let (mut s, app) = logged_on();
    let mut out = Outbox::new();
    s.on_disconnect(&app, &mut out);
    assert_eq!(out.events, vec![SessionEvent::LoggedOut]);
    assert!(!s.is_logged_on());
    // The sequence numbers survive the connection (no reset configured).
    assert_eq!((s.next_sender_seq(), s.next_target_seq()), (2, 2));
    assert!(!s.send(OutgoingMessage::new("D"), T0, &mut out));
}

#[test]
fn logon_flag_follows_the_session() {
    // Acceptor: the flag turns on with the Logon exchange and off at the disconnect.
    let mut s = acceptor();
    let flag = s.logon_flag();
    let app = Recorder::default();
    s.on_connect(T0);
    assert!(!flag.get());
    feed(&mut s, &app, "35=A|34=1|98=0|108=30|", T0);
    assert!(s.is_logged_on() && flag.get());
    let mut out = Outbox::new();
    s.on_disconnect(&app, &mut out);
    assert!(!s.is_logged_on() && !flag.get());
    // Initiator: not while only our Logon went out; on with the answer; off when a
    // Logout handshake ends the connection.
    let mut s = initiator(false);
    let flag = s.logon_flag();
    let mut out = Outbox::new();
    s.on_connect(T0);
    s.start_logon(T0, &mut out);
    assert!(!flag.get());
    let answer = frame_at(
        "35=A|34=1|49=ISLD|52=20250101-00:00:00|56=TW|98=0|108=30|",
        T0,
    );
    let mut out = Outbox::new();
    s.on_frame(&answer, T0, &app, &mut out);
    assert!(s.is_logged_on() && flag.get(), "{:?}", out.events);
    let logout = frame_at("35=5|34=2|49=ISLD|52=20250101-00:00:00|56=TW|", T0);
    let mut out = Outbox::new();
    s.on_frame(&logout, T0, &app, &mut out);
    assert!(out.disconnect);
    s.on_disconnect(&app, &mut out);
    assert!(!s.is_logged_on() && !flag.get());
}
