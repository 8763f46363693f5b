//! Conformance runner: plays QuickFIX's session acceptance scripts
//! (`fix/acceptance/fix42|fix44/*.def`, format in the shared data's SOURCES.md §2)
//! against the Nexus acceptor over real TCP on 127.0.0.1, and reports how many pass.
//!
//! The shared data is found through `NEXUS_SHARED_DATA`, else `../../../shared/data`
//! relative to this crate; when it is absent the test prints why and passes.
//!
//! Every script runs on its own thread against its own acceptor (the scripts wait for
//! heartbeats and timeouts, so they run concurrently) with a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nexus_fix::message::{
    tags, write_utc_timestamp, FieldAccess, Message, Section, Splitter, TimestampPrecision,
};
use nexus_fix::session::tcp::now_nanos;
use nexus_fix::session::{
    Acceptor, AcceptorConfig, Application, FileStore, MemoryStore, MessageStore, OutgoingMessage,
    Session, SessionConfig, SessionId,
};
use nexus_fix::Dictionary;

mod common;
use common::{frame_like_harness, split_fields};

/// Minimum number of passing scripts per version; raised as the engine improves.
const MIN_PASS_FIX42: usize = 58;
const MIN_PASS_FIX44: usize = 59;

/// Deadline of one script.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(50);
/// Longest wait for one expected message or disconnect.
const STEP_TIMEOUT: Duration = Duration::from_secs(25);

fn data_dir() -> Option<PathBuf> {
    common::shared_fix_data(|dir| {
        dir.join("fix/acceptance/fix42").is_dir() && dir.join("fix/spec/FIX44.xml").is_file()
    })
}

// ---------------------------------------------------------------------------
// The application of QuickFIX's acceptance server.

/// Echoes NewOrderSingle (D) and SecurityDefinition (d), answers other application
/// messages with BusinessMessageReject (unsupported message type), and does not echo
/// a PossResend=Y repeat of a ClOrdID already seen (cleared at logout).
#[derive(Default)]
struct EchoApp {
    seen: Mutex<HashSet<(SessionId, Vec<u8>)>>,
}

/// Header fields of `msg` other than those the session writes itself.
fn extra_header(msg: &Message<'_>) -> Vec<(u32, Vec<u8>)> {
    msg.section(Section::Header)
        .filter(|(t, _)| !matches!(*t, 8 | 9 | 35 | 34 | 49 | 52 | 56))
        .map(|(t, v)| (t, v.to_vec()))
        .collect()
}

/// The body of `msg` with its top-level fields in tag order (group entries stay
/// after their NumInGroup field).
fn body_in_tag_order(msg: &Message<'_>) -> Vec<(u32, Vec<u8>)> {
    type Field = (u32, Vec<u8>);
    let mut chunks: Vec<(u32, Vec<Field>)> = Vec::new();
    for f in msg.fields() {
        if f.section() != Section::Body {
            continue;
        }
        let field = (f.tag(), msg.value(f).to_vec());
        match chunks.last_mut() {
            Some(chunk) if f.depth() > 0 => chunk.1.push(field),
            _ => chunks.push((f.tag(), vec![field])),
        }
    }
    chunks.sort_by_key(|(tag, _)| *tag);
    chunks.into_iter().flat_map(|(_, c)| c).collect()
}

impl Application for EchoApp {
    fn on_logout(&self, session: &SessionId) {
        self.seen.lock().unwrap().retain(|(id, _)| id != session);
    }

