"""The embedded historical store: Parquet files partitioned by kind, instrument and UTC day.

Layout: `<root>/<kind>/<VENUE.SYMBOL>/<YYYY-MM-DD>.parquet`, one file per UTC
day, rows sorted by time (a stable sort: rows of the same nanosecond keep
their source order), required columns of int64 mantissas and a uint32
`flags` column of quality issues for ticks, each DELTA_BINARY_PACKED and
uncompressed (see `_write_options`). Writing a day merges with what is there; the
store remembers which source files it has taken (`_sources.json`), so
ingesting a file twice changes nothing. Days are written with pyarrow and
read by the Rust engine (`engine.ParquetDay`, the `parquet` crate), day by
day and row group by row group, without the GIL: memory stays flat however
long the range.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from nexus import engine
from nexus.services.marketdata.instruments import DataKind, InstrumentSpec

__all__ = ["COLUMNS", "Chunk", "TickStore"]

NS_PER_DAY = 86_400 * 1_000_000_000
ROW_GROUP = 65_536

COLUMNS: dict[DataKind, tuple[str, ...]] = {
    DataKind.QUOTES: ("ts_ns", "bid", "ask", "flags"),
    DataKind.TRADES: ("ts_ns", "price", "size", "flags"),
    DataKind.BARS_1M: ("ts_ns", "open", "high", "low", "close", "volume"),
    DataKind.TRADE_BARS_1M: ("ts_ns", "open", "high", "low", "close", "volume"),
}

Chunk = dict[str, npt.NDArray[np.int64] | npt.NDArray[np.uint32]]


_SOURCES = "_sources.json"
_FEED_COUNTS = "_feed_counts.json"


def _day(ts_ns: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=ts_ns // NS_PER_DAY)


def _day_start_ns(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * NS_PER_DAY


def _schema(kind: DataKind) -> pa.Schema:
    # Required (not nullable) columns: no definition levels to decode.
    return pa.schema(
        [
            pa.field(name, pa.uint32() if name == "flags" else pa.int64(), nullable=False)
            for name in COLUMNS[kind]
        ]
    )


def _write_options(kind: DataKind) -> dict[str, Any]:
    """How days are written: every column DELTA_BINARY_PACKED, uncompressed.

    Sorted times and slowly moving prices shrink to a few bits per row (the
    files are half the size zstd with dictionaries made of them) and decode
    about twice as fast, which is what a replay stream waits on. Files
    written otherwise (zstd, before) still read; a day is rewritten in this
    format when it is next written.
    """
    return {
        "compression": "none",
        "use_dictionary": False,
        "column_encoding": dict.fromkeys(COLUMNS[kind], "DELTA_BINARY_PACKED"),
    }


def _stored(
    path: Path, name: str, values: npt.NDArray[Any]
) -> npt.NDArray[np.int64] | npt.NDArray[np.uint32]:
    """A column as the store keeps it: uint32 flags, int64 everything else."""
    wanted = np.uint32 if name == "flags" else np.int64
    if values.dtype != wanted:
        raise engine.DataFileError(
            f"{path}: column {name!r} is {values.dtype}, the store writes {np.dtype(wanted)}"
        )
    return values


@dataclass(frozen=True)
class DayWrite:
    """What writing one day changed."""

    day: dt.date
    rows_before: int
    rows_after: int


class TickStore:
    """Historical ticks and bars on local disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, kind: DataKind, instrument: InstrumentSpec) -> Path:
        return self.root / kind.value / instrument.key

    def _path(self, kind: DataKind, instrument: InstrumentSpec, day: dt.date) -> Path:
        return self._dir(kind, instrument) / f"{day.isoformat()}.parquet"

    def days(self, kind: DataKind, instrument: InstrumentSpec) -> list[dt.date]:
        """Returns the UTC days stored for an instrument, in order."""
        folder = self._dir(kind, instrument)
        if not folder.is_dir():
            return []
        return sorted(dt.date.fromisoformat(p.stem) for p in folder.glob("*.parquet"))

    def write(self, kind: DataKind, instrument: InstrumentSpec, columns: Chunk) -> list[DayWrite]:
        """Stores rows (any time order), merging each UTC day with what is stored."""
        names = COLUMNS[kind]
        missing = set(names) - set(columns)
        if missing:
            raise ValueError(f"missing columns for {kind.value}: {sorted(missing)}")
        ts = np.asarray(columns["ts_ns"], dtype=np.int64)
        if len(ts) == 0:
            return []
        table = pa.table({n: columns[n] for n in names}, schema=_schema(kind))
        day_index = ts // NS_PER_DAY
        writes = []
        for day_number in np.unique(day_index):
            day = _day(int(day_number) * NS_PER_DAY)
            part = table.filter(pa.array(day_index == day_number))
            path = self._path(kind, instrument, day)
            before = 0
            if path.exists():
                existing = pq.read_table(path, schema=_schema(kind))
                before = existing.num_rows
                part = pa.concat_tables([existing, part])
            # A stable sort by time keeps the source's order within one ns.
            order = np.argsort(part.column("ts_ns").to_numpy(), kind="stable")
            part = part.take(pa.array(order))
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(fd)
            pq.write_table(part, tmp, row_group_size=ROW_GROUP, **_write_options(kind))
            Path(tmp).replace(path)
            writes.append(DayWrite(day, before, part.num_rows))
        return writes

    def scan(
        self,
        kind: DataKind,
        instrument: InstrumentSpec,
        start_ns: int,
        end_ns: int,
        chunk_rows: int = ROW_GROUP,
    ) -> Iterator[Chunk]:
        """Yields the rows with start_ns <= ts_ns < end_ns, in time order, in chunks
        of at most `chunk_rows` rows; reads one row group at a time."""
        first, last = _day(start_ns), _day(max(start_ns, end_ns - 1))
        names = COLUMNS[kind]
        for day in self.days(kind, instrument):
            if not first <= day <= last:
                continue
            whole_day = start_ns <= _day_start_ns(day) and _day_start_ns(day) + NS_PER_DAY <= end_ns
            # Decoded by the Rust engine without the GIL, one row group at a time.
            path = self._path(kind, instrument, day)
            day_file = engine.ParquetDay(path)
            for index in range(day_file.row_groups):
                columns = [
                    _stored(path, name, values)
                    for name, values in zip(
                        names, day_file.read_row_group(index, list(names)), strict=True
                    )
                ]
                for start in range(0, len(columns[0]), chunk_rows):
                    chunk: Chunk = {
                        name: values[start : start + chunk_rows]
                        for name, values in zip(names, columns, strict=True)
                    }
                    if not whole_day:
                        keep = (chunk["ts_ns"] >= start_ns) & (chunk["ts_ns"] < end_ns)
                        if not keep.any():
                            continue
                        chunk = {name: values[keep] for name, values in chunk.items()}
                    yield chunk

    def _read_index(self, name: str) -> dict[str, Any]:
        """One of the store's JSON index files ({} when absent)."""
        path = self.root / name
        if not path.exists():
            return {}
        return {str(k): v for k, v in json.loads(path.read_text()).items()}

    def _set_index_entry(self, name: str, key: str, value: Any) -> None:
        """Sets one entry of a JSON index file, written atomically."""
        entries = self._read_index(name)
        entries[key] = value
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
        tmp.replace(path)

    def generation(self) -> int:
        """Changes whenever a source file is taken (the index's modification
        time, ns; 0 for an empty store): a key for what is derived from the
        store."""
        path = self.root / _SOURCES
        return path.stat().st_mtime_ns if path.exists() else 0

    def sources(self) -> dict[str, str]:
        """Returns the source files taken so far: identity -> where they went."""
        return {k: str(v) for k, v in self._read_index(_SOURCES).items()}

    def add_source(self, identity: str, destination: str) -> None:
        """Records that a source file was taken (written atomically)."""
        self._set_index_entry(_SOURCES, identity, destination)

    def feed_counts(self) -> dict[str, dict[str, Any]]:
        """Returns the validation counts recorded with each source file taken:
        identity -> {source, received, rejected, flagged, last_event_ns}."""
        return {k: dict(v) for k, v in self._read_index(_FEED_COUNTS).items()}

    def add_feed_counts(self, identity: str, counts: dict[str, Any]) -> None:
        """Records the validation counts of a source file (written atomically), so
        that feed status survives a restart."""
        self._set_index_entry(_FEED_COUNTS, identity, counts)

    def count(self, kind: DataKind, instrument: InstrumentSpec) -> int:
        """Returns the rows stored for an instrument (from Parquet metadata)."""
        return sum(
            pq.ParquetFile(self._path(kind, instrument, day)).metadata.num_rows
            for day in self.days(kind, instrument)
        )
