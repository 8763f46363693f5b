//! The transport-independent FIX session state machine.
//!
//! A [`Session`] is fed the frames received on a connection ([`Session::on_frame`])
//! and the clock ([`Session::tick`]); it answers with an [`Outbox`]: encoded messages
//! to write, [`SessionEvent`]s, and whether to drop the connection. It follows
//! QuickFIX's `Session` behaviour: Logon/Logout handshakes, heartbeats and test
//! requests, MsgSeqNum gap detection (ResendRequest and queueing), answering resend
//! requests (resent application messages with PossDupFlag, SequenceReset-GapFill for
//! admin messages), SequenceReset, PossDup checks, CompID and SendingTime checks and
//! session-level Rejects from the [`Validator`].
//!
//! Times are nanoseconds since the Unix epoch (UTC), passed in by the caller.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::dictionary::Dictionary;
use crate::message::{
    parse_utc_timestamp, peek_msg_type, tags, write_decimal, write_u64, write_utc_timestamp,
    Decimal, FieldAccess, Message, MessageStorage, Section, TimestampPrecision,
};
use crate::session::schedule::Schedule;
use crate::session::store::{MessageStore, StoreError};
use crate::validate::{Reject, SessionRejectReason, Validator};

const NANOS: i64 = 1_000_000_000;

/// Identifies a session: BeginString and the two CompIDs, seen from this side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    /// BeginString (8), e.g. `FIX.4.4`.
    pub begin_string: String,
    /// Our CompID (SenderCompID of the messages we send).
    pub sender_comp_id: String,
    /// The counterparty's CompID.
    pub target_comp_id: String,
}

impl SessionId {
    /// Returns a session id.
    #[must_use]
    pub fn new(begin_string: &str, sender_comp_id: &str, target_comp_id: &str) -> Self {
        Self {
            begin_string: begin_string.to_owned(),
            sender_comp_id: sender_comp_id.to_owned(),
            target_comp_id: target_comp_id.to_owned(),
        }
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}->{}",
            self.begin_string, self.sender_comp_id, self.target_comp_id
        )
    }
}

/// Settings of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Who we are and who the counterparty is.
    pub id: SessionId,
    /// HeartBtInt (108) in seconds that an initiator proposes (an acceptor takes the
    /// initiator's).
    pub heart_bt_int: u32,
    /// Reset both sequence numbers and the store on every Logon (and send
    /// ResetSeqNumFlag=Y when initiating).
    pub reset_on_logon: bool,
    /// Reset the sequence numbers and the store after a Logout handshake.
    pub reset_on_logout: bool,
    /// Reset the sequence numbers and the store whenever the connection drops.
    pub reset_on_disconnect: bool,
    /// Largest accepted difference between SendingTime and our clock, in seconds
    /// (`None`: not checked). QuickFIX's default is 120.
    pub max_latency_secs: Option<u64>,
    /// Seconds to wait for the Logon answer before disconnecting (initiator).
    pub logon_timeout_secs: u64,
    /// Seconds to wait for the Logout answer before disconnecting.
    pub logout_timeout_secs: u64,
    /// Validate received messages against the dictionary (Reject 35=3 if invalid).
    pub validate: bool,
    /// Whether this side initiates (sends the first Logon).
    pub initiate: bool,
    /// Precision of SendingTime and OrigSendingTime in sent messages.
    pub timestamp_precision: TimestampPrecision,
    /// DefaultApplVerID (1137) sent in the Logon of a FIXT.1.1 session (e.g. `9` for
    /// FIX.5.0SP2); `None` for FIX 4.x.
    pub default_appl_ver_id: Option<String>,
}

impl SessionConfig {
    /// Returns QuickFIX-like defaults for `id`: HeartBtInt 30, validation on, no
    /// resets, latency check 120 s, logon timeout 10 s, logout timeout 2 s, acceptor.
    #[must_use]
    pub fn new(id: SessionId) -> Self {
        Self {
            id,
            heart_bt_int: 30,
            reset_on_logon: false,
            reset_on_logout: false,
            reset_on_disconnect: false,
            max_latency_secs: Some(120),
            logon_timeout_secs: 10,
            logout_timeout_secs: 2,
            validate: true,
            initiate: false,
            timestamp_precision: TimestampPrecision::Millis,
            default_appl_ver_id: None,
        }
    }
}

/// The body fields of an [`OutgoingMessage`], in order: the values back to back
/// in one buffer (two allocations a message, not one a field).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Fields {
    bytes: Vec<u8>,
    /// (tag, start, end) of each field's value in `bytes`.
    spans: Vec<(u32, u32, u32)>,
}

impl Fields {
    /// No fields, with room for a typical order or report (an ExecutionReport
    /// with fills has some 20 fields and 200 bytes of values).
    #[must_use]
    pub fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(256),
            spans: Vec::with_capacity(24),
        }
    }

    /// Appends a field.
    pub fn push(&mut self, tag: u32, value: impl AsRef<[u8]>) {
        self.push_with(tag, |bytes| bytes.extend_from_slice(value.as_ref()));
    }

    /// Appends a field whose value `write` appends to the buffer it is given
    /// (e.g. digits, without an allocation of their own).
    pub fn push_with(&mut self, tag: u32, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        write(&mut self.bytes);
        let span = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.spans.push((tag, span(start), span(self.bytes.len())));
    }

    /// The fields, in order.
    #[must_use]
    pub fn iter(&self) -> FieldsIter<'_> {
        FieldsIter {
            bytes: &self.bytes,
            spans: self.spans.iter(),
        }
    }

    /// The `i`th field.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<(u32, &[u8])> {
        self.iter().nth(i)
    }

    /// The value of the first field `tag`.
    #[must_use]
    pub fn value(&self, tag: u32) -> Option<&[u8]> {
        self.iter().find(|(t, _)| *t == tag).map(|(_, v)| v)
    }

    /// Replaces the value of the `i`th field (nothing when there is none).
    pub fn set(&mut self, i: usize, value: impl AsRef<[u8]>) {
        if i >= self.spans.len() {
            return;
        }
        let old = std::mem::take(self);
        for (k, (tag, v)) in old.iter().enumerate() {
            if k == i {
                self.push(tag, value.as_ref());
            } else {
                self.push(tag, v);
            }
        }
    }

    /// Number of fields.
    #[must_use]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there is no field.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// The fields of a [`Fields`], in order: (tag, value).
