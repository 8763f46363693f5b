"""The one typed configuration of Nexus.

Sources, highest precedence first: explicit overrides (command-line flags),
environment variables (`NEXUS_` prefix, `__` between nested names, e.g.
`NEXUS_SERVER__PORT=6000`), a TOML file (`--config FILE` or `NEXUS_CONFIG`),
and the embedded defaults, which need no file at all. Unknown keys are errors,
so a typo in a file or variable fails loudly instead of being ignored.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "ConfigError",
    "ExecutionConfig",
    "FixMarketDataSessionConfig",
    "LogConfig",
    "MarketDataConfig",
    "PaperMarketDataConfig",
    "PaperVenueConfig",
    "ServerConfig",
    "ServiceName",
    "Settings",
    "VenueConfig",
    "VenueTlsConfig",
    "WebSocketFeedConfig",
    "load_settings",
]


class ServiceName(StrEnum):
    """The gRPC services one `nexus serve` process can host."""

    HUB = "hub"
    MARKETDATA = "marketdata"
    EXECUTION = "execution"
    SNN = "snn"
    NEWS = "news"
    CLUSTERING = "clustering"
    PORTFOLIO = "portfolio"
    RISK = "risk"


class ConfigError(ValueError):
    """The configuration file or environment is invalid; the message says where."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    """Where and how the gRPC server listens."""

    host: str = "127.0.0.1"
    port: int = Field(default=50051, ge=0, le=65535, description="0 picks a free port")
    max_workers: int = Field(default=8, ge=1, le=256, description="threads for blocking work")
    grace_period_s: float = Field(
        default=5.0, ge=0, le=300, description="time in-flight RPCs get on SIGTERM"
    )
    reflection: bool = True
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1 << 30)
    max_concurrent_streams: int = Field(default=256, ge=1, le=100_000)
    metrics_port: int | None = Field(
        default=9464,
        ge=0,
        le=65535,
        description="Prometheus /metrics; 0 picks a free port, null disables",
    )


_SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "market"


def _sample_data() -> tuple[Path, ...]:
    """The real sample shipped in the repository (data/sample/market), when present."""
    return (_SAMPLE / "fx",) if (_SAMPLE / "fx").is_dir() else ()


def _sample_books() -> tuple[Path, ...]:
    """The recorded Binance feed shipped in the repository, when present."""
    feed = _SAMPLE / "crypto" / "hftbacktest_binance_spot" / "btcusdt_20240808.gz"
    return (feed,) if feed.is_file() else ()


class WebSocketFeedConfig(_Section):
    """A live JSON-over-WebSocket order-book feed (Binance combined-stream format)."""

    url: str = Field(
        description="e.g. wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms"
    )
    symbol: str = Field(description="instrument symbol, e.g. BTCUSDT")
    venue: str = "BINANCE"
    market: Literal["spot", "usdm"] = "spot"
    stale_after_s: float = Field(default=5.0, gt=0)


class FixBookLogConfig(_Section):
    """A FIX market-data log (35=W snapshots, 35=X updates) replayed into order books."""

    path: Path = Field(description="FIX messages back to back or one a line")
    venue: str = Field(description="venue of the instruments its Symbol (55) names, e.g. BINANCE")


_COMP_ID = r"^[!-~]{1,32}$"


class FixMarketDataSessionConfig(_Section):
    """A live FIX market-data session: MarketDataRequest (35=V), then the venue's
    snapshots (35=W) and incremental refreshes (35=X) kept in L2 books."""

    venue: str = Field(description="venue of the instruments; feed status source fix:<venue>")
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535, description="the venue's FIX acceptor")
    sender: str = Field(default="NEXUS", pattern=_COMP_ID, description="our SenderCompID")
    target: str = Field(pattern=_COMP_ID, description="the venue's CompID (our TargetCompID)")
    symbols: tuple[str, ...] = Field(
        default=(), description="Symbol (55) of each instrument to subscribe; empty: all of venue"
    )
    depth: int = Field(default=0, ge=0, le=10_000, description="MarketDepth (264); 0: full book")
    begin_string: Literal["FIX.4.4", "FIX.4.2"] = "FIX.4.4"
    heart_bt_int: int = Field(default=30, ge=1, le=3600, description="HeartBtInt, s")
    stale_after_s: float = Field(
        default=5.0, gt=0, description="no W or X this long while logged on is stale"
    )
    gap_buffer: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="level changes buffered per book while it waits for a snapshot",
    )


class PaperMarketDataConfig(_Section):
    """The market-data venue simulator, fed with stored quotes, and a live FIX
    market-data session subscribed to it (source fix:paper-md)."""

    enabled: bool = Field(default=False, description="start the simulator and its session")
    instruments: tuple[str, ...] = Field(
        default=("OANDA:EUR/USD",), description="VENUE:SYMBOL of the stored quotes it publishes"
    )
    replay_speed: float = Field(default=60.0, gt=0, description="x real time, looping")
    quote_size: int = Field(default=1_000_000, gt=0, description="size shown at each quote")
    stale_after_s: float = Field(default=5.0, gt=0)


class MarketDataConfig(_Section):
    """The market-data service: its store, what it ingests, how it streams."""

    store_dir: Path | None = Field(default=None, description="default: <data_dir>/store")
    ingest_on_start: tuple[Path, ...] = Field(
        default_factory=_sample_data,
        description="files or folders ingested at start; files already taken are skipped",
    )
    order_book_feeds: tuple[Path, ...] = Field(
        default_factory=_sample_books,
        description="recorded Binance feeds replayed into order books at start",
    )
    fix_book_logs: tuple[FixBookLogConfig, ...] = Field(
        default=(),
        description="FIX market-data logs (35=W/35=X) replayed into order books at start",
    )
    websocket_feeds: tuple[WebSocketFeedConfig, ...] = Field(
        default=(), description="live order-book feeds to connect at start"
    )
    fix_sessions: tuple[FixMarketDataSessionConfig, ...] = Field(
        default=(), description="live FIX market-data sessions to start"
    )
    paper_market_data: PaperMarketDataConfig = PaperMarketDataConfig()
    stream_queue_batches: int = Field(
        default=64, ge=1, le=10_000, description="bounded queue per stream, in messages"
    )
    default_batch_size: int = Field(default=1000, ge=1, le=65_536)


class VenueTlsConfig(_Section):
    """TLS to an external venue: PEM files, read and checked when the service starts."""

    ca: Path = Field(description="CA bundle that verifies the venue's certificate")
    server_name: str = Field(
        min_length=1, description="DNS name or IP address the venue's certificate must carry"
    )
    cert: Path | None = Field(default=None, description="our certificate chain (mutual TLS)")
    key: Path | None = Field(default=None, description="the private key of cert")

    @model_validator(mode="after")
    def _cert_with_key(self) -> VenueTlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls.cert and tls.key go together (mutual TLS) or not at all")
        return self


class VenueConfig(_Section):
    """One venue: a paper venue (a simulator) with its fees and simulated latency, or,
    with `connect_to`, an external FIX 4.4 acceptor, optionally over TLS."""

    name: str = Field(
        pattern=r"^[!-~]{1,32}$",
        description="the venue's name and FIX SenderCompID (printable ASCII, no spaces)",
    )
    fee_bps: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="fee per fill, bps of notional (for an external venue: what selection assumes)",
    )
    latency_ms: float = Field(
        default=0.0, ge=0, le=10_000, description="simulated latency of each answer, ms"
    )
    connect_to: str | None = Field(
        default=None,
        pattern=r"^[^\s:]+:[0-9]{1,5}$",
        description="HOST:PORT of an external FIX 4.4 acceptor instead of a paper venue",
    )
    tls: VenueTlsConfig | None = Field(
        default=None, description="TLS to the external acceptor (connect_to); none: plain TCP"
    )

    @model_validator(mode="after")
    def _tls_needs_connect_to(self) -> VenueConfig:
        if self.tls is not None and self.connect_to is None:
            raise ValueError(
                f"venue {self.name}: tls is for an external venue (connect_to); "
                "paper venues are plain TCP on 127.0.0.1"
            )
        return self

    def engine_entry(self) -> tuple[str, int, float] | dict[str, Any]:
        """The venue as the native engine takes it."""
        if self.connect_to is None:
            return (self.name, self.fee_bps, self.latency_ms)
        host, _, port = self.connect_to.rpartition(":")
        entry: dict[str, Any] = {
            "name": self.name,
            "fee_bps": self.fee_bps,
            "latency_ms": self.latency_ms,
            "connect_to": (host, int(port)),
        }
        if self.tls is not None:
            entry["tls"] = {k: v for k, v in self.tls.model_dump().items() if v is not None}
        return entry


PaperVenueConfig = VenueConfig


class ExecutionConfig(_Section):
    """The execution service: its paper venues (simulators), venue selection and limits."""

    paper_instruments: tuple[str, ...] = Field(
        default=("OANDA:EUR/USD",),
        description="VENUE:SYMBOL of the data that prices the paper venue",
    )
    replay_speed: float = Field(
        default=60.0, gt=0, description="how fast stored quotes drive the paper venue (x real time)"
    )
    quote_size: int = Field(
        default=1_000_000, gt=0, description="size shown at each quote when the data has none"
    )
    venues: tuple[VenueConfig, ...] = Field(
        default=(
            VenueConfig(name="PAPER", fee_bps=1, latency_ms=0.0),
            VenueConfig(name="PAPER-SLOW", fee_bps=0, latency_ms=20.0),
        ),
        min_length=1,
        description="the venues orders are routed between (paper, or external with connect_to), "
        "each over its own FIX session",
    )
    algo_slice_s: float = Field(
        default=10.0,
        ge=0.05,
        le=3600,
        description="algo orders: interval between child orders when the request sets none, s",
    )
    persist_sessions: bool = Field(
        default=True,
        description="keep FIX messages and sequence numbers in <data_dir>/fix, resumed on restart",
    )
    persist_orders: bool = Field(
        default=True,
        description="journal orders, positions and algo orders in <data_dir>/orders, "
        "restored and reconciled with the venues on restart",
    )
    ack_spin_us: int = Field(
        default=200,
        ge=0,
        le=10_000,
        description="SubmitOrder with await_venue_ack: how long the engine spins for the "
        "venue's answer before it sleeps, microseconds (a core is busy meanwhile); 0 sleeps",
    )
    busy_poll_us: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="after each FIX message, how long the sessions' readers keep polling their "
        "sockets without sleeping, microseconds (lower latency; a core per session busy while "
        "orders flow); 0 sleeps at once",
    )
    caller_reads_us: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="SubmitOrder with await_venue_ack: the waiting caller reads the venue's "
        "answer from the FIX socket itself while it spins (no hand-off from the session's "
        "reader, which stays aside that long after the last such read, microseconds; a report "
        "arriving while no caller waits is applied that much later at most); 0: never",
    )
    order_gateway_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="native order entry: a second gRPC port on server.host serving the whole "
        "ExecutionService, SubmitOrder, CancelOrder and ReplaceOrder answered in Rust and every "
        "other call passed to this service; 0 picks a free port, null off",
    )
    latency_cost_bps_per_ms: float = Field(
        default=0.1,
        ge=0,
        le=100,
        description="venue selection: cost charged per ms of a venue's measured ack time, bps",
    )
    max_order_quantity: int | None = Field(default=10_000_000, ge=1)
    max_position: int | None = Field(default=50_000_000, ge=1)
    collar_bps: int = Field(
        default=100, ge=0, description="price collar around the last quote; 0 off"
    )
    max_orders_per_second: int = Field(default=50, ge=0, description="order throttle; 0 off")

    @field_validator("venues")
    @classmethod
    def _venue_names_unique(cls, value: tuple[VenueConfig, ...]) -> Any:
        names = [v.name for v in value]
        if len(set(names)) != len(names):
            raise ValueError(f"venue names must be unique, got {names}")
        if "NEXUS" in names:
            raise ValueError("NEXUS is our own SenderCompID, not a venue name")
        return value


class LogConfig(_Section):
    """Logging: JSON lines for services, text for people at a terminal."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class Settings(BaseSettings):
    """Everything a Nexus process needs to know, with embedded defaults."""

    model_config = SettingsConfigDict(
        env_prefix="NEXUS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    topology: Literal["embedded", "distributed"] = "embedded"
    trading_mode: Literal["paper", "live"] = "paper"
    data_dir: Path = Field(default=Path("var"), description="state, stores and logs")
    services: tuple[ServiceName, ...] = tuple(ServiceName)
    server: ServerConfig = ServerConfig()
    log: LogConfig = LogConfig()
    marketdata: MarketDataConfig = MarketDataConfig()
    execution: ExecutionConfig = ExecutionConfig()

    @field_validator("services", mode="before")
    @classmethod
    def _split_services(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("services")
    @classmethod
    def _services_unique(cls, value: tuple[ServiceName, ...]) -> tuple[ServiceName, ...]:
        if not value:
            raise ValueError("at least one service must be enabled")
        if len(set(value)) != len(value):
            raise ValueError("a service is listed twice")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest first; nested sections are merged key by key across sources.
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        path = _config_file.get()
        if path is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=path),)
        return sources


_config_file: ContextVar[Path | None] = ContextVar("nexus_config_file", default=None)


def load_settings(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Returns the settings from defaults, a TOML file, the environment and overrides.

    `path` defaults to `$NEXUS_CONFIG`; with neither, only the embedded
    defaults and the environment apply.

    Raises:
        ConfigError: the file is missing or not TOML, or a value is invalid.
    """
    if path is None and os.environ.get("NEXUS_CONFIG"):
        path = Path(os.environ["NEXUS_CONFIG"])
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    token = _config_file.set(path)
    try:
        return Settings(**(overrides or {}))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from err
    except ValidationError as err:
        where = f" (file {path} and NEXUS_* variables)" if path else " (NEXUS_* variables)"
        raise ConfigError(f"invalid configuration{where}: {err}") from err
    finally:
        _config_file.reset(token)
