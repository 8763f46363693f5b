//! Codec throughput: parse and encode FIX 4.4 NewOrderSingle and ExecutionReport
//! messages per second on one core, against a naive split-on-SOH `HashMap` codec run
//! in the same process.
//!
//! Run with `cargo bench -p nexus-fix --bench codec`. The dictionary-backed cases use
//! `FIX44.xml` from `NEXUS_SHARED_DATA` (else `../../../shared/data`) and are skipped
//! when it is absent.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nexus_fix::message::{
    FieldAccess, Message, MessageBuilder, MessageStorage, ParseOptions, Splitter,
    TimestampPrecision,
};
use nexus_fix::{Decimal, Dictionary, Validator};

const ROUNDS: usize = 7;
const ROUND_TIME: Duration = Duration::from_millis(250);

/// Runs `f` (one message per call) in rounds and returns the median messages/second,
/// or NaN when `NEXUS_BENCH_FILTER` is set and `name` does not contain it.
fn measure(name: &str, mut f: impl FnMut() -> usize) -> f64 {
    if let Ok(filter) = std::env::var("NEXUS_BENCH_FILTER") {
        if !name.contains(&filter) {
            return f64::NAN;
        }
    }
    // Warm up and size a batch to ~1 ms.
    let mut batch = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(f());
        }
        if t.elapsed() > Duration::from_millis(1) {
            break;
        }
        batch *= 2;
    }
    let mut rates = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut n = 0usize;
        while start.elapsed() < ROUND_TIME {
            for _ in 0..batch {
                black_box(f());
            }
            n += batch;
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[ROUNDS / 2]
}

// ---------------------------------------------------------------------------
// The naive baseline: what a straightforward implementation would do.

fn naive_parse(buf: &[u8]) -> HashMap<u32, String> {
    let text = String::from_utf8_lossy(buf);
    let mut map = HashMap::new();
    for field in text.split('\u{1}') {
        if let Some((tag, value)) = field.split_once('=') {
            if let Ok(tag) = tag.parse::<u32>() {
                map.insert(tag, value.to_string());
            }
        }
    }
    map
}

fn naive_encode(begin_string: &str, fields: &[(u32, String)]) -> Vec<u8> {
    let mut body = String::new();
    for (tag, value) in fields {
        body.push_str(&format!("{tag}={value}\u{1}"));
    }
    let mut out = format!("8={begin_string}\u{1}9={}\u{1}{body}", body.len());
    let sum = out.bytes().fold(0u32, |a, b| a + u32::from(b)) % 256;
    out.push_str(&format!("10={sum:03}\u{1}"));
    out.into_bytes()
}

// ---------------------------------------------------------------------------
// Sample messages.

const T0: i64 = 1_735_734_645_123_000_000; // 2025-01-01 12:30:45.123

fn order_builder(b: &mut MessageBuilder, seq: u64) {
    b.reset("D")
        .msg_seq_num(seq)
        .sending_time(T0, TimestampPrecision::Millis)
        .field_str(11, "ORD-20250101-000001")
        .field_str(1, "ACC-7781")
        .field_char(21, b'1')
        .field_u64(453, 2)
        .field_str(448, "BRKR01")
        .field_char(447, b'D')
        .field_u64(452, 1)
        .field_str(448, "TRDR17")
        .field_char(447, b'D')
        .field_u64(452, 11)
        .field_str(55, "EUR/USD")
        .field_char(54, b'1')
        .field_timestamp(60, T0, TimestampPrecision::Millis)
        .field_u64(38, 1_000_000)
        .field_char(40, b'2')
        .field_decimal(44, Decimal::new(108_255, 5))
        .field_char(59, b'0');
}

