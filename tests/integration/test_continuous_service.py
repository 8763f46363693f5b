"""Continuous ES futures over gRPC, from the shared contract months."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from nexus.common.v1 import types_pb2
from nexus.config import load_settings
from nexus.marketdata.v1 import marketdata_pb2 as md
from nexus.services.marketdata.continuous import RollRule, build_continuous
from nexus.services.marketdata.ingest import FeedStatusBoard, ingest
from nexus.services.marketdata.instruments import find_instrument
from nexus.services.marketdata.store import TickStore
from nexus_client import NexusClient
from tests.conftest import ThreadedServer

pytestmark = pytest.mark.integration

ES = types_pb2.InstrumentId(symbol="ES", venue="CME")


@pytest.fixture(scope="module")
def es_server(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ThreadedServer, TickStore]]:
    data_dir = tmp_path_factory.mktemp("continuous")
    store = TickStore(data_dir / "store")
    ingest(store, [shared_data / "market/futures/bars_1min/lean_cme_es"], FeedStatusBoard())
    server = ThreadedServer(
        load_settings(
            overrides={
                "server": {"port": 0, "grace_period_s": 0.5, "metrics_port": None},
                "data_dir": str(data_dir),
                "services": "hub,marketdata",
            }
        )
    )
    yield server, store
    server.stop()


@pytest.fixture
def client(es_server: tuple[ThreadedServer, TickStore]) -> Iterator[NexusClient]:
    with NexusClient(es_server[0].target, timeout_s=60) as client:
        yield client


def _all_pages(client: NexusClient, request: md.GetContinuousSeriesRequest) -> list[md.Bar]:
    bars: list[md.Bar] = []
    while True:
        reply = client.marketdata.GetContinuousSeries(request)
        bars.extend(reply.bars)
        if not reply.page.next_page_token:
            return bars
        request.page.page_token = reply.page.next_page_token


@pytest.mark.parametrize(
    ("rule", "grpc_rule", "back_adjust"),
    [
        (RollRule.VOLUME, md.ROLL_RULE_VOLUME, True),
        (RollRule.CALENDAR, md.ROLL_RULE_CALENDAR, False),
    ],
)
def test_pages_reassemble_the_stitched_series(
    client: NexusClient,
    es_server: tuple[ThreadedServer, TickStore],
    rule: RollRule,
    grpc_rule: int,
    back_adjust: bool,
) -> None:
    root = find_instrument("ES", "CME")
    assert root is not None
    expected = build_continuous(es_server[1], root, rule, back_adjust=back_adjust)
    assert expected.rolls, "the shared ES months roll at least once"
    request = md.GetContinuousSeriesRequest(
        root=ES,
        roll_rule=grpc_rule,  # type: ignore[arg-type]
        back_adjust=back_adjust,
        range=types_pb2.TimeRange(start_ns=1, end_ns=2**62),
        page=types_pb2.PageRequest(page_size=7_000),
    )
    bars = _all_pages(client, request)
    assert len(bars) == len(expected.ts_ns)
    scale = root.price_scale
    for i in (0, len(bars) // 2, len(bars) - 1):
        assert bars[i].ts_open_ns == expected.ts_ns[i]
        assert bars[i].close.mantissa == expected.close[i]
        assert bars[i].close.scale == scale
        assert bars[i].instrument.symbol == f"ES{expected.contract[i]}"
    contracts = [b.instrument.symbol for b in bars]
    assert sum(a != b for a, b in itertools.pairwise(contracts)) == len(expected.rolls)
    reply = client.marketdata.GetContinuousSeries(request)
    assert [(r.from_contract, r.to_contract) for r in reply.rolls] == [
        (r.from_contract, r.to_contract) for r in expected.rolls
    ]
    assert [r.adjustment.mantissa for r in reply.rolls] == [r.adjustment for r in expected.rolls]
    if not back_adjust:
        assert all(r.adjustment.mantissa == 0 for r in reply.rolls)


def test_a_range_selects_bars_and_bad_requests_are_refused(client: NexusClient) -> None:
    full = md.GetContinuousSeriesRequest(
        root=ES,
        roll_rule=md.ROLL_RULE_VOLUME,
        range=types_pb2.TimeRange(start_ns=1, end_ns=2**62),
        page=types_pb2.PageRequest(page_size=10),
    )
    first = client.marketdata.GetContinuousSeries(full).bars[0].ts_open_ns
    window = md.GetContinuousSeriesRequest()
    window.CopyFrom(full)
    window.range.start_ns = first + 60_000_000_000
    window.range.end_ns = first + 3 * 60 * 60_000_000_000
    bars = _all_pages(client, window)
    assert bars
    assert all(window.range.start_ns <= b.ts_open_ns < window.range.end_ns for b in bars)

    cases = [
        (md.GetContinuousSeriesRequest(root=ES, range=full.range), "roll_rule"),
        (
            md.GetContinuousSeriesRequest(
                root=types_pb2.InstrumentId(symbol="EUR/USD", venue="OANDA"),
                roll_rule=md.ROLL_RULE_VOLUME,
                range=full.range,
            ),
            "not a futures root",
        ),
    ]
    for request, why in cases:
        with pytest.raises(grpc.RpcError) as info:
            client.marketdata.GetContinuousSeries(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert why in str(info.value.details())
    with pytest.raises(grpc.RpcError) as info:
        client.marketdata.GetContinuousSeries(
            md.GetContinuousSeriesRequest(
                root=types_pb2.InstrumentId(symbol="ZN", venue="CBOT"),
                roll_rule=md.ROLL_RULE_VOLUME,
                range=full.range,
            )
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
