"""The Parquet store: its on-disk format, and days written in the earlier one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nexus import engine
from nexus.services.marketdata.instruments import DataKind, find_instrument
from nexus.services.marketdata.store import NS_PER_DAY, Chunk, TickStore

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DAY = REPO / "data" / "sample" / "market" / "fx" / "ticks" / "lean_oanda_eurusd"
EURUSD = find_instrument("EUR/USD", "OANDA")


def _sample_day() -> Chunk:
    assert EURUSD is not None
    ts, bid, ask, _ = engine.read_lean_quote_ticks(
        SAMPLE_DAY / "20140505_quote.zip", EURUSD.price_scale, 0
    )
    flags = engine.QuoteValidator().flag_batch(ts, bid, ask)
    return {"ts_ns": ts, "bid": bid, "ask": ask, "flags": flags}


def _scan_all(store: TickStore) -> Chunk:
    assert EURUSD is not None
    parts = list(store.scan(DataKind.QUOTES, EURUSD, 0, 2**62))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def test_days_are_written_for_fast_reads_and_read_back_exactly(tmp_path: Path) -> None:
    assert EURUSD is not None
    day = _sample_day()
    store = TickStore(tmp_path)
    store.write(DataKind.QUOTES, EURUSD, day)
    (path,) = (tmp_path / "quotes" / EURUSD.key).glob("*.parquet")
    parquet = pq.ParquetFile(path)
    assert all(not field.nullable for field in parquet.schema_arrow)
    for column in range(parquet.metadata.num_columns):
        meta = parquet.metadata.row_group(0).column(column)
        assert meta.compression == "UNCOMPRESSED"
        assert "DELTA_BINARY_PACKED" in meta.encodings
        assert not meta.has_dictionary_page
    back = _scan_all(store)
    for name, values in day.items():
        assert np.array_equal(back[name], values), name
        assert back[name].dtype == values.dtype


def test_a_day_in_the_earlier_format_still_reads_and_merges(tmp_path: Path) -> None:
    """Days written before (zstd, dictionaries, nullable columns) read as they
    are; writing to such a day rewrites it in the current format."""
    assert EURUSD is not None
    day = _sample_day()
    half = len(day["ts_ns"]) // 2
    first = {name: values[:half] for name, values in day.items()}
    rest = {name: values[half:] for name, values in day.items()}
    ts0 = int(day["ts_ns"][0])
    utc_day = dt.date(1970, 1, 1) + dt.timedelta(days=ts0 // NS_PER_DAY)
    path = tmp_path / "quotes" / EURUSD.key / f"{utc_day.isoformat()}.parquet"
    path.parent.mkdir(parents=True)
    old_schema = pa.schema(
        [(name, pa.uint32() if name == "flags" else pa.int64()) for name in first]
    )
    pq.write_table(pa.table(first, schema=old_schema), path, compression="zstd")
    store = TickStore(tmp_path)
    back = _scan_all(store)
    assert np.array_equal(back["ts_ns"], first["ts_ns"])
    store.write(DataKind.QUOTES, EURUSD, rest)
    back = _scan_all(store)
    for name, values in day.items():
        assert np.array_equal(back[name], values), name
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "UNCOMPRESSED"
