//! Message stores: the sent messages (for resending) and the next sender and target
//! sequence numbers of a session, in memory or in files that survive a restart.
//!
//! [`FileStore`] keeps two files per session in a directory:
//! `<name>.body`, an append-only log of the sent messages (each record is a line
//! `<seq> <length>\n` followed by the message bytes and `\n`), and `<name>.seqnums`,
//! one line `<next sender seq> <next target seq> <creation time> <body offset>\n`
//! (the time in nanoseconds since the epoch, UTC), each number right-aligned in 20
//! columns so that the line always has the same 84 bytes: it is rewritten in place
//! with one write at offset 0 (a temporary file and a rename would cost a file
//! creation each; an 84-byte write within one disk sector is not torn).
//!
//! The next sender sequence number is the larger of the line's and one past the
//! highest MsgSeqNum stored at or after the body offset. So sending a message (save
//! it, then move the sender number one past it) writes the body log only; the line
//! is written when the target number changes, when the sender number is set to
//! anything else (a reset, a SequenceReset: the offset then moves to the end of the
//! log, so that the messages before it no longer count), and at open. A message
//! saved just before a crash counts as sent, so its number is not used twice.
//! Lines of the earlier three- and two-number forms are read too (every stored
//! message counted before them: their writer wrote the line after each one).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// An I/O error on the store's files.
    #[error("message store I/O error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A store file does not have the expected layout.
    #[error("message store file {path} is corrupt: {detail}")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// Entries of one chunk of a [`BySeq`].
const CHUNK: usize = 4096;

/// Values by sequence number, in order, in chunks of [`CHUNK`] entries. Sending
/// stores ever higher numbers: each is a push onto the last chunk, where a map
/// costs a tree insert, and no push moves more than one chunk's entries (one
/// growing `Vec` would copy all of them at each doubling: a stall of the order
/// that crosses it). A number at or below the last one (after a reset of the
/// numbers) is found by binary search and replaced, or inserted in its chunk.
#[derive(Debug, Clone)]
struct BySeq<T> {
    chunks: Vec<Vec<(u64, T)>>,
    /// Entries a new chunk has room for ([`CHUNK`]; fewer in tests).
    chunk: usize,
}

impl<T> Default for BySeq<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            chunk: CHUNK,
        }
    }
}

impl<T> BySeq<T> {
    fn insert(&mut self, seq: u64, value: T) {
        let last = self.chunks.last().and_then(|c| c.last()).map(|e| e.0);
        if last.is_none_or(|last| seq > last) {
            match self.chunks.last_mut() {
                Some(chunk) if chunk.len() < self.chunk => chunk.push((seq, value)),
                _ => {
                    let mut chunk = Vec::with_capacity(self.chunk);
                    chunk.push((seq, value));
                    self.chunks.push(chunk);
                }
            }
            return;
        }
        // The chunk holding `seq`, or where it goes: the last whose first entry
        // is at or below it (the first chunk when none is).
        let at = self
            .chunks
            .partition_point(|c| c.first().is_some_and(|e| e.0 <= seq))
            .saturating_sub(1);
        if let Some(chunk) = self.chunks.get_mut(at) {
            match chunk.binary_search_by_key(&seq, |e| e.0) {
                Ok(i) => {
                    if let Some(entry) = chunk.get_mut(i) {
                        entry.1 = value;
                    }
                }
                Err(i) => chunk.insert(i, (seq, value)),
            }
        }
    }

    /// The entries with `begin <= seq <= end`, in order.
    fn range(&self, begin: u64, end: u64) -> impl Iterator<Item = &(u64, T)> + '_ {
        let first = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|e| e.0 < begin));
        self.chunks
            .get(first..)
            .unwrap_or_default()
            .iter()
            .flatten()
            .skip_while(move |e| e.0 < begin)
            .take_while(move |e| e.0 <= end)
    }

    fn clear(&mut self) {
        self.chunks.clear();
    }
}

