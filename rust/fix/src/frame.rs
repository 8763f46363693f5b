//! FIX tag=value framing: BeginString, BodyLength and CheckSum.

use thiserror::Error;

/// The FIX field delimiter, SOH (0x01).
pub const SOH: u8 = 0x01;

/// Why a byte sequence is not a well-framed FIX message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The message is shorter than the smallest possible frame.
    #[error("message truncated: {0} bytes is shorter than any FIX frame")]
    Truncated(usize),
    /// The first field is not BeginString (8).
    #[error("first field must be BeginString (8=), found {0:?}")]
    MissingBeginString(String),
    /// The second field is not BodyLength (9).
    #[error("second field must be BodyLength (9=), found {0:?}")]
    MissingBodyLength(String),
    /// BodyLength is not a non-negative decimal integer.
    #[error("BodyLength (9) is not a number: {0:?}")]
    InvalidBodyLength(String),
    /// BodyLength does not match the bytes between it and CheckSum.
    #[error("BodyLength (9) says {declared} but the body has {actual} bytes")]
    BodyLengthMismatch {
        /// The value of tag 9.
        declared: usize,
        /// The bytes actually found before the CheckSum field.
        actual: usize,
    },
    /// The last field is not a three-digit CheckSum (10) ended by SOH.
    #[error("last field must be CheckSum (10=nnn) followed by SOH")]
    MissingChecksum,
    /// CheckSum does not match the sum of the preceding bytes.
    #[error("CheckSum (10) says {declared:03} but the bytes sum to {computed:03}")]
    ChecksumMismatch {
        /// The value of tag 10.
        declared: u8,
        /// The checksum computed over the message.
        computed: u8,
    },
    /// The first body field is not MsgType (35).
    #[error("first body field must be MsgType (35=)")]
    MissingMsgType,
}

/// The framing fields of a checked message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// BeginString (8), e.g. "FIX.4.4".
    pub begin_string: String,
    /// BodyLength (9).
    pub body_length: usize,
    /// MsgType (35), e.g. "D".
    pub msg_type: String,
    /// CheckSum (10).
    pub checksum: u8,
}

/// Returns the FIX checksum of `bytes`: their sum modulo 256.
#[must_use]
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}

/// Splits the first `tag=value<SOH>` field off `bytes`, returning the field
/// (without SOH) and the rest.
fn split_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|b| *b == SOH)?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(32)]).into_owned()
}

/// Checks the framing of one complete FIX message: BeginString first,
/// BodyLength second and equal to the body's length, MsgType first in the
/// body, and a CheckSum trailer equal to the sum of the bytes before it.
///
/// # Errors
/// Returns the first [`FrameError`] found, in the order above.
pub fn verify(msg: &[u8]) -> Result<Frame, FrameError> {
    // 8=X|9=N|35=X|10=NNN| is the smallest shape: 20 bytes.
    if msg.len() < 20 {
        return Err(FrameError::Truncated(msg.len()));
    }
    let (begin, rest) =
        split_field(msg).ok_or_else(|| FrameError::MissingBeginString(lossy(msg)))?;
    let begin_string = begin
        .strip_prefix(b"8=")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| FrameError::MissingBeginString(lossy(begin)))?;
    let (length_field, body_and_trailer) =
        split_field(rest).ok_or_else(|| FrameError::MissingBodyLength(lossy(rest)))?;
    let length_text = length_field
        .strip_prefix(b"9=")
        .ok_or_else(|| FrameError::MissingBodyLength(lossy(length_field)))?;
    if length_text.is_empty()
        || !length_text.iter().all(u8::is_ascii_digit)
        || length_text.len() > 9
    {
        return Err(FrameError::InvalidBodyLength(lossy(length_text)));
    }
    let declared: usize = std::str::from_utf8(length_text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| FrameError::InvalidBodyLength(lossy(length_text)))?;

    // The trailer is exactly "10=NNN<SOH>" at the very end.
    let trailer_len = 7;
    if body_and_trailer.len() < trailer_len {
        return Err(FrameError::MissingChecksum);
    }
    let (body, trailer) = body_and_trailer.split_at(body_and_trailer.len() - trailer_len);
    if !(trailer.starts_with(b"10=")
        && trailer[3..6].iter().all(u8::is_ascii_digit)
        && trailer[6] == SOH
        && (body.is_empty() || body[body.len() - 1] == SOH))
    {
        return Err(FrameError::MissingChecksum);
    }
    if declared != body.len() {
        return Err(FrameError::BodyLengthMismatch {
            declared,
            actual: body.len(),
        });
    }
    let declared_sum = u16::from(trailer[3] - b'0') * 100
        + u16::from(trailer[4] - b'0') * 10
        + u16::from(trailer[5] - b'0');
    let computed = checksum(&msg[..msg.len() - trailer_len]);
    if declared_sum != u16::from(computed) {
        return Err(FrameError::ChecksumMismatch {
            declared: u8::try_from(declared_sum).unwrap_or(u8::MAX),
            computed,
        });
    }
    let (first, _) = split_field(body).ok_or(FrameError::MissingMsgType)?;
    let msg_type = first
        .strip_prefix(b"35=")
        .filter(|v| !v.is_empty())
        .ok_or(FrameError::MissingMsgType)?;
    Ok(Frame {
        begin_string: String::from_utf8_lossy(begin_string).into_owned(),
        body_length: declared,
        msg_type: String::from_utf8_lossy(msg_type).into_owned(),
        checksum: computed,
    })
}

