"""The Rust FIX codec from Python, checked against the real QuickFIX engine."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import pytest
import quickfix as qf

from nexus import engine

SPEC = Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"  # shipped by the quickfix wheel
T0 = 1_790_000_000_123_000_000


@pytest.fixture(scope="module")
def ours() -> engine.FixDictionary:
    return engine.FixDictionary(SPEC)


@pytest.fixture(scope="module")
def theirs() -> qf.DataDictionary:
    return qf.DataDictionary(os.fspath(SPEC))


def _order(**overrides: bytes) -> bytes:
    fields = {
        11: b"ORD-1",
        21: b"1",
        55: b"EUR/USD",
        54: b"1",
        60: b"20260101-12:00:00.000",
        38: b"1000",
        40: b"2",
        44: b"1.08345",
    }
    fields.update({int(k.removeprefix("t")): v for k, v in overrides.items()})
    return engine.fix_build(
        "FIX.4.4", "D", "NEXUS", "PAPER", 7, T0, [(t, v) for t, v in fields.items() if v]
    )


def test_quickfix_reads_what_nexus_writes(theirs: qf.DataDictionary) -> None:
    raw = _order()
    message = qf.Message(raw.decode(), theirs, True)  # parses and validates with QuickFIX
    assert message.getField(11) == "ORD-1"
    assert message.getField(44) == "1.08345"
    sent = dt.datetime.fromtimestamp(T0 / 1e9, dt.UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]
    assert message.getHeader().getField(52) == sent
    # QuickFIX writes fields in tag order: the same fields, BodyLength and CheckSum.
    again = message.toString().encode()
    assert sorted(again.split(b"\x01")) == sorted(raw.split(b"\x01"))


def test_nexus_reads_what_quickfix_writes(ours: engine.FixDictionary) -> None:
    report = qf.Message()
    header = report.getHeader()
    header.setField(qf.BeginString("FIX.4.4"))
    header.setField(qf.MsgType("8"))
    header.setField(qf.SenderCompID("PAPER"))
    header.setField(qf.TargetCompID("NEXUS"))
    header.setField(qf.MsgSeqNum(3))
    header.setField(qf.SendingTime())
    for field in (
        qf.OrderID("V1"),
        qf.ExecID("E1"),
        qf.ExecType("F"),
        qf.OrdStatus("2"),
        qf.Symbol("EUR/USD"),
        qf.Side("1"),
        qf.LeavesQty(0),
        qf.CumQty(1000),
        qf.AvgPx(1.08345),
        qf.LastQty(1000),
        qf.LastPx(1.08345),
        qf.ClOrdID("ORD-1"),
    ):
        report.setField(field)
    raw = report.toString().encode()
    parsed = ours.parse(raw)
    assert parsed.msg_type == "8"
    assert parsed.get(17) == b"E1"
    assert parsed.get(31) == b"1.08345"
    assert ours.validate(raw) is None
    assert engine.fix_verify_frame(raw).body_length == int(raw.split(b"\x01")[1][2:])


def test_validation_names_the_reason_and_tag(ours: engine.FixDictionary) -> None:
    assert ours.validate(_order()) is None
    # Like QuickFIX, Symbol inside the FIX 4.4 Instrument component is not
    # enforced at message level; OrdType is a required field of the message.
    assert ours.validate(_order(t40=b"")) == (1, 40, "Required tag missing")
    assert ours.validate(_order(t54=b"Z")) == (
        5,
        54,
        "Value is incorrect (out of range) for this tag",
    )
    assert ours.validate(_order(t38=b"lots")) == (6, 38, "Incorrect data format for value")


def test_garbage_raises_a_parse_error() -> None:
    with pytest.raises(engine.FixParseError):
        engine.FixMessage(b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01")
    with pytest.raises(ValueError, match=r"FIX44\.xml"):
        engine.FixDictionary("/nonexistent/FIX44.xml")
