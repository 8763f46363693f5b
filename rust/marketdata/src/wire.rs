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

/// Returns the bytes of `value` as a varint.
#[inline]
fn varint_len(value: u64) -> usize {
    // ceil(bits / 7) for the highest set bit's index, as protobuf computes it.
    let high_bit = 63 - (value | 1).leading_zeros();
    ((high_bit * 9 + 73) / 64) as usize
}

/// Writes `value` as a varint at `pos`; returns the position after it.
#[inline]
fn put_varint(buf: &mut [u8], mut pos: usize, mut value: u64) -> usize {
    // Into a slice rather than onto a Vec: no capacity check per byte.
    while value >= 0x80 {
        // Truncation keeps the low 7 bits, as the encoding wants.
        #[allow(clippy::cast_possible_truncation)]
        let byte = (value as u8) | 0x80;
        buf[pos] = byte;
        value >>= 7;
        pos += 1;
    }
    #[allow(clippy::cast_possible_truncation)]
    let last = value as u8;
    buf[pos] = last;
    pos + 1
}

fn tag(field: u32, wire_type: u32) -> u64 {
    u64::from((field << 3) | wire_type)
}

fn put_tag(buf: &mut [u8], pos: usize, field: u32, wire_type: u32) -> usize {
    put_varint(buf, pos, tag(field, wire_type))
}

fn put_bytes(buf: &mut [u8], pos: usize, bytes: &[u8]) -> usize {
    buf[pos..pos + bytes.len()].copy_from_slice(bytes);
    pos + bytes.len()
}

/// Size of a length-delimited field (tag, length, body) with a body of `len` bytes.
fn len_field_size(field: u32, len: usize) -> usize {
    varint_len(tag(field, LEN)) + varint_len(len as u64) + len
}

