//! Loads the QuickFIX data dictionaries from the shared data (`fix/spec`) and checks
//! them, and the codec and validator, against the QuickFIX acceptance scripts
//! (`fix/acceptance/fix42|fix44`).
//!
//! The shared data is found through `NEXUS_SHARED_DATA`, else `../../../shared/data`
//! relative to this crate; when it is absent every test prints why and passes.

use std::path::{Path, PathBuf};

mod common;

use nexus_fix::message::{tags, FieldAccess, Message, MessageBuilder, Section, Splitter};
use nexus_fix::{
    frame, Dictionary, DictionaryError, FieldType, MsgTypeStatus, ParseError, SessionRejectReason,
    Validator,
};

fn data_dir() -> Option<PathBuf> {
    common::shared_fix_data(|dir| dir.join("fix/spec/FIX44.xml").is_file())
}

fn load(dir: &Path, file: &str) -> Result<Dictionary, DictionaryError> {
    Dictionary::from_file(dir.join("fix/spec").join(file))
}

#[test]
fn spec_counts_match_sources() {
    let Some(dir) = data_dir() else { return };
    // (file, fields, messages, components, version) as SOURCES.md section 1 gives them;
    // FIXT11.xml's two components (HopGrp, MsgTypeGrp) are read from the file.
    let expected = [
        ("FIX42.xml", 405, 46, 0, "FIX.4.2"),
        ("FIX44.xml", 912, 93, 104, "FIX.4.4"),
        ("FIXT11.xml", 71, 8, 2, "FIXT.1.1"),
        ("FIX50SP2.xml", 6028, 156, 725, "FIX.5.0SP2"),
    ];
    for (file, fields, messages, components, version) in expected {
        let started = std::time::Instant::now();
        let d = load(&dir, file).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{file}: loaded in {:?}", started.elapsed());
        assert_eq!(d.fields().len(), fields, "{file} fields");
        assert_eq!(d.messages().len(), messages, "{file} messages");
        assert_eq!(d.components().len(), components, "{file} components");
        assert_eq!(d.version(), version, "{file} version");
        for f in d.fields() {
            assert_eq!(d.field(f.tag).map(|g| g.tag), Some(f.tag));
            assert_eq!(d.field_by_name(&f.name).map(|g| g.tag), Some(f.tag));
            if f.field_type.is_data() {
                assert!(
                    f.length_field().is_some(),
                    "{file}: {} has no length field",
                    f.name
                );
            }
        }
        for m in d.messages() {
            assert_eq!(
                d.message(m.msg_type.as_bytes()).map(|n| &n.name),
                Some(&m.name),
                "{file}: lookup of {}",
                m.msg_type
            );
            for (_, gid) in m.block.groups() {
                let g = d.group(gid).expect("group id resolves");
                assert_eq!(g.block.members().first().map(|x| x.tag), Some(g.delimiter));
                // FIX 4.2 types some counts (e.g. NoIOIQualifiers) as INT.
                assert!(
                    matches!(
                        d.field(g.count_tag).map(|f| f.field_type),
                        Some(FieldType::NumInGroup | FieldType::Int)
                    ),
                    "{file}: {} counts a group",
                    g.name
                );
            }
        }
    }
}

