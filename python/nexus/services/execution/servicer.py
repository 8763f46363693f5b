"""gRPC transport of execution (`nexus.execution.v1.ExecutionService`).

In paper mode (the embedded default) the service starts the Rust execution
engine: the order manager with its pre-trade checks, and for each configured
paper venue — a FIX acceptor that simulates a broker, with its own fees and
latency — a FIX 4.4 initiator; the venues are priced by stored real quotes
replayed at `execution.replay_speed`. Every order goes through a FIX session,
to the venue it names or the one venue selection picks; fills come back as
ExecutionReports and move the positions. Algo orders (TWAP, VWAP,
implementation shortfall; `algos.py`) slice a parent into child orders that
take the same path, with transaction-cost analysis per parent.

With `execution.persist_orders` (the default) orders, positions and the report
log survive a restart (the engine's order journal in `<data_dir>/orders`,
reconciled with the venues once they log on), and so do the algo parents
(`algos.json` beside it): a running parent is suspended at stop and resumed at
start.
"""

from __future__ import annotations

import asyncio
import base64
import calendar as _calendar
import collections
import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import grpc

from nexus import engine
from nexus.common.v1 import types_pb2
from nexus.execution.v1 import execution_pb2 as ex
from nexus.metrics import MetricFamily
from nexus.rpc import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unimplemented,
)
from nexus.services.context import ServiceContext
from nexus.services.execution import algos
from nexus.services.marketdata.instruments import DataKind, InstrumentSpec, find_instrument
from nexus.services.marketdata.store import TickStore
from nexus.services.validation import Violations

__all__ = ["ExecutionServicer", "validate_submit_order"]

log = logging.getLogger("nexus.execution")

_NEEDS_LIMIT = (ex.ORDER_TYPE_LIMIT, ex.ORDER_TYPE_STOP_LIMIT)
# Longest a SubmitOrder with await_venue_ack waits for the venue's answer.
_ACK_WAIT_S = 5.0
# How long SubmitOrder with await_venue_ack blocks the event loop for the answer
# before it waits for it asynchronously.
_ACK_SPIN_S = 0.0003
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - compared, not bound
_NEEDS_STOP = (ex.ORDER_TYPE_STOP, ex.ORDER_TYPE_STOP_LIMIT)
_STATUS = {
    "pending_new": ex.ORDER_STATUS_PENDING_NEW,
    "new": ex.ORDER_STATUS_NEW,
    "partially_filled": ex.ORDER_STATUS_PARTIALLY_FILLED,
    "filled": ex.ORDER_STATUS_FILLED,
    "canceled": ex.ORDER_STATUS_CANCELED,
    "replaced": ex.ORDER_STATUS_REPLACED,
    "rejected": ex.ORDER_STATUS_REJECTED,
    "expired": ex.ORDER_STATUS_EXPIRED,
}
_EXEC_TYPE = {
    "new": ex.EXEC_TYPE_NEW,
    "trade": ex.EXEC_TYPE_TRADE,
    "canceled": ex.EXEC_TYPE_CANCELED,
    "replaced": ex.EXEC_TYPE_REPLACED,
    "rejected": ex.EXEC_TYPE_REJECTED,
    "expired": ex.EXEC_TYPE_EXPIRED,
    "cancel_rejected": ex.EXEC_TYPE_CANCEL_REJECTED,
}
_REJECT = {
    "max_quantity": ex.REJECT_REASON_MAX_QUANTITY,
    "max_notional": ex.REJECT_REASON_MAX_NOTIONAL,
    "price_collar": ex.REJECT_REASON_PRICE_COLLAR,
    "position_limit": ex.REJECT_REASON_POSITION_LIMIT,
    "throttle": ex.REJECT_REASON_THROTTLE,
    "duplicate_order": ex.REJECT_REASON_DUPLICATE_ORDER,
    "kill_switch": ex.REJECT_REASON_KILL_SWITCH,
    "venue": ex.REJECT_REASON_VENUE,
}
_TIF = {
    ex.TIME_IN_FORCE_UNSPECIFIED: "day",
    ex.TIME_IN_FORCE_DAY: "day",
    ex.TIME_IN_FORCE_GTC: "gtc",
    ex.TIME_IN_FORCE_IOC: "ioc",
    ex.TIME_IN_FORCE_FOK: "fok",
}
MAX_PAGE = 1_000
#: Most algo orders running at once; more answer RESOURCE_EXHAUSTED.
MAX_RUNNING_ALGOS = 100
#: Quotes per instrument kept for the volatility of implementation shortfall.
QUOTE_HISTORY = 512
#: Time-of-day bucket of the VWAP volume profile, seconds.
PROFILE_BUCKET_S = 300
_ALGO_KIND = {
    ex.ALGO_KIND_TWAP: algos.AlgoKind.TWAP,
    ex.ALGO_KIND_VWAP: algos.AlgoKind.VWAP,
    ex.ALGO_KIND_IMPLEMENTATION_SHORTFALL: algos.AlgoKind.IMPLEMENTATION_SHORTFALL,
}
_ALGO_PARAMS = {
    ex.ALGO_KIND_TWAP: "twap",
    ex.ALGO_KIND_VWAP: "vwap",
    ex.ALGO_KIND_IMPLEMENTATION_SHORTFALL: "implementation_shortfall",
}
_ALGO_STATUS = {
    algos.AlgoState.RUNNING: ex.ALGO_STATUS_RUNNING,
    algos.AlgoState.COMPLETED: ex.ALGO_STATUS_COMPLETED,
    algos.AlgoState.CANCELED: ex.ALGO_STATUS_CANCELED,
    algos.AlgoState.EXPIRED: ex.ALGO_STATUS_EXPIRED,
    algos.AlgoState.FAILED: ex.ALGO_STATUS_FAILED,
}