/// Storage of a session's sent messages and sequence numbers.
pub trait MessageStore: Send {
    /// The MsgSeqNum of the next message to send.
    fn next_sender_seq(&self) -> u64;
    /// The MsgSeqNum expected on the next received message.
    fn next_target_seq(&self) -> u64;
    /// Sets the next sender sequence number.
    ///
    /// # Errors
    /// [`StoreError`] when it cannot be persisted.
    fn set_next_sender_seq(&mut self, seq: u64) -> Result<(), StoreError>;
    /// Sets the next target sequence number.
    ///
    /// # Errors
    /// [`StoreError`] when it cannot be persisted.
    fn set_next_target_seq(&mut self, seq: u64) -> Result<(), StoreError>;
    /// Saves the encoded message sent with MsgSeqNum `seq`.
    ///
    /// # Errors
    /// [`StoreError`] when it cannot be persisted.
    fn save(&mut self, seq: u64, message: &[u8]) -> Result<(), StoreError>;
    /// Returns the stored messages with `begin <= seq <= end`, in sequence order.
    ///
    /// # Errors
    /// [`StoreError`] when they cannot be read.
    fn get(&mut self, begin: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// When the store was created or last reset (UTC nanoseconds since the epoch):
    /// a session resets its store when a new session period has begun since.
    fn creation_time(&self) -> i64;
    /// Forgets all messages and sets both sequence numbers to 1.
    ///
    /// # Errors
    /// [`StoreError`] when the files cannot be truncated.
    fn reset(&mut self) -> Result<(), StoreError>;
}

/// A store in memory, lost at exit (tests, or sessions reset every day).
#[derive(Debug, Clone)]
pub struct MemoryStore {
    created: i64,
    sender: u64,
    target: u64,
    messages: BySeq<Vec<u8>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// Returns an empty store with both sequence numbers at 1.
    #[must_use]
    pub fn new() -> Self {
        Self {
            created: now_nanos(),
            sender: 1,
            target: 1,
            messages: BySeq::default(),
        }
    }
}

impl MessageStore for MemoryStore {
    fn next_sender_seq(&self) -> u64 {
        self.sender
    }
    fn next_target_seq(&self) -> u64 {
        self.target
    }
    fn set_next_sender_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.sender = seq;
        Ok(())
    }
    fn set_next_target_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.target = seq;
        Ok(())
    }
    fn save(&mut self, seq: u64, message: &[u8]) -> Result<(), StoreError> {
        self.messages.insert(seq, message.to_vec());
        Ok(())
    }
    fn get(&mut self, begin: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if begin > end {
            return Ok(Vec::new());
        }
        Ok(self
            .messages
            .range(begin, end)
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }
    fn creation_time(&self) -> i64 {
        self.created
    }
    fn reset(&mut self) -> Result<(), StoreError> {
        self.created = now_nanos();
        self.sender = 1;
        self.target = 1;
        self.messages.clear();
        Ok(())
    }
}

/// Bytes of the `.seqnums` line: four numbers in 20 columns, three spaces, `\n`.
const SEQNUMS_LINE: u64 = 84;

