"""Live FIX market-data sessions: the Nexus initiator (`FixMarketDataSession`)
subscribing to the market-data venue simulator over TCP, fed with the real Binance
BTCUSDT depth recording and the real OANDA quotes shipped in data/sample; and the
MarketData service serving such a session's book and feed status (stale detection
included).
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nexus import engine
from nexus.common.v1 import types_pb2
from nexus.config import load_settings
from nexus.marketdata.v1 import marketdata_pb2 as md
from nexus_client import NexusClient
from tests.conftest import REPO, ThreadedServer

pytestmark = pytest.mark.integration

RECORDING = REPO / "data/sample/market/crypto/hftbacktest_binance_spot/btcusdt_20240808.gz"
SYMBOL = "BTCUSDT"
SCALES = (2, 8)  # BTCUSDT at BINANCE in services/marketdata/instruments.py
DEPTH = 20
LINES = 3_000


def wait_for(what: str, ok: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def levels(book: engine.OrderBook, depth: int) -> tuple[list[tuple[int, int]], ...]:
    bp, bs, ap, asz = (c.tolist() for c in book.depth(depth))
    return list(zip(bp, bs, strict=True)), list(zip(ap, asz, strict=True))


def json_books(lines: int) -> Iterator[engine.OrderBook]:
    """The Binance JSON path: the recording's first `lines` lines through the Rust
    BinanceBook; yields the book after each line that leaves it live."""
    book = engine.BinanceBook("spot", *SCALES)
    with gzip.open(RECORDING, "rt") as f:
        for n, raw in enumerate(f):
            if n >= lines:
                break
            book.on_message(raw.split(" ", 1)[1])
            current = book.book()
            if current.state == "live":
                yield current


def test_the_session_keeps_the_book_of_the_json_path() -> None:
    server = engine.PaperMarketDataServer({SYMBOL: SCALES}, depth=DEPTH, clients=["NEXUS"])
    session = engine.FixMarketDataSession(
        "127.0.0.1", server.port, "NEXUS", "PAPER-MD", {SYMBOL: SCALES}, depth=DEPTH
    )
    try:
        wait_for("logon", lambda: session.status()["logged_on"])
        # Logged on is not subscribed: the venue must hold the MarketDataRequest
        # before the first book, or the changes before it never reach the session.
        wait_for("the subscription", lambda: server.stats()["subscriptions"] == 1)
        last = None
        for book in json_books(LINES):
            bids, asks = levels(book, DEPTH)
            server.set_book(SYMBOL, bids, asks)
            last = (bids, asks)
        assert last is not None
        wait_for(
            "the session's book",
            lambda: (
                session.book(SYMBOL).state == "live" and levels(session.book(SYMBOL), DEPTH) == last
            ),
        )
        stats, status, venue = session.stats(), session.status(), server.stats()
        assert sum(stats["rejected"].values()) == 0, stats
        assert status["health"] == "healthy"
        # Most lines of the recording are trades or change levels below the top 20.
        assert status["outcomes"]["applied"] >= 200, status
        # Every X the venue sent arrived (a full channel would have dropped one).
        assert venue["dropped_full"] == stats["gaps"] == 0, (venue, stats)
        # Subscribed before the first book: an empty W at RptSeq 0, then one X a change.
        assert session.book(SYMBOL).sequence == venue["increments"]
    finally:
        session.stop()
        server.stop()


def test_a_lost_update_is_recovered_by_resubscribing() -> None:
    server = engine.PaperMarketDataServer({SYMBOL: SCALES}, depth=DEPTH, clients=["NEXUS"])
    session = engine.FixMarketDataSession(
        "127.0.0.1", server.port, "NEXUS", "PAPER-MD", {SYMBOL: SCALES}, depth=0, gap_buffer=500
    )
    try:
        wait_for("logon", lambda: session.status()["logged_on"])
        # Logged on is not subscribed: the venue must hold the MarketDataRequest
        # before the first book, or the changes before it never reach the session.
        wait_for("the subscription", lambda: server.stats()["subscriptions"] == 1)
        books = json_books(LINES)
        for _ in range(200):
            server.set_book(SYMBOL, *levels(next(books), DEPTH))
        server.drop_next_updates(SYMBOL, 3)
        last = None
        for book in books:
            last = levels(book, DEPTH)
            server.set_book(SYMBOL, *last)
        wait_for(
            "the recovered book",
            lambda: (
                session.book(SYMBOL).state == "live" and levels(session.book(SYMBOL), DEPTH) == last
            ),
        )
        stats, status = session.stats(), session.status()
        assert stats["gaps"] == 1, stats
        assert stats["buffered"] >= 1
        assert stats["buffer_dropped"] == 0
        assert status["resubscriptions"] == 1
        assert server.stats()["withheld"] == 3
    finally:
        session.stop()
        server.stop()


def test_a_refused_request_is_surfaced() -> None:
    server = engine.PaperMarketDataServer({SYMBOL: SCALES}, depth=10, clients=["NEXUS"])
    session = engine.FixMarketDataSession(
        "127.0.0.1", server.port, "NEXUS", "PAPER-MD", {SYMBOL: SCALES}, depth=5
    )
    try:
        wait_for("the reject", lambda: session.status()["rejects"] == 1)
        ((md_req_id, symbol, code, reason),) = session.status()["first_rejects"]
        assert (md_req_id, symbol, code) == ("NEXUS-1", SYMBOL, "5")
        assert "unsupported MarketDepth" in reason
        assert "10 levels" in reason
    finally:
        session.stop()
        server.stop()


def _settings(tmp_path: Path, marketdata: dict[str, Any]) -> Any:
    return load_settings(
        overrides={
            "server": {"port": 0, "grace_period_s": 0.5, "metrics_port": None},
            "data_dir": str(tmp_path),
            "services": "marketdata",
            "marketdata": {"order_book_feeds": [], **marketdata},
        }
    )


def test_the_service_serves_the_live_book_and_its_health(tmp_path: Path) -> None:
    venue = engine.PaperMarketDataServer({SYMBOL: SCALES}, depth=DEPTH, clients=["NEXUS"])
    settings = _settings(
        tmp_path,
        {
            "ingest_on_start": [],
            "fix_sessions": [
                {
                    "venue": "BINANCE",
                    "port": venue.port,
                    "target": "PAPER-MD",
                    "symbols": [SYMBOL],
                    "stale_after_s": 0.5,
                }
            ],
        },
    )
    server = ThreadedServer(settings)
    btc = types_pb2.InstrumentId(symbol=SYMBOL, venue="BINANCE")
    try:
        with NexusClient(server.target) as client:

            def feed_status() -> md.FeedStatus:
                request = md.GetFeedStatusRequest(sources=["fix:binance"])
                (status,) = client.marketdata.GetFeedStatus(request).feeds
                return status

            def served() -> tuple[list[tuple[int, int]], ...]:
                book = client.marketdata.GetOrderBook(
                    md.GetOrderBookRequest(instrument=btc, depth=DEPTH)
                ).book
                return (
                    [(lv.price.mantissa, lv.size.mantissa) for lv in book.bids],
                    [(lv.price.mantissa, lv.size.mantissa) for lv in book.asks],
                )

            wait_for("logon", lambda: feed_status().state == md.FEED_STATE_HEALTHY)
            books = json_books(400)
            last = None
            for book in books:
                last = levels(book, DEPTH)
                venue.set_book(SYMBOL, *last)
            wait_for("the served book", lambda: served() == last)
            status = feed_status()
            assert status.state == md.FEED_STATE_HEALTHY
            assert status.received == venue.stats()["snapshots"] + venue.stats()["increments"]
            assert status.accepted == status.received
            assert status.stale_episodes == 0
            # Silent beyond 0.5 s: stale, with the reason; data flowing again: healthy.
            answer = client.marketdata.GetOrderBook(md.GetOrderBookRequest(instrument=btc))
            assert (answer.source, answer.feed_state, answer.in_sequence) == (
                "fix:binance",
                md.FEED_STATE_HEALTHY,
                True,
            )
            wait_for("stale", lambda: feed_status().state == md.FEED_STATE_STALE)
            status = feed_status()
            assert status.state_reason.startswith("no market data for"), status.state_reason
            assert status.stale_episodes == 1
            # The book is still served, marked as possibly behind the venue's.
            answer = client.marketdata.GetOrderBook(md.GetOrderBookRequest(instrument=btc))
            assert answer.feed_state == md.FEED_STATE_STALE
            assert answer.state_reason.startswith("no market data for"), answer.state_reason
            venue.set_book(SYMBOL, [(5_000_000, 100_000_000)], [(5_000_100, 100_000_000)])
            wait_for("healthy", lambda: feed_status().state == md.FEED_STATE_HEALTHY)
            assert feed_status().state_reason == ""
            # The venue goes away: disconnected, counted as another episode.
            venue.stop()
            wait_for("disconnected", lambda: feed_status().state == md.FEED_STATE_DISCONNECTED)
            status = feed_status()
            assert (status.state_reason, status.stale_episodes) == ("logged out", 2)
    finally:
        server.stop()
        venue.stop()


def test_the_paper_market_data_venue_publishes_the_stored_quotes(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        {
            "ingest_on_start": [str(REPO / "data/sample/market/fx")],
            "paper_market_data": {"enabled": True},
        },
    )
    server = ThreadedServer(settings)
    eur = types_pb2.InstrumentId(symbol="EUR/USD", venue="OANDA")
    try:
        with NexusClient(server.target) as client:

            def top() -> md.OrderBook | None:
                book = client.marketdata.GetOrderBook(md.GetOrderBookRequest(instrument=eur)).book
                return book if book.bids and book.asks else None

            wait_for("a published quote", lambda: top() is not None)
            book = top()
            assert book is not None
            assert (len(book.bids), len(book.asks)) == (1, 1)
            assert book.bids[0].size.mantissa == 1_000_000
            assert 1.0 < book.bids[0].price.mantissa / 10**5 < book.asks[0].price.mantissa / 10**5
            (status,) = client.marketdata.GetFeedStatus(
                md.GetFeedStatusRequest(sources=["fix:paper-md"])
            ).feeds
            assert status.state == md.FEED_STATE_HEALTHY
            assert status.received >= 1
    finally:
        server.stop()