#[test]
fn spec_structure() {
    let Some(dir) = data_dir() else { return };
    let fix44 = load(&dir, "FIX44.xml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fix44.begin_string(), Some("FIX.4.4"));
    let nos = fix44.message(b"D").expect("NewOrderSingle");
    assert_eq!(nos.name, "NewOrderSingle");
    for tag in [11, 40, 54, 60] {
        assert!(nos.block.is_required(tag), "NewOrderSingle requires {tag}");
    }
    let parties = nos
        .block
        .group_id(453)
        .and_then(|g| fix44.group(g))
        .expect("Parties");
    assert_eq!(parties.delimiter, 448);
    let sub = parties
        .block
        .group_id(802)
        .and_then(|g| fix44.group(g))
        .expect("PtysSubGrp");
    assert_eq!(sub.delimiter, 523);
    assert!(nos.block.contains(55), "Instrument component expanded");
    assert_eq!(fix44.length_field_for_data(96), Some(95));
    assert_eq!(fix44.length_field_for_data(89), Some(93));
    assert_eq!(fix44.length_field_for_data(213), Some(212));
    assert!(fix44.is_header_field(627) && fix44.is_header_field(628));
    assert!(fix44.is_trailer_field(89));
    assert!(fix44.is_admin(b"A") && !fix44.is_admin(b"8"));
    assert_eq!(
        fix44.field(54).and_then(|f| f.value_description(b"1")),
        Some("BUY")
    );

    let fixt = load(&dir, "FIXT11.xml").unwrap_or_else(|e| panic!("{e}"));
    let fix50 = load(&dir, "FIX50SP2.xml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fixt.begin_string(), Some("FIXT.1.1"));
    assert_eq!(fix50.begin_string(), None);
    assert!(fix50.header().is_empty() && fix50.trailer().is_empty());
    assert!(fixt.is_header_field(1128));
    let v = Validator::fixt(&fixt, &fix50);
    assert_eq!(v.msg_type_status(b"A"), MsgTypeStatus::Admin);
    assert_eq!(v.msg_type_status(b"D"), MsgTypeStatus::Application);
    assert_eq!(v.msg_type_status(b"*"), MsgTypeStatus::Undefined);

    // A FIX 5.0 SP2 order over FIXT 1.1, with a Parties group.
    let mut b = MessageBuilder::new("FIXT.1.1", "D");
    b.sender_comp_id("TW")
        .target_comp_id("ISLD")
        .msg_seq_num(2)
        .sending_time_raw(b"20250101-00:00:00.000")
        .header_field(1128, b"9")
        .field_str(11, "ID1")
        .field_u64(453, 1)
        .field_str(448, "BROKER")
        .field_str(447, "D")
        .field_int(452, 1)
        .field_str(55, "EUR/USD")
        .field_char(54, b'1')
        .field_str(60, "20250101-00:00:00.000")
        .field_str(38, "1000000")
        .field_char(40, b'2')
        .field_str(44, "1.08255");
    let bytes = b.encode();
    let msg = v.parse(&bytes).expect("parses");
    assert_eq!(v.validate(&msg), Ok(()));
    assert_eq!(msg.group(453).map(|g| g.len()), Some(1));
    let logon = {
        let mut b = MessageBuilder::new("FIXT.1.1", "A");
        b.sender_comp_id("TW")
            .target_comp_id("ISLD")
            .msg_seq_num(1)
            .sending_time_raw(b"20250101-00:00:00")
            .field_u64(98, 0)
            .field_u64(108, 30)
            .field_u64(1137, 9);
        b.encode()
    };
    let msg = v.parse(&logon).expect("parses");
    assert_eq!(v.validate(&msg), Ok(()));
}

// ---------------------------------------------------------------------------
// Acceptance scripts.

const TIME: &str = "20250101-00:00:00";

/// One `I` (sent) or `E` (expected) message line of a `.def` script.
struct Line {
    incoming: bool,
    text: Vec<u8>,
    /// Whether the script writes BodyLength or CheckSum itself, or the first three
    /// fields are not 8, 9 (inserted), 35: a deliberately garbled message.
    garbled: bool,
}

fn replace_time(raw: &[u8]) -> Vec<u8> {
    common::replace_time(raw, |_, out| out.extend_from_slice(TIME.as_bytes()))
}

/// Frames an `I` line as QuickFIX's test harness does: BodyLength and CheckSum are
/// computed when the script leaves them out, and sent as written otherwise.
fn frame_like_harness(text: &[u8]) -> (Vec<u8>, bool) {
    let fields = common::split_fields(text);
    let explicit_length = fields.get(1).is_some_and(|f| f.starts_with(b"9="));
    let explicit_checksum = fields.last().is_some_and(|f| f.starts_with(b"10="));
    let well_ordered = fields.first().is_some_and(|f| f.starts_with(b"8="))
        && fields
            .get(if explicit_length { 2 } else { 1 })
            .is_some_and(|f| f.starts_with(b"35="));
    let garbled = explicit_length || explicit_checksum || !well_ordered;
    (common::frame_like_harness(text), garbled)
}

fn read_script(path: &Path) -> std::io::Result<Vec<Line>> {
    let bytes = std::fs::read(path)?;
    let mut lines = Vec::new();
    for raw in bytes.split(|&b| b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let incoming = match raw.first() {
            Some(b'I') => true,
            Some(b'E') => false,
            _ => continue,
        };
        let mut rest = &raw[1..];
        // Optional connection number: "I1,8=...".
        if let Some(comma) = rest.iter().position(|&b| b == b',') {
            if comma > 0 && rest[..comma].iter().all(u8::is_ascii_digit) {
                rest = &rest[comma + 1..];
            }
        }
        let text = replace_time(rest);
        if incoming {
            let (framed, garbled) = frame_like_harness(&text);
            lines.push(Line {
                incoming,
                text: framed,
                garbled,
            });
        } else {
            lines.push(Line {
                incoming,
                text,
                garbled: false,
            });
        }
    }
    Ok(lines)
}

/// The value of `tag` in an unframed `E` line.
fn field_of(text: &[u8], tag: u32) -> Option<String> {
    let prefix = format!("{tag}=");
    text.split(|&b| b == frame::SOH)
        .find(|f| f.starts_with(prefix.as_bytes()))
        .map(|f| String::from_utf8_lossy(&f[prefix.len()..]).into_owned())
}

/// What the validator should say about an `I` message, read from the next `E` line.
#[derive(Debug, PartialEq)]
enum Expect {
    Valid,
    Reject {
        reason: SessionRejectReason,
        ref_tag: Option<i64>,
        text: String,
        has_reason_field: bool,
    },
}

const VALIDATION_REASONS: [u32; 11] = [0, 1, 2, 4, 5, 6, 11, 13, 14, 15, 16];

fn expectation(sent_seq: Option<u64>, reply: Option<&Line>) -> Expect {
    let Some(reply) = reply else {
        return Expect::Valid;
    };
    if field_of(&reply.text, 35).as_deref() != Some("3")
        || field_of(&reply.text, 45).and_then(|s| s.parse().ok()) != sent_seq
    {
        return Expect::Valid;
    }
    let text = field_of(&reply.text, 58).unwrap_or_default();
    let code_field = field_of(&reply.text, 373).and_then(|s| s.parse::<u32>().ok());
    let code = code_field.or_else(|| {
        (0..=18).find(|&c| SessionRejectReason::from_code(c).is_some_and(|r| r.text() == text))
    });
    let ref_tag: Option<i64> = field_of(&reply.text, 371).and_then(|s| s.parse().ok());
    let Some(reason) = code.and_then(SessionRejectReason::from_code) else {
        return Expect::Valid;
    };
    // Session-level rejects: CompID, SendingTime, PossDup without OrigSendingTime,
    // NewSeqNo lower than expected (5 without RefTagID).
    let data_dictionary_reject = VALIDATION_REASONS.contains(&reason.code())
        && (ref_tag.is_some() || reason == SessionRejectReason::InvalidMsgType)
        && !(reason == SessionRejectReason::RequiredTagMissing && ref_tag == Some(122));
    if !data_dictionary_reject {
        return Expect::Valid;
    }
    Expect::Reject {
        reason,
        ref_tag,
        text,
        has_reason_field: code_field.is_some(),
    }
}

fn scripts(dir: &Path, version: &str) -> std::io::Result<Vec<PathBuf>> {
    let folder = dir.join("fix/acceptance").join(version);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "def"))
        .collect();
    files.sort();
    Ok(files)
}

