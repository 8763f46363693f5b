"""Interoperability of the Nexus FIX engine with the real QuickFIX engine over TLS.

* Nexus initiator (ExecutionEngine, ``connect_to`` and ``tls``) -> QuickFIX
  ``SSLSocketAcceptor`` that plays a broker and asks for a client certificate:
  logon over mutual TLS, one order filled, logout.
* QuickFIX ``SSLSocketInitiator`` -> Nexus TLS acceptor (PaperVenueServer with
  ``tls``, client certificates required): one order filled; without a client
  certificate it is refused, and the refusal is counted.

Each test runs one QuickFIX SSL initiator: two in a row in one test (the first
stopped and dropped, the second started) crashed the process with a segfault
inside QuickFIX (quickfix-ssl 1.15.1.post4; likely its OpenSSL teardown when
the first is destroyed).

The certificates (RSA: QuickFIX's loader takes RSA and DSA keys) are made by
the ``openssl`` command for each test; the tests skip when it is absent.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nexus.engine import ExecutionEngine, PaperVenueServer
from tests.conftest import free_port
from tests.integration.test_quickfix_interop import (
    HEART_BT_INT,
    SYMBOL,
    _BrokerApp,
    _ClientApp,
    _new_order,
    _order_status,
    _settings,
    _wait,
)

fix: Any = pytest.importorskip("quickfix")

pytestmark = pytest.mark.integration

if not hasattr(fix, "SSLSocketAcceptor"):
    pytest.skip("this quickfix build has no SSL classes", allow_module_level=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a server certificate for localhost and 127.0.0.1, and a client one."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make the test certificates")
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=Nexus test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "subjectAltName=DNS:nexus-client\nextendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        run(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}",
        )  # fmt: skip
        run(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
        )  # fmt: skip
    return {
        f"{name}.{kind}": str(d / f"{name}.{kind}")
        for name in ("ca", "server", "client")
        for kind in ("pem", "key")
    }


@contextmanager
def _ssl_broker(tmp_path: Path, pki: dict[str, str]) -> Iterator[tuple[_BrokerApp, int]]:
    """A QuickFIX SSLSocketAcceptor (PAPER -> NEXUS) that requires a client
    certificate signed by the test CA."""
    port = free_port()
    settings = _settings(
        tmp_path,
        "ssl-broker",
        {"BeginString": "FIX.4.4", "SenderCompID": "PAPER", "TargetCompID": "NEXUS"},
        {
            "ConnectionType": "acceptor",
            "SocketAcceptPort": str(port),
            "ServerCertificateFile": pki["server.pem"],
            "ServerCertificateKeyFile": pki["server.key"],
            "CertificateAuthoritiesFile": pki["ca.pem"],
            "CertificateVerifyLevel": "1",
        },
    )
    app = _BrokerApp()
    acceptor = fix.SSLSocketAcceptor(
        app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
    )
    acceptor.start()
    try:
        yield app, port
    finally:
        acceptor.stop()


def test_nexus_initiator_to_quickfix_ssl_acceptor(tmp_path: Path, pki: dict[str, str]) -> None:
    with _ssl_broker(tmp_path, pki) as (app, port):
        engine = ExecutionEngine(
            [(SYMBOL, 2, 0, 1)],
            connect_to=("127.0.0.1", port),
            tls={
                "ca": pki["ca.pem"],
                "server_name": "localhost",
                "cert": pki["client.pem"],
                "key": pki["client.key"],
            },
            heart_bt_int=HEART_BT_INT,
        )
        try:
            assert engine.wait_logged_on(10.0), engine.session()
            assert _wait(lambda: app.rec.saw("logon"))
            engine.on_quote(SYMBOL, 10_000, 10_010, 5, 5, time.time_ns())
            order = engine.submit("T1", SYMBOL, "buy", "limit", 2, 10_005)
            assert _wait(_order_status(engine, order["order_id"], "filled"))
            (position,) = engine.positions()
            assert (position["quantity"], position["average_price"]) == (2, 10_005)
            assert [(m[35], m[11]) for m in app.rec.app_in] == [("D", "T1")]
            session = engine.session()
            assert (session["transport_failures"], session["last_transport_failure"]) == (0, None)
        finally:
            engine.stop()
        assert _wait(lambda: app.rec.saw("logout"))
        assert app.rec.errors == []


def test_nexus_initiator_refuses_a_quickfix_acceptor_of_another_name(
    tmp_path: Path, pki: dict[str, str]
) -> None:
    with _ssl_broker(tmp_path, pki) as (app, port):
        engine = ExecutionEngine(
            [(SYMBOL, 2, 0, 1)],
            connect_to=("127.0.0.1", port),
            tls={
                "ca": pki["ca.pem"],
                "server_name": "broker.example.com",
                "cert": pki["client.pem"],
                "key": pki["client.key"],
            },
        )
        try:
            assert not engine.wait_logged_on(1.0)
            session = engine.session()
            assert session["transport_failures"] >= 1
            assert "broker.example.com" in session["last_transport_failure"]
            assert not app.rec.saw("logon")
        finally:
            engine.stop()


def _ssl_client(
    tmp_path: Path, name: str, port: int, tls: dict[str, str]
) -> tuple[_ClientApp, Any]:
    settings = _settings(
        tmp_path,
        name,
        {"BeginString": "FIX.4.4", "SenderCompID": "QF", "TargetCompID": "PAPER"},
        {
            "ConnectionType": "initiator",
            "SocketConnectHost": "127.0.0.1",
            "SocketConnectPort": str(port),
            "HeartBtInt": str(HEART_BT_INT),
            "ReconnectInterval": "1",
            **tls,
        },
    )
    app = _ClientApp()
    initiator = fix.SSLSocketInitiator(
        app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
    )
    initiator.start()
    return app, initiator


def _tls_venue(pki: dict[str, str]) -> PaperVenueServer:
    """The paper venue behind a Nexus TLS acceptor that requires client certificates."""
    venue = PaperVenueServer(
        [(SYMBOL, 2, 0, 1)],
        [("PAPER", "QF")],
        tls={"cert": pki["server.pem"], "key": pki["server.key"], "client_ca": pki["ca.pem"]},
    )
    venue.on_quote(SYMBOL, 10_000, 10_010, 100, 100, time.time_ns())
    return venue


def test_quickfix_ssl_initiator_without_certificate_is_refused(
    tmp_path: Path, pki: dict[str, str]
) -> None:
    venue = _tls_venue(pki)
    initiator = None
    try:
        app, initiator = _ssl_client(
            tmp_path, "ssl-anonymous", venue.port, {"CertificateAuthoritiesFile": pki["ca.pem"]}
        )
        assert _wait(lambda: venue.transport_failures()[0] >= 1)
        _, why = venue.transport_failures()
        assert why == "TLS handshake failed: peer sent no certificates"
        assert not app.rec.saw("logon")
        assert not venue.is_logged_on("PAPER", "QF")
    finally:
        if initiator is not None:
            initiator.stop()
        venue.stop()


def test_quickfix_ssl_initiator_to_nexus_tls_acceptor(tmp_path: Path, pki: dict[str, str]) -> None:
    venue = _tls_venue(pki)
    initiator = None
    try:
        app, initiator = _ssl_client(
            tmp_path,
            "ssl-client",
            venue.port,
            {
                "CertificateAuthoritiesFile": pki["ca.pem"],
                "ClientCertificateFile": pki["client.pem"],
                "ClientCertificateKeyFile": pki["client.key"],
            },
        )
        sid = fix.SessionID("FIX.4.4", "QF", "PAPER")
        assert _wait(lambda: app.rec.saw("logon"))
        assert _wait(lambda: venue.is_logged_on("PAPER", "QF"))
        assert fix.Session.sendToTarget(_new_order("Q1", fix.Side_BUY, 5, "100.10"), sid)
        assert _wait(lambda: len(app.reports("Q1")) >= 2)
        new, trade = app.reports("Q1")
        assert (new[150], new[39]) == ("0", "0")
        assert (trade[150], trade[39], Decimal(trade[32])) == ("F", "2", Decimal(5))
        assert Decimal(trade[31]) == Decimal("100.10")
        initiator.stop()
        initiator = None
        assert app.rec.saw("logout")
        assert _wait(lambda: not venue.is_logged_on("PAPER", "QF"))
        assert venue.transport_failures() == (0, None)
    finally:
        if initiator is not None:
            initiator.stop()
        venue.stop()