#[derive(Debug, Clone)]
pub struct FieldsIter<'a> {
    bytes: &'a [u8],
    spans: std::slice::Iter<'a, (u32, u32, u32)>,
}

impl<'a> Iterator for FieldsIter<'a> {
    type Item = (u32, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let &(tag, start, end) = self.spans.next()?;
        let value = self
            .bytes
            .get(start as usize..end as usize)
            .unwrap_or_default();
        Some((tag, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for FieldsIter<'_> {}

impl<'a> IntoIterator for &'a Fields {
    type Item = (u32, &'a [u8]);
    type IntoIter = FieldsIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<V: AsRef<[u8]>> FromIterator<(u32, V)> for Fields {
    fn from_iter<I: IntoIterator<Item = (u32, V)>>(iter: I) -> Self {
        let mut fields = Self::new();
        for (tag, value) in iter {
            fields.push(tag, value);
        }
        fields
    }
}

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(tag, v)| (tag, String::from_utf8_lossy(v).into_owned())),
            )
            .finish()
    }
}

/// A message to send, before the session adds BeginString, MsgSeqNum, CompIDs,
/// SendingTime, BodyLength and CheckSum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// MsgType (35).
    pub msg_type: String,
    /// Extra header fields (e.g. DeliverToCompID); written after the standard ones,
    /// the whole header in tag order.
    pub header: Vec<(u32, Vec<u8>)>,
    /// Body fields, written in this order.
    pub body: Fields,
}

impl OutgoingMessage {
    /// Returns an empty message of type `msg_type`.
    #[must_use]
    pub fn new(msg_type: &str) -> Self {
        Self {
            msg_type: msg_type.to_owned(),
            header: Vec::new(),
            body: Fields::new(),
        }
    }

    /// Appends a body field.
    #[must_use]
    pub fn field(mut self, tag: u32, value: impl AsRef<[u8]>) -> Self {
        self.body.push(tag, value);
        self
    }

    /// Appends a body field whose value `write` appends to the buffer it is
    /// given (see [`Fields::push_with`]).
    #[must_use]
    pub fn field_with(mut self, tag: u32, write: impl FnOnce(&mut Vec<u8>)) -> Self {
        self.body.push_with(tag, write);
        self
    }

    /// Appends a decimal body field (e.g. a price), written straight into the
    /// message.
    #[must_use]
    pub fn field_decimal(self, tag: u32, value: Decimal) -> Self {
        self.field_with(tag, |out| write_decimal(out, value))
    }

    /// Appends a UTCTimestamp body field of `nanos` since the Unix epoch,
    /// written straight into the message.
    #[must_use]
    pub fn field_timestamp(self, tag: u32, nanos: i64, precision: TimestampPrecision) -> Self {
        self.field_with(tag, |out| write_utc_timestamp(out, nanos, precision))
    }

    /// Appends a header field.
    #[must_use]
    pub fn header_field(mut self, tag: u32, value: impl AsRef<[u8]>) -> Self {
        self.header.push((tag, value.as_ref().to_vec()));
        self
    }

    /// Returns a message with the body of `msg` (wire order, groups included) and its
    /// MsgType; header fields are not copied.
    #[must_use]
    pub fn from_body(msg: &Message<'_>) -> Self {
        Self {
            msg_type: String::from_utf8_lossy(msg.msg_type()).into_owned(),
            header: Vec::new(),
            body: msg.section(Section::Body).collect(),
        }
    }
}

/// Something that happened in a session, for logging and monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The Logon handshake completed.
    LoggedOn,
    /// The session logged out (handshake done or connection about to drop).
    LoggedOut,
    /// A received message was ignored as garbled.
    Garbled(String),
    /// A session-level Reject (35=3) was sent.
    RejectSent(String),
    /// Informational.
    Info(String),
    /// The connection is being dropped, and why.
    Disconnecting(String),
    /// The message store failed.
    StoreFailed(String),
}

/// What the transport must do after a call into the session.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Encoded messages to write, in order.
    pub messages: Vec<Vec<u8>>,
    /// Events, in order.
    pub events: Vec<SessionEvent>,
    /// Whether to close the connection (after writing `messages`).
    pub disconnect: bool,
}

impl Outbox {
    /// Returns an empty outbox.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the outbox, keeping its allocations.
    pub fn clear(&mut self) {
        self.messages.clear();
        self.events.clear();
        self.disconnect = false;
    }

    fn disconnect(&mut self, why: impl Into<String>) {
        if !self.disconnect {
            self.events.push(SessionEvent::Disconnecting(why.into()));
        }
        self.disconnect = true;
    }
}

