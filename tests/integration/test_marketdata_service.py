"""The MarketData service on the shipped real sample, checked against an independent reading."""

from __future__ import annotations

import calendar
import gzip
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from nexus.common.v1 import types_pb2
from nexus.config import load_settings
from nexus.marketdata.v1 import marketdata_pb2 as md
from nexus.marketdata.v1 import marketdata_pb2_grpc
from nexus.services.marketdata.ingest import FeedStatusBoard, ingest
from nexus.services.marketdata.instruments import DataKind, find_instrument
from nexus.services.marketdata.store import TickStore
from nexus_client import NexusClient, from_decimal
from tests.conftest import REPO, ThreadedServer

pytestmark = pytest.mark.integration

SAMPLE = REPO / "data" / "sample" / "market" / "fx"
EURUSD = types_pb2.InstrumentId(symbol="EUR/USD", venue="OANDA")
NS = 1_000_000_000


def _day_ns(y: int, m: int, d: int) -> int:
    return calendar.timegm((y, m, d, 0, 0, 0)) * NS


def _reference_quotes(day: str) -> list[tuple[int, int, int]]:
    """zipfile + Decimal: shares nothing with the Rust reader or the store."""
    path = SAMPLE / "ticks/lean_oanda_eurusd" / f"{day}_quote.zip"
    start = _day_ns(int(day[:4]), int(day[4:6]), int(day[6:]))
    with zipfile.ZipFile(path) as archive:
        text = archive.read(archive.namelist()[0]).decode()
    out = []
    for line in text.splitlines():
        ms, bid, ask = line.split(",")
        out.append(
            (start + int(ms) * 1_000_000, int(Decimal(bid) * 100_000), int(Decimal(ask) * 100_000))
        )
    return out


@pytest.fixture(scope="module")
def client(nexus_server: ThreadedServer) -> Iterator[NexusClient]:
    with NexusClient(nexus_server.target, timeout_s=30) as client:
        yield client


def test_instruments_are_listed_with_specs(client: NexusClient) -> None:
    reply = client.marketdata.ListInstruments(md.ListInstrumentsRequest(venue="OANDA"))
    specs = {s.instrument.symbol: s for s in reply.instruments}
    assert set(specs) == {"EUR/USD", "NZD/USD"}
    tick = specs["EUR/USD"].tick_size
    assert Decimal(tick.mantissa).scaleb(-tick.scale) == Decimal("0.00001")


def test_feed_status_counts_every_row_of_the_sample(client: NexusClient) -> None:
    status = client.marketdata.GetFeedStatus(md.GetFeedStatusRequest(sources=["lean:oanda"]))
    (feed,) = status.feeds
    ticks = sum(len(_reference_quotes(d)) for d in ("20140505", "20140506", "20140507"))
    bars = 0
    for path in (SAMPLE / "bars_1min/lean_oanda_eurusd").glob("*.zip"):
        with zipfile.ZipFile(path) as archive:
            bars += len(archive.read(archive.namelist()[0]).splitlines())
    assert feed.received == ticks + bars
    assert feed.accepted == feed.received
    assert list(feed.issues) == []  # OANDA quotes are never crossed or locked
    assert feed.state == md.FEED_STATE_FINISHED


