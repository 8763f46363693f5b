"""Benchmarks behind `nexus bench` / `make bench`.

Each benchmark times the Nexus path and a baseline doing the same work on the
same input in the same run, and prints both medians and their ratio. The
machines are shared and noisy: read the ratio, not the absolute figure.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import numpy as np
import numpy.typing as npt

from nexus import engine

if TYPE_CHECKING:
    from nexus.execution.v1.execution_pb2_grpc import ExecutionServiceStub

__all__ = [
    "BENCHMARKS",
    "PipelineResult",
    "engine_quote_pipeline",
    "pandas_quote_pipeline",
    "pipeline_differences",
    "run",
]

SOH = b"\x01"
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "market"
SHARED = Path(os.environ.get("NEXUS_SHARED_DATA", REPO.parent / "shared" / "data"))


def _oanda_eurusd_ticks() -> tuple[Path, str]:
    """The larger shared OANDA EUR/USD tick set when present, else the shipped sample."""
    shared = SHARED / "market" / "fx" / "ticks" / "lean_oanda_eurusd"
    if shared.is_dir():
        return shared, "shared OANDA EUR/USD ticks, 13 days"
    return SAMPLE / "fx" / "ticks" / "lean_oanda_eurusd", "sample OANDA EUR/USD ticks, 3 days"


# -- FIX framing ----------------------------------------------------------


def _messages(count: int) -> list[bytes]:
    """NewOrderSingle messages with varying ids and prices, framed by the engine."""
    out = []
    for i in range(count):
        body = SOH.join(
            [
                b"35=D",
                f"34={i + 2}".encode(),
                b"49=NEXUS",
                b"52=20260101-12:00:00.000",
                b"56=PAPER",
                f"11=ORD{i:08d}".encode(),
                b"21=1",
                b"55=EUR/USD",
                b"54=1",
                b"60=20260101-12:00:00.000",
                f"38={1000 + i % 97}".encode(),
                b"40=2",
                f"44=1.{8000 + i % 500:05d}".encode(),
                b"",
            ]
        )
        out.append(engine.fix_encode_frame("FIX.4.4", body))
    return out


def _python_verify(msg: bytes) -> str:
    """A straightforward pure-Python FIX frame check: the baseline."""
    fields = msg.split(SOH)
    if not fields[0].startswith(b"8=") or not fields[1].startswith(b"9="):
        raise ValueError("bad header")
    body_start = len(fields[0]) + len(fields[1]) + 2
    trailer_at = msg.rindex(b"10=", body_start)
    if int(fields[1][2:]) != trailer_at - body_start:
        raise ValueError("bad BodyLength")
    if int(msg[trailer_at + 3 : trailer_at + 6]) != sum(msg[:trailer_at]) % 256:
        raise ValueError("bad CheckSum")
    if not fields[2].startswith(b"35="):
        raise ValueError("no MsgType")
    return fields[2][3:].decode()


def _median_rate(run: Callable[[], object], count: int, repeats: int) -> float:
    """Items per second of `run` (which handles `count` items), over the median time."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return count / statistics.median(times)


def _rate(fn: Callable[[bytes], object], items: list[bytes], repeats: int) -> float:
    def run() -> None:
        for item in items:
            fn(item)

    return _median_rate(run, len(items), repeats)


def bench_fix_frame(repeats: int) -> list[str]:
    """FIX frame check of NewOrderSingle from Python: Rust against pure Python."""
    items = _messages(20_000)
    for item in items[:100]:  # same answers, or the comparison is meaningless
        if engine.fix_verify_frame(item).msg_type != _python_verify(item):
            raise AssertionError("Rust and Python disagree")
    ours = _rate(lambda m: engine.fix_verify_frame(m).msg_type, items, repeats)
    base = _rate(_python_verify, items, repeats)
    return [
        f"fix-frame: nexus {ours:,.0f} msgs/s | pure Python {base:,.0f} msgs/s | "
        f"ratio {ours / base:.2f}x (median of {repeats}, {len(items)} messages)"
    ]


# -- FIX codec against QuickFIX -------------------------------------------

QUICKFIX_HEADER = Path("/usr/include/quickfix/Message.h")
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
QUICKFIX_CPP = TARGET / "quickfix-cpp" / "quickfix_bench"
SENDING_TIME_NS = 1_790_000_000_000_000_000
PARTIES = 453  # the repeating group in the NewOrderSingle, delimited by PartyID (448)


def _order_fields(i: int) -> list[tuple[int, bytes]]:
    return [
        (11, f"ORD-{i:08d}".encode()),
        (1, b"ACC-7781"),
        (21, b"1"),
        (PARTIES, b"2"),
        (448, b"BRKR01"),
        (447, b"D"),
        (452, b"1"),
        (448, f"TRDR{i % 50:02d}".encode()),
        (447, b"D"),
        (452, b"11"),
        (55, b"EUR/USD"),
        (54, b"1" if i % 2 else b"2"),
        (60, b"20260101-12:00:00.000"),
        (38, f"{1000 + i % 97 * 1000}".encode()),
        (40, b"2"),
        (44, f"1.{8000 + i % 500:04d}5".encode()),
        (59, b"0"),
    ]


def _execution_fields(i: int) -> list[tuple[int, bytes]]:
    qty, filled = 1000 + i % 97 * 1000, 500 + i % 97 * 500
    return [
        (37, f"OID-{i:07d}".encode()),
        (11, f"ORD-{i:08d}".encode()),
        (17, f"EXEC-{i:010d}".encode()),
        (150, b"F"),
        (39, b"1"),
        (1, b"ACC-7781"),
        (55, b"EUR/USD"),
        (54, b"1" if i % 2 else b"2"),
        (38, str(qty).encode()),
        (40, b"2"),
        (44, f"1.{8000 + i % 500:04d}5".encode()),
        (32, str(filled).encode()),
        (31, f"1.{8000 + i % 500:04d}4".encode()),
        (151, str(qty - filled).encode()),
        (14, str(filled).encode()),
        (6, f"1.{8000 + i % 500:04d}4".encode()),
        (60, b"20260101-12:00:00.000"),
        (58, b"partial fill"),
    ]


CODEC_MESSAGES: dict[str, tuple[str, Callable[[int], list[tuple[int, bytes]]], list[int]]] = {
    # name: (MsgType, body fields of message i, the tags read after parsing)
    "NewOrderSingle": ("D", _order_fields, [34, 11, 55, 54, 38, 40, 44]),
    "ExecutionReport": (
        "8",
        _execution_fields,
        [34, 37, 11, 17, 150, 39, 55, 54, 38, 32, 31, 151, 14, 6],
    ),
}


def _codec_messages(name: str, count: int) -> list[tuple[list[tuple[int, bytes]], bytes]]:
    """`count` messages of one kind with varying ids, sides, quantities and prices:
    each message's body fields and its bytes, framed by the engine."""
    msg_type, fields_of, _ = CODEC_MESSAGES[name]
    out = []
    for i in range(count):
        fields = fields_of(i)
        raw = engine.fix_build(
            "FIX.4.4", msg_type, "NEXUS", "PAPER", i + 1, SENDING_TIME_NS, fields
        )
        out.append((fields, raw))
    return out


