"""The orchestration REST gateway (grows into the operators' dashboard backend)."""

from nexus_gateway.gateway import MAX_BODY_BYTES, Gateway, http_status

__all__ = ["MAX_BODY_BYTES", "Gateway", "http_status"]
