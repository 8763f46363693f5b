//! Protobuf encoding of stream messages, written directly from columns.
//!
//! Building `StreamTicksResponse` messages in Python costs more than gRPC
//! itself at high rates, so the market-data service has Rust write the bytes
//! and hands them to gRPC as they are. The layout follows
//! `proto/nexus/marketdata/v1/marketdata.proto`; the Python tests decode the
//! output with the generated classes and compare field by field.

/// Protobuf wire type of varints.
const VARINT: u32 = 0;
/// Protobuf wire type of length-delimited fields.
const LEN: u32 = 2;

/// One quote batch to encode: the columns of `nexus.marketdata.v1.QuoteBatch`.
#[derive(Debug, Clone, Copy)]
pub struct QuoteColumns<'a> {
    /// Instrument symbol.
    pub symbol: &'a str,
    /// Instrument venue.
    pub venue: &'a str,
    /// Decimal scale of the prices.
    pub price_scale: i32,
    /// Decimal scale of the sizes.
    pub size_scale: i32,
    /// Event times, ns since the Unix epoch.
    pub ts_ns: &'a [i64],
    /// Bid mantissas.
    pub bid: &'a [i64],
    /// Ask mantissas.
    pub ask: &'a [i64],
    /// Per-row quality flags; empty when none is set.
    pub flags: &'a [u32],
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation keeps the low 7 bits, as the encoding wants.
        #[allow(clippy::cast_possible_truncation)]
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    let bits = 64 - (value | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(out, u64::from((field << 3) | wire_type));
}

fn zigzag32(value: i32) -> u64 {
    // The cast reinterprets the sign bit, as protobuf's sint32 wants.
    #[allow(clippy::cast_sign_loss)]
    let encoded = ((value << 1) ^ (value >> 31)) as u32;
    u64::from(encoded)
}

#[allow(clippy::cast_sign_loss)]
fn as_u64(value: i64) -> u64 {
    // int64 fields encode negative values as their two's complement.
    value as u64
}

fn put_len_prefixed_str(out: &mut Vec<u8>, field: u32, text: &str) {
    if text.is_empty() {
        return;
    }
    put_tag(out, field, LEN);
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn put_packed_int64(out: &mut Vec<u8>, field: u32, values: &[i64]) {
    if values.is_empty() {
        return;
    }
    let len: usize = values.iter().map(|v| varint_len(as_u64(*v))).sum();
    put_tag(out, field, LEN);
    put_varint(out, len as u64);
    for v in values {
        put_varint(out, as_u64(*v));
    }
}

fn put_packed_sfixed64(out: &mut Vec<u8>, field: u32, values: &[i64]) {
    if values.is_empty() {
        return;
    }
    put_tag(out, field, LEN);
    put_varint(out, (values.len() * 8) as u64);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_packed_uint32(out: &mut Vec<u8>, field: u32, values: &[u32]) {
    if values.is_empty() {
        return;
    }
    let len: usize = values.iter().map(|v| varint_len(u64::from(*v))).sum();
    put_tag(out, field, LEN);
    put_varint(out, len as u64);
    for v in values {
        put_varint(out, u64::from(*v));
    }
}

/// Appends a `QuoteBatch` message body (without its own tag) to `out`.
fn put_quote_batch(out: &mut Vec<u8>, q: &QuoteColumns<'_>) {
    let mut instrument = Vec::with_capacity(q.symbol.len() + q.venue.len() + 4);
    put_len_prefixed_str(&mut instrument, 1, q.symbol);
    put_len_prefixed_str(&mut instrument, 2, q.venue);
    put_tag(out, 1, LEN);
    put_varint(out, instrument.len() as u64);
    out.extend_from_slice(&instrument);
    if q.price_scale != 0 {
        put_tag(out, 2, VARINT);
        put_varint(out, zigzag32(q.price_scale));
    }
    if q.size_scale != 0 {
        put_tag(out, 3, VARINT);
        put_varint(out, zigzag32(q.size_scale));
    }
    put_packed_sfixed64(out, 4, q.ts_ns);
    put_packed_int64(out, 5, q.bid);
    put_packed_int64(out, 6, q.ask);
    put_packed_uint32(out, 9, q.flags);
}

/// Returns a serialized `nexus.marketdata.v1.StreamTicksResponse` holding
/// one quote batch (none when `quotes` is None) and the stream counters.
#[must_use]
pub fn stream_ticks_response(
    quotes: Option<&QuoteColumns<'_>>,
    sequence: u64,
    dropped_ticks: u64,
    end_of_replay: bool,
) -> Vec<u8> {
    let rows = quotes.map_or(0, |q| q.ts_ns.len());
    let mut out = Vec::with_capacity(64 + rows * 24);
    if let Some(q) = quotes {
        let mut batch = Vec::with_capacity(48 + rows * 24);
        put_quote_batch(&mut batch, q);
        put_tag(&mut out, 1, LEN);
        put_varint(&mut out, batch.len() as u64);
        out.extend_from_slice(&batch);
    }
    if sequence != 0 {
        put_tag(&mut out, 3, VARINT);
        put_varint(&mut out, sequence);
    }
    if dropped_ticks != 0 {
        put_tag(&mut out, 4, VARINT);
        put_varint(&mut out, dropped_ticks);
    }
    if end_of_replay {
        put_tag(&mut out, 5, VARINT);
        put_varint(&mut out, 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_protobuf_spec() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, vec![0xac, 0x02]);
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u64::MAX), 10);
        assert_eq!(zigzag32(-1), 1);
        assert_eq!(zigzag32(5), 10);
    }

    #[test]
    fn empty_message_is_empty() {
        assert!(stream_ticks_response(None, 0, 0, false).is_empty());
        assert_eq!(
            stream_ticks_response(None, 7, 0, true),
            vec![0x18, 7, 0x28, 1]
        );
    }

    #[test]
    fn negative_int64_takes_ten_bytes() {
        let mut out = Vec::new();
        put_packed_int64(&mut out, 5, &[-1]);
        assert_eq!(out.len(), 2 + 10);
    }

    #[test]
    fn batch_has_every_column() {
        let q = QuoteColumns {
            symbol: "EUR/USD",
            venue: "OANDA",
            price_scale: 5,
            size_scale: 0,
            ts_ns: &[1, 2],
            bid: &[138_000, 138_001],
            ask: &[138_010, 138_011],
            flags: &[],
        };
        let bytes = stream_ticks_response(Some(&q), 1, 0, false);
        // tag 1 LEN, then the instrument message starts with tag 1 LEN as well.
        assert_eq!(bytes[0], 0x0a);
        assert!(bytes.windows(7).any(|w| w == b"EUR/USD"));
        assert_eq!(&bytes[bytes.len() - 2..], &[0x18, 1]);
    }
}