/// The application behind a session: receives application messages (and may answer
/// them) and logon/logout notifications. Called on the session's thread.
pub trait Application: Send + Sync {
    /// The session logged on.
    fn on_logon(&self, _session: &SessionId) {}
    /// The session logged out or lost its connection after logging on.
    fn on_logout(&self, _session: &SessionId) {}
    /// An admin message passed the session checks.
    fn on_admin(&self, _session: &SessionId, _msg: &Message<'_>) {}
    /// An application message passed the session checks; messages pushed onto
    /// `replies` are sent right away, in order (e.g. a BusinessMessageReject 35=j
    /// for an unsupported message type).
    fn on_message(
        &self,
        session: &SessionId,
        msg: &Message<'_>,
        replies: &mut Vec<OutgoingMessage>,
    );
    /// A received message has been handled and the session lock released (the
    /// connection threads call it after each message they read): the place to
    /// wake threads waiting for what [`Application::on_message`] did, so that
    /// they do not wake only to block on the session lock (e.g. to send the next
    /// order) while it is still held.
    fn after_message(&self, _session: &SessionId) {}
}

/// An application that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullApplication;

impl Application for NullApplication {
    fn on_message(&self, _: &SessionId, _: &Message<'_>, _: &mut Vec<OutgoingMessage>) {}
}

fn is_admin_type(msg_type: &[u8]) -> bool {
    matches!(msg_type, b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"A")
}

/// Whether a session is logged on, readable without the session: a copy of
/// [`Session::is_logged_on`] that the session updates as its logon state changes, for
/// threads that would otherwise wait for a session lock held while a message is
/// handled (e.g. to pick a venue before sending an order).
#[derive(Debug, Clone, Default)]
pub struct LogonFlag(Arc<AtomicBool>);

impl LogonFlag {
    /// Whether the session was logged on at its last change.
    #[must_use]
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The session state machine (see the module documentation).
pub struct Session {
    config: SessionConfig,
    dictionary: Arc<Dictionary>,
    app_dictionary: Option<Arc<Dictionary>>,
    store: Box<dyn MessageStore>,
    received_logon: bool,
    sent_logon: bool,
    /// `received_logon && sent_logon`, for other threads.
    logon_flag: LogonFlag,
    sent_logout: bool,
    received_reset: bool,
    sent_reset: bool,
    heart_bt_int: i64,
    last_sent: i64,
    last_received: i64,
    logon_sent_at: i64,
    logout_sent_at: i64,
    test_requests: i64,
    resend_range: Option<(u64, u64)>,
    queue: BTreeMap<u64, Vec<u8>>,
    /// The body of the message being encoded (kept for its allocation).
    scratch: Vec<u8>,
    /// The allocations of the last message parsed, for the next one.
    storage: Option<MessageStorage>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.config.id)
            .field("logged_on", &self.is_logged_on())
            .field("next_sender_seq", &self.store.next_sender_seq())
            .field("next_target_seq", &self.store.next_target_seq())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Returns a session with `config`, validating against `dictionary`, keeping its
    /// messages and sequence numbers in `store`.
    #[must_use]
    pub fn new(
        config: SessionConfig,
        dictionary: Arc<Dictionary>,
        store: Box<dyn MessageStore>,
    ) -> Self {
        let heart_bt_int = i64::from(config.heart_bt_int);
        Self {
            config,
            dictionary,
            app_dictionary: None,
            store,
            received_logon: false,
            sent_logon: false,
            logon_flag: LogonFlag::default(),
            sent_logout: false,
            received_reset: false,
            sent_reset: false,
            heart_bt_int,
            last_sent: 0,
            last_received: 0,
            logon_sent_at: 0,
            logout_sent_at: 0,
            test_requests: 0,
            resend_range: None,
            queue: BTreeMap::new(),
            scratch: Vec::with_capacity(256),
            storage: None,
        }
    }

    /// Returns a FIXT.1.1 session: `transport` (FIXT11.xml) for the header, trailer
    /// and admin messages, `application` (e.g. FIX50SP2.xml) for application bodies.
    #[must_use]
    pub fn fixt(
        config: SessionConfig,
        transport: Arc<Dictionary>,
        application: Arc<Dictionary>,
        store: Box<dyn MessageStore>,
    ) -> Self {
        let mut session = Self::new(config, transport, store);
        session.app_dictionary = Some(application);
        session
    }

    fn validator<'d>(
        transport: &'d Dictionary,
        application: Option<&'d Arc<Dictionary>>,
    ) -> Validator<'d> {
        match application {
            Some(app) => Validator::fixt(transport, app),
            None => Validator::new(transport),
        }
    }

    /// The session's id.
    #[must_use]
    pub fn id(&self) -> &SessionId {
        &self.config.id
    }

    /// The session's settings.
    #[must_use]
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Whether Logons were exchanged both ways on the current connection.
    #[must_use]
    pub fn is_logged_on(&self) -> bool {
        self.received_logon && self.sent_logon
    }

    /// Returns a flag that follows [`Session::is_logged_on`], read without the session.
    #[must_use]
    pub fn logon_flag(&self) -> LogonFlag {
        self.logon_flag.clone()
    }

    /// Copies the logon state to the [`LogonFlag`].
    fn publish_logon(&self) {
        self.logon_flag
            .0
            .store(self.is_logged_on(), Ordering::Release);
    }

    /// Whether we sent a Logout and wait for the answer.
    #[must_use]
    pub fn is_logging_out(&self) -> bool {
        self.sent_logout
    }

    /// The MsgSeqNum of the next message to send.
    #[must_use]
    pub fn next_sender_seq(&self) -> u64 {
        self.store.next_sender_seq()
    }

    /// The MsgSeqNum expected on the next received message.
    #[must_use]
    pub fn next_target_seq(&self) -> u64 {
        self.store.next_target_seq()
    }

    /// The negotiated HeartBtInt in seconds.
    #[must_use]
    pub fn heart_bt_int(&self) -> u32 {
        u32::try_from(self.heart_bt_int).unwrap_or(u32::MAX)
    }

    /// Sets whether this side initiates (sends the first Logon).
    pub fn set_initiate(&mut self, initiate: bool) {
        self.config.initiate = initiate;
    }

