"""The native order gateway (Rust) in front of the execution service: the orders it
answers itself equal the service's answers field by field, and everything else
reaches the real service through it."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from nexus import engine
from nexus.common.v1 import types_pb2
from nexus.config import ServiceName, load_settings
from nexus.execution.v1 import execution_pb2 as ex
from nexus.execution.v1.execution_pb2_grpc import ExecutionServiceStub
from nexus.services.execution.servicer import ExecutionServicer
from nexus_client import NexusClient, to_decimal
from tests.conftest import ThreadedServer, free_port

pytestmark = pytest.mark.integration

EURUSD = types_pb2.InstrumentId(symbol="EUR/USD", venue="OANDA")
MAX_MESSAGE_BYTES = 65_536


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    settings = load_settings(
        overrides={
            "server": {
                "port": 0,
                "grace_period_s": 0.5,
                "metrics_port": None,
                "max_message_bytes": MAX_MESSAGE_BYTES,
            },
            "data_dir": str(tmp_path_factory.mktemp("gateway")),
            "services": "marketdata,execution",
            "execution": {
                "replay_speed": 600.0,
                "order_gateway_port": 0,
                "collar_bps": 0,
                "max_orders_per_second": 0,
            },
        }
    )
    server = ThreadedServer(settings)
    yield server
    gateway_port = _servicer(server).gateway.port
    server.stop()
    with pytest.raises(ConnectionRefusedError):  # the gateway stops with the server
        socket.create_connection(("127.0.0.1", gateway_port), timeout=2).close()


def _servicer(server: ThreadedServer) -> ExecutionServicer:
    servicer = server.server.context.hosted[ServiceName.EXECUTION][1]
    assert isinstance(servicer, ExecutionServicer)
    return servicer


@pytest.fixture(scope="module")
def stubs(paper: ThreadedServer) -> Iterator[tuple[ExecutionServiceStub, ExecutionServiceStub]]:
    """(the service's own port, the gateway's port)."""
    gateway_port = _servicer(paper).gateway.port
    with (
        grpc.insecure_channel(paper.target) as direct,
        grpc.insecure_channel(f"127.0.0.1:{gateway_port}") as native,
    ):
        yield ExecutionServiceStub(direct), ExecutionServiceStub(native)


def _stats(paper: ThreadedServer) -> dict[str, Any]:
    stats: dict[str, Any] = _servicer(paper).gateway.stats()
    return stats


def _request(client_id: str, **kw: Any) -> ex.SubmitOrderRequest:
    fields: dict[str, Any] = {
        "client_order_id": client_id,
        "instrument": EURUSD,
        "side": types_pb2.SIDE_BUY,
        "order_type": ex.ORDER_TYPE_LIMIT,
        "quantity": to_decimal("1000"),
        "limit_price": types_pb2.Decimal(mantissa=100_000, scale=5),  # far below the market
        "await_venue_ack": True,
    }
    fields.update(kw)
    return ex.SubmitOrderRequest(**{k: v for k, v in fields.items() if v is not None})


def _comparable(order: ex.Order) -> dict[str, Any]:
    """The order without what differs between two orders by construction."""
    found: dict[str, Any] = json_format.MessageToDict(order)
    for key in ("orderId", "clientOrderId"):
        found.pop(key, None)
    return found


# Requests the native path takes: each is sent once to each port (with its own
# client_order_id) and must come back the same.
TAKEN: dict[str, dict[str, Any]] = {
    "limit acked": {},
    "limit not awaited": {"await_venue_ack": False},
    "sell, quantity with a scale": {
        "side": types_pb2.SIDE_SELL,
        "quantity": types_pb2.Decimal(mantissa=25000, scale=1),
        "limit_price": types_pb2.Decimal(mantissa=200_000, scale=5),  # far above the market
    },
    "limit price at a coarser scale": {"limit_price": types_pb2.Decimal(mantissa=1, scale=0)},
    "good till cancel on a named venue": {
        "time_in_force": ex.TIME_IN_FORCE_GTC,
        "venue": "PAPER",
    },
    # Not awaited: the venue's NEW and CANCELED come back together, and which
    # of them an awaiting call sees is a race on either path.
    "immediate or cancel": {"time_in_force": ex.TIME_IN_FORCE_IOC, "await_venue_ack": False},
    "market, not awaited": {
        "order_type": ex.ORDER_TYPE_MARKET,
        "limit_price": None,
        "await_venue_ack": False,
    },
    "over the maximum quantity (risk reject)": {"quantity": to_decimal("20000000")},
    "with an account and a strategy": {"account": "acct-1", "strategy_id": "s1"},
}


@pytest.mark.parametrize("case", list(TAKEN))
def test_the_gateway_answers_as_the_service(
    paper: ThreadedServer,
    stubs: tuple[ExecutionServiceStub, ExecutionServiceStub],
    case: str,
) -> None:
    direct, native = stubs
    slug = "".join(ch for ch in case if ch.isalnum())[:40]
    before = _stats(paper)["native"]
    theirs = direct.SubmitOrder(_request(f"py-{slug}", **TAKEN[case]), timeout=10).order
    ours = native.SubmitOrder(_request(f"gw-{slug}", **TAKEN[case]), timeout=10).order
    assert _stats(paper)["native"] == before + 1, "the gateway did not answer it itself"
    assert ours.client_order_id == f"gw-{slug}"
    assert int(ours.order_id) > int(theirs.order_id)
    assert _comparable(ours) == _comparable(theirs)


def test_the_kill_switch_reaches_native_orders(
    paper: ThreadedServer, stubs: tuple[ExecutionServiceStub, ExecutionServiceStub]
) -> None:
    direct, native = stubs
    engaged = ex.SetKillSwitchRequest(engaged=True, reason="gateway test", operator="pytest")
    native.SetKillSwitch(engaged, timeout=10)  # passed through to the service
    try:
        ours = native.SubmitOrder(_request("gw-killed"), timeout=10).order
        theirs = direct.SubmitOrder(_request("py-killed"), timeout=10).order
    finally:
        direct.SetKillSwitch(
            ex.SetKillSwitchRequest(engaged=False, reason="gateway test", operator="pytest"),
            timeout=10,
        )
    assert ours.status == ex.ORDER_STATUS_REJECTED
    assert ours.reject_reason == ex.REJECT_REASON_KILL_SWITCH
    assert _comparable(ours) == _comparable(theirs)


# Requests the gateway leaves to the service, with the reason it counts.
LEFT: dict[str, tuple[str, dict[str, Any]]] = {
    "no client order id": ("invalid", {"client_order_id": ""}),
    "space in the client order id": ("invalid", {"client_order_id": "a b"}),
    "no side": ("invalid", {"side": types_pb2.SIDE_UNSPECIFIED}),
    "zero quantity": ("invalid", {"quantity": to_decimal("0")}),
    "scale out of range": ("invalid", {"quantity": types_pb2.Decimal(mantissa=1, scale=40)}),
    "market order with a price": ("invalid", {"order_type": ex.ORDER_TYPE_MARKET}),
    "limit order without a price": ("invalid", {"limit_price": None}),
    "stop order": (
        "unsupported",
        {"order_type": ex.ORDER_TYPE_STOP, "stop_price": to_decimal("1.2"), "limit_price": None},
    ),
    "unknown venue": ("unknown_venue", {"venue": "NOWHERE"}),
    "unknown instrument": (
        "unknown_instrument",
        {"instrument": types_pb2.InstrumentId(symbol="EUR/USD", venue="FXCM")},
    ),
    "too many decimals": ("precision", {"limit_price": to_decimal("1.123456")}),
}


@pytest.mark.parametrize("case", list(LEFT))
def test_requests_it_does_not_take_get_the_services_answer(
    paper: ThreadedServer,
    stubs: tuple[ExecutionServiceStub, ExecutionServiceStub],
    case: str,
) -> None:
    reason, fields = LEFT[case]
    slug = "".join(ch for ch in case if ch.isalnum())[:40]
    _refused_alike(paper, stubs, "SubmitOrder", _request(f"left-{slug}", **fields), reason)


def _refused_alike(
    paper: ThreadedServer,
    stubs: tuple[ExecutionServiceStub, ExecutionServiceStub],
    method: str,
    request: Any,
    reason: str,
) -> None:
    """`request` refused by the service's port and, passed on with `reason` counted,
    through the gateway: the same code, details and rich details."""
    direct, native = stubs
    before = _stats(paper)["forwarded"][reason]
    with pytest.raises(grpc.RpcError) as theirs:
        getattr(direct, method)(request, timeout=10)
    with pytest.raises(grpc.RpcError) as ours:
        getattr(native, method)(request, timeout=10)
    assert _stats(paper)["forwarded"][reason] == before + 1
    assert ours.value.code() == theirs.value.code() != grpc.StatusCode.OK
    assert ours.value.details() == theirs.value.details()
    assert _rich_details(ours.value) == _rich_details(theirs.value)


def _rich_details(err: grpc.RpcError) -> bytes | None:
    """The google.rpc.Status in the trailers (BadRequest and the like)."""
    trailers: Any = err.trailing_metadata() or ()
    found: bytes | None = dict(trailers).get("grpc-status-details-bin")
    return found


def test_a_retry_is_the_same_order_through_either_port(
    paper: ThreadedServer, stubs: tuple[ExecutionServiceStub, ExecutionServiceStub]
) -> None:
    direct, native = stubs
    first = native.SubmitOrder(_request("gw-retry"), timeout=10).order
    known = _stats(paper)["forwarded"]["known_client_order_id"]
    again = native.SubmitOrder(_request("gw-retry"), timeout=10).order
    assert _stats(paper)["forwarded"]["known_client_order_id"] == known + 1
    via_service = direct.SubmitOrder(_request("gw-retry"), timeout=10).order
    assert again.order_id == via_service.order_id == first.order_id


def _settled(stub: ExecutionServiceStub, order_id: str, quantity: int, status: int) -> ex.Order:
    """The order once the venue has answered its last change (polled through GetOrders)."""
    for _ in range(500):
        found = {o.order_id: o for o in stub.GetOrders(ex.GetOrdersRequest(), timeout=10).orders}
        order = found.get(order_id)
        if order is not None and order.quantity.mantissa == quantity and order.status == status:
            return order
        time.sleep(0.01)
    raise AssertionError(f"order {order_id} never settled: {found.get(order_id)}")


def test_replace_and_cancel_are_answered_as_the_service_answers(
    paper: ThreadedServer, stubs: tuple[ExecutionServiceStub, ExecutionServiceStub]
) -> None:
    direct, native = stubs
    ours = native.SubmitOrder(_request("gw-change"), timeout=10).order
    theirs = direct.SubmitOrder(_request("py-change"), timeout=10).order
    before = _stats(paper)["native"]
    replaced = {}
    for name, stub, order in (("gw", native, ours), ("py", direct, theirs)):
        replaced[name] = stub.ReplaceOrder(
            ex.ReplaceOrderRequest(
                order_id=order.order_id,
                new_client_order_id=f"{name}-change-r",
                quantity=types_pb2.Decimal(mantissa=2, scale=-3),  # 2,000
            ),
            timeout=10,
        ).order
    assert _stats(paper)["native"] == before + 1, "the gateway did not answer the replace"
    assert replaced["gw"].order_id == ours.order_id
    assert _comparable(replaced["gw"]) == _comparable(replaced["py"])
    for order in (ours, theirs):
        _settled(direct, order.order_id, 2000, ex.ORDER_STATUS_NEW)
    canceled = {
        name: stub.CancelOrder(ex.CancelOrderRequest(order_id=order.order_id), timeout=10).order
        for name, stub, order in (("gw", native, ours), ("py", direct, theirs))
    }
    assert _stats(paper)["native"] == before + 2, "the gateway did not answer the cancel"
    assert _comparable(canceled["gw"]) == _comparable(canceled["py"])
    for order in (ours, theirs):
        _settled(direct, order.order_id, 2000, ex.ORDER_STATUS_CANCELED)


# Changes the gateway leaves to the service, with the reason it counts.
LEFT_CHANGES: dict[str, tuple[str, str, Any]] = {
    "cancel of an unknown order": ("unknown_order", "CancelOrder", {"order_id": "987654321"}),
    "cancel with a bad order id": ("invalid", "CancelOrder", {"order_id": "12a"}),
    "cancel without an order": ("by_client_order_id", "CancelOrder", {}),
    "replace without a new client order id": (
        "invalid",
        "ReplaceOrder",
        {"order_id": "1", "new_client_order_id": ""},
    ),
    "replace of an unknown order": (
        "unknown_order",
        "ReplaceOrder",
        {"order_id": "987654321", "new_client_order_id": "x-1"},
    ),
}


@pytest.mark.parametrize("case", list(LEFT_CHANGES))
def test_changes_it_does_not_take_get_the_services_answer(
    paper: ThreadedServer,
    stubs: tuple[ExecutionServiceStub, ExecutionServiceStub],
    case: str,
) -> None:
    reason, method, fields = LEFT_CHANGES[case]
    request = (ex.CancelOrderRequest if method == "CancelOrder" else ex.ReplaceOrderRequest)(
        **fields
    )
    _refused_alike(paper, stubs, method, request, reason)


def test_a_cancel_by_client_order_id_goes_through_the_service(
    paper: ThreadedServer, stubs: tuple[ExecutionServiceStub, ExecutionServiceStub]
) -> None:
    _, native = stubs
    order = native.SubmitOrder(_request("gw-cancel-by-clid"), timeout=10).order
    before = _stats(paper)["forwarded"]["by_client_order_id"]
    pending = native.CancelOrder(
        ex.CancelOrderRequest(client_order_id="gw-cancel-by-clid"), timeout=10
    ).order
    assert pending.order_id == order.order_id
    assert _stats(paper)["forwarded"]["by_client_order_id"] == before + 1


def test_other_calls_and_streams_pass_through(
    paper: ThreadedServer, stubs: tuple[ExecutionServiceStub, ExecutionServiceStub]
) -> None:
    _, native = stubs
    stream = native.StreamExecutionReports(
        ex.StreamExecutionReportsRequest(from_sequence=1), timeout=20
    )
    order = native.SubmitOrder(_request("gw-streamed", await_venue_ack=False), timeout=10).order
    for message in stream:  # a server stream through the gateway
        if message.report.order.order_id == order.order_id:
            assert message.report.exec_type == ex.EXEC_TYPE_NEW
            break
    stream.cancel()
    listed = native.GetOrders(ex.GetOrdersRequest(), timeout=10).orders
    assert order.order_id in {o.order_id for o in listed}
    assert _stats(paper)["forwarded"]["other_method"] >= 2


def test_an_oversized_request_is_refused_by_the_gateway(
    paper: ThreadedServer, stubs: tuple[ExecutionServiceStub, ExecutionServiceStub]
) -> None:
    _, native = stubs
    refused = _stats(paper)["refused"]
    with pytest.raises(grpc.RpcError) as err:
        native.SubmitOrder(_request("gw-huge", strategy_id="x" * MAX_MESSAGE_BYTES), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"{MAX_MESSAGE_BYTES} bytes" in (err.value.details() or "")
    assert _stats(paper)["refused"] == refused + 1
    # The connection and the gateway are still fine.
    assert native.SubmitOrder(_request("gw-after-huge"), timeout=10).order.order_id


def test_a_service_that_does_not_answer_is_unavailable_not_a_hang(paper: ThreadedServer) -> None:
    dead = free_port()  # nothing listens on it
    servicer = _servicer(paper)
    gateway = engine.OrderGateway(
        servicer.engine,
        [(s.symbol, s.venue, s.price_scale, s.size_scale) for s in servicer.specs.values()],
        list(servicer.venues),
        ("127.0.0.1", dead),
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = ExecutionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.GetOrders(ex.GetOrdersRequest(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "did not answer" in (err.value.details() or "")
            # Orders are still taken: they never needed the service.
            order = stub.SubmitOrder(_request("gw-alone"), timeout=10).order
            assert order.status == ex.ORDER_STATUS_NEW
        stats = gateway.stats()
        assert stats["forward_failures"] == 1
        assert stats["native"] == 1
    finally:
        gateway.stop()
        gateway.stop()  # idempotent


def test_the_client_sends_execution_calls_to_the_gateway(paper: ThreadedServer) -> None:
    gateway = f"127.0.0.1:{_servicer(paper).gateway.port}"
    before = _stats(paper)
    with NexusClient(paper.target, execution_target=gateway, timeout_s=10) as client:
        order = client.execution.SubmitOrder(_request("client-gw")).order
        assert order.status == ex.ORDER_STATUS_NEW
        orders = client.execution.GetOrders(ex.GetOrdersRequest()).orders
        assert order.order_id in {o.order_id for o in orders}
        assert client.health() == "SERVING"  # the other services on the main port
    after = _stats(paper)
    assert after["native"] == before["native"] + 1
    assert after["forwarded"]["other_method"] == before["forwarded"]["other_method"] + 1


def test_the_gateway_is_on_the_metrics(
    paper: ThreadedServer, stubs: tuple[ExecutionServiceStub, ExecutionServiceStub]
) -> None:
    _, native = stubs
    native.SubmitOrder(_request("gw-metrics"), timeout=10)
    families = {f.name: f for f in _servicer(paper).metrics()}
    (native_total,) = families["nexus_order_gateway_native_total"].samples
    assert native_total[1] >= 1
    forwarded = families["nexus_order_gateway_forwarded_total"].samples
    reasons = {labels["reason"] for labels, _ in forwarded}
    assert {"invalid", "other_method", "known_client_order_id"} <= reasons


def test_bad_gateway_arguments_are_refused_with_a_reason(paper: ThreadedServer) -> None:
    servicer = _servicer(paper)
    with pytest.raises(ValueError, match="worker_threads"):
        engine.OrderGateway(servicer.engine, [], [], ("127.0.0.1", 1), worker_threads=0)
    with pytest.raises(ValueError, match="ack_wait_s"):
        engine.OrderGateway(servicer.engine, [], [], ("127.0.0.1", 1), ack_wait_s=-1.0)
    with pytest.raises(ValueError, match="scales"):
        engine.OrderGateway(servicer.engine, [("X", "Y", 19, 0)], [], ("127.0.0.1", 1))
    port = servicer.gateway.port
    with pytest.raises(OSError, match="cannot listen"):
        engine.OrderGateway(servicer.engine, [], [], ("127.0.0.1", 1), port=port)
