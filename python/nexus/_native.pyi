"""Type stubs of the Rust extension module (checked against it by mypy.stubtest)."""

from os import PathLike
from typing import Any, TypedDict, final

import numpy as np
import numpy.typing as npt

_Int64Array = npt.NDArray[np.int64]

class _ReadReport(TypedDict):
    rows: int
    bad_rows: dict[str, int]
    first_bad_lines: list[tuple[int, str]]
    empty_rows: int

_BarSeries = tuple[
    str, _Int64Array, _Int64Array, _Int64Array, _Int64Array, _Int64Array, _Int64Array
]

__all__ = [
    "BinanceBook",
    "BookStateError",
    "DataFileError",
    "ExecutionEngine",
    "ExecutionError",
    "FixBookFeed",
    "FixDictionary",
    "FixFrame",
    "FixFrameError",
    "FixMarketDataSession",
    "FixMessage",
    "FixParseError",
    "OrderBook",
    "OrderGateway",
    "PaperMarketDataServer",
    "PaperVenueServer",
    "ParquetDay",
    "PriceError",
    "QuoteValidator",
    "__version__",
    "aggregate_bars",
    "atr",
    "binance_book_columns",
    "bollinger",
    "ema",
    "encode_stream_ticks",
    "encode_stream_ticks_batches",
    "fix_build",
    "fix_checksum",
    "fix_encode_frame",
    "fix_verify_frame",
    "macd",
    "parse_price",
    "read_lean_quote_bars",
    "read_lean_quote_ticks",
    "read_lean_trade_bars",
    "read_lean_trade_ticks",
    "realised_volatility",
    "replay_binance_book",
    "rolling_vwap",
    "rsi",
    "run_quote_pipeline",
    "run_quote_pipeline_csv",
    "sma",
    "vwap",
]

__version__: str

@final
class FixFrame:
    """The framing fields of a checked FIX message."""

    @property
    def begin_string(self) -> str: ...
    @property
    def body_length(self) -> int: ...
    @property
    def msg_type(self) -> str: ...
    @property
    def checksum(self) -> int: ...

@final
class FixMessage:
    """A parsed FIX message: owns its bytes and the offsets of its fields."""

    def __new__(cls, data: bytes) -> FixMessage: ...
    @property
    def msg_type(self) -> str: ...
    def get(self, tag: int) -> bytes | None: ...
    def fields(self) -> list[tuple[int, bytes]]: ...
    def __len__(self) -> int: ...
    def to_bytes(self) -> bytes: ...

@final
class FixDictionary:
    """A FIX data dictionary loaded from a QuickFIX XML spec, with validation."""

    def __new__(cls, path: str | PathLike[str]) -> FixDictionary: ...
    @property
    def version(self) -> str: ...
    def parse(self, data: bytes) -> FixMessage: ...
    def validate(self, data: bytes) -> tuple[int, int | None, str] | None: ...

class FixParseError(ValueError):
    """Bytes are not a FIX message the codec can parse."""

def fix_build(
    begin_string: str,
    msg_type: str,
    sender: str,
    target: str,
    seq_num: int,
    sending_time_ns: int,
    fields: list[tuple[int, bytes]],
) -> bytes: ...

class ExecutionError(ValueError):
    """The execution engine could not do what was asked (session down, order closed, ...)."""

