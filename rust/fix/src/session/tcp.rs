//! A TCP acceptor and initiator on std threads.
//!
//! Each connection runs on its own thread: it reads with a short timeout, cuts frames
//! with a [`Splitter`], feeds them to the [`Session`], calls [`Session::tick`] between
//! reads, and writes what the session produces. Messages the application wants to
//! send outside its callbacks go through a bounded channel per session
//! ([`Acceptor::sender`], [`Initiator::sender`]); a full channel blocks the sender
//! (back-pressure). Each connection has a writer thread that blocks on that channel
//! and sends what arrives at once (no wait for the reader's poll).
//! [`Initiator::send_now`] skips that hand-off: the caller numbers, stores and
//! writes the message itself, on its own thread, when nothing is queued before it
//! (otherwise it queues behind). Events go to an optional bounded channel and are
//! dropped when it is full. Every thread is joined by `stop` (or on drop).
//!
//! Reading on the caller's thread ([`InitiatorConfig::caller_reads`]): the
//! connection's read side (its transport, the frames cut so far) sits under a
//! lock that whoever reads holds, and a thread waiting for the peer's answer can
//! take it ([`SessionDriver::pump`]: a non-blocking read, then the same session
//! handling as on the connection's thread). While callers read, the
//! connection's thread parks instead of reading, until `caller_reads` after the
//! last caller's read or [`SessionDriver::release`]; a caller that meets the
//! end of the connection or a disconnect hands it back to that thread.
//!
//! Ordering: the reader, the writer and `send_now` all hold the session lock from
//! the moment the session numbers (and stores) a message until its bytes are
//! written to the socket, so messages leave in sequence-number order; only the
//! writer (or, when it could not be spawned, the reader) takes from the channel,
//! so they leave in the order they were queued, and `send_now` writes directly only
//! when the channel holds nothing (a count kept by [`SessionSender`]).
//!
//! TLS (optional, [`AcceptorConfig::tls`], [`InitiatorConfig::tls`]): the
//! handshake runs on the connection's thread before the first FIX byte, bounded
//! by a timeout, so it never holds up the accept loop; the reader and the writer
//! then go through a transport that encrypts and decrypts without holding a
//! lock across a socket read. A connection that fails before FIX begins (a
//! handshake failure, a TLS peer on a plaintext port, a TLS error later on) is
//! dropped, logged (`log::warn!`), counted and kept as the last failure
//! ([`Acceptor::transport_failures`], [`Initiator::transport_failures`]); an
//! initiator also reports it as [`SessionEvent::Disconnecting`] and reconnects
//! with its back-off.

use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{
    sync_channel, Receiver, RecvTimeoutError, SendError, SyncSender, TrySendError,
};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::message::{peek_msg_type, Message, Splitter};
use crate::session::schedule::Schedule;
use crate::session::state::{
    Application, LogonFlag, Outbox, OutgoingMessage, Session, SessionEvent, SessionId,
};
use crate::session::tls::{ClientTls, ServerTls};
use crate::session::transport::{is_transient, TlsRole, Transport};

/// Why a TCP endpoint could not start.
#[derive(Debug, Error)]
pub enum TcpError {
    /// Binding or configuring the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// A thread could not be spawned.
    #[error("cannot spawn a thread: {0}")]
    Spawn(io::Error),
}

/// Capacity of the per-session channel of outgoing application messages.
pub const OUTGOING_CAPACITY: usize = 1024;

const POLL: Duration = Duration::from_millis(20);

/// While a reader busy-polls, how often it still runs the session's timers.
const BUSY_POLL_TICK: Duration = Duration::from_millis(1);

/// How long an acceptor waits for the first message (a Logon) of a connection.
const LOGON_WAIT: Duration = Duration::from_secs(10);

/// Returns the current UTC time in nanoseconds since the Unix epoch.
#[must_use]
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Events of all sessions, tagged with the session id.
pub type EventSender = SyncSender<(SessionId, SessionEvent)>;

/// The consuming end of a session's outgoing channel, with the message taken from
/// it but not sent yet (the session was not logged on), which goes first next time.
struct Outgoing {
    receiver: Receiver<OutgoingMessage>,
    held: Option<OutgoingMessage>,
}

/// The sending end of a session's bounded channel of outgoing application
/// messages: a [`SyncSender`] that also counts what it queued and the session has
/// not sent yet (so that [`Initiator::send_now`] never overtakes a queued message).
#[derive(Debug, Clone)]
pub struct SessionSender {
    tx: SyncSender<OutgoingMessage>,
    queued: Arc<AtomicUsize>,
}

