//! The order journal: the order manager's inputs in a file that survives a
//! restart, replayed at start through the same [`nexus_oms::OrderManager`] code.
//!
//! `<dir>/orders.journal` holds an 8-byte header (`NXORDJ01`), then records,
//! each `u32 LE payload length | u32 LE CRC-32 of the payload | payload`, the
//! payload the JSON of one [`Entry`]: an order as the manager accepted or
//! refused it (with its venue and time in force), a cancel or replace request,
//! an applied execution report, the kill switch. A record is written (to the
//! operating system: it survives the process, not a power cut) before the
//! message it stands for leaves.
//!
//! Growth is bounded: once the records after the last snapshot exceed
//! [`super::ExecutionConfig::journal_compact_bytes`] (or the snapshot's own
//! size, whichever is larger), a compaction starts on a thread of its own: it
//! reads the journal up to that point, replays it into a fresh order manager
//! (as a restart would), and writes the state as one snapshot record to a new
//! file, synced. Orders go on meanwhile; the next record after it has finished
//! copies the records written since into the new file and renames it over the
//! journal. Nothing of it runs under the engine's lock but that last copy and
//! rename.
//!
//! A torn last record (a crash in mid-write: too short, or a checksum that does
//! not match) is reported in [`JournalStatus::notes`] with its reason and cut
//! off. Anything else that does not read or replay (a bad header, a bad record
//! followed by more, a record that does not fit the state) refuses the start
//! with [`JournalError::Corrupt`], which names the file and the offset: the
//! documented recovery is to move the file aside, which starts with no orders.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use nexus_oms::{
    ExecKind, ExecutionReport, ManagerError, ManagerState, Order, OrderManager, OrderStatus,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{Book, ExecType, ExecutionError, ReportRecord, TimeInForce};

/// Name of the journal file in its folder.
pub const FILE_NAME: &str = "orders.journal";
const MAGIC: &[u8; 8] = b"NXORDJ01";
/// Largest record length taken for a torn tail rather than corruption.
const MAX_RECORD: u32 = 1 << 30;
/// Most notes kept in [`JournalStatus::notes`].
const MAX_NOTES: usize = 100;

/// Why the order journal failed.
#[derive(Debug, Error)]
pub enum JournalError {
    /// An I/O error on the journal's files.
    #[error("order journal I/O error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The journal does not read or replay.
    #[error(
        "order journal {path} is corrupt at byte {offset}: {detail} (to start without \
         the orders it holds, move the file aside)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A record could not be encoded (a bug).
    #[error("order journal record cannot be encoded: {0}")]
    Encode(String),
    /// An earlier write failed and could not be undone: nothing more is written.
    #[error("order journal {path} is unavailable since a failed write: {detail}")]
    Unavailable {
        /// The file.
        path: PathBuf,
        /// The failure.
        detail: String,
    },
}

/// What the order journal has done, for monitoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalStatus {
    /// The journal file.
    pub path: PathBuf,
    /// Its size, bytes.
    pub bytes: u64,
    /// Records replayed at start.
    pub replayed: u64,
    /// Records written since the start.
    pub written: u64,
    /// Compactions since the start.
    pub compactions: u64,
    /// Writes that failed (the request was refused, or the report kept in
    /// memory only).
    pub write_errors: u64,
    /// What was recovered or could not be done, with why (a torn last record,
    /// an order of a venue no longer configured, a failed compaction).
    pub notes: Vec<String>,
    /// OrderStatusRequests sent to reconcile restored open orders.
    pub status_requests: u64,
    /// Order status answers applied.
    pub status_answers: u64,
    /// Restored open orders not answered for yet.
    pub unreconciled: u64,
}

/// Time in force, as the journal spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Tif {
    Day,
    Gtc,
    Ioc,
    Fok,
}

impl From<TimeInForce> for Tif {
    fn from(t: TimeInForce) -> Self {
        match t {
            TimeInForce::Day => Self::Day,
            TimeInForce::Gtc => Self::Gtc,
            TimeInForce::Ioc => Self::Ioc,
            TimeInForce::Fok => Self::Fok,
        }
    }
}

impl From<Tif> for TimeInForce {
    fn from(t: Tif) -> Self {
        match t {
            Tif::Day => Self::Day,
            Tif::Gtc => Self::Gtc,
            Tif::Ioc => Self::Ioc,
            Tif::Fok => Self::Fok,
        }
    }
}

