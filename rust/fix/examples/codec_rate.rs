//! The Rust-native side of `nexus bench fix-codec`: parses and encodes the FIX messages
//! in a file (one a line, as the Python benchmark writes them) on one thread, doing the
//! same work as the C++ QuickFIX harness (`bench/quickfix_cpp/`), and prints one JSON
//! object a line: messages/s, the median of REPEATS rounds of at least MIN_MS each.
//! Cases: `parse-only` (the frame checked, fields split, groups laid out, nothing
//! read), `parse` (the same, then the typed reads), `parse+validate` and `encode`.
//!
//! `cargo run --release -p nexus-fix --example codec_rate -- MESSAGES DICTIONARY [REPEATS] [MIN_MS]`
//!
//! With `--rounds N` first, it times nothing: it parses and reads every message N times
//! (the `parse` case; with `--validate` or `--only` after N, the `parse+validate` or
//! `parse-only` case) and prints the messages handled, for instruction counts under
//! `valgrind --tool=cachegrind` (two runs differing only in N: the difference divided
//! by the extra messages is the cost of one message).

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use nexus_fix::message::MessageStorage;
use nexus_fix::{
    Dictionary, FieldAccess, FieldError, Message, MessageBuilder, ParseOptions, Validator,
};

/// One benchmark message split into what an application holds before encoding it.
struct Fields {
    raw: Vec<u8>,
    msg_type: String,
    sender: String,
    target: String,
    seq_num: u64,
    sending_time: Vec<u8>,
    /// Body fields in wire order, group fields included.
    body: Vec<(u32, Vec<u8>)>,
}

fn split(raw: &[u8]) -> Result<Fields, String> {
    let msg = Message::parse(raw).map_err(|e| format!("not a FIX message: {e}"))?;
    let text = |tag| {
        msg.get_str(tag)
            .map(str::to_owned)
            .map_err(|e| e.to_string())
    };
    let header = [8, 9, 35, 49, 56, 34, 52, 10];
    Ok(Fields {
        raw: raw.to_vec(),
        msg_type: text(35)?,
        sender: text(49)?,
        target: text(56)?,
        seq_num: msg.msg_seq_num().map_err(|e| e.to_string())?,
        sending_time: msg.get_bytes(52).map_err(|e| e.to_string())?.to_vec(),
        body: msg
            .iter()
            .filter(|(tag, _)| !header.contains(tag))
            .map(|(tag, value)| (tag, value.to_vec()))
            .collect(),
    })
}

fn seq(m: &Message<'_>) -> Result<usize, FieldError> {
    Ok(m.msg_seq_num()? as usize)
}
fn text<'a>(m: &impl FieldAccess<'a>, tag: u32) -> Result<usize, FieldError> {
    Ok(m.get_str(tag)?.len())
}
fn char_(m: &Message<'_>, tag: u32) -> Result<usize, FieldError> {
    Ok(usize::from(m.get_char(tag)?))
}
fn qty(m: &Message<'_>, tag: u32) -> Result<usize, FieldError> {
    Ok(m.get_decimal(tag)?.mantissa as usize)
}

/// The typed fields read from a NewOrderSingle (the C++ harness reads the same).
fn read_order(m: &Message<'_>) -> Result<usize, FieldError> {
    let mut n = seq(m)?
        + text(m, 11)?
        + text(m, 55)?
        + char_(m, 54)?
        + qty(m, 38)?
        + char_(m, 40)?
        + qty(m, 44)?;
    if let Some(parties) = m.group(453) {
        for party in parties.entries() {
            n += text(&party, 448)?;
        }
    }
    Ok(n)
}

/// The typed fields read from an ExecutionReport (the C++ harness reads the same).
fn read_execution(m: &Message<'_>) -> Result<usize, FieldError> {
    Ok(seq(m)?
        + text(m, 37)?
        + text(m, 11)?
        + text(m, 17)?
        + char_(m, 150)?
        + char_(m, 39)?
        + text(m, 55)?
        + char_(m, 54)?
        + qty(m, 38)?
        + qty(m, 32)?
        + qty(m, 31)?
        + qty(m, 151)?
        + qty(m, 14)?
        + qty(m, 6)?)
}

fn encode(f: &Fields, builder: &mut MessageBuilder, out: &mut Vec<u8>) -> usize {
    builder
        .reset(&f.msg_type)
        .sender_comp_id(&f.sender)
        .target_comp_id(&f.target)
        .msg_seq_num(f.seq_num)
        .sending_time_raw(&f.sending_time);
    for (tag, value) in &f.body {
        builder.field(*tag, value);
    }
    out.clear();
    builder.encode_into(out);
    out.len()
}

/// Runs `pass` (which handles `count` messages) in `repeats` rounds of at least
/// `min_seconds`; returns the median messages/second.
fn median_rate(
    mut pass: impl FnMut() -> usize,
    count: usize,
    repeats: usize,
    min_seconds: f64,
) -> f64 {
    for _ in 0..3 {
        black_box(pass());
    }
    let mut rates = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        let mut messages = 0usize;
        loop {
            black_box(pass());
            messages += count;
            let elapsed = start.elapsed().as_secs_f64();
            if elapsed >= min_seconds {
                rates.push(messages as f64 / elapsed);
                break;
            }
        }
    }
    rates.sort_by(f64::total_cmp);
    rates[repeats / 2]
}