    fn on_message(
        &self,
        session: &SessionId,
        msg: &Message<'_>,
        replies: &mut Vec<OutgoingMessage>,
    ) {
        match msg.msg_type() {
            b"D" => {
                let cl_ord_id = msg.get(11).unwrap_or_default().to_vec();
                let poss_resend = msg.get(tags::POSS_RESEND) == Some(b"Y");
                let fresh = self
                    .seen
                    .lock()
                    .unwrap()
                    .insert((session.clone(), cl_ord_id));
                if poss_resend && !fresh {
                    return;
                }
                let mut echo = OutgoingMessage::new("D");
                echo.header = extra_header(msg);
                echo.body = body_in_tag_order(msg).into_iter().collect();
                replies.push(echo);
            }
            b"d" => {
                let mut echo = OutgoingMessage::new("d");
                echo.header = extra_header(msg);
                echo.body = body_in_tag_order(msg).into_iter().collect();
                replies.push(echo);
            }
            other => {
                let mut reject = OutgoingMessage::new("j");
                if let Some(seq) = msg.get(tags::MSG_SEQ_NUM) {
                    reject.body.push(tags::REF_SEQ_NUM, seq);
                }
                reject.body.push(tags::TEXT, b"Unsupported Message Type");
                reject.body.push(tags::REF_MSG_TYPE, other);
                reject.body.push(tags::BUSINESS_REJECT_REASON, b"3");
                replies.push(reject);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Scripts.

#[derive(Debug, Clone)]
enum Step {
    Connect(u32),
    Disconnect(u32),
    Send(u32, Vec<u8>),
    Expect(u32, Vec<u8>),
    ExpectDisconnect(u32),
}

fn parse_script(path: &Path) -> std::io::Result<Vec<(usize, Step)>> {
    let bytes = std::fs::read(path)?;
    let mut steps = Vec::new();
    for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Some(&action) = raw.first() else { continue };
        if !matches!(action, b'I' | b'E' | b'i' | b'e') {
            continue;
        }
        let mut rest = &raw[1..];
        let mut cid = 1;
        if let Some(comma) = rest.iter().position(|&b| b == b',') {
            if comma > 0 && rest[..comma].iter().all(u8::is_ascii_digit) {
                cid = std::str::from_utf8(&rest[..comma])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1);
                rest = &rest[comma + 1..];
            }
        }
        let step = match (action, rest) {
            (b'i', b"CONNECT") => Step::Connect(cid),
            (b'i', b"DISCONNECT") => Step::Disconnect(cid),
            (b'e', b"DISCONNECT") => Step::ExpectDisconnect(cid),
            (b'e', b"CONNECT") => continue,
            (b'I', text) => Step::Send(cid, text.to_vec()),
            (b'E', text) => Step::Expect(cid, text.to_vec()),
            _ => continue,
        };
        steps.push((n + 1, step));
    }
    Ok(steps)
}

/// Replaces `<TIME>`, `<TIME+N>` and `<TIME-N>` by the current UTC time (± N s).
fn replace_time(raw: &[u8]) -> Vec<u8> {
    let now = now_nanos();
    common::replace_time(raw, |offset, out| {
        write_utc_timestamp(
            out,
            now + offset * 1_000_000_000,
            TimestampPrecision::Seconds,
        );
    })
}

/// The patterns of `fields.fmt`: a timestamp (searched) or three digits.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Timestamp,
    ThreeDigits,
}

fn load_formats(dir: &Path) -> BTreeMap<u32, Pattern> {
    let text = std::fs::read_to_string(dir.join("fix/acceptance/fields.fmt")).unwrap_or_default();
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let Some((tag, regex)) = line.split_once('=') else {
            continue;
        };
        let Ok(tag) = tag.trim().parse() else {
            continue;
        };
        let pattern = if regex.starts_with(r"\d{8}") {
            Pattern::Timestamp
        } else {
            Pattern::ThreeDigits
        };
        map.insert(tag, pattern);
    }
    map
}

fn matches_pattern(pattern: Pattern, value: &[u8]) -> bool {
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match pattern {
        Pattern::ThreeDigits => value.windows(3).any(digits),
        Pattern::Timestamp => value.windows(17).any(|w| {
            digits(&w[..8])
                && w[8] == b'-'
                && digits(&w[9..11])
                && w[11] == b':'
                && digits(&w[12..14])
                && w[14] == b':'
                && digits(&w[15..17])
        }),
    }
}

/// Fields of an `E` line with BodyLength (and CheckSum) added when left out.
fn expected_fields(text: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = split_fields(text)
        .into_iter()
        .map(|f| match f.iter().position(|&b| b == b'=') {
            Some(eq) => (f[..eq].to_vec(), f[eq + 1..].to_vec()),
            None => (f.to_vec(), Vec::new()),
        })
        .collect();
    if !fields.iter().any(|(t, _)| t == b"9") {
        let body: usize = fields
            .iter()
            .filter(|(t, _)| t != b"8" && t != b"10")
            .map(|(t, v)| t.len() + v.len() + 2)
            .sum();
        fields.insert(1, (b"9".to_vec(), body.to_string().into_bytes()));
    }
    if !fields.iter().any(|(t, _)| t == b"10") {
        fields.push((b"10".to_vec(), b"000".to_vec()));
    }
    fields
}

