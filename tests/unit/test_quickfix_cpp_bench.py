"""The inputs and the C++ QuickFIX harness of the FIX benchmarks (docs/benchmarks.md).

The harness tests build it with the Makefile's rule into a temporary folder (a few
seconds) and skip when Debian's libquickfix-dev is not installed: `make test` never
installs it; `make bench` and `make quickfix-cpp` do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import quickfix as qf

from nexus import bench, engine

SPEC = Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"  # shipped by the quickfix wheel


@pytest.mark.parametrize("name", sorted(bench.CODEC_MESSAGES))
def test_benchmark_messages_are_valid_for_nexus_and_quickfix(name: str) -> None:
    ours = engine.FixDictionary(SPEC)
    theirs = qf.DataDictionary(os.fspath(SPEC))
    msg_type, _, tags = bench.CODEC_MESSAGES[name]
    messages = bench._codec_messages(name, 60)
    assert len({raw for _, raw in messages}) == 60  # they vary
    for _, raw in messages:
        assert ours.validate(raw) is None
        message = qf.Message(raw.decode(), theirs, True)
        theirs.validate(message)
        parsed = ours.parse(raw)
        assert parsed.msg_type == msg_type
        header = message.getHeader()
        for tag in tags:
            value = (header if tag == 34 else message).getField(tag)
            assert parsed.get(tag) == value.encode()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not bench.QUICKFIX_HEADER.exists():
        pytest.skip(
            f"{bench.QUICKFIX_HEADER} not found: libquickfix-dev is not installed "
            "(`make quickfix-cpp` installs it)"
        )
    if shutil.which("g++") is None or shutil.which("make") is None:
        pytest.skip("g++ or make not found")
    program = tmp_path_factory.mktemp("quickfix-cpp") / "quickfix_bench"
    subprocess.run(
        ["make", "-s", f"QUICKFIX_CPP={program}", os.fspath(program)],
        cwd=bench.REPO,
        check=True,
        capture_output=True,
    )
    return program


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_harness_codec_reports_a_rate_per_case_and_message(harness: Path, tmp_path: Path) -> None:
    messages = tmp_path / "messages.fix"
    messages.write_bytes(
        b"".join(
            raw + b"\n"
            for name in bench.CODEC_MESSAGES
            for _, raw in bench._codec_messages(name, 20)
        )
    )
    done = _run(os.fspath(harness), "codec", os.fspath(messages), os.fspath(SPEC), "3", "2")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert {(r["case"], r["message"]) for r in rows} == {
        (case, name)
        for case in ("parse-only", "parse", "parse+validate", "encode")
        for name in ("NewOrderSingle", "ExecutionReport")
    }
    for row in rows:
        assert row["messages"] == 20
        assert row["repeats"] == 3
        assert 1_000 < row["rate"] < 1e9


def test_harness_rejects_a_garbled_message_with_a_reason(harness: Path, tmp_path: Path) -> None:
    (_, raw), *_ = bench._codec_messages("NewOrderSingle", 1)
    bad = raw[:-4] + (b"000" if raw[-4:-1] != b"000" else b"001") + b"\x01"
    messages = tmp_path / "messages.fix"
    messages.write_bytes(bad + b"\n")
    done = _run(os.fspath(harness), "codec", os.fspath(messages), os.fspath(SPEC), "1", "1")
    assert done.returncode == 1
    assert done.stderr.startswith("quickfix_bench: ")
    assert "CheckSum" in done.stderr or "checksum" in done.stderr.lower()


def test_harness_round_trip_answers_every_order(harness: Path, tmp_path: Path) -> None:
    samples = tmp_path / "samples.txt"
    done = _run(os.fspath(harness), "roundtrip", os.fspath(SPEC), "200", "10", os.fspath(samples))
    assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["orders"] == 200
    assert row["warmup"] == 10
    assert 0 < row["p50_us"] <= row["p99_us"] <= row["p999_us"] <= row["max_us"]
    nanos = sorted(int(line) for line in samples.read_text().split())
    assert len(nanos) == 200
    assert bench._nearest_rank([n / 1000 for n in nanos], 0.5) == pytest.approx(
        row["p50_us"], abs=0.01
    )


def test_harness_usage_errors_exit_2(harness: Path) -> None:
    done = _run(os.fspath(harness), "codec")
    assert done.returncode == 2
    assert "usage" in done.stderr
