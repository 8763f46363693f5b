"""Request validation shared by the servicers: collects every violation, then raises once."""

from __future__ import annotations

from google.protobuf.descriptor import EnumDescriptor

from nexus.common.v1 import types_pb2
from nexus.rpc import InvalidArgument

__all__ = ["Violations"]

_MAX_SCALE = 18
_MAX_ID = 64


class Violations:
    """The field violations found in one request."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        """Records that `field` is invalid, and why."""
        self.items.append((field, description))

    def identifier(self, field: str, value: str, *, required: bool = True) -> None:
        """Checks a client-chosen id: 1-64 printable ASCII characters, no spaces."""
        if not value:
            if required:
                self.add(field, "required")
            return
        if len(value) > _MAX_ID:
            self.add(field, f"at most {_MAX_ID} characters, got {len(value)}")
        elif not all("!" <= ch <= "~" for ch in value):
            self.add(field, "only printable ASCII without spaces is allowed")

    def instrument(self, field: str, value: types_pb2.InstrumentId, *, present: bool) -> None:
        """Checks that an instrument is given with a symbol and a venue."""
        if not present:
            self.add(field, "required")
            return
        if not value.symbol.strip():
            self.add(f"{field}.symbol", "required, e.g. 'EUR/USD'")
        if not value.venue.strip():
            self.add(f"{field}.venue", "required, e.g. 'OANDA'")

    def enum(self, field: str, value: int, enum: EnumDescriptor) -> None:
        """Checks that an enum field is set to a known, non-UNSPECIFIED value."""
        names = [v.name for v in enum.values if v.number != 0]
        if value == 0:
            self.add(field, f"required, one of {', '.join(names)}")
        elif value not in enum.values_by_number:
            self.add(field, f"unknown value {value}, expected one of {', '.join(names)}")

    def decimal(
        self, field: str, value: types_pb2.Decimal, *, present: bool, positive: bool = False
    ) -> None:
        """Checks a Decimal: present, scale within -18..18, positive where asked."""
        if not present:
            self.add(field, "required")
            return
        if not -_MAX_SCALE <= value.scale <= _MAX_SCALE:
            self.add(f"{field}.scale", f"must be within -{_MAX_SCALE}..{_MAX_SCALE}")
        if positive and value.mantissa <= 0:
            self.add(field, "must be positive")

    def time_range(self, field: str, value: types_pb2.TimeRange, *, present: bool) -> None:
        """Checks a bounded time range with start before end."""
        if not present:
            self.add(field, "required")
            return
        if value.start_ns <= 0 or value.end_ns <= 0:
            self.add(field, "start_ns and end_ns are both required (ns since the Unix epoch)")
        elif value.start_ns >= value.end_ns:
            self.add(field, "start_ns must be before end_ns")

    def raise_if_any(self) -> None:
        """Raises InvalidArgument listing every violation, if there is one."""
        if self.items:
            raise InvalidArgument(self.items)