/// A store in two files that survives a restart (see the module documentation).
#[derive(Debug)]
pub struct FileStore {
    body_path: PathBuf,
    seq_path: PathBuf,
    seq_file: File,
    body: File,
    /// Where the next record of `body` starts (its length).
    body_end: u64,
    /// seq -> (offset of the message bytes, length)
    index: BySeq<(u64, usize)>,
    created: i64,
    sender: u64,
    target: u64,
    /// The sender number in the line on disk.
    line_sender: u64,
    /// The body offset in the line on disk: records from there on count toward
    /// the next sender number.
    body_from: u64,
    /// The highest MsgSeqNum saved at or after `body_from` (0: none).
    max_saved: u64,
    /// Writes of the line (for the tests).
    line_writes: u64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl FileStore {
    /// Opens (creating if needed) the store `name` in `dir`, reading back the sequence
    /// numbers and the index of the stored messages.
    ///
    /// # Errors
    /// [`StoreError`] when the files cannot be created or read, or are corrupt.
    pub fn open(dir: impl AsRef<Path>, name: &str) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let body_path = dir.join(format!("{name}.body"));
        let seq_path = dir.join(format!("{name}.seqnums"));
        let body = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&body_path)
            .map_err(io_err(&body_path))?;
        let seq_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&seq_path)
            .map_err(io_err(&seq_path))?;
        let mut store = Self {
            index: BySeq::default(),
            created: now_nanos(),
            sender: 1,
            target: 1,
            line_sender: 1,
            body_from: 0,
            max_saved: 0,
            line_writes: 0,
            body,
            body_end: 0,
            body_path,
            seq_file,
            seq_path,
        };
        store.load()?;
        Ok(store)
    }

    fn corrupt(path: &Path, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    fn load(&mut self) -> Result<(), StoreError> {
        let mut text = String::new();
        (&self.seq_file)
            .read_to_string(&mut text)
            .map_err(io_err(&self.seq_path))?;
        // The offset from which stored messages count toward the sender number:
        // all of them for a new line (or one left empty by a crash before its
        // first write); None for a line of an earlier form (all of them are
        // counted in it).
        let mut body_from = Some(0);
        if !text.trim().is_empty() {
            let nums: Vec<i64> = text
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            let seq = |n: i64| u64::try_from(n).unwrap_or(1);
            let (sender, target) = match nums.as_slice() {
                [sender, target, rest @ ..] if rest.len() <= 2 => (seq(*sender), seq(*target)),
                _ => {
                    return Err(Self::corrupt(
                        &self.seq_path,
                        "expected two to four numbers",
                    ))
                }
            };
            self.sender = sender;
            self.target = target;
            if let Some(created) = nums.get(2) {
                self.created = *created;
            }
            body_from = nums.get(3).map(|&n| u64::try_from(n).unwrap_or(0));
        }
        let path = self.body_path.clone();
        self.body.seek(SeekFrom::Start(0)).map_err(io_err(&path))?;
        let mut reader = BufReader::new(&self.body);
        let mut offset = 0u64;
        let mut header = String::new();
        let mut max_counted = 0;
        loop {
            header.clear();
            let n = reader.read_line(&mut header).map_err(io_err(&path))?;
            if n == 0 {
                break;
            }
            let mut parts = header.split_whitespace();
            let (Some(seq), Some(len)) = (
                parts.next().and_then(|s| s.parse::<u64>().ok()),
                parts.next().and_then(|s| s.parse::<usize>().ok()),
            ) else {
                // A torn last record (crash while appending) ends the log.
                break;
            };
            let start = offset + n as u64;
            let mut skip = vec![0u8; len + 1];
            if reader.read_exact(&mut skip).is_err() {
                break;
            }
            if body_from.is_some_and(|from| offset >= from) {
                max_counted = max_counted.max(seq);
            }
            self.index.insert(seq, (start, len));
            offset = start + len as u64 + 1;
        }
        drop(reader);
        // Cut a torn last record so that later appends stay readable.
        let file_len = self.body.metadata().map_err(io_err(&path))?.len();
        if file_len > offset {
            self.body.set_len(offset).map_err(io_err(&path))?;
        }
        self.body_end = offset;
        if max_counted > 0 {
            self.sender = self.sender.max(max_counted + 1);
        }
        // Rewritten at the fixed width with the numbers as found, counting from
        // the end of the log; whatever followed a hand-edited line is cut.
        self.body_from = offset;
        self.max_saved = 0;
        self.write_seqnums()?;
        self.seq_file
            .set_len(SEQNUMS_LINE)
            .map_err(io_err(&self.seq_path))?;
        Ok(())
    }

    fn write_seqnums(&mut self) -> Result<(), StoreError> {
        let text = format!(
            "{:>20} {:>20} {:>20} {:>20}\n",
            self.sender, self.target, self.created, self.body_from
        );
        self.seq_file
            .write_all_at(text.as_bytes(), 0)
            .map_err(io_err(&self.seq_path))?;
        self.line_sender = self.sender;
        self.line_writes += 1;
        Ok(())
    }

    /// The next sender number a reopening would read.
    fn derived_sender(&self) -> u64 {
        self.line_sender.max(self.max_saved + 1)
    }
}

