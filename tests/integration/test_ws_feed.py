"""The WebSocket book feed against a local WebSocket server replaying a real Binance recording."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from pathlib import Path

import pytest
import websockets

from nexus import engine
from nexus.common.v1 import types_pb2
from nexus.config import load_settings
from nexus.marketdata.v1 import marketdata_pb2 as md
from nexus.services.marketdata.ingest import MALFORMED, FeedStatusBoard
from nexus.services.marketdata.instruments import find_instrument
from nexus.services.marketdata.ws_feed import WebSocketBookFeed
from nexus_client import NexusClient
from tests.conftest import REPO, ThreadedServer

pytestmark = pytest.mark.integration

RECORDING = REPO / "data/sample/market/crypto/hftbacktest_binance_spot/btcusdt_20240808.gz"


def _messages() -> list[str]:
    with gzip.open(RECORDING, "rt") as handle:
        return [line.split(" ", 1)[1].rstrip("\n") for line in handle]


async def _until(condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


def test_feed_builds_the_same_book_as_the_replay_and_counts_bad_messages() -> None:
    messages = _messages()
    spec = find_instrument("BTCUSDT", "BINANCE")
    assert spec is not None

    async def scenario() -> None:
        async def handler(ws: websockets.ServerConnection) -> None:
            await ws.send("this is not json")
            for message in messages:
                await ws.send(message)
            await ws.wait_closed()  # stay connected, silent, until the feed leaves

        async with websockets.serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            board = FeedStatusBoard()
            feed = WebSocketBookFeed(
                f"ws://127.0.0.1:{port}", spec, "spot", board, stale_after_s=0.3
            )
            stop = asyncio.Event()
            task = asyncio.create_task(feed.run(stop))
            await _until(lambda: sum(feed.state.steps.values()) == len(messages) + 1, 60)
            assert feed.health() == "healthy"
            assert feed.stale_episodes == 0
            replayed, _ = engine.replay_binance_book(
                RECORDING, "spot", spec.price_scale, spec.size_scale
            )
            ours = [c.tolist() for c in feed.book.book().depth(100_000)]
            assert ours == [c.tolist() for c in replayed.depth(100_000)]
            stats = feed.book.stats()
            assert stats["bad"] == {"json": 1}
            assert stats["gaps"] == 0
            assert board.snapshot()[feed.source].rejected[MALFORMED] == 1
            assert board.snapshot()[feed.source].received == len(messages) + 1
            await asyncio.sleep(0.5)
            assert feed.health() == "stale"  # connected, but nothing for 0.3 s
            assert feed.stale_episodes == 1
            assert feed.health() == "stale"
            assert feed.stale_episodes == 1  # the same silence, looked at again
            stop.set()
            await asyncio.wait_for(task, 10)
            assert feed.health() == "disconnected"
            assert feed.stale_episodes == 1  # stopping is not an episode

    asyncio.run(scenario())


def test_feed_reconnects_after_the_server_drops_it() -> None:
    messages = _messages()[:200]
    spec = find_instrument("BTCUSDT", "BINANCE")
    assert spec is not None

    async def scenario() -> None:
        async def handler(ws: websockets.ServerConnection) -> None:
            for message in messages:
                await ws.send(message)
            await ws.close()  # the venue drops the connection

        async with websockets.serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            feed = WebSocketBookFeed(f"ws://127.0.0.1:{port}", spec, "spot", FeedStatusBoard())
            stop = asyncio.Event()
            task = asyncio.create_task(feed.run(stop))
            await _until(lambda: feed.state.connections >= 3, 30)
            stop.set()
            await asyncio.wait_for(task, 10)
            assert sum(feed.state.steps.values()) >= 2 * len(messages)
            # Each drop of a healthy connection is one episode.
            assert feed.stale_episodes >= 2
            assert feed.stale_episodes <= feed.state.connections

    asyncio.run(scenario())


def test_feed_survives_a_server_that_is_not_there() -> None:
    spec = find_instrument("BTCUSDT", "BINANCE")
    assert spec is not None

    async def scenario() -> None:
        feed = WebSocketBookFeed(
            "ws://127.0.0.1:1", spec, "spot", FeedStatusBoard(), max_backoff_s=0.1
        )
        stop = asyncio.Event()
        task = asyncio.create_task(feed.run(stop))
        await asyncio.sleep(0.5)
        assert feed.health() == "disconnected"
        assert "ConnectionRefused" in feed.state.last_error or "Errno" in feed.state.last_error
        assert feed.stale_episodes == 0  # never healthy: no episode
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def test_service_serves_the_live_book_and_its_health(tmp_path: Path) -> None:
    messages = _messages()
    ready = threading.Event()
    done = threading.Event()
    port: list[int] = []

    def serve_feed() -> None:
        async def handler(ws: websockets.ServerConnection) -> None:
            for message in messages:
                await ws.send(message)
            await ws.wait_closed()

        async def main() -> None:
            async with websockets.serve(handler, "127.0.0.1", 0) as server:
                port.append(server.sockets[0].getsockname()[1])
                ready.set()
                while not done.is_set():
                    await asyncio.sleep(0.05)

        asyncio.run(main())

    thread = threading.Thread(target=serve_feed, daemon=True)
    thread.start()
    assert ready.wait(10)
    settings = load_settings(
        overrides={
            "server": {"port": 0, "grace_period_s": 0.5, "metrics_port": None},
            "data_dir": str(tmp_path),
            "services": "marketdata",
            "marketdata": {
                "ingest_on_start": [],
                "order_book_feeds": [],
                "websocket_feeds": [
                    {"url": f"ws://127.0.0.1:{port[0]}", "symbol": "BTCUSDT", "market": "spot"}
                ],
            },
        }
    )
    server = ThreadedServer(settings)
    try:
        with NexusClient(server.target) as client:
            deadline = time.monotonic() + 60
            feeds: list[md.FeedStatus] = []
            while time.monotonic() < deadline:
                feeds = list(client.marketdata.GetFeedStatus(md.GetFeedStatusRequest()).feeds)
                if feeds and feeds[0].received == len(messages):
                    break
                time.sleep(0.05)  # the feed has not connected, or not read everything yet
            (feed,) = feeds
            assert feed.received == len(messages)
            assert feed.state == md.FEED_STATE_HEALTHY
            btc = types_pb2.InstrumentId(symbol="BTCUSDT", venue="BINANCE")
            answer = client.marketdata.GetOrderBook(md.GetOrderBookRequest(instrument=btc))
            assert (answer.source, answer.feed_state) == (feed.source, md.FEED_STATE_HEALTHY)
            assert answer.in_sequence
            book = answer.book
            replayed, _ = engine.replay_binance_book(RECORDING, "spot", 2, 8)
            assert (book.bids[0].price.mantissa, book.bids[0].size.mantissa) == replayed.best_bid()
            assert (book.asks[0].price.mantissa, book.asks[0].size.mantissa) == replayed.best_ask()
    finally:
        server.stop()
        done.set()
        thread.join(10)