#[test]
fn acceptance_scripts_validate_as_quickfix_does() {
    let Some(dir) = data_dir() else { return };
    let mut checked_rejects = Vec::new();
    let mut valid = 0;
    let mut garbled = 0;
    for (version, spec, begin) in [
        ("fix42", "FIX42.xml", "FIX.4.2"),
        ("fix44", "FIX44.xml", "FIX.4.4"),
    ] {
        let dict = load(&dir, spec).unwrap_or_else(|e| panic!("{e}"));
        let validator = Validator::new(&dict);
        let files = scripts(&dir, version).unwrap_or_else(|e| panic!("{e}"));
        assert!(files.len() >= 58, "{version}: {} scripts", files.len());
        for path in files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let lines = read_script(&path).unwrap_or_else(|e| panic!("{e}"));
            for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.incoming) {
                let context = format!(
                    "{name}: {}",
                    String::from_utf8_lossy(&line.text).replace('\u{1}', "|")
                );
                let parsed = validator.parse(&line.text);
                if line.garbled {
                    assert!(parsed.is_err(), "{context}: garbled on purpose but parsed");
                    garbled += 1;
                    continue;
                }
                let msg = parsed.unwrap_or_else(|e| panic!("{context}: {e}"));
                if msg.begin_string() != begin.as_bytes() {
                    // 1d_InvalidLogonWrongBeginString: a session-level check.
                    continue;
                }
                let reply = lines[i + 1..].iter().take_while(|l| !l.incoming).next();
                let expected = expectation(msg.msg_seq_num().ok(), reply);
                let outcome = validator.validate(&msg);
                match (&expected, outcome) {
                    (Expect::Valid, Ok(())) => valid += 1,
                    (
                        Expect::Reject {
                            reason,
                            ref_tag,
                            text,
                            has_reason_field,
                        },
                        Err(reject),
                    ) => {
                        assert_eq!(reject.reason, *reason, "{context}");
                        assert_eq!(reject.ref_tag_id, *ref_tag, "{context}");
                        assert_eq!(reject.text, text, "{context}");
                        assert_eq!(
                            reject.includes_reason(begin.as_bytes()),
                            *has_reason_field,
                            "{context}"
                        );
                        assert_eq!(reject.ref_msg_type.as_bytes(), msg.msg_type(), "{context}");
                        assert_eq!(reject.ref_seq_num, msg.msg_seq_num().ok(), "{context}");
                        checked_rejects.push(format!(
                            "{version}/{name}: {} {}",
                            reason.code(),
                            text
                        ));
                    }
                    (expected, outcome) => {
                        panic!("{context}: expected {expected:?}, validator says {outcome:?}")
                    }
                }
            }
        }
    }
    eprintln!(
        "acceptance: {valid} valid, {garbled} garbled, {} rejects checked",
        checked_rejects.len()
    );
    for r in &checked_rejects {
        eprintln!("  {r}");
    }
    // Every 14a..14i case of both versions plus 2q, ReverseRoute, RejectResentMessage.
    for case in [
        "14a",
        "14b",
        "14c",
        "14d",
        "14e",
        "14f",
        "14g",
        "14h",
        "14i",
        "2q_",
        "ReverseRoute",
        "RejectResent",
    ] {
        for version in ["fix42", "fix44"] {
            let prefix = format!("{version}/{case}");
            if case == "RejectResent" && version == "fix42" {
                continue;
            }
            assert!(
                checked_rejects.iter().any(|r| r.starts_with(&prefix)),
                "no reject checked for {prefix}"
            );
        }
    }
    assert!(
        checked_rejects.len() >= 40,
        "{} rejects",
        checked_rejects.len()
    );
}

