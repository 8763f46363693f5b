"""gRPC transport of the orchestration hub (`nexus.hub.v1.HubService`)."""

from __future__ import annotations

import time
from typing import Any

import grpc

import nexus
from nexus import engine
from nexus.common.v1 import types_pb2
from nexus.hub.v1 import hub_pb2
from nexus.rpc import implemented_methods
from nexus.services.context import ServiceContext

__all__ = ["HubServicer"]

_MODES = {"paper": types_pb2.TRADING_MODE_PAPER, "live": types_pb2.TRADING_MODE_LIVE}


class HubServicer:
    """Reports on the whole deployment; strategy runs land with the hub issue."""

    def __init__(self, context: ServiceContext) -> None:
        self._ctx = context

    def _components(self) -> list[hub_pb2.ComponentStatus]:
        components = [
            hub_pb2.ComponentStatus(
                name="engine",
                state=hub_pb2.HEALTH_STATE_SERVING,
                detail=f"nexus._native {engine.engine_version}",
                endpoint="embedded",
            )
        ]
        for descriptor, servicer in self._ctx.hosted.values():
            done = len(implemented_methods(servicer, descriptor))
            total = len(descriptor.methods)
            components.append(
                hub_pb2.ComponentStatus(
                    name=descriptor.full_name,
                    state=hub_pb2.HEALTH_STATE_SERVING
                    if done
                    else hub_pb2.HEALTH_STATE_NOT_IMPLEMENTED,
                    detail=f"{done}/{total} RPCs implemented",
                    endpoint="embedded",
                )
            )
        return components

    async def GetSystemStatus(
        self, request: hub_pb2.GetSystemStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> hub_pb2.GetSystemStatusResponse:
        """Returns versions, mode, uptime and the health of every hosted component."""
        settings = self._ctx.settings
        return hub_pb2.GetSystemStatusResponse(
            version=nexus.__version__,
            engine_version=engine.engine_version,
            topology=settings.topology,
            trading_mode=_MODES[settings.trading_mode],
            trading_halted=False,
            started_ns=self._ctx.started_ns,
            now_ns=time.time_ns(),
            components=self._components(),
        )
