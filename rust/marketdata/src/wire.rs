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

/// Most bytes a varint takes.
const MAX_VARINT: usize = 10;
/// Most bytes a field's tag and its varint value or length prefix take.
const MAX_FIELD_HEAD: usize = 1 + MAX_VARINT;

/// Writes a length-delimited field whose body `body` writes at the position
/// it is given and returns the position after the field.
///
/// The length prefix is sized for `expected_len` before the body is written,
/// so the values are walked once; when the real length takes another number
/// of prefix bytes (rarely: the guesses are close, and only a power of 128
/// between them counts) the body moves to close or open the gap. `buf` must
/// hold the body after a prefix of `MAX_VARINT` bytes.
fn put_len_delimited(
    buf: &mut [u8],
    pos: usize,
    field: u32,
    expected_len: usize,
    body: impl FnOnce(&mut [u8], usize) -> usize,
) -> usize {
    let pos = put_tag(buf, pos, field, LEN);
    let reserved = varint_len(expected_len as u64);
    let start = pos + reserved;
    let end = body(buf, start);
    let len = end - start;
    let prefix = varint_len(len as u64);
    if prefix != reserved {
        buf.copy_within(start..end, pos + prefix);
    }
    put_varint(buf, pos, len as u64);
    pos + prefix + len
}

/// A guess of a packed column's length: every value the size of the first.
fn expected_packed_len(first: Option<u64>, count: usize) -> usize {
    first.map_or(0, |v| varint_len(v) * count)
}

fn put_packed_varints(
    buf: &mut [u8],
    pos: usize,
    field: u32,
    values: impl ExactSizeIterator<Item = u64> + Clone,
) -> usize {
    let count = values.len();
    if count == 0 {
        return pos;
    }
    let expected = expected_packed_len(values.clone().next(), count);
    put_len_delimited(buf, pos, field, expected, |buf, mut at| {
        for v in values {
            at = put_varint(buf, at, v);
        }
        at
    })
}

fn put_packed_int64(buf: &mut [u8], pos: usize, field: u32, values: &[i64]) -> usize {
    put_packed_varints(buf, pos, field, values.iter().map(|v| as_u64(*v)))
}

/// The serialized `InstrumentId` of a batch, the same for all its messages.
fn instrument_message(symbol: &str, venue: &str) -> Vec<u8> {
    let mut buf = vec![0; symbol.len() + venue.len() + 2 * MAX_FIELD_HEAD];
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

/// Most bytes the body of a `QuoteBatch` of `rows` rows takes.
fn max_batch_len(rows: usize, instrument_len: usize) -> usize {
    // instrument, two scales, four packed columns; per row 8 bytes of time,
    // two int64 varints and a uint32 varint.
    MAX_FIELD_HEAD + instrument_len + 6 * MAX_FIELD_HEAD + rows * (8 + 2 * MAX_VARINT + 5)
}

/// Bytes of a packed field holding `data_len` bytes (none when empty).
fn packed_field_len(data_len: usize) -> usize {
    if data_len == 0 {
        0
    } else {
        1 + varint_len(data_len as u64) + data_len
    }
}

/// A guess of a `QuoteBatch` body's length, exact when every value of a
/// column takes as many bytes as the column's first.
fn expected_batch_len(q: &QuoteColumns<'_>, instrument_len: usize) -> usize {
    let rows = q.ts_ns.len();
    let scale = |value: i32| {
        if value == 0 {
            0
        } else {
            1 + varint_len(zigzag32(value))
        }
    };
    1 + varint_len(instrument_len as u64)
        + instrument_len
        + scale(q.price_scale)
        + scale(q.size_scale)
        + packed_field_len(rows * 8)
        + packed_field_len(expected_packed_len(q.bid.first().map(|v| as_u64(*v)), rows))
        + packed_field_len(expected_packed_len(q.ask.first().map(|v| as_u64(*v)), rows))
        + packed_field_len(expected_packed_len(
            q.flags.first().map(|v| u64::from(*v)),
            rows,
        ))
}

/// Most bytes a `StreamTicksResponse` with a batch of `rows` rows takes.
fn max_response_len(rows: usize, instrument_len: usize) -> usize {
    MAX_FIELD_HEAD + max_batch_len(rows, instrument_len) + 3 * MAX_FIELD_HEAD
}

/// Writes a `QuoteBatch` message body (without its own tag) at `pos`.
fn put_quote_batch(buf: &mut [u8], pos: usize, q: &QuoteColumns<'_>, instrument: &[u8]) -> usize {
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
        let len = q.ts_ns.len() * 8;
        pos = put_tag(buf, pos, 4, LEN);
        pos = put_varint(buf, pos, len as u64);
        for (slot, v) in buf[pos..pos + len].chunks_exact_mut(8).zip(q.ts_ns) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
        pos += len;
    }
    pos = put_packed_int64(buf, pos, 5, q.bid);
    pos = put_packed_int64(buf, pos, 6, q.ask);
    put_packed_varints(buf, pos, 9, q.flags.iter().map(|v| u64::from(*v)))
}