/// Frames `body` (which must start with `35=` and end with SOH) as a
/// complete message: prepends BeginString and BodyLength, appends CheckSum.
#[must_use]
pub fn encode(begin_string: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + begin_string.len() + 24);
    out.extend_from_slice(b"8=");
    out.extend_from_slice(begin_string.as_bytes());
    out.push(SOH);
    out.extend_from_slice(b"9=");
    crate::message::write_u64(&mut out, body.len() as u64);
    out.push(SOH);
    out.extend_from_slice(body);
    let sum = checksum(&out);
    out.extend_from_slice(&[
        b'1',
        b'0',
        b'=',
        b'0' + sum / 100,
        b'0' + sum / 10 % 10,
        b'0' + sum % 10,
        SOH,
    ]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soh(text: &str) -> Vec<u8> {
        text.replace('|', "\u{1}").into_bytes()
    }

    // A Heartbeat from the FIX 4.2 acceptance scripts, framed by QuickFIX.
    const HEARTBEAT: &str = "8=FIX.4.2|9=51|35=0|34=2|49=ISLD|52=20250101-00:00:00.000|56=TW42|10=";

    #[test]
    fn checksum_is_sum_mod_256() {
        assert_eq!(checksum(b""), 0);
        assert_eq!(checksum(&[255, 1]), 0);
        assert_eq!(
            checksum(b"8=FIX.4.2\x01"),
            (56 + 61 + 70 + 73 + 88 + 46 + 52 + 46 + 50 + 1) as u8
        );
    }

    #[test]
    fn encode_then_verify_round_trips() {
        let body = soh("35=D|34=2|49=TW|52=20250101-00:00:00|56=ISLD|11=ID1|21=1|40=1|54=1|38=100|55=EUR/USD|60=20250101-00:00:00|");
        let msg = encode("FIX.4.4", &body);
        let frame = verify(&msg).expect("encoded message verifies");
        assert_eq!(frame.begin_string, "FIX.4.4");
        assert_eq!(frame.msg_type, "D");
        assert_eq!(frame.body_length, body.len());
    }

    #[test]
    fn known_heartbeat_checksum() {
        let mut msg = soh(HEARTBEAT);
        let sum = checksum(&msg[..msg.len() - 3]);
        msg.extend_from_slice(format!("{sum:03}").as_bytes());
        msg.push(SOH);
        let frame = verify(&msg).expect("valid heartbeat");
        assert_eq!(frame.msg_type, "0");
        assert_eq!(frame.body_length, 51);
    }

    #[test]
    fn wrong_checksum_is_reported_with_both_values() {
        let mut msg = encode("FIX.4.2", &soh("35=0|34=2|49=A|56=B|"));
        let n = msg.len();
        msg[n - 2] = if msg[n - 2] == b'9' {
            b'0'
        } else {
            msg[n - 2] + 1
        };
        match verify(&msg) {
            Err(FrameError::ChecksumMismatch { declared, computed }) => {
                assert_ne!(declared, computed);
            }
            other => panic!("expected ChecksumMismatch, got {other:?}"),
        }
    }

    #[test]
    fn wrong_body_length_is_reported() {
        let msg = soh("8=FIX.4.2|9=5|35=0|34=2|49=A|56=B|10=000|");
        assert_eq!(
            verify(&msg),
            Err(FrameError::BodyLengthMismatch {
                declared: 5,
                actual: 20
            })
        );
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        assert_eq!(verify(b"hello"), Err(FrameError::Truncated(5)));
        assert!(matches!(
            verify(b"garbage garbage garbage garbage"),
            Err(FrameError::MissingBeginString(_))
        ));
        assert!(matches!(
            verify(&soh("8=FIX.4.2|9=abc|35=0|10=000|")),
            Err(FrameError::InvalidBodyLength(_))
        ));
        assert_eq!(
            verify(&soh("8=FIX.4.2|9=12|35=0|34=2|10=00|x")),
            Err(FrameError::MissingChecksum)
        );
    }

    #[test]
    fn missing_msg_type_is_reported() {
        let msg = encode("FIX.4.2", &soh("34=2|35=0|"));
        assert_eq!(verify(&msg), Err(FrameError::MissingMsgType));
    }
}

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = verify(&bytes);
        }

        #[test]
        fn encoded_bodies_always_verify(fields in proptest::collection::vec(("[1-9][0-9]{0,3}", "[ -~&&[^=]]{1,12}"), 0..12)) {
            let mut body = b"35=8\x01".to_vec();
            for (tag, value) in &fields {
                body.extend_from_slice(format!("{tag}={value}\x01").as_bytes());
            }
            let msg = encode("FIX.4.4", &body);
            let frame = verify(&msg).expect("encoded frame verifies");
            prop_assert_eq!(frame.body_length, body.len());
            prop_assert_eq!(frame.msg_type, "8");
        }
    }
}
