"""Continuous ES futures from the shared contract months, by volume and by calendar."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from nexus.services.marketdata.continuous import RollRule, build_continuous, expiry
from nexus.services.marketdata.ingest import FeedStatusBoard, ingest
from nexus.services.marketdata.instruments import DataKind, InstrumentSpec, find_instrument
from nexus.services.marketdata.store import TickStore


def test_expiry_calendars() -> None:
    assert expiry("ES", "201312") == dt.date(2013, 12, 20)  # third Friday
    assert expiry("ES", "201403") == dt.date(2014, 3, 21)
    assert expiry("GC", "201312") == dt.date(2013, 12, 27)  # third-last business day


@pytest.fixture(scope="module")
def es_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> TickStore:
    store = TickStore(tmp_path_factory.mktemp("es"))
    ingest(store, [shared_data / "market/futures/bars_1min/lean_cme_es"], FeedStatusBoard())
    return store


@pytest.fixture(scope="module")
def es() -> InstrumentSpec:
    spec = find_instrument("ES", "CME")
    assert spec is not None
    return spec


def _closes(store: TickStore, es: InstrumentSpec, contract: str, day: dt.date) -> dict[int, int]:
    start = (day - dt.date(1970, 1, 1)).days * 86_400_000_000_000
    spec = dataclasses.replace(es, symbol=f"ES{contract}")
    out: dict[int, int] = {}
    for chunk in store.scan(DataKind.TRADE_BARS_1M, spec, start, start + 86_400_000_000_000):
        out.update(zip(chunk["ts_ns"].tolist(), chunk["close"].tolist(), strict=True))
    return out


@pytest.mark.parametrize("rule", [RollRule.VOLUME, RollRule.CALENDAR])
def test_december_2013_rolls_to_march(
    es_store: TickStore, es: InstrumentSpec, rule: RollRule
) -> None:
    series = build_continuous(es_store, es, rule)
    first = series.rolls[0]
    assert (first.day, first.from_contract, first.to_contract) == (
        dt.date(2013, 12, 18),
        "201312",
        "201403",
    )
    assert first.overlap
    # The adjustment is the March-December spread at the first minute of the roll day.
    march = _closes(es_store, es, "201403", first.day)
    december = _closes(es_store, es, "201312", first.day)
    minute = min(march)
    assert first.adjustment == march[minute] - december[min(t for t in december if t >= minute)]
    # The 2013 -> 2020 step crosses six years without data: not adjusted.
    assert not series.rolls[1].overlap
    assert series.rolls[1].adjustment == 0
    assert np.all(np.diff(series.ts_ns) > 0)


def test_back_adjustment_shifts_only_earlier_segments(
    es_store: TickStore, es: InstrumentSpec
) -> None:
    adjusted = build_continuous(es_store, es, RollRule.VOLUME, back_adjust=True)
    raw = build_continuous(es_store, es, RollRule.VOLUME, back_adjust=False)
    np.testing.assert_array_equal(adjusted.ts_ns, raw.ts_ns)
    assert adjusted.contract == raw.contract
    shift = adjusted.rolls[0].adjustment
    before = np.array([c == "201312" for c in raw.contract])
    np.testing.assert_array_equal(adjusted.close[before], raw.close[before] + shift)
    np.testing.assert_array_equal(adjusted.close[~before], raw.close[~before])
    assert all(r.adjustment == 0 for r in raw.rolls)