@final
class ExecutionEngine:
    """Order manager, FIX initiators and paper venues (simulators), in process."""

    def __new__(
        cls,
        instruments: list[tuple[str, int, int, int]],
        *,
        venue_port: int = 0,
        connect_to: tuple[str, int] | None = None,
        tls: dict[str, str | PathLike[str]] | None = None,
        heart_bt_int: int = 30,
        sender: str = "NEXUS",
        target: str = "PAPER",
        max_order_quantity: int | None = None,
        max_notional: int | None = None,
        max_position: int | None = None,
        collar_bps: int = 0,
        max_orders_per_second: int = 0,
        fee_bps: int = 0,
        venues: list[tuple[str, int, float] | dict[str, Any]] | None = None,
        latency_cost_bps_per_ms: float = 0.1,
        store_dir: str | PathLike[str] | None = None,
        journal_dir: str | PathLike[str] | None = None,
        journal_compact_bytes: int = 16_777_216,
        wait_spin_us: int = 200,
        busy_poll_us: int = 0,
        caller_reads_us: int = 0,
    ) -> ExecutionEngine: ...
    def wait_logged_on(self, timeout_s: float) -> bool: ...
    def on_quote(
        self, symbol: str, bid: int, ask: int, bid_size: int, ask_size: int, ts_ns: int
    ) -> None: ...
    def submit(
        self,
        client_order_id: str,
        symbol: str,
        side: str,
        order_type: str,
        quantity: int,
        limit_price: int | None = None,
        time_in_force: str = "day",
        venues: list[str] | None = None,
    ) -> dict[str, Any]: ...
    def cancel(self, order_id: int, new_client_order_id: str) -> dict[str, Any]: ...
    def replace(
        self, order_id: int, new_client_order_id: str, quantity: int, limit_price: int | None
    ) -> dict[str, Any]: ...
    def orders(self) -> list[dict[str, Any]]: ...
    def order(self, order_id: int) -> dict[str, Any] | None: ...
    def order_by_client_id(self, client_order_id: str) -> dict[str, Any] | None: ...
    def positions(self) -> list[dict[str, Any]]: ...
    def reports_since(self, sequence: int, max_reports: int = 1000) -> list[dict[str, Any]]: ...
    def last_sequence(self) -> int: ...
    def wait_report_after(self, sequence: int, timeout_s: float, *, spin: bool = True) -> int: ...
    def set_kill_switch(self, engaged: bool) -> list[int]: ...
    def session(self) -> dict[str, Any]: ...
    def sessions(self) -> list[dict[str, Any]]: ...
    def venue_stats(self) -> list[dict[str, Any]]: ...
    def journal(self) -> dict[str, Any] | None: ...
    def unapplied(self) -> list[str]: ...
    def stop(self) -> None: ...

@final
class OrderGateway:
    """Native gRPC order entry: SubmitOrder, CancelOrder and ReplaceOrder in Rust, every other
    call to the service."""

    def __new__(
        cls,
        engine: ExecutionEngine,
        instruments: list[tuple[str, str, int, int]],
        venues: list[str],
        upstream: tuple[str, int],
        host: str = "127.0.0.1",
        port: int = 0,
        ack_wait_s: float = 5.0,
        ack_spin_us: int = 300,
        max_message_bytes: int = 16_777_216,
        max_concurrent_streams: int = 256,
        worker_threads: int = 2,
    ) -> OrderGateway: ...
    @property
    def port(self) -> int: ...
    @property
    def host(self) -> str: ...
    def stats(self) -> dict[str, Any]: ...
    def stop(self) -> None: ...