impl SessionSender {
    /// A bounded channel of `capacity` on its own, not attached to a session (for
    /// tests and adapters that consume the messages themselves).
    #[must_use]
    pub fn channel(capacity: usize) -> (Self, Receiver<OutgoingMessage>) {
        let (tx, rx) = sync_channel(capacity);
        let sender = Self {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
        };
        (sender, rx)
    }

    /// Queues `msg`, blocking while the channel is full.
    ///
    /// # Errors
    /// The message back when the connection's end of the channel is gone.
    pub fn send(&self, msg: OutgoingMessage) -> Result<(), SendError<OutgoingMessage>> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.tx.send(msg).inspect_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        })
    }

    /// Queues `msg` if the channel has room.
    ///
    /// # Errors
    /// The message back when the channel is full or its other end is gone.
    pub fn try_send(&self, msg: OutgoingMessage) -> Result<(), TrySendError<OutgoingMessage>> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.tx.try_send(msg).inspect_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        })
    }
}

struct Slot {
    id: SessionId,
    session: Mutex<Session>,
    /// The session's logon state, read without its lock.
    logged_on: LogonFlag,
    connected: AtomicBool,
    outgoing: Mutex<Outgoing>,
    sender: SessionSender,
    /// A clone of the connection's transport, for [`Slot::send_now`] (None while
    /// disconnected).
    direct: Mutex<Option<Transport>>,
    /// The reading side of the current connection, for [`SessionDriver::pump`]
    /// (None while disconnected).
    reading: Mutex<Option<Arc<Mutex<Reading>>>>,
    /// When a caller last read, or tried to read, through [`SessionDriver::pump`]:
    /// nanoseconds since [`Shared::epoch`] plus one; 0 when released.
    driven_at: AtomicU64,
    /// The connection's thread, woken when a caller stops reading.
    reader: Mutex<Option<Thread>>,
    /// A caller met the end of the connection: only the connection's thread
    /// reads until the next connection.
    handed_back: AtomicBool,
}

/// A connection's reading side: the transport read from (the connection's own,
/// with its TLS buffers), the frames cut so far and, when a caller reading
/// through [`SessionDriver::pump`] met the end of the connection, what the
/// connection's thread must do about it. Whoever reads holds it locked.
struct Reading {
    stream: Transport,
    splitter: Splitter,
    buf: Vec<u8>,
    ended: Option<Ended>,
}

/// Why a caller reading for the connection's thread stopped.
enum Ended {
    /// The peer closed the connection or reading failed (with the reason when
    /// it is a transport failure, counted as such).
    Closed(Option<String>),
    /// The session disconnects, or an answer could not be written.
    Disconnect,
}