    /// Resets both sequence numbers to 1 and clears the store.
    ///
    /// # Errors
    /// The store's error.
    pub fn reset_store(&mut self) -> Result<(), StoreError> {
        self.store.reset()
    }

    /// Resets the store when a new period of `schedule` has begun since it was
    /// created or last reset (QuickFIX's daily session reset). Returns whether it did.
    pub fn check_period(&mut self, schedule: &Schedule, now: i64, out: &mut Outbox) -> bool {
        if schedule.same_period(self.store.creation_time(), now) {
            return false;
        }
        out.events.push(SessionEvent::Info(
            "new session period: sequence numbers reset".to_owned(),
        ));
        self.store_op(out, |s| s.reset());
        true
    }

    /// Whether the store was created in the current period of `schedule`.
    #[must_use]
    pub fn in_current_period(&self, schedule: &Schedule, now: i64) -> bool {
        schedule.same_period(self.store.creation_time(), now)
    }

    /// A new connection starts: the per-connection state is cleared.
    pub fn on_connect(&mut self, now: i64) {
        self.clear_connection_state();
        self.last_received = now;
        self.last_sent = now;
    }

    /// The connection dropped; tells the application when the session was logged on.
    pub fn on_disconnect(&mut self, app: &dyn Application, out: &mut Outbox) {
        if self.is_logged_on() {
            out.events.push(SessionEvent::LoggedOut);
            app.on_logout(&self.config.id);
        }
        self.clear_connection_state();
        if self.config.reset_on_disconnect {
            self.store_op(out, |s| s.reset());
        }
    }

    fn clear_connection_state(&mut self) {
        self.received_logon = false;
        self.sent_logon = false;
        self.publish_logon();
        self.sent_logout = false;
        self.received_reset = false;
        self.sent_reset = false;
        self.heart_bt_int = i64::from(self.config.heart_bt_int);
        self.test_requests = 0;
        self.resend_range = None;
        self.queue.clear();
    }

    fn store_op(
        &mut self,
        out: &mut Outbox,
        op: impl FnOnce(&mut dyn MessageStore) -> Result<(), StoreError>,
    ) {
        if let Err(e) = op(self.store.as_mut()) {
            out.events.push(SessionEvent::StoreFailed(e.to_string()));
            out.disconnect("message store failure");
        }
    }

    fn incr_target(&mut self, out: &mut Outbox) {
        let next = self.store.next_target_seq() + 1;
        self.store_op(out, |s| s.set_next_target_seq(next));
    }

    /// A Logon: EncryptMethod 0, `heart_bt_int`, ResetSeqNumFlag=Y when `reset`,
    /// and the configured DefaultApplVerID (FIXT).
    fn logon_message(&self, heart_bt_int: i64, reset: bool) -> OutgoingMessage {
        let mut logon = OutgoingMessage::new("A");
        logon.body.push(tags::ENCRYPT_METHOD, b"0");
        logon
            .body
            .push(tags::HEART_BT_INT, heart_bt_int.to_string().into_bytes());
        if reset {
            logon.body.push(tags::RESET_SEQ_NUM_FLAG, b"Y");
        }
        if let Some(v) = &self.config.default_appl_ver_id {
            logon.body.push(tags::DEFAULT_APPL_VER_ID, v.as_bytes());
        }
        logon
    }

    /// Initiator: sends the Logon (with ResetSeqNumFlag=Y and a store reset when
    /// `reset_on_logon`).
    pub fn start_logon(&mut self, now: i64, out: &mut Outbox) {
        let reset = self.config.reset_on_logon;
        if reset {
            self.store_op(out, |s| s.reset());
            self.sent_reset = true;
        }
        let logon = self.logon_message(i64::from(self.config.heart_bt_int), reset);
        self.sent_logon = true;
        self.publish_logon();
        self.logon_sent_at = now;
        self.last_received = now;
        self.test_requests = 0;
        self.send_raw(logon, now, None, out);
    }

    /// Sends an application (or admin) message; returns false when not logged on
    /// (the message is then not sent; QuickFIX would store it for a later resend).
    pub fn send(&mut self, msg: OutgoingMessage, now: i64, out: &mut Outbox) -> bool {
        if !self.is_logged_on() || self.sent_logout {
            return false;
        }
        self.send_raw(msg, now, None, out);
        true
    }

    /// Starts a Logout (with optional Text) and waits for the answer.
    pub fn logout(&mut self, text: Option<&str>, now: i64, out: &mut Outbox) {
        if self.sent_logout {
            return;
        }
        self.generate_logout(text, now, out);
    }

    /// Timer work: heartbeats, test requests, timeouts. Call about every 100 ms to 1 s.
    pub fn tick(&mut self, now: i64, out: &mut Outbox) {
        if !self.received_logon {
            let timeout =
                i64::try_from(self.config.logon_timeout_secs).unwrap_or(i64::MAX / NANOS) * NANOS;
            if self.sent_logon && now - self.logon_sent_at >= timeout {
                out.disconnect("Timed out waiting for logon response");
            }
            return;
        }
        if self.sent_logout {
            let timeout =
                i64::try_from(self.config.logout_timeout_secs).unwrap_or(i64::MAX / NANOS) * NANOS;
            if now - self.logout_sent_at >= timeout {
                out.disconnect("Timed out waiting for logout response");
                return;
            }
        }
        if self.heart_bt_int == 0 {
            return;
        }
        let hb = self.heart_bt_int * NANOS;
        let since_sent = now - self.last_sent;
        let since_received = now - self.last_received;
        if since_sent < hb && since_received < hb {
            return;
        }
        if since_received * 10 >= hb * 24 {
            out.disconnect("Timed out waiting for heartbeat");
        } else if since_received * 10 >= hb * 12 * (self.test_requests + 1) {
            let msg = OutgoingMessage::new("1").field(tags::TEST_REQ_ID, "TEST");
            self.send_raw(msg, now, None, out);
            self.test_requests += 1;
        } else if since_sent >= hb && self.test_requests == 0 {
            self.send_raw(OutgoingMessage::new("0"), now, None, out);
        }
    }

