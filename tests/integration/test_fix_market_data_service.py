"""GetOrderBook and GetFeedStatus for an order book fed from a FIX market-data log."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus import engine
from nexus.common.v1 import types_pb2
from nexus.config import load_settings
from nexus.marketdata.v1 import marketdata_pb2 as md
from nexus_client import NexusClient
from tests.conftest import REPO, ThreadedServer

pytest.importorskip("quickfix")

from tests.unit.test_fix_market_data import Gateway, gateway_steps  # after the skip: needs quickfix

pytestmark = pytest.mark.integration


def test_order_book_from_a_fix_market_data_log(tmp_path: Path) -> None:
    messages = [
        m for step in gateway_steps(Gateway("FIX.4.4", per_entry=True)) for m in step.fix_messages
    ]
    fix_log = tmp_path / "btcusdt.fix"
    fix_log.write_bytes(b"\n".join(messages) + b"\nnot a FIX message\n")
    settings = load_settings(
        overrides={
            "server": {"port": 0, "grace_period_s": 0.5, "metrics_port": None},
            "data_dir": str(tmp_path),
            "services": "marketdata",
            "marketdata": {
                "ingest_on_start": [],
                "order_book_feeds": [],
                "fix_book_logs": [{"path": str(fix_log), "venue": "BINANCE"}],
            },
        }
    )
    server = ThreadedServer(settings)
    try:
        with NexusClient(server.target) as client:
            btc = types_pb2.InstrumentId(symbol="BTCUSDT", venue="BINANCE")
            request = md.GetOrderBookRequest(instrument=btc, depth=20)
            book = client.marketdata.GetOrderBook(request).book
            status = client.marketdata.GetFeedStatus(
                md.GetFeedStatusRequest(sources=["fix:binance"])
            )
    finally:
        server.stop()
    feed = REPO / "data/sample/market/crypto/hftbacktest_binance_spot/btcusdt_20240808.gz"
    replayed, _ = engine.replay_binance_book(feed, "spot", 2, 8)
    bp, bs, ap, asz = (c.tolist() for c in replayed.depth(20))
    assert [(lv.price.mantissa, lv.size.mantissa) for lv in book.bids] == list(
        zip(bp, bs, strict=True)
    )
    assert [(lv.price.mantissa, lv.size.mantissa) for lv in book.asks] == list(
        zip(ap, asz, strict=True)
    )
    (fix_feed,) = status.feeds
    assert fix_feed.received == len(messages) + 1
    assert [(i.issue, i.rejected) for i in fix_feed.issues] == [(md.QUALITY_ISSUE_MALFORMED, 1)]
