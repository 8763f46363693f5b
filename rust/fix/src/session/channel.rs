//! An [`Application`] that hands everything to another thread through a bounded
//! channel.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::message::Message;
use crate::session::state::{Application, OutgoingMessage, SessionId};

/// What a [`ChannelApplication`] forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    /// The session logged on.
    Logon(SessionId),
    /// The session logged out or lost its connection.
    Logout(SessionId),
    /// An application message (the complete frame) passed the session checks.
    Message(SessionId, Vec<u8>),
}

/// Forwards logons, logouts and application messages to a bounded channel.
///
/// When the channel is full the session thread blocks until the consumer catches up
/// (back-pressure on the TCP connection); the consumer must keep receiving, or the
/// session stops heartbeating (and the session's status getters, such as
/// [`crate::session::Acceptor::is_logged_on`], wait for it). Nothing is answered
/// automatically: replies go through the acceptor's or initiator's sender.
#[derive(Debug, Clone)]
pub struct ChannelApplication {
    tx: SyncSender<AppEvent>,
}

impl ChannelApplication {
    /// Returns the application and the receiving end of a channel of `capacity`.
    #[must_use]
    pub fn new(capacity: usize) -> (Self, Receiver<AppEvent>) {
        let (tx, rx) = sync_channel(capacity);
        (Self { tx }, rx)
    }
}

impl Application for ChannelApplication {
    fn on_logon(&self, session: &SessionId) {
        let _ = self.tx.send(AppEvent::Logon(session.clone()));
    }

    fn on_logout(&self, session: &SessionId) {
        let _ = self.tx.send(AppEvent::Logout(session.clone()));
    }

    fn on_message(&self, session: &SessionId, msg: &Message<'_>, _: &mut Vec<OutgoingMessage>) {
        let _ = self
            .tx
            .send(AppEvent::Message(session.clone(), msg.as_bytes().to_vec()));
    }
}
