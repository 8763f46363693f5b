//! The byte stream under a FIX connection: a plain TCP socket, or TLS over it.
//!
//! With TLS the socket itself is read by the connection's reader thread
//! without any lock; the rustls state sits behind a mutex that is taken only to
//! feed it the bytes read (and take the plaintext out), or to encrypt and write
//! what a writer sends. No lock is held across a blocking read. Records rustls
//! wants to send on its own (handshake, alerts, session tickets, key updates)
//! are written under the same mutex, so records from the reader and the
//! writers never interleave. Lock order: the session lock, then this one.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustls::Connection;

use crate::session::tls::{ClientTls, ServerTls};

/// How long a TLS handshake may take before the connection is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Size of the buffer raw TLS bytes are read into.
const RAW_BUFFER: usize = 16 * 1024;

/// The TLS role of an endpoint.
#[derive(Clone, Debug)]
pub(crate) enum TlsRole {
    /// An initiator: the client side.
    Client(ClientTls),
    /// An acceptor: the server side.
    Server(ServerTls),
}

struct Tls {
    conn: Mutex<Connection>,
}

impl Tls {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's byte stream: plain TCP or TLS. Clones (for the writer
/// thread) share the socket and the TLS state.
pub(crate) struct Transport {
    socket: TcpStream,
    tls: Option<Arc<Tls>>,
    /// The reader's buffers (empty in clones): raw TLS bytes read, and
    /// plaintext taken out of rustls not yet handed to the caller.
    raw: Vec<u8>,
    plain: Vec<u8>,
    plain_start: usize,
    /// Whether the first bytes of a plaintext connection were checked.
    first_checked: bool,
}

/// Reads from `socket`; with `now`, without waiting (MSG_DONTWAIT on Unix).
fn receive(socket: &mut TcpStream, buf: &mut [u8], now: bool) -> io::Result<usize> {
    #[cfg(unix)]
    if now {
        return rustix::net::recv(&*socket, buf, rustix::net::RecvFlags::DONTWAIT)
            .map(|(n, _)| n)
            .map_err(io::Error::from);
    }
    #[cfg(not(unix))]
    let _ = now;
    socket.read(buf)
}

/// Whether a read failed only for now: nothing to read yet (WouldBlock, or a
/// read timeout) or a signal (Interrupted).
pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, reason)
}

/// Whether `bytes` start like a TLS record (content type 20 to 23, version 3.x).
fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x14..=0x17, 0x03, ..])
}