#[test]
fn acceptance_messages_survive_the_splitter_and_builder() {
    let Some(dir) = data_dir() else { return };
    for (version, spec) in [("fix42", "FIX42.xml"), ("fix44", "FIX44.xml")] {
        let dict = load(&dir, spec).unwrap_or_else(|e| panic!("{e}"));
        let validator = Validator::new(&dict);
        for path in scripts(&dir, version).unwrap_or_else(|e| panic!("{e}")) {
            let lines = read_script(&path).unwrap_or_else(|e| panic!("{e}"));
            if lines.iter().any(|l| l.incoming && l.garbled) {
                continue;
            }
            let sent: Vec<&[u8]> = lines
                .iter()
                .filter(|l| l.incoming)
                .map(|l| l.text.as_slice())
                .collect();
            let stream: Vec<u8> = sent.concat();
            for chunk in [1, 7, 64, 4096] {
                let mut splitter = Splitter::new();
                let mut frames = Vec::new();
                for piece in stream.chunks(chunk) {
                    splitter.feed(piece);
                    while let Some(frame) = splitter.next_frame() {
                        frames.push(frame.expect("well-formed stream").to_vec());
                    }
                }
                assert_eq!(frames, sent, "{}: chunks of {chunk}", path.display());
            }
            for bytes in &sent {
                let msg = validator.parse(bytes).expect("parses");
                // The scripts write the header as 8, 35, 34, 49, 52, 56: rebuilding
                // moves 49/56 before 34/52 but keeps every field.
                let rebuilt = MessageBuilder::from_message(&msg).encode();
                let again = Message::parse(&rebuilt).expect("rebuilt parses");
                let mut a: Vec<(u32, &[u8])> = msg.iter().filter(|(t, _)| *t != 10).collect();
                let mut b: Vec<(u32, &[u8])> = again.iter().filter(|(t, _)| *t != 10).collect();
                a.sort_unstable();
                b.sort_unstable();
                assert_eq!(a.len(), b.len());
                assert_eq!(
                    a.iter().filter(|(t, _)| *t != 9).collect::<Vec<_>>(),
                    b.iter().filter(|(t, _)| *t != 9).collect::<Vec<_>>()
                );
                assert_eq!(
                    frame::verify(&rebuilt).map(|f| f.body_length),
                    Ok(msg.body_length())
                );
                let standard: Vec<u32> = again
                    .section(Section::Header)
                    .map(|(t, _)| t)
                    .filter(|t| [8, 9, 35, 49, 56, 34, 52].contains(t))
                    .collect();
                let mut expected = vec![8, 9, 35, 49, 56, 34, 52];
                expected.retain(|t| standard.contains(t));
                assert_eq!(standard, expected);
            }
        }
    }
}

