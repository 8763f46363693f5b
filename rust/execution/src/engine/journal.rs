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
//! size, whichever is larger), the state is written as one snapshot record to
//! a new file, synced and renamed over the journal.
//!
//! A torn last record (a crash in mid-write: too short, or a checksum that does
//! not match) is reported in [`JournalStatus::notes`] with its reason and cut
//! off. Anything else that does not read or replay (a bad header, a bad record
//! followed by more, a record that does not fit the state) refuses the start
//! with [`JournalError::Corrupt`], which names the file and the offset: the
//! documented recovery is to move the file aside, which starts with no orders.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use nexus_oms::{ExecKind, ExecutionReport, ManagerError, ManagerState, Order, OrderStatus};
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
    ) -> Result<(Self, Vec<(u64, Entry)>), JournalError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join(FILE_NAME);
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

    /// Writes `snapshot` alone to a new file and renames it over the journal.
    fn compact(&mut self, snapshot: &Entry) -> Result<(), JournalError> {
        let path = self.path().to_owned();
        let tmp = path.with_extension("journal.tmp");
        let frame = frame(snapshot)?;
        {
            let mut f = File::create(&tmp).map_err(io_error(&tmp))?;
            f.write_all(MAGIC).map_err(io_error(&tmp))?;
            f.write_all(&frame).map_err(io_error(&tmp))?;
            f.sync_all().map_err(io_error(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_error(&path))?;
        if let Some(dir) = path.parent() {
            // Makes the rename durable where the platform allows it.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        self.len = (MAGIC.len() + frame.len()) as u64;
        self.snapshot_len = self.len;
        self.status.bytes = self.len;
        self.status.compactions += 1;
        self.broken = None;
        Ok(())
    }
}

fn venue_name(journal: &Journal, book: &Book, order_id: u64) -> String {
    book.venue_of
        .get(&order_id)
        .and_then(|&i| journal.venues.get(i))
        .cloned()
        .unwrap_or_default()
}

fn snapshot(book: &Book, journal: &Journal) -> Entry {
    let mut routes: Vec<(u64, String, Tif)> = book
        .venue_of
        .keys()
        .map(|&id| {
            let tif = book.tifs.get(&id).copied().unwrap_or_default();
            (id, venue_name(journal, book, id), tif.into())
        })
        .collect();
    routes.sort_by_key(|r| r.0);
    Entry::Snapshot(Box::new(Snapshot {
        state: book.oms.state(),
        routes,
        routed: journal
            .venues
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
) -> Result<(), ExecutionError> {
    let (mut journal, entries) = Journal::open(dir, compact_bytes, venues)?;
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

/// Appends `entry`, then compacts when the journal has grown enough. Does
/// nothing without a journal.
fn record(book: &mut Book, entry: &Entry) -> Result<(), JournalError> {
    let Some(journal) = book.journal.as_mut() else {
        return Ok(());
    };
    journal.append(entry)?;
    if journal.needs_compaction() {
        let snap = snapshot(
            book,
            book.journal.as_ref().unwrap_or_else(|| unreachable!()),
        );
        if let Some(journal) = book.journal.as_mut() {
            if let Err(e) = journal.compact(&snap) {
                // The journal as it is stays valid: no record is lost.
                journal.note(format!("compaction failed, the journal grows on: {e}"));
            }
        }
    }
    Ok(())
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
        let (mut j, entries) = Journal::open(&dir, 1 << 20, &venues).unwrap();
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
            let (mut j, entries) = Journal::open(&dir, 1 << 20, &venues).unwrap();
            assert_eq!(entries.len(), 2, "cut at {cut}");
            assert_eq!(j.status.notes.len(), 1);
            assert!(j.status.notes[0].contains("torn"), "{:?}", j.status.notes);
            assert_eq!(fs::metadata(&path).unwrap().len(), third as u64);
            j.append(&Entry::KillSwitch { engaged: false }).unwrap();
            drop(j);
            let (_, entries) = Journal::open(&dir, 1 << 20, &venues).unwrap();
            assert_eq!(entries.len(), 3);
        }
        // A flipped byte in the last record: torn. In an earlier one: corrupt.
        let mut bad = full.clone();
        *bad.last_mut().unwrap() ^= 1;
        fs::write(&path, &bad).unwrap();
        let (j, entries) = Journal::open(&dir, 1 << 20, &venues).unwrap();
        assert_eq!((entries.len(), j.status.notes.len()), (2, 1));
        drop(j);
        let mut bad = full.clone();
        bad[MAGIC.len() + 9] ^= 1;
        fs::write(&path, &bad).unwrap();
        let err = Journal::open(&dir, 1 << 20, &venues).unwrap_err();
        assert!(
            matches!(&err, JournalError::Corrupt { offset: 8, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("move the file aside"));
        fs::write(&path, b"something else entirely").unwrap();
        assert!(matches!(
            Journal::open(&dir, 1 << 20, &venues),
            Err(JournalError::Corrupt { offset: 0, .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
