"""gRPC transport of market data (`nexus.marketdata.v1.MarketDataService`).

Serves the embedded store: historical pages, replayed tick streams, the
instrument list, per-source feed status, bar streams built from the stored
ticks, and L2 order books replayed from recorded feeds.

Stream messages are written by the Rust engine (`engine.encode_stream_ticks`)
straight from the stored columns; gRPC sends the bytes as they are.

Streams and slow clients: a replay at `replay_speed = 0` ("as fast as
possible") is paced by the client — the server reads the store only as fast
as the client takes messages, so nothing is lost and memory stays flat. A
paced replay (`replay_speed > 0`) behaves like a live feed: the reader runs
on the data's clock and each stream has a bounded queue
(`marketdata.stream_queue_batches` messages); when it is full the request's
`overflow_policy` applies — CONFLATE (default: the queued quotes of an
instrument are reduced to the latest), DROP_OLDEST (the oldest message is
dropped) or FAIL (the stream ends with RESOURCE_EXHAUSTED). Ticks lost to
the policy are counted in `dropped_ticks` of every later message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from nexus import engine
from nexus.common.v1 import types_pb2
from nexus.config import FixMarketDataSessionConfig
from nexus.marketdata.v1 import marketdata_pb2 as md
from nexus.metrics import MetricFamily
from nexus.rpc import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unimplemented,
)
from nexus.services.context import ServiceContext
from nexus.services.marketdata.continuous import ContinuousSeries, RollRule, build_continuous
from nexus.services.marketdata.fix_session import LiveFixSession, PaperMarketDataFeed, fix_issue
from nexus.services.marketdata.ingest import (
    ISSUE_NAMES,
    MALFORMED,
    SEQUENCE_GAP,
    FeedStatusBoard,
    ingest,
)
from nexus.services.marketdata.instruments import (
    INSTRUMENTS,
    DataKind,
    InstrumentSpec,
    UnknownSourceError,
    find_instrument,
    identify_book_feed,
)
from nexus.services.marketdata.store import NS_PER_DAY, Chunk, TickStore
from nexus.services.marketdata.ws_feed import WebSocketBookFeed
from nexus.services.validation import Violations

__all__ = ["MarketDataServicer"]

log = logging.getLogger("nexus.marketdata")

MAX_BATCH = 65_536
MAX_DEPTH = 1_000
MAX_PAGE = 100_000
DEFAULT_PAGE = 10_000
LOSSLESS_TICKS_PER_HOP = 65_536

_ASSET_CLASSES = {
    "fx": types_pb2.ASSET_CLASS_FX,
    "future": types_pb2.ASSET_CLASS_FUTURE,
    "crypto": types_pb2.ASSET_CLASS_CRYPTO,
}
_PRICE_SOURCES = ("", "mid", "bid", "ask")
_LIVE_STATES = {
    "healthy": md.FEED_STATE_HEALTHY,
    "stale": md.FEED_STATE_STALE,
    "disconnected": md.FEED_STATE_DISCONNECTED,
}
#: Continuous series kept for paging (each a few MB for years of minute bars).
SERIES_CACHE = 4
_ROLL_RULES = {md.ROLL_RULE_VOLUME: RollRule.VOLUME, md.ROLL_RULE_CALENDAR: RollRule.CALENDAR}
_TIMEFRAME_KINDS: dict[int, str] = {
    types_pb2.TIMEFRAME_1M: "1m",
    types_pb2.TIMEFRAME_5M: "5m",
    types_pb2.TIMEFRAME_15M: "15m",
    types_pb2.TIMEFRAME_1H: "1h",
    types_pb2.TIMEFRAME_1D: "1d",
}
_KINDS = {
    md.DATA_KIND_QUOTES: DataKind.QUOTES,
    md.DATA_KIND_TRADES: DataKind.TRADES,
    md.DATA_KIND_BARS: DataKind.BARS_1M,
}


def _decimal(value: Any, scale: int) -> types_pb2.Decimal:
    return types_pb2.Decimal(mantissa=int(value), scale=scale)


def _instrument_id(spec: InstrumentSpec) -> types_pb2.InstrumentId:
    return types_pb2.InstrumentId(symbol=spec.symbol, venue=spec.venue)


def _resolve(field: str, instrument: types_pb2.InstrumentId) -> InstrumentSpec:
    spec = find_instrument(instrument.symbol, instrument.venue)
    if spec is None:
        raise NotFound(f"{field}: no instrument {instrument.symbol} at {instrument.venue}")
    return spec


def _page_token(ts_ns: int, skip: int) -> str:
    return base64.urlsafe_b64encode(f"{ts_ns}:{skip}".encode()).decode()


def _parse_token(token: str) -> tuple[int, int]:
    v = Violations()
    try:
        ts, skip = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        return int(ts), int(skip)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        v.add("page.page_token", "not a token this service issued")
        v.raise_if_any()
        raise AssertionError("unreachable") from None


def _quote_batch(spec: InstrumentSpec, chunk: Chunk, with_flags: bool) -> md.QuoteBatch:
    batch = md.QuoteBatch(
        instrument=_instrument_id(spec),
        price_scale=spec.price_scale,
        size_scale=spec.size_scale,
        ts_event_ns=chunk["ts_ns"].tolist(),
        bid_mantissa=chunk["bid"].tolist(),
        ask_mantissa=chunk["ask"].tolist(),
    )
    if with_flags and np.any(chunk["flags"]):
        batch.flags.extend(chunk["flags"].tolist())
    return batch


_Int64s = npt.NDArray[np.int64]
_EncoderColumns = tuple[
    str, str, int, int, _Int64s, _Int64s, _Int64s, npt.NDArray[np.uint32] | None
]


def _columns(spec: InstrumentSpec, chunk: Chunk, *, with_flags: bool) -> _EncoderColumns:
    """The instrument and column arguments of the Rust stream encoders."""
    flags = chunk["flags"] if with_flags and np.any(chunk["flags"]) else None
    return (
        spec.symbol,
        spec.venue,
        spec.price_scale,
        spec.size_scale,
        np.ascontiguousarray(chunk["ts_ns"]),
        np.ascontiguousarray(chunk["bid"]),
        np.ascontiguousarray(chunk["ask"]),
        None if flags is None else np.ascontiguousarray(flags),
    )


def _encoded(
    spec: InstrumentSpec | None,
    chunk: Chunk | None,
    *,
    with_flags: bool,
    sequence: int,
    dropped: int = 0,
    end: bool = False,
) -> bytes:
    """A serialized StreamTicksResponse, written by the Rust engine."""
    if spec is None or chunk is None:
        empty = np.zeros(0, dtype=np.int64)
        args: _EncoderColumns = ("", "", 0, 0, empty, empty, empty, None)
    else:
        args = _columns(spec, chunk, with_flags=with_flags)
    return engine.encode_stream_ticks(
        *args, sequence=sequence, dropped_ticks=dropped, end_of_replay=end
    )


def _trade_batch(spec: InstrumentSpec, chunk: Chunk) -> md.TradeBatch:
    batch = md.TradeBatch(
        instrument=_instrument_id(spec),
        price_scale=spec.price_scale,
        size_scale=spec.size_scale,
        ts_event_ns=chunk["ts_ns"].tolist(),
        price_mantissa=chunk["price"].tolist(),
        size_mantissa=chunk["size"].tolist(),
    )
    if np.any(chunk["flags"]):
        batch.flags.extend(chunk["flags"].tolist())
    return batch


def _conflate(chunk: Chunk, interval_ns: int) -> Chunk:
    """Keeps the last row of each `interval_ns` bucket."""
    bucket = chunk["ts_ns"] // interval_ns
    last = np.flatnonzero(np.append(bucket[1:] != bucket[:-1], True))
    return {name: values[last] for name, values in chunk.items()}


def _slice(chunk: Chunk, start: int, end: int) -> Chunk:
    return {name: values[start:end] for name, values in chunk.items()}


class _Merge:
    """Merges per-instrument chunk streams into time-ordered batches."""

    def __init__(self, streams: dict[InstrumentSpec, Iterator[Chunk]], batch: int) -> None:
        self.streams = streams
        self.batch = batch
        self.heads: dict[InstrumentSpec, tuple[Chunk, int]] = {}

    def _fill(self, spec: InstrumentSpec) -> None:
        for chunk in self.streams[spec]:
            if len(chunk["ts_ns"]):
                self.heads[spec] = (chunk, 0)
                return
        self.heads.pop(spec, None)

    def __iter__(self) -> Iterator[tuple[InstrumentSpec, Chunk]]:
        for spec in self.streams:
            self._fill(spec)
        while self.heads:
            spec = min(self.heads, key=lambda s: self.heads[s][0]["ts_ns"][self.heads[s][1]])
            chunk, pos = self.heads[spec]
            others = [c["ts_ns"][p] for s, (c, p) in self.heads.items() if s is not spec]
            end = min(pos + self.batch, len(chunk["ts_ns"]))
            if others:
                end = min(end, int(np.searchsorted(chunk["ts_ns"], min(others), side="right")))
                end = max(end, pos + 1)
            yield spec, _slice(chunk, pos, end)
            if end >= len(chunk["ts_ns"]):
                self._fill(spec)
            else:
                self.heads[spec] = (chunk, end)


def _validate_stream_ticks(request: md.StreamTicksRequest) -> None:
    v = Violations()
    if not request.instruments:
        v.add("instruments", "at least one instrument is required")
    for i, inst in enumerate(request.instruments):
        v.instrument(f"instruments[{i}]", inst, present=True)
    if not (request.quotes or request.trades):
        v.add("quotes", "ask for quotes, trades or both")
    if request.max_batch_size > MAX_BATCH:
        v.add("max_batch_size", f"at most {MAX_BATCH}")
    if request.conflation_interval_ns < 0:
        v.add("conflation_interval_ns", "must not be negative")
    if request.replay_speed < 0:
        v.add("replay_speed", "must not be negative")
    if request.HasField("replay"):
        v.time_range("replay", request.replay, present=True)
    v.raise_if_any()


class _BoundedQueue:
    """A stream's bounded queue and its overflow policy; counts what it drops."""

    def __init__(self, size: int, policy: int) -> None:
        self.queue: asyncio.Queue[tuple[InstrumentSpec, Chunk] | None] = asyncio.Queue(size)
        self.policy = policy or md.OVERFLOW_POLICY_CONFLATE
        self.dropped = 0
        self.failure = ""

    def offer(self, spec: InstrumentSpec, chunk: Chunk) -> bool:
        """Queues a batch, applying the policy when full; False once the stream must fail."""
        if self.queue.full():
            if self.policy == md.OVERFLOW_POLICY_FAIL:
                self.failure = f"client fell {self.queue.qsize()} messages behind"
                return False
            if self.policy == md.OVERFLOW_POLICY_CONFLATE:
                # Only the newest quote of the new batch survives.
                self.dropped += len(chunk["ts_ns"]) - 1
                chunk = _slice(chunk, len(chunk["ts_ns"]) - 1, len(chunk["ts_ns"]))
            old = self.queue.get_nowait()
            self.dropped += len(old[1]["ts_ns"]) if old else 0
        self.queue.put_nowait((spec, chunk))
        return True


