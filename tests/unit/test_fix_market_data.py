"""FIX market data (35=W / 35=X) into the Rust L2 book, against the Binance JSON path.

The messages are built by an independent encoder, QuickFIX's Python binding (its own
groups, number formatting, BodyLength and CheckSum), from the real Binance BTCUSDT
recording shipped in data/sample: the REST depth snapshot becomes a W, each depth diff an
X. A small gateway written here plays the venue: it follows Binance's documented sync rule
(buffer the diffs, drop those older than the snapshot) and numbers its own RptSeq.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nexus import engine

fix: Any = pytest.importorskip("quickfix")

REPO = Path(__file__).resolve().parents[2]
RECORDING = REPO / "data/sample/market/crypto/hftbacktest_binance_spot/btcusdt_20240808.gz"
SYMBOL = "BTCUSDT"
PRICE_SCALE, SIZE_SCALE = 2, 8  # BTCUSDT in services/marketdata/instruments.py
DEPTH = 25


def _header(msg: Any, begin_string: str, msg_type: str, seq_num: int) -> None:
    header = msg.getHeader()
    header.setField(fix.BeginString(begin_string))
    header.setField(fix.MsgType(msg_type))
    header.setField(fix.SenderCompID("BINANCE-GW"))
    header.setField(fix.TargetCompID("NEXUS"))
    header.setField(fix.MsgSeqNum(seq_num))
    header.setField(fix.SendingTime())
    if begin_string == "FIXT.1.1":
        header.setField(fix.ApplVerID(fix.ApplVerID_FIX50SP2))


@dataclass
class Gateway:
    """Turns Binance depth messages into FIX W and X messages, QuickFIX-encoded.

    ``per_entry`` numbers RptSeq per entry (each entry +1, the RptSeq of the W at message
    level, FIX 4.4 venue style); otherwise per message (every entry of a message shares
    one RptSeq, also inside the W's entries, FIX 5.0 SP2 style).
    """

    begin_string: str
    per_entry: bool
    rpt_seq: int = 1_000
    seq_num: int = 1
    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)

    def _message(self, msg_type: str) -> Any:
        msg = fix.Message()
        self.seq_num += 1
        _header(msg, self.begin_string, msg_type, self.seq_num)
        msg.setField(fix.MDReqID("btc-depth"))
        return msg

    def snapshot(self, snap: dict[str, Any]) -> bytes:
        self.bids = {p: s for p, s in snap["bids"] if float(s) > 0}
        self.asks = {p: s for p, s in snap["asks"] if float(s) > 0}
        msg = self._message("W")
        msg.setField(fix.Symbol(SYMBOL))
        if self.per_entry:
            msg.setField(fix.RptSeq(self.rpt_seq))
        for entry_type, levels in (("0", self.bids), ("1", self.asks)):
            for price, size in levels.items():
                group = fix.Group(268, 269)
                group.setField(fix.MDEntryType(entry_type))
                group.setField(fix.MDEntryPx(float(price)))
                group.setField(fix.MDEntrySize(float(size)))
                if not self.per_entry:
                    group.setField(fix.RptSeq(self.rpt_seq))
                msg.addGroup(group)
        return str(msg.toString()).encode()

    def diff(self, data: dict[str, Any]) -> bytes | None:
        """An X for a depth diff, or None when it changes no level the gateway has sent."""
        entries: list[tuple[str, str, str, str]] = []
        for entry_type, book, levels in (("0", self.bids, data["b"]), ("1", self.asks, data["a"])):
            for price, size in levels:
                if float(size) == 0:
                    if book.pop(price, None) is not None:
                        entries.append(("2", entry_type, price, size))
                else:
                    action = "1" if price in book else "0"
                    book[price] = size
                    entries.append((action, entry_type, price, size))
        if not entries:
            return None
        msg = self._message("X")
        self.rpt_seq += 1
        for action, entry_type, price, size in entries:
            group = fix.Group(268, 279)
            group.setField(fix.MDUpdateAction(action))
            group.setField(fix.MDEntryType(entry_type))
            group.setField(fix.Symbol(SYMBOL))
            group.setField(fix.RptSeq(self.rpt_seq))
            group.setField(fix.MDEntryPx(float(price)))
            if action != "2":
                group.setField(fix.MDEntrySize(float(size)))
            msg.addGroup(group)
            if self.per_entry:
                self.rpt_seq += 1
        if self.per_entry:
            self.rpt_seq -= 1
        return str(msg.toString()).encode()


@dataclass
class Step:
    """One line of the recording: its JSON, whether it is about the book, and the FIX
    messages the gateway sent for it."""

    line: str
    fix_messages: list[bytes]
    is_depth: bool = True


def gateway_steps(gateway: Gateway) -> Iterator[Step]:
    """The recording's lines with the gateway's messages, by Binance's spot sync rule."""
    pending: list[dict[str, Any]] = []
    last_id: int | None = None
    with gzip.open(RECORDING, "rt") as lines:
        for raw in lines:
            line = raw.split(" ", 1)[1]
            message = json.loads(line)
            if "lastUpdateId" in message:
                last_id = message["lastUpdateId"]
                out = [gateway.snapshot(message)]
                for data in pending:
                    if data["u"] > last_id and (x := gateway.diff(data)) is not None:
                        out.append(x)
                pending = []
                yield Step(line, out)
                continue
            data = message.get("data", {})
            if data.get("e") != "depthUpdate":
                yield Step(line, [], is_depth=False)
            elif last_id is None:
                pending.append(data)
                yield Step(line, [])
            elif data["u"] <= last_id:
                yield Step(line, [])
            else:
                x = gateway.diff(data)
                yield Step(line, [x] if x is not None else [])


def _top(book: Any) -> tuple[Any, Any, list[list[int]]]:
    return book.best_bid(), book.best_ask(), [c.tolist() for c in book.depth(DEPTH)]


@pytest.mark.parametrize(("begin_string", "per_entry"), [("FIX.4.4", True), ("FIXT.1.1", False)])
def test_fix_book_equals_the_binance_book_at_every_step(begin_string: str, per_entry: bool) -> None:
    binance = engine.BinanceBook("spot", PRICE_SCALE, SIZE_SCALE)
    feed = engine.FixBookFeed({SYMBOL: (PRICE_SCALE, SIZE_SCALE)})
    sent: list[bytes] = []
    compared = 0
    for step in gateway_steps(Gateway(begin_string, per_entry)):
        binance.on_message(step.line)
        for message in step.fix_messages:
            status, reason, md_req_id = feed.on_message(message)
            assert (status, reason, md_req_id) in {
                ("snapshot", None, "btc-depth"),
                ("applied", None, "btc-depth"),
            }
        sent += step.fix_messages
        if not step.is_depth:
            continue
        theirs = binance.book()
        if theirs.state != "live":
            continue
        ours = feed.book(SYMBOL)
        assert _top(ours) == _top(theirs), f"after {len(sent)} FIX messages"
        assert ours.sequence >= 1_000
        compared += 1
    final, expected = feed.book(SYMBOL), binance.book()
    assert [c.tolist() for c in final.depth(100_000)] == [
        c.tolist() for c in expected.depth(100_000)
    ]
    assert final.level_counts() == expected.level_counts()
    assert final.state == "live"
    assert final.mid() == expected.mid()
    assert final.micro_price() == expected.micro_price()
    binance_stats, stats = binance.stats(), feed.stats()
    assert binance_stats["gaps"] == 0
    assert binance_stats["snapshots"] == 1
    assert compared > 3_000  # every diff after the snapshot
    assert stats["snapshots"] == 1
    assert stats["updates_applied"] == len(sent) - 1
    assert stats["gaps"] == stats["stale"] == stats["updates_rejected"] == 0
    assert sum(stats["rejected"].values()) == 0
    assert stats["messages"] == len(sent)

    # The same messages as one FIX log (newline-separated) and as one batch: same book.
    for outcomes, batch_feed in _batched(sent):
        assert [o[0] for o in outcomes] == ["snapshot"] + ["applied"] * (len(sent) - 1)
        assert [c.tolist() for c in batch_feed.book(SYMBOL).depth(100_000)] == [
            c.tolist() for c in expected.depth(100_000)
        ]
        assert batch_feed.stats() == stats


def _batched(sent: list[bytes]) -> Iterator[tuple[list[tuple[str, str | None, str | None]], Any]]:
    by_buffer = engine.FixBookFeed({SYMBOL: (PRICE_SCALE, SIZE_SCALE)})
    yield by_buffer.on_buffer(b"\n".join(sent) + b"\n"), by_buffer
    by_list = engine.FixBookFeed({SYMBOL: (PRICE_SCALE, SIZE_SCALE)})
    yield by_list.on_messages(sent), by_list


def _live_feed() -> tuple[Any, Gateway]:
    """A feed whose BTCUSDT book holds the real snapshot of the recording."""
    gateway = Gateway("FIX.4.4", per_entry=True)
    feed = engine.FixBookFeed({SYMBOL: (PRICE_SCALE, SIZE_SCALE), "ETHUSDT": (2, 4)})
    with gzip.open(RECORDING, "rt") as lines:
        snap = next(json.loads(r.split(" ", 1)[1]) for r in lines if "lastUpdateId" in r)
    assert feed.on_message(gateway.snapshot(snap))[0] == "snapshot"
    return feed, gateway


def _x(gateway: Gateway, *entries: dict[int, str | int], symbol: str = SYMBOL) -> bytes:
    """An X of raw entries (tag -> value), each with Symbol and the next RptSeq."""
    msg = gateway._message("X")
    for entry in entries:
        gateway.rpt_seq += 1
        group = fix.Group(268, 279)
        values: dict[int, str | int] = {55: symbol, 83: gateway.rpt_seq, **entry}
        for tag, value in values.items():
            group.setField(fix.StringField(tag, str(value)))
        msg.addGroup(group)
    return str(msg.toString()).encode()


BEST_BID = "61837.63"  # the best bid of the recording's snapshot


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({279: 0, 269: 0, 271: 1}, "missing_field"),
        ({279: 0, 269: 0, 270: 0, 271: 1}, "non_positive_price"),
        ({279: 0, 269: 0, 270: "-1.5", 271: 1}, "non_positive_price"),
        ({279: 0, 269: 1, 270: "70000", 271: "-0.5"}, "negative_size"),
        ({279: 7, 269: 0, 270: "100", 271: 1}, "unknown_action"),
        ({279: 0, 269: "~", 270: "100", 271: 1}, "unknown_entry_type"),
        ({279: 2, 269: 0, 270: "100.01"}, "absent_level"),
        ({279: 0, 269: 0, 270: BEST_BID, 271: 1}, "level_exists"),
        ({279: 0, 269: 0, 270: "100.001", 271: 1}, "bad_number"),
    ],
)
def test_bad_entries_are_rejected_with_their_reason(
    entry: dict[int, str | int], reason: str
) -> None:
    feed, gateway = _live_feed()
    before = _top(feed.book(SYMBOL))
    good: dict[int, str | int] = {279: 0, 269: 0, 270: "100.02", 271: 1}
    status = feed.on_message(_x(gateway, good, entry))
    assert status == ("rejected", reason, "btc-depth")
    stats = feed.stats()
    assert stats["rejected"][reason] == 1
    assert sum(stats["rejected"].values()) == 1
    assert stats["updates_rejected"] == 1
    assert stats["first_errors"][0][:2] == (2, reason)
    # Neither entry reached the book, which now needs a snapshot.
    assert _top(feed.book(SYMBOL)) == before
    assert feed.book(SYMBOL).state == "gapped"
    assert feed.needs_snapshot() == [SYMBOL, "ETHUSDT"]