/// The state at one point: what a compaction writes first.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Snapshot {
    state: ManagerState,
    /// Venue name and time in force of every order, by id.
    routes: Vec<(u64, String, Tif)>,
    /// Orders routed to each venue, by name.
    routed: Vec<(String, u64)>,
    /// Sequence number the next logged report gets.
    next_sequence: u64,
}

/// One record of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Entry {
    Snapshot(Box<Snapshot>),
    Submit {
        order: Order,
        venue: String,
        tif: Tif,
    },
    Cancel {
        order_id: u64,
        client_order_id: String,
    },
    Replace {
        order_id: u64,
        client_order_id: String,
        quantity: i64,
        limit_price: Option<i64>,
    },
    Report {
        report: ExecutionReport,
        exec_type: String,
        last_quantity: i64,
        last_price: Option<i64>,
        commission: Option<i64>,
        venue: String,
    },
    KillSwitch {
        engaged: bool,
    },
}

fn exec_type(name: &str) -> Option<ExecType> {
    [
        ExecType::New,
        ExecType::Trade,
        ExecType::Canceled,
        ExecType::Replaced,
        ExecType::Rejected,
        ExecType::Expired,
        ExecType::CancelRejected,
    ]
    .into_iter()
    .find(|t| t.name() == name)
}

/// Makes an empty order manager with the engine's risk limits, for a
/// compaction to replay the journal into.
#[derive(Clone)]
pub(super) struct FreshManager(pub(super) Arc<dyn Fn() -> OrderManager + Send + Sync>);

impl fmt::Debug for FreshManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FreshManager")
    }
}

/// A compaction running on its own thread.
#[derive(Debug)]
struct Compacting {
    /// The journal's length when it started: the snapshot holds the state the
    /// records up to here replay to.
    cut: u64,
    /// The new file's length (header and snapshot), or why there is none.
    done: Receiver<Result<u64, JournalError>>,
}

/// The open journal file.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    len: u64,
    /// Bytes up to the end of the snapshot record (the header when none).
    snapshot_len: u64,
    compact_bytes: u64,
    venues: Vec<String>,
    broken: Option<String>,
    status: JournalStatus,
    fresh: FreshManager,
    compacting: Option<Compacting>,
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

fn frame(entry: &Entry) -> Result<Vec<u8>, JournalError> {
    let payload = serde_json::to_vec(entry).map_err(|e| JournalError::Encode(e.to_string()))?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&n| n <= MAX_RECORD)
        .ok_or_else(|| JournalError::Encode(format!("{} bytes", payload.len())))?;
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The records of a journal's bytes, each with its offset; the length of the
/// good part; the end of a leading snapshot. A torn tail is noted and left out.
type Parsed = (Vec<(u64, Entry)>, usize, usize);

fn parse(path: &Path, bytes: &[u8], notes: &mut Vec<String>) -> Result<Parsed, JournalError> {
    let corrupt = |offset: usize, detail: String| JournalError::Corrupt {
        path: path.to_owned(),
        offset: offset as u64,
        detail,
    };
    if bytes.len() < MAGIC.len() {
        if MAGIC.starts_with(bytes) {
            if !bytes.is_empty() {
                notes.push(format!(
                    "a torn header of {} bytes was cut off",
                    bytes.len()
                ));
            }
            return Ok((Vec::new(), 0, 0));
        }
        return Err(corrupt(0, "not an order journal (bad header)".into()));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(0, "not an order journal (bad header)".into()));
    }
    let mut entries = Vec::new();
    let mut offset = MAGIC.len();
    let mut snapshot_end = MAGIC.len();
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let torn = |why: String, notes: &mut Vec<String>| {
            notes.push(format!(
                "the last record (at byte {offset}, {} bytes) was torn and is skipped: {why}",
                rest.len()
            ));
        };
        let Some((len, crc)) = rest
            .get(..8)
            .map(|h| (read_u32(&h[..4]), read_u32(&h[4..])))
        else {
            torn("an incomplete record header".into(), notes);
            break;
        };
        if len > MAX_RECORD {
            return Err(corrupt(offset, format!("a record length of {len} bytes")));
        }
        let end = 8 + len as usize;
        let Some(payload) = rest.get(8..end) else {
            torn(
                format!("{} of its {len} bytes are there", rest.len() - 8),
                notes,
            );
            break;
        };
        if crc32fast::hash(payload) != crc {
            if end == rest.len() {
                torn("its checksum does not match".into(), notes);
                break;
            }
            return Err(corrupt(
                offset,
                "checksum mismatch before the last record".into(),
            ));
        }
        let entry: Entry = serde_json::from_slice(payload)
            .map_err(|e| corrupt(offset, format!("unreadable record: {e}")))?;
        if matches!(entry, Entry::Snapshot(_)) {
            if !entries.is_empty() {
                return Err(corrupt(offset, "a snapshot after other records".into()));
            }
            snapshot_end = offset + end;
        }
        entries.push((offset as u64, entry));
        offset += end;
    }
    Ok((entries, offset, snapshot_end))
}