class MarketDataServicer:
    """Serves stored and replayed market data from the embedded store."""

    def __init__(self, context: ServiceContext) -> None:
        self._ctx = context
        self._cfg = context.settings.marketdata
        store_dir = self._cfg.store_dir or context.settings.data_dir / "store"
        self.store = TickStore(Path(store_dir))
        self.board = FeedStatusBoard()
        self.board.restore(self.store)  # what earlier runs and `nexus ingest` counted
        self.books: dict[InstrumentSpec, engine.OrderBook] = {}
        #: The source of each replayed book, as GetFeedStatus names it.
        self.book_sources: dict[InstrumentSpec, str] = {}
        self.live: dict[InstrumentSpec, WebSocketBookFeed] = {}
        self.fix_sessions: list[LiveFixSession] = []
        self.paper_md: PaperMarketDataFeed | None = None
        # Stitched series by request and store generation, so that paging through
        # one does not stitch it again; the last few only.
        self._series: collections.OrderedDict[tuple[Any, ...], ContinuousSeries] = (
            collections.OrderedDict()
        )
        self._feeds_stop = asyncio.Event()
        self._feed_tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Ingests the configured files (the shipped sample by default), replays
        the configured recorded feeds into order books and starts the live feeds."""
        for path in self._cfg.order_book_feeds:
            await asyncio.to_thread(self._load_book, path)
        for fix_log in self._cfg.fix_book_logs:
            await asyncio.to_thread(self._load_fix_log, fix_log.path, fix_log.venue)
        for feed_cfg in self._cfg.websocket_feeds:
            spec = find_instrument(feed_cfg.symbol, feed_cfg.venue)
            if spec is None:
                log.error(
                    "unknown instrument for a WebSocket feed", extra={"symbol": feed_cfg.symbol}
                )
                continue
            feed = WebSocketBookFeed(
                feed_cfg.url,
                spec,
                feed_cfg.market,
                self.board,
                stale_after_s=feed_cfg.stale_after_s,
            )
            self.live[spec] = feed
            self._feed_tasks.append(asyncio.create_task(feed.run(self._feeds_stop)))
        for session_cfg in self._cfg.fix_sessions:
            await asyncio.to_thread(self._start_fix_session, session_cfg)
        if self._cfg.paper_market_data.enabled:
            self.paper_md = await asyncio.to_thread(self._start_paper_market_data)
            if self.paper_md is not None:
                self._feed_tasks.append(asyncio.create_task(self.paper_md.run(self._feeds_stop)))
        paths = [p for p in self._cfg.ingest_on_start if p.exists()]
        if not paths:
            return
        started = time.perf_counter()
        report = await asyncio.to_thread(ingest, self.store, paths, self.board)
        log.info(
            "ingested",
            extra={
                "files": report.files,
                "skipped_known": report.skipped_known,
                "rows": report.rows_stored,
                "flagged": report.rows_flagged,
                "rejected": report.rows_rejected,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    async def stop(self) -> None:
        """Disconnects the live feeds and logs the FIX sessions out."""
        self._feeds_stop.set()
        for task in self._feed_tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 5)
        for session in self.fix_sessions:
            await asyncio.to_thread(session.stop)
        if self.paper_md is not None:
            await asyncio.to_thread(self.paper_md.stop)

    def _start_fix_session(self, cfg: FixMarketDataSessionConfig) -> None:
        """Starts one configured live FIX market-data session (it connects in the background)."""
        venue = cfg.venue.upper()
        specs = [s for s in INSTRUMENTS if s.venue == venue]
        if cfg.symbols:
            wanted = {sym.replace("/", "").upper() for sym in cfg.symbols}
            specs = [s for s in specs if s.symbol.replace("/", "").upper() in wanted]
        if not specs:
            log.error("no known instrument for a FIX market-data session", extra={"venue": venue})
            return
        try:
            session = LiveFixSession(
                f"fix:{cfg.venue.lower()}",
                specs,
                host=cfg.host,
                port=cfg.port,
                sender=cfg.sender,
                target=cfg.target,
                depth=cfg.depth,
                begin_string=cfg.begin_string,
                heart_bt_int=cfg.heart_bt_int,
                stale_after_s=cfg.stale_after_s,
                gap_buffer=cfg.gap_buffer,
            )
        except (ValueError, RuntimeError) as err:
            log.error("FIX market-data session not started", extra={"reason": str(err)})
            return
        self.fix_sessions.append(session)
        log.info(
            "FIX market-data session started",
            extra={"source": session.source, "host": cfg.host, "port": cfg.port},
        )

    def _start_paper_market_data(self) -> PaperMarketDataFeed | None:
        """Starts the market-data venue simulator and a session to it (the quote
        replay is the returned feed's `run`)."""
        cfg = self._cfg.paper_market_data
        specs = []
        for item in cfg.instruments:
            venue, _, symbol = item.partition(":")
            spec = find_instrument(symbol, venue)
            if spec is None:
                log.error("unknown paper market-data instrument", extra={"instrument": item})
                continue
            specs.append(spec)
        if not specs:
            return None
        store_dir = self._cfg.store_dir or self._ctx.settings.data_dir / "store"
        feed = PaperMarketDataFeed(
            specs,
            Path(store_dir),
            replay_speed=cfg.replay_speed,
            quote_size=cfg.quote_size,
            client="NEXUS-MD",
        )
        self.fix_sessions.append(
            LiveFixSession(
                "fix:paper-md",
                specs,
                host="127.0.0.1",
                port=feed.port,
                sender="NEXUS-MD",
                target="PAPER-MD",
                stale_after_s=cfg.stale_after_s,
            )
        )
        return feed

    def metrics(self) -> list[MetricFamily]:
        """Feed quality counters for Prometheus, per source and issue."""
        self._sync_fix_sessions()
        received, accepted, rejected, flagged = [], [], [], []
        for source, c in sorted(self.board.snapshot().items()):
            received.append(({"source": source}, float(c.received)))
            accepted.append(({"source": source}, float(c.accepted)))
            for issue, count in sorted(c.rejected.items()):
                rejected.append(({"source": source, "issue": ISSUE_NAMES[issue]}, float(count)))
            for issue, count in sorted(c.flagged.items()):
                flagged.append(({"source": source, "issue": ISSUE_NAMES[issue]}, float(count)))
        return [
            MetricFamily(
                "nexus_feed_rows_received_total", "Rows read per source", "counter", received
            ),
            MetricFamily(
                "nexus_feed_rows_accepted_total", "Rows kept per source", "counter", accepted
            ),
            MetricFamily(
                "nexus_feed_rows_rejected_total",
                "Rows rejected per source and issue",
                "counter",
                rejected,
            ),
            MetricFamily(
                "nexus_feed_rows_flagged_total",
                "Rows kept but flagged per source and issue",
                "counter",
                flagged,
            ),
        ]

    def _sync_fix_sessions(self) -> dict[str, dict[str, Any]]:
        """Adds what the live FIX sessions received since the last call to the board;
        returns each session's status by source."""
        return {session.source: session.sync(self.board) for session in self.fix_sessions}

    def _load_book(self, path: Path) -> None:
        try:
            feed = identify_book_feed(path)
            spec = feed.instrument
            book, stats = engine.replay_binance_book(
                path, feed.market, spec.price_scale, spec.size_scale
            )
        except (UnknownSourceError, OSError) as err:
            log.warning("order-book feed not loaded", extra={"path": str(path), "reason": str(err)})
            return
        self.books[spec] = book
        self.book_sources[spec] = feed.source
        rejected = {MALFORMED: stats["bad_lines"]} if stats["bad_lines"] else {}
        if stats["gaps"]:
            rejected[SEQUENCE_GAP] = stats["gaps"]
        self.board.record(feed.source, received=stats["lines"], rejected=rejected, finished=True)
        log.info("order book replayed", extra={"instrument": spec.key, **stats})

    def _load_fix_log(self, path: Path, venue: str) -> None:
        specs = [s for s in INSTRUMENTS if s.venue == venue.upper()]
        feed = engine.FixBookFeed({s.symbol: (s.price_scale, s.size_scale) for s in specs})
        try:
            data = path.read_bytes()
        except OSError as err:
            log.warning(
                "FIX market-data log not loaded", extra={"path": str(path), "reason": str(err)}
            )
            return
        outcomes = feed.on_buffer(data)
        source = f"fix:{venue.lower()}"
        for spec in specs:
            book = feed.book(spec.symbol)
            if book.state != "awaiting_snapshot":
                self.books[spec] = book
                self.book_sources[spec] = source
        rejected: dict[int, int] = {}
        for status, reason, _ in outcomes:
            issue = fix_issue(status, reason)
            if issue is not None:
                rejected[issue] = rejected.get(issue, 0) + 1
        self.board.record(source, received=len(outcomes), rejected=rejected, finished=True)
        stats = feed.stats()
        log.info(
            "FIX market-data log replayed",
            extra={
                "path": str(path),
                "source": source,
                **{k: v for k, v in stats.items() if isinstance(v, int)},
                "rejected": {k: v for k, v in stats["rejected"].items() if v},
                "needs_snapshot": feed.needs_snapshot(),
            },
        )

    # -- reads -------------------------------------------------------------

    async def ListInstruments(
        self, request: md.ListInstrumentsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> md.ListInstrumentsResponse:
        """Lists the known instruments, filtered by venue and asset class."""
        specs = [
            s
            for s in INSTRUMENTS
            if (not request.venue or s.venue == request.venue.upper())
            and (
                request.asset_class == types_pb2.ASSET_CLASS_UNSPECIFIED
                or _ASSET_CLASSES[s.asset_class] == request.asset_class
            )
        ]
        return md.ListInstrumentsResponse(
            instruments=[
                md.InstrumentSpec(
                    instrument=_instrument_id(s),
                    asset_class=_ASSET_CLASSES[s.asset_class],
                    tick_size=_decimal(s.tick_size.scaleb(s.price_scale), s.price_scale),
                    multiplier=_decimal(s.multiplier, 0),
                    lot_size=_decimal(s.lot_size, 0),
                    quote_currency=s.quote_currency,
                    root_symbol=s.root_symbol,
                )
                for s in specs
            ]
        )

    async def GetFeedStatus(
        self, request: md.GetFeedStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> md.GetFeedStatusResponse:
        """Returns each source's counters: received, accepted, rejected and flagged by reason."""
        fix_status = self._sync_fix_sessions()
        feeds = []
        for source, counters in sorted(self.board.snapshot().items()):
            if request.sources and source not in request.sources:
                continue
            issues = [
                md.IssueCount(
                    issue=md.QualityIssue.ValueType(issue),
                    rejected=counters.rejected.get(issue, 0),
                    flagged=counters.flagged.get(issue, 0),
                )
                for issue in ISSUE_NAMES
                if counters.rejected.get(issue) or counters.flagged.get(issue)
            ]
            state = md.FEED_STATE_FINISHED if counters.finished else md.FEED_STATE_HEALTHY
            reason, episodes = "", 0
            live = next((f for f in self.live.values() if f.source == source), None)
            if live is not None:
                state = _LIVE_STATES[live.health()]
                reason, episodes = live.health_reason(), live.stale_episodes
            status = fix_status.get(source)
            if status is not None:
                state = _LIVE_STATES[status["health"]]
                reason, episodes = status["reason"], status["stale_episodes"]
                if status["rejects"]:
                    first = status["first_rejects"][0]
                    refused = f"{status['rejects']} MarketDataRequest(s) refused, first: {first[3]}"
                    reason = f"{reason}; {refused}" if reason else refused
            feeds.append(
                md.FeedStatus(
                    source=source,
                    state=state,
                    last_event_ns=counters.last_event_ns,
                    received=counters.received,
                    accepted=counters.accepted,
                    issues=issues,
                    state_reason=reason,
                    stale_episodes=episodes,
                )
            )
        return md.GetFeedStatusResponse(feeds=feeds)

    async def GetHistoricalData(
        self, request: md.GetHistoricalDataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> md.GetHistoricalDataResponse:
        """Returns one page of stored quotes, trades or 1-minute bars."""
        v = Violations()
        v.instrument("instrument", request.instrument, present=request.HasField("instrument"))
        v.enum("kind", request.kind, md.DataKind.DESCRIPTOR)
        v.time_range("range", request.range, present=request.HasField("range"))
        if request.kind == md.DATA_KIND_BARS:
            v.enum("timeframe", request.timeframe, types_pb2.Timeframe.DESCRIPTOR)
        if request.page.page_size > MAX_PAGE:
            v.add("page.page_size", f"at most {MAX_PAGE}")
        v.raise_if_any()
        if request.kind == md.DATA_KIND_BARS and request.timeframe != types_pb2.TIMEFRAME_1M:
            raise Unimplemented(
                "only 1-minute bars are stored; other timeframes land with bar aggregation"
            )
        spec = _resolve("instrument", request.instrument)
        kind = _KINDS[request.kind]
        limit = request.page.page_size or DEFAULT_PAGE
        start, skip = request.range.start_ns, 0
        if request.page.page_token:
            start, skip = _parse_token(request.page.page_token)
        rows = await asyncio.to_thread(
            self._page, kind, spec, start, request.range.end_ns, skip=skip, limit=limit + 1
        )
        more = len(rows["ts_ns"]) > limit if rows else False
        page = _slice(rows, 0, limit) if rows else {}
        response = md.GetHistoricalDataResponse()
        if page and len(page["ts_ns"]):
            if kind is DataKind.QUOTES:
                response.quotes.CopyFrom(_quote_batch(spec, page, with_flags=True))
            elif kind is DataKind.TRADES:
                response.trades.CopyFrom(_trade_batch(spec, page))
            else:
                response.bars.extend(self._bars(spec, page))
            if more:
                last = int(page["ts_ns"][-1])
                ties = int(np.count_nonzero(page["ts_ns"] == last))
                response.page.next_page_token = _page_token(
                    last, ties + (skip if last == start else 0)
                )
        return response

    def _page(
        self, kind: DataKind, spec: InstrumentSpec, start: int, end: int, *, skip: int, limit: int
    ) -> Chunk:
        parts: list[Chunk] = []
        taken = 0
        for chunk in self.store.scan(kind, spec, start, end):
            rows = chunk
            if skip:
                drop = min(skip, int(np.count_nonzero(chunk["ts_ns"] == start)))
                rows = _slice(chunk, drop, len(chunk["ts_ns"]))
                skip -= drop
            parts.append(_slice(rows, 0, limit - taken))
            taken += len(parts[-1]["ts_ns"])
            if taken >= limit:
                break
        if not parts:
            return {}
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    @staticmethod
    def _bars(spec: InstrumentSpec, page: Chunk) -> list[md.Bar]:
        minute = 60_000_000_000
        scale = spec.price_scale
        return [
            md.Bar(
                instrument=_instrument_id(spec),
                timeframe=types_pb2.TIMEFRAME_1M,
                ts_open_ns=int(ts),
                ts_close_ns=int(ts) + minute,
                open=_decimal(o, scale),
                high=_decimal(h, scale),
                low=_decimal(lo, scale),
                close=_decimal(c, scale),
                volume=_decimal(vol, spec.size_scale),
                price_source="bid",
            )
            for ts, o, h, lo, c, vol in zip(
                page["ts_ns"],
                page["open"],
                page["high"],
                page["low"],
                page["close"],
                page["volume"],
                strict=True,
            )
        ]

    async def GetContinuousSeries(
        self, request: md.GetContinuousSeriesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> md.GetContinuousSeriesResponse:
        """Returns one page of a continuous futures series and its rolls."""
        v = Violations()
        v.instrument("root", request.root, present=request.HasField("root"))
        if request.roll_rule not in _ROLL_RULES:
            v.add("roll_rule", "required: ROLL_RULE_VOLUME or ROLL_RULE_CALENDAR")
        v.time_range("range", request.range, present=request.HasField("range"))
        if request.page.page_size > MAX_PAGE:
            v.add("page.page_size", f"at most {MAX_PAGE}")
        if request.days_before_expiry > 366:
            v.add("days_before_expiry", "at most 366")
        v.raise_if_any()
        root = _resolve("root", request.root)
        if not root.root_symbol or root.symbol != root.root_symbol:
            raise InvalidArgument(
                [("root", f"{root.symbol} at {root.venue} is not a futures root")]
            )
        offset = 0
        if request.page.page_token:
            offset, _ = _parse_token(request.page.page_token)
        series = await self._continuous_series(
            root,
            _ROLL_RULES[request.roll_rule],
            back_adjust=request.back_adjust,
            days_before_expiry=request.days_before_expiry or 8,
        )
        inside = np.flatnonzero(
            (series.ts_ns >= request.range.start_ns) & (series.ts_ns < request.range.end_ns)
        )
        limit = request.page.page_size or DEFAULT_PAGE
        rows = inside[offset : offset + limit]
        price, size, minute = root.price_scale, root.size_scale, 60_000_000_000
        response = md.GetContinuousSeriesResponse(
            rolls=[
                md.ContractRoll(
                    day_ns=(r.day - dt.date(1970, 1, 1)).days * 86_400 * 10**9,
                    from_contract=r.from_contract,
                    to_contract=r.to_contract,
                    adjustment=_decimal(r.adjustment, price),
                    overlap=r.overlap,
                )
                for r in series.rolls
            ]
        )
        for i in rows.tolist():
            ts = int(series.ts_ns[i])
            response.bars.append(
                md.Bar(
                    instrument=types_pb2.InstrumentId(
                        symbol=f"{root.root_symbol}{series.contract[i]}", venue=root.venue
                    ),
                    timeframe=types_pb2.TIMEFRAME_1M,
                    ts_open_ns=ts,
                    ts_close_ns=ts + minute,
                    open=_decimal(series.open[i], price),
                    high=_decimal(series.high[i], price),
                    low=_decimal(series.low[i], price),
                    close=_decimal(series.close[i], price),
                    volume=_decimal(series.volume[i], size),
                    price_source="trade",
                )
            )
        if offset + limit < len(inside):
            response.page.next_page_token = _page_token(offset + limit, 0)
        return response

    async def _continuous_series(
        self, root: InstrumentSpec, rule: RollRule, *, back_adjust: bool, days_before_expiry: int
    ) -> ContinuousSeries:
        """The stitched series, from the cache while the store has not changed."""
        key = (root.key, rule, back_adjust, days_before_expiry, self.store.generation())
        series = self._series.get(key)
        if series is None:
            series = await asyncio.to_thread(
                build_continuous,
                self.store,
                root,
                rule,
                back_adjust=back_adjust,
                days_before_expiry=days_before_expiry,
            )
            self._series[key] = series
            while len(self._series) > SERIES_CACHE:
                self._series.popitem(last=False)
        self._series.move_to_end(key)
        return series

    # -- streams -----------------------------------------------------------

    async def StreamBars(
        self, request: md.StreamBarsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[md.StreamBarsResponse]:
        """Replays bars of stored quotes, built by the Rust engine from the
        accepted ticks of each UTC day, one message per instrument and day."""
        v = Violations()
        if not request.instruments:
            v.add("instruments", "at least one instrument is required")
        for i, inst in enumerate(request.instruments):
            v.instrument(f"instruments[{i}]", inst, present=True)
        v.enum("timeframe", request.timeframe, types_pb2.Timeframe.DESCRIPTOR)
        if request.price_source not in _PRICE_SOURCES:
            v.add("price_source", f"one of {', '.join(s for s in _PRICE_SOURCES if s)}")
        if request.HasField("replay"):
            v.time_range("replay", request.replay, present=True)
        v.raise_if_any()
        if not request.HasField("replay"):
            raise FailedPrecondition(
                "no live feed is connected in this deployment; ask for a replay range"
            )
        specs = [_resolve(f"instruments[{i}]", inst) for i, inst in enumerate(request.instruments)]
        source = request.price_source or "mid"
        days = sorted({d for spec in specs for d in self.store.days(DataKind.QUOTES, spec)})
        start, end = request.replay.start_ns, request.replay.end_ns
        for day in days:
            day_start = (day - dt.date(1970, 1, 1)).days * NS_PER_DAY
            if day_start + NS_PER_DAY <= start or day_start >= end:
                continue
            for spec in specs:
                bars = await asyncio.to_thread(
                    self._day_bars,
                    spec,
                    max(start, day_start),
                    min(end, day_start + NS_PER_DAY),
                    request.timeframe,
                    source,
                )
                if bars:
                    yield md.StreamBarsResponse(bars=bars)
        yield md.StreamBarsResponse(end_of_replay=True)

    def _day_bars(
        self, spec: InstrumentSpec, start: int, end: int, timeframe: int, source: str
    ) -> list[md.Bar]:
        parts = list(self.store.scan(DataKind.QUOTES, spec, start, end))
        if not parts:
            return []
        day = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        ok = day["flags"] == 0
        ts, bid, ask = day["ts_ns"][ok], day["bid"][ok], day["ask"][ok]
        scale = spec.price_scale
        if source == "mid":
            price, scale = (bid + ask) * 5, scale + 1  # (bid + ask) / 2, one more decimal
        else:
            price = bid if source == "bid" else ask
        opened, closed, o, h, lo, c, _, ticks = engine.aggregate_bars(
            _TIMEFRAME_KINDS[timeframe],
            np.ascontiguousarray(ts),
            np.ascontiguousarray(price),
            np.zeros(len(ts), dtype=np.int64),
        )
        return [
            md.Bar(
                instrument=_instrument_id(spec),
                timeframe=types_pb2.Timeframe.ValueType(timeframe),
                ts_open_ns=int(t0),
                ts_close_ns=int(t1),
                open=_decimal(a, scale),
                high=_decimal(b, scale),
                low=_decimal(x, scale),
                close=_decimal(y, scale),
                volume=_decimal(0, 0),
                tick_count=int(n),
                price_source=source,
            )
            for t0, t1, a, b, x, y, n in zip(
                opened.tolist(),
                closed.tolist(),
                o.tolist(),
                h.tolist(),
                lo.tolist(),
                c.tolist(),
                ticks.tolist(),
                strict=True,
            )
        ]

    def StreamTicks(
        self, request: md.StreamTicksRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        """Replays stored ticks, time-ordered across instruments, in batches.

        Validates at once, then hands gRPC the stream itself (no generator
        around it: one layer less for every message)."""
        _validate_stream_ticks(request)
        if not request.HasField("replay"):
            raise FailedPrecondition(
                "no live feed is connected in this deployment; ask for a replay range"
            )
        if request.trades:
            raise Unimplemented("trade streams land with the futures feed; ask for quotes")
        specs = [_resolve(f"instruments[{i}]", inst) for i, inst in enumerate(request.instruments)]
        batch = request.max_batch_size or self._cfg.default_batch_size
        lossless = request.replay_speed == 0
        merged = iter(
            _Merge(
                {
                    spec: self.store.scan(
                        DataKind.QUOTES, spec, request.replay.start_ns, request.replay.end_ns
                    )
                    for spec in specs
                },
                # Lossless streams take whole merged slices and split them in Rust.
                MAX_BATCH if lossless else batch,
            )
        )
        if lossless:
            return self._lossless(merged, request, batch)
        return self._paced(merged, request)

    def _prepare(self, chunk: Chunk, request: md.StreamTicksRequest) -> Chunk:
        if not request.include_rejected:
            keep = chunk["flags"] == 0
            if not keep.all():
                chunk = {name: values[keep] for name, values in chunk.items()}
        if request.conflation_interval_ns and len(chunk["ts_ns"]):
            chunk = _conflate(chunk, request.conflation_interval_ns)
        return chunk

    def _lossless_hops(
        self,
        merged: Iterator[tuple[InstrumentSpec, Chunk]],
        request: md.StreamTicksRequest,
        batch: int,
    ) -> Iterator[list[bytes]]:
        """The stream's messages in hops of about LOSSLESS_TICKS_PER_HOP ticks."""
        sequence = 1
        hop: list[bytes] = []
        ticks = 0
        for spec, raw in merged:
            chunk = self._prepare(raw, request)
            if not len(chunk["ts_ns"]):
                continue
            # One Rust call splits a merged slice into messages of `batch` ticks.
            messages = engine.encode_stream_ticks_batches(
                *_columns(spec, chunk, with_flags=request.include_rejected), batch, sequence
            )
            sequence += len(messages)
            hop.extend(messages)
            ticks += len(chunk["ts_ns"])
            if ticks >= LOSSLESS_TICKS_PER_HOP:
                yield hop
                hop, ticks = [], 0
        hop.append(_encoded(None, None, with_flags=False, sequence=sequence, end=True))
        yield hop

    async def _lossless(
        self,
        merged: Iterator[tuple[InstrumentSpec, Chunk]],
        request: md.StreamTicksRequest,
        batch: int,
    ) -> AsyncIterator[bytes]:
        # Reading and encoding run on a worker thread (without the GIL for the
        # most part) one hop ahead of the messages being sent: gRPC flow
        # control paces the loop, so at most two hops wait here.
        hops = self._lossless_hops(merged, request, batch)
        pending = asyncio.ensure_future(asyncio.to_thread(next, hops, None))
        try:
            while (ready := await pending) is not None:
                pending = asyncio.ensure_future(asyncio.to_thread(next, hops, None))
                for message in ready:
                    yield message
        finally:
            # The worker may still be inside the generator; let it finish first.
            with contextlib.suppress(Exception):
                await pending

    async def _paced(
        self, merged: Iterator[tuple[InstrumentSpec, Chunk]], request: md.StreamTicksRequest
    ) -> AsyncIterator[bytes]:
        bounded = _BoundedQueue(self._cfg.stream_queue_batches, request.overflow_policy)
        producer = asyncio.create_task(self._produce(merged, request, bounded))
        sequence = 0
        try:
            while (item := await bounded.queue.get()) is not None:
                spec, chunk = item
                sequence += 1
                yield _encoded(
                    spec,
                    chunk,
                    with_flags=request.include_rejected,
                    sequence=sequence,
                    dropped=bounded.dropped,
                )
            if bounded.failure:
                raise ResourceExhausted(
                    f"stream overflow: {bounded.failure}; dropped ticks {bounded.dropped}"
                )
            yield _encoded(
                None,
                None,
                with_flags=False,
                sequence=sequence + 1,
                dropped=bounded.dropped,
                end=True,
            )
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def _produce(
        self,
        merged: Iterator[tuple[InstrumentSpec, Chunk]],
        request: md.StreamTicksRequest,
        bounded: _BoundedQueue,
    ) -> None:
        """Reads the replay on the data's clock (scaled by replay_speed) into the queue."""
        wall0 = time.monotonic()
        data0: int | None = None
        sentinel = (None, None)
        while True:
            spec, chunk = await asyncio.to_thread(next, merged, sentinel)
            if spec is None or chunk is None:
                break
            chunk = self._prepare(chunk, request)
            if not len(chunk["ts_ns"]):
                continue
            data0 = int(chunk["ts_ns"][0]) if data0 is None else data0
            due = (int(chunk["ts_ns"][-1]) - data0) / 1e9 / request.replay_speed
            delay = wall0 + due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not bounded.offer(spec, chunk):
                break
        await bounded.queue.put(None)

    # -- pending -----------------------------------------------------------

    def _book_and_source(
        self, spec: InstrumentSpec
    ) -> tuple[engine.OrderBook, str, md.FeedState.ValueType, str] | None:
        """The book of `spec` (a live WebSocket feed's, else a live FIX session's,
        else a replayed one) with its source, the source's state and why."""
        live = self.live.get(spec)
        if live is not None:
            return live.book.book(), live.source, _LIVE_STATES[live.health()], live.health_reason()
        for session in self.fix_sessions:
            book = session.book(spec)
            if book is not None:
                status = session.status()
                return book, session.source, _LIVE_STATES[status["health"]], status["reason"]
        book = self.books.get(spec)
        if book is None:
            return None
        return book, self.book_sources.get(spec, ""), md.FEED_STATE_FINISHED, ""

    async def GetOrderBook(
        self, request: md.GetOrderBookRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> md.GetOrderBookResponse:
        """Returns an instrument's L2 book to the requested depth, with its figures."""
        v = Violations()
        v.instrument("instrument", request.instrument, present=request.HasField("instrument"))
        if request.depth > MAX_DEPTH:
            v.add("depth", f"at most {MAX_DEPTH}")
        v.raise_if_any()
        spec = _resolve("instrument", request.instrument)
        found = self._book_and_source(spec)
        if found is None:
            raise NotFound(f"instrument: no order book is kept for {spec.symbol} at {spec.venue}")
        book, source, state, reason = found
        bid_px, bid_sz, ask_px, ask_sz = book.depth(request.depth or 10)

        def levels(prices: Any, sizes: Any) -> list[md.BookLevel]:
            return [
                md.BookLevel(price=_decimal(p, spec.price_scale), size=_decimal(q, spec.size_scale))
                for p, q in zip(prices.tolist(), sizes.tolist(), strict=True)
            ]

        result = md.OrderBook(
            instrument=_instrument_id(spec),
            sequence=book.sequence,
            bids=levels(bid_px, bid_sz),
            asks=levels(ask_px, ask_sz),
            imbalance=book.imbalance() or 0.0,
        )
        best_bid, best_ask = book.best_bid(), book.best_ask()
        if best_bid is not None and best_ask is not None:
            # mid in exact decimals: (bid + ask) / 2 at one more decimal place.
            result.mid.CopyFrom(_decimal((best_bid[0] + best_ask[0]) * 5, spec.price_scale + 1))
            result.spread.CopyFrom(_decimal(best_ask[0] - best_bid[0], spec.price_scale))
            micro = book.micro_price()
            if micro is not None:
                scale = spec.price_scale + 4
                result.micro_price.CopyFrom(_decimal(round(micro * 10**scale), scale))
        return md.GetOrderBookResponse(
            book=result,
            source=source,
            feed_state=state,
            state_reason=reason,
            in_sequence=book.state == "live",
        )
