//! Message stores: the sent messages (for resending) and the next sender and target
//! sequence numbers of a session, in memory or in files that survive a restart.
//!
//! [`FileStore`] keeps two files per session in a directory:
//! `<name>.body`, an append-only log of the sent messages (each record is a line
//! `<seq> <length>\n` followed by the message bytes and `\n`), and `<name>.seqnums`,
//! one line `<next sender seq> <next target seq> <creation time>\n` (the time in
//! nanoseconds since the epoch, UTC), each number right-aligned in 20 columns so
//! that the line always has the same 63 bytes: it is rewritten in place with one
//! write at offset 0 on every change, as QuickFIX's FileStore does (a temporary
//! file and a rename on every message cost a file creation each; a 63-byte write
//! within one disk sector is not torn). Lines of the earlier variable-width form
//! are read too.

use std::collections::BTreeMap;
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
    messages: BTreeMap<u64, Vec<u8>>,
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
            messages: BTreeMap::new(),
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
            .range(begin..=end)
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

/// Bytes of the `.seqnums` line: three numbers in 20 columns, two spaces, `\n`.
const SEQNUMS_LINE: u64 = 63;

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
    index: BTreeMap<u64, (u64, usize)>,
    created: i64,
    sender: u64,
    target: u64,
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
            index: BTreeMap::new(),
            created: now_nanos(),
            sender: 1,
            target: 1,
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
        match text {
            // New (or created by a crash before its first write).
            text if text.trim().is_empty() => self.write_seqnums()?,
            text => {
                let nums: Vec<i64> = text
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect();
                let seq = |n: i64| u64::try_from(n).unwrap_or(1);
                match nums.as_slice() {
                    [sender, target] => {
                        self.sender = seq(*sender);
                        self.target = seq(*target);
                    }
                    [sender, target, created] => {
                        self.sender = seq(*sender);
                        self.target = seq(*target);
                        self.created = *created;
                    }
                    _ => {
                        return Err(Self::corrupt(
                            &self.seq_path,
                            "expected two or three numbers",
                        ))
                    }
                }
                // Rewritten at the fixed width; whatever followed a hand-edited
                // line is cut.
                self.write_seqnums()?;
                self.seq_file
                    .set_len(SEQNUMS_LINE)
                    .map_err(io_err(&self.seq_path))?;
            }
        }
        let path = self.body_path.clone();
        self.body.seek(SeekFrom::Start(0)).map_err(io_err(&path))?;
        let mut reader = BufReader::new(&self.body);
        let mut offset = 0u64;
        let mut header = String::new();
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
        Ok(())
    }

    fn write_seqnums(&self) -> Result<(), StoreError> {
        let text = format!(
            "{:>20} {:>20} {:>20}\n",
            self.sender, self.target, self.created
        );
        self.seq_file
            .write_all_at(text.as_bytes(), 0)
            .map_err(io_err(&self.seq_path))
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
        for (seq, (offset, len)) in self.index.range(begin..=end) {
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
        self.index.clear();
        self.sender = 1;
        self.target = 1;
        self.write_seqnums()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut s = FileStore::open(&dir, "A-B").unwrap();
        assert_eq!((s.next_sender_seq(), s.next_target_seq()), (1, 1));
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
}