def test_historical_pages_reassemble_the_day_exactly(client: NexusClient) -> None:
    expected = _reference_quotes("20140506")
    day = types_pb2.TimeRange(start_ns=_day_ns(2014, 5, 6), end_ns=_day_ns(2014, 5, 7))
    rows: list[tuple[int, int, int]] = []
    token = ""
    pages = 0
    while True:
        reply = client.marketdata.GetHistoricalData(
            md.GetHistoricalDataRequest(
                instrument=EURUSD,
                kind=md.DATA_KIND_QUOTES,
                range=day,
                page=types_pb2.PageRequest(page_size=7_001, page_token=token),
            )
        )
        q = reply.quotes
        assert q.price_scale == 5
        rows += list(zip(q.ts_event_ns, q.bid_mantissa, q.ask_mantissa, strict=True))
        pages += 1
        token = reply.page.next_page_token
        if not token:
            break
    assert pages == -(-len(expected) // 7_001)
    assert rows == expected


def test_historical_bars(client: NexusClient) -> None:
    reply = client.marketdata.GetHistoricalData(
        md.GetHistoricalDataRequest(
            instrument=EURUSD,
            kind=md.DATA_KIND_BARS,
            timeframe=types_pb2.TIMEFRAME_1M,
            range=types_pb2.TimeRange(
                start_ns=_day_ns(2014, 5, 5), end_ns=_day_ns(2014, 5, 5) + 3600 * NS
            ),
        )
    )
    assert 50 <= len(reply.bars) <= 60
    for bar in reply.bars:
        assert bar.low.mantissa <= bar.open.mantissa <= bar.high.mantissa
        assert bar.ts_close_ns - bar.ts_open_ns == 60 * NS


def test_bad_requests(client: NexusClient) -> None:
    day = types_pb2.TimeRange(start_ns=_day_ns(2014, 5, 6), end_ns=_day_ns(2014, 5, 7))
    with pytest.raises(grpc.RpcError) as info:
        client.marketdata.GetHistoricalData(
            md.GetHistoricalDataRequest(
                instrument=types_pb2.InstrumentId(symbol="XAU/USD", venue="OANDA"),
                kind=md.DATA_KIND_QUOTES,
                range=day,
            )
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        client.marketdata.GetHistoricalData(
            md.GetHistoricalDataRequest(
                instrument=EURUSD,
                kind=md.DATA_KIND_QUOTES,
                range=day,
                page=types_pb2.PageRequest(page_token="garbage!"),
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page.page_token" in str(info.value.details())
    stream = client.marketdata.StreamTicks(md.StreamTicksRequest(instruments=[EURUSD], quotes=True))
    with pytest.raises(grpc.RpcError) as info:
        next(iter(stream))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_lossless_replay_streams_every_tick_in_order(client: NexusClient) -> None:
    expected = _reference_quotes("20140505") + _reference_quotes("20140506")
    request = md.StreamTicksRequest(
        instruments=[EURUSD],
        quotes=True,
        replay=types_pb2.TimeRange(start_ns=_day_ns(2014, 5, 5), end_ns=_day_ns(2014, 5, 7)),
        max_batch_size=5_000,
    )
    got: list[tuple[int, int, int]] = []
    sequences = []
    ended = False
    for message in client.marketdata.StreamTicks(request, timeout=60):
        sequences.append(message.sequence)
        assert message.dropped_ticks == 0
        for batch in message.quotes:
            assert len(batch.ts_event_ns) <= 5_000
            got += list(zip(batch.ts_event_ns, batch.bid_mantissa, batch.ask_mantissa, strict=True))
        ended = ended or message.end_of_replay
    assert ended
    assert sequences == list(range(1, len(sequences) + 1))
    assert got == expected


def test_lossless_stream_cancelled_midway_leaves_the_next_one_whole(client: NexusClient) -> None:
    """A client that leaves while the next hop is being read and encoded."""
    request = md.StreamTicksRequest(
        instruments=[EURUSD],
        quotes=True,
        replay=types_pb2.TimeRange(start_ns=_day_ns(2014, 5, 5), end_ns=_day_ns(2014, 5, 8)),
        max_batch_size=100,
    )
    stream = client.marketdata.StreamTicks(request, timeout=60)
    for _, message in zip(range(5), stream, strict=False):
        assert not message.end_of_replay
    stream.cancel()
    with pytest.raises(grpc.RpcError) as info:
        list(stream)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    expected = _reference_quotes("20140507")
    request.replay.start_ns = _day_ns(2014, 5, 7)
    got = [
        tick
        for message in client.marketdata.StreamTicks(request, timeout=60)
        for batch in message.quotes
        for tick in zip(batch.ts_event_ns, batch.bid_mantissa, batch.ask_mantissa, strict=True)
    ]
    assert got == expected


@pytest.fixture(scope="module")
def small_queue_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    settings = load_settings(
        overrides={
            "server": {"port": 0, "grace_period_s": 0.5, "metrics_port": None},
            "data_dir": str(tmp_path_factory.mktemp("nexus-small-queue")),
            "services": "marketdata",
            "marketdata": {"stream_queue_batches": 2},
        }
    )
    server = ThreadedServer(settings)
    yield server
    server.stop()


def _slow_channel(server: ThreadedServer) -> grpc.Channel:
    """A client channel whose receive window stays at 64 KiB (no BDP probing), so
    that a consumer that stops reading makes the server's stream block soon."""
    return grpc.insecure_channel(server.target, options=[("grpc.http2.bdp_probe", 0)])


@pytest.mark.parametrize("policy", [md.OVERFLOW_POLICY_DROP_OLDEST, md.OVERFLOW_POLICY_CONFLATE])
def test_slow_client_loses_counted_ticks_not_memory(
    small_queue_server: ThreadedServer, policy: md.OverflowPolicy.ValueType
) -> None:
    total = len(_reference_quotes("20140506"))
    request = md.StreamTicksRequest(
        instruments=[EURUSD],
        quotes=True,
        replay=types_pb2.TimeRange(start_ns=_day_ns(2014, 5, 6), end_ns=_day_ns(2014, 5, 7)),
        replay_speed=1e6,  # a day in under a second: a live-like feed too fast to follow
        max_batch_size=200,
        overflow_policy=policy,
    )
    received = 0
    last = md.StreamTicksResponse()
    with _slow_channel(small_queue_server) as channel:
        stub = marketdata_pb2_grpc.MarketDataServiceStub(channel)
        for i, message in enumerate(stub.StreamTicks(request, timeout=60)):
            if i < 3:
                time.sleep(0.5)  # the slow consumer
            received += sum(len(b.ts_event_ns) for b in message.quotes)
            last = message
    assert last.end_of_replay
    assert last.dropped_ticks > 0
    assert received + last.dropped_ticks == total  # every tick delivered or counted


def test_slow_client_with_fail_policy_gets_resource_exhausted(
    small_queue_server: ThreadedServer,
) -> None:
    request = md.StreamTicksRequest(
        instruments=[EURUSD],
        quotes=True,
        replay=types_pb2.TimeRange(start_ns=_day_ns(2014, 5, 6), end_ns=_day_ns(2014, 5, 7)),
        replay_speed=1e6,
        max_batch_size=200,
        overflow_policy=md.OVERFLOW_POLICY_FAIL,
    )
    with _slow_channel(small_queue_server) as channel:
        stream = marketdata_pb2_grpc.MarketDataServiceStub(channel).StreamTicks(request, timeout=60)
        messages = iter(stream)
        for _ in range(3):
            next(messages)
            time.sleep(0.5)
        with pytest.raises(grpc.RpcError) as info:
            list(messages)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "stream overflow" in str(info.value.details())


def test_ingesting_the_shared_set_matches_its_documented_counts(
    shared_data: Path, tmp_path: Path
) -> None:
    store = TickStore(tmp_path)
    board = FeedStatusBoard()
    report = ingest(store, [shared_data / "market/fx/ticks/lean_fxcm_eurusd"], board)
    assert report.files == 13
    spec = find_instrument("EUR/USD", "FXCM")
    assert spec is not None
    assert store.count(DataKind.QUOTES, spec) == 1_144_807  # SOURCES.md
    fxcm = board.snapshot()["lean:fxcm"]
    assert fxcm.flagged[1] == 116_871  # crossed, as SOURCES.md counts them
    assert fxcm.flagged[2] == 142_462  # locked
    again = ingest(store, [shared_data / "market/fx/ticks/lean_fxcm_eurusd"], board)
    assert (again.files, again.skipped_known) == (0, 13)
    assert store.count(DataKind.QUOTES, spec) == 1_144_807


def test_order_book_replayed_from_the_shipped_binance_feed(client: NexusClient) -> None:
    btc = types_pb2.InstrumentId(symbol="BTCUSDT", venue="BINANCE")
    answer = client.marketdata.GetOrderBook(md.GetOrderBookRequest(instrument=btc, depth=5))
    book = answer.book
    # A replayed file: read to its end, in sequence.
    assert answer.source == "binance:spot"
    sources = client.marketdata.GetFeedStatus(md.GetFeedStatusRequest()).feeds
    assert answer.source in {f.source for f in sources}  # the name GetFeedStatus uses
    assert (answer.feed_state, answer.in_sequence) == (md.FEED_STATE_FINISHED, True)
    assert len(book.bids) == len(book.asks) == 5
    bids = [Decimal(level.price.mantissa).scaleb(-level.price.scale) for level in book.bids]
    asks = [Decimal(level.price.mantissa).scaleb(-level.price.scale) for level in book.asks]
    assert bids == sorted(bids, reverse=True)
    assert asks == sorted(asks)
    assert bids[0] < asks[0]
    assert Decimal(book.mid.mantissa).scaleb(-book.mid.scale) == (bids[0] + asks[0]) / 2
    assert Decimal(book.spread.mantissa).scaleb(-book.spread.scale) == asks[0] - bids[0]
    assert 60_000 < bids[0] < 63_000  # BTCUSDT on 2024-08-08
    assert -1 <= book.imbalance <= 1
    assert book.sequence > 50_093_239_218  # past the REST snapshot's lastUpdateId
    feed = REPO / "data/sample/market/crypto/hftbacktest_binance_spot/btcusdt_20240808.gz"
    with gzip.open(feed) as handle:
        lines = sum(1 for _ in handle)
    status = client.marketdata.GetFeedStatus(md.GetFeedStatusRequest(sources=["binance:spot"]))
    (binance,) = status.feeds
    assert binance.received == lines
    assert list(binance.issues) == []  # no bad line, no sequence gap
    with pytest.raises(grpc.RpcError) as info:
        client.marketdata.GetOrderBook(md.GetOrderBookRequest(instrument=EURUSD))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_metrics_expose_feed_and_rpc_counters(
    client: NexusClient, nexus_server: ThreadedServer
) -> None:
    client.marketdata.GetFeedStatus(md.GetFeedStatusRequest())
    metrics = nexus_server.server.metrics
    assert metrics is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = reply.read().decode()
    assert "# TYPE nexus_feed_rows_received_total counter" in text
    assert 'nexus_feed_rows_received_total{source="lean:oanda"} ' in text
    assert (
        'nexus_rpc_calls_total{code="OK",method="/nexus.marketdata.v1.MarketDataService/GetFeedStatus"}'
        in text
    )


def test_bar_stream_rebuilds_leans_minute_bars_and_aggregates(client: NexusClient) -> None:
    day = types_pb2.TimeRange(start_ns=_day_ns(2014, 5, 6), end_ns=_day_ns(2014, 5, 7))
    request = md.StreamBarsRequest(
        instruments=[EURUSD], timeframe=types_pb2.TIMEFRAME_1M, replay=day, price_source="bid"
    )
    bars = [b for m in client.marketdata.StreamBars(request, timeout=60) for b in m.bars]
    # Lean's own minute bid bars of the same day, from the shipped sample.
    lean = client.marketdata.GetHistoricalData(
        md.GetHistoricalDataRequest(
            instrument=EURUSD, kind=md.DATA_KIND_BARS, timeframe=types_pb2.TIMEFRAME_1M, range=day
        )
    ).bars
    assert len(bars) == len(lean) > 1000
    minute = 60 * NS
    for ours, theirs in zip(bars, lean, strict=True):
        assert ours.ts_open_ns // minute * minute == theirs.ts_open_ns
        assert (ours.high, ours.low, ours.close) == (theirs.high, theirs.low, theirs.close)
    hourly = md.StreamBarsRequest(
        instruments=[EURUSD], timeframe=types_pb2.TIMEFRAME_1H, replay=day
    )
    messages = list(client.marketdata.StreamBars(hourly, timeout=60))
    assert messages[-1].end_of_replay
    hours = [b for m in messages for b in m.bars]
    assert 20 <= len(hours) <= 24
    quotes = _reference_quotes("20140506")
    assert sum(b.tick_count for b in hours) == len(quotes)
    assert all(b.price_source == "mid" and b.close.scale == 6 for b in hours)
    # The mid is (bid + ask) / 2: the day's last close is the last quote's mid
    # (the OANDA sample has no rejected quotes: tick counts match above).
    _, last_bid, last_ask = quotes[-1]
    assert hours[-1].close.mantissa == (last_bid + last_ask) * 5
    assert (
        Decimal(last_bid) / 100_000 <= from_decimal(hours[-1].close) <= Decimal(last_ask) / 100_000
    )