fn compare(
    expected: &[u8],
    received: &[u8],
    formats: &BTreeMap<u32, Pattern>,
) -> Result<(), String> {
    let exp = expected_fields(expected);
    let got: Vec<&[u8]> = split_fields(received);
    let show = |b: &[u8]| String::from_utf8_lossy(b).replace('\u{1}', "|");
    let mismatch = |why: String| {
        Err(format!(
            "{why}\n      expected {}\n      received {}",
            show(expected),
            show(received)
        ))
    };
    if exp.len() != got.len() {
        return mismatch(format!("{} fields instead of {}", got.len(), exp.len()));
    }
    for ((tag, value), field) in exp.iter().zip(&got) {
        let (gtag, gvalue) = match field.iter().position(|&b| b == b'=') {
            Some(eq) => (&field[..eq], &field[eq + 1..]),
            None => (&field[..], &b""[..]),
        };
        if gtag != tag.as_slice() {
            return mismatch(format!("tag {} instead of {}", show(gtag), show(tag)));
        }
        let pattern = std::str::from_utf8(tag)
            .ok()
            .and_then(|t| t.parse::<u32>().ok())
            .and_then(|t| formats.get(&t).copied());
        let ok = match pattern {
            Some(p) => matches_pattern(p, gvalue),
            None => gvalue == value.as_slice(),
        };
        if !ok {
            return mismatch(format!("value of {}", show(tag)));
        }
    }
    Ok(())
}

struct Conn {
    stream: TcpStream,
    splitter: Splitter,
}

impl Conn {
    /// The next frame, `Ok(None)` at end of stream, `Err` on timeout.
    fn next_frame(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, String> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(frame) = self.splitter.next_frame() {
                match frame {
                    Ok(f) => return Ok(Some(f.to_vec())),
                    Err(_) => continue,
                }
            }
            if Instant::now() >= deadline {
                return Err("timed out".to_owned());
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => self.splitter.feed(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(format!("read error {e}")),
            }
        }
    }
}

fn run_script(
    steps: &[(usize, Step)],
    addr: SocketAddr,
    formats: &BTreeMap<u32, Pattern>,
) -> Result<Vec<String>, String> {
    let started = Instant::now();
    let mut notes = Vec::new();
    let script_deadline = started + SCRIPT_TIMEOUT;
    let mut conns: BTreeMap<u32, Conn> = BTreeMap::new();
    for (line, step) in steps {
        let step_deadline = (Instant::now() + STEP_TIMEOUT).min(script_deadline);
        let fail = |why: String| Err(format!("line {line}: {why}"));
        match step {
            Step::Connect(cid) => {
                let stream = TcpStream::connect(addr).map_err(|e| format!("line {line}: {e}"))?;
                stream
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                conns.insert(
                    *cid,
                    Conn {
                        stream,
                        splitter: Splitter::new(),
                    },
                );
            }
            Step::Disconnect(cid) => {
                conns.remove(cid);
            }
            Step::Send(cid, text) => {
                let Some(conn) = conns.get_mut(cid) else {
                    return fail(format!("no connection {cid}"));
                };
                let bytes = frame_like_harness(&replace_time(text));
                if let Err(e) = conn.stream.write_all(&bytes) {
                    return fail(format!("write failed: {e}"));
                }
            }
            Step::Expect(cid, text) => {
                let Some(conn) = conns.get_mut(cid) else {
                    return fail(format!("no connection {cid}"));
                };
                match conn.next_frame(step_deadline) {
                    Ok(Some(frame)) => {
                        compare(text, &frame, formats).map_err(|e| format!("line {line}: {e}"))?;
                    }
                    Ok(None) => {
                        return fail(format!(
                            "disconnected, expected {}",
                            String::from_utf8_lossy(text).replace('\u{1}', "|")
                        ))
                    }
                    Err(e) => {
                        return fail(format!(
                            "{e}, expected {}",
                            String::from_utf8_lossy(text).replace('\u{1}', "|")
                        ))
                    }
                }
            }
            Step::ExpectDisconnect(cid) => {
                let Some(conn) = conns.get_mut(cid) else {
                    return fail(format!("no connection {cid}"));
                };
                // Messages sent before the disconnect are not checked.
                loop {
                    match conn.next_frame(step_deadline) {
                        Ok(Some(frame)) => notes.push(format!(
                            "line {line}: before the disconnect: {}",
                            String::from_utf8_lossy(&frame).replace('\u{1}', "|")
                        )),
                        Ok(None) => break,
                        Err(e) => return fail(format!("{e} waiting for the disconnect")),
                    }
                }
                conns.remove(cid);
            }
        }
    }
    Ok(notes)
}

