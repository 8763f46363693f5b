"""gRPC transport of execution (`nexus.execution.v1.ExecutionService`).

Order requests are validated now, so that their rules are part of the
contract; the FIX engine, order manager and paper venue behind them land with
the execution issue.
"""

from __future__ import annotations

from typing import Any

import grpc

from nexus.common.v1 import types_pb2
from nexus.execution.v1 import execution_pb2 as ex
from nexus.rpc import Unimplemented, pending
from nexus.services.context import ServiceContext
from nexus.services.validation import Violations

__all__ = ["ExecutionServicer", "validate_submit_order"]

_NEEDS_LIMIT = (ex.ORDER_TYPE_LIMIT, ex.ORDER_TYPE_STOP_LIMIT)
_NEEDS_STOP = (ex.ORDER_TYPE_STOP, ex.ORDER_TYPE_STOP_LIMIT)


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


class ExecutionServicer:
    """Validates order requests; routing them is the execution issue."""

    def __init__(self, context: ServiceContext) -> None:
        self._ctx = context

    @pending
    async def SubmitOrder(
        self, request: ex.SubmitOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ex.SubmitOrderResponse:
        """Places an order (validated; routing pending)."""
        validate_submit_order(request)
        raise Unimplemented(
            "ExecutionService/SubmitOrder lands with the FIX engine and paper venue"
        )