fn read_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

impl Journal {
    /// Opens (or creates) the journal in `dir`; returns it and its records.
    fn open(
        dir: &Path,
        compact_bytes: u64,
        venues: &[String],
        fresh: FreshManager,
    ) -> Result<(Self, Vec<(u64, Entry)>), JournalError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join(FILE_NAME);
        // What a compaction interrupted by a stop left: the journal is whole.
        let _ = fs::remove_file(tmp_path(&path));
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error(&path))?;
        let mut notes = Vec::new();
        let (entries, good, snapshot_end) = parse(&path, &bytes, &mut notes)?;
        if good < bytes.len() {
            file.set_len(good as u64).map_err(io_error(&path))?;
        }
        let mut len = good as u64;
        if good == 0 {
            file.write_all(MAGIC).map_err(io_error(&path))?;
            len = MAGIC.len() as u64;
        }
        for note in &notes {
            log::warn!("order journal {}: {note}", path.display());
        }
        let journal = Self {
            file,
            len,
            snapshot_len: (snapshot_end as u64).max(MAGIC.len() as u64),
            compact_bytes,
            venues: venues.to_vec(),
            broken: None,
            status: JournalStatus {
                path,
                bytes: len,
                replayed: entries.len() as u64,
                notes,
                ..JournalStatus::default()
            },
            fresh,
            compacting: None,
        };
        Ok((journal, entries))
    }

    fn path(&self) -> &Path {
        &self.status.path
    }

    fn note(&mut self, note: String) {
        log::warn!("order journal {}: {note}", self.path().display());
        if self.status.notes.len() >= MAX_NOTES {
            self.status.notes.remove(0);
        }
        self.status.notes.push(note);
    }

    fn append(&mut self, entry: &Entry) -> Result<(), JournalError> {
        if let Some(detail) = &self.broken {
            self.status.write_errors += 1;
            return Err(JournalError::Unavailable {
                path: self.path().to_owned(),
                detail: detail.clone(),
            });
        }
        let frame = frame(entry).inspect_err(|_| self.status.write_errors += 1)?;
        if let Err(source) = self.file.write_all(&frame) {
            self.status.write_errors += 1;
            // Cut a partial record off, so that later ones stay readable.
            if let Err(e) = self.file.set_len(self.len) {
                self.broken = Some(format!("{source}; then cutting it off: {e}"));
            }
            return Err(JournalError::Io {
                path: self.path().to_owned(),
                source,
            });
        }
        self.len += frame.len() as u64;
        self.status.bytes = self.len;
        self.status.written += 1;
        Ok(())
    }

    fn needs_compaction(&self) -> bool {
        let since = self.len.saturating_sub(self.snapshot_len);
        since > self.compact_bytes.max(self.snapshot_len)
    }

    /// Starts a compaction on a thread of its own, unless one runs.
    fn start_compaction(&mut self) {
        if self.compacting.is_some() {
            return;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let path = self.path().to_owned();
        let cut = self.len;
        let venues = self.venues.clone();
        let fresh = self.fresh.clone();
        let spawned = std::thread::Builder::new()
            .name("nexus-journal-compact".into())
            .spawn(move || {
                let _ = tx.send(write_snapshot(&path, cut, &venues, (fresh.0)()));
            });
        match spawned {
            Ok(_) => self.compacting = Some(Compacting { cut, done: rx }),
            Err(e) => self.note(format!("compaction not started, the journal grows on: {e}")),
        }
    }

    /// Finishes a compaction whose snapshot is written: at once when `wait` is
    /// None, else waiting that long for it.
    fn settle_compaction(&mut self, wait: Option<Duration>) {
        let Some(c) = &self.compacting else {
            return;
        };
        // Not finished yet: nothing to do. Otherwise its answer, or Err when
        // its thread is gone without one.
        let answer = match wait {
            None => match c.done.try_recv() {
                Err(TryRecvError::Empty) => return,
                other => other.map_err(drop),
            },
            Some(t) => match c.done.recv_timeout(t) {
                Err(mpsc::RecvTimeoutError::Timeout) => return,
                other => other.map_err(drop),
            },
        };
        let cut = c.cut;
        let result = match answer {
            Err(()) => Err("its thread ended without an answer".to_owned()),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(snapshot_len)) => self
                .switch_to_snapshot(cut, snapshot_len)
                .map_err(|e| e.to_string()),
        };
        self.compacting = None;
        if let Err(e) = result {
            // The journal as it is stays valid: no record is lost.
            self.note(format!("compaction failed, the journal grows on: {e}"));
        }
    }

    /// Copies the records written since `cut` after the snapshot in the new
    /// file (`snapshot_len` bytes so far) and renames it over the journal.
    fn switch_to_snapshot(&mut self, cut: u64, snapshot_len: u64) -> Result<(), JournalError> {
        let path = self.path().to_owned();
        let tmp = tmp_path(&path);
        let tail_len = self.len.saturating_sub(cut);
        let mut tail = vec![0; usize::try_from(tail_len).unwrap_or(usize::MAX)];
        self.file
            .seek(SeekFrom::Start(cut))
            .and_then(|_| self.file.read_exact(&mut tail))
            .map_err(io_error(&path))?;
        // Opened before the rename: once renamed, it is the journal, and no
        // later open can fail and leave appends going to the old file.
        let mut new = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&tmp)
            .map_err(io_error(&tmp))?;
        let written = new.seek(SeekFrom::End(0)).map_err(io_error(&tmp))?;
        if written != snapshot_len {
            return Err(JournalError::Io {
                path: tmp,
                source: io::Error::other(format!(
                    "{written} bytes where the snapshot wrote {snapshot_len}"
                )),
            });
        }
        new.write_all(&tail).map_err(io_error(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_error(&path))?;
        self.file = new;
        self.len = snapshot_len + tail_len;
        self.snapshot_len = snapshot_len;
        self.status.bytes = self.len;
        self.status.compactions += 1;
        self.broken = None;
        if let Some(dir) = path.parent().map(Path::to_owned) {
            // Makes the rename durable where the platform allows it, off this
            // path (the records themselves are not synced either).
            let _ = std::thread::Builder::new()
                .name("nexus-journal-sync".into())
                .spawn(move || {
                    if let Ok(d) = File::open(dir) {
                        let _ = d.sync_all();
                    }
                });
        }
        Ok(())
    }
}