@final
class PaperMarketDataServer:
    """The market-data venue (a simulator) behind a FIX 4.4 acceptor on 127.0.0.1."""

    def __new__(
        cls,
        instruments: dict[str, tuple[int, int]],
        *,
        depth: int = 1,
        sender_comp_id: str = "PAPER-MD",
        clients: list[str] = ...,
        port: int = 0,
    ) -> PaperMarketDataServer: ...
    @property
    def port(self) -> int: ...
    def set_book(
        self, symbol: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]]
    ) -> int: ...
    def on_quote(self, symbol: str, bid: int, ask: int, bid_size: int, ask_size: int) -> int: ...
    def drop_next_updates(self, symbol: str, count: int) -> None: ...
    def book(self, symbol: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: ...
    def stats(self) -> dict[str, int]: ...
    def stop(self) -> None: ...

@final
class PaperVenueServer:
    """The paper venue (a simulator) behind a FIX 4.4 acceptor on 127.0.0.1."""

    def __new__(
        cls,
        instruments: list[tuple[str, int, int, int]],
        sessions: list[tuple[str, str]],
        *,
        port: int = 0,
        fee_bps: int = 0,
        tls: dict[str, str | PathLike[str] | bool] | None = None,
    ) -> PaperVenueServer: ...
    @property
    def port(self) -> int: ...
    def on_quote(
        self, symbol: str, bid: int, ask: int, bid_size: int, ask_size: int, ts_ns: int
    ) -> int: ...
    def is_logged_on(self, sender_comp_id: str, target_comp_id: str) -> bool: ...
    def seq_nums(self, sender_comp_id: str, target_comp_id: str) -> tuple[int, int] | None: ...
    def transport_failures(self) -> tuple[int, str | None]: ...
    def stop(self) -> None: ...

class FixFrameError(ValueError):
    """A byte sequence is not a well-framed FIX message."""

class BookStateError(ValueError):
    """An order book refused a snapshot or an update (gap, negative size, not live)."""

@final
class ParquetDay:
    """A Parquet day file of the store, read one row group at a time."""

    def __new__(cls, path: str | PathLike[str]) -> ParquetDay: ...
    @property
    def row_groups(self) -> int: ...
    @property
    def rows(self) -> int: ...
    def read_row_group(
        self, index: int, columns: list[str]
    ) -> list[npt.NDArray[np.int64] | npt.NDArray[np.int32] | npt.NDArray[np.uint32]]: ...

@final
class OrderBook:
    """An L2 order book with fixed-point prices and sizes."""

    def __new__(cls, price_scale: int, size_scale: int) -> OrderBook: ...
    def apply_snapshot(
        self,
        bid_prices: _Int64Array,
        bid_sizes: _Int64Array,
        ask_prices: _Int64Array,
        ask_sizes: _Int64Array,
        sequence: int,
    ) -> None: ...
    def apply_deltas(
        self, sides: npt.NDArray[np.uint8], prices: _Int64Array, sizes: _Int64Array
    ) -> int: ...
    def best_bid(self) -> tuple[int, int] | None: ...
    def best_ask(self) -> tuple[int, int] | None: ...
    def depth(self, n: int) -> tuple[_Int64Array, _Int64Array, _Int64Array, _Int64Array]: ...
    def mid(self) -> float | None: ...
    def micro_price(self) -> float | None: ...
    def imbalance(self) -> float | None: ...
    def spread(self) -> int | None: ...
    def is_crossed(self) -> bool: ...
    @property
    def state(self) -> str: ...
    @property
    def sequence(self) -> int: ...
    def level_counts(self) -> tuple[int, int]: ...

@final
class BinanceBook:
    """A live Binance book fed one JSON message at a time."""

    def __new__(cls, market_name: str, price_scale: int, size_scale: int) -> BinanceBook: ...
    def on_message(self, message: str) -> str: ...
    def stats(self) -> dict[str, Any]: ...
    def book(self) -> OrderBook: ...

_FixOutcome = tuple[str, str | None, str | None]

@final
class FixBookFeed:
    """L2 order books kept by FIX market data (35=W and 35=X), one per symbol."""

    def __new__(cls, instruments: dict[str, tuple[int, int]]) -> FixBookFeed: ...
    def add_instrument(self, symbol: str, price_scale: int, size_scale: int) -> None: ...
    def on_message(self, message: bytes) -> _FixOutcome: ...
    def on_messages(self, messages: list[bytes]) -> list[_FixOutcome]: ...
    def on_buffer(self, data: bytes) -> list[_FixOutcome]: ...
    def book(self, symbol: str) -> OrderBook: ...
    def symbols(self) -> list[str]: ...
    def needs_snapshot(self) -> list[str]: ...
    def stats(self) -> dict[str, Any]: ...
    def set_gap_buffer(self, max_changes: int) -> None: ...
    def buffered(self, symbol: str) -> int: ...

@final
class FixMarketDataSession:
    """A live FIX market-data session (MarketDataRequest, W/X into L2 books)."""

    def __new__(
        cls,
        host: str,
        port: int,
        sender_comp_id: str,
        target_comp_id: str,
        instruments: dict[str, tuple[int, int]],
        *,
        depth: int = 0,
        begin_string: str = "FIX.4.4",
        heart_bt_int: int = 30,
        stale_after_s: float = 5.0,
        gap_buffer: int = 10_000,
        reconnect_min_s: float = 0.1,
    ) -> FixMarketDataSession: ...
    def book(self, symbol: str) -> OrderBook: ...
    def symbols(self) -> list[str]: ...
    def status(self) -> dict[str, Any]: ...
    def stats(self) -> dict[str, Any]: ...
    def stop(self) -> None: ...

def replay_binance_book(
    path: str | PathLike[str], market_name: str, price_scale: int, size_scale: int
) -> tuple[OrderBook, dict[str, int]]: ...
def binance_book_columns(
    path: str | PathLike[str], price_scale: int, size_scale: int
) -> tuple[
    tuple[_Int64Array, _Int64Array, _Int64Array, _Int64Array, int],
    tuple[npt.NDArray[np.uint8], _Int64Array, _Int64Array],
]: ...

class DataFileError(ValueError):
    """A market-data file is not in the format its reader expects."""

class PriceError(ValueError):
    """A text is not a valid price at the requested scale."""

@final
class QuoteValidator:
    """Checks quotes of one instrument in order and counts rejections by reason."""

    def __new__(cls) -> QuoteValidator: ...
    def check(self, ts_ns: int, bid: int, ask: int) -> str | None: ...
    def check_batch(
        self, ts_ns: _Int64Array, bid: _Int64Array, ask: _Int64Array
    ) -> npt.NDArray[np.bool_]: ...
    def flag_batch(
        self, ts_ns: _Int64Array, bid: _Int64Array, ask: _Int64Array
    ) -> npt.NDArray[np.uint32]: ...
    @property
    def accepted(self) -> int: ...
    def rejections(self) -> list[tuple[str, int]]: ...

_Floats = npt.NDArray[np.float64]

def sma(values: _Floats, period: int) -> _Floats: ...
def ema(values: _Floats, period: int) -> _Floats: ...
def rsi(values: _Floats, period: int) -> _Floats: ...
def macd(
    values: _Floats, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[_Floats, _Floats, _Floats]: ...
def bollinger(
    values: _Floats, period: int = 20, k_up: float = 2.0, k_down: float = 2.0
) -> tuple[_Floats, _Floats, _Floats]: ...
def atr(high: _Floats, low: _Floats, close: _Floats, period: int) -> _Floats: ...
def vwap(price: _Floats, volume: _Floats) -> _Floats: ...
def rolling_vwap(price: _Floats, volume: _Floats, window: int) -> _Floats: ...
def realised_volatility(prices: _Floats, window: int) -> _Floats: ...
def aggregate_bars(
    kind: str, ts_ns: _Int64Array, price: _Int64Array, size: _Int64Array, bar_size: int = 0
) -> tuple[
    _Int64Array,
    _Int64Array,
    _Int64Array,
    _Int64Array,
    _Int64Array,
    _Int64Array,
    _Int64Array,
    npt.NDArray[np.uint64],
]: ...
def run_quote_pipeline(
    path: str | PathLike[str],
    price_scale: int,
    utc_offset_minutes: int = 0,
    ema_period: int = 20,
    rsi_period: int = 14,
    inflate_thread: bool = True,
) -> tuple[
    npt.NDArray[np.uint32],
    _Floats,
    _Floats,
    tuple[
        _Int64Array,
        _Int64Array,
        _Int64Array,
        _Int64Array,
        _Int64Array,
        _Int64Array,
        _Int64Array,
        npt.NDArray[np.uint64],
    ],
    int,
]: ...
def run_quote_pipeline_csv(
    csv: bytes, day_ns: int, price_scale: int, ema_period: int = 20, rsi_period: int = 14
) -> tuple[
    npt.NDArray[np.uint32],
    _Floats,
    _Floats,
    tuple[
        _Int64Array,
        _Int64Array,
        _Int64Array,
        _Int64Array,
        _Int64Array,
        _Int64Array,
        _Int64Array,
        npt.NDArray[np.uint64],
    ],
    int,
]: ...
def encode_stream_ticks(
    symbol: str,
    venue: str,
    price_scale: int,
    size_scale: int,
    ts_ns: _Int64Array,
    bid: _Int64Array,
    ask: _Int64Array,
    flags: npt.NDArray[np.uint32] | None = None,
    sequence: int = 0,
    dropped_ticks: int = 0,
    end_of_replay: bool = False,
) -> bytes: ...
def encode_stream_ticks_batches(
    symbol: str,
    venue: str,
    price_scale: int,
    size_scale: int,
    ts_ns: _Int64Array,
    bid: _Int64Array,
    ask: _Int64Array,
    flags: npt.NDArray[np.uint32] | None,
    batch_size: int,
    first_sequence: int,
    dropped_ticks: int = 0,
) -> list[bytes]: ...
def fix_checksum(data: bytes) -> int: ...
def fix_verify_frame(data: bytes) -> FixFrame: ...
def fix_encode_frame(begin_string: str, body: bytes) -> bytes: ...
def parse_price(text: str, scale: int) -> int: ...
def read_lean_quote_ticks(
    path: str | PathLike[str], price_scale: int, utc_offset_minutes: int = 0
) -> tuple[_Int64Array, _Int64Array, _Int64Array, _ReadReport]: ...
def read_lean_trade_ticks(
    path: str | PathLike[str], price_scale: int, size_scale: int = 0, utc_offset_minutes: int = 0
) -> tuple[list[tuple[str, _Int64Array, _Int64Array, _Int64Array]], _ReadReport]: ...
def read_lean_quote_bars(
    path: str | PathLike[str], side: str, price_scale: int, utc_offset_minutes: int = 0
) -> tuple[list[_BarSeries], _ReadReport]: ...
def read_lean_trade_bars(
    path: str | PathLike[str], price_scale: int, size_scale: int = 0, utc_offset_minutes: int = 0
) -> tuple[list[_BarSeries], _ReadReport]: ...
