"""The Nexus live market-data session (`FixMarketDataSession`) against a real QuickFIX
acceptor playing a market-data venue: standard FIX 4.4 MarketDataRequest (V) in,
full refresh (W) and incremental refresh (X) out, a MarketDataRequestReject (Y)
for a symbol the venue does not carry, and an RptSeq gap recovered by
re-subscribing. QuickFIX validates every message the session sends against its own
FIX44.xml.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nexus import engine
from tests.conftest import free_port
from tests.integration.test_fix_md_session import levels, wait_for
from tests.integration.test_quickfix_interop import _RecordingApp, _settings

fix: Any = pytest.importorskip("quickfix")
fix44: Any = pytest.importorskip("quickfix44")

pytestmark = pytest.mark.integration

SYMBOL = "EUR/USD"
UNKNOWN = "XAU/USD"
SCALES = (5, 0)  # prices at 5 decimals, sizes in units

# (side, price, size) as the venue sends them, price text at 5 decimals.
SNAPSHOT = [("0", "1.08000", "1000000"), ("0", "1.07990", "2000000"), ("1", "1.08010", "1500000")]


@dataclass
class _Venue:
    """What the QuickFIX market-data application saw and holds."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[dict[int, str]] = field(default_factory=list)
    subscribed: dict[str, str] = field(default_factory=dict)  # symbol -> MDReqID
    session_id: Any = None
    rpt_seq: int = 0
    #: Whether the full refresh carries RptSeq (83) at message level, as FIX 5.0
    #: and many 4.4 venues do; the FIX 4.4 spec has it in the increments only.
    numbered_snapshot: bool = True


class _MdVenueApp(_RecordingApp):
    """Answers each subscription (263=1) with a full refresh of SNAPSHOT; rejects
    UNKNOWN with 35=Y (MDReqRejReason 0, unknown symbol); notes unsubscriptions."""

    def __init__(self) -> None:
        super().__init__()
        self.venue = _Venue()

    def onLogon(self, session_id: Any) -> None:
        super().onLogon(session_id)
        with self.venue.lock:
            self.venue.session_id = session_id

    def fromApp(self, msg: Any, session_id: Any) -> None:
        try:
            self._answer(msg, session_id)
        except Exception as e:
            with self.rec.lock:
                self.rec.errors.append(repr(e))

    def _answer(self, msg: Any, session_id: Any) -> None:
        if str(msg.getHeader().getField(35)) != "V":
            return
        fields = {
            tag: str(msg.getField(tag)) for tag in (262, 263, 264, 265) if msg.isSetField(tag)
        }
        group = fix44.MarketDataRequest.NoRelatedSym()
        msg.getGroup(1, group)
        symbol = str(group.getField(55))
        fields[55] = symbol
        entry_types = fix44.MarketDataRequest.NoMDEntryTypes()
        types = []
        for i in range(1, int(msg.getField(267)) + 1):
            msg.getGroup(i, entry_types)
            types.append(str(entry_types.getField(269)))
        fields[269] = ",".join(types)
        with self.venue.lock:
            self.venue.requests.append(fields)
        if fields[263] == "2":
            with self.venue.lock:
                self.venue.subscribed.pop(symbol, None)
            return
        if symbol == UNKNOWN:
            reject = fix44.MarketDataRequestReject()
            reject.setField(fix.MDReqID(fields[262]))
            reject.setField(fix.MDReqRejReason("0"))
            reject.setField(fix.Text(f"{symbol} is not carried here"))
            fix.Session.sendToTarget(reject, session_id)
            return
        with self.venue.lock:
            self.venue.subscribed[symbol] = fields[262]
            seq = self.venue.rpt_seq
        full = fix44.MarketDataSnapshotFullRefresh()
        full.setField(fix.MDReqID(fields[262]))
        full.setField(fix.Symbol(symbol))
        if self.venue.numbered_snapshot:
            full.setField(fix.IntField(83, seq))  # RptSeq: the increments continue from it
        for side, price, size in SNAPSHOT:
            entry = fix44.MarketDataSnapshotFullRefresh.NoMDEntries()
            entry.setField(fix.MDEntryType(side))
            entry.setField(fix.StringField(270, price))
            entry.setField(fix.StringField(271, size))
            full.addGroup(entry)
        fix.Session.sendToTarget(full, session_id)

    def send_increments(self, changes: list[tuple[str, str, str, str]], skip: int = 0) -> None:
        """One X with `changes` (action, side, price, size) for SYMBOL, each entry
        numbered with the next RptSeq; `skip` numbers are left out first (a gap)."""
        with self.venue.lock:
            md_req_id = self.venue.subscribed[SYMBOL]
            session_id = self.venue.session_id
            self.venue.rpt_seq += skip
            first = self.venue.rpt_seq + 1
            self.venue.rpt_seq += len(changes)
        inc = fix44.MarketDataIncrementalRefresh()
        inc.setField(fix.MDReqID(md_req_id))
        for n, (action, side, price, size) in enumerate(changes):
            entry = fix44.MarketDataIncrementalRefresh.NoMDEntries()
            entry.setField(fix.MDUpdateAction(action))
            entry.setField(fix.MDEntryType(side))
            entry.setField(fix.Symbol(SYMBOL))
            entry.setField(fix.IntField(83, first + n))
            entry.setField(fix.StringField(270, price))
            if action != "2":
                entry.setField(fix.StringField(271, size))
            inc.addGroup(entry)
        fix.Session.sendToTarget(inc, session_id)


