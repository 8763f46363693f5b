"""Live FIX market-data sessions of the market-data service.

Each `LiveFixSession` wraps the Rust `FixMarketDataSession` (a FIX initiator
that subscribes with MarketDataRequest and keeps L2 books from the W/X it
receives) for a set of instruments, and reports it on the feed status board
as source `fix:<venue>`. The Rust side counts; `sync` adds what arrived since
the last call to the board, so `GetFeedStatus` and the metrics see the same
figures as the FIX log replays (one row per message, rejections by issue).

`PaperMarketDataFeed` drives the market-data venue simulator
(`PaperMarketDataServer`) with stored real quotes on the data's clock, looping,
for `make run` and the tests: a top-of-book per quote (FX quotes have no
depth), which the venue publishes as W/X.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from nexus import engine
from nexus.services.marketdata.ingest import ISSUE_NAMES, MALFORMED, SEQUENCE_GAP, FeedStatusBoard
from nexus.services.marketdata.instruments import DataKind, InstrumentSpec
from nexus.services.marketdata.store import TickStore

__all__ = ["LiveFixSession", "PaperMarketDataFeed", "fix_issue"]

log = logging.getLogger("nexus.marketdata.fix")

_ISSUE_NUMBERS = {name: number for number, name in ISSUE_NAMES.items()}
# FIX market-data rejection reasons (FixBookFeed) as feed-status issues; others are MALFORMED.
_FIX_REASON_ISSUES = {
    "non_positive_price": _ISSUE_NUMBERS["BAD_PRICE"],
    "negative_size": _ISSUE_NUMBERS["BAD_SIZE"],
    "zero_size": _ISSUE_NUMBERS["BAD_SIZE"],
    "bad_sequence": SEQUENCE_GAP,
    "absent_level": SEQUENCE_GAP,
    "level_exists": SEQUENCE_GAP,
}


def fix_issue(status: str, reason: str | None) -> int | None:
    """The feed-status issue of one FIX market-data message outcome, if it is one."""
    if reason is not None:
        return _FIX_REASON_ISSUES.get(reason, MALFORMED)
    if status in ("gap", "awaiting_snapshot"):
        return SEQUENCE_GAP
    return None


class LiveFixSession:
    """A live FIX market-data session for some instruments of one venue."""

    def __init__(
        self,
        source: str,
        specs: list[InstrumentSpec],
        *,
        host: str,
        port: int,
        sender: str,
        target: str,
        depth: int = 0,
        begin_string: str = "FIX.4.4",
        heart_bt_int: int = 30,
        stale_after_s: float = 5.0,
        gap_buffer: int = 10_000,
    ) -> None:
        self.source = source
        self.specs = {spec.symbol: spec for spec in specs}
        self.session = engine.FixMarketDataSession(
            host,
            port,
            sender,
            target,
            {s.symbol: (s.price_scale, s.size_scale) for s in specs},
            depth=depth,
            begin_string=begin_string,
            heart_bt_int=heart_bt_int,
            stale_after_s=stale_after_s,
            gap_buffer=gap_buffer,
        )
        self._synced_received = 0
        self._synced: dict[int, int] = {}

    def book(self, spec: InstrumentSpec) -> engine.OrderBook | None:
        """A copy of the live book of `spec`, if this session keeps it."""
        if self.specs.get(spec.symbol) != spec:
            return None
        return self.session.book(spec.symbol)

    def status(self) -> dict[str, Any]:
        """Health, reason and counters of the session (see `FixMarketDataSession.status`)."""
        return self.session.status()

    def sync(self, board: FeedStatusBoard) -> dict[str, Any]:
        """Adds the messages received since the last call to `board`; returns the status."""
        status = self.session.status()
        issues: dict[int, int] = {}
        for key, count in status["outcomes"].items():
            state, _, reason = key.partition(":")
            issue = fix_issue(state, reason or None)
            if issue is not None:
                issues[issue] = issues.get(issue, 0) + count
        received = status["data_messages"] - self._synced_received
        rejected = {k: v - self._synced.get(k, 0) for k, v in issues.items()}
        rejected = {k: v for k, v in rejected.items() if v}
        if received or rejected:
            board.record(
                self.source,
                received=received,
                rejected=rejected,
                last_event_ns=time.time_ns() if received else 0,
            )
        elif self.source not in board.snapshot():
            board.record(self.source, received=0, rejected={})
        self._synced_received = status["data_messages"]
        self._synced = issues
        return status

    def stop(self) -> None:
        """Logs out and stops the session."""
        self.session.stop()


class PaperMarketDataFeed:
    """The market-data venue simulator, fed with stored quotes on the data's clock."""

    def __init__(
        self,
        specs: list[InstrumentSpec],
        store_dir: Path,
        *,
        replay_speed: float,
        quote_size: int,
        client: str,
    ) -> None:
        self.specs = specs
        self.store_dir = store_dir
        self.replay_speed = replay_speed
        self.quote_size = quote_size
        self.server = engine.PaperMarketDataServer(
            {s.symbol: (s.price_scale, s.size_scale) for s in specs},
            depth=1,
            sender_comp_id="PAPER-MD",
            clients=[client],
        )
        self.quotes_fed = 0

    @property
    def port(self) -> int:
        """The port of the simulator's acceptor on 127.0.0.1."""
        return self.server.port

    async def run(self, stop: asyncio.Event) -> None:
        """Replays the stored quotes into the simulator until `stop`, looping."""
        store = TickStore(self.store_dir)
        while not stop.is_set():
            fed_any = False
            for spec in self.specs:
                wall0, data0 = time.monotonic(), None
                for chunk in store.scan(DataKind.QUOTES, spec, 0, 2**62):
                    ok = chunk["flags"] == 0
                    rows = zip(
                        chunk["ts_ns"][ok].tolist(),
                        chunk["bid"][ok].tolist(),
                        chunk["ask"][ok].tolist(),
                        strict=True,
                    )
                    for ts, bid, ask in rows:
                        if stop.is_set():
                            return
                        data0 = ts if data0 is None else data0
                        delay = wall0 + (ts - data0) / 1e9 / self.replay_speed - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        size = self.quote_size
                        try:
                            self.server.on_quote(spec.symbol, bid, ask, size, size)
                        except ValueError as err:  # a quote the venue cannot publish
                            log.warning("quote not published", extra={"reason": str(err)})
                            continue
                        self.quotes_fed += 1
                        fed_any = True
            if not fed_any:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)  # nothing stored yet

    def stop(self) -> None:
        """Stops the simulator's acceptor."""
        self.server.stop()
