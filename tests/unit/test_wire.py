"""Stream messages written by Rust are the bytes protobuf itself would write."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus import engine
from nexus.common.v1 import types_pb2
from nexus.marketdata.v1 import marketdata_pb2 as md

i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(
    rows=st.lists(st.tuples(i64, i64, i64, st.integers(0, 2**32 - 1)), max_size=50),
    symbol=st.text(max_size=12),
    venue=st.text(max_size=8),
    price_scale=st.integers(-18, 18),
    size_scale=st.integers(-18, 18),
    sequence=st.integers(0, 2**64 - 1),
    dropped=st.integers(0, 2**64 - 1),
    end=st.booleans(),
    with_flags=st.booleans(),
)
def test_rust_bytes_equal_protobuf_bytes(
    rows: list[tuple[int, int, int, int]],
    symbol: str,
    venue: str,
    price_scale: int,
    size_scale: int,
    sequence: int,
    dropped: int,
    end: bool,
    with_flags: bool,
) -> None:
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    bid = np.array([r[1] for r in rows], dtype=np.int64)
    ask = np.array([r[2] for r in rows], dtype=np.int64)
    flags = np.array([r[3] for r in rows], dtype=np.uint32) if with_flags else None
    ours = engine.encode_stream_ticks(
        symbol,
        venue,
        price_scale,
        size_scale,
        ts,
        bid,
        ask,
        flags,
        sequence=sequence,
        dropped_ticks=dropped,
        end_of_replay=end,
    )
    expected = md.StreamTicksResponse(sequence=sequence, dropped_ticks=dropped, end_of_replay=end)
    if rows:
        batch = expected.quotes.add(
            instrument=types_pb2.InstrumentId(symbol=symbol, venue=venue),
            price_scale=price_scale,
            size_scale=size_scale,
            ts_event_ns=ts.tolist(),
            bid_mantissa=bid.tolist(),
            ask_mantissa=ask.tolist(),
        )
        if flags is not None:
            batch.flags.extend(flags.tolist())
    assert md.StreamTicksResponse.FromString(ours) == expected
    assert ours == expected.SerializeToString(deterministic=True)


def test_mismatched_columns_are_refused() -> None:
    one = np.zeros(1, dtype=np.int64)
    two = np.zeros(2, dtype=np.int64)
    with pytest.raises(ValueError, match="columns differ in length"):
        engine.encode_stream_ticks("A", "B", 5, 0, one, two, one)
    with pytest.raises(ValueError, match="flags has 2 rows, the other columns 1"):
        engine.encode_stream_ticks("A", "B", 5, 0, one, one, one, np.zeros(2, dtype=np.uint32))


@given(
    rows=st.lists(st.tuples(i64, i64, i64, st.integers(0, 2**32 - 1)), min_size=1, max_size=60),
    batch_size=st.integers(1, 25),
    first_sequence=st.integers(1, 2**32),
    dropped=st.integers(0, 2**64 - 1),
    with_flags=st.booleans(),
)
def test_split_messages_equal_protobuf_bytes(
    rows: list[tuple[int, int, int, int]],
    batch_size: int,
    first_sequence: int,
    dropped: int,
    with_flags: bool,
) -> None:
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    bid = np.array([r[1] for r in rows], dtype=np.int64)
    ask = np.array([r[2] for r in rows], dtype=np.int64)
    flags = np.array([r[3] for r in rows], dtype=np.uint32) if with_flags else None
    ours = engine.encode_stream_ticks_batches(
        "EUR/USD", "OANDA", 5, 0, ts, bid, ask, flags, batch_size, first_sequence, dropped
    )
    assert len(ours) == -(-len(rows) // batch_size)
    for i, message in enumerate(ours):
        part = slice(i * batch_size, (i + 1) * batch_size)
        expected = md.StreamTicksResponse(sequence=first_sequence + i, dropped_ticks=dropped)
        batch = expected.quotes.add(
            instrument=types_pb2.InstrumentId(symbol="EUR/USD", venue="OANDA"),
            price_scale=5,
            ts_event_ns=ts[part].tolist(),
            bid_mantissa=bid[part].tolist(),
            ask_mantissa=ask[part].tolist(),
        )
        if flags is not None:
            batch.flags.extend(flags[part].tolist())
        assert message == expected.SerializeToString(deterministic=True)
