"""Continuous futures series from stored contract months, with a documented roll rule.

Each contract month is stored as its own instrument (`ES201312`, `ES201403`,
...). A continuous series picks, for each UTC day, one contract:

- `RollRule.VOLUME`: start on the contract with the most volume on the first
  day; roll to a later contract on the first day its volume exceeds the
  current one's, and never roll back to an earlier month;
- `RollRule.CALENDAR`: hold the nearest contract until `days_before_expiry`
  calendar days before its expiry (expiry from the root's calendar rule).

With `back_adjust`, each earlier segment (open, high, low, close) is shifted by the price difference
between the new and the old contract at the roll (the new contract's first
close of the roll day minus the old contract's first close at or after that
minute), so the series has no artificial jump at a roll. A roll across a
gap in the data (the old contract has no bar on the roll day) is left
unadjusted and says so (`Roll.overlap` is False): the difference between
two closes days apart is market movement, not a spread. Without
`back_adjust`, prices are the contracts' own. Rolls are decided from data up to and
including the roll day only (no look-ahead).
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from nexus.services.marketdata.instruments import DataKind, InstrumentSpec
from nexus.services.marketdata.store import NS_PER_DAY, TickStore

__all__ = ["ContinuousSeries", "Roll", "RollRule", "build_continuous", "expiry"]

_PRICES = ("open", "high", "low", "close")
_COLUMNS = ("ts_ns", *_PRICES, "volume")


class RollRule(StrEnum):
    """When to move from one contract month to the next."""

    VOLUME = "volume"
    CALENDAR = "calendar"


def _third_friday(year: int, month: int) -> dt.date:
    fridays = [
        day
        for day in calendar.Calendar().itermonthdates(year, month)
        if day.month == month and day.weekday() == calendar.FRIDAY
    ]
    return fridays[2]


def expiry(root: str, contract: str) -> dt.date:
    """Returns the last trading day of a contract month ("201312").

    ES (CME equity index): the third Friday of the month. GC (COMEX gold):
    the third-last business day of the month (weekends only; exchange
    holidays are not modelled). Other roots: the month's last day.
    """
    year, month = int(contract[:4]), int(contract[4:6])
    if root == "ES":
        return _third_friday(year, month)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    if root == "GC":
        business = [
            last - dt.timedelta(days=i)
            for i in range(10)
            if (last - dt.timedelta(days=i)).weekday() < 5
        ]
        return business[2]
    return last


@dataclass(frozen=True)
class Roll:
    """One roll of the series."""

    day: dt.date
    from_contract: str
    to_contract: str
    adjustment: int  # price mantissa added to earlier segments (0 without back_adjust)
    overlap: bool  # both contracts traded on the roll day; without overlap no adjustment is made


@dataclass
class ContinuousSeries:
    """A continuous 1-minute trade-bar series and how it was stitched."""

    ts_ns: npt.NDArray[np.int64]
    close: npt.NDArray[np.int64]
    volume: npt.NDArray[np.int64]
    contract: list[str]  # per bar
    rolls: list[Roll]
    open: npt.NDArray[np.int64]
    high: npt.NDArray[np.int64]
    low: npt.NDArray[np.int64]


def _daily_volumes(
    store: TickStore, root: InstrumentSpec, contracts: list[str]
) -> dict[dt.date, dict[str, int]]:
    volumes: dict[dt.date, dict[str, int]] = {}
    for contract in contracts:
        spec = dataclasses.replace(root, symbol=f"{root.root_symbol}{contract}")
        for chunk in store.scan(DataKind.TRADE_BARS_1M, spec, 0, 2**62):
            days = chunk["ts_ns"] // NS_PER_DAY
            for day_number in np.unique(days):
                day = dt.date(1970, 1, 1) + dt.timedelta(days=int(day_number))
                total = int(chunk["volume"][days == day_number].sum())
                volumes.setdefault(day, {})
                volumes[day][contract] = volumes[day].get(contract, 0) + total
    return volumes


def build_continuous(
    store: TickStore,
    root: InstrumentSpec,
    rule: RollRule = RollRule.VOLUME,
    *,
    back_adjust: bool = True,
    days_before_expiry: int = 8,
) -> ContinuousSeries:
    """Stitches the stored contract months of `root` (e.g. ES at CME) into one
    series of 1-minute trade bars by `rule`."""
    prefix = f"{root.venue}.{root.root_symbol}"
    folder = store.root / DataKind.TRADE_BARS_1M.value
    contracts = sorted(
        p.name.removeprefix(prefix)
        for p in folder.glob(f"{prefix}*")
        if p.name.removeprefix(prefix).isdigit()
    )
    chosen = _choose(
        _daily_volumes(store, root, contracts), contracts, root, rule, days_before_expiry
    )
    return _stitch(store, root, chosen, back_adjust=back_adjust)


def _choose(
    volumes: dict[dt.date, dict[str, int]],
    contracts: list[str],
    root: InstrumentSpec,
    rule: RollRule,
    days_before_expiry: int,
) -> dict[dt.date, str]:
    """The contract of each day, decided from that day's data and earlier only."""
    chosen: dict[dt.date, str] = {}
    current: str | None = None
    for day in sorted(volumes):
        traded = volumes[day]
        if rule is RollRule.VOLUME:
            if current is None:
                current = max(traded, key=lambda c: traded[c])
            later = [c for c in traded if c > current and traded[c] > traded.get(current, 0)]
            if later:
                current = max(later, key=lambda c: traded[c])
        else:
            live = [
                c
                for c in contracts
                if expiry(root.root_symbol, c) - dt.timedelta(days=days_before_expiry) > day
            ]
            current = min(live) if live else contracts[-1]
        chosen[day] = current
    return chosen


