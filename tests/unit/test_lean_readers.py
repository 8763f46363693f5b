"""The Rust Lean readers on real data, against an independent pure-Python reading."""

from __future__ import annotations

import calendar
import zipfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from nexus import engine

NS_PER_MS = 1_000_000


def _python_quotes(path: Path, utc_offset_minutes: int) -> list[tuple[int, int, int]]:
    """The reference: zipfile + Decimal + calendar, nothing shared with the Rust reader."""
    day = path.name[:8]
    midnight = calendar.timegm((int(day[:4]), int(day[4:6]), int(day[6:8]), 0, 0, 0))
    start_ns = (midnight - utc_offset_minutes * 60) * 1_000_000_000
    with zipfile.ZipFile(path) as archive:
        text = archive.read(archive.namelist()[0]).decode()
    rows = []
    for line in text.splitlines():
        ms, bid, ask = line.split(",")
        rows.append(
            (
                start_ns + int(ms) * NS_PER_MS,
                int(Decimal(bid).scaleb(5)),
                int(Decimal(ask).scaleb(5)),
            )
        )
    return rows


@pytest.mark.parametrize(
    ("folder", "offset"), [("lean_oanda_eurusd", 0), ("lean_fxcm_eurusd", -300)]
)
def test_quote_ticks_match_an_independent_reading(
    shared_data: Path, folder: str, offset: int
) -> None:
    path = shared_data / "market/fx/ticks" / folder / "20140509_quote.zip"
    ts, bid, ask, report = engine.read_lean_quote_ticks(path, 5, offset)
    expected = _python_quotes(path, offset)
    assert report["rows"] == len(expected)
    assert report["bad_rows"] == {}
    assert len(ts) == len(bid) == len(ask) == len(expected)
    assert (ts.dtype, bid.dtype) == (np.dtype(np.int64), np.dtype(np.int64))
    reference = np.array(expected, dtype=np.int64)
    np.testing.assert_array_equal(ts, reference[:, 0])
    np.testing.assert_array_equal(bid, reference[:, 1])
    np.testing.assert_array_equal(ask, reference[:, 2])
    # The Friday session closes at 20:59 UTC whatever the vendor's time zone.
    last = ts[-1] // 1_000_000_000
    assert (
        calendar.timegm((2014, 5, 9, 20, 58, 0)) <= last < calendar.timegm((2014, 5, 9, 21, 0, 0))
    )
    assert np.all(np.diff(ts) >= 0)


def test_arrays_own_the_rust_buffers(shared_data: Path) -> None:
    path = shared_data / "market/fx/ticks/lean_oanda_eurusd/20140505_quote.zip"
    ts, _, _, _ = engine.read_lean_quote_ticks(path, 5)
    assert not ts.flags.owndata  # numpy wraps the Rust Vec: no copy was made
    assert ts.base is not None


def test_batch_validation_matches_one_at_a_time(shared_data: Path) -> None:
    path = shared_data / "market/fx/ticks/lean_fxcm_eurusd/20140507_quote.zip"
    ts, bid, ask, _ = engine.read_lean_quote_ticks(path, 5, -300)
    batch = engine.QuoteValidator()
    accepted = batch.check_batch(ts, bid, ask)
    single = engine.QuoteValidator()
    one_by_one = [
        single.check(int(t), int(b), int(a)) is None for t, b, a in zip(ts, bid, ask, strict=True)
    ]
    np.testing.assert_array_equal(accepted, np.array(one_by_one))
    assert batch.rejections() == single.rejections()
    assert dict(batch.rejections())["crossed"] == int(np.sum(bid > ask))


def test_batch_validation_refuses_ragged_columns() -> None:
    validator = engine.QuoteValidator()
    with pytest.raises(ValueError, match="columns differ in length: ts_ns 2, bid 1, ask 2"):
        validator.check_batch(
            np.array([1, 2], dtype=np.int64),
            np.array([1], dtype=np.int64),
            np.array([2, 3], dtype=np.int64),
        )
    with pytest.raises(TypeError):
        validator.check_batch(np.array([1.0]), np.array([1.0]), np.array([1.0]))


