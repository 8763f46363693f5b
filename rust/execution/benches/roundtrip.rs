//! Round-trip latency of the execution engine: submit a resting limit order to the
//! in-process paper venue over FIX on 127.0.0.1 and wait until its ExecutionReport
//! New is applied to the order manager. As the floor, the same run measures a bare
//! TCP echo of a same-sized FIX message between two threads on 127.0.0.1.
//!
//! `cargo bench -p nexus-execution --bench roundtrip`; `NEXUS_BENCH_ORDERS` sets the
//! number of orders (default 100 000). The engine's percentiles end the output as one
//! JSON line, and `NEXUS_BENCH_SAMPLES` names a file for its raw samples: `nexus bench
//! order-roundtrip-rust` reads them to set them beside C++ QuickFIX doing the same
//! round trips. Each order is waited for twice over: as the engine waits by default
//! (the caller spins up to `ExecutionConfig::wait_spin`, then sleeps) and with a
//! caller that sleeps at once, as the C++ QuickFIX harness does (its samples in
//! `NEXUS_BENCH_SAMPLES.sleeping`).
//!
//! `NEXUS_BENCH_VARIANT=caller-reads` runs only the busy-polling, caller-reads
//! variant and prints its percentiles: quick turns for comparing two builds (run
//! each build's bench binary in alternation), or one run under callgrind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use nexus_execution::{
    ExecType, ExecutionConfig, ExecutionEngine, InstrumentConfig, OrderRequest, OrderStatus,
    OrderType, Side, TimeInForce,
};

const SYM: &str = "ESZ6";

/// The busy polling of the third variant.
const BUSY_POLL: Duration = Duration::from_micros(500);

/// How long the session's reader stays aside after the caller read (the
/// variant where the waiting caller reads its report itself).
const CALLER_READS: Duration = Duration::from_millis(2);

/// A NewOrderSingle of the size the engine sends (the echo payload).
const FIX_MSG: &[u8] = b"8=FIX.4.4\x019=148\x0135=D\x0134=12345\x0149=NEXUS\x0152=20261121-06:00:00.000000000\x0156=PAPER\x0111=ORD0000012345\x0121=1\x0138=1\x0140=2\x0144=50.00\x0154=1\x0155=ESZ6\x0159=0\x0160=20261121-06:00:00.000\x0110=123\x01";

fn percentiles(name: &str, samples: &mut [u64]) -> [f64; 4] {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i.min(samples.len() - 1)] as f64 / 1000.0
    };
    let p = [
        at(0.5),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1] as f64 / 1000.0,
    ];
    println!(
        "{name:<28} n={:<7} p50 {:>8.1} us  p99 {:>8.1} us  p99.9 {:>8.1} us  max {:>9.1} us",
        samples.len(),
        p[0],
        p[1],
        p[2],
        p[3]
    );
    p
}