/// What is done with each parsed message.
#[derive(Clone, Copy)]
enum Case {
    /// Nothing (the `parse-only` case).
    Only,
    /// The typed reads (the `parse` case).
    Read,
    /// Validation, then the typed reads (the `parse+validate` case).
    Validate,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Self::Only => "parse-only",
            Self::Read => "parse",
            Self::Validate => "parse+validate",
        }
    }
}

fn name_of(msg_type: &str) -> &str {
    match msg_type {
        "D" => "NewOrderSingle",
        "8" => "ExecutionReport",
        other => other,
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let (fixed_rounds, args) = match args {
        [flag, n, rest @ ..] if flag == "--rounds" => (
            Some(
                n.parse::<usize>()
                    .map_err(|_| format!("not a number of rounds: {n}"))?,
            ),
            rest,
        ),
        _ => (None, args),
    };
    let (rounds_case, args) = match args {
        [flag, rest @ ..] if flag == "--validate" && fixed_rounds.is_some() => {
            (Case::Validate, rest)
        }
        [flag, rest @ ..] if flag == "--only" && fixed_rounds.is_some() => (Case::Only, rest),
        _ => (Case::Read, args),
    };
    let [messages_path, dictionary_path, rest @ ..] = args else {
        return Err(
            "usage: codec_rate [--rounds N [--validate | --only]] MESSAGES DICTIONARY [REPEATS] [MIN_MS]"
                .to_owned(),
        );
    };
    let number = |i: usize, default: f64| -> Result<f64, String> {
        rest.get(i).map_or(Ok(default), |v| {
            v.parse::<f64>()
                .ok()
                .filter(|x| *x > 0.0)
                .ok_or_else(|| format!("not a positive number: {v}"))
        })
    };
    let repeats = number(0, 5.0)? as usize;
    let min_seconds = number(1, 200.0)? / 1000.0;
    let dictionary = Dictionary::from_file(dictionary_path).map_err(|e| e.to_string())?;
    let data = std::fs::read(messages_path).map_err(|e| format!("{messages_path}: {e}"))?;
    let mut by_type: Vec<(String, Vec<Fields>)> = Vec::new();
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let f = split(line)?;
        match by_type.iter_mut().find(|(t, _)| *t == f.msg_type) {
            Some((_, list)) => list.push(f),
            None => by_type.push((f.msg_type.clone(), vec![f])),
        }
    }
    let options = ParseOptions::with_dictionary(&dictionary);
    let validator = Validator::new(&dictionary);
    let mut builder = MessageBuilder::new("FIX.4.4", "D");
    let mut out = Vec::with_capacity(512);
    for (msg_type, messages) in &by_type {
        let read = if msg_type == "D" {
            read_order
        } else {
            read_execution
        };
        // The same answers as the input, or the comparison is meaningless.
        for f in messages {
            let m = Message::parse_with_options(&f.raw, &options).map_err(|e| e.to_string())?;
            validator.validate(&m).map_err(|e| format!("{e:?}"))?;
            read(&m).map_err(|e| e.to_string())?;
            encode(f, &mut builder, &mut out);
            if out != f.raw {
                return Err(format!(
                    "re-encoded differently: {}",
                    String::from_utf8_lossy(&out)
                ));
            }
        }
        let count = messages.len();
        let mut storage = Some(MessageStorage::with_capacity(64));
        let mut parse = |case: Case| -> usize {
            let mut n = 0;
            for f in messages {
                let st = storage.take().unwrap_or_default();
                if let Ok(m) = Message::parse_reusing(black_box(&f.raw), &options, st) {
                    n += match case {
                        // Nothing read: the frame checked, the fields split and the
                        // groups laid out.
                        Case::Only => 1,
                        Case::Read => read(&m).unwrap_or(0),
                        Case::Validate if validator.validate(&m).is_ok() => read(&m).unwrap_or(0),
                        Case::Validate => 0,
                    };
                    storage = Some(m.into_storage());
                }
            }
            n
        };
        if let Some(rounds) = fixed_rounds {
            let mut n = 0;
            for _ in 0..rounds {
                n += parse(rounds_case);
            }
            println!(
                "{{\"mode\": \"rounds\", \"case\": \"{}\", \"message\": \"{}\", \"messages\": {}, \"read\": {n}}}",
                rounds_case.name(),
                name_of(msg_type),
                rounds * count
            );
            continue;
        }
        let mut rates = vec![
            (
                "parse-only",
                median_rate(|| parse(Case::Only), count, repeats, min_seconds),
            ),
            (
                "parse",
                median_rate(|| parse(Case::Read), count, repeats, min_seconds),
            ),
            (
                "parse+validate",
                median_rate(|| parse(Case::Validate), count, repeats, min_seconds),
            ),
        ];
        let encode_rate = median_rate(
            || {
                messages
                    .iter()
                    .map(|f| encode(f, &mut builder, &mut out))
                    .sum()
            },
            count,
            repeats,
            min_seconds,
        );
        rates.push(("encode", encode_rate));
        for (case, rate) in rates {
            println!(
                "{{\"mode\": \"codec\", \"case\": \"{case}\", \"message\": \"{}\", \"rate\": {rate:.1}, \"messages\": {count}, \"repeats\": {repeats}}}",
                name_of(msg_type)
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codec_rate: {e}");
            ExitCode::FAILURE
        }
    }
}