#[test]
fn garbled_streams_follow_quickfix() {
    let Some(dir) = data_dir() else { return };
    for version in ["fix42", "fix44"] {
        // 2m: a short BodyLength garbles its own message only; a long one also
        // swallows the next message (QuickFIX extends to the next CheckSum field).
        let path = dir
            .join("fix/acceptance")
            .join(version)
            .join("2m_BodyLengthValueNotCorrect.def");
        let lines = read_script(&path).unwrap_or_else(|e| panic!("{e}"));
        let stream: Vec<u8> = lines
            .iter()
            .filter(|l| l.incoming)
            .flat_map(|l| l.text.clone())
            .collect();
        let mut splitter = Splitter::new();
        splitter.feed(&stream);
        let mut outcome = Vec::new();
        while let Some(frame) = splitter.next_frame() {
            let frame = frame.expect("frames");
            outcome.push(match Message::parse(frame) {
                Ok(m) => m.msg_seq_num().map_or(-1, |s| s as i64),
                Err(ParseError::Frame(frame::FrameError::BodyLengthMismatch { .. })) => 0,
                Err(e) => panic!("{version} 2m: unexpected {e}"),
            });
        }
        assert_eq!(outcome, vec![1, 0, 3, 2, 0, 4, 5, 7], "{version} 2m");

        // 2d/3c/3b/2t: every deliberately garbled message fails to parse; the others
        // parse, whatever the stream around them.
        for script in [
            "2d_GarbledMessage.def",
            "3c_GarbledMessage.def",
            "3b_InvalidChecksum.def",
            "2t_FirstThreeFieldsOutOfOrder.def",
        ] {
            let lines = read_script(&dir.join("fix/acceptance").join(version).join(script))
                .unwrap_or_else(|e| panic!("{e}"));
            let sent: Vec<&Line> = lines.iter().filter(|l| l.incoming).collect();
            let stream: Vec<u8> = sent.iter().flat_map(|l| l.text.clone()).collect();
            let mut splitter = Splitter::new();
            splitter.feed(&stream);
            let mut good = 0;
            while let Some(frame) = splitter.next_frame() {
                if let Ok(frame) = frame {
                    if let Ok(m) = Message::parse(frame) {
                        assert!(m.get(tags::MSG_SEQ_NUM).is_some());
                        good += 1;
                    }
                }
            }
            let expected_good = sent.iter().filter(|l| !l.garbled).count();
            assert_eq!(good, expected_good, "{version} {script}");
        }
    }
}

#[test]
fn typed_access_to_acceptance_orders() {
    let Some(dir) = data_dir() else { return };
    let dict = load(&dir, "FIX42.xml").unwrap_or_else(|e| panic!("{e}"));
    let lines = read_script(
        &dir.join("fix/acceptance/fix42/21_RepeatingGroupSpecifierWithValueOfZero.def"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let order = lines
        .iter()
        .find(|l| l.incoming && l.text.windows(5).any(|w| w == b"\x0135=d"))
        .expect("SecurityDefinition");
    let msg = Message::parse_with(&order.text, &dict).expect("parses");
    assert_eq!(msg.get_str(320), Ok("JCD1091-20021011"));
    assert_eq!(msg.get_u64(322), Ok(1_034_356_488_676));
    assert_eq!(msg.group(146).map(|g| g.len()), Some(0));
    assert_eq!(msg.get_timestamp(52), Ok(1_735_689_600_000_000_000));
    assert_eq!(nexus_fix::message::tags::MSG_TYPE, 35);
}
