"""The launcher: hosts any set of Nexus services in one gRPC server process.

The server carries the standard gRPC health service (overall and per
service) and server reflection, and shuts down gracefully on SIGTERM or
SIGINT: health turns NOT_SERVING first, new calls are refused, in-flight
calls get `server.grace_period_s` to finish.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from nexus.config import Settings
from nexus.metrics import MetricFamily, MetricsServer
from nexus.rpc import service_handler
from nexus.services.context import ServiceContext
from nexus.services.registry import SERVICES

__all__ = ["NexusServer", "serve"]

log = logging.getLogger("nexus.server")


class NexusServer:
    """One gRPC server hosting the services named in the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = ServiceContext(settings)
        cfg = settings.server
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", cfg.max_message_bytes),
                ("grpc.max_send_message_length", cfg.max_message_bytes),
                ("grpc.max_concurrent_streams", cfg.max_concurrent_streams),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        for name in settings.services:
            spec = SERVICES[name]
            servicer = spec.servicer(self.context)
            self.context.hosted[name] = (spec.descriptor, servicer)
            self._server.add_generic_rpc_handlers(
                (service_handler(spec.descriptor, servicer, self.context.counters),)
            )
        self.service_names = [d.full_name for d, _ in self.context.hosted.values()]
        if cfg.reflection:
            reflection.enable_server_reflection(
                [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME],
                self._server,
            )
        self.port = 0
        self.metrics: MetricsServer | None = None

    def _collectors(self) -> list[Callable[[], list[MetricFamily]]]:
        def rpc_calls() -> list[MetricFamily]:
            samples = [
                ({"method": method, "code": code}, float(count))
                for (method, code), count in sorted(self.context.counters.snapshot().items())
            ]
            return [
                MetricFamily(
                    "nexus_rpc_calls_total", "RPCs by method and status", "counter", samples
                )
            ]

        collectors: list[Callable[[], list[MetricFamily]]] = [rpc_calls]
        for _, servicer in self.context.hosted.values():
            collect = getattr(servicer, "metrics", None)
            if callable(collect):
                collectors.append(collect)
        return collectors

    async def start(self) -> int:
        """Starts each servicer that has a `start` step (e.g. ingesting data), binds,
        starts serving and marks every hosted service SERVING; returns the port."""
        for _, servicer in self.context.hosted.values():
            start = getattr(servicer, "start", None)
            if callable(start):
                await start()
        cfg = self.settings.server
        address = f"{cfg.host}:{cfg.port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as err:
            raise OSError(f"cannot listen on {address}: {err}") from err
        await self._server.start()
        for _, servicer in self.context.hosted.values():
            serving = getattr(servicer, "serving", None)
            if callable(serving):  # e.g. a native front that forwards to this port
                await serving(cfg.host, self.port)
        if cfg.metrics_port is not None:
            try:
                self.metrics = MetricsServer(cfg.host, cfg.metrics_port, self._collectors())
            except OSError as err:
                await self._server.stop(0)
                raise OSError(
                    f"cannot listen on {cfg.host}:{cfg.metrics_port} for metrics: {err}"
                ) from err
            self.metrics.start()
        for name in ["", *self.service_names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving",
            extra={
                "address": f"{cfg.host}:{self.port}",
                "services": self.service_names,
                "metrics_port": self.metrics.port if self.metrics else None,
            },
        )
        return self.port

    async def stop(self) -> None:
        """Turns health NOT_SERVING, then stops with the configured grace period."""
        log.info("shutting down", extra={"grace_s": self.settings.server.grace_period_s})
        await self._health.enter_graceful_shutdown()
        await self._server.stop(self.settings.server.grace_period_s)
        for _, servicer in self.context.hosted.values():
            stop = getattr(servicer, "stop", None)
            if callable(stop):
                await stop()
        if self.metrics is not None:
            self.metrics.stop()
        log.info("stopped")


async def serve(
    settings: Settings,
    port_file: Path | None = None,
    on_ready: Callable[[NexusServer], None] | None = None,
) -> None:
    """Runs a server until SIGTERM or SIGINT, then shuts it down gracefully.

    `port_file`, if given, receives the bound port once the server serves
    (useful with `server.port = 0`).
    """
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(settings.server.max_workers, thread_name_prefix="nexus-worker")
    )
    server = NexusServer(settings)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = await server.start()
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(f"{port}\n")
        tmp.replace(port_file)
    print(f"nexus serving on {settings.server.host}:{port}", flush=True)
    if on_ready is not None:
        on_ready(server)
    await stop.wait()
    await server.stop()
