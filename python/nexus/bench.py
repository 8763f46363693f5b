"""Benchmarks behind `nexus bench` / `make bench`.

Each benchmark times the Nexus path and a baseline doing the same work on the
same input in the same process, and prints both medians and their ratio. The
machines are shared and noisy: read the ratio, not the absolute figure.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from nexus import engine

__all__ = ["BENCHMARKS", "Benchmark", "run"]

SOH = b"\x01"


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


def _rust_verify(msg: bytes) -> str:
    return engine.fix_verify_frame(msg).msg_type


@dataclass(frozen=True)
class Benchmark:
    """A measured path and its baseline over the same items."""

    description: str
    unit: str
    setup: Callable[[], list[bytes]]
    nexus: Callable[[bytes], object]
    baseline: Callable[[bytes], object]
    baseline_name: str


BENCHMARKS: dict[str, Benchmark] = {
    "fix-frame": Benchmark(
        description="FIX frame check (BodyLength, CheckSum, MsgType) of NewOrderSingle",
        unit="msgs/s",
        setup=lambda: _messages(20_000),
        nexus=_rust_verify,
        baseline=_python_verify,
        baseline_name="pure Python",
    ),
}


def _rate(fn: Callable[[bytes], object], items: list[bytes], repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        rates.append(len(items) / (time.perf_counter() - start))
    return statistics.median(rates)


def run(names: list[str], repeats: int = 5) -> int:
    """Runs the named benchmarks, printing each figure, its baseline and the ratio."""
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; try `nexus bench --list`")
        return 2
    for name in names:
        bench = BENCHMARKS[name]
        items = bench.setup()
        for item in items[:100]:  # same answers, or the comparison is meaningless
            if bench.nexus(item) != bench.baseline(item):
                raise AssertionError(f"{name}: Nexus and baseline disagree on {item!r}")
        ours = _rate(bench.nexus, items, repeats)
        base = _rate(bench.baseline, items, repeats)
        print(
            f"{name}: nexus {ours:,.0f} {bench.unit} | {bench.baseline_name} {base:,.0f} "
            f"{bench.unit} | ratio {ours / base:.2f}x (median of {repeats}, {len(items)} items)"
        )
    return 0