    /// Processes one received frame (as cut by the [`crate::message::Splitter`]).
    pub fn on_frame(&mut self, frame: &[u8], now: i64, app: &dyn Application, out: &mut Outbox) {
        self.process_frame(frame, now, app, out);
        if !out.disconnect {
            self.next_queued(now, app, out);
        }
    }

    fn process_frame(&mut self, frame: &[u8], now: i64, app: &dyn Application, out: &mut Outbox) {
        let dictionary = Arc::clone(&self.dictionary);
        let application = self.app_dictionary.clone();
        let validator = Self::validator(&dictionary, application.as_ref());
        // The parse reuses the last message's allocations (a nested call, e.g.
        // for queued messages, parses into fresh ones).
        let storage = self
            .storage
            .take()
            .unwrap_or_else(|| MessageStorage::with_capacity(32));
        let msg = match validator.parse_reusing(frame, storage) {
            Ok(msg) => msg,
            Err(e) => {
                out.events.push(SessionEvent::Garbled(e.to_string()));
                if peek_msg_type(frame) == Some(b"A") {
                    out.disconnect("Logon message is not valid");
                }
                return;
            }
        };
        self.process_message(&msg, &validator, frame, now, app, out);
        self.storage = Some(msg.into_storage());
    }

    fn process_message(
        &mut self,
        msg: &Message<'_>,
        validator: &Validator<'_>,
        frame: &[u8],
        now: i64,
        app: &dyn Application,
        out: &mut Outbox,
    ) {
        let msg_type = msg.msg_type();
        for tag in [tags::SENDER_COMP_ID, tags::TARGET_COMP_ID] {
            if msg.get(tag).is_none() {
                self.generate_reject(
                    msg,
                    SessionRejectReason::RequiredTagMissing,
                    Some(i64::from(tag)),
                    now,
                    out,
                );
                if msg_type == b"A" {
                    out.disconnect("Required field missing from logon");
                }
                return;
            }
        }
        if msg.begin_string() != self.config.id.begin_string.as_bytes() {
            if msg_type == b"5" {
                self.next_logout(msg, now, app, out);
            } else {
                self.generate_logout(Some("Incorrect BeginString"), now, out);
                self.incr_target(out);
            }
            return;
        }
        if self.config.validate {
            if let Err(reject) = validator.validate(msg) {
                self.generate_reject(msg, reject.reason, reject.ref_tag_id, now, out);
                if msg_type == b"A" && reject.reason == SessionRejectReason::RequiredTagMissing {
                    out.disconnect("Required field missing from logon");
                }
                return;
            }
        }
        match msg_type {
            b"A" => self.next_logon(msg, frame, now, app, out),
            b"0" => {
                if self.verify(msg, frame, true, true, now, app, out) {
                    self.incr_target(out);
                }
            }
            b"1" => {
                if self.verify(msg, frame, true, true, now, app, out) {
                    let mut hb = OutgoingMessage::new("0");
                    if let Some(id) = msg.get(tags::TEST_REQ_ID) {
                        hb.body.push(tags::TEST_REQ_ID, id);
                    }
                    self.send_raw(hb, now, None, out);
                    self.incr_target(out);
                }
            }
            b"2" => self.next_resend_request(msg, frame, now, app, out),
            b"3" => {
                if self.verify(msg, frame, true, true, now, app, out) {
                    self.incr_target(out);
                }
            }
            b"4" => self.next_sequence_reset(msg, frame, now, app, out),
            b"5" => self.next_logout(msg, now, app, out),
            _ => {
                if self.verify(msg, frame, true, true, now, app, out) {
                    self.incr_target(out);
                }
            }
        }
    }

    fn next_queued(&mut self, now: i64, app: &dyn Application, out: &mut Outbox) {
        loop {
            if out.disconnect {
                return;
            }
            let expected = self.store.next_target_seq();
            self.queue = self.queue.split_off(&expected);
            let Some(frame) = self.queue.remove(&expected) else {
                return;
            };
            match peek_msg_type(&frame) {
                Some(b"A" | b"2") => self.incr_target(out),
                _ => self.process_frame(&frame, now, app, out),
            }
            if self.store.next_target_seq() == expected {
                // Not consumed (e.g. rejected differently): avoid looping forever.
                return;
            }
        }
    }

    fn valid_logon_state(&self, msg_type: &[u8]) -> bool {
        let logon = msg_type == b"A";
        (logon && self.sent_reset)
            || self.received_reset
            || (logon && !self.received_logon)
            || (!logon && self.received_logon)
            || (msg_type == b"5" && self.sent_logon)
            || (msg_type != b"5" && self.sent_logout)
            || msg_type == b"4"
            || msg_type == b"3"
    }

    fn good_time(&self, sending_time: i64, now: i64) -> bool {
        match self.config.max_latency_secs {
            None => true,
            Some(max) => {
                let max = i64::try_from(max).unwrap_or(i64::MAX / NANOS) * NANOS;
                (now - sending_time).abs() <= max
            }
        }
    }

    fn comp_ids_ok(&self, msg: &Message<'_>) -> bool {
        msg.get(tags::SENDER_COMP_ID) == Some(self.config.id.target_comp_id.as_bytes())
            && msg.get(tags::TARGET_COMP_ID) == Some(self.config.id.sender_comp_id.as_bytes())
    }

