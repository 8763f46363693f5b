"""Orders over gRPC through FIX to the paper venue (a simulator) priced by real quotes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from nexus.common.v1 import types_pb2
from nexus.config import ServiceName, load_settings
from nexus.execution.v1 import execution_pb2 as ex
from nexus_client import NexusClient, from_decimal, to_decimal
from tests.conftest import ThreadedServer

pytestmark = pytest.mark.integration

EURUSD = types_pb2.InstrumentId(symbol="EUR/USD", venue="OANDA")


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    settings = load_settings(
        overrides={
            "server": {"port": 0, "grace_period_s": 0.5, "metrics_port": None},
            "data_dir": str(tmp_path_factory.mktemp("paper")),
            "services": "hub,marketdata,execution",
            "execution": {"replay_speed": 600.0, "max_order_quantity": 5_000_000},
        }
    )
    server = ThreadedServer(settings)
    servicer = server.server.context.hosted[ServiceName.EXECUTION][1]
    deadline = time.monotonic() + 30
    while getattr(servicer, "quotes_fed", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    yield server
    server.stop()


@pytest.fixture
def client(paper: ThreadedServer) -> Iterator[NexusClient]:
    with NexusClient(paper.target, timeout_s=10) as client:
        yield client


def _order(client_id: str, quantity: str, **kw: object) -> ex.SubmitOrderRequest:
    return ex.SubmitOrderRequest(
        client_order_id=client_id,
        instrument=EURUSD,
        side=types_pb2.SIDE_BUY,
        order_type=ex.ORDER_TYPE_MARKET,
        quantity=to_decimal(quantity),
        **kw,  # type: ignore[arg-type]
    )


def _wait_status(client: NexusClient, order_id: str, status: int) -> ex.Order:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        orders = client.execution.GetOrders(ex.GetOrdersRequest()).orders
        found = next(o for o in orders if o.order_id == order_id)
        if found.status == status:
            return found
        time.sleep(0.05)
    raise AssertionError(f"order {order_id} never reached status {status}: {found}")


def test_market_order_is_filled_over_fix_and_moves_the_position(client: NexusClient) -> None:
    before = client.execution.GetPositions(ex.GetPositionsRequest()).positions
    held = sum(from_decimal(p.quantity) for p in before if p.instrument.symbol == "EUR/USD")
    order = client.execution.SubmitOrder(_order("mkt-1", "100000")).order
    assert order.status in (
        ex.ORDER_STATUS_PENDING_NEW,
        ex.ORDER_STATUS_NEW,
        ex.ORDER_STATUS_FILLED,
    )
    filled = _wait_status(client, order.order_id, ex.ORDER_STATUS_FILLED)
    assert from_decimal(filled.filled_quantity) == 100_000
    price = from_decimal(filled.average_price)
    assert Decimal("1.3") < price < Decimal("1.5")  # EUR/USD in May 2014
    after = client.execution.GetPositions(ex.GetPositionsRequest()).positions
    (position,) = [p for p in after if p.instrument.symbol == "EUR/USD"]
    assert from_decimal(position.quantity) == held + 100_000
    # A retry with the same client_order_id is the same order, not a second one.
    again = client.execution.SubmitOrder(_order("mkt-1", "100000")).order
    assert again.order_id == order.order_id


def test_reports_stream_replays_the_fill(client: NexusClient) -> None:
    order = client.execution.SubmitOrder(_order("mkt-2", "1000")).order
    _wait_status(client, order.order_id, ex.ORDER_STATUS_FILLED)
    stream = client.execution.StreamExecutionReports(
        ex.StreamExecutionReportsRequest(from_sequence=1), timeout=10
    )
    seen = []
    for message in stream:
        seen.append(message.report)
        if message.report.order.order_id == order.order_id and (
            message.report.exec_type == ex.EXEC_TYPE_TRADE
        ):
            break
    stream.cancel()
    sequences = [r.sequence for r in seen]
    assert sequences == list(range(1, len(seen) + 1))
    assert {r.exec_type for r in seen if r.order.order_id == order.order_id} >= {
        ex.EXEC_TYPE_NEW,
        ex.EXEC_TYPE_TRADE,
    }


def test_risk_refusal_and_kill_switch(client: NexusClient) -> None:
    too_big = client.execution.SubmitOrder(_order("big-1", "6000000")).order
    assert too_big.status == ex.ORDER_STATUS_REJECTED
    assert too_big.reject_reason == ex.REJECT_REASON_MAX_QUANTITY
    with pytest.raises(grpc.RpcError) as info:
        client.execution.SetKillSwitch(ex.SetKillSwitchRequest(engaged=True))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    client.execution.SetKillSwitch(
        ex.SetKillSwitchRequest(engaged=True, reason="test", operator="pytest")
    )
    blocked = client.execution.SubmitOrder(_order("ks-1", "1000")).order
    assert blocked.reject_reason == ex.REJECT_REASON_KILL_SWITCH
    client.execution.SetKillSwitch(
        ex.SetKillSwitchRequest(engaged=False, reason="test over", operator="pytest")
    )
    allowed = client.execution.SubmitOrder(_order("ks-2", "1000")).order
    assert allowed.status != ex.ORDER_STATUS_REJECTED


def test_session_and_bad_requests(client: NexusClient, tmp_path: Path) -> None:
    (session,) = client.execution.GetSessions(ex.GetSessionsRequest()).sessions
    assert session.simulated
    assert session.state == ex.SESSION_STATE_ACTIVE
    with pytest.raises(grpc.RpcError) as info:
        client.execution.SubmitOrder(_order("frac-1", "0.5"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "decimal places" in str(info.value.details())
    unknown = _order("x-1", "1")
    unknown.instrument.CopyFrom(types_pb2.InstrumentId(symbol="USD/JPY", venue="OANDA"))
    with pytest.raises(grpc.RpcError) as info:
        client.execution.SubmitOrder(unknown)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        client.execution.CancelOrder(ex.CancelOrderRequest(order_id="999999"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