/// Size of a varint field.
fn varint_field_size(field: u32, value: u64) -> usize {
    varint_len(tag(field, VARINT)) + varint_len(value)
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

fn int64_data_len(values: &[i64]) -> usize {
    values.iter().map(|v| varint_len(as_u64(*v))).sum()
}

fn uint32_data_len(values: &[u32]) -> usize {
    values.iter().map(|v| varint_len(u64::from(*v))).sum()
}

/// Size of a packed field holding `data_len` bytes; none when empty.
fn packed_size(field: u32, data_len: usize) -> usize {
    if data_len == 0 {
        0
    } else {
        len_field_size(field, data_len)
    }
}

fn put_packed_header(buf: &mut [u8], pos: usize, field: u32, data_len: usize) -> usize {
    let pos = put_tag(buf, pos, field, LEN);
    put_varint(buf, pos, data_len as u64)
}

/// The serialized `InstrumentId` of a batch, the same for all its messages.
fn instrument_message(symbol: &str, venue: &str) -> Vec<u8> {
    let mut size = 0;
    for (field, text) in [(1, symbol), (2, venue)] {
        if !text.is_empty() {
            size += len_field_size(field, text.len());
        }
    }
    let mut buf = vec![0; size];
    let mut pos = 0;
    for (field, text) in [(1, symbol), (2, venue)] {
        if !text.is_empty() {
            pos = put_tag(&mut buf, pos, field, LEN);
            pos = put_varint(&mut buf, pos, text.len() as u64);
            pos = put_bytes(&mut buf, pos, text.as_bytes());
        }
    }
    buf.truncate(pos);
    buf
}

/// The sizes of one `QuoteBatch` body and of its varint columns.
struct BatchLayout {
    body: usize,
    bid: usize,
    ask: usize,
    flags: usize,
}

impl BatchLayout {
    fn of(q: &QuoteColumns<'_>, instrument_len: usize) -> Self {
        let (bid, ask, flags) = (
            int64_data_len(q.bid),
            int64_data_len(q.ask),
            uint32_data_len(q.flags),
        );
        let mut body = len_field_size(1, instrument_len)
            + packed_size(4, q.ts_ns.len() * 8)
            + packed_size(5, bid)
            + packed_size(6, ask)
            + packed_size(9, flags);
        if q.price_scale != 0 {
            body += varint_field_size(2, zigzag32(q.price_scale));
        }
        if q.size_scale != 0 {
            body += varint_field_size(3, zigzag32(q.size_scale));
        }
        Self {
            body,
            bid,
            ask,
            flags,
        }
    }
}

fn put_packed_int64(buf: &mut [u8], pos: usize, field: u32, values: &[i64], len: usize) -> usize {
    if len == 0 {
        return pos;
    }
    let mut pos = put_packed_header(buf, pos, field, len);
    for v in values {
        pos = put_varint(buf, pos, as_u64(*v));
    }
    pos
}

/// Appends a `QuoteBatch` message body (without its own tag) at `pos`.
fn put_quote_batch(
    buf: &mut [u8],
    pos: usize,
    q: &QuoteColumns<'_>,
    instrument: &[u8],
    layout: &BatchLayout,
) -> usize {
    let mut pos = put_tag(buf, pos, 1, LEN);
    pos = put_varint(buf, pos, instrument.len() as u64);
    pos = put_bytes(buf, pos, instrument);
    if q.price_scale != 0 {
        pos = put_tag(buf, pos, 2, VARINT);
        pos = put_varint(buf, pos, zigzag32(q.price_scale));
    }
    if q.size_scale != 0 {
        pos = put_tag(buf, pos, 3, VARINT);
        pos = put_varint(buf, pos, zigzag32(q.size_scale));
    }
    if !q.ts_ns.is_empty() {
        pos = put_packed_header(buf, pos, 4, q.ts_ns.len() * 8);
        for (slot, v) in buf[pos..pos + q.ts_ns.len() * 8]
            .chunks_exact_mut(8)
            .zip(q.ts_ns)
        {
            slot.copy_from_slice(&v.to_le_bytes());
        }
        pos += q.ts_ns.len() * 8;
    }
    pos = put_packed_int64(buf, pos, 5, q.bid, layout.bid);
    pos = put_packed_int64(buf, pos, 6, q.ask, layout.ask);
    if layout.flags != 0 {
        pos = put_packed_header(buf, pos, 9, layout.flags);
        for v in q.flags {
            pos = put_varint(buf, pos, u64::from(*v));
        }
    }
    pos
}

/// The counters that end every `StreamTicksResponse`.
#[derive(Debug, Clone, Copy)]
struct Counters {
    sequence: u64,
    dropped_ticks: u64,
    end_of_replay: bool,
}

impl Counters {
    fn size(&self) -> usize {
        let mut size = 0;
        if self.sequence != 0 {
            size += varint_field_size(3, self.sequence);
        }
        if self.dropped_ticks != 0 {
            size += varint_field_size(4, self.dropped_ticks);
        }
        if self.end_of_replay {
            size += varint_field_size(5, 1);
        }
        size
    }

    fn put(&self, buf: &mut [u8], mut pos: usize) -> usize {
        if self.sequence != 0 {
            pos = put_tag(buf, pos, 3, VARINT);
            pos = put_varint(buf, pos, self.sequence);
        }
        if self.dropped_ticks != 0 {
            pos = put_tag(buf, pos, 4, VARINT);
            pos = put_varint(buf, pos, self.dropped_ticks);
        }
        if self.end_of_replay {
            pos = put_tag(buf, pos, 5, VARINT);
            pos = put_varint(buf, pos, 1);
        }
        pos
    }
}

/// Writes one `StreamTicksResponse` at `pos`; returns the position after it.
fn put_response(
    buf: &mut [u8],
    pos: usize,
    batch: Option<(&QuoteColumns<'_>, &BatchLayout)>,
    instrument: &[u8],
    counters: Counters,
) -> usize {
    let mut pos = pos;
    if let Some((q, layout)) = batch {
        pos = put_tag(buf, pos, 1, LEN);
        pos = put_varint(buf, pos, layout.body as u64);
        pos = put_quote_batch(buf, pos, q, instrument, layout);
    }
    counters.put(buf, pos)
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
    let counters = Counters {
        sequence,
        dropped_ticks,
        end_of_replay,
    };
    let instrument = quotes.map_or_else(Vec::new, |q| instrument_message(q.symbol, q.venue));
    let layout = quotes.map(|q| BatchLayout::of(q, instrument.len()));
    let size = layout.as_ref().map_or(0, |l| len_field_size(1, l.body)) + counters.size();
    let mut buf = vec![0; size];
    let end = put_response(
        &mut buf,
        0,
        quotes.zip(layout.as_ref()),
        &instrument,
        counters,
    );
    buf.truncate(end);
    buf
}

/// Consecutive `StreamTicksResponse` messages written into one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedMessages {
    /// The messages, back to back.
    pub bytes: Vec<u8>,
    /// Where each message ends in `bytes` (the next one starts there).
    pub ends: Vec<usize>,
}

impl EncodedMessages {
    /// Returns the messages as slices of `bytes`.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, end)| &self.bytes[start..*end])
    }
}