fn lock_reading(reading: &Mutex<Reading>) -> MutexGuard<'_, Reading> {
    reading.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    fn new(session: Session) -> Self {
        let (tx, receiver) = sync_channel(OUTGOING_CAPACITY);
        Self {
            id: session.id().clone(),
            logged_on: session.logon_flag(),
            session: Mutex::new(session),
            connected: AtomicBool::new(false),
            outgoing: Mutex::new(Outgoing {
                receiver,
                held: None,
            }),
            sender: SessionSender {
                tx,
                queued: Arc::new(AtomicUsize::new(0)),
            },
            direct: Mutex::new(None),
            reading: Mutex::new(None),
            driven_at: AtomicU64::new(0),
            reader: Mutex::new(None),
            handed_back: AtomicBool::new(false),
        }
    }

    /// Lets callers read the connection through `reading`, and the connection's
    /// thread (the calling one) be woken when they stop.
    fn attach(&self, reading: &Arc<Mutex<Reading>>) {
        *self.reader.lock().unwrap_or_else(PoisonError::into_inner) = Some(std::thread::current());
        self.handed_back.store(false, Ordering::Release);
        *self.reading.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(reading));
    }

    fn reading(&self) -> Option<Arc<Mutex<Reading>>> {
        self.reading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A caller met the end of the connection: the connection's thread takes
    /// over (and is woken for it).
    fn hand_back(&self) {
        self.handed_back.store(true, Ordering::Release);
        self.wake_reader();
    }

    fn wake_reader(&self) {
        if let Some(t) = &*self.reader.lock().unwrap_or_else(PoisonError::into_inner) {
            t.unpark();
        }
    }

    /// While a caller reads the socket ([`SessionDriver::pump`]): how much longer
    /// the connection's thread stays out of its way. None: it reads.
    fn aside_for(&self, shared: &Shared) -> Option<Duration> {
        if shared.caller_reads.is_zero()
            || shared.stop.load(Ordering::Acquire)
            || self.handed_back.load(Ordering::Acquire)
        {
            return None;
        }
        let at = self.driven_at.load(Ordering::Acquire);
        if at == 0 {
            return None;
        }
        let since = shared.since_epoch().saturating_sub(at);
        let linger = u64::try_from(shared.caller_reads.as_nanos()).unwrap_or(u64::MAX);
        (since < linger).then(|| Duration::from_nanos(linger - since))
    }

    fn direct(&self) -> MutexGuard<'_, Option<Transport>> {
        self.direct
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Numbers, stores and writes `msg` on the calling thread when the session is
    /// logged on, connected and has nothing queued; queues it otherwise.
    fn send_now(
        &self,
        shared: &Shared,
        msg: OutgoingMessage,
    ) -> Result<(), SendError<OutgoingMessage>> {
        {
            let mut session = self.session();
            if self.sender.queued.load(Ordering::Acquire) == 0
                && session.is_logged_on()
                && !session.is_logging_out()
            {
                let mut direct = self.direct();
                if let Some(stream) = direct.as_mut() {
                    let mut out = Outbox::new();
                    session.send(msg, now_nanos(), &mut out);
                    shared.emit(&self.id, &mut out);
                    if !write_all(stream, &mut out) || out.disconnect {
                        // Stored: sent again on the next logon's resend request.
                        stream.abort();
                    }
                    return Ok(());
                }
            }
        }
        self.sender.send(msg)
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn outgoing(&self) -> MutexGuard<'_, Outgoing> {
        self.outgoing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Moves queued application messages into the session (numbered, stored) while it
/// is logged on and not logging out. Called with the session locked.
fn drain_outgoing(
    outgoing: &mut Outgoing,
    queued: &AtomicUsize,
    session: &mut Session,
    now: i64,
    out: &mut Outbox,
) {
    while session.is_logged_on() && !session.is_logging_out() {
        let msg = match outgoing.held.take() {
            Some(m) => m,
            None => match outgoing.receiver.try_recv() {
                Ok(m) => m,
                Err(_) => break,
            },
        };
        session.send(msg, now, out);
        queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long the writer waits between checks while a message waits for a logon.
const HELD_RETRY: Duration = Duration::from_millis(1);

/// The writer of one connection: takes application messages from the slot's
/// channel as soon as they arrive and sends them through `stream` (a clone of the
/// connection's socket), numbering and writing each under the session lock. Holds
/// the channel's consuming end until `done`. On a failed write it shuts the socket
/// down, which ends the reader too.
fn writer_loop(slot: &Slot, shared: &Shared, mut stream: Transport, done: &AtomicBool) {
    let mut outgoing = slot.outgoing();
    let mut out = Outbox::new();
    while !done.load(Ordering::Acquire) {
        if outgoing.held.is_none() {
            match outgoing.receiver.recv_timeout(POLL) {
                Ok(m) => outgoing.held = Some(m),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut session = slot.session();
        if done.load(Ordering::Acquire) {
            break;
        }
        if !session.is_logged_on() || session.is_logging_out() {
            drop(session);
            std::thread::sleep(HELD_RETRY);
            continue;
        }
        drain_outgoing(
            &mut outgoing,
            &slot.sender.queued,
            &mut session,
            now_nanos(),
            &mut out,
        );
        shared.emit(&slot.id, &mut out);
        let failed = !write_all(&mut stream, &mut out) || out.disconnect;
        drop(session);
        if failed {
            stream.abort();
            break;
        }
    }
}

/// Spawns the writer thread of a connection; None when the socket cannot be
/// cloned or the thread spawned (the reader then sends queued messages itself).
fn spawn_writer(
    slot: &Arc<Slot>,
    shared: &Arc<Shared>,
    stream: &Transport,
    done: &Arc<AtomicBool>,
) -> Option<JoinHandle<()>> {
    let stream = stream.try_clone().ok()?;
    let slot = Arc::clone(slot);
    let shared = Arc::clone(shared);
    let done = Arc::clone(done);
    std::thread::Builder::new()
        .name("fix-writer".to_owned())
        .spawn(move || writer_loop(&slot, &shared, stream, &done))
        .ok()
}

struct Shared {
    stop: AtomicBool,
    schedule: Schedule,
    events: Option<EventSender>,
    app: Arc<dyn Application>,
    tls: Option<TlsRole>,
    busy_poll: Duration,
    /// [`InitiatorConfig::caller_reads`] (zero for an acceptor).
    caller_reads: Duration,
    epoch: Instant,
    failures: AtomicU64,
    last_failure: Mutex<Option<String>>,
}

impl Shared {
    fn new(
        schedule: Schedule,
        events: Option<EventSender>,
        app: Arc<dyn Application>,
        tls: Option<TlsRole>,
        busy_poll: Duration,
    ) -> Self {
        Self {
            stop: AtomicBool::new(false),
            schedule,
            events,
            app,
            tls,
            busy_poll,
            caller_reads: Duration::ZERO,
            epoch: Instant::now(),
            failures: AtomicU64::new(0),
            last_failure: Mutex::new(None),
        }
    }

    /// Nanoseconds since `epoch`, plus one (never 0).
    fn since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// Counts, logs and keeps a connection dropped for a transport failure; with
    /// the session known, also reports it as an event.
    fn transport_failed(&self, id: Option<&SessionId>, peer: Option<SocketAddr>, reason: String) {
        let peer = peer.map_or_else(|| "?".to_owned(), |p| p.to_string());
        match id {
            Some(id) => log::warn!("FIX session {id}: connection to {peer} dropped: {reason}"),
            None => log::warn!("FIX acceptor: connection from {peer} dropped: {reason}"),
        }
        self.failures.fetch_add(1, Ordering::AcqRel);
        if let (Some(events), Some(id)) = (&self.events, id) {
            let _ = events.try_send((id.clone(), SessionEvent::Disconnecting(reason.clone())));
        }
        *self
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
    }

    fn last_failure(&self) -> Option<String> {
        self.last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn emit(&self, id: &SessionId, out: &mut Outbox) {
        if let Some(events) = &self.events {
            for e in out.events.drain(..) {
                match events.try_send((id.clone(), e)) {
                    Ok(()) | Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
        }
        out.events.clear();
    }
}

fn write_all(stream: &mut Transport, out: &mut Outbox) -> bool {
    let mut ok = true;
    for m in out.messages.drain(..) {
        if ok && stream.write_all(&m).is_err() {
            ok = false;
        }
    }
    ok
}

/// Hands one frame of a known session to it and writes what it answers. False
/// when the connection must close (a write failed, or the session disconnects).
fn deliver(
    s: &Slot,
    shared: &Shared,
    frame: &[u8],
    stream: &mut Transport,
    out: &mut Outbox,
) -> bool {
    // Written under the session lock: the writer thread may be sending too.
    let mut session = s.session();
    session.on_frame(frame, now_nanos(), shared.app.as_ref(), out);
    shared.emit(&s.id, out);
    let written = write_all(stream, out);
    drop(session);
    shared.app.after_message(&s.id);
    written && !out.disconnect
}

/// Runs one connection until it closes. `slot` is known for an initiator; an
/// acceptor finds it from the first message, which must be a Logon.
fn serve(
    socket: TcpStream,
    mut slot: Option<Arc<Slot>>,
    registry: &[Arc<Slot>],
    shared: &Arc<Shared>,
    initiate: bool,
) {
    let _ = socket.set_read_timeout(Some(POLL));
    let _ = socket.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = socket.set_nodelay(true);
    let peer = socket.peer_addr().ok();
    let opened = match Transport::open(socket, shared.tls.as_ref(), &shared.stop) {
        Ok(stream) => stream,
        Err(reason) => {
            shared.transport_failed(slot.as_ref().map(|s| &s.id), peer, reason);
            return;
        }
    };
    // Reads go through `reading` (the connection's own transport, which a caller
    // may borrow: SessionDriver::pump); this thread writes through a clone.
    let mut stream = match opened.try_clone() {
        Ok(stream) => stream,
        Err(e) => {
            shared.transport_failed(slot.as_ref().map(|s| &s.id), peer, e.to_string());
            return;
        }
    };
    let reading = Arc::new(Mutex::new(Reading {
        stream: opened,
        splitter: Splitter::new(),
        buf: vec![0u8; 16 * 1024],
        ended: None,
    }));
    let mut out = Outbox::new();
    let mut claimed = false;
    let writer_done = Arc::new(AtomicBool::new(false));
    let mut writer: Option<JoinHandle<()>> = None;
    if let Some(s) = &slot {
        if s.connected.swap(true, Ordering::AcqRel) {
            return;
        }
        claimed = true;
        let mut session = s.session();
        session.check_period(&shared.schedule, now_nanos(), &mut out);
        session.on_connect(now_nanos());
        if initiate {
            session.start_logon(now_nanos(), &mut out);
        }
        shared.emit(&s.id, &mut out);
        if !write_all(&mut stream, &mut out) {
            out.disconnect = true;
        }
        drop(session);
        writer = spawn_writer(s, shared, &stream, &writer_done);
        *s.direct() = stream.try_clone().ok();
        s.attach(&reading);
    }
    let mut stop_logout_sent = false;
    let connected_at = std::time::Instant::now();
    // Busy polling: until `hot_until` the socket is read without waiting.
    let mut hot_until: Option<std::time::Instant> = None;
    let mut last_tick = connected_at;
    'conn: while !out.disconnect {
        if let Some(left) = slot.as_ref().and_then(|s| s.aside_for(shared)) {
            // A caller reads the socket (SessionDriver::pump): out of its way
            // until it stops, then back to reading; the timers still run.
            std::thread::park_timeout(left.min(POLL));
        } else {
            let mut guard = lock_reading(&reading);
            let r = &mut *guard;
            if let Some(ended) = r.ended.take() {
                if let Ended::Closed(Some(reason)) = ended {
                    shared.transport_failed(slot.as_ref().map(|s| &s.id), peer, reason);
                }
                break 'conn;
            }
            let polling = hot_until.is_some_and(|t| std::time::Instant::now() < t);
            let read = if polling {
                r.stream.read_now(&mut r.buf)
            } else {
                r.stream.read(&mut r.buf)
            };
            match read {
                Ok(0) => break,
                Ok(n) => {
                    r.splitter.feed(r.buf.get(..n).unwrap_or_default());
                    // Where callers read (caller_reads), they poll, not this thread.
                    if !shared.busy_poll.is_zero() && shared.caller_reads.is_zero() {
                        hot_until = Some(std::time::Instant::now() + shared.busy_poll);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if polling {
                        std::thread::yield_now();
                        // The timers (heartbeats, schedule, stop) as often as when blocking.
                        if last_tick.elapsed() < BUSY_POLL_TICK {
                            continue 'conn;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::InvalidData => {
                    shared.transport_failed(slot.as_ref().map(|s| &s.id), peer, e.to_string());
                    break;
                }
                Err(_) => break,
            }
            while let Some(frame) = r.splitter.next_frame() {
                let Ok(frame) = frame else {
                    continue;
                };
                if slot.is_none() {
                    match find_slot(frame, registry) {
                        Some(s) if shared.schedule.contains(now_nanos()) => {
                            if s.connected.swap(true, Ordering::AcqRel) {
                                // Duplicate identity: the session has a connection.
                                break 'conn;
                            }
                            claimed = true;
                            let mut session = s.session();
                            session.check_period(&shared.schedule, now_nanos(), &mut out);
                            session.on_connect(now_nanos());
                            drop(session);
                            writer = spawn_writer(&s, shared, &stream, &writer_done);
                            *s.direct() = stream.try_clone().ok();
                            s.attach(&reading);
                            slot = Some(s);
                        }
                        _ => break 'conn,
                    }
                }
                let Some(s) = &slot else { break 'conn };
                if !deliver(s, shared, frame, &mut stream, &mut out) {
                    break 'conn;
                }
            }
        }
        last_tick = std::time::Instant::now();
        if let Some(s) = &slot {
            let now = now_nanos();
            let mut session = s.session();
            // Log out at shutdown, at the end of the window, or when a new period
            // begins (the next Logon then starts with reset sequence numbers).
            let stopping = shared.stop.load(Ordering::Acquire)
                || !shared.schedule.contains(now)
                || (session.is_logged_on() && !session.in_current_period(&shared.schedule, now));
            if stopping {
                if session.is_logged_on() && !stop_logout_sent {
                    session.logout(None, now, &mut out);
                    stop_logout_sent = true;
                } else if !session.is_logged_on() {
                    out.disconnect = true;
                }
            }
            if writer.is_none() {
                // No writer thread: send what is queued here, as each poll ends.
                drain_outgoing(
                    &mut s.outgoing(),
                    &s.sender.queued,
                    &mut session,
                    now,
                    &mut out,
                );
            }
            session.tick(now, &mut out);
            shared.emit(&s.id, &mut out);
            let written = write_all(&mut stream, &mut out);
            drop(session);
            if !written {
                break;
            }
        } else if shared.stop.load(Ordering::Acquire) || connected_at.elapsed() > LOGON_WAIT {
            // Stopping, or no Logon arrived on a new connection in time.
            break;
        }
    }
    writer_done.store(true, Ordering::Release);
    // No caller reads from here on (one reading now finishes first).
    lock_reading(&reading).ended = Some(Ended::Closed(None));
    if let (Some(s), true) = (&slot, claimed) {
        // Under the session lock: no direct send is between numbering and writing.
        let _session = s.session();
        *s.direct() = None;
        *s.reading.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    let _ = write_all(&mut stream, &mut out);
    stream.shutdown();
    if let (Some(s), true) = (&slot, claimed) {
        let mut session = s.session();
        let mut out = Outbox::new();
        session.on_disconnect(shared.app.as_ref(), &mut out);
        let id = session.id().clone();
        drop(session);
        shared.emit(&id, &mut out);
        s.connected.store(false, Ordering::Release);
    }
}

fn find_slot(frame: &[u8], registry: &[Arc<Slot>]) -> Option<Arc<Slot>> {
    if peek_msg_type(frame) != Some(b"A") {
        return None;
    }
    let msg = Message::parse(frame).ok()?;
    let begin = msg.begin_string();
    let sender = msg.get(crate::message::tags::SENDER_COMP_ID)?;
    let target = msg.get(crate::message::tags::TARGET_COMP_ID)?;
    registry
        .iter()
        .find(|s| {
            let id = &s.id;
            id.begin_string.as_bytes() == begin
                && id.sender_comp_id.as_bytes() == target
                && id.target_comp_id.as_bytes() == sender
        })
        .cloned()
}

/// Settings of an [`Acceptor`].
#[derive(Clone)]
pub struct AcceptorConfig {
    /// Where to listen, e.g. `127.0.0.1:0` (port 0: any free port).
    pub bind: SocketAddr,
    /// When the sessions may be logged on.
    pub schedule: Schedule,
    /// Optional bounded channel of session events (dropped when full).
    pub events: Option<EventSender>,
    /// Most connections served at once (one thread each); more are closed at once.
    pub max_connections: usize,
    /// TLS on every connection (None: plain TCP).
    pub tls: Option<ServerTls>,
    /// After each read that brought data, how long a connection's reader keeps
    /// polling the socket (without sleeping, yielding the core between looks)
    /// before it blocks again: an answer that comes within it is read without a
    /// thread wake-up. Zero (the default) blocks at once. A core is busy while
    /// messages keep coming.
    pub busy_poll: Duration,
}

impl std::fmt::Debug for AcceptorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptorConfig")
            .field("bind", &self.bind)
            .field("schedule", &self.schedule)
            .field("tls", &self.tls)
            .field("busy_poll", &self.busy_poll)
            .finish_non_exhaustive()
    }
}

impl AcceptorConfig {
    /// Listens on `127.0.0.1` on any free port, 24h schedule, no events, at most 64
    /// connections.
    #[must_use]
    pub fn localhost() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            schedule: Schedule::always(),
            events: None,
            max_connections: 64,
            tls: None,
            busy_poll: Duration::ZERO,
        }
    }
}

/// A FIX acceptor: listens, and serves each connection on its own thread, for a
/// fixed set of sessions. A second connection for a session that already has one
/// is dropped (duplicate identity).
pub struct Acceptor {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    registry: Arc<Vec<Arc<Slot>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Acceptor {
    /// Starts listening for `sessions`, calling `app` for their messages.
    ///
    /// # Errors
    /// [`TcpError`] when the socket cannot be bound or the thread spawned.
    pub fn start(
        config: AcceptorConfig,
        sessions: Vec<Session>,
        app: Arc<dyn Application>,
    ) -> Result<Self, TcpError> {
        let bind_err = |source| TcpError::Bind {
            addr: config.bind,
            source,
        };
        let listener = TcpListener::bind(config.bind).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let shared = Arc::new(Shared::new(
            config.schedule,
            config.events,
            app,
            config.tls.map(TlsRole::Server),
            config.busy_poll,
        ));
        let registry: Arc<Vec<Arc<Slot>>> = Arc::new(
            sessions
                .into_iter()
                .map(|mut s| {
                    s.set_initiate(false);
                    Arc::new(Slot::new(s))
                })
                .collect(),
        );
        let max_connections = config.max_connections;
        let thread = {
            let shared = Arc::clone(&shared);
            let registry = Arc::clone(&registry);
            std::thread::Builder::new()
                .name("fix-acceptor".to_owned())
                .spawn(move || accept_loop(&listener, &shared, &registry, max_connections))
                .map_err(TcpError::Spawn)?
        };
        Ok(Self {
            local_addr,
            shared,
            registry,
            thread: Some(thread),
        })
    }

    /// The address the acceptor listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A bounded channel to send application messages on session `id` (sent while
    /// it is logged on; blocks when full).
    #[must_use]
    pub fn sender(&self, id: &SessionId) -> Option<SessionSender> {
        self.slot(id).map(|s| s.sender.clone())
    }

    /// Whether session `id` is logged on.
    #[must_use]
    pub fn is_logged_on(&self, id: &SessionId) -> bool {
        self.slot(id).is_some_and(|s| s.logged_on.get())
    }

    /// The (next sender, next target) sequence numbers of session `id`.
    #[must_use]
    pub fn seq_nums(&self, id: &SessionId) -> Option<(u64, u64)> {
        self.slot(id).map(|s| {
            let session = s.session();
            (session.next_sender_seq(), session.next_target_seq())
        })
    }

    /// Connections dropped before or outside FIX for a transport failure (a TLS
    /// handshake that failed or timed out, a TLS error, a TLS client on a
    /// plaintext acceptor), since the start.
    #[must_use]
    pub fn transport_failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Acquire)
    }

    /// Why the last such connection was dropped.
    #[must_use]
    pub fn last_transport_failure(&self) -> Option<String> {
        self.shared.last_failure()
    }

    fn slot(&self, id: &SessionId) -> Option<&Arc<Slot>> {
        self.registry.iter().find(|s| &s.id == id)
    }

    /// Logs the sessions out (briefly waiting for the answers), closes the
    /// connections and joins every thread.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    registry: &Arc<Vec<Arc<Slot>>>,
    max_connections: usize,
) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) if workers.len() >= max_connections => {
                let _ = stream.shutdown(Shutdown::Both);
            }
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let shared = Arc::clone(shared);
                let registry = Arc::clone(registry);
                let spawned = std::thread::Builder::new()
                    .name("fix-acceptor-conn".to_owned())
                    .spawn(move || serve(stream, None, &registry, &shared, false));
                if let Ok(handle) = spawned {
                    workers.push(handle);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
        let (done, running): (Vec<_>, Vec<_>) =
            workers.into_iter().partition(JoinHandle::is_finished);
        for handle in done {
            let _ = handle.join();
        }
        workers = running;
    }
    for handle in workers {
        let _ = handle.join();
    }
}

/// Settings of an [`Initiator`].
#[derive(Clone)]
pub struct InitiatorConfig {
    /// The acceptor to connect to.
    pub addr: SocketAddr,
    /// When the session may be logged on (no connection outside it).
    pub schedule: Schedule,
    /// First delay before reconnecting; doubled after each failure.
    pub reconnect_min: Duration,
    /// Largest delay before reconnecting.
    pub reconnect_max: Duration,
    /// Optional bounded channel of session events (dropped when full).
    pub events: Option<EventSender>,
    /// TLS to the acceptor (None: plain TCP).
    pub tls: Option<ClientTls>,
    /// As [`AcceptorConfig::busy_poll`], for this connection's reader.
    pub busy_poll: Duration,
    /// Lets a caller that waits for the peer's answer read the socket itself
    /// ([`Initiator::driver`], [`SessionDriver::pump`]): the message is then
    /// applied on the caller's thread, with no hand-off from the connection's
    /// thread, which stays out of the way until this long after the last
    /// caller's read (or [`SessionDriver::release`]). What arrives meanwhile while
    /// no caller reads waits that long at most. Zero (the default): callers
    /// never read, [`SessionDriver::pump`] does nothing.
    pub caller_reads: Duration,
}

impl std::fmt::Debug for InitiatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitiatorConfig")
            .field("addr", &self.addr)
            .field("schedule", &self.schedule)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("tls", &self.tls)
            .field("busy_poll", &self.busy_poll)
            .field("caller_reads", &self.caller_reads)
            .finish_non_exhaustive()
    }
}

impl InitiatorConfig {
    /// Connects to `addr`, 24h schedule, reconnecting after 100 ms up to 5 s.
    #[must_use]
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            schedule: Schedule::always(),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            events: None,
            tls: None,
            busy_poll: Duration::ZERO,
            caller_reads: Duration::ZERO,
        }
    }
}

/// A FIX initiator: connects, logs on, and reconnects with back-off until stopped.
pub struct Initiator {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator").finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts the initiator thread for `session`.
    ///
    /// # Errors
    /// [`TcpError::Spawn`] when the thread cannot be spawned.
    pub fn start(
        config: InitiatorConfig,
        mut session: Session,
        app: Arc<dyn Application>,
    ) -> Result<Self, TcpError> {
        session.set_initiate(true);
        let mut shared = Shared::new(
            config.schedule,
            config.events.clone(),
            app,
            config.tls.clone().map(TlsRole::Client),
            config.busy_poll,
        );
        shared.caller_reads = config.caller_reads;
        let shared = Arc::new(shared);
        let slot = Arc::new(Slot::new(session));
        let thread = {
            let shared = Arc::clone(&shared);
            let slot = Arc::clone(&slot);
            std::thread::Builder::new()
                .name("fix-initiator".to_owned())
                .spawn(move || connect_loop(&config, &shared, &slot))
                .map_err(TcpError::Spawn)?
        };
        Ok(Self {
            shared,
            slot,
            thread: Some(thread),
        })
    }

    /// A bounded channel to send application messages (sent while logged on).
    #[must_use]
    pub fn sender(&self) -> SessionSender {
        self.slot.sender.clone()
    }

    /// Sends `msg` on the calling thread: numbered, stored and written to the
    /// socket before this returns, when the session is logged on and nothing is
    /// queued on [`Self::sender`]; otherwise queued behind what is (blocking while
    /// the channel is full), as [`Self::sender`] would. Saves the hand-off to the
    /// connection's writer thread.
    ///
    /// # Errors
    /// The message back when the initiator has stopped.
    pub fn send_now(&self, msg: OutgoingMessage) -> Result<(), SendError<OutgoingMessage>> {
        self.slot.send_now(&self.shared, msg)
    }

    /// A handle for a thread waiting for the peer's answer to read the socket
    /// itself (see [`InitiatorConfig::caller_reads`]).
    #[must_use]
    pub fn driver(&self) -> SessionDriver {
        SessionDriver {
            slot: Arc::clone(&self.slot),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Whether the session is logged on.
    #[must_use]
    pub fn is_logged_on(&self) -> bool {
        self.slot.logged_on.get()
    }

    /// The (next sender, next target) sequence numbers.
    #[must_use]
    pub fn seq_nums(&self) -> (u64, u64) {
        let s = self.slot.session();
        (s.next_sender_seq(), s.next_target_seq())
    }

    /// Connections dropped before or outside FIX for a transport failure (a TLS
    /// handshake that failed or timed out, a TLS error, a plaintext acceptor
    /// answering with TLS), since the start.
    #[must_use]
    pub fn transport_failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Acquire)
    }

    /// Why the last such connection was dropped.
    #[must_use]
    pub fn last_transport_failure(&self) -> Option<String> {
        self.shared.last_failure()
    }

    /// Logs out (briefly waiting for the answer), disconnects and joins the thread.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Initiator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A caller's hand on an [`Initiator`]'s socket: a thread that waits for the
/// peer's answer reads it itself, without waiting for the connection's thread to
/// wake up and hand it over (see [`InitiatorConfig::caller_reads`]).
#[derive(Clone)]
pub struct SessionDriver {
    slot: Arc<Slot>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDriver")
            .field("session", &self.slot.id)
            .finish_non_exhaustive()
    }
}

impl SessionDriver {
    /// Reads what the socket holds now, without waiting, and hands each whole
    /// message to the session (and so to the application) on the calling thread,
    /// exactly as the connection's thread would; returns whether it read
    /// anything. Keeps the connection's thread aside (see
    /// [`InitiatorConfig::caller_reads`]). Does nothing when `caller_reads` is
    /// zero, while disconnected, or while another thread reads. The end of the
    /// connection, a read error or a disconnect the session asks for is left to
    /// the connection's thread, woken for it.
    pub fn pump(&self) -> bool {
        let (slot, shared) = (&*self.slot, &*self.shared);
        if shared.caller_reads.is_zero() || slot.handed_back.load(Ordering::Acquire) {
            return false;
        }
        slot.driven_at
            .store(shared.since_epoch(), Ordering::Release);
        let Some(reading) = slot.reading() else {
            return false;
        };
        let mut guard = match reading.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        let r = &mut *guard;
        if r.ended.is_some() {
            return false;
        }
        let n = match r.stream.read_now(&mut r.buf) {
            Ok(0) => {
                r.ended = Some(Ended::Closed(None));
                slot.hand_back();
                return false;
            }
            Ok(n) => n,
            Err(e) if is_transient(&e) => return false,
            Err(e) => {
                let failure = (e.kind() == ErrorKind::InvalidData).then(|| e.to_string());
                r.ended = Some(Ended::Closed(failure));
                slot.hand_back();
                return false;
            }
        };
        r.splitter.feed(r.buf.get(..n).unwrap_or_default());
        let mut out = Outbox::new();
        while let Some(frame) = r.splitter.next_frame() {
            let Ok(frame) = frame else {
                continue;
            };
            if !deliver(slot, shared, frame, &mut r.stream, &mut out) {
                r.ended = Some(Ended::Disconnect);
                slot.hand_back();
                break;
            }
        }
        true
    }

    /// Stops reading: the connection's thread reads again at once.
    pub fn release(&self) {
        self.slot.driven_at.store(0, Ordering::Release);
        self.slot.wake_reader();
    }
}

fn sleep_unless_stopped(shared: &Shared, total: Duration) {
    let mut left = total;
    while !left.is_zero() && !shared.stop.load(Ordering::Acquire) {
        let step = left.min(POLL);
        std::thread::sleep(step);
        left = left.saturating_sub(step);
    }
}

fn connect_loop(config: &InitiatorConfig, shared: &Arc<Shared>, slot: &Arc<Slot>) {
    let mut backoff = config.reconnect_min;
    while !shared.stop.load(Ordering::Acquire) {
        if !shared.schedule.contains(now_nanos()) {
            sleep_unless_stopped(shared, Duration::from_millis(200));
            continue;
        }
        if let Ok(stream) = TcpStream::connect_timeout(&config.addr, Duration::from_secs(2)) {
            let started = std::time::Instant::now();
            serve(stream, Some(Arc::clone(slot)), &[], shared, true);
            if started.elapsed() > config.reconnect_max {
                backoff = config.reconnect_min;
            }
        }
        sleep_unless_stopped(shared, backoff);
        backoff = (backoff * 2).min(config.reconnect_max);
    }
}