    /// QuickFIX's `Session::verify`: header fields, logon state, SendingTime, CompIDs
    /// and (optionally) MsgSeqNum; on success the application is called.
    #[allow(clippy::too_many_arguments)]
    fn verify(
        &mut self,
        msg: &Message<'_>,
        frame: &[u8],
        check_high: bool,
        check_low: bool,
        now: i64,
        app: &dyn Application,
        out: &mut Outbox,
    ) -> bool {
        let msg_type = msg.msg_type();
        let sending_time = msg.get(tags::SENDING_TIME).and_then(parse_utc_timestamp);
        let Some(sending_time) = sending_time else {
            out.disconnect("SendingTime (52) missing or invalid");
            return false;
        };
        let seq = msg.msg_seq_num().ok();
        if (check_high || check_low) && seq.is_none() {
            out.disconnect("MsgSeqNum (34) missing or invalid");
            return false;
        }
        if !self.valid_logon_state(msg_type) {
            out.disconnect("Logon state is not valid for message");
            return false;
        }
        if msg_type == b"A" && !self.received_logon {
            // An invalid Logon is answered with a Logout, not a Reject (test case 1d).
            let problem = if !self.good_time(sending_time, now) {
                Some("SendingTime accuracy problem")
            } else if !self.comp_ids_ok(msg) {
                Some("CompID problem")
            } else {
                None
            };
            if let Some(text) = problem {
                self.generate_logout(Some(text), now, out);
                out.disconnect(format!("Invalid Logon: {text}"));
                return false;
            }
        }
        if !self.good_time(sending_time, now) {
            self.generate_reject(
                msg,
                SessionRejectReason::SendingTimeAccuracyProblem,
                None,
                now,
                out,
            );
            self.generate_logout(None, now, out);
            if msg_type == b"A" {
                out.disconnect("Logon with SendingTime accuracy problem");
            }
            return false;
        }
        if !self.comp_ids_ok(msg) {
            self.generate_reject(msg, SessionRejectReason::CompIdProblem, None, now, out);
            self.generate_logout(None, now, out);
            if msg_type == b"A" {
                out.disconnect("Logon with wrong CompID");
            }
            return false;
        }
        let expected = self.store.next_target_seq();
        if let Some(seq) = seq {
            if check_high && seq > expected {
                self.do_target_too_high(seq, frame, now, out);
                return false;
            } else if check_low && seq < expected {
                self.do_target_too_low(msg, seq, now, out);
                return false;
            }
            if (check_high || check_low) && self.resend_range.is_some_and(|(_, end)| seq >= end) {
                out.events
                    .push(SessionEvent::Info("ResendRequest satisfied".to_owned()));
                self.resend_range = None;
            }
        }
        self.last_received = now;
        self.test_requests = 0;
        if is_admin_type(msg_type) {
            app.on_admin(&self.config.id, msg);
        } else {
            let mut replies = Vec::new();
            app.on_message(&self.config.id, msg, &mut replies);
            for reply in replies {
                self.send_raw(reply, now, None, out);
            }
        }
        true
    }

    fn do_target_too_high(&mut self, seq: u64, frame: &[u8], now: i64, out: &mut Outbox) {
        let expected = self.store.next_target_seq();
        out.events.push(SessionEvent::Info(format!(
            "MsgSeqNum too high, expecting {expected} but received {seq}"
        )));
        self.queue.insert(seq, frame.to_vec());
        if let Some((begin, _)) = self.resend_range {
            if seq >= begin {
                return;
            }
        }
        self.generate_resend_request(seq, now, out);
    }

    fn do_target_too_low(&mut self, msg: &Message<'_>, seq: u64, now: i64, out: &mut Outbox) {
        if msg.get(tags::POSS_DUP_FLAG) != Some(b"Y") {
            let text = format!(
                "MsgSeqNum too low, expecting {} but received {seq}",
                self.store.next_target_seq()
            );
            self.generate_logout(Some(&text), now, out);
            out.disconnect(text);
            return;
        }
        self.do_poss_dup(msg, now, out);
    }

    /// Checks OrigSendingTime of a PossDup message; false when rejected.
    fn do_poss_dup(&mut self, msg: &Message<'_>, now: i64, out: &mut Outbox) -> bool {
        if msg.msg_type() == b"4" {
            return true;
        }
        let Some(orig) = msg.get(tags::ORIG_SENDING_TIME) else {
            self.generate_reject(
                msg,
                SessionRejectReason::RequiredTagMissing,
                Some(i64::from(tags::ORIG_SENDING_TIME)),
                now,
                out,
            );
            return false;
        };
        let orig = parse_utc_timestamp(orig);
        let sending = msg.get(tags::SENDING_TIME).and_then(parse_utc_timestamp);
        if let (Some(orig), Some(sending)) = (orig, sending) {
            if orig > sending {
                self.generate_reject(
                    msg,
                    SessionRejectReason::SendingTimeAccuracyProblem,
                    None,
                    now,
                    out,
                );
                self.generate_logout(None, now, out);
                return false;
            }
        }
        true
    }

    fn next_logon(
        &mut self,
        msg: &Message<'_>,
        frame: &[u8],
        now: i64,
        app: &dyn Application,
        out: &mut Outbox,
    ) {
        let reset_flag = msg.get(tags::RESET_SEQ_NUM_FLAG) == Some(b"Y");
        self.received_reset = reset_flag;
        if reset_flag && !self.sent_reset {
            self.store_op(out, |s| s.reset());
        }
        if self.config.initiate && !self.sent_logon && !reset_flag {
            out.disconnect("Received logon response before sending request");
            return;
        }
        if !self.config.initiate && self.config.reset_on_logon {
            self.store_op(out, |s| s.reset());
        }
        if !self.verify(msg, frame, false, true, now, app, out) {
            return;
        }
        self.received_logon = true;
        self.publish_logon();
        if !self.config.initiate || (self.received_reset && !self.sent_reset) {
            if let Ok(hb) = msg.get_u64(tags::HEART_BT_INT) {
                self.heart_bt_int = i64::try_from(hb).unwrap_or(0);
            }
            let logon = self.logon_message(self.heart_bt_int, self.received_reset);
            self.last_received = now;
            self.test_requests = 0;
            self.sent_logon = true;
            self.publish_logon();
            self.send_raw(logon, now, None, out);
        }
        self.sent_reset = false;
        self.received_reset = false;
        let seq = msg.msg_seq_num().unwrap_or(0);
        if seq > self.store.next_target_seq() && !reset_flag {
            self.do_target_too_high(seq, frame, now, out);
        } else {
            self.incr_target(out);
        }
        if self.is_logged_on() {
            out.events.push(SessionEvent::LoggedOn);
            app.on_logon(&self.config.id);
        }
    }