/// The counters that end every `StreamTicksResponse`.
#[derive(Debug, Clone, Copy)]
struct Counters {
    sequence: u64,
    dropped_ticks: u64,
    end_of_replay: bool,
}

impl Counters {
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
    batch: Option<&QuoteColumns<'_>>,
    instrument: &[u8],
    counters: Counters,
) -> usize {
    let mut pos = pos;
    if let Some(q) = batch {
        pos = put_len_delimited(
            buf,
            pos,
            1,
            expected_batch_len(q, instrument.len()),
            |buf, at| put_quote_batch(buf, at, q, instrument),
        );
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
    let rows = quotes.map_or(0, |q| q.ts_ns.len());
    let mut buf = vec![0; max_response_len(rows, instrument.len())];
    let end = put_response(&mut buf, 0, quotes, &instrument, counters);
    buf.truncate(end);
    buf
}

/// Consecutive `StreamTicksResponse` messages written into one buffer, which
/// can be kept and reused for the next messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedMessages {
    /// The messages back to back, then space not in use.
    bytes: Vec<u8>,
    /// Where each message ends in `bytes` (the next one starts there).
    ends: Vec<usize>,
}

impl EncodedMessages {
    /// Returns the messages as slices of one buffer.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, end)| &self.bytes[start..*end])
    }

    /// Returns the number of messages.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Returns true when there is no message.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Returns the bytes the buffer holds, in use or not.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Replaces the messages with those of `q`, as [`stream_ticks_responses`]
    /// encodes them, reusing the buffer (it grows when it must, and is not
    /// cleared first: every byte of a message is written).
    pub fn encode(
        &mut self,
        q: &QuoteColumns<'_>,
        batch_size: usize,
        first_sequence: u64,
        dropped_ticks: u64,
    ) {
        let batch_size = batch_size.max(1);
        let rows = q.ts_ns.len();
        let instrument = instrument_message(q.symbol, q.venue);
        let messages = rows.div_ceil(batch_size);
        let needed = messages * max_response_len(batch_size.min(rows), instrument.len());
        if self.bytes.len() < needed {
            self.bytes.resize(needed, 0);
        }
        self.ends.clear();
        let mut pos = 0;
        for (start, sequence) in (0..rows).step_by(batch_size).zip(first_sequence..) {
            let end = (start + batch_size).min(rows);
            let part = QuoteColumns {
                ts_ns: &q.ts_ns[start..end],
                bid: &q.bid[start..end],
                ask: &q.ask[start..end],
                flags: q.flags.get(start..end).unwrap_or(&[]),
                ..*q
            };
            let counters = Counters {
                sequence,
                dropped_ticks,
                end_of_replay: false,
            };
            pos = put_response(&mut self.bytes, pos, Some(&part), &instrument, counters);
            self.ends.push(pos);
        }
    }
}