impl MessageStore for FileStore {
    fn next_sender_seq(&self) -> u64 {
        self.sender
    }
    fn next_target_seq(&self) -> u64 {
        self.target
    }
    fn set_next_sender_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.sender = seq;
        if seq == self.derived_sender() {
            // One past the message just saved: the log already says so.
            return Ok(());
        }
        self.body_from = self.body_end;
        self.max_saved = 0;
        self.write_seqnums()
    }
    fn set_next_target_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.target = seq;
        self.write_seqnums()
    }
    fn save(&mut self, seq: u64, message: &[u8]) -> Result<(), StoreError> {
        let path = self.body_path.clone();
        let end = self.body_end;
        let header = format!("{seq} {}\n", message.len());
        let mut record = Vec::with_capacity(header.len() + message.len() + 1);
        record.extend_from_slice(header.as_bytes());
        record.extend_from_slice(message);
        record.push(b'\n');
        self.body.write_all(&record).map_err(io_err(&path))?;
        self.body_end = end + record.len() as u64;
        self.max_saved = self.max_saved.max(seq);
        self.index
            .insert(seq, (end + header.len() as u64, message.len()));
        Ok(())
    }
    fn get(&mut self, begin: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if begin > end {
            return Ok(Vec::new());
        }
        let path = self.body_path.clone();
        let mut out = Vec::new();
        for (seq, (offset, len)) in self.index.range(begin, end) {
            let mut buf = vec![0u8; *len];
            self.body
                .seek(SeekFrom::Start(*offset))
                .map_err(io_err(&path))?;
            self.body.read_exact(&mut buf).map_err(io_err(&path))?;
            out.push((*seq, buf));
        }
        Ok(out)
    }
    fn creation_time(&self) -> i64 {
        self.created
    }
    fn reset(&mut self) -> Result<(), StoreError> {
        self.created = now_nanos();
        self.body.set_len(0).map_err(io_err(&self.body_path))?;
        self.body_end = 0;
        self.body_from = 0;
        self.max_saved = 0;
        self.index.clear();
        self.sender = 1;
        self.target = 1;
        self.write_seqnums()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    proptest::proptest! {
        /// The chunked log answers as an ordered map, whatever the order of the
        /// numbers (mostly rising, as sent; sometimes lower, as after a reset).
        #[test]
        fn by_seq_is_an_ordered_map(
            steps in proptest::collection::vec((0u8..8, 0u64..60), 0..200),
            ranges in proptest::collection::vec((0u64..70, 0u64..70), 1..8),
        ) {
            let mut log = BySeq { chunks: Vec::new(), chunk: 4 };
            let mut model = BTreeMap::new();
            let mut next = 1;
            for (i, (kind, seq)) in steps.into_iter().enumerate() {
                // Three steps in four send the next number; the rest store any.
                let seq = if kind < 6 { next } else { seq };
                next = next.max(seq + 1);
                log.insert(seq, i);
                model.insert(seq, i);
            }
            for (a, b) in ranges {
                let got: Vec<(u64, usize)> = log.range(a, b).copied().collect();
                let want: Vec<(u64, usize)> = if a <= b {
                    model.range(a..=b).map(|(k, v)| (*k, *v)).collect()
                } else {
                    Vec::new()
                };
                proptest::prop_assert_eq!(got, want);
            }
            proptest::prop_assert!(log.chunks.iter().all(|c| !c.is_empty()));
        }
    }

    fn exercise(store: &mut dyn MessageStore) {
        assert_eq!((store.next_sender_seq(), store.next_target_seq()), (1, 1));
        store.save(1, b"one\x01").unwrap();
        store.save(2, b"two\nlines").unwrap();
        store.save(4, b"four").unwrap();
        store.set_next_sender_seq(5).unwrap();
        store.set_next_target_seq(9).unwrap();
        let got = store.get(2, 10).unwrap();
        assert_eq!(
            got,
            vec![(2, b"two\nlines".to_vec()), (4, b"four".to_vec())]
        );
        assert!(store.get(3, 2).unwrap().is_empty());
    }

    #[test]
    fn memory_store() {
        let mut s = MemoryStore::new();
        exercise(&mut s);
        s.reset().unwrap();
        assert!(s.get(1, 100).unwrap().is_empty());
        assert_eq!(s.next_sender_seq(), 1);
    }

    #[test]
    fn seqnums_are_rewritten_in_place_at_a_fixed_width() {
        let dir = std::env::temp_dir().join(format!("nexus-store-width-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // The earlier variable-width line, with trailing junk after it.
        fs::write(dir.join("s.seqnums"), "7 12 1700000000000000000\n\n\n   \n").unwrap();
        // Messages stored before a line of the earlier form do not move its sender
        // number: its writer wrote the line after each of them.
        fs::write(dir.join("s.body"), "9 4\nnine\n").unwrap();
        let mut store = FileStore::open(&dir, "s").unwrap();
        assert_eq!((store.next_sender_seq(), store.next_target_seq()), (7, 12));
        assert_eq!(store.creation_time(), 1_700_000_000_000_000_000);
        for seq in 8..200 {
            store.save(seq, b"8=FIX.4.4\x01").unwrap();
            store.set_next_sender_seq(seq + 1).unwrap();
            store.set_next_target_seq(seq * 1000).unwrap();
            assert_eq!(
                fs::metadata(dir.join("s.seqnums")).unwrap().len(),
                SEQNUMS_LINE
            );
        }
        drop(store);
        let mut again = FileStore::open(&dir, "s").unwrap();
        assert_eq!(
            (again.next_sender_seq(), again.next_target_seq()),
            (200, 199_000)
        );
        assert_eq!(again.get(150, 151).unwrap().len(), 2);
        again.save(200, b"last").unwrap();
        assert_eq!(again.get(199, 200).unwrap()[1], (200, b"last".to_vec()));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_store_survives_reopen_and_resets() {
        let dir = std::env::temp_dir().join(format!(
            "nexus-fix-store-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        {
            let mut s = FileStore::open(&dir, "A-B").unwrap();
            exercise(&mut s);
        }
        {
            let mut s = FileStore::open(&dir, "A-B").unwrap();
            assert_eq!((s.next_sender_seq(), s.next_target_seq()), (5, 9));
            assert!(s.creation_time() > 0);
            assert_eq!(s.get(1, 1).unwrap(), vec![(1, b"one\x01".to_vec())]);
            assert_eq!(s.get(1, 10).unwrap().len(), 3);
            s.reset().unwrap();
            s.save(1, b"again").unwrap();
        }
        // Message 1 was stored after the reset (its number not yet moved on, as
        // by a crash right after saving it): it counts as sent.
        let mut s = FileStore::open(&dir, "A-B").unwrap();
        assert_eq!((s.next_sender_seq(), s.next_target_seq()), (2, 1));
        assert_eq!(s.get(1, 10).unwrap(), vec![(1, b"again".to_vec())]);
        drop(s);
        // A record torn by a crash while appending is dropped at the next open.
        let body = dir.join("A-B.body");
        let mut torn = fs::read(&body).unwrap();
        torn.extend_from_slice(b"2 100\npartial");
        fs::write(&body, torn).unwrap();
        let mut s = FileStore::open(&dir, "A-B").unwrap();
        assert_eq!(s.get(1, 10).unwrap(), vec![(1, b"again".to_vec())]);
        s.save(2, b"after").unwrap();
        drop(s);
        let mut s = FileStore::open(&dir, "A-B").unwrap();
        assert_eq!(s.get(2, 2).unwrap(), vec![(2, b"after".to_vec())]);
        drop(s);
        let _ = fs::remove_dir_all(&dir);
    }

    fn store_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "nexus-store-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn sending_writes_the_body_log_only() {
        let dir = store_dir("writes");
        let mut s = FileStore::open(&dir, "s").unwrap();
        let at_open = s.line_writes;
        for seq in 1..=100 {
            s.save(seq, b"8=FIX.4.4\x01").unwrap();
            s.set_next_sender_seq(seq + 1).unwrap();
        }
        assert_eq!(s.line_writes, at_open, "no line write per message sent");
        s.set_next_target_seq(7).unwrap();
        assert_eq!(s.line_writes, at_open + 1);
        // Setting the sender number to anything else is written.
        s.set_next_sender_seq(50).unwrap();
        assert_eq!(s.line_writes, at_open + 2);
        drop(s);
        let s = FileStore::open(&dir, "s").unwrap();
        assert_eq!((s.next_sender_seq(), s.next_target_seq()), (50, 7));
        let _ = fs::remove_dir_all(&dir);
    }

    /// One step of a session's use of its store.
    #[derive(Debug, Clone)]
    enum Op {
        /// Send the next message: save it, then move the sender number past it.
        Send,
        /// Save the next message and stop before moving the number (a crash).
        SaveOnly,
        /// Set the sender number (a reset of it, a SequenceReset).
        SetSender(u64),
        SetTarget(u64),
        Reset,
        /// Close and open again.
        Reopen,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            6 => Just(Op::Send),
            1 => Just(Op::SaveOnly),
            1 => (1u64..40).prop_map(Op::SetSender),
            1 => (1u64..40).prop_map(Op::SetTarget),
            1 => Just(Op::Reset),
            2 => Just(Op::Reopen),
        ]
    }

    proptest::proptest! {
        /// After any mix of sends, number changes, resets and reopenings (a crash
        /// between saving a message and moving the number past it included), an
        /// opened store has the numbers a session had in memory, except that a
        /// message saved without its number moved on counts as sent; and it holds
        /// every message saved since the last reset, the last one of each number.
        #[test]
        fn numbers_and_messages_survive_reopening(ops in proptest::collection::vec(op(), 1..60)) {
            let dir = store_dir("prop");
            let mut store = FileStore::open(&dir, "s").unwrap();
            let (mut sender, mut target) = (1u64, 1u64);
            let mut saved: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
            for (i, op) in ops.iter().enumerate() {
                match op {
                    Op::Send | Op::SaveOnly => {
                        let body = format!("message {i}").into_bytes();
                        store.save(sender, &body).unwrap();
                        saved.insert(sender, body);
                        // Whether the number moves on now or at the next open,
                        // it moves on.
                        sender += 1;
                        if matches!(op, Op::Send) {
                            store.set_next_sender_seq(sender).unwrap();
                        }
                    }
                    Op::SetSender(n) => {
                        sender = *n;
                        store.set_next_sender_seq(sender).unwrap();
                    }
                    Op::SetTarget(n) => {
                        target = *n;
                        store.set_next_target_seq(target).unwrap();
                    }
                    Op::Reset => {
                        store.reset().unwrap();
                        (sender, target) = (1, 1);
                        saved.clear();
                    }
                    Op::Reopen => {
                        drop(store);
                        store = FileStore::open(&dir, "s").unwrap();
                        proptest::prop_assert_eq!(
                            (store.next_sender_seq(), store.next_target_seq()),
                            (sender, target)
                        );
                    }
                }
            }
            drop(store);
            let mut store = FileStore::open(&dir, "s").unwrap();
            proptest::prop_assert_eq!(
                (store.next_sender_seq(), store.next_target_seq()),
                (sender, target)
            );
            let all: BTreeMap<u64, Vec<u8>> = store.get(1, u64::MAX).unwrap().into_iter().collect();
            proptest::prop_assert_eq!(all, saved);
            let _ = fs::remove_dir_all(&dir);
        }
    }
}
