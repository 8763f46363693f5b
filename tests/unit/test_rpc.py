"""Transport behaviour shared by every service, against an in-process server."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import grpc
import pytest

from nexus.common.v1 import types_pb2
from nexus.execution.v1 import execution_pb2 as ex
from nexus.hub.v1 import hub_pb2
from nexus.marketdata.v1 import marketdata_pb2 as md
from nexus.news.v1 import news_pb2
from nexus_client import NexusClient, NexusError, from_decimal, to_decimal
from tests.conftest import ThreadedServer

PREDICT = "/nexus.snn.v1.SnnAnalysisService/Predict"


@pytest.fixture
def client(nexus_server: ThreadedServer) -> Iterator[NexusClient]:
    with NexusClient(nexus_server.target, timeout_s=5) as client:
        yield client


def test_system_status_lists_every_service(client: NexusClient) -> None:
    status = client.system_status()
    names = {c.name: c for c in status.components}
    assert "nexus.marketdata.v1.MarketDataService" in names
    assert names["nexus.hub.v1.HubService"].state == hub_pb2.HEALTH_STATE_SERVING
    assert names["nexus.risk.v1.RiskService"].state == hub_pb2.HEALTH_STATE_NOT_IMPLEMENTED
    assert status.trading_mode == types_pb2.TRADING_MODE_PAPER
    assert status.now_ns >= status.started_ns > 0


def test_undecodable_bytes_get_invalid_argument(
    client: NexusClient, nexus_server: ThreadedServer
) -> None:
    raw: grpc.UnaryUnaryMultiCallable[bytes, bytes] = client.channel.unary_unary(PREDICT)
    before = nexus_server.server.context.counters.get(PREDICT, grpc.StatusCode.INVALID_ARGUMENT)
    with pytest.raises(grpc.RpcError) as info:
        raw(b"\xff\xff\xff\xff", timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid nexus.snn.v1.PredictRequest" in str(info.value.details())
    after = nexus_server.server.context.counters.get(PREDICT, grpc.StatusCode.INVALID_ARGUMENT)
    assert after == before + 1


def test_missing_fields_are_each_named(client: NexusClient) -> None:
    with pytest.raises(NexusError) as info:
        client.predict("", "OANDA", "5m")
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert ("instrument.symbol", "required, e.g. 'EUR/USD'") in info.value.violations
    assert info.value.correlation_id


def test_valid_predict_is_unimplemented_by_name(client: NexusClient) -> None:
    with pytest.raises(NexusError) as info:
        client.predict("EUR/USD", "OANDA", "1h")
    assert info.value.code == grpc.StatusCode.UNIMPLEMENTED
    assert "Predict" in info.value.message


def test_order_rules_are_checked(client: NexusClient) -> None:
    request = ex.SubmitOrderRequest(
        client_order_id="has space",
        instrument=types_pb2.InstrumentId(symbol="EUR/USD", venue="PAPER"),
        side=types_pb2.SIDE_BUY,
        order_type=ex.ORDER_TYPE_LIMIT,
        quantity=to_decimal("-5"),
    )
    with pytest.raises(grpc.RpcError) as info:
        client.execution.SubmitOrder(request, timeout=5)
    err = NexusError(info.value)
    fields = dict(err.violations)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields == {
        "client_order_id": "only printable ASCII without spaces is allowed",
        "quantity": "must be positive",
        "limit_price": "required",
    }


def test_historical_request_needs_a_range(client: NexusClient) -> None:
    request = md.GetHistoricalDataRequest(
        instrument=types_pb2.InstrumentId(symbol="EUR/USD", venue="OANDA"),
        kind=md.DATA_KIND_BARS,
        range=types_pb2.TimeRange(start_ns=10, end_ns=5),
    )
    with pytest.raises(grpc.RpcError) as info:
        client.marketdata.GetHistoricalData(request, timeout=5)
    err = NexusError(info.value)
    assert dict(err.violations) == {
        "range": "start_ns must be before end_ns",
        "timeframe": "required, one of TIMEFRAME_1M, TIMEFRAME_5M, TIMEFRAME_15M, "
        "TIMEFRAME_1H, TIMEFRAME_1D",
    }


def test_streaming_validation_ends_the_stream(client: NexusClient) -> None:
    stream = client.marketdata.StreamTicks(md.StreamTicksRequest(), timeout=5)
    with pytest.raises(grpc.RpcError) as info:
        next(iter(stream))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "instruments: at least one instrument is required" in str(info.value.details())


def test_unbuilt_service_answers_unimplemented(client: NexusClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.news.ListArticles(news_pb2.ListArticlesRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "/nexus.news.v1.NewsService/ListArticles" in str(info.value.details())


def test_correlation_id_from_the_caller_is_echoed(client: NexusClient) -> None:
    _, call = client.hub.GetSystemStatus.with_call(
        hub_pb2.GetSystemStatusRequest(), metadata=(("x-correlation-id", "desk-42"),), timeout=5
    )
    assert ("x-correlation-id", "desk-42") in list(call.trailing_metadata())


@pytest.mark.parametrize("text", ["1.08345", "-0.5", "2500", "0", "1E+3", "0.000001"])
def test_decimal_round_trip(text: str) -> None:
    assert from_decimal(to_decimal(text)) == Decimal(text)


def test_decimal_rejects_non_finite() -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        to_decimal("NaN")
