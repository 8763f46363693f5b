"""gRPC transport of market data (`nexus.marketdata.v1.MarketDataService`).

The requests are validated now, so that their rules are part of the contract;
the data behind them lands with the market-data engine issue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from nexus.common.v1 import types_pb2
from nexus.marketdata.v1 import marketdata_pb2 as md
from nexus.rpc import Unimplemented, pending
from nexus.services.context import ServiceContext
from nexus.services.validation import Violations

__all__ = ["MarketDataServicer"]

MAX_BATCH = 65_536
MAX_DEPTH = 1_000
MAX_PAGE = 100_000


def _not_yet(method: str) -> Unimplemented:
    return Unimplemented(f"MarketDataService/{method} lands with the market-data engine")


class MarketDataServicer:
    """Validates market-data requests; serving the data is the market-data issue."""

    def __init__(self, context: ServiceContext) -> None:
        self._ctx = context

    @pending
    async def StreamTicks(
        self, request: md.StreamTicksRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[md.StreamTicksResponse]:
        """Streams batched ticks (validated; data pending)."""
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
        raise _not_yet("StreamTicks")
        yield md.StreamTicksResponse()  # type: ignore[unreachable]  # makes this a generator

    @pending
    async def GetHistoricalData(
        self, request: md.GetHistoricalDataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> md.GetHistoricalDataResponse:
        """Returns a page of stored data (validated; data pending)."""
        v = Violations()
        v.instrument("instrument", request.instrument, present=request.HasField("instrument"))
        v.enum("kind", request.kind, md.DataKind.DESCRIPTOR)
        v.time_range("range", request.range, present=request.HasField("range"))
        if request.kind == md.DATA_KIND_BARS:
            v.enum("timeframe", request.timeframe, types_pb2.Timeframe.DESCRIPTOR)
        if request.page.page_size > MAX_PAGE:
            v.add("page.page_size", f"at most {MAX_PAGE}")
        v.raise_if_any()
        raise _not_yet("GetHistoricalData")

    @pending
    async def GetOrderBook(
        self, request: md.GetOrderBookRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> md.GetOrderBookResponse:
        """Returns an L2 book (validated; data pending)."""
        v = Violations()
        v.instrument("instrument", request.instrument, present=request.HasField("instrument"))
        if request.depth > MAX_DEPTH:
            v.add("depth", f"at most {MAX_DEPTH}")
        v.raise_if_any()
        raise _not_yet("GetOrderBook")
