"""gRPC transport shared by every service: handlers, errors, correlation ids, counters.

A servicer is a plain object whose async methods are named after the RPCs of
its service in proto/. `service_handler` reads the service descriptor and
builds the handlers, so that every RPC of every service behaves the same way:

- a request that is not valid protobuf answers INVALID_ARGUMENT (grpcio's own
  default would be INTERNAL), as does an `InvalidArgument` the servicer raises
  after validating fields, with a `google.rpc.BadRequest` in the status details;
- `RpcError` subclasses map known domain failures to their status codes;
- any other exception answers INTERNAL with the correlation id, and the
  traceback is logged under that id;
- an RPC the servicer does not define answers UNIMPLEMENTED, naming the RPC;
- every call is counted by method and status code (`RpcCounters`).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2, status_pb2

from nexus.logs import correlation_id

__all__ = [
    "CORRELATION_ID_KEY",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "RpcCounters",
    "RpcError",
    "Unimplemented",
    "implemented_methods",
    "pending",
    "service_handler",
]

log = logging.getLogger("nexus.rpc")

CORRELATION_ID_KEY = "x-correlation-id"
_MAX_CORRELATION_ID = 64


class RpcError(Exception):
    """A failure that the caller should see with a specific gRPC status."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *details: Message) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidArgument(RpcError):
    """The request is malformed; names each offending field and why."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        self.violations = violations
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in violations
            ]
        )
        text = "; ".join(f"{f}: {d}" if f else d for f, d in violations)
        super().__init__(f"invalid request: {text}", bad_request)


class NotFound(RpcError):
    """The named entity (order, run, instrument) does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(RpcError):
    """The system is not in a state that allows the operation."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(RpcError):
    """A bound was reached (queue full, rate limit)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unimplemented(RpcError):
    """The RPC is in the contract but its capability has not landed yet."""

    code = grpc.StatusCode.UNIMPLEMENTED


class _Internal(RpcError):
    code = grpc.StatusCode.INTERNAL