/// The store of a script's session: in memory, or (`NEXUS_ACCEPTANCE_FILE_STORE=1`)
/// a [`FileStore`] in a temporary directory, reset like QuickFIX's test setup does.
fn store_for(version: &str, name: &str) -> Box<dyn MessageStore> {
    if std::env::var_os("NEXUS_ACCEPTANCE_FILE_STORE").is_some_and(|v| v == "1") {
        let dir = std::env::temp_dir().join(format!("nexus-fix-acceptance-{}", std::process::id()));
        let mut store = FileStore::open(&dir, &format!("{version}-{name}")).unwrap();
        store.reset().unwrap();
        Box::new(store)
    } else {
        Box::new(MemoryStore::new())
    }
}

fn session_for(version: &str, name: &str, dictionary: &Arc<Dictionary>) -> Session {
    let (begin, target) = match version {
        "fix42" => ("FIX.4.2", "TW42"),
        _ => ("FIX.4.4", "TW44"),
    };
    let mut config = SessionConfig::new(SessionId::new(begin, "ISLD", target));
    config.reset_on_logon = true;
    config.validate = true;
    Session::new(config, Arc::clone(dictionary), store_for(version, name))
}

fn scripts(dir: &Path, version: &str) -> Vec<PathBuf> {
    let folder = dir.join("fix/acceptance").join(version);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "def"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn quickfix_acceptance_scripts() {
    let Some(dir) = data_dir() else { return };
    let started = Instant::now();
    let formats = Arc::new(load_formats(&dir));
    let only = std::env::var("NEXUS_ACCEPTANCE_ONLY").ok();
    let mut jobs = Vec::new();
    for (version, spec) in [("fix42", "FIX42.xml"), ("fix44", "FIX44.xml")] {
        let dictionary = Arc::new(Dictionary::from_file(dir.join("fix/spec").join(spec)).unwrap());
        for path in scripts(&dir, version) {
            let name = path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if only.as_deref().is_some_and(|o| !name.contains(o)) {
                continue;
            }
            let steps = parse_script(&path).unwrap();
            let dictionary = Arc::clone(&dictionary);
            let formats = Arc::clone(&formats);
            let name_for_thread = name.clone();
            let handle = std::thread::spawn(move || {
                let session = session_for(version, &name_for_thread, &dictionary);
                let app: Arc<dyn Application> = Arc::new(EchoApp::default());
                let mut acceptor =
                    Acceptor::start(AcceptorConfig::localhost(), vec![session], app).unwrap();
                let t0 = Instant::now();
                let result = run_script(&steps, acceptor.local_addr(), &formats);
                acceptor.stop();
                (result, t0.elapsed())
            });
            jobs.push((version, name, handle));
        }
    }
    // (passed, passed with nothing unexpected before an eDISCONNECT, total)
    let mut passed: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for (version, name, handle) in jobs {
        let (result, took) = handle
            .join()
            .unwrap_or_else(|_| (Err("runner panicked".to_owned()), Duration::ZERO));
        let entry = passed.entry(version).or_default();
        entry.2 += 1;
        match result {
            Ok(n) => {
                entry.0 += 1;
                entry.1 += usize::from(n.is_empty());
                notes.extend(n.into_iter().map(|n| format!("{version}/{name}: {n}")));
            }
            Err(why) => failures.push(format!("{version}/{name} ({took:.1?}): {why}")),
        }
    }
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("nexus-fix-acceptance-{}", std::process::id())),
    );
    println!("QuickFIX acceptance scripts against the Nexus acceptor:");
    println!("  version  passed  strict  total");
    for (version, (ok, strict, total)) in &passed {
        println!("  {version:<7}  {ok:>6}  {strict:>6}  {total:>5}");
    }
    println!("  (strict: no message received while waiting for an expected disconnect)");
    for f in &failures {
        println!("  FAIL {f}");
    }
    for n in &notes {
        println!("  note {n}");
    }
    println!("  took {:.1?}", started.elapsed());
    if only.is_none() {
        assert!(passed.get("fix42").map_or(0, |p| p.0) >= MIN_PASS_FIX42);
        assert!(passed.get("fix44").map_or(0, |p| p.0) >= MIN_PASS_FIX44);
    }
}

#[test]
fn body_in_tag_order_keeps_groups() {
    let text = "8=FIX.4.4|9=0|35=D|34=2|49=A|52=20250101-00:00:00|56=B|55=X|11=ID|10=000|";
    let raw = frame_like_harness(
        &text
            .replace("9=0|", "")
            .replace("10=000|", "")
            .replace('|', "\u{1}")
            .into_bytes(),
    );
    let msg = Message::parse(&raw).unwrap();
    let body = body_in_tag_order(&msg);
    assert_eq!(body.first().map(|f| f.0), Some(11));
    assert_eq!(msg.get_str(55).unwrap(), "X");
}