def test_unknown_symbols_and_malformed_frames_are_counted() -> None:
    feed, gateway = _live_feed()
    assert feed.on_message(_x(gateway, {279: 0, 269: 0, 270: "1", 271: 1}, symbol="DOGE")) == (
        "rejected",
        "unknown_symbol",
        "btc-depth",
    )
    gateway.rpt_seq -= 1  # RptSeq is per instrument: DOGE's entry used none of BTCUSDT's
    good = _x(gateway, {279: 0, 269: 0, 270: "100.02", 271: 1})
    corrupt = good.replace(b"\x01271=1\x01", b"\x01271=2\x01")  # CheckSum no longer matches
    assert feed.on_message(corrupt) == ("rejected", "malformed", None)
    assert feed.on_message(b"not fix") == ("rejected", "malformed", None)
    assert feed.on_message(good) == ("applied", None, "btc-depth")
    stats = feed.stats()
    assert stats["rejected"]["unknown_symbol"] == 1
    assert stats["rejected"]["malformed"] == 2
    assert "CheckSum" in stats["first_errors"][1][2]
    assert feed.book(SYMBOL).best_bid() == (6_183_763, 378_826_000)
    with pytest.raises(KeyError, match="DOGE"):
        feed.book("DOGE")


def test_a_gap_in_rpt_seq_needs_a_new_snapshot() -> None:
    feed, gateway = _live_feed()
    assert feed.on_message(_x(gateway, {279: 0, 269: 0, 270: "100.02", 271: 1}))[0] == "applied"
    gateway.rpt_seq += 1  # one update lost on the way
    book_before = _top(feed.book(SYMBOL))
    assert feed.on_message(_x(gateway, {279: 0, 269: 0, 270: "100.03", 271: 1}))[0] == "gap"
    assert feed.book(SYMBOL).state == "gapped"
    assert SYMBOL in feed.needs_snapshot()
    assert _top(feed.book(SYMBOL)) == book_before
    assert feed.on_message(_x(gateway, {279: 2, 269: 0, 270: "100.02"}))[0] == "awaiting_snapshot"
    stats = feed.stats()
    assert (stats["gaps"], stats["awaiting_snapshot"]) == (1, 1)
    assert sum(stats["rejected"].values()) == 0
    # A new snapshot brings the book back; the gateway's next update continues it.
    with gzip.open(RECORDING, "rt") as lines:
        snap = next(json.loads(r.split(" ", 1)[1]) for r in lines if "lastUpdateId" in r)
    assert feed.on_message(gateway.snapshot(snap))[0] == "snapshot"
    assert feed.book(SYMBOL).state == "live"
    assert feed.on_message(_x(gateway, {279: 0, 269: 0, 270: "100.03", 271: 1}))[0] == "applied"
