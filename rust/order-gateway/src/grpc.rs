//! The few pieces of gRPC over HTTP/2 the gateway speaks itself: the
//! length-prefixed message, the `grpc-timeout` header and status responses.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::{BodyExt, Empty, Full};

use crate::server::{Body, BoxError};

/// The gRPC status codes the gateway answers with itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    Internal = 13,
    Unavailable = 14,
    ResourceExhausted = 8,
}

/// The one message of a unary request body: an uncompressed length-prefixed
/// message that fills the body exactly. None for anything else (compressed,
/// truncated, several messages): the service behind answers those.
pub(crate) fn unary_message(body: &[u8]) -> Option<&[u8]> {
    let (&[flag, a, b, c, d], message) = body.split_first_chunk::<5>()?;
    let len = usize::try_from(u32::from_be_bytes([a, b, c, d])).ok()?;
    (flag == 0 && message.len() == len).then_some(message)
}

/// A message with its five-byte prefix (uncompressed).
pub(crate) fn frame(message: &[u8]) -> Option<Bytes> {
    let len = u32::try_from(message.len()).ok()?;
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(len);
    out.put_slice(message);
    Some(out.freeze())
}

/// The `grpc-timeout` header as a duration (None when absent or malformed:
/// at most eight digits and one unit of H, M, S, m, u, n).
pub(crate) fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn grpc_headers(response: &mut Response<Body>) {
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
}

/// A successful unary answer: the framed message, then `grpc-status: 0` in
/// the trailers.
pub(crate) fn ok_response(framed: Bytes) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Full::new(framed)
        .map_err(|never| -> BoxError { match never {} })
        .with_trailers(std::future::ready(Some(Ok(trailers))))
        .boxed_unsync();
    let mut response = Response::new(body);
    grpc_headers(&mut response);
    response
}

/// A trailers-only error answer with its code and message.
pub(crate) fn status_response(code: Code, message: &str) -> Response<Body> {
    let body = Empty::new()
        .map_err(|never| -> BoxError { match never {} })
        .boxed_unsync();
    let mut response = Response::new(body);
    grpc_headers(&mut response);
    let headers = response.headers_mut();
    headers.insert("grpc-status", HeaderValue::from(code as u16));
    if let Ok(value) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert("grpc-message", value);
    }
    response
}

/// `grpc-message` encoding: printable ASCII but `%` as is, every other byte
/// as `%XX`.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unary_message_takes_exactly_one_uncompressed_message() {
        let framed = frame(b"abc").expect("small");
        assert_eq!(unary_message(&framed), Some(&b"abc"[..]));
        assert_eq!(unary_message(&framed[..7]), None, "truncated");
        let mut two = framed.to_vec();
        two.extend_from_slice(&framed);
        assert_eq!(unary_message(&two), None, "two messages");
        let mut compressed = framed.to_vec();
        compressed[0] = 1;
        assert_eq!(unary_message(&compressed), None, "compressed");
        assert_eq!(unary_message(b"\0\0\0"), None, "shorter than the prefix");
        assert_eq!(unary_message(&frame(b"").expect("empty")), Some(&b""[..]));
    }

    #[test]
    fn grpc_timeout_units() {
        let parse = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", HeaderValue::from_static(v));
            timeout(&h)
        };
        assert_eq!(parse("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "S", "123456789S", "10s", "1.5S", "-1S", "10"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode("plain text: ok"), "plain text: ok");
        assert_eq!(percent_encode("100% sure"), "100%25 sure");
        assert_eq!(percent_encode("line\nbreak é"), "line%0Abreak %C3%A9");
    }
}