fn execution_builder(b: &mut MessageBuilder, seq: u64) {
    b.reset("8")
        .msg_seq_num(seq)
        .sending_time(T0, TimestampPrecision::Millis)
        .field_str(37, "OID-1234567")
        .field_str(11, "ORD-20250101-000001")
        .field_str(17, "EXEC-20250101-0000042")
        .field_char(150, b'F')
        .field_char(39, b'1')
        .field_str(1, "ACC-7781")
        .field_str(55, "EUR/USD")
        .field_char(54, b'1')
        .field_u64(38, 1_000_000)
        .field_char(40, b'2')
        .field_decimal(44, Decimal::new(108_255, 5))
        .field_u64(32, 500_000)
        .field_decimal(31, Decimal::new(108_254, 5))
        .field_u64(151, 500_000)
        .field_u64(14, 500_000)
        .field_decimal(6, Decimal::new(108_254, 5))
        .field_timestamp(60, T0, TimestampPrecision::Millis)
        .field_str(58, "partial fill");
}

fn session_builder() -> MessageBuilder {
    let mut b = MessageBuilder::new("FIX.4.4", "D");
    b.sender_comp_id("CLIENT01").target_comp_id("NEXUSEXEC");
    b
}

fn naive_fields(msg: &[u8]) -> Vec<(u32, String)> {
    let mut fields: Vec<(u32, String)> = String::from_utf8_lossy(msg)
        .split('\u{1}')
        .filter_map(|f| f.split_once('='))
        .filter_map(|(t, v)| Some((t.parse().ok()?, v.to_string())))
        .collect();
    fields.retain(|(t, _)| !(8..=10).contains(t));
    fields
}

fn shared_dictionary() -> Option<Dictionary> {
    let dir = match std::env::var_os("NEXUS_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    let path = dir.join("fix/spec/FIX44.xml");
    match Dictionary::from_file(&path) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("dictionary cases skipped: {e}");
            None
        }
    }
}

fn fail(what: &str) -> ! {
    eprintln!("bench setup failed: {what}");
    std::process::exit(1)
}

struct Row {
    name: String,
    rate: f64,
    baseline: Option<f64>,
}

