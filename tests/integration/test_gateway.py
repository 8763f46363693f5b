"""The REST gateway against a real in-process gRPC server."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from nexus_gateway import MAX_BODY_BYTES, Gateway
from tests.conftest import ThreadedServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(nexus_server: ThreadedServer) -> Iterator[Gateway]:
    gateway = Gateway(nexus_server.target, port=0)
    gateway.start()
    yield gateway
    gateway.stop()


def _request(
    gateway: Gateway, path: str, body: bytes | None = None, method: str | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{gateway.port}{path}", data=body, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_health_and_status(gateway: Gateway) -> None:
    assert _request(gateway, "/healthz") == (200, {"status": "SERVING"})
    status, body = _request(gateway, "/v1/status")
    assert status == 200
    assert body["topology"] == "embedded"
    assert any(c["name"] == "nexus.hub.v1.HubService" for c in body["components"])


def test_generic_route_calls_the_rpc(gateway: Gateway) -> None:
    status, body = _request(gateway, "/v1/nexus.hub.v1.HubService/GetSystemStatus", b"{}")
    assert status == 200
    assert body["tradingMode"] == "TRADING_MODE_PAPER"


def test_field_violations_become_400_with_details(gateway: Gateway) -> None:
    payload = json.dumps({"instrument": {"symbol": "EUR/USD"}, "timeframe": "TIMEFRAME_5M"})
    status, body = _request(
        gateway, "/v1/nexus.snn.v1.SnnAnalysisService/Predict", payload.encode()
    )
    assert status == 400
    assert body["code"] == "INVALID_ARGUMENT"
    assert body["violations"] == [
        {"field": "instrument.venue", "description": "required, e.g. 'OANDA'"}
    ]
    assert body["correlation_id"]


def test_bad_json_and_unknown_fields_are_400(gateway: Gateway) -> None:
    route = "/v1/nexus.snn.v1.SnnAnalysisService/Predict"
    status, body = _request(gateway, route, b"{not json")
    assert status == 400
    assert "not a valid nexus.snn.v1.PredictRequest" in body["message"]
    status, body = _request(gateway, route, b'{"timeframe": "TIMEFRAME_7M"}')
    assert status == 400
    assert "TIMEFRAME_7M" in body["message"]


def test_unknown_routes_methods_and_oversized_bodies(gateway: Gateway) -> None:
    assert _request(gateway, "/v1/nexus.nope.v1.Nope/Call", b"{}")[0] == 404
    assert _request(gateway, "/nowhere")[0] == 404
    assert _request(gateway, "/v1/nexus.hub.v1.HubService/GetSystemStatus")[0] == 405
    # Streaming RPCs have no REST route.
    assert _request(gateway, "/v1/nexus.hub.v1.HubService/StreamEvents", b"{}")[0] == 404
    # A body announced as too large is refused before it is read.
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.putrequest("POST", "/v1/nexus.hub.v1.HubService/GetSystemStatus")
    connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    connection.endheaders()
    reply = connection.getresponse()
    assert reply.status == 413
    assert "over the limit" in json.loads(reply.read())["message"]
    connection.close()


def test_unimplemented_rpc_is_501(gateway: Gateway) -> None:
    status, body = _request(gateway, "/v1/nexus.risk.v1.RiskService/GetLimits", b"{}")
    assert status == 501
    assert body["code"] == "UNIMPLEMENTED"
