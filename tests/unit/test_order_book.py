"""The Rust L2 order book from Python, against a pure-Python reference book on real Binance data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sortedcontainers import SortedDict

from nexus import engine

BTC = "market/crypto/hftbacktest_binance_usdm/btcusdt_20240808.gz"


class ReferenceBook:
    """The baseline: a plain sortedcontainers book, one change at a time."""

    def __init__(self) -> None:
        self.bids: SortedDict[int, int] = SortedDict()
        self.asks: SortedDict[int, int] = SortedDict()

    def snapshot(
        self,
        bp: npt.NDArray[np.int64],
        bs: npt.NDArray[np.int64],
        ap: npt.NDArray[np.int64],
        asz: npt.NDArray[np.int64],
    ) -> None:
        self.bids = SortedDict(zip(bp.tolist(), bs.tolist(), strict=True))
        self.asks = SortedDict(zip(ap.tolist(), asz.tolist(), strict=True))
        for book in (self.bids, self.asks):
            for price in [p for p, s in book.items() if s == 0]:
                del book[price]

    def apply(self, side: int, price: int, size: int) -> None:
        book = self.bids if side == 0 else self.asks
        if size == 0:
            book.pop(price, None)
        else:
            book[price] = size

    def depth(self, n: int) -> tuple[list[int], list[int], list[int], list[int]]:
        bids = list(reversed(self.bids.items()))[:n]
        asks = list(self.asks.items())[:n]
        return (
            [p for p, _ in bids],
            [s for _, s in bids],
            [p for p, _ in asks],
            [s for _, s in asks],
        )


def test_replay_keeps_the_book_in_sequence(shared_data: Path) -> None:
    book, stats = engine.replay_binance_book(shared_data / BTC, "usdm", 2, 3)
    assert stats["bad_lines"] == 0
    assert stats["gaps"] == 0
    assert stats["snapshots"] == 1
    assert stats["applied"] + stats["stale"] <= stats["diffs"]
    assert book.state == "live"
    assert not book.is_crossed()
    best_bid, best_ask = book.best_bid(), book.best_ask()
    assert best_bid is not None
    assert best_ask is not None
    assert best_bid[0] < best_ask[0]
    spread = book.spread()
    assert spread is not None
    assert spread > 0
    imbalance = book.imbalance()
    assert imbalance is not None
    assert -1 <= imbalance <= 1


def test_batch_api_matches_the_replay_and_a_python_book(shared_data: Path) -> None:
    (bp, bs, ap, asz, last_id), (sides, prices, sizes) = engine.binance_book_columns(
        shared_data / BTC, 2, 3
    )
    book = engine.OrderBook(2, 3)
    book.apply_snapshot(bp, bs, ap, asz, last_id)
    assert book.apply_deltas(sides, prices, sizes) == len(sides)
    reference = ReferenceBook()
    reference.snapshot(bp, bs, ap, asz)
    for side, price, size in zip(sides.tolist(), prices.tolist(), sizes.tolist(), strict=True):
        reference.apply(side, price, size)
    ours = [column.tolist() for column in book.depth(10_000)]
    assert ours == list(reference.depth(10_000))
    replayed, _ = engine.replay_binance_book(shared_data / BTC, "usdm", 2, 3)
    assert [c.tolist() for c in replayed.depth(10_000)] == ours


def test_book_refuses_bad_input_with_reasons() -> None:
    book = engine.OrderBook(2, 0)
    one = np.array([100], dtype=np.int64)
    with pytest.raises(engine.BookStateError, match="change 0: need a new snapshot"):
        book.apply_deltas(np.array([0], dtype=np.uint8), one, one)
    book.apply_snapshot(one, one, one + 1, one, 7)
    assert book.state == "live"
    with pytest.raises(engine.BookStateError, match="change 1: negative size -5"):
        book.apply_deltas(
            np.array([0, 1], dtype=np.uint8),
            np.array([99, 102], dtype=np.int64),
            np.array([3, -5], dtype=np.int64),
        )
    assert book.best_bid() == (100, 100)  # the first change landed, the bad one did not
    with pytest.raises(ValueError, match=r"sides\[0\] is 2"):
        book.apply_deltas(np.array([2], dtype=np.uint8), one, one)
    with pytest.raises(ValueError, match="columns differ in length"):
        book.apply_deltas(np.array([0, 1], dtype=np.uint8), one, one)
    with pytest.raises(ValueError, match="bids: 1 prices but 0 sizes"):
        book.apply_snapshot(one, np.zeros(0, dtype=np.int64), one, one, 1)
    with pytest.raises(ValueError, match="market must be 'usdm' or 'spot'"):
        engine.replay_binance_book("x.gz", "coin", 2, 3)