class RpcCounters:
    """Calls by full method name and final status code; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, method: str, code: grpc.StatusCode) -> None:
        """Counts one finished call."""
        with self._lock:
            self._counts[(method, code.name)] += 1

    def get(self, method: str, code: grpc.StatusCode) -> int:
        """Returns how many calls of `method` ended with `code`."""
        with self._lock:
            return self._counts[(method, code.name)]

    def snapshot(self) -> dict[tuple[str, str], int]:
        """Returns a copy of every count."""
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True)
class _Malformed:
    """Stands in for a request whose bytes did not decode."""

    reason: str


def _deserializer(cls: type[Message]) -> Callable[[bytes], Message | _Malformed]:
    def deserialize(data: bytes) -> Message | _Malformed:
        try:
            return cls.FromString(data)
        except DecodeError as err:
            return _Malformed(f"request is not a valid {cls.DESCRIPTOR.full_name}: {err}")

    return deserialize


def _serializer(cls: type[Message]) -> Callable[[Message | bytes], bytes]:
    """Serializes a response message; bytes pass through as they are (a servicer
    may hand over a message already encoded, e.g. by the Rust engines)."""
    del cls

    def serialize(message: Message | bytes) -> bytes:
        return message if isinstance(message, bytes) else message.SerializeToString()

    return serialize


def _correlation_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == CORRELATION_ID_KEY and isinstance(value, str):
            cleaned = "".join(ch for ch in value if ch.isalnum() or ch in "-_.")
            if cleaned:
                return cleaned[:_MAX_CORRELATION_ID]
    return uuid.uuid4().hex[:16]


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: RpcError, cid: str) -> None:
    details = []
    for detail in err.details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        details.append(packed)
    status = status_pb2.Status(code=err.code.value[0], message=err.message, details=details)
    await context.abort(
        err.code,
        err.message,
        trailing_metadata=(
            ("grpc-status-details-bin", status.SerializeToString()),
            (CORRELATION_ID_KEY, cid),
        ),
    )


_PENDING = "__nexus_pending__"

F = TypeVar("F", bound=Callable[..., Any])


def pending(method: F) -> F:
    """Marks a servicer method that validates its request but whose capability
    has not landed: it answers UNIMPLEMENTED after validation, and the hub does
    not count it as implemented."""
    setattr(method, _PENDING, True)
    return method


def implemented_methods(servicer: object, service: ServiceDescriptor) -> list[str]:
    """Returns the names of the RPCs of `service` that `servicer` really implements."""
    names = []
    for method in service.methods:
        behaviour = getattr(servicer, method.name, None)
        if callable(behaviour) and not getattr(behaviour, _PENDING, False):
            names.append(method.name)
    return names


Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]


class _Call:
    """What every call of one RPC shares: its name, behaviour and counters."""

    def __init__(
        self, method: MethodDescriptor, behaviour: Behaviour | None, counters: RpcCounters
    ) -> None:
        self.full_name = f"/{method.containing_service.full_name}/{method.name}"
        self.behaviour = behaviour
        self.counters = counters

    def check(self, request: Message | _Malformed) -> Behaviour:
        if isinstance(request, _Malformed):
            raise InvalidArgument([("", request.reason)])
        if self.behaviour is None:
            raise Unimplemented(f"{self.full_name} is not implemented yet in this Nexus version")
        return self.behaviour

    async def fail(
        self, context: grpc.aio.ServicerContext[Any, Any], err: Exception, cid: str
    ) -> None:
        """Counts and logs `err`, then aborts the call with its status (always raises)."""
        if isinstance(err, RpcError):
            log.info("%s -> %s: %s", self.full_name, err.code.name, err.message)
        else:
            log.exception("%s failed", self.full_name)
            err = _Internal(f"internal error (correlation id {cid})")
        self.counters.add(self.full_name, err.code)
        await _abort(context, err, cid)

    def unary(self) -> Callable[..., Awaitable[Message]]:
        async def handle(
            request: Message | _Malformed, context: grpc.aio.ServicerContext[Any, Any]
        ) -> Message:
            cid = _correlation_id(context)
            token = correlation_id.set(cid)
            try:
                response = await self.check(request)(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as err:
                await self.fail(context, err, cid)
                raise  # unreachable: fail() aborts
            else:
                context.set_trailing_metadata(((CORRELATION_ID_KEY, cid),))
                self.counters.add(self.full_name, grpc.StatusCode.OK)
                return cast(Message, response)
            finally:
                correlation_id.reset(token)

        return handle

    def server_stream(self) -> Callable[..., AsyncIterator[Message]]:
        async def handle(
            request: Message | _Malformed, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Message]:
            cid = _correlation_id(context)
            token = correlation_id.set(cid)
            try:
                async for item in self.check(request)(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as err:
                await self.fail(context, err, cid)
            else:
                context.set_trailing_metadata(((CORRELATION_ID_KEY, cid),))
                self.counters.add(self.full_name, grpc.StatusCode.OK)
            finally:
                correlation_id.reset(token)

        return handle


def service_handler(
    service: ServiceDescriptor, servicer: object, counters: RpcCounters
) -> grpc.GenericRpcHandler:
    """Builds the gRPC handlers of every RPC of `service`, backed by `servicer`."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_cls = GetMessageClass(method.input_type)
        response_cls = GetMessageClass(method.output_type)
        behaviour = getattr(servicer, method.name, None)
        call = _Call(method, behaviour if callable(behaviour) else None, counters)
        kwargs: dict[str, Any] = {
            "request_deserializer": _deserializer(request_cls),
            "response_serializer": _serializer(response_cls),
        }
        if method.client_streaming:
            raise NotImplementedError(f"client streaming is not supported: {call.full_name}")
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                call.server_stream(), **kwargs
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(call.unary(), **kwargs)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
