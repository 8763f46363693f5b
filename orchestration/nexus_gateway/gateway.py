"""The REST gateway: JSON over HTTP onto the gRPC services, derived from the contracts.

Routes:

- `GET /healthz` — the gRPC health of the backend (200 when SERVING, else 503);
- `GET /v1/status` — `HubService/GetSystemStatus`;
- `POST /v1/<package>.<Service>/<Method>` — any unary RPC; the body is the
  request message in proto3 JSON, the answer the response message in proto3
  JSON. Nothing is hand-written per RPC: the routes come from the same
  descriptors as the gRPC services, so REST never drifts from the contracts.

Errors answer with a JSON body `{"code", "message", "violations",
"correlation_id"}` and the HTTP status matching the gRPC code.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from nexus.services.registry import SERVICES
from nexus_client import NexusClient, NexusError

__all__ = ["MAX_BODY_BYTES", "Gateway", "http_status"]

log = logging.getLogger("nexus.gateway")

MAX_BODY_BYTES = 1 << 20

_HTTP = {
    grpc.StatusCode.OK: HTTPStatus.OK,
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.CONFLICT,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: HTTPStatus.CONFLICT,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
}


def http_status(code: grpc.StatusCode) -> HTTPStatus:
    """Returns the HTTP status for a gRPC status code (500 when none fits better)."""
    return _HTTP.get(code, HTTPStatus.INTERNAL_SERVER_ERROR)


def _unary_methods() -> dict[str, MethodDescriptor]:
    methods = {}
    for spec in SERVICES.values():
        for method in spec.descriptor.methods:
            if not (method.client_streaming or method.server_streaming):
                methods[f"{spec.descriptor.full_name}/{method.name}"] = method
    return methods


class _ClientError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Gateway:
    """An HTTP server in front of one Nexus gRPC server."""

    def __init__(self, target: str, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.client = NexusClient(target)
        self.methods = _unary_methods()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "nexus-gateway"

            def log_message(self, format: str, *args: Any) -> None:
                log.info("%s %s", self.address_string(), format % args)

            def do_GET(self) -> None:
                gateway.handle(self, "GET")

            def do_POST(self) -> None:
                gateway.handle(self, "POST")

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serves in a background thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        """Serves in the calling thread until `stop`."""
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Stops serving and closes the gRPC channel."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.client.close()
        if self._thread is not None:
            self._thread.join(5)

    def handle(self, request: BaseHTTPRequestHandler, verb: str) -> None:
        """Answers one HTTP request."""
        path = request.path.split("?", 1)[0]
        try:
            if verb == "GET" and path == "/healthz":
                self._health(request)
            elif verb == "GET" and path == "/v1/status":
                self._reply(request, HTTPStatus.OK, self.client.system_status())
            elif path.startswith("/v1/") and path.count("/") == 3:
                if verb != "POST":
                    raise _ClientError(HTTPStatus.METHOD_NOT_ALLOWED, "RPC routes take POST")
                self._call(request, path.removeprefix("/v1/"))
            else:
                raise _ClientError(HTTPStatus.NOT_FOUND, f"no route {verb} {path}")
        except _ClientError as err:
            self._error(request, err.status, err.status.name, err.message)
        except NexusError as err:
            self._error(
                request,
                http_status(err.code),
                err.code.name,
                err.message,
                violations=err.violations,
                correlation_id=err.correlation_id,
            )

    def _health(self, request: BaseHTTPRequestHandler) -> None:
        try:
            state = self.client.health()
        except NexusError as err:
            state = err.code.name
        status = HTTPStatus.OK if state == "SERVING" else HTTPStatus.SERVICE_UNAVAILABLE
        self._send(request, status, {"status": state})

    def _body(self, request: BaseHTTPRequestHandler) -> bytes:
        try:
            length = int(request.headers.get("Content-Length", "0"))
        except ValueError:
            raise _ClientError(HTTPStatus.BAD_REQUEST, "Content-Length is not a number") from None
        if length < 0:
            raise _ClientError(HTTPStatus.BAD_REQUEST, "Content-Length is negative")
        if length > MAX_BODY_BYTES:
            raise _ClientError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes is over the limit of {MAX_BODY_BYTES}",
            )
        return request.rfile.read(length)

    def _call(self, request: BaseHTTPRequestHandler, name: str) -> None:
        method = self.methods.get(name)
        if method is None:
            raise _ClientError(HTTPStatus.NOT_FOUND, f"no unary RPC {name}")
        body = self._body(request)
        message = GetMessageClass(method.input_type)()
        try:
            json_format.Parse(body or b"{}", message)
        except json_format.ParseError as err:
            raise _ClientError(
                HTTPStatus.BAD_REQUEST, f"body is not a valid {method.input_type.full_name}: {err}"
            ) from None
        callable_ = self.client.channel.unary_unary(
            f"/{name}",
            request_serializer=type(message).SerializeToString,
            response_deserializer=GetMessageClass(method.output_type).FromString,
        )
        try:
            response = callable_(message, timeout=self.client.timeout_s)
        except grpc.RpcError as err:
            raise NexusError(err) from None
        self._reply(request, HTTPStatus.OK, response)

    def _reply(self, request: BaseHTTPRequestHandler, status: HTTPStatus, message: Message) -> None:
        self._send(request, status, json_format.MessageToDict(message))

    def _error(
        self,
        request: BaseHTTPRequestHandler,
        status: HTTPStatus,
        code: str,
        message: str,
        *,
        violations: list[tuple[str, str]] | None = None,
        correlation_id: str = "",
    ) -> None:
        body = {
            "code": code,
            "message": message,
            "violations": [{"field": f, "description": d} for f, d in violations or []],
            "correlation_id": correlation_id,
        }
        self._send(request, status, body)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: HTTPStatus, body: object) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
