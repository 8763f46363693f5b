"""Orders over gRPC through FIX to the paper venue (a simulator) priced by real quotes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from nexus.common.v1 import types_pb2
from nexus.config import ServiceName, Settings, load_settings
from nexus.execution.v1 import execution_pb2 as ex
from nexus.metrics import render
from nexus.services.execution.servicer import ExecutionServicer
from nexus_client import NexusClient, from_decimal, to_decimal
from tests.conftest import ThreadedServer

pytestmark = pytest.mark.integration

EURUSD = types_pb2.InstrumentId(symbol="EUR/USD", venue="OANDA")
TICK = Decimal("0.00001")


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    settings = load_settings(
        overrides={
            "server": {"port": 0, "grace_period_s": 0.5, "metrics_port": None},
            "data_dir": str(tmp_path_factory.mktemp("paper")),
            "services": "hub,marketdata,execution",
            "execution": {
                "replay_speed": 600.0,
                "max_order_quantity": 5_000_000,
                "algo_slice_s": 0.25,
            },
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
        order_type=kw.pop("order_type", ex.ORDER_TYPE_MARKET),  # type: ignore[arg-type]
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
    sessions = client.execution.GetSessions(ex.GetSessionsRequest()).sessions
    assert [s.venue for s in sessions] == ["PAPER", "PAPER-SLOW"]
    assert [s.session_id for s in sessions] == ["FIX.4.4:NEXUS->PAPER", "FIX.4.4:NEXUS->PAPER-SLOW"]
    assert all(s.simulated and s.state == ex.SESSION_STATE_ACTIVE for s in sessions)
    assert [(s.transport_failures, s.last_transport_failure) for s in sessions] == [(0, "")] * 2
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


# -- venue selection ------------------------------------------------------


def test_orders_route_to_the_cheaper_venue_or_the_one_named(client: NexusClient) -> None:
    # PAPER: 1 bp, no latency; PAPER-SLOW: no fee, 20 ms (the defaults). At
    # 0.1 bp per millisecond the slow venue costs about 2 bp, so PAPER wins.
    chosen = client.execution.SubmitOrder(_order("route-1", "1000")).order
    assert chosen.venue == "PAPER"
    named = client.execution.SubmitOrder(_order("route-2", "1000", venue="PAPER-SLOW")).order
    assert named.venue == "PAPER-SLOW"
    filled = _wait_status(client, named.order_id, ex.ORDER_STATUS_FILLED)
    assert filled.venue == "PAPER-SLOW"
    with pytest.raises(grpc.RpcError) as info:
        client.execution.SubmitOrder(_order("route-3", "1000", venue="NYSE"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "PAPER-SLOW" in str(info.value.details())


def test_submit_can_wait_for_the_venues_answer(client: NexusClient) -> None:
    # PAPER-SLOW answers after 20 ms: without waiting the call returns before the
    # venue has seen the order; with await_venue_ack it returns the venue's answer.
    sent = client.execution.SubmitOrder(_order("ack-0", "1000", venue="PAPER-SLOW")).order
    assert sent.status == ex.ORDER_STATUS_PENDING_NEW
    started = time.monotonic()
    filled = client.execution.SubmitOrder(
        _order("ack-1", "1000", venue="PAPER-SLOW", await_venue_ack=True)
    ).order
    assert time.monotonic() - started >= 0.02
    # The venue's first answer: New (its fill follows in a report of its own).
    assert filled.status in (ex.ORDER_STATUS_NEW, ex.ORDER_STATUS_FILLED)
    filled = _wait_status(client, filled.order_id, ex.ORDER_STATUS_FILLED)
    assert from_decimal(filled.filled_quantity) == 1000
    resting = client.execution.SubmitOrder(
        _order(
            "ack-2",
            "1000",
            order_type=ex.ORDER_TYPE_LIMIT,
            # 0.5% below the market (within the 1% collar): rests.
            limit_price=to_decimal(
                str((from_decimal(filled.average_price) * Decimal("0.995")).quantize(TICK))
            ),
            await_venue_ack=True,
        )
    ).order
    assert resting.status == ex.ORDER_STATUS_NEW
    client.execution.CancelOrder(ex.CancelOrderRequest(order_id=resting.order_id))
    # A refusal by the pre-trade checks is answered at once, without waiting.
    refused = client.execution.SubmitOrder(
        _order("ack-3", "900000000", await_venue_ack=True), timeout=10
    ).order
    assert refused.status == ex.ORDER_STATUS_REJECTED


# -- algos ------------------------------------------------------------------


def _algo(
    client_id: str, kind: int, quantity: str, seconds: float, **kw: object
) -> ex.ExecuteAlgoRequest:
    return ex.ExecuteAlgoRequest(
        client_algo_id=client_id,
        kind=kind,  # type: ignore[arg-type]
        instrument=EURUSD,
        side=types_pb2.SIDE_BUY,
        quantity=to_decimal(quantity),
        window=types_pb2.TimeRange(end_ns=time.time_ns() + int(seconds * 1e9)),
        **kw,  # type: ignore[arg-type]
    )


def _wait_algo(client: NexusClient, algo_id: str, timeout_s: float = 20) -> ex.AlgoExecution:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        execution = client.execution.GetAlgoExecution(
            ex.GetAlgoExecutionRequest(algo_id=algo_id)
        ).execution
        if execution.status != ex.ALGO_STATUS_RUNNING:
            return execution
        time.sleep(0.05)
    raise AssertionError(f"algo {algo_id} still running: {execution}")


def test_twap_slices_the_parent_and_reports_its_costs(client: NexusClient) -> None:
    request = _algo(
        "twap-1", ex.ALGO_KIND_TWAP, "400000", 2.0, twap=ex.TwapParams(slices=4), venues=["PAPER"]
    )
    started = client.execution.ExecuteAlgo(request).execution
    assert started.status == ex.ALGO_STATUS_RUNNING
    # The idempotency key: a retry returns the same parent.
    again = client.execution.ExecuteAlgo(request).execution
    assert again.algo_id == started.algo_id
    done = _wait_algo(client, started.algo_id)
    assert done.status == ex.ALGO_STATUS_COMPLETED, done.error.message
    assert from_decimal(done.filled_quantity) == Decimal(400000)
    children = list(done.child_orders)
    assert [from_decimal(c.quantity) for c in children] == [Decimal(100000)] * 4
    assert all(c.algo_id == done.algo_id and c.venue == "PAPER" for c in children)
    assert all(c.status == ex.ORDER_STATUS_FILLED for c in children)
    tca = done.tca
    assert tca.fill_rate == 1.0
    # The average price is the fill-weighted mean of the children's averages.
    notional = sum(
        (
            Decimal(from_decimal(c.average_price)) * from_decimal(c.filled_quantity)
            for c in children
        ),
        Decimal(0),
    )
    assert abs(from_decimal(tca.average_price) - notional / 400000) < Decimal("0.000001")
    arrival = from_decimal(tca.arrival_price)
    expected_bps = (from_decimal(tca.average_price) - arrival) / arrival * 10_000
    assert abs(Decimal(tca.slippage_bps) - expected_bps) < Decimal("0.01")
    assert abs(tca.slippage_bps) < 100  # EUR/USD does not move 1% in two seconds of replay
    # PAPER charges 1 bp of each fill's notional, rounded per fill to the price scale.
    assert abs(from_decimal(tca.fees) - notional / 10_000) <= Decimal("0.00001") * 4
    assert from_decimal(tca.market_vwap) > 0


def test_implementation_shortfall_trades_faster_at_the_start(client: NexusClient) -> None:
    request = _algo(
        "is-1",
        ex.ALGO_KIND_IMPLEMENTATION_SHORTFALL,
        "500000",
        2.0,
        implementation_shortfall=ex.ImplementationShortfallParams(
            risk_aversion=50.0, temporary_impact=1e-6, permanent_impact=0.0
        ),
    )
    done = _wait_algo(client, client.execution.ExecuteAlgo(request).execution.algo_id)
    assert done.status == ex.ALGO_STATUS_COMPLETED, done.error.message
    sizes = [from_decimal(c.quantity) for c in done.child_orders]
    assert sum(sizes) == 500000
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > sizes[-1]


def test_vwap_runs_on_the_stored_profile(client: NexusClient) -> None:
    request = _algo("vwap-1", ex.ALGO_KIND_VWAP, "300000", 1.5, vwap=ex.VwapParams(profile_days=3))
    done = _wait_algo(client, client.execution.ExecuteAlgo(request).execution.algo_id)
    assert done.status == ex.ALGO_STATUS_COMPLETED, done.error.message
    assert sum(from_decimal(c.filled_quantity) for c in done.child_orders) == 300000


def test_limit_price_beyond_the_market_leaves_the_parent_unfilled(client: NexusClient) -> None:
    request = _algo(
        "limit-1",
        ex.ALGO_KIND_TWAP,
        "100000",
        1.0,
        twap=ex.TwapParams(slices=2),
        limit_price=to_decimal("0.5"),  # EUR/USD near 1.39: never reachable for a buy
    )
    done = _wait_algo(client, client.execution.ExecuteAlgo(request).execution.algo_id)
    assert done.status == ex.ALGO_STATUS_EXPIRED
    assert not done.child_orders
    assert done.tca.fill_rate == 0.0


def test_cancel_and_kill_switch_stop_a_parent(client: NexusClient) -> None:
    slow = _algo("cancel-1", ex.ALGO_KIND_TWAP, "1000000", 60.0, twap=ex.TwapParams(slices=10))
    started = client.execution.ExecuteAlgo(slow).execution
    cancelled = client.execution.CancelAlgo(ex.CancelAlgoRequest(algo_id=started.algo_id)).execution
    assert cancelled.status == ex.ALGO_STATUS_CANCELED
    count = len(cancelled.child_orders)
    time.sleep(0.3)
    later = client.execution.GetAlgoExecution(ex.GetAlgoExecutionRequest(algo_id=started.algo_id))
    assert len(later.execution.child_orders) == count  # nothing sent after the cancel

    other = client.execution.ExecuteAlgo(
        _algo("kill-1", ex.ALGO_KIND_TWAP, "1000000", 60.0, twap=ex.TwapParams(slices=10))
    ).execution
    client.execution.SetKillSwitch(
        ex.SetKillSwitchRequest(engaged=True, reason="algo test", operator="pytest")
    )
    try:
        stopped = _wait_algo(client, other.algo_id, timeout_s=5)
        assert stopped.status == ex.ALGO_STATUS_CANCELED
        assert "kill switch" in stopped.error.message
    finally:
        client.execution.SetKillSwitch(
            ex.SetKillSwitchRequest(engaged=False, reason="algo test over", operator="pytest")
        )


def test_bad_algo_requests_name_their_fields(client: NexusClient) -> None:
    cases = {
        "kind": _algo("bad-1", ex.ALGO_KIND_UNSPECIFIED, "1000", 5.0),
        "window.end_ns": _algo("bad-2", ex.ALGO_KIND_TWAP, "1000", -5.0),
        "vwap": _algo("bad-3", ex.ALGO_KIND_TWAP, "1000", 5.0, vwap=ex.VwapParams()),
        "venues[0]": _algo("bad-4", ex.ALGO_KIND_TWAP, "1000", 5.0, venues=["NYSE"]),
        "twap.jitter": _algo(
            "bad-5", ex.ALGO_KIND_TWAP, "1000", 5.0, twap=ex.TwapParams(jitter=1.5)
        ),
        "quantity": _algo("bad-6", ex.ALGO_KIND_TWAP, "0", 5.0),
    }
    for field, request in cases.items():
        with pytest.raises(grpc.RpcError) as info:
            client.execution.ExecuteAlgo(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in str(info.value.details()), (field, info.value.details())
    with pytest.raises(grpc.RpcError) as info:
        client.execution.GetAlgoExecution(ex.GetAlgoExecutionRequest(algo_id="A999"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_fix_sequence_numbers_resume_after_a_restart(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={
            "server": {"port": 0, "grace_period_s": 0.2, "metrics_port": None},
            "data_dir": str(tmp_path),
            "services": "hub,execution",
        }
    )
    seen = []
    for _ in range(2):
        server = ThreadedServer(settings)
        try:
            with NexusClient(server.target, timeout_s=10) as client:
                sessions = client.execution.GetSessions(ex.GetSessionsRequest()).sessions
                seen.append({s.venue: s.next_sender_seq for s in sessions})
        finally:
            server.stop()
    # Logon (1) at the first start; the Logout at the stop and the next Logon follow on.
    assert all(seq >= 2 for seq in seen[0].values())
    assert all(seen[1][venue] > seen[0][venue] for venue in seen[0])
    assert sorted(p.name for p in (tmp_path / "fix").iterdir())[:2] == [
        "FIX.4.4-NEXUS-PAPER-SLOW.body",
        "FIX.4.4-NEXUS-PAPER-SLOW.seqnums",
    ]


def _serve_with_quotes(settings: Settings) -> ThreadedServer:
    server = ThreadedServer(settings)
    servicer = server.server.context.hosted[ServiceName.EXECUTION][1]
    deadline = time.monotonic() + 30
    while getattr(servicer, "quotes_fed", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return server


def _positions(client: NexusClient) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    return [
        (
            p.instrument.symbol,
            from_decimal(p.quantity),
            from_decimal(p.average_price),
            from_decimal(p.realized_pnl),
        )
        for p in client.execution.GetPositions(ex.GetPositionsRequest(include_flat=True)).positions
    ]


def test_orders_positions_and_algos_survive_a_restart(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={
            "server": {"port": 0, "grace_period_s": 0.2, "metrics_port": None},
            "data_dir": str(tmp_path),
            "services": "hub,marketdata,execution",
            "execution": {"replay_speed": 600.0, "algo_slice_s": 0.25},
        }
    )
    server = _serve_with_quotes(settings)
    try:
        with NexusClient(server.target, timeout_s=10) as client:
            bought = client.execution.SubmitOrder(_order("keep-1", "100000")).order
            bought = _wait_status(client, bought.order_id, ex.ORDER_STATUS_FILLED)
            sell = _order("keep-2", "40000")
            sell.side = types_pb2.SIDE_SELL
            sold = client.execution.SubmitOrder(sell).order
            _wait_status(client, sold.order_id, ex.ORDER_STATUS_FILLED)
            # Within the collar, below the market: rests at the paper venue.
            below = from_decimal(bought.average_price) * Decimal("0.995")
            rest = _order(
                "keep-3",
                "10000",
                limit_price=to_decimal(str(below.quantize(Decimal("0.00001")))),
                time_in_force=ex.TIME_IN_FORCE_GTC,
            )
            rest.order_type = ex.ORDER_TYPE_LIMIT
            resting = client.execution.SubmitOrder(rest).order
            _wait_status(client, resting.order_id, ex.ORDER_STATUS_NEW)
            done = client.execution.ExecuteAlgo(
                _algo("keep-twap", ex.ALGO_KIND_TWAP, "20000", 1.0, twap=ex.TwapParams(slices=2))
            ).execution
            done = _wait_algo(client, done.algo_id)
            assert done.status == ex.ALGO_STATUS_COMPLETED, done.error.message
            waiting = client.execution.ExecuteAlgo(
                _algo(
                    "keep-wait",
                    ex.ALGO_KIND_TWAP,
                    "100000",
                    120.0,
                    twap=ex.TwapParams(slices=4),
                    limit_price=to_decimal("0.5"),  # never reachable: no children yet
                )
            ).execution
            assert waiting.status == ex.ALGO_STATUS_RUNNING
            orders = list(client.execution.GetOrders(ex.GetOrdersRequest()).orders)
            positions = _positions(client)
    finally:
        server.stop()
    assert (tmp_path / "orders" / "orders.journal").stat().st_size > 0

    server = _serve_with_quotes(settings)
    try:
        with NexusClient(server.target, timeout_s=10) as client:
            assert _positions(client) == positions
            listed = client.execution.GetOrders(ex.GetOrdersRequest()).orders
            after = {o.order_id: o for o in listed}
            assert set(after) == {o.order_id for o in orders}
            for before in orders:
                if before.order_id != resting.order_id:
                    assert after[before.order_id] == before
            # The paper venue restarted empty: the resting order is gone, and says why.
            gone = _wait_status(client, resting.order_id, ex.ORDER_STATUS_CANCELED)
            assert "does not know the order" in gone.text
            # SubmitOrder stays idempotent on client_order_id across the restart.
            again = client.execution.SubmitOrder(_order("keep-1", "100000")).order
            assert again.order_id == bought.order_id
            # Algo parents: the finished one answers as it was; the running one resumed.
            finished = client.execution.GetAlgoExecution(
                ex.GetAlgoExecutionRequest(algo_id=done.algo_id)
            ).execution
            assert finished.status == ex.ALGO_STATUS_COMPLETED
            assert finished.tca == done.tca
            assert [c.order_id for c in finished.child_orders] == [
                c.order_id for c in done.child_orders
            ]
            assert all(c.algo_id == done.algo_id for c in finished.child_orders)
            resumed = client.execution.GetAlgoExecution(
                ex.GetAlgoExecutionRequest(algo_id=waiting.algo_id)
            ).execution
            assert resumed.status == ex.ALGO_STATUS_RUNNING
            assert resumed.request.client_algo_id == "keep-wait"
            retry = client.execution.ExecuteAlgo(
                _algo("keep-wait", ex.ALGO_KIND_TWAP, "100000", 120.0)
            ).execution
            assert retry.algo_id == waiting.algo_id
            cancelled = client.execution.CancelAlgo(
                ex.CancelAlgoRequest(algo_id=waiting.algo_id)
            ).execution
            assert cancelled.status == ex.ALGO_STATUS_CANCELED
    finally:
        server.stop()


def test_metrics_expose_the_sessions_and_venues(client: NexusClient, paper: ThreadedServer) -> None:
    servicer = paper.server.context.hosted[ServiceName.EXECUTION][1]
    assert isinstance(servicer, ExecutionServicer)
    client.execution.SubmitOrder(_order("metrics-1", "1000", venue="PAPER-SLOW"))
    text = render(servicer.metrics())
    sessions = client.execution.GetSessions(ex.GetSessionsRequest()).sessions
    for s in sessions:
        assert f'nexus_fix_session_logged_on{{venue="{s.venue}"}} 1' in text
        assert f'nexus_fix_transport_failures_total{{venue="{s.venue}"}} 0' in text
        assert f'nexus_fix_next_sender_seq{{venue="{s.venue}"}} {s.next_sender_seq}' in text
    routed = re.search(r'nexus_execution_orders_routed_total\{venue="PAPER-SLOW"\} (\d+)', text)
    assert routed is not None
    assert int(routed.group(1)) >= 1