@contextmanager
def _md_venue(tmp_path: Path) -> Iterator[tuple[_MdVenueApp, int]]:
    """A QuickFIX SocketAcceptor (QF-MD -> NEXUS) on a free port, stopped on exit."""
    port = free_port()
    settings = _settings(
        tmp_path,
        "md",
        {"BeginString": "FIX.4.4", "SenderCompID": "QF-MD", "TargetCompID": "NEXUS"},
        {"ConnectionType": "acceptor", "SocketAcceptPort": str(port)},
    )
    app = _MdVenueApp()
    acceptor = fix.SocketAcceptor(
        app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
    )
    acceptor.start()
    try:
        yield app, port
    finally:
        acceptor.stop()


def _px(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 10**5 + int(frac.ljust(5, "0"))


@pytest.mark.parametrize("numbered_snapshot", [True, False], ids=["W with RptSeq", "FIX 4.4 W"])
def test_quickfix_venue_feeds_the_nexus_book_and_rejects_an_unknown_symbol(
    tmp_path: Path, numbered_snapshot: bool
) -> None:
    with _md_venue(tmp_path) as (app, port):
        app.venue.numbered_snapshot = numbered_snapshot
        session = engine.FixMarketDataSession(
            "127.0.0.1", port, "NEXUS", "QF-MD", {SYMBOL: SCALES, UNKNOWN: SCALES}, depth=10
        )
        try:
            wait_for("the snapshot", lambda: session.book(SYMBOL).state == "live")
            assert levels(session.book(SYMBOL), 10) == (
                [(108_000, 1_000_000), (107_990, 2_000_000)],
                [(108_010, 1_500_000)],
            )
            # What QuickFIX received (and validated) from the session.
            with app.venue.lock:
                requests = list(app.venue.requests)
            mine = next(r for r in requests if r[55] == SYMBOL)
            assert (mine[263], mine[264], mine[265], mine[269]) == ("1", "10", "1", "0,1")

            app.send_increments(
                [
                    ("0", "1", "1.08020", "500000"),  # new offer level
                    ("1", "0", "1.08000", "700000"),  # change the best bid
                    ("2", "0", "1.07990", ""),  # delete a bid level
                ]
            )
            want = ([(108_000, 700_000)], [(108_010, 1_500_000), (108_020, 500_000)])
            wait_for("the increments", lambda: levels(session.book(SYMBOL), 10) == want)
            assert session.book(SYMBOL).sequence == 3

            wait_for("the rejection", lambda: session.status()["rejects"] == 1)
            (reject,) = session.status()["first_rejects"]
            assert reject[1] == UNKNOWN
            assert reject[2] == "0"
            assert "not carried" in reject[3]
            stats = session.stats()
            assert sum(stats["rejected"].values()) == 0, stats
            with app.rec.lock:
                assert not app.rec.errors, app.rec.errors
        finally:
            session.stop()


def test_an_rptseq_gap_from_quickfix_is_recovered_by_resubscribing(tmp_path: Path) -> None:
    with _md_venue(tmp_path) as (app, port):
        session = engine.FixMarketDataSession(
            "127.0.0.1", port, "NEXUS", "QF-MD", {SYMBOL: SCALES}, depth=0, gap_buffer=100
        )
        try:
            wait_for("the snapshot", lambda: session.book(SYMBOL).state == "live")
            first_req = app.venue.subscribed[SYMBOL]
            app.send_increments([("1", "0", "1.08000", "900000")])
            wait_for(
                "the first increment", lambda: session.book(SYMBOL).best_bid() == (108_000, 900_000)
            )
            # Two increments lost on the way: the next one is numbered 4, not 2.
            app.send_increments([("0", "0", "1.08005", "100000")], skip=2)
            wait_for("the resubscription", lambda: session.status()["resubscriptions"] == 1)
            # The venue saw the old request cancelled and a new one, answered with W.
            wait_for(
                "the new subscription",
                lambda: app.venue.subscribed.get(SYMBOL) not in (None, first_req),
            )
            wait_for(
                "the refreshed book",
                lambda: (
                    session.book(SYMBOL).state == "live"
                    and levels(session.book(SYMBOL), 10)
                    == ([(108_000, 1_000_000), (107_990, 2_000_000)], [(108_010, 1_500_000)])
                ),
            )
            with app.venue.lock:
                kinds = [(r[263], r[262]) for r in app.venue.requests]
            assert ("2", first_req) in kinds
            assert session.stats()["gaps"] == 1
            app.send_increments([("1", "1", "1.08010", "42")])
            wait_for(
                "an increment after the refresh",
                lambda: session.book(SYMBOL).best_ask() == (108_010, 42),
            )
        finally:
            session.stop()