def _json_lines(args: list[str], env: dict[str, str] | None = None) -> list[dict[str, object]]:
    """Runs a benchmark program and returns the JSON objects it prints, one a line."""
    import json  # noqa: PLC0415

    done = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-500:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _native_program(example: str) -> Path | str:
    """Builds a Rust example of nexus-fix (release profile); returns its path, or why not."""
    try:
        subprocess.run(
            ["cargo", "build", "--release", "-q", "-p", "nexus-fix", "--example", example],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        return f"cargo build of the {example} example failed: {error}"
    return TARGET / "release" / "examples" / example


def _quickfix_cpp() -> Path | str:
    """The C++ QuickFIX harness (bench/quickfix_cpp), built by make when missing; or
    why it is not there."""
    if not QUICKFIX_HEADER.exists():
        return f"{QUICKFIX_HEADER} not found (`make quickfix-cpp` installs libquickfix-dev)"
    try:
        subprocess.run(
            ["make", "-s", os.fspath(QUICKFIX_CPP.relative_to(REPO))],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError, ValueError) as error:
        return f"building {QUICKFIX_CPP} failed: {error}"
    return QUICKFIX_CPP


def _python_codec_rates(
    name: str, messages: list[tuple[list[tuple[int, bytes]], bytes]], spec: Path, repeats: int
) -> dict[tuple[str, str], tuple[float, float]]:
    """From Python: (Nexus, QuickFIX Python binding) messages/s for parse and encode."""
    import quickfix as qf  # noqa: PLC0415 - benchmark-only dependency

    msg_type, _, tags = CODEC_MESSAGES[name]
    ours_dd = engine.FixDictionary(spec)
    their_dd = qf.DataDictionary(os.fspath(spec))
    raws = [raw for _, raw in messages]
    texts = [raw.decode() for raw in raws]
    header_tags = {34}

    def parse_ours() -> None:
        for raw in raws:
            message = ours_dd.parse(raw)
            for tag in tags:
                message.get(tag)

    def parse_theirs() -> None:
        for text in texts:
            message = qf.Message(text, their_dd, True)
            header = message.getHeader()
            for tag in tags:
                (header if tag in header_tags else message).getField(tag)

    def encode_ours() -> None:
        for i, (fields, _) in enumerate(messages):
            engine.fix_build("FIX.4.4", msg_type, "NEXUS", "PAPER", i + 1, SENDING_TIME_NS, fields)

    def encode_theirs() -> None:
        for i, (fields, _) in enumerate(messages):
            message = qf.Message()
            header = message.getHeader()
            header.setField(qf.BeginString("FIX.4.4"))
            header.setField(qf.MsgType(msg_type))
            header.setField(qf.SenderCompID("NEXUS"))
            header.setField(qf.TargetCompID("PAPER"))
            header.setField(qf.MsgSeqNum(i + 1))
            header.setField(52, "20260101-12:00:00.000")
            party = None
            for tag, value in fields:
                if tag == PARTIES:
                    continue
                if tag == 448:  # a new Parties entry
                    if party is not None:
                        message.addGroup(party)
                    party = qf.Group(PARTIES, 448)
                if party is not None and tag in (448, 447, 452):
                    party.setField(tag, value.decode())
                    continue
                if party is not None:
                    message.addGroup(party)
                    party = None
                message.setField(tag, value.decode())
            message.toString()

    def rate(fn: Callable[[], None]) -> float:
        return _median_rate(fn, len(raws), repeats)

    return {
        ("parse", name): (rate(parse_ours), rate(parse_theirs)),
        ("encode", name): (rate(encode_ours), rate(encode_theirs)),
    }


def bench_fix_codec(repeats: int) -> list[str]:
    """NewOrderSingle and ExecutionReport parse and encode: the Rust codec from Rust
    against C++ QuickFIX (the headline), and from Python against QuickFIX's Python
    binding; same messages, same dictionary, same run."""
    spec = Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"
    if not spec.exists():
        return [f"fix-codec: skipped, {spec} not found (pip install quickfix-ssl)"]
    count = 1_000
    messages = {name: _codec_messages(name, count) for name in CODEC_MESSAGES}
    samples: dict[str, dict[tuple[str, str], list[float]]] = {"native": {}, "cpp": {}}
    notes = []
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        path = Path(tmp) / "messages.fix"
        path.write_bytes(b"".join(raw + b"\n" for kind in messages.values() for _, raw in kind))
        args = [os.fspath(path), os.fspath(spec), "1", "200"]
        runs = []
        for label, program, mode, side in (
            ("Nexus Rust-native", _native_program("codec_rate"), [], "native"),
            ("QuickFIX C++", _quickfix_cpp(), ["codec"], "cpp"),
        ):
            if isinstance(program, str):
                notes.append(f"fix-codec: {label} skipped: {program}")
            else:
                runs.append(([os.fspath(program), *mode, *args], samples[side]))
        # One round of each program in turn, so that both see the same noise.
        for _ in range(repeats):
            for command, out in runs:
                for row in _json_lines(command):
                    key = (str(row["case"]), str(row["message"]))
                    out.setdefault(key, []).append(float(str(row["rate"])))
    native = {key: statistics.median(rates) for key, rates in samples["native"].items()}
    cpp = {key: statistics.median(rates) for key, rates in samples["cpp"].items()}
    python: dict[tuple[str, str], tuple[float, float]] = {}
    for name, kind in messages.items():
        python.update(_python_codec_rates(name, kind, spec, repeats))

    def figure(rate: float | None) -> str:
        return "-" if rate is None else f"{rate:,.0f}/s"

    def ratio(a: float | None, b: float | None) -> str:
        return "-" if a is None or b is None else f"{a / b:.1f}x"

    lines = []
    for name in CODEC_MESSAGES:
        for case in ("parse-only", "parse", "parse+validate", "encode"):
            ours, theirs = native.get((case, name)), cpp.get((case, name))
            line = (
                f"fix-codec {case} {name}: Nexus Rust-native {figure(ours)} | QuickFIX C++ "
                f"{figure(theirs)} | ratio {ratio(ours, theirs)}"
            )
            if (case, name) in python:
                py_ours, py_theirs = python[(case, name)]
                line += (
                    f" || from Python: Nexus {figure(py_ours)} | QuickFIX Python binding "
                    f"{figure(py_theirs)} | ratio {ratio(py_ours, py_theirs)}"
                )
            lines.append(line)
    lines.append(
        f"fix-codec: median of {repeats}, {count:,} messages of each kind, one core; "
        f"dictionary {spec}"
    )
    return notes + lines


# -- the per-tick pipeline against numpy/pandas -------------------------

# The engine's rules, restated for the baseline (quote.rs, indicators.rs).
_BAD_PRICE, _CROSSED, _LOCKED = 1 << 3, 1 << 1, 1 << 2
_TIME_BACKWARDS, _DUPLICATE, _OUTLIER = 1 << 5, 1 << 6, 1 << 7
_OUTLIER_WINDOW, _OUTLIER_MIN_SAMPLES, _OUTLIER_REFRESH = 1_000, 200, 1_000
_OUTLIER_THRESHOLD, _OUTLIER_CONFIRM, _MAD_TO_SIGMA = 25.0, 3, 1.4826
_MINUTE_NS = 60_000_000_000

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PipelineResult:
    """What the per-tick pipeline produced for one day, on either side of the bench."""

    rows: int
    """Rows read, good and bad."""
    flags: npt.NDArray[np.uint32]
    """Quality flags per parsed tick (0 = accepted), bits as in the QualityIssue contract."""
    ema: Floats
    """EMA(20) of the mid after each accepted tick (NaN during warm-up)."""
    rsi: Floats
    """RSI(14) of the mid after each accepted tick (NaN during warm-up)."""
    bars: tuple[Ints, Ints, Ints, Ints, Ints, Ints]
    """1-minute bars of the mid at 6 decimals: minute start (ns), open, high, low, close, ticks."""


def _day_start_ns(path: Path, utc_offset_minutes: int) -> int:
    day = path.name[:8]
    start = calendar.timegm((int(day[:4]), int(day[4:6]), int(day[6:]), 0, 0, 0))
    return (start - utc_offset_minutes * 60) * 1_000_000_000


def _csv(path: Path) -> bytes:
    import zipfile  # noqa: PLC0415

    with zipfile.ZipFile(path) as archive:
        return archive.read(archive.namelist()[0])


def engine_quote_pipeline(csv: bytes, day_ns: int) -> PipelineResult:
    """The engine's one-call pipeline on CSV in memory, in the bench's terms."""
    flags, ema, rsi, bars, rows = engine.run_quote_pipeline_csv(csv, day_ns, 5)
    ts_open, _, o, h, lo, c, _, ticks = bars
    minute = ts_open - ts_open % _MINUTE_NS
    return PipelineResult(rows, flags, ema, rsi, (minute, o, h, lo, c, ticks.astype(np.int64)))


def _window_stats(returns: Floats, ends: Ints) -> tuple[Floats, Floats]:
    """Median and scaled MAD of the last `_OUTLIER_WINDOW` returns before each end,
    picking the upper middle element as the engine does (no averaging)."""
    median = np.empty(len(ends))
    sigma = np.empty(len(ends))
    full = ends >= _OUTLIER_WINDOW
    if full.any():
        windows = np.lib.stride_tricks.sliding_window_view(returns, _OUTLIER_WINDOW)
        block = windows[ends[full] - _OUTLIER_WINDOW]
        mid = _OUTLIER_WINDOW // 2
        med = np.partition(block, mid, axis=1)[:, mid]
        mad = np.partition(np.abs(block - med[:, None]), mid, axis=1)[:, mid]
        median[full], sigma[full] = med, mad * _MAD_TO_SIGMA
    for i in np.flatnonzero(~full):
        window = returns[: ends[i]]
        mid = len(window) // 2
        med = np.partition(window, mid)[mid]
        median[i] = med
        sigma[i] = np.partition(np.abs(window - med), mid)[mid] * _MAD_TO_SIGMA
    return median, sigma


def _refreshes(returns: Floats) -> tuple[Ints, Floats, Floats]:
    """When the outlier rule recomputes its median and MAD (counts of returns
    pushed so far) and the values it gets: at 200 returns, then every 1,000,
    and after every return while the MAD is zero."""
    points = np.arange(_OUTLIER_MIN_SAMPLES, len(returns) + 1, _OUTLIER_REFRESH)
    median, sigma = _window_stats(returns, points)
    if not (sigma == 0).any():
        return points, median, sigma
    at, found = _OUTLIER_MIN_SAMPLES, []  # rare: a flat market; follow the rule step by step
    while at <= len(returns):
        med, sig = _window_stats(returns, np.array([at]))
        found.append((at, med[0], sig[0]))
        at += 1 if sig[0] == 0 else _OUTLIER_REFRESH
    return (
        np.array([f[0] for f in found], np.int64),
        np.array([f[1] for f in found]),
        np.array([f[2] for f in found]),
    )


def _validate_quotes(ts: Ints, bid: Ints, ask: Ints) -> npt.NDArray[np.uint32]:
    """The engine's quote checks, vectorised. The stateful ones (time backwards,
    duplicate and outlier compare with the last *accepted* quote) are solved as a
    fixed point: guess the accepted set, derive every check from it, repeat until
    the guess holds. Each check depends only on earlier quotes, so the fixed
    point is the sequential answer; rare rejections make it converge in a few passes."""
    flags = np.zeros(len(ts), np.uint32)
    bad = (bid <= 0) | (ask <= 0)
    flags[bad] = _BAD_PRICE
    flags[~bad & (bid > ask)] = _CROSSED
    flags[~bad & (bid == ask)] = _LOCKED
    cand = np.flatnonzero(flags == 0)
    t, b, a = ts[cand], bid[cand], ask[cand]
    mid = (b + a).astype(np.float64)
    index = np.arange(len(cand))
    accepted = np.ones(len(cand), bool)
    for _ in range(len(cand) + 1):
        last = np.maximum.accumulate(np.where(accepted, index, -1))
        ref = np.concatenate(([-1], last[:-1]))
        has = ref >= 0
        r = np.where(has, ref, 0)
        backwards = has & (t < t[r])
        duplicate = has & ~backwards & (t == t[r]) & (b == b[r]) & (a == a[r])
        checked = has & ~backwards & ~duplicate
        returns = (mid - mid[r]) / mid[r]
        pushed = accepted & has
        before: Ints = np.cumsum(pushed) - pushed
        points, median, sigma = _refreshes(returns[pushed])
        k = np.maximum(np.searchsorted(points, before, side="right") - 1, 0)
        far = checked & (before >= _OUTLIER_MIN_SAMPLES) & (len(points) > 0)
        if len(points):
            floor = 1.0 / mid * 2.0
            far &= np.abs(returns - median[k]) > _OUTLIER_THRESHOLD * np.maximum(sigma[k], floor)
        seen = far[checked]
        streak = np.cumsum(seen)
        streak -= np.maximum.accumulate(np.where(seen, 0, streak))
        outlier = np.zeros(len(cand), bool)
        outlier[checked] = seen & (streak < _OUTLIER_CONFIRM)
        now = ~backwards & ~duplicate & ~outlier
        if np.array_equal(now, accepted):
            break
        accepted = now
    flags[cand[backwards]] = _TIME_BACKWARDS
    flags[cand[duplicate]] = _DUPLICATE
    flags[cand[outlier]] = _OUTLIER
    return flags


def _seeded_ewm(values: Floats, period: int, alpha: float) -> Floats:
    """pandas' recursive exponential average, seeded with the mean of the first
    `period` values as TA-Lib (and the engine) seed it."""
    import pandas as pd  # noqa: PLC0415 - benchmark-only dependency

    seeded = np.concatenate(([values[:period].sum() / period], values[period:]))
    out: Floats = pd.Series(seeded).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


def pandas_quote_pipeline(source: Path | bytes, day_ns: int) -> PipelineResult:
    """The baseline: the engine's steps in numpy/pandas, vectorised where they can
    be, single-threaded (pandas' C CSV parser, numpy, pandas ewm and resample)."""
    import io  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415 - benchmark-only dependency

    data = _csv(source) if isinstance(source, Path) else source
    frame = pd.read_csv(
        io.BytesIO(data),
        header=None,
        names=["ms", "bid", "ask"],
        dtype={"ms": np.int64, "bid": np.float64, "ask": np.float64},
    )
    # Exact fixed point at 5 decimals: the nearest integer of the scaled value;
    # text with more decimals is a bad row, as in the engine.
    scaled = frame[["bid", "ask"]].to_numpy() * 1e5
    fixed = np.rint(scaled)
    good = (np.abs(scaled - fixed) < 1e-6).all(axis=1)
    ts = (day_ns + frame["ms"].to_numpy() * 1_000_000)[good]
    bid, ask = fixed[good, 0].astype(np.int64), fixed[good, 1].astype(np.int64)
    flags = _validate_quotes(ts, bid, ask)
    ok = flags == 0
    mid = (bid[ok] + ask[ok]) * 5  # the mid, (bid + ask) / 2, at 6 decimals: exact
    mid_f = mid / 1e6
    ema = np.full(len(mid), np.nan)
    if len(mid) >= 20:
        ema[19:] = _seeded_ewm(mid_f, 20, 2 / 21)
    rsi = np.full(len(mid), np.nan)
    if len(mid) > 14:
        delta = np.diff(mid_f)
        gain = _seeded_ewm(np.clip(delta, 0, None), 14, 1 / 14)
        loss = _seeded_ewm(np.clip(-delta, 0, None), 14, 1 / 14)
        total = gain + loss
        rsi[14:] = np.divide(100 * gain, total, out=np.zeros_like(total), where=total != 0)
    minutes = pd.Series(mid, index=ts[ok].view("datetime64[ns]")).resample("1min")
    ohlc, count = minutes.ohlc(), minutes.count().to_numpy()
    some = count > 0
    columns = [ohlc[c].to_numpy()[some].astype(np.int64) for c in ("open", "high", "low", "close")]
    bars = (ohlc.index.asi8[some], *columns, count[some].astype(np.int64))
    return PipelineResult(len(frame), flags, ema, rsi, bars)


def pipeline_differences(ours: PipelineResult, theirs: PipelineResult) -> list[str]:
    """What differs between two results (EMA and RSI within 1e-9, the rest exactly)."""
    out = []
    if ours.rows != theirs.rows:
        out.append(f"rows {ours.rows} != {theirs.rows}")
    if not np.array_equal(ours.flags, theirs.flags):
        out.append(f"flags differ at {int(np.flatnonzero(ours.flags != theirs.flags)[0])}")
    for name in ("ema", "rsi"):
        a, b = getattr(ours, name), getattr(theirs, name)
        if not np.allclose(a, b, rtol=0, atol=1e-9, equal_nan=True) or len(a) != len(b):
            out.append(f"{name} differs")
    for name, a, b in zip(
        ("minute", "open", "high", "low", "close", "ticks"), ours.bars, theirs.bars, strict=True
    ):
        if not np.array_equal(a, b):
            out.append(f"bar {name} differs")
    return out


def bench_pipeline(repeats: int) -> list[str]:
    """Ticks/s through parse + validate + 1-minute bars + EMA + RSI: the Rust
    pipeline against the same steps in numpy/pandas, on real FX ticks, from the
    zipped files (I/O and inflate included) and from CSV already in memory."""
    shared = SHARED / "market" / "fx" / "ticks" / "lean_fxcm_eurusd"
    if shared.is_dir():
        files, offset, label = sorted(shared.glob("*.zip")), -300, "shared FXCM EUR/USD, 13 days"
    else:
        files = sorted((SAMPLE / "fx" / "ticks" / "lean_oanda_eurusd").glob("*.zip"))
        offset, label = 0, "sample OANDA EUR/USD, 3 days"
    days = [(f, _csv(f), _day_start_ns(f, offset)) for f in files]
    ticks = 0
    for f, csv, day_ns in days:  # same results, or the comparison is meaningless
        result = engine_quote_pipeline(csv, day_ns)
        differences = pipeline_differences(result, pandas_quote_pipeline(csv, day_ns))
        for inflate_thread in (True, False):
            flags = engine.run_quote_pipeline(f, 5, offset, inflate_thread=inflate_thread)[0]
            if not np.array_equal(flags, result.flags):
                differences.append(f"the zip path (inflate_thread={inflate_thread}) disagrees")
        if differences:
            raise AssertionError(f"{f.name}: {'; '.join(differences)}")
        ticks += result.rows

    cases: dict[str, Callable[[tuple[Path, bytes, int]], object]] = {
        "pandas zip": lambda d: pandas_quote_pipeline(d[0], d[2]),
        "pandas csv": lambda d: pandas_quote_pipeline(d[1], d[2]),
        "zip 2 threads": lambda d: engine.run_quote_pipeline(d[0], 5, offset),
        "zip 1 thread": lambda d: engine.run_quote_pipeline(d[0], 5, offset, inflate_thread=False),
        "csv 1 thread": lambda d: engine.run_quote_pipeline_csv(d[1], d[2], 5),
    }
    # In turns: each turn runs every case once over all the days, so that both
    # sides see the same noise; a ratio is taken within each turn. Each case is
    # timed by the wall clock and by the CPU time of this thread (of the whole
    # process for the 2-thread case, whose inflate thread is not this one): on a
    # shared machine the CPU time leaves out the time the thread waited for a
    # core, which the wall clock counts on whichever side it fell.
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            clock = time.process_time if name == "zip 2 threads" else time.thread_time
            start, start_cpu = time.perf_counter(), clock()
            for day in days:
                fn(day)
            cpu[name].append(clock() - start_cpu)
            seconds[name].append(time.perf_counter() - start)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = []
    for what, ours, theirs, threads in (
        (
            "from zip files",
            "zip 2 threads",
            "pandas zip",
            "2 threads: one inflates while one runs the pipeline",
        ),
        ("from zip files", "zip 1 thread", "pandas zip", "1 thread"),
        ("from CSV in memory", "csv 1 thread", "pandas csv", "1 thread"),
    ):
        rate, base = (
            ticks / statistics.median(seconds[ours]),
            ticks / statistics.median(seconds[theirs]),
        )
        ratios = sorted(b / a for a, b in zip(seconds[ours], seconds[theirs], strict=True))
        cpu_ratio = statistics.median(cpu[theirs]) / statistics.median(cpu[ours])
        cpu_ratios = sorted(b / a for a, b in zip(cpu[ours], cpu[theirs], strict=True))
        cpu_what = "CPU time of both threads" if ours == "zip 2 threads" else "thread CPU time"
        lines.append(
            f"pipeline {what} (parse+validate+1m bars+EMA+RSI): nexus {rate:,.0f} ticks/s "
            f"({threads}) | numpy/pandas {base:,.0f} ticks/s (1 thread) | wall-clock ratio "
            f"{rate / base:.1f}x, per turn {ratios[0]:.1f}-{ratios[-1]:.1f}x | {cpu_what} ratio "
            f"{cpu_ratio:.1f}x, per turn {cpu_ratios[0]:.1f}-{cpu_ratios[-1]:.1f}x (medians of "
            f"{repeats} turns; {ticks:,} ticks, {label}; load average {load}; same flags, bars, "
            "EMA and RSI checked on every day first)"
        )
    return lines


# -- StreamTicks over loopback --------------------------------------------

STREAM_METHOD = "/nexus.marketdata.v1.MarketDataService/StreamTicks"


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], port_file: Path) -> Iterator[int]:
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{args[2:4]} did not start: {process.stderr and process.stderr.read()}"
                )
            time.sleep(0.05)
        yield int(port_file.read_text())
    finally:
        process.terminate()
        process.wait(30)


