"""Type stubs of the Rust extension module (checked against it by mypy.stubtest)."""

from typing import final

__all__ = [
    "FixFrame",
    "FixFrameError",
    "PriceError",
    "QuoteValidator",
    "__version__",
    "fix_checksum",
    "fix_encode_frame",
    "fix_verify_frame",
    "parse_price",
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

class FixFrameError(ValueError):
    """A byte sequence is not a well-framed FIX message."""

class PriceError(ValueError):
    """A text is not a valid price at the requested scale."""

@final
class QuoteValidator:
    """Checks quotes of one instrument in order and counts rejections by reason."""

    def __new__(cls) -> QuoteValidator: ...
    def check(self, ts_ns: int, bid: int, ask: int) -> str | None: ...
    @property
    def accepted(self) -> int: ...
    def rejections(self) -> list[tuple[str, int]]: ...

def fix_checksum(data: bytes) -> int: ...
def fix_verify_frame(data: bytes) -> FixFrame: ...
def fix_encode_frame(begin_string: str, body: bytes) -> bytes: ...
def parse_price(text: str, scale: int) -> int: ...
