"""The Rust engines, as Python sees them: the one module that imports `nexus._native`.

Errors raised by the engines are `ValueError` subclasses with a message that
says what was wrong (`FixFrameError`, `PriceError`, `DataFileError`), or
`OSError` for files that cannot be read; no Rust panic crosses into Python.
Batch readers release the GIL and return numpy arrays that own the Rust
buffers (no copy).
"""

from nexus._native import (  # noqa: TID251 - this wrapper is the one allowed importer
    BookStateError,
    DataFileError,
    FixFrame,
    FixFrameError,
    OrderBook,
    PriceError,
    QuoteValidator,
    aggregate_bars,
    atr,
    binance_book_columns,
    bollinger,
    ema,
    encode_stream_ticks,
    encode_stream_ticks_batches,
    fix_checksum,
    fix_encode_frame,
    fix_verify_frame,
    macd,
    parse_price,
    read_lean_quote_bars,
    read_lean_quote_ticks,
    read_lean_trade_bars,
    read_lean_trade_ticks,
    realised_volatility,
    replay_binance_book,
    rolling_vwap,
    rsi,
    sma,
    vwap,
)
from nexus._native import __version__ as engine_version  # noqa: TID251

__all__ = [
    "BookStateError",
    "DataFileError",
    "FixFrame",
    "FixFrameError",
    "OrderBook",
    "PriceError",
    "QuoteValidator",
    "aggregate_bars",
    "atr",
    "binance_book_columns",
    "bollinger",
    "ema",
    "encode_stream_ticks",
    "encode_stream_ticks_batches",
    "engine_version",
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
    "sma",
    "vwap",
]
