"""Python client of the Nexus gRPC services, for other desks' programs.

    from nexus_client import NexusClient
    with NexusClient("127.0.0.1:50051") as nexus:
        print(nexus.system_status().version)

Each service's generated stub is an attribute (`nexus.marketdata`,
`nexus.execution`, ...), and a few common calls have typed helpers. Failed
calls raise `NexusError`, which carries the gRPC code, the message, the
field violations of an INVALID_ARGUMENT and the server's correlation id.
"""

from __future__ import annotations

import decimal
import uuid
from types import TracebackType
from typing import Any, Self

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from nexus.clustering.v1 import clustering_pb2_grpc
from nexus.common.v1 import types_pb2
from nexus.execution.v1 import execution_pb2_grpc
from nexus.hub.v1 import hub_pb2, hub_pb2_grpc
from nexus.marketdata.v1 import marketdata_pb2_grpc
from nexus.news.v1 import news_pb2_grpc
from nexus.portfolio.v1 import portfolio_pb2_grpc
from nexus.risk.v1 import risk_pb2_grpc
from nexus.snn.v1 import snn_pb2, snn_pb2_grpc

__all__ = [
    "TIMEFRAMES",
    "NexusClient",
    "NexusError",
    "from_decimal",
    "to_decimal",
]

TIMEFRAMES = {
    "1m": types_pb2.TIMEFRAME_1M,
    "5m": types_pb2.TIMEFRAME_5M,
    "15m": types_pb2.TIMEFRAME_15M,
    "1h": types_pb2.TIMEFRAME_1H,
    "1d": types_pb2.TIMEFRAME_1D,
}


def to_decimal(value: str | int | decimal.Decimal) -> types_pb2.Decimal:
    """Returns the exact `nexus.common.v1.Decimal` of a number given as text or Decimal."""
    exact = decimal.Decimal(value)
    if not exact.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    sign, digits, exponent = exact.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    mantissa = int("".join(map(str, digits)) or "0")
    return types_pb2.Decimal(mantissa=-mantissa if sign else mantissa, scale=-exponent)


def from_decimal(value: types_pb2.Decimal) -> decimal.Decimal:
    """Returns the exact Python Decimal of a `nexus.common.v1.Decimal`."""
    return decimal.Decimal(value.mantissa).scaleb(-value.scale)


class NexusError(Exception):
    """A call to Nexus failed; says why, with the server's details."""

    def __init__(self, err: grpc.RpcError) -> None:
        call: Any = err
        self.code: grpc.StatusCode = call.code()
        self.message: str = call.details() or ""
        self.violations: list[tuple[str, str]] = []
        self.correlation_id = ""
        for key, value in call.trailing_metadata() or ():
            if key == "x-correlation-id":
                self.correlation_id = str(value)
        status = rpc_status.from_call(call)
        for detail in status.details if status is not None else ():
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                self.violations += [(v.field, v.description) for v in bad_request.field_violations]
        super().__init__(f"{self.code.name}: {self.message}")


class NexusClient:
    """A connection to one Nexus server (`nexus serve`) and a stub per service.

    `execution_target`, if given, is where the execution stub goes instead: the
    native order gateway (`execution.order_gateway_port`; 127.0.0.1:50052 under
    `make run`), which serves the whole ExecutionService and answers SubmitOrder
    in Rust.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        timeout_s: float = 10.0,
        execution_target: str | None = None,
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.channel = grpc.insecure_channel(target)
        self._orders_channel = grpc.insecure_channel(execution_target) if execution_target else None
        self.hub = hub_pb2_grpc.HubServiceStub(self.channel)
        self.marketdata = marketdata_pb2_grpc.MarketDataServiceStub(self.channel)
        self.execution = execution_pb2_grpc.ExecutionServiceStub(
            self._orders_channel or self.channel
        )
        self.snn = snn_pb2_grpc.SnnAnalysisServiceStub(self.channel)
        self.news = news_pb2_grpc.NewsServiceStub(self.channel)
        self.clustering = clustering_pb2_grpc.ClusteringServiceStub(self.channel)
        self.portfolio = portfolio_pb2_grpc.PortfolioServiceStub(self.channel)
        self.risk = risk_pb2_grpc.RiskServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channels."""
        self.channel.close()
        if self._orders_channel is not None:
            self._orders_channel.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-correlation-id", uuid.uuid4().hex[:16]),)

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Blocks until the channel connects; raises TimeoutError after `timeout_s`."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError as err:
            raise TimeoutError(f"no Nexus server at {self.target} after {timeout_s}s") from err

    def health(self, service: str = "") -> str:
        """Returns the health of `service` (all services when empty): 'SERVING', ..."""
        try:
            reply = self._health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=self.timeout_s
            )
        except grpc.RpcError as err:
            raise NexusError(err) from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def system_status(self) -> hub_pb2.GetSystemStatusResponse:
        """Returns versions, mode and the health of every component."""
        try:
            return self.hub.GetSystemStatus(
                hub_pb2.GetSystemStatusRequest(),
                timeout=self.timeout_s,
                metadata=self._metadata(),
            )
        except grpc.RpcError as err:
            raise NexusError(err) from None

    def predict(self, symbol: str, venue: str, timeframe: str) -> snn_pb2.PredictResponse:
        """Asks the SNN service for a forecast; `timeframe` is 1m, 5m, 15m, 1h or 1d."""
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"timeframe must be one of {', '.join(TIMEFRAMES)}, not {timeframe!r}")
        request = snn_pb2.PredictRequest(
            instrument=types_pb2.InstrumentId(symbol=symbol, venue=venue),
            timeframe=TIMEFRAMES[timeframe],
        )
        try:
            return self.snn.Predict(request, timeout=self.timeout_s, metadata=self._metadata())
        except grpc.RpcError as err:
            raise NexusError(err) from None
