"""The Parquet store: its on-disk format, and days written in the earlier one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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


def _formats(tmp_path: Path, day: Chunk) -> list[Path]:
    """The sample day as the store writes it now, as it wrote it before
    (zstd, dictionaries, nullable columns), and plain-encoded in small row groups."""
    store = TickStore(tmp_path / "now")
    assert EURUSD is not None
    store.write(DataKind.QUOTES, EURUSD, day)
    (now,) = (tmp_path / "now").rglob("*.parquet")
    table = pa.table(day)
    before, plain = tmp_path / "before.parquet", tmp_path / "plain.parquet"
    pq.write_table(table, before, compression="zstd")
    pq.write_table(table, plain, compression="none", use_dictionary=False, row_group_size=5_000)
    return [now, before, plain]


def test_the_rust_reader_reads_every_format_as_pyarrow_does(tmp_path: Path) -> None:
    day = _sample_day()
    names = list(day)
    for path in _formats(tmp_path, day):
        reader = engine.ParquetDay(path)
        expected = pq.read_table(path)
        assert reader.rows == expected.num_rows == len(day["ts_ns"])
        groups = [reader.read_row_group(i, names) for i in range(reader.row_groups)]
        assert reader.row_groups == pq.ParquetFile(path).num_row_groups
        for j, name in enumerate(names):
            ours = np.concatenate([group[j] for group in groups])
            theirs = expected.column(name).to_numpy()
            assert ours.dtype == theirs.dtype, (path.name, name)
            assert np.array_equal(ours, theirs), (path.name, name)
        # Columns come back in the order asked for.
        flags, ts = reader.read_row_group(0, ["flags", "ts_ns"])
        assert flags.dtype == np.uint32
        assert ts.dtype == np.int64


def test_unreadable_day_files_say_which_and_why(tmp_path: Path) -> None:
    not_parquet = tmp_path / "not.parquet"
    not_parquet.write_bytes(b"ts_ns,bid,ask\n1,2,3\n")
    with pytest.raises(engine.DataFileError, match=r"not\.parquet is not readable Parquet"):
        engine.ParquetDay(not_parquet)
    with pytest.raises(OSError, match=r"missing\.parquet"):
        engine.ParquetDay(tmp_path / "missing.parquet")
    odd = tmp_path / "odd.parquet"
    pq.write_table(
        pa.table(
            {
                "ts_ns": pa.array([1, None, 3], pa.int64()),
                "price": pa.array([1.5, 2.5, 3.5]),
            }
        ),
        odd,
    )
    reader = engine.ParquetDay(odd)
    with pytest.raises(engine.DataFileError, match=r"odd\.parquet has no column \"bid\""):
        reader.read_row_group(0, ["bid"])
    with pytest.raises(engine.DataFileError, match=r"\"ts_ns\" has 2 values in 3 rows"):
        reader.read_row_group(0, ["ts_ns"])
    with pytest.raises(engine.DataFileError, match=r"\"price\" is neither INT64 nor INT32"):
        reader.read_row_group(0, ["price"])
    with pytest.raises(engine.DataFileError, match="has 1 row groups, not 1"):
        reader.read_row_group(1, ["ts_ns"])


def test_a_day_with_a_column_of_another_type_is_refused_by_name(tmp_path: Path) -> None:
    assert EURUSD is not None
    day = _sample_day()
    store = TickStore(tmp_path)
    store.write(DataKind.QUOTES, EURUSD, day)
    (path,) = tmp_path.rglob("*.parquet")
    table = pq.read_table(path)
    narrowed = table.set_column(1, "bid", table.column("bid").cast(pa.int32()))
    pq.write_table(narrowed, path)
    with pytest.raises(
        engine.DataFileError, match=r"column 'bid' is int32, the store writes int64"
    ):
        list(store.scan(DataKind.QUOTES, EURUSD, 0, 2**62))
