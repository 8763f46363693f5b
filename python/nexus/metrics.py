"""Prometheus metrics of a Nexus process, in the text exposition format.

`nexus serve` exposes `/metrics` on `server.metrics_port` (0 disables it):
calls per RPC and status code, and per data source the rows received,
accepted, rejected and flagged by quality issue. Collectors are callables
that return samples, so a service adds its own without a registry library.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["MetricFamily", "MetricsServer", "render"]

log = logging.getLogger("nexus.metrics")


@dataclass(frozen=True)
class MetricFamily:
    """One metric name with its help text, type and labelled samples."""

    name: str
    help: str
    kind: str  # "counter" or "gauge"
    samples: list[tuple[dict[str, str], float]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(families: Iterable[MetricFamily]) -> str:
    """Returns the families in the Prometheus text format (version 0.0.4)."""
    lines = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(
                f"{family.name}{{{text}}} {value:g}" if text else f"{family.name} {value:g}"
            )
    return "\n".join(lines) + "\n"


Collector = Callable[[], list[MetricFamily]]


class MetricsServer:
    """A small HTTP server answering GET /metrics from the collectors."""

    def __init__(self, host: str, port: int, collectors: list[Collector]) -> None:
        self.collectors = collectors
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s %s", self.address_string(), format % args)

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(HTTPStatus.NOT_FOUND, "only /metrics is served here")
                    return
                body = server.render().encode()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="nexus-metrics", daemon=True
        )

    def render(self) -> str:
        """Collects and renders every family now."""
        families: list[MetricFamily] = []
        for collect in self.collectors:
            families.extend(collect())
        return render(families)

    def start(self) -> None:
        """Serves in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stops serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)