/// Where a compaction writes the new journal before renaming it.
fn tmp_path(path: &Path) -> PathBuf {
    path.with_extension("journal.tmp")
}

/// A compaction's own work, off the engine's lock: replays the journal at
/// `path` up to `cut` into `oms` (an empty manager) and writes the state as
/// one snapshot record to a new file beside it, synced; returns its length.
fn write_snapshot(
    path: &Path,
    cut: u64,
    venues: &[String],
    oms: OrderManager,
) -> Result<u64, JournalError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(cut).read_to_end(&mut bytes))
        .map_err(io_error(path))?;
    let mut notes = Vec::new();
    let (entries, good, _) = parse(path, &bytes, &mut notes)?;
    if good as u64 != cut {
        return Err(JournalError::Corrupt {
            path: path.to_owned(),
            offset: good as u64,
            detail: format!("{cut} bytes were expected to read whole, {good} did"),
        });
    }
    let mut book = Book::new(oms, &[]);
    book.routed = vec![0; venues.len()];
    for (offset, entry) in entries {
        replay(&mut book, entry, venues, &mut notes).map_err(|detail| JournalError::Corrupt {
            path: path.to_owned(),
            offset,
            detail: format!("cannot replay: {detail}"),
        })?;
    }
    let frame = frame(&snapshot(&book, venues))?;
    let tmp = tmp_path(path);
    let mut f = File::create(&tmp).map_err(io_error(&tmp))?;
    f.write_all(MAGIC).map_err(io_error(&tmp))?;
    f.write_all(&frame).map_err(io_error(&tmp))?;
    f.sync_all().map_err(io_error(&tmp))?;
    Ok((MAGIC.len() + frame.len()) as u64)
}