/// Encodes quote columns as consecutive `StreamTicksResponse` messages of at
/// most `batch_size` rows each (the last may hold fewer), numbered from
/// `first_sequence`; each message's bytes equal those of
/// [`stream_ticks_response`] for its rows. No message when `q` has no rows.
///
/// # Panics
/// Never: a `batch_size` of 0 is taken as 1.
#[must_use]
pub fn stream_ticks_responses(
    q: &QuoteColumns<'_>,
    batch_size: usize,
    first_sequence: u64,
    dropped_ticks: u64,
) -> EncodedMessages {
    let batch_size = batch_size.max(1);
    let instrument = instrument_message(q.symbol, q.venue);
    let slices: Vec<(QuoteColumns<'_>, BatchLayout, Counters)> = (0..q.ts_ns.len())
        .step_by(batch_size)
        .zip(first_sequence..)
        .map(|(start, sequence)| {
            let end = (start + batch_size).min(q.ts_ns.len());
            let part = QuoteColumns {
                ts_ns: &q.ts_ns[start..end],
                bid: &q.bid[start..end],
                ask: &q.ask[start..end],
                flags: q.flags.get(start..end).unwrap_or(&[]),
                ..*q
            };
            let layout = BatchLayout::of(&part, instrument.len());
            let counters = Counters {
                sequence,
                dropped_ticks,
                end_of_replay: false,
            };
            (part, layout, counters)
        })
        .collect();
    let size: usize = slices
        .iter()
        .map(|(_, layout, counters)| len_field_size(1, layout.body) + counters.size())
        .sum();
    let mut bytes = vec![0; size];
    let mut ends = Vec::with_capacity(slices.len());
    let mut pos = 0;
    for (part, layout, counters) in &slices {
        pos = put_response(
            &mut bytes,
            pos,
            Some((part, layout)),
            &instrument,
            *counters,
        );
        ends.push(pos);
    }
    bytes.truncate(pos);
    EncodedMessages { bytes, ends }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_protobuf_spec() {
        let mut out = vec![0; 16];
        assert_eq!(put_varint(&mut out, 0, 300), 2);
        assert_eq!(&out[..2], &[0xac, 0x02]);
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
        let mut out = vec![0; 32];
        let len = int64_data_len(&[-1]);
        assert_eq!(put_packed_int64(&mut out, 0, 5, &[-1], len), 2 + 10);
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

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::*;

    /// The plain byte-by-byte varint of the protobuf spec.
    fn reference_varint(mut value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while value >= 0x80 {
            out.push(u8::try_from(value & 0x7f).unwrap_or(0) | 0x80);
            value >>= 7;
        }
        out.push(u8::try_from(value).unwrap_or(0));
        out
    }

    proptest! {
        #[test]
        fn varints_match_the_byte_by_byte_encoding(value in any::<u64>(), shift in 0u32..64) {
            let value = value >> shift;
            let mut buf = vec![0xff; 16];
            let end = put_varint(&mut buf, 3, value);
            let expected = reference_varint(value);
            prop_assert_eq!(&buf[3..end], expected.as_slice());
            prop_assert_eq!(end - 3, varint_len(value));
        }

        #[test]
        fn split_messages_equal_one_message_per_slice(
            rows in proptest::collection::vec((any::<i64>(), any::<i64>(), any::<i64>(), any::<u32>()), 0..60),
            batch_size in 1usize..9,
            with_flags in any::<bool>(),
            first_sequence in 0u64..1_000,
            dropped_ticks in any::<u64>(),
        ) {
            let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let bid: Vec<i64> = rows.iter().map(|r| r.1 >> (r.3 % 64)).collect();
            let ask: Vec<i64> = rows.iter().map(|r| r.2).collect();
            let flags: Vec<u32> = if with_flags { rows.iter().map(|r| r.3 % 4).collect() } else { Vec::new() };
            let q = QuoteColumns {
                symbol: "EUR/USD",
                venue: "OANDA",
                price_scale: 5,
                size_scale: -2,
                ts_ns: &ts,
                bid: &bid,
                ask: &ask,
                flags: &flags,
            };
            let encoded = stream_ticks_responses(&q, batch_size, first_sequence, dropped_ticks);
            let messages: Vec<&[u8]> = encoded.iter().collect();
            prop_assert_eq!(messages.len(), rows.len().div_ceil(batch_size));
            for (i, message) in messages.iter().enumerate() {
                let (start, end) = (i * batch_size, ((i + 1) * batch_size).min(rows.len()));
                let part = QuoteColumns {
                    ts_ns: &ts[start..end],
                    bid: &bid[start..end],
                    ask: &ask[start..end],
                    flags: flags.get(start..end).unwrap_or(&[]),
                    ..q
                };
                let one = stream_ticks_response(Some(&part), first_sequence + i as u64, dropped_ticks, false);
                prop_assert_eq!(*message, one.as_slice());
            }
        }
    }
}