/// Writes every record rustls has queued.
fn flush_tls(conn: &mut Connection, socket: &mut TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        if conn.write_tls(socket)? == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// Feeds `input` to rustls and appends the plaintext it yields to `plain`.
/// Returns whether the peer closed the TLS session (close_notify).
fn feed(conn: &mut Connection, mut input: &[u8], plain: &mut Vec<u8>) -> io::Result<bool> {
    let mut closed = false;
    while !input.is_empty() {
        conn.read_tls(&mut input)?;
        let state = conn
            .process_new_packets()
            .map_err(|e| invalid(format!("TLS error: {e}")))?;
        let available = state.plaintext_bytes_to_read();
        if available > 0 {
            let start = plain.len();
            plain.resize(start + available, 0);
            let got = conn
                .reader()
                .read(plain.get_mut(start..).unwrap_or_default())?;
            plain.truncate(start + got);
        }
        closed |= state.peer_has_closed();
    }
    Ok(closed)
}

impl Transport {
    /// Starts the byte stream of a new connection: at once for plain TCP, after
    /// the handshake (on this thread, bounded by [`HANDSHAKE_TIMEOUT`] and
    /// `stop`) for TLS. The socket must already have its read timeout set.
    ///
    /// # Errors
    /// Why the handshake failed, for the log and the counters.
    pub(crate) fn open(
        socket: TcpStream,
        tls: Option<&TlsRole>,
        stop: &AtomicBool,
    ) -> Result<Self, String> {
        let mut transport = Self {
            socket,
            tls: None,
            raw: Vec::new(),
            plain: Vec::new(),
            plain_start: 0,
            first_checked: false,
        };
        let Some(role) = tls else {
            return Ok(transport);
        };
        let conn: Connection = match role {
            TlsRole::Client(c) => c.connection().map(Connection::from),
            TlsRole::Server(s) => s.connection().map(Connection::from),
        }
        .map_err(|e| format!("TLS setup failed: {e}"))?;
        transport.raw = vec![0; RAW_BUFFER];
        transport.handshake(conn, stop)?;
        Ok(transport)
    }

    fn handshake(&mut self, mut conn: Connection, stop: &AtomicBool) -> Result<(), String> {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let fail = |conn: &mut Connection, socket: &mut TcpStream, why: String| {
            // Best effort: send the alert rustls queued, telling the peer why.
            let _ = flush_tls(conn, socket);
            let _ = socket.shutdown(Shutdown::Both);
            format!("TLS handshake failed: {why}")
        };
        while conn.is_handshaking() {
            if let Err(e) = flush_tls(&mut conn, &mut self.socket) {
                return Err(fail(&mut conn, &mut self.socket, e.to_string()));
            }
            if !conn.is_handshaking() {
                break;
            }
            if stop.load(Ordering::Acquire) {
                return Err(fail(&mut conn, &mut self.socket, "stopping".into()));
            }
            if Instant::now() > deadline {
                let why = format!("no handshake within {} s", HANDSHAKE_TIMEOUT.as_secs());
                return Err(fail(&mut conn, &mut self.socket, why));
            }
            let n = match self.socket.read(&mut self.raw) {
                Ok(0) => {
                    let why = "the peer closed the connection".to_owned();
                    return Err(fail(&mut conn, &mut self.socket, why));
                }
                Ok(n) => n,
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(fail(&mut conn, &mut self.socket, e.to_string())),
            };
            let input = self.raw.get(..n).unwrap_or_default();
            match feed(&mut conn, input, &mut self.plain) {
                Ok(false) => {}
                Ok(true) => {
                    let why = "the peer closed the session".to_owned();
                    return Err(fail(&mut conn, &mut self.socket, why));
                }
                Err(e) => {
                    let why = e.to_string();
                    let why = why.strip_prefix("TLS error: ").unwrap_or(&why).to_owned();
                    return Err(fail(&mut conn, &mut self.socket, why));
                }
            }
        }
        if let Err(e) = flush_tls(&mut conn, &mut self.socket) {
            return Err(fail(&mut conn, &mut self.socket, e.to_string()));
        }
        self.tls = Some(Arc::new(Tls {
            conn: Mutex::new(conn),
        }));
        Ok(())
    }

    /// Reads application bytes: Ok(0) at the end of the stream; errors of kind
    /// WouldBlock/TimedOut when nothing arrived within the read timeout, and
    /// InvalidData for a TLS error or a TLS peer on a plaintext connection.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_from_socket(buf, false)
    }

    /// As [`Self::read`], without waiting: WouldBlock when the socket holds
    /// nothing now (for busy polling; on other platforms than Unix it waits as
    /// `read` does).
    pub(crate) fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_from_socket(buf, true)
    }

    fn read_from_socket(&mut self, buf: &mut [u8], now: bool) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            let n = receive(&mut self.socket, buf, now)?;
            if !self.first_checked && n > 0 {
                self.first_checked = true;
                if looks_like_tls(buf.get(..n).unwrap_or_default()) {
                    return Err(invalid(
                        "the peer speaks TLS on a plaintext connection".to_owned(),
                    ));
                }
            }
            return Ok(n);
        };
        if self.plain_start >= self.plain.len() {
            self.plain.clear();
            self.plain_start = 0;
            let n = receive(&mut self.socket, &mut self.raw, now)?;
            if n == 0 {
                return Ok(0);
            }
            let mut conn = tls.lock();
            let input = self.raw.get(..n).unwrap_or_default();
            let fed = feed(&mut conn, input, &mut self.plain);
            // Answers rustls owes the peer (an alert on error, key updates).
            let flushed = flush_tls(&mut conn, &mut self.socket);
            drop(conn);
            let closed = fed?;
            flushed?;
            if self.plain.is_empty() {
                return if closed {
                    Ok(0)
                } else {
                    Err(ErrorKind::WouldBlock.into())
                };
            }
        }
        let pending = self.plain.get(self.plain_start..).unwrap_or_default();
        let n = pending.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), pending.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.plain_start += n;
        Ok(n)
    }

    /// Writes `bytes` (encrypted with TLS) to the socket.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(tls) = &self.tls else {
            return self.socket.write_all(bytes);
        };
        let mut conn = tls.lock();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = conn.writer().write(rest)?;
            flush_tls(&mut conn, &mut self.socket)?;
            if n == 0 {
                return Err(ErrorKind::WriteZero.into());
            }
            rest = rest.get(n..).unwrap_or_default();
        }
        Ok(())
    }

    /// A second handle on the same connection, for the writer thread.
    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            socket: self.socket.try_clone()?,
            tls: self.tls.clone(),
            raw: Vec::new(),
            plain: Vec::new(),
            plain_start: 0,
            first_checked: true,
        })
    }

    /// Flushes what is written, ends the TLS session (close_notify) and shuts
    /// the socket down.
    pub(crate) fn shutdown(&mut self) {
        if let Some(tls) = &self.tls {
            let mut conn = tls.lock();
            conn.send_close_notify();
            let _ = flush_tls(&mut conn, &mut self.socket);
        }
        let _ = self.socket.flush();
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// Shuts the socket down at once (ends the reader too), without a
    /// close_notify: for a failed write.
    pub(crate) fn abort(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_tls;

    #[test]
    fn tls_records_are_told_from_fix() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        assert!(looks_like_tls(&[0x15, 0x03, 0x03, 0x00, 0x02]));
        assert!(!looks_like_tls(b"8=FIX.4.4\x019=5\x01"));
        assert!(!looks_like_tls(&[0x16]));
    }
}
