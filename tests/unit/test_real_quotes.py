"""The quote validator on real FXCM ticks, against an independent count."""

from __future__ import annotations

import zipfile
from decimal import Decimal
from pathlib import Path

from nexus import engine


def test_fxcm_crossed_and_locked_quotes_are_counted(shared_data: Path) -> None:
    path = shared_data / "market/fx/ticks/lean_fxcm_eurusd/20140508_quote.zip"
    with zipfile.ZipFile(path) as archive:
        rows = archive.read(archive.namelist()[0]).decode().splitlines()
    validator = engine.QuoteValidator()
    crossed = locked = 0
    for row in rows:
        ms, bid, ask = row.split(",")
        # Independent reference: exact decimals in pure Python.
        crossed += Decimal(bid) > Decimal(ask)
        locked += Decimal(bid) == Decimal(ask)
        validator.check(int(ms) * 1_000_000, engine.parse_price(bid, 5), engine.parse_price(ask, 5))
    counts = dict(validator.rejections())
    assert len(rows) > 50_000
    assert counts["crossed"] == crossed
    assert counts["locked"] == locked
    assert counts["bad_price"] == 0
    # The data set's known quirk: roughly one FXCM quote in ten is crossed.
    assert 0.03 < crossed / len(rows) < 0.2
    assert validator.accepted + sum(counts.values()) == len(rows)