/// Per order: submit to New applied, and the part of it spent in `submit` itself
/// (risk checks and order-manager bookkeeping before the message is queued).
/// `wait_spin`: how long the waiting caller spins before it sleeps.
/// `busy_poll`: how long the FIX readers poll after each message.
/// `caller_reads`: the waiting caller reads its report from the socket itself
/// (`ExecutionConfig::caller_reads`).
/// `on_disk`: a folder for the order journal and the FIX message stores (as
/// `make run` keeps them), or memory only.
fn engine_roundtrips(
    n: usize,
    wait_spin: Duration,
    busy_poll: Duration,
    caller_reads: Duration,
    on_disk: Option<&Path>,
) -> (Vec<u64>, Vec<u64>) {
    let engine = ExecutionEngine::start(ExecutionConfig {
        instruments: vec![InstrumentConfig::new(SYM, 2, 0, 25)],
        wait_spin,
        busy_poll,
        caller_reads,
        journal_dir: on_disk.map(|d| d.join("orders")),
        store_dir: on_disk.map(|d| d.join("fix")),
        ..ExecutionConfig::default()
    })
    .expect("engine starts");
    assert!(engine.wait_logged_on(Duration::from_secs(5)), "logon");
    engine
        .on_quote(SYM, 10_000, 10_025, 5, 20, 1_700_000_000_000_000_000)
        .expect("quote");
    let mut samples = Vec::with_capacity(n);
    let mut in_submit = Vec::with_capacity(n);
    let mut last = engine.last_sequence();
    for i in 0..n {
        let request = OrderRequest {
            client_order_id: format!("B{i}"),
            symbol: SYM.to_owned(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            quantity: 1,
            limit_price: Some(5_000),
            time_in_force: TimeInForce::Day,
            venues: Vec::new(),
        };
        let started = Instant::now();
        let order = engine.submit(request).expect("submit");
        in_submit.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        assert_eq!(order.status, OrderStatus::PendingNew);
        let seq = engine.wait_report_after(last, Duration::from_secs(5));
        let elapsed = started.elapsed();
        assert!(seq > last, "no report for order {i}");
        let reports = engine.reports_since(last, 1);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].exec_type, ExecType::New, "{:?}", reports[0]);
        assert_eq!(reports[0].order.order_id, order.order_id);
        samples.push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        last = seq;
    }
    engine.stop();
    (samples, in_submit)
}

/// Per order, the round trip less the part spent in `submit()`: from the order
/// queued to its New applied.
fn after(round_trips: &[u64], in_submit: &[u64]) -> Vec<u64> {
    round_trips
        .iter()
        .zip(in_submit)
        .map(|(t, s)| t.saturating_sub(*s))
        .collect()
}

/// Reads `buf` whole; `polling`: without waiting, yielding the core between
/// tries (as the FIX readers' busy polling does). False at the end of the stream.
fn read_whole(s: &mut TcpStream, buf: &mut [u8], polling: bool) -> bool {
    if !polling {
        return s.read_exact(buf).is_ok();
    }
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(_) => return false,
        }
    }
    true
}

/// The floor: a bare TCP echo of a FIX-sized message between two threads;
/// `polling`: both ends poll their sockets instead of blocking.
fn echo_roundtrips(n: usize, polling: bool) -> Vec<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let len = FIX_MSG.len();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_nodelay(true).expect("nodelay");
        s.set_nonblocking(polling).expect("nonblocking");
        let mut buf = vec![0u8; len];
        while read_whole(&mut s, &mut buf, polling) {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    c.set_nonblocking(polling).expect("nonblocking");
    let mut buf = vec![0u8; len];
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        c.write_all(FIX_MSG).expect("write");
        assert!(read_whole(&mut c, &mut buf, polling), "echo ended");
        samples.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    drop(c);
    server.join().expect("echo thread");
    samples
}

/// How often the host held up a thread that does nothing but read the clock for
/// `span`: the gaps between consecutive readings of at least 20 and 50 us, per
/// second, and the longest (in us). A round trip that such a gap falls into
/// takes that much longer, whatever the code does.
fn host_gaps(span: Duration) -> (f64, f64, f64) {
    let start = Instant::now();
    let mut last = start;
    let (mut over_20, mut over_50, mut longest) = (0u32, 0u32, Duration::ZERO);
    while last.duration_since(start) < span {
        let now = Instant::now();
        let gap = now.duration_since(last);
        if gap >= Duration::from_micros(20) {
            over_20 += 1;
            if gap >= Duration::from_micros(50) {
                over_50 += 1;
            }
            longest = longest.max(gap);
        }
        last = now;
    }
    let secs = last.duration_since(start).as_secs_f64();
    (
        f64::from(over_20) / secs,
        f64::from(over_50) / secs,
        longest.as_secs_f64() * 1e6,
    )
}

/// The `cpu` line of /proc/stat: (steal, all eight counters), in clock ticks; None
/// where there is none (not Linux).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    // user nice system idle iowait irq softirq steal (guest time is in user and nice).
    let ticks: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    Some((*ticks.get(7)?, ticks.iter().sum()))
}