def validate_submit_order(request: ex.SubmitOrderRequest) -> None:
    """Raises InvalidArgument naming every malformed field of an order request."""
    v = Violations()
    v.identifier("client_order_id", request.client_order_id)
    v.instrument("instrument", request.instrument, present=request.HasField("instrument"))
    v.enum("side", request.side, types_pb2.Side.DESCRIPTOR)
    v.enum("order_type", request.order_type, ex.OrderType.DESCRIPTOR)
    if request.time_in_force not in ex.TimeInForce.DESCRIPTOR.values_by_number:
        v.add("time_in_force", f"unknown value {request.time_in_force}")
    v.decimal("quantity", request.quantity, present=request.HasField("quantity"), positive=True)
    if request.order_type in _NEEDS_LIMIT:
        v.decimal(
            "limit_price",
            request.limit_price,
            present=request.HasField("limit_price"),
            positive=True,
        )
    elif request.HasField("limit_price"):
        v.add("limit_price", "only limit and stop-limit orders take a limit price")
    if request.order_type in _NEEDS_STOP:
        v.decimal(
            "stop_price", request.stop_price, present=request.HasField("stop_price"), positive=True
        )
    elif request.HasField("stop_price"):
        v.add("stop_price", "only stop and stop-limit orders take a stop price")
    if request.time_in_force == ex.TIME_IN_FORCE_GTD and request.expire_time_ns <= 0:
        v.add("expire_time_ns", "required for TIME_IN_FORCE_GTD")
    v.identifier("account", request.account, required=False)
    v.raise_if_any()


def _mantissa(field: str, value: types_pb2.Decimal, scale: int) -> int:
    """The value as a mantissa at `scale`, refusing extra precision."""
    try:
        exact = Decimal(value.mantissa).scaleb(-value.scale)
        scaled = exact.scaleb(scale)
    except InvalidOperation:
        raise InvalidArgument([(field, "not a number")]) from None
    if scaled != scaled.to_integral_value():
        raise InvalidArgument([(field, f"more than {scale} decimal places for this instrument")])
    return int(scaled)


def _decimal(mantissa: int, scale: int) -> types_pb2.Decimal:
    return types_pb2.Decimal(mantissa=int(mantissa), scale=scale)


