"""A live JSON-over-WebSocket order-book feed (Binance combined streams).

The feed connects, hands every message to the Rust `BinanceBook` (which
parses it, applies Binance's snapshot/diff rule and counts what it refuses),
and reconnects with exponential backoff when the connection drops. Nothing
queues without bound: the WebSocket client keeps at most `max_queue` frames,
and a message is applied before the next is read.

States, as `GetFeedStatus` reports them: DISCONNECTED (no connection),
STALE (connected, no message for `stale_after_s`), HEALTHY. Each time a feed
that was healthy turns stale or loses its connection counts as one stale
episode (`stale_episodes`), whether it is seen while it lasts or only when
the next message ends it; the wait for the first connection is not one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import websockets

from nexus import engine
from nexus.services.marketdata.ingest import MALFORMED, SEQUENCE_GAP, FeedStatusBoard
from nexus.services.marketdata.instruments import InstrumentSpec

__all__ = ["FeedState", "WebSocketBookFeed"]

log = logging.getLogger("nexus.marketdata.ws")

MAX_MESSAGE_BYTES = 4 << 20
MAX_QUEUED_FRAMES = 64


@dataclass
class FeedState:
    """What the feed knows of its connection."""

    connected: bool = False
    connections: int = 0
    last_message_monotonic: float = 0.0
    last_error: str = ""
    steps: dict[str, int] = field(default_factory=dict)
    stale_episodes: int = 0
    #: Whether the current unhealthy spell is counted already (True before the
    #: first connection: that wait is not an episode).
    in_episode: bool = True


class WebSocketBookFeed:
    """Keeps the L2 book of one instrument in sync with a WebSocket feed."""

    def __init__(
        self,
        url: str,
        instrument: InstrumentSpec,
        market: str,
        board: FeedStatusBoard,
        *,
        source: str = "",
        stale_after_s: float = 5.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.url = url
        self.instrument = instrument
        self.book = engine.BinanceBook(market, instrument.price_scale, instrument.size_scale)
        self.board = board
        self.source = source or f"ws:{instrument.key}"
        self.stale_after_s = stale_after_s
        self.max_backoff_s = max_backoff_s
        self.state = FeedState()

    def health(self) -> str:
        """ "disconnected", "stale" or "healthy"."""
        if not self.state.connected:
            return "disconnected"
        silent = time.monotonic() - self.state.last_message_monotonic
        if silent > self.stale_after_s:
            self._episode()
            return "stale"
        return "healthy"

    @property
    def stale_episodes(self) -> int:
        """Times the feed turned stale or lost its connection after being healthy."""
        self.health()  # counts a silence going on now
        return self.state.stale_episodes

    def _episode(self) -> None:
        if not self.state.in_episode:
            self.state.in_episode = True
            self.state.stale_episodes += 1

    def health_reason(self) -> str:
        """Why the feed is not healthy; empty when it is."""
        health = self.health()
        if health == "disconnected":
            return (
                f"not connected: {self.state.last_error}"
                if self.state.last_error
                else ("not connected")
            )
        if health == "stale":
            silent = time.monotonic() - self.state.last_message_monotonic
            return f"no message for {silent:.1f} s (threshold {self.stale_after_s:g} s)"
        return ""

    def on_message(self, message: str | bytes) -> str:
        """Applies one message; counts it on the feed status board."""
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        step = self.book.on_message(text)
        self.state.steps[step] = self.state.steps.get(step, 0) + 1
        now = time.monotonic()
        if now - self.state.last_message_monotonic > self.stale_after_s:
            self._episode()  # a silence nobody looked at while it lasted
        self.state.in_episode = False
        self.state.last_message_monotonic = now
        rejected = {}
        if step.startswith("bad:"):
            rejected = {MALFORMED: 1}
            log.warning("bad feed message", extra={"source": self.source, "reason": step[4:]})
        elif step == "gap":
            rejected = {SEQUENCE_GAP: 1}
        self.board.record(self.source, received=1, rejected=rejected, last_event_ns=time.time_ns())
        return step

    async def run(self, stop: asyncio.Event) -> None:
        """Connects, reads and reconnects with backoff until `stop` is set."""
        backoff = 0.25
        while not stop.is_set():
            try:
                async with websockets.connect(
                    self.url,
                    max_size=MAX_MESSAGE_BYTES,
                    max_queue=MAX_QUEUED_FRAMES,
                    open_timeout=10,
                ) as ws:
                    self.state.connected = True
                    self.state.connections += 1
                    self.state.last_message_monotonic = time.monotonic()
                    self.state.in_episode = False
                    backoff = 0.25
                    reader = asyncio.ensure_future(self._read(ws))
                    stopper = asyncio.ensure_future(stop.wait())
                    done, _ = await asyncio.wait(
                        {reader, stopper}, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in (reader, stopper):
                        if task not in done:
                            task.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await task
                    if reader in done:
                        reader.result()  # re-raises what ended the connection
            except (OSError, websockets.WebSocketException, TimeoutError) as err:
                self.state.last_error = f"{type(err).__name__}: {err}"
                log.warning(
                    "feed connection lost", extra={"source": self.source, "error": str(err)}
                )
            finally:
                if self.state.connected and not stop.is_set():
                    self.health()  # a silence before the drop is the same episode
                    self._episode()
                self.state.connected = False
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _read(self, ws: websockets.ClientConnection) -> None:
        async for message in ws:
            self.on_message(message)