fn venue_name(venues: &[String], book: &Book, order_id: u64) -> String {
    book.venue_of
        .get(&order_id)
        .and_then(|&i| venues.get(i))
        .cloned()
        .unwrap_or_default()
}

fn snapshot(book: &Book, venues: &[String]) -> Entry {
    let mut routes: Vec<(u64, String, Tif)> = book
        .venue_of
        .keys()
        .map(|&id| {
            let tif = book.tifs.get(&id).copied().unwrap_or_default();
            (id, venue_name(venues, book, id), tif.into())
        })
        .collect();
    routes.sort_by_key(|r| r.0);
    Entry::Snapshot(Box::new(Snapshot {
        state: book.oms.state(),
        routes,
        routed: venues
            .iter()
            .cloned()
            .zip(book.routed.iter().copied())
            .collect(),
        next_sequence: book.next_sequence,
    }))
}

/// Opens the journal in `dir` and replays it into `book` (an empty one); the
/// open orders are then the ones to reconcile with their venues.
///
/// # Errors
/// [`ExecutionError::Journal`] when the journal cannot be opened, read or
/// replayed.
pub(super) fn open(
    book: &mut Book,
    dir: &Path,
    compact_bytes: u64,
    venues: &[String],
    fresh: FreshManager,
) -> Result<(), ExecutionError> {
    let (mut journal, entries) = Journal::open(dir, compact_bytes, venues, fresh)?;
    let path = journal.path().to_owned();
    let mut notes = Vec::new();
    for (offset, entry) in entries {
        replay(book, entry, venues, &mut notes).map_err(|detail| JournalError::Corrupt {
            path: path.clone(),
            offset,
            detail: format!("cannot replay: {detail}"),
        })?;
    }
    for note in notes {
        journal.note(note);
    }
    book.journal = Some(journal);
    super::reconcile::restored(book);
    Ok(())
}

fn route(book: &mut Book, order_id: u64, venue: &str, venues: &[String], notes: &mut Vec<String>) {
    match venues.iter().position(|v| v == venue) {
        Some(i) => {
            book.venue_of.insert(order_id, i);
        }
        None => notes.push(format!(
            "order {order_id} went to venue {venue:?}, which is no longer configured: \
             it cannot be changed or reconciled"
        )),
    }
}

fn replay(
    book: &mut Book,
    entry: Entry,
    venues: &[String],
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let manager = |e: ManagerError| e.to_string();
    match entry {
        Entry::Snapshot(s) => {
            let s = *s;
            book.oms.restore_state(s.state).map_err(manager)?;
            book.tifs.clear();
            book.venue_of.clear();
            for (id, venue, tif) in s.routes {
                book.tifs.insert(id, tif.into());
                route(book, id, &venue, venues, notes);
            }
            let routed: HashMap<String, u64> = s.routed.into_iter().collect();
            for (i, name) in venues.iter().enumerate() {
                book.routed[i] = routed.get(name).copied().unwrap_or(0);
            }
            book.log.clear();
            book.next_sequence = s.next_sequence.max(1);
        }
        Entry::Submit { order, venue, tif } => {
            let id = order.order_id;
            let sent = order.status == OrderStatus::PendingNew;
            book.oms.restore_order(order).map_err(manager)?;
            book.tifs.insert(id, tif.into());
            route(book, id, &venue, venues, notes);
            if let (true, Some(&i)) = (sent, book.venue_of.get(&id)) {
                book.routed[i] += 1;
            }
        }
        Entry::Cancel {
            order_id,
            client_order_id,
        } => {
            book.oms
                .cancel(order_id, &client_order_id)
                .map_err(manager)?;
        }
        Entry::Replace {
            order_id,
            client_order_id,
            quantity,
            limit_price,
        } => {
            book.oms
                .replace(order_id, &client_order_id, quantity, limit_price)
                .map_err(manager)?;
        }
        Entry::Report {
            report,
            exec_type: name,
            last_quantity,
            last_price,
            commission,
            venue,
        } => {
            let exec_type =
                exec_type(&name).ok_or_else(|| format!("unknown exec type {name:?}"))?;
            book.oms.on_execution_report(&report).map_err(manager)?;
            let order = book
                .oms
                .order_by_client_id(&report.client_order_id)
                .cloned()
                .ok_or_else(|| format!("no order {}", report.client_order_id))?;
            book.push(ReportRecord {
                sequence: 0,
                exec_id: report.exec_id,
                exec_type,
                order,
                last_quantity,
                last_price,
                commission,
                venue,
            });
        }
        Entry::KillSwitch { engaged } => {
            book.oms.set_kill_switch(engaged);
        }
    }
    Ok(())
}