fn main() {
    let dictionary = shared_dictionary();
    let mut builder = session_builder();
    let mut rows: Vec<Row> = Vec::new();

    for (label, build) in [
        (
            "NewOrderSingle",
            order_builder as fn(&mut MessageBuilder, u64),
        ),
        ("ExecutionReport", execution_builder),
    ] {
        build(&mut builder, 12_345);
        let bytes = builder.encode();
        let fields = naive_fields(&bytes);
        if naive_encode("FIX.4.4", &fields) != bytes {
            fail("naive encoder disagrees with MessageBuilder");
        }
        let check = match Message::parse(&bytes) {
            Ok(m) => m.get_str(11).map(str::to_owned),
            Err(e) => fail(&e.to_string()),
        };
        if check.as_deref() != Ok("ORD-20250101-000001") {
            fail("parsed ClOrdID");
        }
        println!(
            "{label}: {} bytes, {} fields",
            bytes.len(),
            fields.len() + 3
        );

        // Parsing.
        let naive_parse_rate = measure(&format!("naive parse {label}"), || {
            let map = naive_parse(black_box(&bytes));
            map.len()
        });
        let options = ParseOptions::default();
        let mut storage = Some(MessageStorage::with_capacity(64));
        let parse_rate = measure(&format!("parse {label} (no dictionary)"), || {
            let st = storage.take().unwrap_or_default();
            match Message::parse_reusing(black_box(&bytes), &options, st) {
                Ok(m) => {
                    let n = m.len();
                    storage = Some(m.into_storage());
                    n
                }
                Err(_) => 0,
            }
        });
        rows.push(Row {
            name: format!("parse {label} (no dictionary)"),
            rate: parse_rate,
            baseline: Some(naive_parse_rate),
        });
        let parse_alloc_rate = measure(&format!("parse {label} (fresh Vec per message)"), || {
            Message::parse(black_box(&bytes)).map_or(0, |m| m.len())
        });
        rows.push(Row {
            name: format!("parse {label} (fresh Vec per message)"),
            rate: parse_alloc_rate,
            baseline: Some(naive_parse_rate),
        });
        if let Some(dict) = &dictionary {
            let options = ParseOptions::with_dictionary(dict);
            let rate = measure(&format!("parse {label} (FIX44 dictionary"), || {
                let st = storage.take().unwrap_or_default();
                match Message::parse_reusing(black_box(&bytes), &options, st) {
                    Ok(m) => {
                        let n = m.len();
                        storage = Some(m.into_storage());
                        n
                    }
                    Err(_) => 0,
                }
            });
            rows.push(Row {
                name: format!("parse {label} (FIX44 dictionary, groups)"),
                rate,
                baseline: Some(naive_parse_rate),
            });
            let validator = Validator::new(dict);
            match validator.parse(&bytes).map(|m| validator.validate(&m)) {
                Ok(Ok(())) => {}
                other => fail(&format!("{label} does not validate: {other:?}")),
            }
            let rate = measure(&format!("parse+validate {label}"), || {
                let st = storage.take().unwrap_or_default();
                match Message::parse_reusing(black_box(&bytes), &options, st) {
                    Ok(m) => {
                        let ok = validator.validate(&m).is_ok();
                        storage = Some(m.into_storage());
                        usize::from(ok)
                    }
                    Err(_) => 0,
                }
            });
            rows.push(Row {
                name: format!("parse+validate {label} (FIX44)"),
                rate,
                baseline: Some(naive_parse_rate),
            });
        }
        let naive_read = measure(&format!("naive parse {label} + read"), || {
            let map = naive_parse(black_box(&bytes));
            map.get(&11).map_or(0, String::len) + map.get(&38).map_or(0, String::len)
        });
        let read = measure(&format!("parse {label} + read"), || {
            let st = storage.take().unwrap_or_default();
            match Message::parse_reusing(black_box(&bytes), &options, st) {
                Ok(m) => {
                    let n = m.get(11).map_or(0, <[u8]>::len)
                        + m.get_u64(38).unwrap_or(0) as usize
                        + m.get_decimal(44).map_or(0, |d| d.scale as usize)
                        + m.msg_seq_num().unwrap_or(0) as usize;
                    storage = Some(m.into_storage());
                    n
                }
                Err(_) => 0,
            }
        });
        rows.push(Row {
            name: format!("parse {label} + read 11/38/44/34"),
            rate: read,
            baseline: Some(naive_read),
        });

        // Encoding.
        let naive_encode_rate = measure(&format!("naive encode {label}"), || {
            naive_encode("FIX.4.4", black_box(&fields)).len()
        });
        let mut out = Vec::with_capacity(512);
        let mut seq = 0u64;
        let encode_rate = measure(&format!("encode {label}"), || {
            seq += 1;
            build(&mut builder, seq);
            out.clear();
            builder.encode_into(&mut out);
            out.len()
        });
        rows.push(Row {
            name: format!("encode {label} (build + frame)"),
            rate: encode_rate,
            baseline: Some(naive_encode_rate),
        });
    }

    // Splitting a stream of mixed messages.
    let mut stream = Vec::new();
    for seq in 0..1000u64 {
        if seq % 2 == 0 {
            order_builder(&mut builder, seq);
        } else {
            execution_builder(&mut builder, seq);
        }
        builder.encode_into(&mut stream);
    }
    let mut splitter = Splitter::new();
    let split_rate = measure("split", || {
        splitter.clear();
        let mut n = 0;
        for chunk in black_box(&stream).chunks(1460) {
            splitter.feed(chunk);
            while let Some(frame) = splitter.next_frame() {
                n += usize::from(frame.is_ok());
            }
        }
        n
    }) * 1000.0;
    rows.push(Row {
        name: "split TCP stream (1460-byte reads)".to_owned(),
        rate: split_rate,
        baseline: None,
    });

    println!();
    println!(
        "{:<48} {:>14} {:>10} {:>14} {:>8}",
        "case", "msgs/s", "ns/msg", "naive msgs/s", "ratio"
    );
    for row in rows.iter().filter(|r| !r.rate.is_nan()) {
        let (baseline, ratio) = match row.baseline.filter(|b| !b.is_nan()) {
            Some(b) => (format!("{b:.0}"), format!("{:.1}x", row.rate / b)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<48} {:>14.0} {:>10.1} {:>14} {:>8}",
            row.name,
            row.rate,
            1e9 / row.rate,
            baseline,
            ratio
        );
    }
}