def test_futures_trades_by_contract(shared_data: Path) -> None:
    path = shared_data / "market/futures/trades/lean_comex_gc/20131007_trade.zip"
    series, report = engine.read_lean_trade_ticks(path, price_scale=1)
    contracts = {contract: len(ts) for contract, ts, _, _ in series}
    assert max(contracts, key=lambda c: contracts[c]) == "201312"  # the front month
    with zipfile.ZipFile(path) as archive:
        total = sum(len(archive.read(n).splitlines()) for n in archive.namelist())
    assert report["rows"] == total
    assert sum(contracts.values()) + sum(report["bad_rows"].values()) == total


def test_quote_bars_agree_with_ticks_rebuilt_into_bars(shared_data: Path) -> None:
    bars_path = shared_data / "market/fx/bars_1min/lean_oanda_eurusd/20140506_quote.zip"
    ticks_path = shared_data / "market/fx/ticks/lean_oanda_eurusd/20140506_quote.zip"
    (series,), report = engine.read_lean_quote_bars(bars_path, "bid", 5)
    _, ts_bar, open_, high, low, close, _ = series
    ts, bid, _, _ = engine.read_lean_quote_ticks(ticks_path, 5)
    assert report["bad_rows"] == {}
    assert report["empty_rows"] == 0
    minute = 60 * 1_000_000_000
    # Lean stamps a minute bar with its open time; rebuild the bid bars from ticks.
    starts = np.searchsorted(ts, ts_bar, side="left")
    ends = np.searchsorted(ts, ts_bar + minute, side="left")
    checked = 0
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        if a == b:
            continue
        window = bid[a:b]
        assert (high[i], low[i], close[i]) == (window.max(), window.min(), window[-1]), i
        checked += 1
    assert checked > 1000
    assert np.all(low <= open_)
    assert np.all(open_ <= high)


def test_futures_trade_bars_by_contract(shared_data: Path) -> None:
    path = shared_data / "market/futures/bars_1min/lean_cme_es/20131007_trade.zip"
    series, report = engine.read_lean_trade_bars(path, price_scale=2)
    assert report["bad_rows"] == {}
    by_contract = {s[0]: s for s in series}
    assert set(by_contract) == {"201312", "201403", "201406"}
    _, ts, open_, high, low, close, volume = by_contract["201312"]
    assert (open_[0], high[1], volume[2]) == (167650, 167675, 60)  # first rows of the CSV
    assert np.all((low <= close) & (close <= high))
    assert np.all(np.diff(ts) > 0)


def test_unreadable_files_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"cannot read .*20140101_quote\.zip"):
        engine.read_lean_quote_ticks(tmp_path / "20140101_quote.zip", 5)
    bad = tmp_path / "20140102_quote.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(engine.DataFileError, match="is not a readable zip archive"):
        engine.read_lean_quote_ticks(bad, 5)
    with pytest.raises(ValueError, match="side must be 'bid' or 'ask'"):
        engine.read_lean_quote_bars(bad, "mid", 5)


@pytest.mark.parametrize("inflate_thread", [True, False])
def test_the_pipeline_refuses_unreadable_and_corrupt_zips(
    tmp_path: Path, inflate_thread: bool
) -> None:
    with pytest.raises(OSError, match=r"cannot read .*20140101_quote\.zip"):
        engine.run_quote_pipeline(tmp_path / "20140101_quote.zip", 5, inflate_thread=inflate_thread)
    bad = tmp_path / "20140102_quote.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(engine.DataFileError, match="is not a readable zip archive"):
        engine.run_quote_pipeline(bad, 5, inflate_thread=inflate_thread)
    corrupt = tmp_path / "20140103_quote.zip"
    rows = "".join(
        f"{i * 10},1.{39000 + i % 50:05d},1.{39003 + i % 50:05d}\n" for i in range(5_000)
    )
    with zipfile.ZipFile(corrupt, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("q.csv", rows)
    data = bytearray(corrupt.read_bytes())
    at = data.index(b"1.39020")
    data[at + 5] ^= 0x01  # one digit changed: a CRC-32 mismatch
    corrupt.write_bytes(bytes(data))
    with pytest.raises(
        engine.DataFileError, match=r"q\.csv is not a readable zip archive: CRC-32 mismatch"
    ):
        engine.run_quote_pipeline(corrupt, 5, inflate_thread=inflate_thread)
    with pytest.raises(ValueError, match="period 1 is below the minimum of 2"):
        engine.run_quote_pipeline(corrupt, 5, ema_period=1, inflate_thread=inflate_thread)