/// Appends `entry`; then finishes a compaction whose snapshot is written, or
/// starts one when the journal has grown enough. Does nothing without a
/// journal.
fn record(book: &mut Book, entry: &Entry) -> Result<(), JournalError> {
    let Some(journal) = book.journal.as_mut() else {
        return Ok(());
    };
    journal.append(entry)?;
    if journal.compacting.is_some() {
        journal.settle_compaction(None);
    } else if journal.needs_compaction() {
        journal.start_compaction();
    }
    Ok(())
}

/// At a stop: waits up to `wait` for a running compaction and finishes it.
pub(super) fn settle(book: &mut Book, wait: Duration) {
    if let Some(journal) = book.journal.as_mut() {
        journal.settle_compaction(Some(wait));
    }
}

/// Journals an order the manager just accepted or refused, before it is sent.
/// When that fails, an accepted order is refused with the reason (it is never
/// sent) and the error returned.
///
/// # Errors
/// [`ExecutionError::Journal`] when the record cannot be written.
pub(super) fn record_submit(
    book: &mut Book,
    order: &Order,
    venue: usize,
    tif: TimeInForce,
) -> Result<(), ExecutionError> {
    let Some(journal) = book.journal.as_ref() else {
        return Ok(());
    };
    let entry = Entry::Submit {
        order: order.clone(),
        venue: journal.venues.get(venue).cloned().unwrap_or_default(),
        tif: tif.into(),
    };
    record(book, &entry).map_err(|e| {
        let refusal = ExecutionReport {
            client_order_id: order.client_order_id().to_owned(),
            exec_id: format!("JOURNAL-{}", order.order_id),
            kind: ExecKind::Rejected(format!("not sent: {e}")),
        };
        let _ = book.oms.on_execution_report(&refusal);
        e.into()
    })
}

/// Journals a cancel (`replace` None) or replace request the manager just
/// recorded, before it is sent. When that fails, the change is dropped again
/// (as if the venue had refused it) and the error returned.
///
/// # Errors
/// [`ExecutionError::Journal`] when the record cannot be written.
pub(super) fn record_change(
    book: &mut Book,
    order_id: u64,
    client_order_id: &str,
    replace: Option<(i64, Option<i64>)>,
) -> Result<(), ExecutionError> {
    let entry = match replace {
        None => Entry::Cancel {
            order_id,
            client_order_id: client_order_id.to_owned(),
        },
        Some((quantity, limit_price)) => Entry::Replace {
            order_id,
            client_order_id: client_order_id.to_owned(),
            quantity,
            limit_price,
        },
    };
    record(book, &entry).map_err(|e| {
        let refusal = ExecutionReport {
            client_order_id: client_order_id.to_owned(),
            exec_id: format!("JOURNAL-{client_order_id}"),
            kind: ExecKind::CancelRejected(format!("not sent: {e}")),
        };
        let _ = book.oms.on_execution_report(&refusal);
        e.into()
    })
}

/// Journals the kill switch. A failure is counted and noted, never blocking:
/// the switch and its cancels take effect in any case.
pub(super) fn record_kill_switch(book: &mut Book, engaged: bool) {
    if let Err(e) = record(book, &Entry::KillSwitch { engaged }) {
        note(book, format!("kill switch {engaged} not journaled: {e}"));
    }
}