def _stitch(
    store: TickStore, root: InstrumentSpec, chosen: dict[dt.date, str], *, back_adjust: bool
) -> ContinuousSeries:
    segments: list[tuple[str, dict[str, npt.NDArray[np.int64]]]] = []
    for day, contract in sorted(chosen.items()):
        spec = dataclasses.replace(root, symbol=f"{root.root_symbol}{contract}")
        start = (day - dt.date(1970, 1, 1)).days * NS_PER_DAY
        parts = list(store.scan(DataKind.TRADE_BARS_1M, spec, start, start + NS_PER_DAY))
        if not parts:
            continue
        columns = {
            name: np.concatenate([p[name] for p in parts]).astype(np.int64) for name in _COLUMNS
        }
        segments.append((contract, columns))

    rolls: list[Roll] = []
    for i in range(1, len(segments)):
        (old, _), (new, new_cols) = segments[i - 1], segments[i]
        if old == new:
            continue
        shift = 0
        if back_adjust:
            # The old contract on the roll day, when stored, gives the same-minute spread.
            old_spec = dataclasses.replace(root, symbol=f"{root.root_symbol}{old}")
            first_ts = int(new_cols["ts_ns"][0])
            same_day = list(
                store.scan(DataKind.TRADE_BARS_1M, old_spec, first_ts, first_ts + NS_PER_DAY)
            )
            overlap = bool(same_day and len(same_day[0]["close"]))
            if overlap:
                shift = int(new_cols["close"][0]) - int(same_day[0]["close"][0])
            for _, cols in segments[:i]:
                for name in _PRICES:
                    cols[name] = cols[name] + shift
        else:
            overlap = False
        day = dt.date(1970, 1, 1) + dt.timedelta(days=int(new_cols["ts_ns"][0]) // NS_PER_DAY)
        rolls.append(Roll(day, old, new, shift, overlap))

    if not segments:
        empty = np.zeros(0, dtype=np.int64)
        return ContinuousSeries(empty, empty, empty, [], [], empty, empty, empty)
    joined = {name: np.concatenate([c[name] for _, c in segments]) for name in _COLUMNS}
    return ContinuousSeries(
        ts_ns=joined["ts_ns"],
        close=joined["close"],
        volume=joined["volume"],
        contract=[name for name, c in segments for _ in range(len(c["ts_ns"]))],
        rolls=rolls,
        open=joined["open"],
        high=joined["high"],
        low=joined["low"],
    )
