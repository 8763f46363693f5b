"""Instrument specifications and how the shipped and shared data files map onto them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

__all__ = [
    "INSTRUMENTS",
    "BookFeedFile",
    "DataKind",
    "InstrumentSpec",
    "SourceFile",
    "UnknownSourceError",
    "find_instrument",
    "identify",
    "identify_book_feed",
]


class DataKind(StrEnum):
    """What a stored series holds."""

    QUOTES = "quotes"
    TRADES = "trades"
    BARS_1M = "bars_1m"  # 1-minute bid quote bars
    TRADE_BARS_1M = "trade_bars_1m"  # 1-minute trade bars with volume


@dataclass(frozen=True)
class InstrumentSpec:
    """Contract details of one instrument at one venue or data source."""

    symbol: str
    venue: str
    asset_class: str  # "fx", "future", "crypto"
    price_scale: int  # decimal places of price mantissas
    size_scale: int
    tick_size: Decimal
    multiplier: Decimal = Decimal(1)
    lot_size: Decimal = Decimal(1)
    quote_currency: str = "USD"
    root_symbol: str = ""

    @property
    def key(self) -> str:
        """A filesystem- and URL-safe key, e.g. "OANDA.EURUSD"."""
        return f"{self.venue}.{self.symbol.replace('/', '')}"


def _fx(symbol: str, venue: str, scale: int = 5) -> InstrumentSpec:
    return InstrumentSpec(
        symbol=symbol,
        venue=venue,
        asset_class="fx",
        price_scale=scale,
        size_scale=0,
        tick_size=Decimal(1).scaleb(-scale),
        quote_currency=symbol.split("/")[1],
    )


INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    _fx("EUR/USD", "OANDA"),
    _fx("NZD/USD", "OANDA"),
    _fx("EUR/USD", "FXCM"),
    _fx("NZD/USD", "FXCM"),
    InstrumentSpec(
        symbol="GC",
        venue="COMEX",
        asset_class="future",
        price_scale=1,
        size_scale=0,
        tick_size=Decimal("0.1"),
        multiplier=Decimal(100),
        root_symbol="GC",
    ),
    InstrumentSpec(
        symbol="BTCUSDT",
        venue="BINANCE",
        asset_class="crypto",
        price_scale=2,
        size_scale=8,
        tick_size=Decimal("0.01"),
        lot_size=Decimal("0.00001"),
        quote_currency="USDT",
    ),
    InstrumentSpec(
        symbol="ES",
        venue="CME",
        asset_class="future",
        price_scale=2,
        size_scale=0,
        tick_size=Decimal("0.25"),
        multiplier=Decimal(50),
        root_symbol="ES",
    ),
)

# Lean's data time zone per vendor, in minutes east of UTC (Lean's
# market-hours database: FXCM is UTC-5 without daylight saving).
_LEAN_OFFSETS = {"fxcm": -300, "oanda": 0, "comex": 0, "cme": 0}
_LEAN_FOLDER = re.compile(r"^lean_(?P<vendor>[a-z]+)_(?P<symbol>[a-z0-9]+)$")
_KINDS = {"ticks": DataKind.QUOTES, "bars_1min": DataKind.BARS_1M, "trades": DataKind.TRADES}


class UnknownSourceError(ValueError):
    """A file is not one of the layouts Nexus knows how to read."""


@dataclass(frozen=True)
class SourceFile:
    """A data file identified: which instrument, what kind, how to read it."""

    path: Path
    instrument: InstrumentSpec
    kind: DataKind
    utc_offset_minutes: int

    @property
    def source(self) -> str:
        """The data source's name for feed status, e.g. "lean:oanda"."""
        return f"lean:{self.instrument.venue.lower()}"


_BOOK_FOLDER = re.compile(r"^hftbacktest_binance_(?P<market>spot|usdm)$")


@dataclass(frozen=True)
class BookFeedFile:
    """A recorded order-book feed identified: instrument and Binance market."""

    path: Path
    instrument: InstrumentSpec
    market: str  # "spot" or "usdm"

    @property
    def source(self) -> str:
        """The data source's name for feed status, e.g. "binance:spot"."""
        return f"binance:{self.market}"


def identify_book_feed(path: Path) -> BookFeedFile:
    """Identifies a recorded Binance feed (`hftbacktest_binance_<market>/<symbol>_<date>.gz`).

    Raises:
        UnknownSourceError: the path is not a known layout or instrument.
    """
    match = _BOOK_FOLDER.match(path.parent.name)
    symbol = path.name.split("_", 1)[0].upper()
    spec = find_instrument(symbol, "BINANCE") if match else None
    if match is None or spec is None or not path.name.endswith(".gz"):
        raise UnknownSourceError(
            f"{path}: expected .../hftbacktest_binance_{{spot,usdm}}/<symbol>_<date>.gz "
            "for a known instrument"
        )
    return BookFeedFile(path, spec, match["market"])


def find_instrument(symbol: str, venue: str) -> InstrumentSpec | None:
    """Returns the spec of `symbol` at `venue` ("EUR/USD" or "EURUSD"), if known."""
    wanted = symbol.replace("/", "").upper()
    for spec in INSTRUMENTS:
        if spec.venue == venue.upper() and spec.symbol.replace("/", "") == wanted:
            return spec
    return None


def identify(path: Path) -> SourceFile:
    """Identifies a Lean file by its folder (`lean_<vendor>_<symbol>`) and parent.

    Raises:
        UnknownSourceError: the path is not a known layout or instrument.
    """
    match = _LEAN_FOLDER.match(path.parent.name)
    kind = _KINDS.get(path.parent.parent.name)
    if match is None or kind is None or not path.name.endswith(".zip"):
        raise UnknownSourceError(
            f"{path}: expected .../{{ticks,bars_1min,trades}}/lean_<vendor>_<symbol>/YYYYMMDD_*.zip"
        )
    if kind is DataKind.BARS_1M and path.name.endswith("_trade.zip"):
        kind = DataKind.TRADE_BARS_1M
    vendor, raw = match["vendor"], match["symbol"]
    symbol = f"{raw[:3]}/{raw[3:]}".upper() if len(raw) == 6 else raw.upper()
    spec = find_instrument(symbol, vendor)
    if spec is None:
        raise UnknownSourceError(f"{path}: no instrument {symbol} at {vendor.upper()}")
    return SourceFile(path, spec, kind, _LEAN_OFFSETS[vendor])