/// Journals a cancel sent by the kill switch; a failure is noted, and the
/// cancel goes out anyway (after a restart, the venue's order status settles it).
pub(super) fn record_kill_cancel(book: &mut Book, order_id: u64, client_order_id: &str) {
    let entry = Entry::Cancel {
        order_id,
        client_order_id: client_order_id.to_owned(),
    };
    if let Err(e) = record(book, &entry) {
        note(
            book,
            format!("kill-switch cancel of order {order_id} not journaled: {e}"),
        );
    }
}

/// Journals a report just applied to the manager. A failure is counted and
/// noted: the report stays applied in memory, and after a restart the venue's
/// order status restores what it changed.
pub(super) fn record_report(
    book: &mut Book,
    report: &ExecutionReport,
    exec_type: ExecType,
    last: (i64, Option<i64>, Option<i64>),
    venue: &str,
) {
    if book.journal.is_none() {
        return;
    }
    let entry = Entry::Report {
        report: report.clone(),
        exec_type: exec_type.name().to_owned(),
        last_quantity: last.0,
        last_price: last.1,
        commission: last.2,
        venue: venue.to_owned(),
    };
    if let Err(e) = record(book, &entry) {
        note(
            book,
            format!("report {} not journaled: {e}", report.exec_id),
        );
    }
}

fn note(book: &mut Book, note: String) {
    if let Some(journal) = book.journal.as_mut() {
        journal.note(note);
    }
}