/// Encodes quote columns as consecutive `StreamTicksResponse` messages of at
/// most `batch_size` rows each (the last may hold fewer), numbered from
/// `first_sequence`; each message's bytes equal those of
/// [`stream_ticks_response`] for its rows. No message when `q` has no rows;
/// a `batch_size` of 0 is taken as 1.
#[must_use]
pub fn stream_ticks_responses(
    q: &QuoteColumns<'_>,
    batch_size: usize,
    first_sequence: u64,
    dropped_ticks: u64,
) -> EncodedMessages {
    let mut encoded = EncodedMessages::default();
    encoded.encode(q, batch_size, first_sequence, dropped_ticks);
    encoded
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
        assert_eq!(put_packed_int64(&mut out, 0, 5, &[-1]), 2 + 10);
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

    fn reference_packed(out: &mut Vec<u8>, field: u8, values: &[u64]) {
        if values.is_empty() {
            return;
        }
        let data: Vec<u8> = values.iter().flat_map(|v| reference_varint(*v)).collect();
        out.push((field << 3) | 2);
        out.extend(reference_varint(data.len() as u64));
        out.extend(data);
    }

    /// The message as the straightforward encoder (one byte at a time, each
    /// length computed from the bytes already written) writes it.
    fn reference_response(q: &QuoteColumns<'_>, sequence: u64) -> Vec<u8> {
        let mut instrument = Vec::new();
        for (field, text) in [(1u8, q.symbol), (2, q.venue)] {
            if !text.is_empty() {
                instrument.push((field << 3) | 2);
                instrument.extend(reference_varint(text.len() as u64));
                instrument.extend(text.as_bytes());
            }
        }
        let mut batch = vec![0x0a];
        batch.extend(reference_varint(instrument.len() as u64));
        batch.extend(instrument);
        for (field, scale) in [(2u8, q.price_scale), (3, q.size_scale)] {
            if scale != 0 {
                batch.push(field << 3);
                batch.extend(reference_varint(zigzag32(scale)));
            }
        }
        if !q.ts_ns.is_empty() {
            batch.push((4 << 3) | 2);
            batch.extend(reference_varint(q.ts_ns.len() as u64 * 8));
            batch.extend(q.ts_ns.iter().flat_map(|v| v.to_le_bytes()));
        }
        reference_packed(
            &mut batch,
            5,
            &q.bid.iter().map(|v| as_u64(*v)).collect::<Vec<_>>(),
        );
        reference_packed(
            &mut batch,
            6,
            &q.ask.iter().map(|v| as_u64(*v)).collect::<Vec<_>>(),
        );
        reference_packed(
            &mut batch,
            9,
            &q.flags.iter().map(|v| u64::from(*v)).collect::<Vec<_>>(),
        );
        let mut out = vec![0x0a];
        out.extend(reference_varint(batch.len() as u64));
        out.extend(batch);
        if sequence != 0 {
            out.push(3 << 3);
            out.extend(reference_varint(sequence));
        }
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
            dropped_ticks in prop_oneof![Just(0u64), any::<u64>()],
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
            // A reused buffer, dirty from a longer batch, writes the same bytes.
            let mut reused = stream_ticks_responses(&QuoteColumns { ts_ns: &[7; 64], bid: &[-1; 64], ask: &[-1; 64], flags: &[9; 64], ..q }, 64, 1, 5);
            reused.encode(&q, batch_size, first_sequence, dropped_ticks);
            prop_assert_eq!(reused.iter().collect::<Vec<_>>(), messages.clone());
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
                if dropped_ticks == 0 {
                    let expected = reference_response(&part, first_sequence + i as u64);
                    prop_assert_eq!(*message, expected.as_slice());
                }
            }
        }
    }
}
