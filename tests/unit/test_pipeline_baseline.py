"""The per-tick pipeline benchmark compares like with like: the engine's
one-call pipeline and the numpy/pandas baseline of `nexus bench pipeline`
produce the same flags, bars, EMA and RSI, on real ticks and on quotes built
to hit every validation rule."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from nexus import engine
from nexus.bench import (
    PipelineResult,
    engine_quote_pipeline,
    pandas_quote_pipeline,
    pipeline_differences,
)
from tests.conftest import REPO

SAMPLE = REPO / "data" / "sample" / "market" / "fx" / "ticks" / "lean_oanda_eurusd"
FXCM = Path("market/fx/ticks/lean_fxcm_eurusd")
DAY_NS = 1_399_507_200_000_000_000  # 2014-05-08 00:00 UTC
OUTLIER = 1 << 7
DAY = 86_400_000_000_000


def _member(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(archive.namelist()[0])


def _assert_same(ours: PipelineResult, theirs: PipelineResult) -> None:
    assert ours.rows == theirs.rows
    np.testing.assert_array_equal(ours.flags, theirs.flags)
    for x, y in ((ours.ema, theirs.ema), (ours.rsi, theirs.rsi)):
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-12, equal_nan=True)
    for u, v in zip(ours.bars, theirs.bars, strict=True):
        np.testing.assert_array_equal(u, v)
    assert pipeline_differences(ours, theirs) == []


def test_baseline_equals_the_engine_on_the_shipped_sample() -> None:
    for path in sorted(SAMPLE.glob("*.zip")):
        day_ns = int(engine.read_lean_quote_ticks(path, 5)[0][0]) // DAY * DAY  # OANDA: UTC
        csv = _member(path)
        ours = engine_quote_pipeline(csv, day_ns)
        assert len(ours.bars[0]) > 100
        _assert_same(ours, pandas_quote_pipeline(csv, day_ns))


def test_baseline_equals_the_engine_on_every_shared_fxcm_day(shared_data: Path) -> None:
    outliers = 0
    files = sorted((shared_data / FXCM).glob("*.zip"))
    assert len(files) == 13
    for path in files:
        day = path.name[:8]
        day_ns = int(np.datetime64(f"{day[:4]}-{day[4:6]}-{day[6:]}", "ns").astype(np.int64))
        day_ns += 300 * 60_000_000_000  # FXCM data time is UTC-05:00
        csv = _member(path)
        ours = engine_quote_pipeline(csv, day_ns)
        _assert_same(ours, pandas_quote_pipeline(csv, day_ns))
        outliers += int((ours.flags == OUTLIER).sum())
    assert outliers > 0  # the real data exercises the outlier rule


def _quotes_hitting_every_rule(seed: int) -> bytes:
    """A random walk with crossed, locked, zero, backwards, duplicate (also
    after a rejected quote), spike and level-shift quotes mixed in."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, int]] = []
    ms, bid = 1_000, 139_000
    for i in range(6_000):
        ms += int(rng.integers(0, 3))
        bid += int(rng.choice([-2, -1, 0, 1, 2]))
        spread = int(rng.integers(1, 4))
        kind = rng.random()
        if kind < 0.05:
            rows.append((ms, bid + 2, bid))  # crossed
        elif kind < 0.08:
            rows.append((ms, bid, bid))  # locked
        elif kind < 0.09:
            rows.append((ms, 0, bid))  # bad price
        elif kind < 0.11 and rows:
            rows.append((max(ms - 5, 0), bid, bid + spread))  # backwards
        elif kind < 0.14 and rows:
            rows.append(rows[-1])  # duplicate of the row before (maybe a rejected one)
            continue
        elif kind < 0.15 and i > 500:
            rows.append((ms, bid + 400, bid + 400 + spread))  # spike
            continue
        elif 3_000 <= i < 3_004:
            bid += 300 if i == 3_000 else 0  # a level shift, held
        rows.append((ms, bid, bid + spread))
    text = "\n".join(f"{t},{b / 1e5:.5f},{a / 1e5:.5f}" for t, b, a in rows)
    return text.encode()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_baseline_equals_the_engine_on_every_validation_rule(seed: int) -> None:
    csv = _quotes_hitting_every_rule(seed)
    ours = engine_quote_pipeline(csv, DAY_NS)
    _assert_same(ours, pandas_quote_pipeline(csv, DAY_NS))
    seen = set(np.unique(ours.flags).tolist())
    assert {0, 1 << 1, 1 << 2, 1 << 3, 1 << 5, 1 << 6, OUTLIER} <= seen