class ExecutionServicer:
    """Orders, reports, positions and the kill switch over the Rust execution engine."""

    def __init__(self, context: ServiceContext) -> None:
        self._ctx = context
        self._cfg = context.settings.execution
        self.engine: Any = None
        self.specs: dict[str, InstrumentSpec] = {}
        self._stop = asyncio.Event()
        self._feeder: asyncio.Task[None] | None = None
        self.quotes_fed = 0
        self.gateway: Any = None  # the native order entry, once serving
        self.venues: tuple[str, ...] = ()
        self._quotes: dict[str, collections.deque[algos.Quote]] = {}
        self._algos: dict[str, algos.AlgoOrder] = {}
        self._algo_requests: dict[str, ex.ExecuteAlgoRequest] = {}
        self._algo_by_client_id: dict[str, str] = {}
        self._algo_of_order: dict[int, str] = {}
        self._reports = _ReportSignal()
        self._watcher_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._algo_store: algos.AlgoStore | None = None

    async def start(self) -> None:
        """Starts the engine (paper venue, FIX session, order manager) and the quote replay."""
        for entry in self._cfg.paper_instruments:
            venue, _, symbol = entry.partition(":")
            spec = find_instrument(symbol, venue)
            if spec is None:
                log.error("unknown paper instrument", extra={"instrument": entry})
                continue
            self.specs[spec.symbol] = spec
        instruments = [
            (s.symbol, s.price_scale, s.size_scale, int(s.tick_size.scaleb(s.price_scale)))
            for s in self.specs.values()
        ]
        cfg = self._cfg
        self.engine = await asyncio.to_thread(
            engine.ExecutionEngine,
            instruments,
            max_order_quantity=cfg.max_order_quantity,
            max_position=cfg.max_position,
            collar_bps=cfg.collar_bps,
            max_orders_per_second=cfg.max_orders_per_second,
            venues=[v.engine_entry() for v in cfg.venues],
            latency_cost_bps_per_ms=cfg.latency_cost_bps_per_ms,
            store_dir=self._ctx.settings.data_dir / "fix" if cfg.persist_sessions else None,
            journal_dir=self._orders_dir if cfg.persist_orders else None,
            wait_spin_us=cfg.ack_spin_us,
            busy_poll_us=cfg.busy_poll_us,
            caller_reads_us=cfg.caller_reads_us,
        )
        self.venues = tuple(v.name for v in cfg.venues)
        if not await asyncio.to_thread(self.engine.wait_logged_on, 10.0):
            not_logged_on = [s["venue"] for s in self.engine.sessions() if not s["logged_on"]]
            failures = {
                s["venue"]: s["last_transport_failure"]
                for s in self.engine.sessions()
                if s["last_transport_failure"]
            }
            raise RuntimeError(
                f"the FIX sessions to {', '.join(not_logged_on) or 'the venues'} did not log on"
                + (f"; transport failures: {failures}" if failures else "")
            )
        journal = self.engine.journal()
        if journal is not None:
            log.info(
                "order journal replayed",
                extra={k: journal[k] for k in ("path", "replayed", "notes", "unreconciled")},
            )
        self._feeder = asyncio.create_task(self._feed_quotes())
        if cfg.persist_orders:
            self._algo_store = algos.AlgoStore(self._orders_dir / "algos.json")
            self._restore_algos()
        self._watcher = threading.Thread(
            target=self._reports.watch,
            args=(self.engine, asyncio.get_running_loop(), self._watcher_stop),
            name="nexus-report-watcher",
            daemon=True,
        )
        self._watcher.start()

    @property
    def _orders_dir(self) -> Path:
        return Path(self._ctx.settings.data_dir) / "orders"

    def _save_algos(self) -> None:
        """Writes every parent (the `on_change` of each); a failure is logged,
        the parents run on."""
        if self._algo_store is None:
            return
        records = {}
        for algo_id, algo in self._algos.items():
            record = algo.to_record()
            record["request"] = base64.b64encode(
                self._algo_requests[algo_id].SerializeToString()
            ).decode()
            records[algo_id] = record
        try:
            self._algo_store.save(records)
        except OSError as err:
            log.error("algo orders not saved", extra={"reason": str(err)})

    def _restore_algos(self) -> None:
        """Takes up the parents stored before a restart: the running ones resume
        (or end, if their window passed); the others answer GetAlgoExecution."""
        assert self._algo_store is not None
        now = time.time_ns()
        for algo_id, record in self._algo_store.load().items():
            try:
                request = ex.ExecuteAlgoRequest.FromString(base64.b64decode(record["request"]))
                symbol = record["spec"]["symbol"]
                algo = algos.AlgoOrder.from_record(
                    record,
                    self.engine,
                    quote=functools.partial(self.last_quote, symbol),
                    on_child=functools.partial(self._note_child, algo_id),
                    on_change=self._save_algos,
                )
            except (KeyError, TypeError, ValueError) as err:
                log.error(
                    "stored algo order unreadable, left out",
                    extra={"algo_id": algo_id, "reason": str(err)},
                )
                continue
            self._algos[algo_id] = algo
            self._algo_requests[algo_id] = request
            self._algo_by_client_id[request.client_algo_id] = algo_id
            for child in algo.children:
                self._algo_of_order[child] = algo_id
        for algo in self._algos.values():
            algo.resume(now)
        if self._algos:
            running = sum(a.state is algos.AlgoState.RUNNING for a in self._algos.values())
            log.info("algo orders restored", extra={"algos": len(self._algos), "running": running})

    def _note_child(self, algo_id: str, order_id: int) -> None:
        self._algo_of_order[order_id] = algo_id

    async def serving(self, host: str, port: int) -> None:
        """Once the server listens on `host:port`: starts the native order
        gateway in front of it when `execution.order_gateway_port` is set."""
        if self._cfg.order_gateway_port is None or self.engine is None:
            return
        settings = self._ctx.settings.server
        # A wildcard listen address is reached on loopback.
        upstream = ("127.0.0.1" if host in _WILDCARD_HOSTS else host, port)
        self.gateway = await asyncio.to_thread(
            engine.OrderGateway,
            self.engine,
            [(s.symbol, s.venue, s.price_scale, s.size_scale) for s in self.specs.values()],
            list(self.venues),
            upstream,
            host=host,
            port=self._cfg.order_gateway_port,
            ack_wait_s=_ACK_WAIT_S,
            ack_spin_us=round(_ACK_SPIN_S * 1e6),
            max_message_bytes=settings.max_message_bytes,
            max_concurrent_streams=settings.max_concurrent_streams,
        )
        log.info(
            "native order gateway serving",
            extra={
                "address": f"{host}:{self.gateway.port}",
                "upstream": f"{upstream[0]}:{upstream[1]}",
            },
        )

    async def stop(self) -> None:
        """Stops the order gateway, the algos (suspended to resume after a
        restart when they are persisted, else cancelled) and the quote replay,
        logs out and stops the engine."""
        if self.gateway is not None:
            await asyncio.to_thread(self.gateway.stop)
        for algo in list(self._algos.values()):
            if self._algo_store is not None:
                await algo.suspend()
            else:
                await algo.cancel("the service is stopping")
        self._save_algos()
        self._stop.set()
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeder
        self._watcher_stop.set()
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.join)
        if self.engine is not None:
            await asyncio.to_thread(self.engine.stop)

    async def _feed_quotes(self) -> None:
        """Replays stored quotes into the paper venue on the data's clock, looping."""
        store_dir = self._ctx.settings.marketdata.store_dir or self._ctx.settings.data_dir / "store"
        store = TickStore(Path(store_dir))
        while not self._stop.is_set():
            fed_any = False
            for spec in self.specs.values():
                wall0, data0 = time.monotonic(), None
                for chunk in store.scan(DataKind.QUOTES, spec, 0, 2**62):
                    ok = chunk["flags"] == 0
                    rows = zip(
                        chunk["ts_ns"][ok].tolist(),
                        chunk["bid"][ok].tolist(),
                        chunk["ask"][ok].tolist(),
                        strict=True,
                    )
                    for ts, bid, ask in rows:
                        data0 = ts if data0 is None else data0
                        due = wall0 + (ts - data0) / 1e9 / self._cfg.replay_speed
                        delay = due - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        size = self._cfg.quote_size
                        now = time.time_ns()
                        self.engine.on_quote(spec.symbol, bid, ask, size, size, now)
                        self._on_quote(spec.symbol, algos.Quote(bid, ask, now, size, size))
                        self.quotes_fed += 1
                        fed_any = True
            if not fed_any:
                await asyncio.sleep(1.0)  # nothing stored yet

    def _on_quote(self, symbol: str, quote: algos.Quote) -> None:
        """Keeps the recent quotes of `symbol` and shows the quote to its running algos."""
        history = self._quotes.get(symbol)
        if history is None:
            history = self._quotes[symbol] = collections.deque(maxlen=QUOTE_HISTORY)
        history.append(quote)
        for algo in self._algos.values():
            if algo.spec.symbol == symbol:
                algo.on_quote(quote)

    def last_quote(self, symbol: str) -> algos.Quote | None:
        """The latest quote fed to the venues for `symbol`."""
        history = self._quotes.get(symbol)
        return history[-1] if history else None

    # -- helpers -----------------------------------------------------------

    def _ready(self) -> Any:
        if self.engine is None:
            raise FailedPrecondition("the execution engine is not running")
        return self.engine

    def _order(self, o: dict[str, Any]) -> ex.Order:
        spec = self.specs[o["symbol"]]
        order = ex.Order(
            order_id=str(o["order_id"]),
            client_order_id=o["client_order_id"],
            instrument=types_pb2.InstrumentId(symbol=spec.symbol, venue=spec.venue),
            side=types_pb2.SIDE_BUY if o["side"] == "buy" else types_pb2.SIDE_SELL,
            order_type=ex.ORDER_TYPE_LIMIT if o["order_type"] == "limit" else ex.ORDER_TYPE_MARKET,
            quantity=_decimal(o["quantity"], spec.size_scale),
            status=_STATUS[o["status"]],
            filled_quantity=_decimal(o["filled"], spec.size_scale),
            leaves_quantity=_decimal(o["leaves"], spec.size_scale),
            text=o.get("text") or "",
            venue=o.get("venue") or "",
            algo_id=self._algo_of_order.get(int(o["order_id"]), ""),
        )
        if o.get("limit_price") is not None:
            order.limit_price.CopyFrom(_decimal(o["limit_price"], spec.price_scale))
        if o.get("average_price") is not None:
            order.average_price.CopyFrom(_decimal(o["average_price"], spec.price_scale))
        if o.get("reject_reason"):
            order.reject_reason = _REJECT.get(o["reject_reason"], ex.REJECT_REASON_VENUE)
        return order

    def _find(self, order_id: str, client_order_id: str) -> dict[str, Any]:
        eng = self._ready()
        if order_id:
            if not order_id.isdigit():
                raise InvalidArgument([("order_id", "not an order id this service issued")])
            found = eng.order(int(order_id))
        else:
            found = next((o for o in eng.orders() if o["client_order_id"] == client_order_id), None)
        if found is None:
            raise NotFound(f"no order {order_id or client_order_id}")
        return dict(found)

    # -- orders ------------------------------------------------------------

    async def SubmitOrder(
        self, request: ex.SubmitOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ex.SubmitOrderResponse:
        """Checks an order against the pre-trade limits and sends it to the paper venue."""
        validate_submit_order(request)
        if request.order_type not in (ex.ORDER_TYPE_MARKET, ex.ORDER_TYPE_LIMIT):
            raise Unimplemented("stop orders are not supported by the paper venue yet")
        if request.venue and request.venue not in self.venues:
            raise InvalidArgument(
                [
                    (
                        "venue",
                        f"unknown venue {request.venue!r}; configured: {', '.join(self.venues)}",
                    )
                ]
            )
        spec = self.specs.get(request.instrument.symbol)
        if spec is None or spec.venue != request.instrument.venue:
            raise NotFound(
                f"instrument: {request.instrument.symbol} at {request.instrument.venue} "
                "is not traded by the paper venue"
            )
        quantity = _mantissa("quantity", request.quantity, spec.size_scale)
        limit = (
            _mantissa("limit_price", request.limit_price, spec.price_scale)
            if request.order_type == ex.ORDER_TYPE_LIMIT
            else None
        )
        eng = self._ready()
        # The idempotency key (kept by the engine, so across a restart and for
        # orders the native gateway took): a retry gets the same order.
        existing = eng.order_by_client_id(request.client_order_id)
        if existing is not None and existing["original_client_order_id"] == (
            request.client_order_id
        ):
            return ex.SubmitOrderResponse(order=self._order(existing))
        # Called on the loop, not through a thread: the engine releases the GIL,
        # checks and hands the message to the session's bounded channel.
        submit = functools.partial(
            eng.submit,
            request.client_order_id,
            spec.symbol,
            "buy" if request.side == types_pb2.SIDE_BUY else "sell",
            "limit" if limit is not None else "market",
            quantity,
            limit,
            _TIF.get(request.time_in_force, "day"),
            [request.venue] if request.venue else None,
        )
        logged_before = eng.last_sequence()
        try:
            result = submit()
        except engine.ExecutionError as err:  # session down, engine stopped
            raise FailedPrecondition(str(err)) from None
        except ValueError as err:  # the engine's argument checks (e.g. a reused ClOrdID)
            raise InvalidArgument([("", str(err))]) from None
        if request.await_venue_ack and result["status"] == "pending_new":
            result = await self._venue_answer(eng, result, logged_before, context)
        return ex.SubmitOrderResponse(order=self._order(result))

    async def _venue_answer(
        self,
        eng: Any,
        order: dict[str, Any],
        logged_before: int,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> dict[str, Any]:
        """The order once the venue has answered it (woken by each logged report),
        or as it stands at the call's deadline or after 5 s."""
        remaining = context.time_remaining()
        budget = _ACK_WAIT_S if remaining is None else min(_ACK_WAIT_S, max(remaining, 0.0))
        deadline = time.monotonic() + budget
        seen = logged_before
        # Most venues answer within a few tens of microseconds: a short wait here
        # (the GIL released, the loop held for at most _ACK_SPIN_S) saves the
        # hop through the report watcher thread; slower answers are awaited below.
        eng.wait_report_after(seen, _ACK_SPIN_S)
        while True:
            # Noted before looking: a report logged after the look wakes the wait.
            seen = max(seen, self._reports.latest)
            current: dict[str, Any] | None = eng.order(int(order["order_id"]))
            if current is None or current["status"] != "pending_new":
                return current if current is not None else order
            left = deadline - time.monotonic()
            if left <= 0:
                return current
            await self._reports.wait_beyond(seen, left)

    async def CancelOrder(
        self, request: ex.CancelOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ex.CancelOrderResponse:
        """Sends a cancel for an open order."""
        if not (request.order_id or request.client_order_id):
            raise InvalidArgument([("order_id", "order_id or client_order_id is required")])
        found = self._find(request.order_id, request.client_order_id)
        eng = self._ready()
        try:
            result = await asyncio.to_thread(
                eng.cancel, int(found["order_id"]), f"C-{uuid.uuid4().hex[:12]}"
            )
        except ValueError as err:
            raise FailedPrecondition(str(err)) from None
        return ex.CancelOrderResponse(order=self._order(result))

    async def ReplaceOrder(
        self, request: ex.ReplaceOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ex.ReplaceOrderResponse:
        """Sends a cancel/replace with a new quantity and/or limit price."""
        v = Violations()
        v.identifier("new_client_order_id", request.new_client_order_id)
        if not request.order_id:
            v.add("order_id", "required")
        v.raise_if_any()
        found = self._find(request.order_id, "")
        spec = self.specs[found["symbol"]]
        quantity = (
            _mantissa("quantity", request.quantity, spec.size_scale)
            if request.HasField("quantity")
            else int(found["quantity"])
        )
        limit = (
            _mantissa("limit_price", request.limit_price, spec.price_scale)
            if request.HasField("limit_price")
            else found.get("limit_price")
        )
        eng = self._ready()
        try:
            result = await asyncio.to_thread(
                eng.replace, int(found["order_id"]), request.new_client_order_id, quantity, limit
            )
        except ValueError as err:
            raise FailedPrecondition(str(err)) from None
        return ex.ReplaceOrderResponse(order=self._order(result))

    async def GetOrders(
        self, request: ex.GetOrdersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ex.GetOrdersResponse:
        """Lists orders, newest first, filtered by status and instrument."""
        if request.page.page_size > MAX_PAGE:
            raise InvalidArgument([("page.page_size", f"at most {MAX_PAGE}")])
        orders = [self._order(o) for o in reversed(self._ready().orders())]
        if request.statuses:
            orders = [o for o in orders if o.status in request.statuses]
        if request.HasField("instrument"):
            orders = [o for o in orders if o.instrument == request.instrument]
        start = int(request.page.page_token or 0)
        size = request.page.page_size or 100
        page = orders[start : start + size]
        response = ex.GetOrdersResponse(orders=page)
        if start + size < len(orders):
            response.page.next_page_token = str(start + size)
        return response

    async def GetPositions(
        self, request: ex.GetPositionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ex.GetPositionsResponse:
        """Returns the net position of every instrument traded."""
        positions = []
        for p in self._ready().positions():
            spec = self.specs[p["symbol"]]
            if p["quantity"] == 0 and not request.include_flat:
                continue
            position = ex.Position(
                instrument=types_pb2.InstrumentId(symbol=spec.symbol, venue=spec.venue),
                quantity=_decimal(p["quantity"], spec.size_scale),
                realized_pnl=_decimal(p["realized"], spec.price_scale + spec.size_scale),
                updated_ns=time.time_ns(),
            )
            if p.get("average_price") is not None:
                position.average_price.CopyFrom(_decimal(p["average_price"], spec.price_scale))
            positions.append(position)
        return ex.GetPositionsResponse(positions=positions)

    async def StreamExecutionReports(
        self, request: ex.StreamExecutionReportsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[ex.StreamExecutionReportsResponse]:
        """Replays reports from `from_sequence`, then streams new ones as they come."""
        eng = self._ready()
        # reports_since(n) returns the reports numbered above n.
        after = max(request.from_sequence - 1, 0) if request.from_sequence else None
        if after is None:  # live only: start after the newest report
            after = eng.last_sequence()
        while not self._stop.is_set():
            reports = eng.reports_since(after, 1000)  # a short, non-blocking read of the log
            if not reports:
                await self._reports.wait_beyond(after, 0.25)  # woken as a report is logged
                continue
            for r in reports:
                after = r["sequence"]
                order = self._order(r["order"])
                if request.strategy_id and order.strategy_id != request.strategy_id:
                    continue
                spec = self.specs[r["order"]["symbol"]]
                report = ex.ExecutionReport(
                    sequence=r["sequence"],
                    exec_id=r["exec_id"],
                    exec_type=_EXEC_TYPE.get(r["exec_type"], ex.EXEC_TYPE_UNSPECIFIED),
                    order=order,
                    last_quantity=_decimal(r.get("last_quantity") or 0, spec.size_scale),
                    ts_received_ns=time.time_ns(),
                )
                if r.get("last_price") is not None:
                    report.last_price.CopyFrom(_decimal(r["last_price"], spec.price_scale))
                if r.get("commission") is not None:
                    report.commission.CopyFrom(_decimal(r["commission"], spec.price_scale))
                yield ex.StreamExecutionReportsResponse(report=report)

    async def SetKillSwitch(
        self, request: ex.SetKillSwitchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ex.SetKillSwitchResponse:
        """Engages (blocks new orders, cancels open ones) or releases the kill switch."""
        v = Violations()
        if not request.reason.strip():
            v.add("reason", "required: it is recorded in the audit log")
        if not request.operator.strip():
            v.add("operator", "required: it is recorded in the audit log")
        v.raise_if_any()
        cancelled = await asyncio.to_thread(self._ready().set_kill_switch, request.engaged)
        if request.engaged:
            for algo in list(self._algos.values()):
                await algo.cancel("the kill switch is engaged")
        log.warning(
            "kill switch",
            extra={
                "engaged": request.engaged,
                "reason": request.reason,
                "operator": request.operator,
            },
        )
        return ex.SetKillSwitchResponse(
            engaged=request.engaged, orders_cancelled=len(cancelled), changed_ns=time.time_ns()
        )

    async def GetSessions(
        self, request: ex.GetSessionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ex.GetSessionsResponse:
        """Returns the FIX session to each venue."""
        return ex.GetSessionsResponse(
            sessions=[
                ex.FixSession(
                    session_id=s["session_id"],
                    venue=s["venue"],
                    state=ex.SESSION_STATE_ACTIVE
                    if s["logged_on"]
                    else ex.SESSION_STATE_DISCONNECTED,
                    next_sender_seq=s["next_sender_seq"],
                    next_target_seq=s["next_target_seq"],
                    simulated=s["simulated"],
                    transport_failures=s["transport_failures"],
                    last_transport_failure=s["last_transport_failure"] or "",
                )
                for s in self._ready().sessions()
            ]
        )

    def metrics(self) -> list[MetricFamily]:
        """Prometheus families of the FIX sessions and venues (for /metrics)."""
        if self.engine is None:
            return []
        sessions = self.engine.sessions()
        venues = self.engine.venue_stats()

        def per_session(key: str) -> list[tuple[dict[str, str], float]]:
            return [({"venue": s["venue"]}, float(s[key])) for s in sessions]

        def per_venue(key: str) -> list[tuple[dict[str, str], float]]:
            return [({"venue": v["name"]}, float(v[key])) for v in venues]

        families = [
            MetricFamily(
                "nexus_fix_session_logged_on",
                "1 while the FIX session to the venue is logged on",
                "gauge",
                per_session("logged_on"),
            ),
            MetricFamily(
                "nexus_fix_transport_failures_total",
                "Connections to the venue that failed below FIX (TLS, plaintext mismatch)",
                "counter",
                per_session("transport_failures"),
            ),
            MetricFamily(
                "nexus_fix_next_sender_seq",
                "Next MsgSeqNum Nexus sends to the venue",
                "gauge",
                per_session("next_sender_seq"),
            ),
            MetricFamily(
                "nexus_fix_next_target_seq",
                "Next MsgSeqNum Nexus expects from the venue",
                "gauge",
                per_session("next_target_seq"),
            ),
            MetricFamily(
                "nexus_execution_orders_routed_total",
                "Orders sent to the venue",
                "counter",
                per_venue("routed"),
            ),
            MetricFamily(
                "nexus_execution_venue_ack_ms",
                "Moving average of the venue's acknowledgement time, ms",
                "gauge",
                per_venue("ack_ms"),
            ),
        ]
        if self.gateway is not None:
            stats = self.gateway.stats()
            families += [
                MetricFamily(
                    "nexus_order_gateway_native_total",
                    "SubmitOrder, CancelOrder and ReplaceOrder calls the native order gateway "
                    "answered itself",
                    "counter",
                    [({}, float(stats["native"]))],
                ),
                MetricFamily(
                    "nexus_order_gateway_forwarded_total",
                    "Calls the native order gateway passed to the service, by reason",
                    "counter",
                    [({"reason": r}, float(n)) for r, n in sorted(stats["forwarded"].items())],
                ),
                MetricFamily(
                    "nexus_order_gateway_forward_failures_total",
                    "Passed calls the service did not answer (UNAVAILABLE returned)",
                    "counter",
                    [({}, float(stats["forward_failures"]))],
                ),
                MetricFamily(
                    "nexus_order_gateway_refused_total",
                    "Requests the gateway refused itself (too large, unreadable)",
                    "counter",
                    [({}, float(stats["refused"]))],
                ),
            ]
        return families

    # -- algos -------------------------------------------------------------

    def _validate_algo(self, request: ex.ExecuteAlgoRequest, now_ns: int) -> InstrumentSpec:
        v = Violations()
        v.identifier("client_algo_id", request.client_algo_id)
        if len(request.client_algo_id) > 40:
            v.add("client_algo_id", "at most 40 characters (child ids add a suffix)")
        if request.kind not in _ALGO_KIND:
            v.add("kind", "required: TWAP, VWAP or IMPLEMENTATION_SHORTFALL")
        else:
            params = request.WhichOneof("params")
            if params is not None and params != _ALGO_PARAMS[request.kind]:
                v.add(params, f"does not match kind {ex.AlgoKind.Name(request.kind)}")
        v.instrument("instrument", request.instrument, present=request.HasField("instrument"))
        v.enum("side", request.side, types_pb2.Side.DESCRIPTOR)
        v.decimal("quantity", request.quantity, present=request.HasField("quantity"), positive=True)
        if request.HasField("limit_price"):
            v.decimal("limit_price", request.limit_price, present=True, positive=True)
        window = request.window
        if window.end_ns <= max(window.start_ns, now_ns):
            v.add("window.end_ns", "required, in the future and after window.start_ns")
        for i, venue in enumerate(request.venues):
            if venue not in self.venues:
                v.add(
                    f"venues[{i}]", f"unknown venue {venue!r}; configured: {', '.join(self.venues)}"
                )
        _validate_algo_params(request, v)
        v.raise_if_any()
        spec = self.specs.get(request.instrument.symbol)
        if spec is None or spec.venue != request.instrument.venue:
            raise NotFound(
                f"instrument: {request.instrument.symbol} at {request.instrument.venue} "
                "is not traded by the paper venues"
            )
        return spec

    def _schedule(
        self,
        request: ex.ExecuteAlgoRequest,
        spec: InstrumentSpec,
        quantity: int,
        start_ns: int,
        profile: list[float] | None,
    ) -> tuple[list[int], list[int]]:
        """Slice times and quantities of a parent order (`profile`: the intraday
        volume profile, for VWAP)."""
        end_ns = request.window.end_ns
        seconds = (end_ns - start_ns) / 1e9
        asked = request.twap.slices if request.HasField("twap") else 0
        slices = asked or max(1, min(int(seconds / self._cfg.algo_slice_s), 500))
        slices = max(1, min(slices, quantity))
        jitter = request.twap.jitter if request.HasField("twap") else 0.0
        times = algos.twap_times(start_ns, end_ns, slices, jitter)
        if profile is not None:
            weights = algos.profile_weights(profile, times, end_ns)
        elif request.kind == ex.ALGO_KIND_IMPLEMENTATION_SHORTFALL:
            ish = request.implementation_shortfall
            history = list(self._quotes.get(spec.symbol, ()))
            try:
                weights = algos.implementation_shortfall_weights(
                    slices,
                    seconds,
                    sigma=algos.volatility_per_sqrt_second(history),
                    risk_aversion=ish.risk_aversion,
                    temporary_impact=ish.temporary_impact or 1e-6,
                    permanent_impact=ish.permanent_impact,
                )
            except ValueError as err:
                raise InvalidArgument([("implementation_shortfall", str(err))]) from None
        else:
            weights = [1.0] * slices
        return times, algos.allocate(quantity, weights)

    def _volume_profile(self, spec: InstrumentSpec, days: int) -> list[float]:
        """Intraday profile from the last `days` stored days (tick counts for quotes)."""
        store_dir = self._ctx.settings.marketdata.store_dir or self._ctx.settings.data_dir / "store"
        store = TickStore(Path(store_dir))
        stored = store.days(DataKind.QUOTES, spec)[-days:]
        times: list[int] = []
        for day in stored:
            start = calendar_ns(day)
            for chunk in store.scan(DataKind.QUOTES, spec, start, start + 86_400 * 10**9):
                times.extend(chunk["ts_ns"][chunk["flags"] == 0].tolist())
        if not times:
            return [1.0] * (86_400 // PROFILE_BUCKET_S)  # no history: flat
        return algos.intraday_profile(times, [1.0] * len(times), PROFILE_BUCKET_S)

    def _execution(self, algo: algos.AlgoOrder) -> ex.AlgoExecution:
        spec = self.specs[algo.spec.symbol]
        price = spec.price_scale
        tca = ex.TransactionCostAnalysis(
            slippage_bps=algo.slippage_bps,
            fill_rate=algo.fill_rate,
            fees=_decimal(algo.fees, price),
        )
        for name, value in (
            ("arrival_price", algo.arrival_mid),
            ("average_price", algo.average_price),
            ("market_vwap", algo.market_mid),
        ):
            if value is not None:
                # One more digit than the instrument's: a mean of mantissas.
                getattr(tca, name).CopyFrom(_decimal(round(value * 10), price + 1))
        execution = ex.AlgoExecution(
            algo_id=algo.spec.algo_id,
            client_algo_id=self._algo_requests[algo.spec.algo_id].client_algo_id,
            request=self._algo_requests[algo.spec.algo_id],
            status=_ALGO_STATUS[algo.state],
            filled_quantity=_decimal(algo.filled, spec.size_scale),
            tca=tca,
        )
        eng = self._ready()
        for order_id in algo.children:
            child = eng.order(order_id)
            if child is not None:
                execution.child_orders.append(self._order(child))
        if algo.error and algo.state is not algos.AlgoState.COMPLETED:
            code = (
                grpc.StatusCode.ABORTED
                if algo.state is algos.AlgoState.FAILED
                else grpc.StatusCode.CANCELLED
            )
            execution.error.code = code.value[0]
            execution.error.message = algo.error
        return execution

    async def ExecuteAlgo(
        self, request: ex.ExecuteAlgoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ex.ExecuteAlgoResponse:
        """Starts a parent order that slices child orders over its window."""
        now = time.time_ns()
        spec = self._validate_algo(request, now)
        self._ready()
        known = self._algo_by_client_id.get(request.client_algo_id)
        if known is not None:  # the idempotency key: a retry gets the same parent
            return ex.ExecuteAlgoResponse(execution=self._execution(self._algos[known]))
        running = sum(a.state is algos.AlgoState.RUNNING for a in self._algos.values())
        if running >= MAX_RUNNING_ALGOS:
            raise ResourceExhausted(
                f"{running} algo orders are running (at most {MAX_RUNNING_ALGOS})"
            )
        quantity = _mantissa("quantity", request.quantity, spec.size_scale)
        limit = (
            _mantissa("limit_price", request.limit_price, spec.price_scale)
            if request.HasField("limit_price")
            else None
        )
        start = max(request.window.start_ns, now)
        profile = None
        if request.kind == ex.ALGO_KIND_VWAP:  # read from the store off the event loop
            days = request.vwap.profile_days or 5
            profile = await asyncio.to_thread(self._volume_profile, spec, days)
        times, quantities = self._schedule(request, spec, quantity, start, profile)
        algo_id = f"A{len(self._algos) + 1}-{uuid.uuid4().hex[:8]}"
        algo = algos.AlgoOrder(
            spec=algos.AlgoSpec(
                algo_id=algo_id,
                kind=_ALGO_KIND[request.kind],
                symbol=spec.symbol,
                side="buy" if request.side == types_pb2.SIDE_BUY else "sell",
                quantity=quantity,
                slice_times_ns=tuple(times),
                slice_quantities=tuple(quantities),
                end_ns=request.window.end_ns,
                limit_price=limit,
                venues=tuple(request.venues),
                max_participation=request.vwap.max_participation
                if request.HasField("vwap")
                else 0.0,
            ),
            engine=self._ready(),
            quote=lambda: self.last_quote(spec.symbol),
            on_child=functools.partial(self._note_child, algo_id),
            on_change=self._save_algos,
        )
        accepted = ex.ExecuteAlgoRequest()
        accepted.CopyFrom(request)
        accepted.window.start_ns = start
        self._algos[algo_id] = algo
        self._algo_requests[algo_id] = accepted
        self._algo_by_client_id[request.client_algo_id] = algo_id
        algo.start()
        log.info(
            "algo started",
            extra={"algo_id": algo_id, "kind": algo.spec.kind.value, "slices": len(times)},
        )
        return ex.ExecuteAlgoResponse(execution=self._execution(algo))

    def _algo(self, algo_id: str) -> algos.AlgoOrder:
        if not algo_id:
            raise InvalidArgument([("algo_id", "required")])
        algo = self._algos.get(algo_id)
        if algo is None:
            raise NotFound(f"no algo order {algo_id}")
        return algo

    async def GetAlgoExecution(
        self, request: ex.GetAlgoExecutionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ex.GetAlgoExecutionResponse:
        """Returns a parent order's progress, children and costs."""
        return ex.GetAlgoExecutionResponse(execution=self._execution(self._algo(request.algo_id)))

    async def CancelAlgo(
        self, request: ex.CancelAlgoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ex.CancelAlgoResponse:
        """Stops a parent order: no more children (a finished one is returned as it is)."""
        algo = self._algo(request.algo_id)
        await algo.cancel("cancelled by CancelAlgo")
        return ex.CancelAlgoResponse(execution=self._execution(algo))


def _validate_algo_params(request: ex.ExecuteAlgoRequest, v: Violations) -> None:
    """Adds the violations of an algo request's algorithm parameters to `v`."""
    twap, vwap, ish = request.twap, request.vwap, request.implementation_shortfall
    if request.HasField("twap"):
        if twap.slices > 10_000:
            v.add("twap.slices", "at most 10000")
        if not 0.0 <= twap.jitter < 1.0:
            v.add("twap.jitter", "must be in [0, 1)")
    if request.HasField("vwap"):
        if vwap.profile_days > 365:
            v.add("vwap.profile_days", "at most 365")
        if not 0.0 <= vwap.max_participation <= 1.0:
            v.add("vwap.max_participation", "must be in (0, 1], or 0 for no cap")
    if request.HasField("implementation_shortfall"):
        for name in ("risk_aversion", "temporary_impact", "permanent_impact"):
            value = getattr(ish, name)
            if not (value >= 0 and value < float("inf")):
                v.add(f"implementation_shortfall.{name}", "must be finite and not negative")


class _ReportSignal:
    """Wakes the report streams and the order calls waiting for a venue's answer
    as soon as the engine logs a report.

    One watcher thread blocks in the engine (without the GIL) until a report
    is logged, notes its sequence in `latest`, and wakes the event loop only
    while a coroutine waits: with nobody waiting (most orders: SubmitOrder sees
    its answer in its own short wait) the loop is not disturbed at all.
    """

    def __init__(self) -> None:
        self.latest = 0
        self._waiters = 0
        self._event = asyncio.Event()

    def notify(self) -> None:
        """On the loop: reports up to `latest` are logged."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait_beyond(self, sequence: int, timeout_s: float) -> None:
        """Returns once a report above `sequence` is logged, or after `timeout_s`."""
        # Counted before `latest` is read, and the watcher writes `latest` before it
        # reads the count (both under the GIL): either this call sees the new
        # sequence, or the watcher sees this waiter and wakes the loop.
        self._waiters += 1
        try:
            if self.latest > sequence:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._event.wait()
        finally:
            self._waiters -= 1

    def watch(self, engine: Any, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        """The watcher thread's loop."""
        seen = int(engine.last_sequence())
        self.latest = max(self.latest, seen)
        while not stop.is_set():
            latest = int(engine.wait_report_after(seen, 0.25, spin=False))
            if latest > seen:
                seen = latest
                self.latest = max(self.latest, latest)
                if self._waiters:
                    with contextlib.suppress(RuntimeError):  # the loop closed under us
                        loop.call_soon_threadsafe(self.notify)


def calendar_ns(day: Any) -> int:
    """Midnight UTC of a date, in nanoseconds since the Unix epoch."""
    return int(_calendar.timegm(day.timetuple())) * 1_000_000_000
