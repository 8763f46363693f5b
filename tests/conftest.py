"""Fixtures shared by every Python test."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from nexus.config import Settings, load_settings
from nexus.server import NexusServer

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("NEXUS_SHARED_DATA", REPO.parent / "shared" / "data"))

hypothesis_settings.register_profile("fast", max_examples=50, deadline=None)
hypothesis_settings.register_profile("ci", max_examples=500, deadline=None)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "fast")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real data set (../shared/data); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set NEXUS_SHARED_DATA to its path)")
    return SHARED_DATA


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadedServer:
    """A NexusServer on its own event loop in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        async def start() -> int:
            # grpc.aio binds a server to the loop that is running when it is made.
            self.server = NexusServer(settings)
            return await self.server.start()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.port = self.loop.run_until_complete(start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="nexus-test-server", daemon=True)
        self.thread.start()
        if not ready.wait(120):
            raise RuntimeError("test server did not start")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def nexus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """An in-process Nexus server with every service on a free port, its store in a
    temporary folder, the shipped sample ingested."""
    data_dir = tmp_path_factory.mktemp("nexus-data")
    server = ThreadedServer(
        load_settings(
            overrides={
                "server": {"port": 0, "grace_period_s": 0.5, "metrics_port": 0},
                "data_dir": str(data_dir),
            }
        )
    )
    yield server
    server.stop()