    fn next_logout(
        &mut self,
        msg: &Message<'_>,
        now: i64,
        app: &dyn Application,
        out: &mut Outbox,
    ) {
        if !self.verify(msg, &[], false, false, now, app, out) {
            return;
        }
        if !self.sent_logout {
            self.generate_logout(None, now, out);
        }
        self.incr_target(out);
        if self.config.reset_on_logout {
            self.store_op(out, |s| s.reset());
        }
        out.disconnect("Logout");
    }

    fn next_sequence_reset(
        &mut self,
        msg: &Message<'_>,
        frame: &[u8],
        now: i64,
        app: &dyn Application,
        out: &mut Outbox,
    ) {
        let gap_fill = msg.get(tags::GAP_FILL_FLAG) == Some(b"Y");
        if !self.verify(msg, frame, gap_fill, gap_fill, now, app, out) {
            return;
        }
        if let Ok(new_seq) = msg.get_u64(tags::NEW_SEQ_NO) {
            let expected = self.store.next_target_seq();
            if new_seq > expected {
                self.store_op(out, |s| s.set_next_target_seq(new_seq));
            } else if new_seq < expected {
                self.generate_reject(msg, SessionRejectReason::ValueIsIncorrect, None, now, out);
            }
        }
    }

    fn next_resend_request(
        &mut self,
        msg: &Message<'_>,
        frame: &[u8],
        now: i64,
        app: &dyn Application,
        out: &mut Outbox,
    ) {
        if !self.verify(msg, frame, false, false, now, app, out) {
            return;
        }
        let begin = msg.get_u64(7).unwrap_or(1);
        let mut end = msg.get_u64(16).unwrap_or(0);
        let begin_string = self.config.id.begin_string.as_bytes();
        let next_sender = self.store.next_sender_seq();
        if (begin_string >= &b"FIX.4.2"[..] && end == 0)
            || (begin_string <= &b"FIX.4.2"[..] && end == 999_999)
            || end >= next_sender
        {
            end = next_sender.saturating_sub(1);
        }
        let stored = match self.store.get(begin, end) {
            Ok(stored) => stored,
            Err(e) => {
                out.events.push(SessionEvent::StoreFailed(e.to_string()));
                Vec::new()
            }
        };
        let dictionary = Arc::clone(&self.dictionary);
        let application = self.app_dictionary.clone();
        let validator = Self::validator(&dictionary, application.as_ref());
        let mut gap_begin = 0u64;
        let mut current = begin;
        let mut last_seq = 0u64;
        for (seq, bytes) in stored {
            let Ok(old) = validator.parse(&bytes) else {
                continue;
            };
            if current != seq && gap_begin == 0 {
                gap_begin = current;
            }
            if is_admin_type(old.msg_type()) {
                if gap_begin == 0 {
                    gap_begin = seq;
                }
            } else {
                if gap_begin != 0 {
                    self.generate_sequence_reset(gap_begin, seq, now, out);
                }
                self.resend(&old, seq, now, out);
                gap_begin = 0;
            }
            current = seq + 1;
            last_seq = seq;
        }
        if gap_begin != 0 {
            self.generate_sequence_reset(gap_begin, last_seq + 1, now, out);
        }
        if end > last_seq {
            let new_seq = (end + 1).min(self.store.next_sender_seq());
            self.generate_sequence_reset(begin, new_seq, now, out);
        }
        if msg.msg_seq_num().ok() == Some(self.store.next_target_seq()) {
            self.incr_target(out);
        }
    }

    fn resend(&mut self, old: &Message<'_>, seq: u64, now: i64, out: &mut Outbox) {
        let mut msg = OutgoingMessage::from_body(old);
        for (tag, value) in old.section(Section::Header) {
            match tag {
                tags::BEGIN_STRING
                | tags::BODY_LENGTH
                | tags::MSG_TYPE
                | tags::MSG_SEQ_NUM
                | tags::SENDER_COMP_ID
                | tags::TARGET_COMP_ID
                | tags::POSS_DUP_FLAG
                | tags::ORIG_SENDING_TIME => {}
                tags::SENDING_TIME => msg.header.push((tags::ORIG_SENDING_TIME, value.to_vec())),
                _ => msg.header.push((tag, value.to_vec())),
            }
        }
        msg.header.push((tags::POSS_DUP_FLAG, b"Y".to_vec()));
        self.send_raw(msg, now, Some(seq), out);
    }

    fn generate_sequence_reset(&mut self, begin: u64, new_seq: u64, now: i64, out: &mut Outbox) {
        let mut ts = Vec::new();
        write_utc_timestamp(&mut ts, now, self.config.timestamp_precision);
        let msg = OutgoingMessage::new("4")
            .header_field(tags::POSS_DUP_FLAG, "Y")
            .header_field(tags::ORIG_SENDING_TIME, ts)
            .field(tags::NEW_SEQ_NO, new_seq.to_string())
            .field(tags::GAP_FILL_FLAG, "Y");
        self.send_raw(msg, now, Some(begin), out);
    }