/// The share of the CPU time the hypervisor kept from this machine (steal) between two
/// [`cpu_ticks`] readings, in percent.
fn steal_percent(from: Option<(u64, u64)>, to: Option<(u64, u64)>) -> Option<f64> {
    let ((steal0, all0), (steal1, all1)) = (from?, to?);
    let all = all1.checked_sub(all0).filter(|&t| t > 0)?;
    Some(100.0 * steal1.saturating_sub(steal0) as f64 / all as f64)
}

/// A percentage as JSON: `null` when unknown.
fn json_percent(percent: Option<f64>) -> String {
    percent.map_or_else(|| "null".to_owned(), |p| format!("{p:.3}"))
}

/// Prints the steal of a run, when the machine reports it.
fn print_steal(what: &str, percent: Option<f64>) {
    if let Some(p) = percent {
        println!(
            "host: during {what} the hypervisor kept {p:.2}% of the CPU time (steal, /proc/stat)"
        );
    }
}

fn main() {
    let n = std::env::var("NEXUS_BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(100_000);
    println!("round trips: {n} (NEXUS_BENCH_ORDERS)");
    let spin = ExecutionConfig::default().wait_spin;
    let zero = Duration::ZERO;
    match std::env::var("NEXUS_BENCH_VARIANT").as_deref() {
        Err(_) | Ok("") => {}
        Ok("caller-reads") => {
            let before = cpu_ticks();
            let (mut reading, mut in_submit) =
                engine_roundtrips(n, spin, BUSY_POLL, CALLER_READS, None);
            let mut after_submit = after(&reading, &in_submit);
            percentiles("caller reads", &mut reading);
            percentiles("  of which in submit()", &mut in_submit);
            percentiles("  submit() -> New applied", &mut after_submit);
            print_steal("the run", steal_percent(before, cpu_ticks()));
            return;
        }
        Ok(other) => panic!("NEXUS_BENCH_VARIANT: unknown variant {other:?} (caller-reads)"),
    }
    let run_start = cpu_ticks();
    let (mut ours, mut in_submit) = engine_roundtrips(n, spin, zero, zero, None);
    let (mut sleeping, _) = engine_roundtrips(n, zero, zero, zero, None);
    let (mut polling, _) = engine_roundtrips(n, spin, BUSY_POLL, zero, None);
    let reading_start = cpu_ticks();
    let (mut reading, _) = engine_roundtrips(n, spin, BUSY_POLL, CALLER_READS, None);
    let reading_steal = steal_percent(reading_start, cpu_ticks());
    let disk = std::env::temp_dir().join(format!("nexus-roundtrip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&disk);
    let (mut journaled, _) = engine_roundtrips(n, spin, zero, zero, Some(&disk));
    let _ = std::fs::remove_dir_all(&disk);
    let mut floor = echo_roundtrips(n, false);
    let mut polling_floor = echo_roundtrips(n, true);
    let (over_20, over_50, longest) = host_gaps(Duration::from_secs(1));
    let run_steal = steal_percent(run_start, cpu_ticks());
    let mut after_submit = after(&ours, &in_submit);
    let mut first: Vec<u64> = ours.iter().take(1000).copied().collect();
    let a = percentiles("engine submit -> New", &mut ours);
    percentiles("  of which in submit()", &mut in_submit);
    percentiles("  queued -> New applied", &mut after_submit);
    percentiles("  first 1000 orders", &mut first);
    println!(
        "  (the caller spins up to {} us for the answer, then sleeps: ExecutionConfig::wait_spin)",
        spin.as_micros()
    );
    let c = percentiles("same, the caller sleeps", &mut sleeping);
    let d = percentiles("same, FIX readers busy-poll", &mut polling);
    println!(
        "  (ExecutionConfig::busy_poll {} us: the readers poll their sockets that long after each message)",
        BUSY_POLL.as_micros()
    );
    let g = percentiles("same, the caller reads", &mut reading);
    println!(
        "  (busy polling as above, and ExecutionConfig::caller_reads {} us: the waiting caller reads its report from the socket itself)",
        CALLER_READS.as_micros()
    );
    let e = percentiles("same, journal + FIX stores", &mut journaled);
    println!(
        "  (the order journal, compacting every {} MiB, and the FIX message stores on disk, as make run keeps them)",
        ExecutionConfig::default().journal_compact_bytes >> 20
    );
    let b = percentiles("tcp echo (floor)", &mut floor);
    let f = percentiles("tcp echo, both ends poll", &mut polling_floor);
    for (name, ours) in [
        ("ratio busy-poll / polling echo", d),
        ("ratio caller reads / echo", g),
    ] {
        println!(
            "{name:<28} p50 {:>8.2}x    p99 {:>8.2}x    p99.9 {:>8.2}x",
            ours[0] / f[0],
            ours[1] / f[1],
            ours[2] / f[2],
        );
    }
    println!(
        "host: a thread only reading the clock for 1 s was held up {over_20:.0} times a second \
         for 20 us or more, {over_50:.0} for 50 us or more, longest {longest:.0} us"
    );
    print_steal("the caller-reads variant", reading_steal);
    print_steal("the whole run", run_steal);
    // Machine-readable, for `nexus bench order-roundtrip-rust`: the raw samples (ns, one
    // a line) to NEXUS_BENCH_SAMPLES when set, and the percentiles as one JSON line.
    if let Some(path) = std::env::var_os("NEXUS_BENCH_SAMPLES") {
        // Each variant's in PATH plus a suffix (the names `nexus bench` reads).
        for (suffix, samples) in [
            ("", &ours),
            (".journaled", &journaled),
            (".echo_polling", &polling_floor),
            (".sleeping", &sleeping),
            (".sleeping.polling", &polling),
            (".caller_reads", &reading),
        ] {
            let mut file = path.clone();
            file.push(suffix);
            let text: String = samples.iter().map(|ns| format!("{ns}\n")).collect();
            std::fs::write(&file, text).expect("write NEXUS_BENCH_SAMPLES");
        }
    }
    println!(
        "{{\"mode\": \"roundtrip\", \"orders\": {n}, \"p50_us\": {:.2}, \"p99_us\": {:.2}, \"p999_us\": {:.2}, \"max_us\": {:.2}, \"wait_spin_us\": {}, \"sleeping_p50_us\": {:.2}, \"sleeping_p99_us\": {:.2}, \"sleeping_p999_us\": {:.2}, \"busy_poll_us\": {}, \"polling_p50_us\": {:.2}, \"polling_p99_us\": {:.2}, \"polling_p999_us\": {:.2}, \"journaled_p50_us\": {:.2}, \"journaled_p99_us\": {:.2}, \"journaled_p999_us\": {:.2}, \"journaled_max_us\": {:.2}, \"caller_reads_us\": {}, \"reading_p50_us\": {:.2}, \"reading_p99_us\": {:.2}, \"reading_p999_us\": {:.2}, \"host_gaps_20us_per_s\": {over_20:.0}, \"host_gaps_50us_per_s\": {over_50:.0}, \"host_gap_longest_us\": {longest:.0}, \"reading_steal_pct\": {}, \"steal_pct\": {}}}",
        a[0], a[1], a[2], a[3], spin.as_micros(), c[0], c[1], c[2], BUSY_POLL.as_micros(), d[0], d[1], d[2], e[0], e[1], e[2], e[3], CALLER_READS.as_micros(), g[0], g[1], g[2],
        json_percent(reading_steal), json_percent(run_steal)
    );
    println!(
        "{:<28} p50 {:>8.2}x    p99 {:>8.2}x    p99.9 {:>8.2}x    max {:>9.2}x",
        "ratio engine / floor",
        a[0] / b[0],
        a[1] / b[1],
        a[2] / b[2],
        a[3] / b[3]
    );
}
