//! Helpers shared by the session tests over TCP and TLS (`session_tcp.rs`,
//! `session_tls.rs`): the small built-in dictionary, the two session ids, an
//! exchange application, a self-removing directory and waits.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_fix::message::{FieldAccess, Message};
use nexus_fix::session::{AppEvent, Application, OutgoingMessage, SessionId};
use nexus_fix::Dictionary;

const XML: &str = include_str!("../../src/session/test_dictionary.xml");

pub fn dictionary() -> Arc<Dictionary> {
    Arc::new(Dictionary::from_xml(XML, "test_dictionary.xml").unwrap())
}

pub fn acceptor_id() -> SessionId {
    SessionId::new("FIX.4.4", "ISLD", "TW")
}

pub fn initiator_id() -> SessionId {
    SessionId::new("FIX.4.4", "TW", "ISLD")
}

/// Answers every order with an ExecutionReport-like message carrying the ClOrdID.
pub struct Exchange;

impl Application for Exchange {
    fn on_message(&self, _: &SessionId, msg: &Message<'_>, replies: &mut Vec<OutgoingMessage>) {
        let id = msg.get_str(11).unwrap_or_default().to_owned();
        replies.push(OutgoingMessage::new("8").field(11, id));
    }
}

/// A NewOrderSingle of ClOrdID `id` (Side 1, Symbol X), as [`Exchange`] answers.
pub fn order(id: &str) -> OutgoingMessage {
    OutgoingMessage::new("D")
        .field(11, id)
        .field(54, "1")
        .field(55, "X")
}

/// A temporary directory removed on drop (also when a test panics).
pub struct TempDir(pub PathBuf);

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn next_event(rx: &Receiver<AppEvent>) -> AppEvent {
    rx.recv_timeout(Duration::from_secs(5)).unwrap()
}
