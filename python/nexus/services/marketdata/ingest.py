"""Ingestion of data files into the store, with validation and per-source counters.

Rows that cannot be parsed are rejected (counted as MALFORMED, with their
line numbers logged). Rows that parse but fail validation (crossed or locked
quotes, time going backwards, duplicates, zero-size trades) are stored with
their quality flags and counted as flagged: streams leave them out unless a
client asks for them, and nothing is ever dropped silently.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nexus import engine
from nexus.services.marketdata.instruments import (
    DataKind,
    InstrumentSpec,
    SourceFile,
    UnknownSourceError,
    identify,
)
from nexus.services.marketdata.store import Chunk, TickStore

__all__ = ["FeedCounters", "FeedStatusBoard", "IngestReport", "ingest", "issue_counts"]

log = logging.getLogger("nexus.marketdata.ingest")

# nexus.marketdata.v1.QualityIssue numbers.
ISSUE_NAMES = {
    1: "CROSSED",
    2: "LOCKED",
    3: "BAD_PRICE",
    4: "BAD_SIZE",
    5: "TIME_BACKWARDS",
    6: "DUPLICATE",
    7: "OUTLIER",
    8: "STALE",
    9: "MALFORMED",
    10: "SEQUENCE_GAP",
}
MALFORMED = 9
BAD_SIZE = 4
SEQUENCE_GAP = 10


@dataclass
class FeedCounters:
    """Quality counters of one data source."""

    received: int = 0
    accepted: int = 0
    last_event_ns: int = 0
    finished: bool = False
    rejected: Counter[int] = field(default_factory=Counter)
    flagged: Counter[int] = field(default_factory=Counter)


def issue_counts(flags: npt.NDArray[np.uint32] | None) -> dict[int, int]:
    """Rows flagged with each issue (a row may carry several)."""
    out: dict[int, int] = {}
    if flags is not None and len(flags):
        for issue in ISSUE_NAMES:
            count = int(np.count_nonzero(flags & (1 << issue)))
            if count:
                out[issue] = count
    return out


class FeedStatusBoard:
    """Counters of every source, shared by ingestion and streams; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._feeds: dict[str, FeedCounters] = {}

    def record(
        self,
        source: str,
        *,
        received: int,
        rejected: dict[int, int],
        flagged: dict[int, int] | None = None,
        last_event_ns: int = 0,
        finished: bool = False,
    ) -> None:
        """Adds one batch's figures: rows received, rejections by issue, rows
        flagged by issue (see `issue_counts`)."""
        with self._lock:
            feed = self._feeds.setdefault(source, FeedCounters())
            feed.received += received
            feed.rejected.update(rejected)
            kept = received - sum(rejected.values())
            feed.accepted += kept
            feed.flagged.update(flagged or {})
            feed.last_event_ns = max(feed.last_event_ns, last_event_ns)
            feed.finished = feed.finished or finished

    def restore(self, store: TickStore) -> int:
        """Adds the counts recorded with the files already in `store` (those a
        restart will not ingest again); returns how many files they cover."""
        recorded = store.feed_counts()
        for counts in recorded.values():
            self.record(
                str(counts["source"]),
                received=int(counts["received"]),
                rejected={int(k): int(v) for k, v in counts["rejected"].items()},
                flagged={int(k): int(v) for k, v in counts["flagged"].items()},
                last_event_ns=int(counts["last_event_ns"]),
                finished=True,
            )
        return len(recorded)

    def snapshot(self) -> dict[str, FeedCounters]:
        """Returns a copy of every source's counters."""
        with self._lock:
            return {
                name: FeedCounters(
                    f.received,
                    f.accepted,
                    f.last_event_ns,
                    f.finished,
                    Counter(f.rejected),
                    Counter(f.flagged),
                )
                for name, f in self._feeds.items()
            }


@dataclass
class IngestReport:
    """What one ingestion did."""

    files: int = 0
    skipped_known: int = 0
    unknown: list[str] = field(default_factory=list)
    rows_stored: int = 0
    rows_rejected: int = 0
    rows_flagged: int = 0


def _files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.rglob("*.zip")) if path.is_dir() else [path])
    return found


def _identity(source: SourceFile) -> str:
    size = source.path.stat().st_size
    return f"{source.kind.value}/{source.instrument.key}/{source.path.name}/{size}"


