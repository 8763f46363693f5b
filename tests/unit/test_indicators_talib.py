"""Indicators and bars from the Rust engine against TA-Lib and independent
computations, on the real OANDA EUR/USD sample shipped in the repository."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import talib

from nexus import engine
from tests.conftest import REPO

SAMPLE = REPO / "data" / "sample" / "market" / "fx"
Floats = npt.NDArray[np.float64]
Quotes = tuple[npt.NDArray[np.int64], Floats, Floats, Floats]


@pytest.fixture(scope="module")
def quotes() -> Quotes:
    """Two days of real ticks: times, mid, bid and ask in price units."""
    columns = [
        engine.read_lean_quote_ticks(SAMPLE / "ticks/lean_oanda_eurusd" / f"{day}_quote.zip", 5)
        for day in ("20140505", "20140506")
    ]
    ts = np.concatenate([c[0] for c in columns])
    bid = np.concatenate([c[1] for c in columns]) / 1e5
    ask = np.concatenate([c[2] for c in columns]) / 1e5
    return ts, (bid + ask) / 2, bid, ask


def _same(ours: Floats, theirs: Floats, atol: float = 0.0) -> None:
    """Equal NaN positions (the lookback), and values within `atol`."""
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol, equal_nan=True)


@pytest.mark.parametrize("period", [2, 14, 50])
def test_moving_averages_and_rsi_equal_talib_exactly(quotes: Quotes, period: int) -> None:
    mid = quotes[1]
    _same(engine.sma(mid, period), talib.SMA(mid, period))
    _same(engine.ema(mid, period), talib.EMA(mid, period))
    _same(engine.rsi(mid, period), talib.RSI(mid, period))


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5)])
def test_macd_equals_talib(quotes: Quotes, fast: int, slow: int, signal: int) -> None:
    mid = quotes[1]
    for ours, theirs in zip(
        engine.macd(mid, fast, slow, signal), talib.MACD(mid, fast, slow, signal), strict=True
    ):
        _same(ours, theirs)


def test_bollinger_and_atr_agree_with_talib(quotes: Quotes) -> None:
    _, mid, bid, ask = quotes
    for ours, theirs in zip(
        engine.bollinger(mid, 20, 2.0, 2.0), talib.BBANDS(mid, 20, 2.0, 2.0), strict=True
    ):
        _same(ours, theirs, atol=1e-11)  # TA-Lib's running variance is the less exact one
    _same(engine.atr(ask, bid, mid, 14), talib.ATR(ask, bid, mid, 14), atol=1e-14)


def test_vwap_and_realised_volatility_match_numpy(quotes: Quotes) -> None:
    _, mid, bid, ask = quotes
    volume = (ask - bid) * 1e5 + 1.0  # a positive weight per tick
    _same(engine.vwap(mid, volume), np.cumsum(mid * volume) / np.cumsum(volume), atol=1e-12)
    window = 100
    ours = engine.rolling_vwap(mid, volume, window)
    pv = np.convolve(mid * volume, np.ones(window), "valid")
    v = np.convolve(volume, np.ones(window), "valid")
    np.testing.assert_allclose(ours[window - 1 :], pv / v, rtol=1e-12)
    vol = engine.realised_volatility(mid, window)
    returns = np.diff(np.log(mid))
    windows = np.lib.stride_tricks.sliding_window_view(returns, window)
    np.testing.assert_allclose(vol[window:], windows.std(axis=1, ddof=1), rtol=1e-9)


def test_minute_bars_rebuilt_from_ticks_equal_leans_bars() -> None:
    ts, bid, _, _ = engine.read_lean_quote_ticks(
        SAMPLE / "ticks/lean_oanda_eurusd/20140507_quote.zip", 5
    )
    open_ts, _, o, h, lo, c, volume, ticks = engine.aggregate_bars(
        "1m", ts, bid, np.ones(len(ts), dtype=np.int64)
    )
    (series,), _ = engine.read_lean_quote_bars(
        SAMPLE / "bars_1min/lean_oanda_eurusd/20140507_quote.zip", "bid", 5
    )
    _, lean_ts, lean_o, lean_h, lean_l, lean_c, _ = series
    minute = 60_000_000_000
    np.testing.assert_array_equal(open_ts // minute * minute, lean_ts)
    np.testing.assert_array_equal(o, lean_o)
    np.testing.assert_array_equal(h, lean_h)
    np.testing.assert_array_equal(lo, lean_l)
    np.testing.assert_array_equal(c, lean_c)
    assert int(ticks.sum()) == int(volume.sum()) == len(ts)


def test_bad_parameters_raise_value_errors() -> None:
    values = np.arange(10, dtype=np.float64)
    with pytest.raises(ValueError, match="period 1 is below the minimum of 2"):
        engine.sma(values, 1)
    with pytest.raises(ValueError, match="kind must be 1m"):
        engine.aggregate_bars(
            "7m", np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64)
        )
    with pytest.raises(ValueError, match="earlier than the latest time seen"):
        engine.aggregate_bars(
            "ticks", np.array([2, 1], np.int64), np.ones(2, np.int64), np.ones(2, np.int64), 5
        )


def test_one_call_pipeline_equals_its_steps_run_separately() -> None:
    path = SAMPLE / "ticks/lean_oanda_eurusd/20140506_quote.zip"
    flags, ema, rsi, bars, rows = engine.run_quote_pipeline(path, 5, 0, 20, 14)
    ts, bid, ask, report = engine.read_lean_quote_ticks(path, 5)
    assert rows == report["rows"] == len(ts)
    np.testing.assert_array_equal(flags, engine.QuoteValidator().flag_batch(ts, bid, ask))
    ok = flags == 0
    mid_mantissa = (bid[ok] + ask[ok]) * 5  # the mid, (bid + ask) / 2, at 6 decimals: exact
    mid = mid_mantissa / 1e6
    _same(ema, talib.EMA(mid, 20))
    _same(rsi, talib.RSI(mid, 14))
    expected = engine.aggregate_bars("1m", ts[ok], mid_mantissa, np.ones(int(ok.sum()), np.int64))
    for ours, theirs in zip(bars, expected, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    day_ns = int(ts[0]) // 86_400_000_000_000 * 86_400_000_000_000  # OANDA days are UTC
    csv_run = engine.run_quote_pipeline_csv(_zip_member(path), day_ns, 5)
    one_thread = engine.run_quote_pipeline(path, 5, 0, 20, 14, inflate_thread=False)
    for other in (csv_run, one_thread):  # the same output whichever way the text arrives
        np.testing.assert_array_equal(other[0], flags)
        np.testing.assert_array_equal(other[1], ema)
        np.testing.assert_array_equal(other[2], rsi)
        for column, want in zip(other[3], bars, strict=True):
            np.testing.assert_array_equal(column, want)
        assert other[4] == rows


def _zip_member(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(archive.namelist()[0])
