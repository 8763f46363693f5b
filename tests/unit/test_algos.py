"""Schedules of the execution algorithms, against closed forms and independent counts."""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import itertools
import math
import random
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus import engine
from nexus.services.execution import algos

SAMPLE = Path(__file__).resolve().parents[2] / "data/sample/market/fx/ticks/lean_oanda_eurusd"


@given(
    st.integers(0, 10**12),
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200).filter(
        lambda w: sum(w) > 0
    ),
)
def test_allocate_sums_exactly_and_stays_within_a_unit(total: int, weights: list[float]) -> None:
    out = algos.allocate(total, weights)
    assert sum(out) == total
    assert all(q >= 0 for q in out)
    mass = math.fsum(weights)
    cumulative = 0.0
    done = 0
    for q, w in zip(out, weights, strict=True):
        cumulative += w
        done += q
        assert abs(done - total * cumulative / mass) <= 1 + total * 1e-12


def test_allocate_refuses_bad_weights() -> None:
    for weights in ([], [0.0, 0.0], [1.0, -1.0], [math.nan]):
        with pytest.raises(ValueError, match="weights"):
            algos.allocate(10, weights)


def test_twap_times_are_equal_intervals_moved_by_at_most_the_jitter() -> None:
    assert algos.twap_times(0, 1_000, 4) == [0, 250, 500, 750]
    times = algos.twap_times(0, 1_000_000, 10, jitter=0.5, rng=random.Random(7))
    for k, t in enumerate(times):
        assert k * 100_000 <= t < k * 100_000 + 50_000
    assert len(set(times)) == 10
    with pytest.raises(ValueError, match="slices"):
        algos.twap_times(0, 1_000, 0)
    with pytest.raises(ValueError, match="window"):
        algos.twap_times(1_000, 1_000, 3)


def _is(slices: int, risk_aversion: float, sigma: float = 0.01, eta: float = 1e-3) -> list[float]:
    return algos.implementation_shortfall_weights(
        slices,
        60.0,
        sigma=sigma,
        risk_aversion=risk_aversion,
        temporary_impact=eta,
        permanent_impact=0.0,
    )


def test_implementation_shortfall_without_risk_aversion_is_twap() -> None:
    assert _is(6, 0.0) == pytest.approx([1 / 6] * 6)


def test_implementation_shortfall_front_loads_more_as_risk_aversion_grows() -> None:
    low, high = _is(12, 0.5), _is(12, 5.0)
    for w in (low, high):
        assert math.fsum(w) == pytest.approx(1.0)
        assert all(a >= b for a, b in itertools.pairwise(w))
    assert high[0] > low[0] > 1 / 12
    assert high[-1] < low[-1] < 1 / 12


def test_implementation_shortfall_converges_to_the_continuous_trajectory() -> None:
    # Almgren-Chriss: as the interval shrinks, holdings follow
    # x(t) = sinh(kappa (T - t)) / sinh(kappa T), kappa = sqrt(lambda sigma^2 / eta).
    lam, sigma, eta, duration, n = 2.0, 0.01, 1e-3, 60.0, 2_000
    weights = _is(n, lam, sigma, eta)
    kappa = math.sqrt(lam * sigma * sigma / eta)
    held = 1.0
    for j, w in enumerate(weights[:-1], start=1):
        held -= w
        if j % 250 == 0:
            t = j * duration / n
            expected = math.sinh(kappa * (duration - t)) / math.sinh(kappa * duration)
            assert held == pytest.approx(expected, abs=1e-3)


def test_implementation_shortfall_refuses_impossible_impact() -> None:
    with pytest.raises(ValueError, match="temporary_impact"):
        algos.implementation_shortfall_weights(
            4, 60.0, sigma=0.01, risk_aversion=1.0, temporary_impact=0.0, permanent_impact=0.0
        )
    with pytest.raises(ValueError, match="temporary_impact"):
        # eta~ = eta - gamma tau / 2 <= 0
        algos.implementation_shortfall_weights(
            4, 60.0, sigma=0.01, risk_aversion=1.0, temporary_impact=1e-3, permanent_impact=1.0
        )


def _sample_tick_times() -> list[int]:
    times = []
    for path in sorted(SAMPLE.glob("*_quote.zip")):
        day = dt.datetime.strptime(path.name[:8], "%Y%m%d").replace(tzinfo=dt.UTC)
        midnight = calendar.timegm(day.timetuple()) * 1_000_000_000
        with zipfile.ZipFile(path) as archive:
            for line in archive.read(archive.namelist()[0]).decode().splitlines():
                times.append(midnight + int(line.split(",", 1)[0]) * 1_000_000)
    return times


def test_intraday_profile_of_real_ticks_equals_a_pandas_count() -> None:
    times = _sample_tick_times()
    assert len(times) > 10_000
    profile = algos.intraday_profile(times, [1.0] * len(times), 300)
    stamps = pd.to_datetime(pd.Series(times), unit="ns", utc=True)
    buckets = (stamps.dt.hour * 3600 + stamps.dt.minute * 60 + stamps.dt.second) // 300
    counts = buckets.value_counts().reindex(range(288), fill_value=0).to_numpy()
    np.testing.assert_allclose(profile, counts / counts.sum(), rtol=0, atol=1e-15)
    assert math.fsum(profile) == pytest.approx(1.0)