/// The journal's status, None without one.
pub(super) fn status(book: &Book) -> Option<JournalStatus> {
    book.journal.as_ref().map(|j| j.status.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_oms::RiskLimits;

    fn fresh() -> FreshManager {
        FreshManager(Arc::new(|| OrderManager::new(RiskLimits::default())))
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nexus-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn torn_tails_are_cut_and_corruption_refused() {
        let dir = temp("torn");
        let venues = vec!["PAPER".to_owned()];
        let (mut j, entries) = Journal::open(&dir, 1 << 20, &venues, fresh()).unwrap();
        assert!(entries.is_empty());
        for engaged in [true, false, true] {
            j.append(&Entry::KillSwitch { engaged }).unwrap();
        }
        drop(j);
        let path = dir.join(FILE_NAME);
        let full = fs::read(&path).unwrap();
        let third = full.len() - frame(&Entry::KillSwitch { engaged: true }).unwrap().len();

        // Every cut inside the last record: the first two are kept, the tail
        // reported with why and cut off, and appends go on after it.
        for cut in [third + 3, third + 8, full.len() - 1] {
            fs::write(&path, &full[..cut]).unwrap();
            let (mut j, entries) = Journal::open(&dir, 1 << 20, &venues, fresh()).unwrap();
            assert_eq!(entries.len(), 2, "cut at {cut}");
            assert_eq!(j.status.notes.len(), 1);
            assert!(j.status.notes[0].contains("torn"), "{:?}", j.status.notes);
            assert_eq!(fs::metadata(&path).unwrap().len(), third as u64);
            j.append(&Entry::KillSwitch { engaged: false }).unwrap();
            drop(j);
            let (_, entries) = Journal::open(&dir, 1 << 20, &venues, fresh()).unwrap();
            assert_eq!(entries.len(), 3);
        }
        // A flipped byte in the last record: torn. In an earlier one: corrupt.
        let mut bad = full.clone();
        *bad.last_mut().unwrap() ^= 1;
        fs::write(&path, &bad).unwrap();
        let (j, entries) = Journal::open(&dir, 1 << 20, &venues, fresh()).unwrap();
        assert_eq!((entries.len(), j.status.notes.len()), (2, 1));
        drop(j);
        let mut bad = full.clone();
        bad[MAGIC.len() + 9] ^= 1;
        fs::write(&path, &bad).unwrap();
        let err = Journal::open(&dir, 1 << 20, &venues, fresh()).unwrap_err();
        assert!(
            matches!(&err, JournalError::Corrupt { offset: 8, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("move the file aside"));
        fs::write(&path, b"something else entirely").unwrap();
        assert!(matches!(
            Journal::open(&dir, 1 << 20, &venues, fresh()),
            Err(JournalError::Corrupt { offset: 0, .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    fn book() -> Book {
        let mut book = Book::new((fresh().0)(), &[]);
        book.routed = vec![0];
        book
    }

    #[allow(clippy::unwrap_used)]
    fn submit(book: &mut Book, i: usize) {
        let order = book
            .oms
            .submit(nexus_oms::NewOrder {
                client_order_id: format!("K{i}"),
                instrument: "EUR/USD".into(),
                side: nexus_oms::Side::Buy,
                order_type: nexus_oms::OrderType::Limit,
                quantity: 1 + i as i64 % 7,
                limit_price: Some(10_000),
                now_ns: i as i64,
            })
            .unwrap()
            .clone();
        book.tifs.insert(order.order_id, TimeInForce::Day);
        book.venue_of.insert(order.order_id, 0);
        book.routed[0] += 1;
        record_submit(book, &order, 0, TimeInForce::Day).unwrap();
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn compaction_runs_beside_the_records_and_loses_none() {
        let dir = temp("beside");
        let venues = vec!["PAPER".to_owned()];
        let mut live = book();
        // Never compacts by itself: the test starts the one compaction.
        open(&mut live, &dir, u64::MAX / 2, &venues, fresh()).unwrap();
        for i in 0..300 {
            submit(&mut live, i);
        }
        let before = status(&live).unwrap().bytes;
        live.journal.as_mut().unwrap().start_compaction();
        // Records written while it runs: the first after its end finishes it,
        // whichever it is, and each one lands after the snapshot.
        let more = 40;
        for i in 300..300 + more {
            submit(&mut live, i);
        }
        live.oms.set_kill_switch(true);
        record_kill_switch(&mut live, true);
        settle(&mut live, Duration::from_secs(30));
        let s = status(&live).unwrap();
        assert_eq!(s.compactions, 1, "{s:?}");
        assert!(s.notes.is_empty(), "{:?}", s.notes);
        assert!(!tmp_path(&s.path).exists());
        assert_eq!(s.bytes, fs::metadata(&s.path).unwrap().len());
        let state = live.oms.state();
        drop(live);

        let mut again = book();
        open(&mut again, &dir, u64::MAX / 2, &venues, fresh()).unwrap();
        let s = status(&again).unwrap();
        // The snapshot, then every record written after the compaction began.
        assert_eq!(s.replayed, 1 + more as u64 + 1, "{s:?}");
        assert!(
            again.oms.state() == state,
            "the state differs after a restart"
        );
        assert_eq!(again.routed, vec![300 + more as u64]);
        assert!(again.oms.state().kill_switch);
        // Records go on after the switch: appends to the renamed file.
        again.oms.set_kill_switch(false);
        record_kill_switch(&mut again, false);
        submit(&mut again, 1_000);
        let grown = status(&again).unwrap().bytes;
        assert_eq!(grown, fs::metadata(&s.path).unwrap().len());
        let state = again.oms.state();
        drop(again);
        let mut third = book();
        open(&mut third, &dir, u64::MAX / 2, &venues, fresh()).unwrap();
        assert!(
            third.oms.state() == state,
            "the state differs after a restart"
        );
        assert!(before > 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_failed_compaction_leaves_the_journal_whole() {
        let dir = temp("failed");
        let venues = vec!["PAPER".to_owned()];
        let mut live = book();
        open(&mut live, &dir, u64::MAX / 2, &venues, fresh()).unwrap();
        for i in 0..20 {
            submit(&mut live, i);
        }
        // The snapshot cannot be written: its file's name is a folder.
        let path = status(&live).unwrap().path;
        fs::create_dir_all(tmp_path(&path).join("in-the-way")).unwrap();
        live.journal.as_mut().unwrap().start_compaction();
        submit(&mut live, 20);
        settle(&mut live, Duration::from_secs(30));
        let s = status(&live).unwrap();
        assert_eq!(s.compactions, 0);
        assert!(
            s.notes.iter().any(|n| n.contains("compaction failed")),
            "{:?}",
            s.notes
        );
        submit(&mut live, 21);
        let state = live.oms.state();
        drop(live);
        fs::remove_dir_all(tmp_path(&path)).unwrap();
        let mut again = book();
        open(&mut again, &dir, u64::MAX / 2, &venues, fresh()).unwrap();
        assert!(
            again.oms.state() == state,
            "the state differs after a restart"
        );
        assert_eq!(status(&again).unwrap().replayed, 22);
        let _ = fs::remove_dir_all(&dir);
    }
}
