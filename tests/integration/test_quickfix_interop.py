"""Interoperability of the Nexus FIX engine with the real QuickFIX engine, both ways.

* Nexus initiator (ExecutionEngine with ``connect_to``) -> QuickFIX acceptor that
  plays a broker: fills, replaces, cancels, a sequence gap it makes on purpose.
* QuickFIX initiator -> Nexus acceptor (PaperVenueServer): orders, replace, cancel,
  a sequence gap in QuickFIX's own messages, logout.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nexus.engine import ExecutionEngine, PaperVenueServer
from tests.conftest import free_port

fix: Any = pytest.importorskip("quickfix")
fix44: Any = pytest.importorskip("quickfix44")

pytestmark = pytest.mark.integration

FIX44_XML = Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"
SYMBOL = "BTCUSD"
HEART_BT_INT = 5
MARKET = 100.0


def _wait(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _os_threads() -> int:
    """Threads of this process (native ones included, as QuickFIX's are)."""
    tasks = Path("/proc/self/task")
    return len(list(tasks.iterdir())) if tasks.is_dir() else threading.active_count()


def _port_free(port: int) -> bool:
    """Whether nothing listens on the port any more (TIME_WAIT connections allowed)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def _settings(tmp_path: Path, name: str, session: dict[str, str], default: dict[str, str]) -> Any:
    base = {
        "StartTime": "00:00:00",
        "EndTime": "00:00:00",
        "FileStorePath": str(tmp_path / f"{name}-store"),
        "FileLogPath": str(tmp_path / f"{name}-log"),
        "UseDataDictionary": "Y",
        "DataDictionary": str(FIX44_XML),
        "ResetOnLogon": "Y",
        "ResetOnDisconnect": "Y",
        **default,
    }
    lines = ["[DEFAULT]", *(f"{k}={v}" for k, v in base.items()), "", "[SESSION]"]
    lines += [f"{k}={v}" for k, v in session.items()]
    path = tmp_path / f"{name}.cfg"
    path.write_text("\n".join(lines) + "\n")
    return fix.SessionSettings(str(path))


def _msg_type(msg: Any) -> str:
    return str(msg.getHeader().getField(35))


def _fields(msg: Any, tags: tuple[int, ...]) -> dict[int, str]:
    out = {35: _msg_type(msg), 34: str(msg.getHeader().getField(34))}
    for tag in tags:
        if msg.isSetField(tag):
            out[tag] = str(msg.getField(tag))
    return out


@dataclass
class _Recorder:
    """What a QuickFIX application saw, copied inside the callbacks."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    events: list[str] = field(default_factory=list)
    admin_in: list[dict[int, str]] = field(default_factory=list)
    admin_out: list[dict[int, str]] = field(default_factory=list)
    app_in: list[dict[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def admin_types_in(self) -> list[str]:
        with self.lock:
            return [m[35] for m in self.admin_in]

    def admin_types_out(self) -> list[str]:
        with self.lock:
            return [m[35] for m in self.admin_out]

    def saw(self, event: str) -> bool:
        with self.lock:
            return event in self.events


ADMIN_TAGS = (7, 16, 36, 45, 58, 123, 371, 372, 373)
APP_TAGS = (6, 11, 14, 17, 31, 32, 37, 38, 39, 40, 41, 44, 54, 55, 150, 151)


# --- Nexus initiator -> QuickFIX acceptor ---------------------------------------


class _RecordingApp(fix.Application):  # type: ignore[misc]
    """A QuickFIX application that records logons, logouts and admin messages."""

    def __init__(self) -> None:
        super().__init__()
        self.rec = _Recorder()

    def onCreate(self, session_id: Any) -> None:
        return

    def onLogon(self, session_id: Any) -> None:
        with self.rec.lock:
            self.rec.events.append("logon")

    def onLogout(self, session_id: Any) -> None:
        with self.rec.lock:
            self.rec.events.append("logout")

    def toAdmin(self, msg: Any, session_id: Any) -> None:
        with self.rec.lock:
            self.rec.admin_out.append(_fields(msg, ADMIN_TAGS))

    def fromAdmin(self, msg: Any, session_id: Any) -> None:
        with self.rec.lock:
            self.rec.admin_in.append(_fields(msg, ADMIN_TAGS))

    def toApp(self, msg: Any, session_id: Any) -> None:
        return


class _BrokerApp(_RecordingApp):
    """A QuickFIX acceptor application that plays a broker: for D, New then, when
    the limit price crosses ``MARKET``, a full fill at the limit price (else the
    order rests); Replaced for G, Canceled for F. When ``gap`` is set, skips that
    many outgoing sequence numbers before answering the next D."""

    def __init__(self) -> None:
        super().__init__()
        self.gap = 0
        self.skipped = (0, 0)
        self.exec_n = 0
        self.orders: dict[str, str] = {}

    def fromApp(self, msg: Any, session_id: Any) -> None:
        try:
            self._answer(msg, session_id)
        except Exception as e:
            with self.rec.lock:
                self.rec.errors.append(repr(e))

    def _report(
        self, src: dict[int, str], exec_type: str, status: str, order_id: str, **extra: str
    ) -> Any:
        self.exec_n += 1
        er = fix44.ExecutionReport()
        er.setField(fix.OrderID(order_id))
        er.setField(fix.ExecID(f"QF-E{self.exec_n}"))
        er.setField(fix.ExecType(exec_type))
        er.setField(fix.OrdStatus(status))
        er.setField(fix.ClOrdID(src[11]))
        if 41 in src:
            er.setField(fix.OrigClOrdID(src[41]))
        er.setField(fix.Symbol(src[55]))
        er.setField(fix.Side(src[54]))
        for tag in (38, 40, 44):
            if tag in src:
                er.setField(tag, src[tag])
        for tag, value in (
            (151, extra.get("leaves", "0")),
            (14, extra.get("cum", "0")),
            (6, extra.get("avg", "0")),
        ):
            er.setField(tag, value)
        if "last_qty" in extra:
            er.setField(32, extra["last_qty"])
            er.setField(31, extra["last_px"])
        er.setField(fix.TransactTime())
        return er

    def _answer(self, msg: Any, session_id: Any) -> None:
        src = _fields(msg, APP_TAGS)
        with self.rec.lock:
            self.rec.app_in.append(src)
        kind = src[35]
        out: list[Any] = []
        if kind == "D":
            order_id = f"QF-{src[11]}"
            self.orders[src[11]] = order_id
            qty, px = src[38], src.get(44, "0")
            out.append(self._report(src, "0", "0", order_id, leaves=qty))
            price = float(px)
            if (src[54] == "1" and price >= MARKET) or (src[54] == "2" and price <= MARKET):
                out.append(
                    self._report(src, "F", "2", order_id, cum=qty, avg=px, last_qty=qty, last_px=px)
                )
            if self.gap:
                session = fix.Session.lookupSession(session_id)
                skipped_from = session.getExpectedSenderNum()
                session.setNextSenderMsgSeqNum(skipped_from + self.gap)
                self.skipped = (skipped_from, skipped_from + self.gap)
                self.gap = 0
        elif kind == "G":
            order_id = self.orders[src[41]]
            self.orders[src[11]] = order_id
            out.append(self._report(src, "5", "0", order_id, leaves=src[38]))
        elif kind == "F":
            order_id = self.orders[src[41]]
            out.append(self._report(src, "4", "4", order_id))
        for er in out:
            fix.Session.sendToTarget(er, session_id)


@contextmanager
def _broker(tmp_path: Path) -> Iterator[tuple[_BrokerApp, int]]:
    """A QuickFIX SocketAcceptor (PAPER -> NEXUS) on a free port, stopped on exit."""
    port = free_port()
    settings = _settings(
        tmp_path,
        "broker",
        {"BeginString": "FIX.4.4", "SenderCompID": "PAPER", "TargetCompID": "NEXUS"},
        {"ConnectionType": "acceptor", "SocketAcceptPort": str(port)},
    )
    app = _BrokerApp()
    acceptor = fix.SocketAcceptor(
        app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
    )
    acceptor.start()
    try:
        yield app, port
    finally:
        acceptor.stop()


def _order_status(engine: ExecutionEngine, order_id: int, status: str) -> Callable[[], bool]:
    def check() -> bool:
        order = engine.order(order_id)
        return order is not None and order["status"] == status

    return check


def test_nexus_initiator_to_quickfix_acceptor(tmp_path: Path) -> None:
    threads = _os_threads()
    started = time.monotonic()
    with _broker(tmp_path) as (app, port):
        _nexus_to_quickfix(app, port)
    assert _wait(lambda: _os_threads() <= threads)
    assert _port_free(port)
    assert time.monotonic() - started < 30


def _nexus_to_quickfix(app: _BrokerApp, port: int) -> None:
    engine = ExecutionEngine(
        [(SYMBOL, 2, 0, 1)],
        connect_to=("127.0.0.1", port),
        heart_bt_int=HEART_BT_INT,
    )
    try:
        assert engine.wait_logged_on(10.0)
        assert _wait(lambda: app.rec.saw("logon"))
        engine.on_quote(SYMBOL, 10_000, 10_010, 5, 5, time.time_ns())

        # A limit order, filled in full at its limit price.
        first = engine.submit("C1", SYMBOL, "buy", "limit", 2, 10_005)
        assert first["status"] == "pending_new"
        assert _wait(_order_status(engine, first["order_id"], "filled"))
        order = engine.order(first["order_id"])
        assert order is not None
        assert (order["filled"], order["average_price"]) == (2, 10_005)
        (position,) = engine.positions()
        assert (position["symbol"], position["quantity"]) == (SYMBOL, 2)
        assert position["average_price"] == 10_005

        # Another, resting: replaced, then cancelled.
        second = engine.submit("C2", SYMBOL, "buy", "limit", 1, 9_900)
        oid = second["order_id"]
        assert _wait(_order_status(engine, oid, "new"))
        engine.replace(oid, "C3", 3, 9_950)
        assert _wait(lambda: (engine.order(oid) or {}).get("limit_price") == 9_950)
        order = engine.order(oid)
        assert order is not None
        assert (order["status"], order["quantity"], order["client_order_id"]) == ("new", 3, "C3")
        engine.cancel(oid, "C4")
        assert _wait(_order_status(engine, oid, "canceled"))
        kinds = [(r["order"]["order_id"], r["exec_type"]) for r in engine.reports_since(0)]
        assert kinds == [
            (first["order_id"], "new"),
            (first["order_id"], "trade"),
            (oid, "new"),
            (oid, "replaced"),
            (oid, "canceled"),
        ]
        received = [(m[35], m[11], m.get(41)) for m in app.rec.app_in]
        assert received == [
            ("D", "C1", None),
            ("D", "C2", None),
            ("G", "C3", "C2"),
            ("F", "C4", "C3"),
        ]

        # A sequence gap made by QuickFIX: Nexus asks for a resend and gets
        # every report once.
        app.gap = 3
        gapped = engine.submit("C5", SYMBOL, "sell", "limit", 2, 9_990)
        assert _wait(_order_status(engine, gapped["order_id"], "filled"))
        assert _wait(lambda: "2" in app.rec.admin_types_in())
        skipped_from, skipped_to = app.skipped
        with app.rec.lock:
            resends = [m for m in app.rec.admin_in if m[35] == "2"]
        assert [(int(m[7]), int(m[16])) for m in resends] == [(skipped_from, 0)]
        assert _wait(lambda: "4" in app.rec.admin_types_out())
        with app.rec.lock:
            gap_fill = next(m for m in app.rec.admin_out if m[35] == "4")
        assert (gap_fill.get(123), int(gap_fill[36])) == ("Y", skipped_to)
        gapped_reports = [
            r["exec_type"]
            for r in engine.reports_since(0)
            if r["order"]["order_id"] == gapped["order_id"]
        ]
        assert gapped_reports == ["new", "trade"]
        (position,) = engine.positions()
        assert position["quantity"] == 0
        session = fix.Session.lookupSession(fix.SessionID("FIX.4.4", "PAPER", "NEXUS"))
        assert _wait(lambda: engine.session()["next_target_seq"] == session.getExpectedSenderNum())
        assert engine.session()["next_sender_seq"] == session.getExpectedTargetNum()
        assert "3" not in app.rec.admin_types_in() + app.rec.admin_types_out()
        assert app.rec.errors == []
    finally:
        engine.stop()
    assert not engine.session()["logged_on"]
    assert _wait(lambda: app.rec.saw("logout"))
    assert "5" in app.rec.admin_types_in()


# --- QuickFIX initiator -> Nexus acceptor ---------------------------------------


class _ClientApp(_RecordingApp):
    """A QuickFIX initiator application that records what it sees."""

    def fromApp(self, msg: Any, session_id: Any) -> None:
        with self.rec.lock:
            self.rec.app_in.append(_fields(msg, APP_TAGS))

    def reports(self, cl_ord_id: str) -> list[dict[int, str]]:
        with self.rec.lock:
            return [m for m in self.rec.app_in if m.get(11) == cl_ord_id]


def _new_order(cl_ord_id: str, side: str, qty: int, price: str) -> Any:
    msg = fix44.NewOrderSingle()
    msg.setField(fix.ClOrdID(cl_ord_id))
    msg.setField(fix.Symbol(SYMBOL))
    msg.setField(fix.Side(side))
    msg.setField(fix.TransactTime())
    msg.setField(fix.OrderQty(qty))
    msg.setField(fix.OrdType(fix.OrdType_LIMIT))
    msg.setField(44, price)
    msg.setField(fix.TimeInForce(fix.TimeInForce_DAY))
    return msg


def _replace(orig: str, cl_ord_id: str, side: str, qty: int, price: str) -> Any:
    msg = fix44.OrderCancelReplaceRequest()
    msg.setField(fix.OrigClOrdID(orig))
    msg.setField(fix.ClOrdID(cl_ord_id))
    msg.setField(fix.Symbol(SYMBOL))
    msg.setField(fix.Side(side))
    msg.setField(fix.TransactTime())
    msg.setField(fix.OrderQty(qty))
    msg.setField(fix.OrdType(fix.OrdType_LIMIT))
    msg.setField(44, price)
    return msg


def _cancel(orig: str, cl_ord_id: str, side: str, qty: int) -> Any:
    msg = fix44.OrderCancelRequest()
    msg.setField(fix.OrigClOrdID(orig))
    msg.setField(fix.ClOrdID(cl_ord_id))
    msg.setField(fix.Symbol(SYMBOL))
    msg.setField(fix.Side(side))
    msg.setField(fix.TransactTime())
    msg.setField(fix.OrderQty(qty))
    return msg


def test_quickfix_initiator_to_nexus_acceptor(tmp_path: Path) -> None:
    threads = _os_threads()
    started = time.monotonic()
    venue = PaperVenueServer([(SYMBOL, 2, 0, 1)], [("PAPER", "QF")])
    initiator = None
    try:
        venue.on_quote(SYMBOL, 10_000, 10_010, 100, 100, time.time_ns())
        settings = _settings(
            tmp_path,
            "client",
            {"BeginString": "FIX.4.4", "SenderCompID": "QF", "TargetCompID": "PAPER"},
            {
                "ConnectionType": "initiator",
                "SocketConnectHost": "127.0.0.1",
                "SocketConnectPort": str(venue.port),
                "HeartBtInt": str(HEART_BT_INT),
                "ReconnectInterval": "1",
            },
        )
        app = _ClientApp()
        initiator = fix.SocketInitiator(
            app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
        )
        initiator.start()
        sid = fix.SessionID("FIX.4.4", "QF", "PAPER")
        assert _wait(lambda: app.rec.saw("logon"))
        assert _wait(lambda: venue.is_logged_on("PAPER", "QF"))
        logon = next(m for m in app.rec.admin_in if m[35] == "A")
        assert logon[35] == "A"

        # A marketable limit order: New, then a Trade at the ask.
        assert fix.Session.sendToTarget(_new_order("Q1", fix.Side_BUY, 5, "100.10"), sid)
        assert _wait(lambda: len(app.reports("Q1")) >= 2)
        new, trade = app.reports("Q1")
        assert (new[150], new[39]) == ("0", "0")
        assert (trade[150], trade[39], Decimal(trade[32])) == ("F", "2", Decimal(5))
        assert Decimal(trade[31]) == Decimal("100.10")

        # A resting order, replaced, then cancelled.
        assert fix.Session.sendToTarget(_new_order("Q2", fix.Side_BUY, 3, "99.00"), sid)
        assert _wait(lambda: len(app.reports("Q2")) >= 1)
        assert [(m[150], m[39]) for m in app.reports("Q2")] == [("0", "0")]
        assert fix.Session.sendToTarget(_replace("Q2", "Q3", fix.Side_BUY, 4, "99.50"), sid)
        assert _wait(lambda: len(app.reports("Q3")) >= 1)
        (replaced,) = app.reports("Q3")
        assert (replaced[150], replaced[41], Decimal(replaced[38])) == ("5", "Q2", Decimal(4))
        assert Decimal(replaced[44]) == Decimal("99.50")
        assert fix.Session.sendToTarget(_cancel("Q3", "Q4", fix.Side_BUY, 4), sid)
        assert _wait(lambda: len(app.reports("Q4")) >= 1)
        (canceled,) = app.reports("Q4")
        assert (canceled[150], canceled[39], canceled[41]) == ("4", "4", "Q3")

        # A gap in QuickFIX's own sequence numbers: the Nexus acceptor asks for a
        # resend, QuickFIX gap-fills and resends, the order is served once.
        session = fix.Session.lookupSession(sid)
        skipped_from = session.getExpectedSenderNum()
        session.setNextSenderMsgSeqNum(skipped_from + 5)
        assert fix.Session.sendToTarget(_new_order("Q5", fix.Side_BUY, 1, "99.00"), sid)
        assert _wait(lambda: "2" in app.rec.admin_types_in())
        resend = next(m for m in app.rec.admin_in if m[35] == "2")
        assert int(resend[7]) == skipped_from
        assert _wait(lambda: "4" in app.rec.admin_types_out())
        gap_fill = next(m for m in app.rec.admin_out if m[35] == "4")
        assert (gap_fill.get(123), int(gap_fill[36])) == ("Y", skipped_from + 5)
        assert _wait(lambda: len(app.reports("Q5")) >= 1)
        assert _wait(
            lambda: (
                venue.seq_nums("PAPER", "QF")
                == (session.getExpectedTargetNum(), session.getExpectedSenderNum())
            )
        )
        time.sleep(0.2)
        assert [(m[150], m[39]) for m in app.reports("Q5")] == [("0", "0")]
        assert "3" not in app.rec.admin_types_in() + app.rec.admin_types_out()
        assert "j" not in [m[35] for m in app.rec.app_in]

        # Logout.
        initiator.stop()
        initiator = None
        assert app.rec.saw("logout")
        assert "5" in app.rec.admin_types_out()
        assert "5" in app.rec.admin_types_in()
        assert _wait(lambda: not venue.is_logged_on("PAPER", "QF"))
    finally:
        if initiator is not None:
            initiator.stop()
        venue.stop()
    assert venue.seq_nums("PAPER", "QF") is None
    assert _wait(lambda: _os_threads() <= threads)
    assert _port_free(venue.port)
    assert time.monotonic() - started < 30
