"""`nexus serve` as a user runs it: a subprocess, reached through clients/, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from nexus_client import NexusClient, NexusError

pytestmark = pytest.mark.integration

NEXUS = [sys.executable, "-m", "nexus"]


class Served:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.target = f"127.0.0.1:{port}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port_file = tmp_path / "port"
    env = dict(
        os.environ,
        NEXUS_SERVER__GRACE_PERIOD_S="2",
        NEXUS_LOG__FORMAT="json",
        NEXUS_DATA_DIR=str(tmp_path / "data"),
        NEXUS_SERVER__METRICS_PORT="0",
    )
    process = subprocess.Popen(
        [*NEXUS, "serve", "--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"nexus serve did not start (rc={process.returncode}):\n{out}\n{err}")
        time.sleep(0.05)
    served = Served(process, int(port_file.read_text()))
    yield served
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_serve_answers_health_status_and_reflection(served: Served) -> None:
    with NexusClient(served.target, timeout_s=5) as client:
        client.wait_ready(10)
        assert client.health() == "SERVING"
        assert client.health("nexus.execution.v1.ExecutionService") == "SERVING"
        status = client.system_status()
        assert status.topology == "embedded"
        assert len(status.components) == 9  # the engine and eight services

        with pytest.raises(NexusError) as info:
            client.health("nexus.nope.v1.NopeService")
        assert info.value.code == grpc.StatusCode.NOT_FOUND

        reflect = reflection_pb2_grpc.ServerReflectionStub(client.channel)
        replies = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for reply in replies for s in reply.list_services_response.service}
        assert "nexus.portfolio.v1.PortfolioService" in names
        assert "grpc.health.v1.Health" in names


def test_sigterm_shuts_down_gracefully(served: Served) -> None:
    with NexusClient(served.target, timeout_s=5) as client:
        client.wait_ready(10)
        assert client.health() == "SERVING"
    served.process.send_signal(signal.SIGTERM)
    out, err = served.process.communicate(timeout=20)
    assert served.process.returncode == 0, err
    assert f"nexus serving on 127.0.0.1:{served.port}" in out
    messages = [json.loads(line)["msg"] for line in err.splitlines() if line.startswith("{")]
    assert messages[-2:] == ["shutting down", "stopped"]
    with NexusClient(served.target, timeout_s=1) as client, pytest.raises(TimeoutError):
        client.wait_ready(1)


def test_cli_status_and_health_commands(served: Served) -> None:
    with NexusClient(served.target) as client:
        client.wait_ready(10)
    health = subprocess.run(
        [*NEXUS, "health", "--target", served.target], capture_output=True, text=True, check=False
    )
    assert (health.returncode, health.stdout.strip()) == (0, "SERVING")
    status = subprocess.run(
        [*NEXUS, "status", "--target", served.target], capture_output=True, text=True, check=True
    )
    assert json.loads(status.stdout)["tradingMode"] == "TRADING_MODE_PAPER"


def test_cli_reports_an_unreachable_server() -> None:
    result = subprocess.run(
        [*NEXUS, "health", "--target", "127.0.0.1:1", "--timeout", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "nexus.toml"
    bad.write_text("[server]\nport = -1\n")
    result = subprocess.run(
        [*NEXUS, "serve", "--config", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "server.port" in result.stderr
    assert str(bad) in result.stderr


def test_serve_reports_a_port_in_use(served: Served) -> None:
    with NexusClient(served.target) as client:
        client.wait_ready(10)
    result = subprocess.run(
        [*NEXUS, "serve", "--port", str(served.port)],
        env=dict(os.environ, NEXUS_SERVER__METRICS_PORT="0"),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{served.port}" in result.stderr
