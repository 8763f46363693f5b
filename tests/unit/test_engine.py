"""The Rust engines through the Python wrapper: results and error mapping."""

from __future__ import annotations

import re
from os import PathLike
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus import engine

SOH = b"\x01"


def test_checksum_matches_python_sum() -> None:
    data = b"8=FIX.4.4\x019=5\x0135=0\x01"
    assert engine.fix_checksum(data) == sum(data) % 256


def test_encode_then_verify_round_trips() -> None:
    body = b"35=D\x0111=ORD1\x0155=EUR/USD\x0154=1\x0138=1000\x0140=1\x01"
    msg = engine.fix_encode_frame("FIX.4.2", body)
    assert msg.startswith(b"8=FIX.4.2\x019=" + str(len(body)).encode() + SOH)
    frame = engine.fix_verify_frame(msg)
    assert (frame.begin_string, frame.msg_type, frame.body_length) == ("FIX.4.2", "D", len(body))
    assert frame.checksum == int(msg[-4:-1])


def test_bad_checksum_raises_a_clear_python_error() -> None:
    msg = bytearray(engine.fix_encode_frame("FIX.4.4", b"35=0\x0134=1\x01"))
    msg[-2] = ord("0") if msg[-2] != ord("0") else ord("1")
    with pytest.raises(
        engine.FixFrameError, match=r"CheckSum \(10\) says \d{3} but the bytes sum to \d{3}"
    ):
        engine.fix_verify_frame(bytes(msg))


def test_frame_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="shorter than any FIX frame"):
        engine.fix_verify_frame(b"8=FIX")


def test_wrong_type_is_a_type_error_not_a_crash() -> None:
    with pytest.raises(TypeError):
        engine.fix_verify_frame("not bytes")  # type: ignore[arg-type]


@given(st.binary(max_size=300))
def test_garbage_never_crashes(data: bytes) -> None:
    try:
        frame = engine.fix_verify_frame(data)
    except engine.FixFrameError as err:
        message = str(err)
        assert message, "every frame error says why"
    else:
        assert frame.msg_type


def test_parse_price_is_exact_and_explains_errors() -> None:
    assert engine.parse_price("1.08345", 5) == 108345
    assert engine.parse_price("1.1", 5) == 110000
    with pytest.raises(engine.PriceError, match=r'"1\.123456" has more than 5 decimal places'):
        engine.parse_price("1.123456", 5)
    with pytest.raises(engine.PriceError, match="not a decimal number"):
        engine.parse_price("nan", 5)
    with pytest.raises(OverflowError):
        engine.parse_price("1", 300)


def test_quote_validator_counts_each_reason() -> None:
    v = engine.QuoteValidator()
    assert v.check(1, 108340, 108345) is None
    assert v.check(2, 108346, 108345) == "crossed"
    assert v.check(2, 108345, 108345) == "locked"
    assert v.check(2, -1, 108345) == "bad_price"
    assert v.check(0, 108340, 108345) == "time_backwards"
    assert v.check(1, 108340, 108345) == "duplicate"
    assert v.accepted == 1
    assert dict(v.rejections()) == {
        "crossed": 1,
        "locked": 1,
        "bad_price": 1,
        "time_backwards": 1,
        "duplicate": 1,
        "outlier": 0,
    }


def test_bad_tls_files_fail_the_engine_start_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    tls: dict[str, str | PathLike[str]] = {"ca": str(missing), "server_name": "localhost"}
    with pytest.raises(OSError, match=re.escape(f"TLS of venue PAPER: cannot read {missing}")):
        engine.ExecutionEngine([("X", 2, 0, 1)], connect_to=("127.0.0.1", 9), tls=tls)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ValueError, match=re.escape(f"{garbage}: no certificate in it")):
        engine.ExecutionEngine(
            [("X", 2, 0, 1)],
            venues=[
                {
                    "name": "BROKER",
                    "connect_to": ("127.0.0.1", 9),
                    "tls": {"ca": str(garbage), "server_name": "localhost"},
                }
            ],
        )
    with pytest.raises(ValueError, match='unknown key "sni" in initiator tls'):
        engine.ExecutionEngine(
            [("X", 2, 0, 1)], connect_to=("127.0.0.1", 9), tls={**tls, "sni": "localhost"}
        )
    with pytest.raises(ValueError, match="TLS is for external venues"):
        engine.ExecutionEngine(
            [("X", 2, 0, 1)],
            venues=[{"name": "A", "tls": {"ca": str(garbage), "server_name": "a"}}],
        )
    with pytest.raises(OSError, match=re.escape(str(missing))):
        engine.PaperVenueServer(
            [("X", 2, 0, 1)], [("PAPER", "QF")], tls={"cert": str(missing), "key": str(missing)}
        )


def test_a_caller_reading_its_reports_trades_and_bad_settings_are_refused() -> None:
    eng = engine.ExecutionEngine(
        [("ESZ6", 2, 0, 25)], busy_poll_us=500, caller_reads_us=2_000, wait_spin_us=5_000
    )
    try:
        assert eng.wait_logged_on(5.0)
        eng.on_quote("ESZ6", 10_000, 10_025, 5, 20, 1_700_000_000_000_000_000)
        last = eng.last_sequence()
        for i in range(50):
            order = eng.submit(f"CR{i}", "ESZ6", "buy", "limit", 1, limit_price=5_000)
            seq = eng.wait_report_after(last, 5.0)
            assert seq > last, f"no report for order {i}"
            (report,) = eng.reports_since(last, 1)
            assert report["exec_type"] == "new"
            assert report["order"]["order_id"] == order["order_id"]
            last = seq
    finally:
        eng.stop()
    with pytest.raises(ValueError, match="caller_reads_us"):
        engine.ExecutionEngine([("ESZ6", 2, 0, 25)], caller_reads_us=-1)
