"""gRPC transport of SNN analysis (`nexus.snn.v1.SnnAnalysisService`).

Predict's request rules are enforced now; the models land with the SNN issue.
"""

from __future__ import annotations

from typing import Any

import grpc

from nexus.common.v1 import types_pb2
from nexus.rpc import Unimplemented, pending
from nexus.services.context import ServiceContext
from nexus.services.validation import Violations
from nexus.snn.v1 import snn_pb2

__all__ = ["SnnAnalysisServicer"]


class SnnAnalysisServicer:
    """Validates prediction requests; the spiking models are the SNN issue."""

    def __init__(self, context: ServiceContext) -> None:
        self._ctx = context

    @pending
    async def Predict(
        self, request: snn_pb2.PredictRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> snn_pb2.PredictResponse:
        """Forecasts one instrument on one timeframe (validated; models pending)."""
        v = Violations()
        v.instrument("instrument", request.instrument, present=request.HasField("instrument"))
        v.enum("timeframe", request.timeframe, types_pb2.Timeframe.DESCRIPTOR)
        if request.as_of_ns < 0:
            v.add("as_of_ns", "must not be negative")
        v.identifier("request_id", request.request_id, required=False)
        v.raise_if_any()
        raise Unimplemented("SnnAnalysisService/Predict lands with the SNN models")
