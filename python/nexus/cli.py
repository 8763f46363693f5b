"""The `nexus` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nexus
from nexus.config import ConfigError, Settings, load_settings

__all__ = ["main"]


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    server: dict[str, Any] = {}
    if getattr(args, "host", None) is not None:
        server["host"] = args.host
    if getattr(args, "port", None) is not None:
        server["port"] = args.port
    if server:
        overrides["server"] = server
    if getattr(args, "services", None):
        overrides["services"] = args.services
    return load_settings(args.config, overrides)


def _cmd_serve(args: argparse.Namespace) -> int:
    from nexus.logs import configure_logging
    from nexus.server import serve

    settings = _settings(args)
    configure_logging(settings.log.level, settings.log.format)
    try:
        asyncio.run(serve(settings, port_file=args.port_file))
    except OSError as err:
        print(f"nexus serve: {err}", file=sys.stderr)
        return 1
    return 0


def _client(args: argparse.Namespace) -> Any:
    from nexus_client import NexusClient

    return NexusClient(args.target, timeout_s=args.timeout)


def _cmd_status(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from nexus_client import NexusError

    with _client(args) as client:
        try:
            status = client.system_status()
        except NexusError as err:
            print(f"nexus status: {args.target}: {err}", file=sys.stderr)
            return 1
    print(json.dumps(json_format.MessageToDict(status), indent=2))
    return 0


def _cmd_health(args: argparse.Namespace) -> int:
    from nexus_client import NexusError

    with _client(args) as client:
        try:
            state = client.health(args.service)
        except NexusError as err:
            print(f"nexus health: {args.target}: {err}", file=sys.stderr)
            return 1
    print(state)
    return 0 if state == "SERVING" else 1


def _cmd_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.action == "schema":
        print(json.dumps(Settings.model_json_schema(), indent=2))
    else:
        print(json.dumps(settings.model_dump(mode="json"), indent=2))
    return 0


def _cmd_gateway(args: argparse.Namespace) -> int:
    from nexus.logs import configure_logging
    from nexus_gateway import Gateway

    settings = _settings(args)
    configure_logging(settings.log.level, settings.log.format)
    try:
        gateway = Gateway(args.target, args.host, args.port)
    except OSError as err:
        print(f"nexus gateway: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    print(f"nexus gateway on http://{args.host}:{gateway.port} -> {args.target}", flush=True)
    try:
        gateway.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        gateway.stop()
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from nexus.logs import configure_logging
    from nexus.services.marketdata.ingest import ISSUE_NAMES, FeedStatusBoard, ingest
    from nexus.services.marketdata.store import TickStore

    settings = _settings(args)
    configure_logging("WARNING", "text")
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"nexus ingest: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 1
    store = TickStore(settings.marketdata.store_dir or settings.data_dir / "store")
    board = FeedStatusBoard()
    report = ingest(store, args.paths, board, progress=not args.quiet and sys.stderr.isatty())
    print(
        f"ingested {report.files} files ({report.skipped_known} already taken) into {store.root}: "
        f"{report.rows_stored} rows stored, {report.rows_flagged} flagged, "
        f"{report.rows_rejected} rejected"
    )
    for source, counters in sorted(board.snapshot().items()):
        issues = {ISSUE_NAMES[i]: n for i, n in (counters.rejected + counters.flagged).items()}
        print(f"  {source}: received {counters.received}, accepted {counters.accepted}, {issues}")
    for reason in report.unknown:
        print(f"  skipped: {reason}", file=sys.stderr)
    return 0


def _cmd_version(args: argparse.Namespace) -> int:
    from nexus import engine

    print(f"nexus {nexus.__version__} (engine {engine.engine_version})")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from nexus.bench import BENCHMARKS, run

    if args.list:
        for name, bench in BENCHMARKS.items():
            print(f"{name:20} {bench.description}")
        return 0
    return run(args.names or list(BENCHMARKS), repeats=args.repeats)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nexus",
        description="Nexus: autonomous trading for FX and futures over gRPC and Rust engines.",
    )
    parser.add_argument("--version", action="version", version=f"nexus {nexus.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(handler=handler)
        return p

    def config_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            type=Path,
            help="TOML configuration file (default: $NEXUS_CONFIG, else the embedded defaults)",
        )

    def client_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--target", default="127.0.0.1:50051", help="server address (host:port)")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")

    p = add("serve", _cmd_serve, "Run the gRPC server hosting the configured services.")
    config_option(p)
    p.add_argument("--host", help="address to listen on (overrides server.host)")
    p.add_argument("--port", type=int, help="port to listen on; 0 picks a free one")
    p.add_argument(
        "--services",
        help="comma-separated services to host (default: all): "
        "hub,marketdata,execution,snn,news,clustering,portfolio,risk",
    )
    p.add_argument("--port-file", type=Path, help="write the bound port to this file when ready")

    p = add("status", _cmd_status, "Print the system status of a running server as JSON.")
    client_options(p)

    p = add("health", _cmd_health, "Check a server's gRPC health; exit 0 when SERVING.")
    client_options(p)
    p.add_argument("--service", default="", help="full service name (default: the whole server)")

    p = add("config", _cmd_config, "Print the effective configuration, or its JSON schema.")
    config_option(p)
    p.add_argument("action", nargs="?", choices=["show", "schema"], default="show")

    p = add("gateway", _cmd_gateway, "Run the REST gateway (JSON over HTTP) in front of a server.")
    config_option(p)
    p.add_argument("--target", default="127.0.0.1:50051", help="gRPC server address")
    p.add_argument("--host", default="127.0.0.1", help="HTTP address to listen on")
    p.add_argument("--port", type=int, default=8080, help="HTTP port; 0 picks a free one")

    p = add("ingest", _cmd_ingest, "Ingest market-data files or folders into the store.")
    config_option(p)
    p.add_argument("paths", nargs="+", type=Path, help="Lean zip files or folders holding them")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    add("version", _cmd_version, "Print the versions of Nexus and of its Rust engine.")

    p = add("bench", _cmd_bench, "Run benchmarks; each prints its baseline and the ratio.")
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per figure (median)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `nexus` command; returns its exit status."""
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as err:
        print(f"nexus: {err}", file=sys.stderr)
        return 2
