"""The Rust engines, as Python sees them: the one module that imports `nexus._native`.

Errors raised by the engines are `ValueError` subclasses with a message that
says what was wrong (`FixFrameError`, `PriceError`); no Rust panic crosses
into Python.
"""

from nexus._native import (  # noqa: TID251 - this wrapper is the one allowed importer
    FixFrame,
    FixFrameError,
    PriceError,
    QuoteValidator,
    fix_checksum,
    fix_encode_frame,
    fix_verify_frame,
    parse_price,
)
from nexus._native import __version__ as engine_version  # noqa: TID251

__all__ = [
    "FixFrame",
    "FixFrameError",
    "PriceError",
    "QuoteValidator",
    "engine_version",
    "fix_checksum",
    "fix_encode_frame",
    "fix_verify_frame",
    "parse_price",
]