def ingest(
    store: TickStore,
    paths: Iterable[Path],
    board: FeedStatusBoard,
    *,
    progress: bool = False,
) -> IngestReport:
    """Reads every known data file under `paths` into `store`.

    Files are taken in name (date) order per instrument, so validation sees
    each series in time order; a file already taken is skipped.
    """
    files = _files(paths)
    report = IngestReport()
    known = store.sources()
    validators: dict[str, engine.QuoteValidator] = {}
    iterator: Iterable[Path] = files
    if progress:
        from tqdm import tqdm  # noqa: PLC0415 - only for interactive runs

        iterator = tqdm(files, unit="file", desc="ingest")
    for path in iterator:
        try:
            source = identify(path)
        except UnknownSourceError as err:
            report.unknown.append(str(err))
            log.warning("skipping unknown file", extra={"reason": str(err)})
            continue
        identity = _identity(source)
        if identity in known:
            report.skipped_known += 1
            continue
        stored, rejected, flagged, counts = _ingest_file(store, source, board, validators)
        report.files += 1
        report.rows_stored += stored
        report.rows_rejected += rejected
        report.rows_flagged += flagged
        store.add_feed_counts(identity, counts)
        store.add_source(identity, f"{source.kind.value}/{source.instrument.key}")
    return report


def _contract(spec: InstrumentSpec, contract: str) -> InstrumentSpec:
    """Each futures contract month is its own instrument (e.g. GC201312); the
    continuous series is built from them by the roll rule."""
    if spec.asset_class != "future":
        return spec
    return dataclasses.replace(spec, symbol=f"{spec.root_symbol}{contract}")


def _ingest_file(
    store: TickStore,
    source: SourceFile,
    board: FeedStatusBoard,
    validators: dict[str, engine.QuoteValidator],
) -> tuple[int, int, int, dict[str, Any]]:
    spec = source.instrument
    flags: npt.NDArray[np.uint32] | None = None
    parts: list[tuple[InstrumentSpec, Chunk]] = []
    if source.kind is DataKind.QUOTES:
        ts, bid, ask, read = engine.read_lean_quote_ticks(
            source.path, spec.price_scale, source.utc_offset_minutes
        )
        validator = validators.setdefault(f"{source.source}/{spec.key}", engine.QuoteValidator())
        flags = validator.flag_batch(ts, bid, ask)
        parts.append((spec, {"ts_ns": ts, "bid": bid, "ask": ask, "flags": flags}))
    elif source.kind is DataKind.TRADES:
        series, read = engine.read_lean_trade_ticks(
            source.path, spec.price_scale, spec.size_scale, source.utc_offset_minutes
        )
        all_flags = []
        for contract, ts, price, size in series:
            month_flags = np.where(size <= 0, 1 << BAD_SIZE, 0).astype(np.uint32)
            all_flags.append(month_flags)
            parts.append(
                (
                    _contract(spec, contract),
                    {"ts_ns": ts, "price": price, "size": size, "flags": month_flags},
                )
            )
        flags = np.concatenate(all_flags) if all_flags else np.zeros(0, dtype=np.uint32)
    else:
        if source.kind is DataKind.TRADE_BARS_1M:
            bars, read = engine.read_lean_trade_bars(
                source.path, spec.price_scale, spec.size_scale, source.utc_offset_minutes
            )
        else:
            bars, read = engine.read_lean_quote_bars(
                source.path, "bid", spec.price_scale, source.utc_offset_minutes
            )
        for contract, ts, open_, high, low, close, volume in bars:
            parts.append(
                (
                    _contract(spec, contract),
                    {
                        "ts_ns": ts,
                        "open": open_,
                        "high": high,
                        "low": low,
                        "close": close,
                        "volume": volume,
                    },
                )
            )
    malformed = sum(read["bad_rows"].values())
    if read["first_bad_lines"]:
        log.warning(
            "rejected malformed rows",
            extra={"file": str(source.path), "bad_rows": read["bad_rows"]},
        )
    stored = 0
    last_ns = 0
    for part_spec, columns in parts:
        store.write(source.kind, part_spec, columns)
        stored += len(columns["ts_ns"])
        if len(columns["ts_ns"]):
            last_ns = max(last_ns, int(columns["ts_ns"][-1]))
    received = int(read["rows"]) - int(read["empty_rows"])
    rejected = {MALFORMED: malformed} if malformed else {}
    by_issue = issue_counts(flags)
    board.record(
        source.source,
        received=received,
        rejected=rejected,
        flagged=by_issue,
        last_event_ns=last_ns,
        finished=True,
    )
    counts = {
        "source": source.source,
        "received": received,
        "rejected": {str(k): v for k, v in rejected.items()},
        "flagged": {str(k): v for k, v in by_issue.items()},
        "last_event_ns": last_ns,
    }
    flagged = int(np.count_nonzero(flags)) if flags is not None else 0
    return stored, malformed, flagged, counts
