"""Feed status counts survive a restart: they are kept with the store."""

from __future__ import annotations

from pathlib import Path

from nexus.services.marketdata.ingest import FeedStatusBoard, ingest
from nexus.services.marketdata.store import TickStore
from tests.conftest import REPO

SAMPLE = REPO / "data" / "sample" / "market" / "fx"


def test_counts_of_files_taken_earlier_are_restored(tmp_path: Path) -> None:
    store = TickStore(tmp_path / "store")
    first = FeedStatusBoard()
    report = ingest(store, [SAMPLE / "ticks/lean_oanda_eurusd"], first)
    assert report.files == 3
    before = first.snapshot()["lean:oanda"]
    assert before.received > 10_000

    # A restart: a new board, the same files offered again (skipped as known).
    second = FeedStatusBoard()
    assert second.restore(TickStore(tmp_path / "store")) == 3
    again = ingest(store, [SAMPLE / "ticks/lean_oanda_eurusd"], second)
    assert again.files == 0
    assert again.skipped_known == 3
    after = second.snapshot()["lean:oanda"]
    assert (after.received, after.accepted, after.last_event_ns) == (
        before.received,
        before.accepted,
        before.last_event_ns,
    )
    assert after.rejected == before.rejected
    assert after.flagged == before.flagged
    assert after.finished


def test_a_store_without_recorded_counts_restores_nothing(tmp_path: Path) -> None:
    board = FeedStatusBoard()
    assert board.restore(TickStore(tmp_path)) == 0
    assert board.snapshot() == {}