def _consume(target: str, request: bytes, rounds: int) -> tuple[int, float, list[bytes]]:
    """Streams `rounds` times, decoding every message as a client would; returns
    (ticks, seconds, the raw messages of the first round)."""
    from nexus.marketdata.v1 import marketdata_pb2 as md  # noqa: PLC0415 - generated code

    options = [("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(target, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(STREAM_METHOD)
        ticks = 0
        first: list[bytes] = []
        start = time.perf_counter()
        for round_number in range(rounds):
            for raw in call(request, timeout=300):
                message = md.StreamTicksResponse.FromString(raw)
                ticks += sum(len(b.ts_event_ns) for b in message.quotes)
                if round_number == 0:
                    first.append(raw)
        return ticks, time.perf_counter() - start, first


def _bare_server(messages_file: Path, port_file: Path) -> None:
    """A bare grpcio server that streams the same bytes with no work behind them."""
    messages = []
    with messages_file.open("rb") as handle:
        while header := handle.read(4):
            messages.append(handle.read(int.from_bytes(header, "little")))

    async def stream(
        request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        del request, context
        for message in messages:
            yield message

    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.max_send_message_length", 64 << 20)])
        # No serializers: the bytes go out as they are.
        handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_stream_rpc_method_handler(stream)
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    STREAM_METHOD.split("/")[1], {"StreamTicks": handler}
                ),
            )
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        port_file.write_text(str(port))
        await server.wait_for_termination()

    asyncio.run(main())


def bench_stream_ticks(repeats: int) -> list[str]:
    """StreamTicks replay to a Python client on loopback, against a bare grpcio
    stream of the same bytes; ticks/s per batch size."""
    from nexus.common.v1 import types_pb2  # noqa: PLC0415 - generated code
    from nexus.marketdata.v1 import marketdata_pb2 as md  # noqa: PLC0415

    lines = []
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        root = Path(tmp)
        data, label = _oanda_eurusd_ticks()
        env = dict(
            os.environ,
            NEXUS_DATA_DIR=str(root / "data"),
            NEXUS_LOG__LEVEL="WARNING",
            NEXUS_SERVER__METRICS_PORT="0",
            NEXUS_MARKETDATA__INGEST_ON_START=f'["{data}"]',
        )
        serve = [sys.executable, "-m", "nexus", "serve", "--services", "marketdata", "--port", "0"]
        with _process(
            [*serve, "--port-file", str(root / "nexus.port")], env, root / "nexus.port"
        ) as port:
            target = f"127.0.0.1:{port}"
            replay = types_pb2.TimeRange(
                start_ns=calendar.timegm((2014, 5, 1, 0, 0, 0)) * 10**9,
                end_ns=calendar.timegm((2014, 5, 16, 0, 0, 0)) * 10**9,
            )
            for batch in (1_000, 10_000):
                request = md.StreamTicksRequest(
                    instruments=[types_pb2.InstrumentId(symbol="EUR/USD", venue="OANDA")],
                    quotes=True,
                    replay=replay,
                    max_batch_size=batch,
                ).SerializeToString()
                ticks, _, first = _consume(target, request, 1)  # warm-up; keeps the bytes
                messages_file = root / f"messages-{batch}.bin"
                with messages_file.open("wb") as handle:
                    for raw in first:
                        handle.write(len(raw).to_bytes(4, "little") + raw)
                bare_cmd = [sys.executable, "-m", "nexus.bench", "bare-server", str(messages_file)]
                bare_port = root / f"bare-{batch}.port"
                with _process([*bare_cmd, str(bare_port)], env, bare_port) as bare:
                    _consume(f"127.0.0.1:{bare}", request, 1)  # warm-up
                    ours, base = [], []
                    for _ in range(repeats):  # interleaved, so both see the same noise
                        n, seconds, _ = _consume(target, request, 3)
                        ours.append(n / seconds)
                        n, seconds, _ = _consume(f"127.0.0.1:{bare}", request, 3)
                        base.append(n / seconds)
                ours_rate, base_rate = statistics.median(ours), statistics.median(base)
                lines.append(
                    f"stream-ticks (batch {batch}): nexus {ours_rate:,.0f} ticks/s | bare grpcio "
                    f"{base_rate:,.0f} ticks/s | ratio {ours_rate / base_rate:.0%} "
                    f"(median of {repeats}; {ticks:,} {label}, x3 per run)"
                )
    return lines


# -- L2 order book from Python --------------------------------------------

BINANCE_BTC = "market/crypto/hftbacktest_binance_usdm/btcusdt_20240808.gz"


def bench_order_book(repeats: int) -> list[str]:
    """Level changes/s into the Rust book through the batch API, against a
    pure-Python sortedcontainers book, on real Binance USD-M BTCUSDT diffs."""
    from sortedcontainers import SortedDict  # noqa: PLC0415 - benchmark-only dependency

    path = SHARED / BINANCE_BTC
    if not path.exists():
        return [f"order-book: skipped, {path} not found (set NEXUS_SHARED_DATA)"]
    (bp, bs, ap, asz, last_id), (sides, prices, sizes) = engine.binance_book_columns(path, 2, 3)
    rows = list(zip(sides.tolist(), prices.tolist(), sizes.tolist(), strict=True))

    def rust() -> float:
        book = engine.OrderBook(2, 3)
        book.apply_snapshot(bp, bs, ap, asz, last_id)
        start = time.perf_counter()
        book.apply_deltas(sides, prices, sizes)
        return time.perf_counter() - start

    def python() -> float:
        books = (
            SortedDict(zip(bp.tolist(), bs.tolist(), strict=True)),
            SortedDict(zip(ap.tolist(), asz.tolist(), strict=True)),
        )
        start = time.perf_counter()
        for side, price, size in rows:
            book = books[side]
            if size:
                book[price] = size
            else:
                book.pop(price, None)
        return time.perf_counter() - start

    ours = statistics.median(len(rows) / rust() for _ in range(repeats))
    base = statistics.median(len(rows) / python() for _ in range(repeats))
    return [
        f"order-book (Python batch API): nexus {ours:,.0f} updates/s | sortedcontainers "
        f"{base:,.0f} updates/s | ratio {ours / base:.1f}x (median of {repeats}; "
        f"{len(rows):,} level changes of real Binance USD-M BTCUSDT diffs)"
    ]


# -- order round trip through gRPC ----------------------------------------


def _percentiles(samples_us: list[float]) -> str:
    import numpy as np  # noqa: PLC0415

    p50, p99, p999 = np.percentile(samples_us, [50, 99, 99.9])
    return f"p50 {p50:,.0f} us, p99 {p99:,.0f} us, p99.9 {p999:,.0f} us"


@contextlib.contextmanager
def _sync_echo() -> Iterator[int]:
    """The first baseline: a bare grpcio server (thread pool) in this process,
    answering /bench.Echo/Call with its request; yields its port."""
    from concurrent import futures  # noqa: PLC0415

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(
        lambda request, context: request
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Call": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(0)


@contextlib.contextmanager
def _aio_echo() -> Iterator[int]:
    """The second baseline: the same echo on a bare grpc.aio server in a process of
    its own, the stack and the process layout the service runs on; yields its port."""
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        port_file = Path(tmp) / "echo.port"
        code = f"from nexus.bench import aio_echo_server; aio_echo_server({str(port_file)!r})"
        with _process([sys.executable, "-c", code], dict(os.environ), port_file) as port:
            yield port


def aio_echo_server(port_file: str) -> None:
    """Serves /bench.Echo/Call (answers with the request) on a bare grpc.aio server,
    writing its port to `port_file`, until terminated."""

    async def echo(request: bytes, context: object) -> bytes:
        return request

    async def serve() -> None:
        server = grpc.aio.server()
        handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(echo)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("bench.Echo", {"Call": handler}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        written = Path(port_file + ".tmp")
        written.write_text(str(port))
        written.replace(port_file)
        await server.wait_for_termination()

    asyncio.run(serve())


def _echo_latencies(port: int, count: int) -> list[float]:
    """Microseconds per call of /bench.Echo/Call with a 120-byte payload (about the
    size of a SubmitOrderRequest), after 200 warm-up calls."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/bench.Echo/Call")
        payload = b"x" * 120
        for _ in range(200):
            call(payload)
        out = []
        for _ in range(count):
            start = time.perf_counter()
            call(payload)
            out.append((time.perf_counter() - start) * 1e6)
        return out


def _free_port() -> int:
    """A port nothing listens on now (for a server told its port in advance)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _acked_roundtrips(
    stub: ExecutionServiceStub,
    count: int,
    *,
    first: int = 0,
    warm_up: int = 100,
    prefix: str = "ack",
    placed: list[str] | None = None,
) -> list[float]:
    """The round trip as one call: SubmitOrder with await_venue_ack answers with the
    order as the venue's ExecutionReport (new) left it; microseconds per order after
    `warm_up` orders (client order ids numbered from `first`). The order ids of the
    timed orders are appended to `placed`."""
    from nexus.common.v1 import types_pb2  # noqa: PLC0415 - generated code
    from nexus.execution.v1 import execution_pb2 as ex  # noqa: PLC0415

    acked = []
    for i in range(count + warm_up):
        request = ex.SubmitOrderRequest(
            client_order_id=f"{prefix}-{first + i}",
            instrument=types_pb2.InstrumentId(symbol="EUR/USD", venue="OANDA"),
            side=types_pb2.SIDE_BUY,
            order_type=ex.ORDER_TYPE_LIMIT,
            quantity=types_pb2.Decimal(mantissa=1000, scale=0),
            limit_price=types_pb2.Decimal(mantissa=100_000, scale=5),  # far below the market
            venue="PAPER",
            await_venue_ack=True,
        )
        start = time.perf_counter()
        answer = stub.SubmitOrder(request, timeout=10)
        took = time.perf_counter() - start
        if answer.order.status != ex.ORDER_STATUS_NEW:
            raise RuntimeError(f"order {i} not acknowledged: {answer.order}")
        if i >= warm_up:
            acked.append(took * 1e6)
            if placed is not None:
                placed.append(answer.order.order_id)
    return acked


def _cancel_latencies(stub: ExecutionServiceStub, order_ids: list[str]) -> list[float]:
    """CancelOrder of each resting order by its id: microseconds per call (the cancel
    sent to the venue, the answer the order with the cancel pending)."""
    from nexus.execution.v1 import execution_pb2 as ex  # noqa: PLC0415 - generated code

    took = []
    for order_id in order_ids:
        start = time.perf_counter()
        stub.CancelOrder(ex.CancelOrderRequest(order_id=order_id), timeout=10)
        took.append((time.perf_counter() - start) * 1e6)
    return took


@dataclass
class _OrderCalls:
    """Per-call latencies (microseconds) of the order calls and their baselines."""

    acked: list[float] = field(default_factory=list)
    """SubmitOrder with await_venue_ack through the service's port."""
    gateway: list[float] = field(default_factory=list)
    """The same through the native order gateway."""
    bare: list[float] = field(default_factory=list)
    """Bare grpcio unary echo calls."""
    bare_aio: list[float] = field(default_factory=list)
    """Bare grpc.aio unary echo calls, server in a process of its own."""
    cancel: list[float] = field(default_factory=list)
    """CancelOrder of the service's orders through the service's port."""
    gateway_cancel: list[float] = field(default_factory=list)
    """CancelOrder of the gateway's orders through the gateway."""


def _acked_beside_baselines(
    stub: ExecutionServiceStub, native: ExecutionServiceStub, count: int, turns: int
) -> _OrderCalls:
    """`count` acknowledged SubmitOrder round trips through the service's port and
    through the native order gateway, then a CancelOrder of each through the same
    port, bare grpcio calls and bare grpc.aio calls, in `turns` turns so that all
    see the same noise."""
    calls = _OrderCalls()
    sent = 0
    with _sync_echo() as sync_port, _aio_echo() as aio_port:
        for turn in range(turns):
            n = count // turns + (1 if turn < count % turns else 0)
            warm_up = 0 if turn else 100
            theirs: list[str] = []
            ours: list[str] = []
            calls.acked += _acked_roundtrips(stub, n, first=sent, warm_up=warm_up, placed=theirs)
            calls.gateway += _acked_roundtrips(
                native, n, first=sent, warm_up=warm_up, prefix="gw", placed=ours
            )
            sent += n + warm_up
            calls.cancel += _cancel_latencies(stub, theirs)
            calls.gateway_cancel += _cancel_latencies(native, ours)
            calls.bare += _echo_latencies(sync_port, n)
            calls.bare_aio += _echo_latencies(aio_port, n)
    return calls


def bench_order_roundtrip(repeats: int) -> list[str]:
    """SubmitOrder over gRPC until its ExecutionReport (new) comes back from the
    paper venue over FIX, seen on StreamExecutionReports; against a bare grpcio
    unary call in the same run."""
    import queue  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from nexus.common.v1 import types_pb2  # noqa: PLC0415 - generated code
    from nexus.execution.v1 import execution_pb2 as ex  # noqa: PLC0415
    from nexus.execution.v1 import execution_pb2_grpc  # noqa: PLC0415

    count = int(os.environ.get("NEXUS_BENCH_ORDERS", "2000"))
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        root = Path(tmp)
        env = dict(
            os.environ,
            NEXUS_DATA_DIR=str(root / "data"),
            NEXUS_LOG__LEVEL="WARNING",
            NEXUS_SERVER__METRICS_PORT="0",
            NEXUS_EXECUTION__COLLAR_BPS="0",
            NEXUS_EXECUTION__MAX_ORDERS_PER_SECOND="0",
            # Every order rests far below the market: at 1,000 each, the working
            # quantity of 3 x NEXUS_BENCH_ORDERS orders is far above the default limit.
            NEXUS_EXECUTION__MAX_POSITION=str(10**15),
            NEXUS_EXECUTION__ORDER_GATEWAY_PORT=str(gateway_port := _free_port()),
        )
        serve = [sys.executable, "-m", "nexus", "serve", "--services", "marketdata,execution"]
        port_file = root / "nexus.port"
        with (
            _process(
                [*serve, "--port", "0", "--port-file", str(port_file)], env, port_file
            ) as port,
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
            grpc.insecure_channel(f"127.0.0.1:{gateway_port}") as gateway_channel,
        ):
            stub = execution_pb2_grpc.ExecutionServiceStub(channel)
            native = execution_pb2_grpc.ExecutionServiceStub(gateway_channel)
            news: queue.Queue[tuple[str, float]] = queue.Queue()
            stream = stub.StreamExecutionReports(ex.StreamExecutionReportsRequest())

            def listen() -> None:
                with contextlib.suppress(grpc.RpcError):
                    for message in stream:
                        if message.report.exec_type == ex.EXEC_TYPE_NEW:
                            news.put((message.report.order.client_order_id, time.perf_counter()))

            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            time.sleep(0.5)
            latencies = []
            for i in range(count + 100):
                request = ex.SubmitOrderRequest(
                    client_order_id=f"rt-{i}",
                    instrument=types_pb2.InstrumentId(symbol="EUR/USD", venue="OANDA"),
                    side=types_pb2.SIDE_BUY,
                    order_type=ex.ORDER_TYPE_LIMIT,
                    quantity=types_pb2.Decimal(mantissa=1000, scale=0),
                    limit_price=types_pb2.Decimal(
                        mantissa=100_000, scale=5
                    ),  # far below the market
                )
                start = time.perf_counter()
                stub.SubmitOrder(request, timeout=10)
                while True:
                    client_id, seen = news.get(timeout=10)
                    if client_id == request.client_order_id:
                        break
                if i >= 100:  # the first 100 warm up
                    latencies.append((seen - start) * 1e6)
            stream.cancel()
            turns = max(1, min(repeats, count))
            calls = _acked_beside_baselines(stub, native, count, turns)
    acked, gateway, bare, bare_aio = calls.acked, calls.gateway, calls.bare, calls.bare_aio
    ours, aio = _latency_figures(acked), _latency_figures(bare_aio)
    fast, sync = _latency_figures(gateway), _latency_figures(bare)
    slow_cancel, fast_cancel = (
        _latency_figures(calls.cancel),
        _latency_figures(calls.gateway_cancel),
    )
    lines = [
        f"order-roundtrip through the native order gateway (SubmitOrder with await_venue_ack "
        f"answered in Rust): {_percentiles(gateway)} | ratio to the bare grpcio unary: "
        f"p50 {fast[0] / sync[0]:.2f}x, p99 {fast[1] / sync[1]:.2f}x, "
        f"p99.9 {fast[2] / sync[2]:.2f}x; to the bare grpc.aio unary: p50 "
        f"{fast[0] / aio[0]:.2f}x, p99 {fast[1] / aio[1]:.2f}x",
        f"order-roundtrip (gRPC SubmitOrder with await_venue_ack -> FIX -> paper venue -> "
        f"ExecutionReport new -> the call's answer): {_percentiles(acked)} | bare grpcio "
        f"unary: {_percentiles(bare)} ({count:,} orders in {turns} turns with the baselines)",
        f"order-roundtrip: bare grpc.aio unary, server in a process of its own (the service's "
        f"stack): {_percentiles(bare_aio)} | ratio SubmitOrder acked / bare aio: "
        f"p50 {ours[0] / aio[0]:.2f}x, p99 {ours[1] / aio[1]:.2f}x",
        f"order-roundtrip (gRPC SubmitOrder -> FIX -> paper venue -> ExecutionReport new on "
        f"the report stream): {_percentiles(latencies)}",
        f"order-roundtrip: CancelOrder of a resting order (the cancel sent over FIX, the "
        f"answer the order with it pending) through the native order gateway: "
        f"{_percentiles(calls.gateway_cancel)} | through the service's port: "
        f"{_percentiles(calls.cancel)} | ratio gateway / service p50 "
        f"{fast_cancel[0] / slow_cancel[0]:.2f}x, p99 {fast_cancel[1] / slow_cancel[1]:.2f}x; "
        f"gateway / bare grpcio unary p50 {fast_cancel[0] / sync[0]:.2f}x, "
        f"p99 {fast_cancel[1] / sync[1]:.2f}x",
    ]
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        samples = Path(tmp) / "samples.txt"
        skipped = _quickfix_cpp_roundtrip(count, samples)
        if skipped is not None:
            return [*lines, f"order-roundtrip: QuickFIX C++ skipped: {skipped}"]
        theirs = _latency_figures(_read_samples_us(samples))
    lines.append(
        f"order-roundtrip: QuickFIX C++ initiator -> acceptor -> ExecutionReport new: "
        f"p50 {theirs[0]:,.0f} us, p99 {theirs[1]:,.0f} us, p99.9 {theirs[2]:,.0f} us | "
        f"ratio gRPC / QuickFIX C++: p50 {ours[0] / theirs[0]:.1f}x, "
        f"p99 {ours[1] / theirs[1]:.1f}x ({count:,} orders each)"
    )
    return lines


def _nearest_rank(samples: list[float], q: float) -> float:
    """The percentile as the Rust and C++ benchmarks take it: the sample at
    round((n - 1) * q) in sorted order."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * q))]


def _read_samples_us(path: Path) -> list[float]:
    return [int(line) / 1000 for line in path.read_text().split()]


def _quickfix_cpp_roundtrip(count: int, samples: Path) -> str | None:
    """C++ QuickFIX round trips on loopback (one order at a time, no warm-up left out,
    as the Nexus benchmarks do), their samples written to `samples`; or why they were
    not run."""
    program = _quickfix_cpp()
    spec = Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"
    if isinstance(program, str):
        return program
    if not spec.exists():
        return f"{spec} not found (pip install quickfix-ssl)"
    _json_lines([os.fspath(program), "roundtrip", os.fspath(spec), str(count), "0", str(samples)])
    return None


def _latency_figures(samples_us: list[float]) -> tuple[float, float, float]:
    return (
        _nearest_rank(samples_us, 0.5),
        _nearest_rank(samples_us, 0.99),
        _nearest_rank(samples_us, 0.999),
    )


def bench_order_roundtrip_rust(repeats: int) -> list[str]:
    """Order round trip from Rust (the engine and the paper venue, `cargo bench
    --bench roundtrip`) against a C++ QuickFIX initiator and acceptor doing the same
    one-at-a-time round trips on loopback, same run: `repeats` turns of each, the
    samples pooled."""
    count = int(os.environ.get("NEXUS_BENCH_ORDERS", "100000"))
    turns = max(1, min(repeats, count))
    ours: list[float] = []
    sleeping: list[float] = []
    polling: list[float] = []
    reading: list[float] = []
    journaled: list[float] = []
    echo_polling: list[float] = []
    theirs: list[float] = []
    skipped = None
    spin_us = poll_us = reads_us = 0
    gaps: list[tuple[float, float, float]] = []
    steal: list[float] = []
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        samples = Path(tmp) / "samples.txt"
        for turn in range(turns):
            orders = count // turns + (1 if turn < count % turns else 0)
            rows = _json_lines(
                ["cargo", "bench", "-q", "-p", "nexus-execution", "--bench", "roundtrip"],
                env=dict(
                    os.environ, NEXUS_BENCH_ORDERS=str(orders), NEXUS_BENCH_SAMPLES=str(samples)
                ),
            )
            row = next((r for r in rows if "wait_spin_us" in r), {})
            spin_us, poll_us, reads_us = (
                int(str(row.get("wait_spin_us", 0))),
                int(str(row.get("busy_poll_us", 0))),
                int(str(row.get("caller_reads_us", 0))),
            )
            if "host_gaps_20us_per_s" in row:
                gaps.append(
                    (
                        float(str(row["host_gaps_20us_per_s"])),
                        float(str(row["host_gaps_50us_per_s"])),
                        float(str(row["host_gap_longest_us"])),
                    )
                )
            if row.get("steal_pct") is not None:
                steal.append(float(str(row["steal_pct"])))
            # Each variant's samples, in the file the bench names with its suffix.
            for suffix, pooled in (
                ("", ours),
                (".sleeping", sleeping),
                (".sleeping.polling", polling),
                (".caller_reads", reading),
                (".journaled", journaled),
                (".echo_polling", echo_polling),
            ):
                pooled.extend(_read_samples_us(samples.with_name(samples.name + suffix)))
            if skipped is None:
                skipped = _quickfix_cpp_roundtrip(orders, samples)
                if skipped is None:
                    theirs += _read_samples_us(samples)
    a = _latency_figures(ours)
    s = _latency_figures(sleeping)
    p = _latency_figures(polling)
    r = _latency_figures(reading)
    j = _latency_figures(journaled)
    e = _latency_figures(echo_polling)
    lines = [
        f"order-roundtrip-rust (engine submit -> FIX -> paper venue -> ExecutionReport new "
        f"applied; the caller spins up to {spin_us} us, then sleeps): p50 {a[0]:,.1f} us, "
        f"p99 {a[1]:,.1f} us, p99.9 {a[2]:,.1f} us ({len(ours):,} orders in {turns} turns)",
        f"order-roundtrip-rust, the caller sleeps at once: p50 {s[0]:,.1f} us, "
        f"p99 {s[1]:,.1f} us, p99.9 {s[2]:,.1f} us ({len(sleeping):,} orders)",
        f"order-roundtrip-rust, the FIX readers busy-poll {poll_us} us after each message "
        f"(execution.busy_poll_us; a core per session busy meanwhile): p50 {p[0]:,.1f} us, "
        f"p99 {p[1]:,.1f} us, p99.9 {p[2]:,.1f} us ({len(polling):,} orders) | a bare TCP echo "
        f"whose both ends poll: p50 {e[0]:,.1f} us, p99 {e[1]:,.1f} us (ratio p50 "
        f"{p[0] / e[0]:.2f}x, p99 {p[1] / e[1]:.2f}x)",
        f"order-roundtrip-rust, busy polling and the waiting caller reads its report from the "
        f"socket itself (execution.caller_reads_us {reads_us}): p50 {r[0]:,.1f} us, "
        f"p99 {r[1]:,.1f} us, p99.9 {r[2]:,.1f} us ({len(reading):,} orders; ratio to the "
        f"polling echo p50 {r[0] / e[0]:.2f}x, p99 {r[1] / e[1]:.2f}x)",
        f"order-roundtrip-rust, the order journal and FIX message stores on disk (as make run "
        f"keeps them; the caller spins): p50 {j[0]:,.1f} us, p99 {j[1]:,.1f} us, "
        f"p99.9 {j[2]:,.1f} us, max {max(journaled):,.1f} us (in memory: max {max(ours):,.1f} us; "
        f"{len(journaled):,} orders)",
    ]
    if gaps:
        lines.append(
            "order-roundtrip-rust, the host: a thread only reading the clock was held up "
            f"{statistics.median(g[0] for g in gaps):,.0f} times a second for 20 us or more, "
            f"{statistics.median(g[1] for g in gaps):,.0f} for 50 us or more, longest "
            f"{max(g[2] for g in gaps):,.0f} us (medians over {len(gaps)} turns; a round trip "
            "that such a gap falls into takes that much longer)"
        )
    if steal:
        lines.append(
            "order-roundtrip-rust, the host: the hypervisor kept "
            f"{statistics.median(steal):.2f}% of the CPU time from this machine during the "
            f"bench (steal in /proc/stat; median of {len(steal)} turns, "
            f"{min(steal):.2f}-{max(steal):.2f}%)"
        )
    if skipped is not None:
        return [*lines, f"order-roundtrip-rust: QuickFIX C++ skipped: {skipped}"]
    b = _latency_figures(theirs)
    return [
        *lines,
        f"order-roundtrip-rust: QuickFIX C++ initiator -> acceptor -> ExecutionReport new "
        f"(its caller sleeps on a condition variable): p50 {b[0]:,.1f} us, p99 {b[1]:,.1f} us, "
        f"p99.9 {b[2]:,.1f} us ({len(theirs):,} orders, in turns with the engine's)",
        f"order-roundtrip-rust: ratio Nexus / QuickFIX C++: p50 {a[0] / b[0]:.2f}x, "
        f"p99 {a[1] / b[1]:.2f}x, p99.9 {a[2] / b[2]:.2f}x; both callers sleeping: "
        f"p50 {s[0] / b[0]:.2f}x, p99 {s[1] / b[1]:.2f}x, p99.9 {s[2] / b[2]:.2f}x; "
        f"busy-polling: p50 {p[0] / b[0]:.2f}x, p99 {p[1] / b[1]:.2f}x, "
        f"p99.9 {p[2] / b[2]:.2f}x; the caller reading: p50 {r[0] / b[0]:.2f}x, "
        f"p99 {r[1] / b[1]:.2f}x, p99.9 {r[2] / b[2]:.2f}x (below 1 is faster)",
    ]


@dataclass(frozen=True)
class Benchmark:
    """A named benchmark: what it measures and how to run it."""

    description: str
    run: Callable[[int], list[str]]


BENCHMARKS: dict[str, Benchmark] = {
    "fix-frame": Benchmark(
        "FIX frame check (BodyLength, CheckSum, MsgType) vs pure Python", bench_fix_frame
    ),
    "fix-codec": Benchmark(
        "FIX parse/encode, Rust vs QuickFIX C++ and from Python vs QuickFIX's Python binding",
        bench_fix_codec,
    ),
    "order-roundtrip": Benchmark(
        "Order round trip through gRPC and FIX to the paper venue vs a bare grpcio unary call",
        bench_order_roundtrip,
    ),
    "order-roundtrip-rust": Benchmark(
        "Order round trip from Rust (engine + paper venue) vs C++ QuickFIX on loopback",
        bench_order_roundtrip_rust,
    ),
    "order-book": Benchmark(
        "L2 book updates through the batch API vs a sortedcontainers book (Binance BTCUSDT)",
        bench_order_book,
    ),
    "pipeline": Benchmark(
        "Per-tick pipeline (read, validate, bars, indicators) vs numpy/pandas",
        bench_pipeline,
    ),
    "stream-ticks": Benchmark(
        "StreamTicks to a Python client on loopback vs a bare grpcio stream of the same bytes",
        bench_stream_ticks,
    ),
}


def run(names: list[str], repeats: int = 5) -> int:
    """Runs the named benchmarks, printing each figure, its baseline and the ratio."""
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; try `nexus bench --list`")
        return 2
    for name in names:
        for line in BENCHMARKS[name].run(repeats):
            print(line, flush=True)
    return 0


if __name__ == "__main__":  # helper processes of the benchmarks
    parser = argparse.ArgumentParser(prog="python -m nexus.bench")
    parser.add_argument("role", choices=["bare-server"])
    parser.add_argument("messages", type=Path)
    parser.add_argument("port_file", type=Path)
    args = parser.parse_args()
    _bare_server(args.messages, args.port_file)