    fn generate_resend_request(&mut self, received: u64, now: i64, out: &mut Outbox) {
        let begin = self.store.next_target_seq();
        let begin_string = self.config.id.begin_string.as_bytes();
        let end = if begin_string >= &b"FIX.4.2"[..] {
            0
        } else if begin_string <= &b"FIX.4.1"[..] {
            999_999
        } else {
            received - 1
        };
        let msg = OutgoingMessage::new("2")
            .field(7, begin.to_string())
            .field(16, end.to_string());
        self.send_raw(msg, now, None, out);
        self.resend_range = Some((begin, received.saturating_sub(1)));
    }

    fn generate_logout(&mut self, text: Option<&str>, now: i64, out: &mut Outbox) {
        let mut msg = OutgoingMessage::new("5");
        if let Some(text) = text {
            msg.body.push(tags::TEXT, text.as_bytes());
        }
        self.sent_logout = true;
        self.logout_sent_at = now;
        self.send_raw(msg, now, None, out);
    }

    fn generate_reject(
        &mut self,
        msg: &Message<'_>,
        reason: SessionRejectReason,
        ref_tag: Option<i64>,
        now: i64,
        out: &mut Outbox,
    ) {
        let begin_string = self.config.id.begin_string.clone();
        let begin_string = begin_string.as_bytes();
        let msg_type = msg.msg_type();
        let seq = msg.get(tags::MSG_SEQ_NUM).filter(|v| !v.is_empty());
        let reject = Reject::new(reason, ref_tag, msg_type, msg.msg_seq_num().ok());
        let mut out_msg = OutgoingMessage::new("3");
        reverse_route(msg, &mut out_msg);
        if let Some(seq) = seq {
            out_msg.body.push(tags::REF_SEQ_NUM, seq);
        }
        out_msg
            .body
            .push(tags::TEXT, reject.text_for(begin_string).into_bytes());
        if Reject::includes_ref_fields(begin_string) {
            if let Some(tag) = ref_tag {
                out_msg
                    .body
                    .push(tags::REF_TAG_ID, tag.to_string().into_bytes());
            }
            if !msg_type.is_empty() {
                out_msg.body.push(tags::REF_MSG_TYPE, msg_type);
            }
            if reject.includes_reason(begin_string) {
                out_msg.body.push(
                    tags::SESSION_REJECT_REASON,
                    reason.code().to_string().into_bytes(),
                );
            }
        }
        if msg_type != b"A"
            && msg_type != b"4"
            && msg.msg_seq_num().ok() == Some(self.store.next_target_seq())
        {
            self.incr_target(out);
        }
        out.events.push(SessionEvent::RejectSent(format!(
            "{} (373={})",
            reject.text,
            reason.code()
        )));
        self.send_raw(out_msg, now, None, out);
    }

    /// Encodes and "sends" `msg`: with MsgSeqNum `num` when resending (not stored,
    /// no increment), else the next sender sequence number (stored, incremented).
    fn send_raw(&mut self, msg: OutgoingMessage, now: i64, num: Option<u64>, out: &mut Outbox) {
        let seq = num.unwrap_or_else(|| self.store.next_sender_seq());
        // The header in tag order: the standard fields, with the message's own
        // merged in (a standard field first on an equal tag). A new message is
        // never a possible duplicate (QuickFIX's Session::send).
        let mut extras = msg.header;
        extras.retain(|(t, _)| {
            num.is_some() || !matches!(*t, tags::POSS_DUP_FLAG | tags::ORIG_SENDING_TIME)
        });
        extras.sort_by_key(|(t, _)| *t);
        let body = &mut self.scratch;
        body.clear();
        push_field(body, tags::MSG_TYPE, msg.msg_type.as_bytes());
        let mut rest = extras.iter().peekable();
        for tag in [
            tags::MSG_SEQ_NUM,
            tags::SENDER_COMP_ID,
            tags::SENDING_TIME,
            tags::TARGET_COMP_ID,
        ] {
            while let Some((t, v)) = rest.next_if(|(t, _)| *t < tag) {
                push_field(body, *t, v);
            }
            write_u64(body, u64::from(tag));
            body.push(b'=');
            match tag {
                tags::MSG_SEQ_NUM => write_u64(body, seq),
                tags::SENDER_COMP_ID => {
                    body.extend_from_slice(self.config.id.sender_comp_id.as_bytes());
                }
                tags::SENDING_TIME => {
                    write_utc_timestamp(body, now, self.config.timestamp_precision);
                }
                _ => body.extend_from_slice(self.config.id.target_comp_id.as_bytes()),
            }
            body.push(crate::frame::SOH);
        }
        for (t, v) in rest {
            push_field(body, *t, v);
        }
        for (t, v) in msg.body.iter() {
            push_field(body, t, v);
        }
        let bytes = crate::frame::encode(&self.config.id.begin_string, body);
        if num.is_none() {
            self.store_op(out, |s| s.save(seq, &bytes));
            self.store_op(out, |s| s.set_next_sender_seq(seq + 1));
        }
        self.last_sent = now;
        out.messages.push(bytes);
    }
}

fn push_field(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    write_u64(out, u64::from(tag));
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(crate::frame::SOH);
}

/// Copies the routing fields of `msg` to `reply`, swapped (OnBehalfOf <-> DeliverTo).
fn reverse_route(msg: &Message<'_>, reply: &mut OutgoingMessage) {
    const PAIRS: [(u32, u32); 6] = [
        (115, 128),
        (128, 115),
        (116, 129),
        (129, 116),
        (144, 145),
        (145, 144),
    ];
    for (from, to) in PAIRS {
        if let Some(v) = msg.get(from).filter(|v| !v.is_empty()) {
            reply.header.push((to, v.to_vec()));
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