def test_profile_weights_integrate_the_profile_over_each_slice() -> None:
    flat = [1.0 / 288] * 288
    day = 86_400 * 10**9
    # A flat profile weighs slices by their length, across midnight too.
    weights = algos.profile_weights(flat, [day - 60 * 10**9, day], day + 180 * 10**9)
    assert weights[1] / weights[0] == pytest.approx(3.0)
    # All volume in the 00:00-00:05 bucket: a slice outside it weighs nothing.
    spike = [1.0] + [0.0] * 287
    weights = algos.profile_weights(spike, [0, 150 * 10**9, 300 * 10**9], 600 * 10**9)
    assert weights == pytest.approx([0.5, 0.5, 0.0])


def test_volatility_per_sqrt_second_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    mids = 1.3 * np.exp(np.cumsum(rng.normal(0, 1e-4, 400)))
    quotes = [
        algos.Quote(bid=round(m * 1e5) - 1, ask=round(m * 1e5) + 1, ts_ns=i * 250_000_000)
        for i, m in enumerate(mids)
    ]
    mid = np.array([q.mid for q in quotes])
    returns = np.diff(np.log(mid))
    expected = math.sqrt(float(np.sum(returns**2)) / ((len(quotes) - 1) * 0.25))
    assert algos.volatility_per_sqrt_second(quotes) == pytest.approx(expected, rel=1e-12)
    assert algos.volatility_per_sqrt_second(quotes[:2]) == 0.0


def test_algo_store_round_trips_and_moves_a_bad_file_aside(tmp_path: Path) -> None:
    store = algos.AlgoStore(tmp_path / "orders" / "algos.json")
    assert store.load() == {}
    records = {"A1": {"state": "running", "children": [1, 2]}}
    store.save(records)
    assert store.load() == records
    assert [p.name for p in (tmp_path / "orders").iterdir()] == ["algos.json"]
    store.path.write_text('{"version": 1, "algos": [')  # torn
    assert store.load() == {}
    (aside,) = [p for p in (tmp_path / "orders").iterdir() if "corrupt" in p.name]
    assert aside.read_text().startswith('{"version": 1')


def test_a_parent_restored_after_its_window_ends_expires_with_the_reason() -> None:
    eng = engine.ExecutionEngine([("EURUSD", 5, 0, 1)])
    try:
        spec = algos.AlgoSpec(
            algo_id="A7",
            kind=algos.AlgoKind.TWAP,
            symbol="EURUSD",
            side="buy",
            quantity=10,
            slice_times_ns=(1, 2),
            slice_quantities=(5, 5),
            end_ns=3,
        )
        saved: list[dict[str, object]] = []
        algo = algos.AlgoOrder(spec=spec, engine=eng, quote=lambda: None, arrival_mid=1.5)
        record = algo.to_record()
        restored = algos.AlgoOrder.from_record(
            record, eng, quote=lambda: None, on_change=lambda: saved.append(algo.to_record())
        )
        assert restored.to_record() == record
        restored.resume(now_ns=4)
        assert restored.state is algos.AlgoState.EXPIRED
        assert "window ended while the service was down" in restored.error
        assert saved, "the end was saved"
    finally:
        eng.stop()


def test_what_the_last_slice_misses_is_asked_for_again_at_the_new_touch() -> None:
    """The paper venue (a simulator) over FIX: the last slice is priced on a quote
    the market has left, misses, and the remainder fills at the new touch."""
    eng = engine.ExecutionEngine([("EURUSD", 5, 0, 1)])
    try:
        assert eng.wait_logged_on(5.0)
        eng.on_quote("EURUSD", 139_000, 139_010, 1_000, 1_000, time.time_ns())
        stale = algos.Quote(138_990, 139_000, time.time_ns(), 1_000, 1_000)
        now = algos.Quote(139_000, 139_010, time.time_ns(), 1_000, 1_000)
        quotes = iter([stale, stale])  # the arrival price, then the slice
        start = time.time_ns()
        spec = algos.AlgoSpec(
            algo_id="A9",
            kind=algos.AlgoKind.TWAP,
            symbol="EURUSD",
            side="buy",
            quantity=100,
            slice_times_ns=(start,),
            slice_quantities=(100,),
            end_ns=start + 2_000_000_000,
        )
        algo = algos.AlgoOrder(spec=spec, engine=eng, quote=lambda: next(quotes, now))

        async def run() -> None:
            await asyncio.wait_for(algo.start(), 10)

        asyncio.run(run())
        assert algo.state is algos.AlgoState.COMPLETED, algo.error
        first, *later = (eng.order(c) for c in algo.children)
        assert first is not None
        assert (first["limit_price"], first["filled"]) == (139_000, 0)  # missed
        assert later
        assert all(o is not None and o["limit_price"] == 139_010 for o in later)
        assert algo.filled == 100
    finally:
        eng.stop()
