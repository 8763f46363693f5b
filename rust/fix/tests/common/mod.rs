//! Helpers shared by the tests that read the QuickFIX acceptance scripts
//! (`acceptance.rs`, `dictionary_specs.rs`).

use std::path::{Path, PathBuf};

use nexus_fix::frame;

/// The shared data (`NEXUS_SHARED_DATA`, else `../../../shared/data` relative to
/// this crate) when `present` holds for it; otherwise None, saying why.
pub fn shared_fix_data(present: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let dir = match std::env::var_os("NEXUS_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    if present(&dir) {
        Some(dir)
    } else {
        eprintln!(
            "skipping: FIX shared data not found under {} (set NEXUS_SHARED_DATA)",
            dir.display()
        );
        None
    }
}

/// Replaces each `<TIME>`, `<TIME+N>` and `<TIME-N>` of a script line by what
/// `write` puts out for its offset N (in seconds; 0 for `<TIME>`).
pub fn replace_time(raw: &[u8], mut write: impl FnMut(i64, &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i..].starts_with(b"<TIME") {
            if let Some(end) = raw[i..].iter().position(|&b| b == b'>') {
                let offset: i64 = std::str::from_utf8(&raw[i + 5..i + end])
                    .ok()
                    .and_then(|s| s.trim_start_matches('+').parse().ok())
                    .unwrap_or(0);
                write(offset, &mut out);
                i += end + 1;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// The non-empty SOH-separated fields of a script line.
pub fn split_fields(text: &[u8]) -> Vec<&[u8]> {
    text.split(|&b| b == frame::SOH)
        .filter(|f| !f.is_empty())
        .collect()
}

/// Frames an `I` line as QuickFIX's test harness does: BodyLength and CheckSum are
/// computed when the script leaves them out, and sent as written otherwise.
pub fn frame_like_harness(text: &[u8]) -> Vec<u8> {
    let fields = split_fields(text);
    let explicit_length = fields.get(1).is_some_and(|f| f.starts_with(b"9="));
    let explicit_checksum = fields.last().is_some_and(|f| f.starts_with(b"10="));
    if explicit_length && explicit_checksum {
        return text.to_vec();
    }
    let begin = fields.first().copied().unwrap_or_default();
    let skip_front = if explicit_length { 2 } else { 1 };
    let end = fields.len() - usize::from(explicit_checksum);
    let mut body = Vec::new();
    for f in fields.get(skip_front..end).unwrap_or_default() {
        body.extend_from_slice(f);
        body.push(frame::SOH);
    }
    let mut out = Vec::new();
    out.extend_from_slice(begin);
    out.push(frame::SOH);
    match fields.get(1).filter(|_| explicit_length) {
        Some(length) => out.extend_from_slice(length),
        None => out.extend_from_slice(format!("9={}", body.len()).as_bytes()),
    }
    out.push(frame::SOH);
    out.extend_from_slice(&body);
    match fields.last().filter(|_| explicit_checksum) {
        Some(sum) => out.extend_from_slice(sum),
        None => out.extend_from_slice(format!("10={:03}", frame::checksum(&out)).as_bytes()),
    }
    out.push(frame::SOH);
    out
}
