//! The session layer over TLS on 127.0.0.1, with certificates generated for each
//! test: a Nexus initiator and acceptor trading over TLS, mutual TLS, refusals
//! for a wrong CA, a wrong name, a missing client certificate, and a plaintext
//! peer on either side, after which the endpoints still serve good peers; a
//! caller reading its answers through the connection's TLS state; and clear
//! errors for bad PEM files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod session_common;
use session_common::{
    acceptor_id, dictionary, initiator_id, next_event, order, wait_for, Exchange, TempDir,
};

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use nexus_fix::message::{FieldAccess, Message};
use nexus_fix::session::{
    Acceptor, AcceptorConfig, AppEvent, ChannelApplication, ClientTls, ClientTlsFiles, Initiator,
    InitiatorConfig, MemoryStore, OutgoingMessage, ServerTls, ServerTlsFiles, Session,
    SessionConfig, TlsError,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA, a server certificate for `localhost` and 127.0.0.1, a client
/// certificate, all signed by the CA, and a second CA that signed nothing of
/// theirs; PEM files in a temporary directory.
struct Pki {
    dir: TempDir,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nexus-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (ca_pem, issuer) = ca("Nexus test CA");
        let (other_pem, other_issuer) = ca("Another CA");
        let (server, server_key) = leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &issuer,
        );
        let (client, client_key) = leaf(&["TW"], ExtendedKeyUsagePurpose::ClientAuth, &issuer);
        let (stranger, stranger_key) =
            leaf(&["TW"], ExtendedKeyUsagePurpose::ClientAuth, &other_issuer);
        for (file, pem) in [
            ("ca.pem", ca_pem),
            ("other-ca.pem", other_pem),
            ("server.pem", server),
            ("server.key", server_key),
            ("client.pem", client),
            ("client.key", client_key),
            ("stranger.pem", stranger),
            ("stranger.key", stranger_key),
        ] {
            std::fs::write(dir.join(file), pem).unwrap();
        }
        Self { dir: TempDir(dir) }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.0.join(file)
    }

    fn server(&self, client_ca: Option<&str>, require: bool) -> ServerTls {
        ServerTls::load(&ServerTlsFiles {
            cert_file: self.path("server.pem"),
            key_file: self.path("server.key"),
            client_ca_file: client_ca.map(|f| self.path(f)),
            require_client_cert: require,
        })
        .unwrap()
    }

    fn client(&self, ca: &str, server_name: &str, identity: Option<&str>) -> ClientTls {
        ClientTls::load(&ClientTlsFiles {
            ca_file: self.path(ca),
            server_name: server_name.to_owned(),
            cert_file: identity.map(|i| self.path(&format!("{i}.pem"))),
            key_file: identity.map(|i| self.path(&format!("{i}.key"))),
        })
        .unwrap()
    }
}

fn start_acceptor(tls: Option<ServerTls>) -> Acceptor {
    start_polling_acceptor(tls, Duration::ZERO)
}

fn start_polling_acceptor(tls: Option<ServerTls>, busy_poll: Duration) -> Acceptor {
    let mut config = AcceptorConfig::localhost();
    config.tls = tls;
    config.busy_poll = busy_poll;
    let session = Session::new(
        SessionConfig::new(acceptor_id()),
        dictionary(),
        Box::new(MemoryStore::new()),
    );
    Acceptor::start(config, vec![session], Arc::new(Exchange)).unwrap()
}

fn start_initiator(addr: SocketAddr, tls: Option<ClientTls>) -> (Initiator, Receiver<AppEvent>) {
    start_polling_initiator(addr, tls, Duration::ZERO)
}

fn start_polling_initiator(
    addr: SocketAddr,
    tls: Option<ClientTls>,
    busy_poll: Duration,
) -> (Initiator, Receiver<AppEvent>) {
    let mut config = SessionConfig::new(initiator_id());
    config.heart_bt_int = 1;
    config.reset_on_logon = true;
    let session = Session::new(config, dictionary(), Box::new(MemoryStore::new()));
    let (app, rx) = ChannelApplication::new(16);
    let mut icfg = InitiatorConfig::new(addr);
    icfg.reconnect_min = Duration::from_millis(50);
    icfg.reconnect_max = Duration::from_millis(400);
    icfg.tls = tls;
    icfg.busy_poll = busy_poll;
    (Initiator::start(icfg, session, Arc::new(app)).unwrap(), rx)
}

fn expect_report(rx: &Receiver<AppEvent>, cl_ord_id: &str) {
    check_report(next_event(rx), cl_ord_id);
}

/// `event` is the initiator's ExecutionReport for `cl_ord_id`.
fn check_report(event: AppEvent, cl_ord_id: &str) {
    match event {
        AppEvent::Message(session, bytes) => {
            assert_eq!(session, initiator_id());
            let msg = Message::parse(&bytes).unwrap();
            assert_eq!(msg.msg_type(), b"8");
            assert_eq!(msg.get_str(11).unwrap(), cl_ord_id);
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Logs on, sends two orders and gets their reports, gets a message the
/// acceptor sends on its own, and logs out.
fn trade(acceptor: &Acceptor, tls: Option<ClientTls>) {
    trade_polling(acceptor, tls, Duration::ZERO);
}

/// As [`trade`], the initiator's reader busy-polling for `busy_poll`.
fn trade_polling(acceptor: &Acceptor, tls: Option<ClientTls>, busy_poll: Duration) {
    let (mut initiator, rx) = start_polling_initiator(acceptor.local_addr(), tls, busy_poll);
    assert_eq!(next_event(&rx), AppEvent::Logon(initiator_id()));
    wait_for("acceptor logon", Duration::from_secs(5), || {
        acceptor.is_logged_on(&acceptor_id())
    });
    let orders = initiator.sender();
    for id in ["O1", "O2"] {
        orders.send(order(id)).unwrap();
        expect_report(&rx, id);
    }
    // Sent by the acceptor's writer thread, not in answer to anything.
    let unsolicited = OutgoingMessage::new("8").field(11, "U1");
    acceptor
        .sender(&acceptor_id())
        .unwrap()
        .send(unsolicited)
        .unwrap();
    expect_report(&rx, "U1");
    // A heartbeat goes by (HeartBtInt 1 s) on the encrypted connection.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(initiator.is_logged_on());
    assert_eq!(initiator.transport_failures(), 0);
    initiator.stop();
    assert_eq!(next_event(&rx), AppEvent::Logout(initiator_id()));
    wait_for("acceptor logout", Duration::from_secs(5), || {
        !acceptor.is_logged_on(&acceptor_id())
    });
}

#[test]
fn initiator_and_acceptor_trade_over_tls() {
    let pki = Pki::new("trade");
    let acceptor = start_acceptor(Some(pki.server(None, false)));
    trade(&acceptor, Some(pki.client("ca.pem", "localhost", None)));
    // The IP address in the certificate verifies too.
    trade(&acceptor, Some(pki.client("ca.pem", "127.0.0.1", None)));
    assert_eq!(acceptor.transport_failures(), 0);
    assert_eq!(acceptor.last_transport_failure(), None);
}

#[test]
fn busy_polling_readers_trade_over_tls_and_plain_tcp() {
    // Polling for longer than the test: reads without waiting (rustls fed from
    // non-blocking reads), timers (the heartbeat) and logout all still work.
    let poll = Duration::from_secs(60);
    let pki = Pki::new("poll");
    let acceptor = start_polling_acceptor(Some(pki.server(None, false)), poll);
    trade_polling(
        &acceptor,
        Some(pki.client("ca.pem", "localhost", None)),
        poll,
    );
    assert_eq!(acceptor.transport_failures(), 0);
    let plain = start_polling_acceptor(None, poll);
    trade_polling(&plain, None, poll);
    assert_eq!(plain.transport_failures(), 0);
}

#[test]
fn a_caller_reads_its_answers_over_tls() {
    // The caller's reads go through the connection's own TLS state (the
    // buffers rustls decrypts into), as the reader thread's do.
    let pki = Pki::new("caller-reads");
    let acceptor = start_acceptor(Some(pki.server(None, false)));
    let mut config = SessionConfig::new(initiator_id());
    config.reset_on_logon = true;
    let session = Session::new(config, dictionary(), Box::new(MemoryStore::new()));
    let (app, rx) = ChannelApplication::new(64);
    let mut icfg = InitiatorConfig::new(acceptor.local_addr());
    icfg.tls = Some(pki.client("ca.pem", "localhost", None));
    icfg.caller_reads = Duration::from_secs(10);
    let mut initiator = Initiator::start(icfg, session, Arc::new(app)).unwrap();
    assert_eq!(next_event(&rx), AppEvent::Logon(initiator_id()));
    let driver = initiator.driver();
    driver.pump();
    // The reader steps aside once its blocking read times out (20 ms).
    std::thread::sleep(Duration::from_millis(60));
    for i in 0..20 {
        let id = format!("T{i}");
        initiator.send_now(order(&id)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        // Only the caller reads (a 10 s linger): no answer without its pumps.
        let mut read = false;
        let event = loop {
            read |= driver.pump();
            if let Ok(event) = rx.try_recv() {
                break event;
            }
            assert!(std::time::Instant::now() < deadline, "no answer to {id}");
        };
        assert!(read, "{id} was read by another thread than the caller");
        check_report(event, &id);
    }
    assert_eq!(initiator.transport_failures(), 0);
    initiator.stop();
    assert_eq!(next_event(&rx), AppEvent::Logout(initiator_id()));
}

/// Starts an initiator that must not log on; returns why it failed, after at
/// least two attempts (it reconnects with back-off).
fn refused(acceptor: &Acceptor, tls: Option<ClientTls>) -> String {
    let before = acceptor.transport_failures();
    let (mut initiator, rx) = start_initiator(acceptor.local_addr(), tls);
    wait_for("two refused attempts", Duration::from_secs(10), || {
        initiator.transport_failures() >= 2 && acceptor.transport_failures() >= before + 2
    });
    assert!(!initiator.is_logged_on());
    assert!(!acceptor.is_logged_on(&acceptor_id()));
    initiator.stop();
    assert!(
        rx.try_iter().all(|e| !matches!(e, AppEvent::Logon(_))),
        "logged on"
    );
    initiator.last_transport_failure().unwrap()
}

#[test]
fn mutual_tls_needs_a_client_certificate_from_the_ca() {
    let pki = Pki::new("mutual");
    let acceptor = start_acceptor(Some(pki.server(Some("ca.pem"), true)));
    let why = refused(&acceptor, Some(pki.client("ca.pem", "localhost", None)));
    assert!(why.contains("CertificateRequired"), "{why}");
    let acceptor_why = acceptor.last_transport_failure().unwrap();
    assert!(acceptor_why.contains("no certificates"), "{acceptor_why}");

    let why = refused(
        &acceptor,
        Some(pki.client("ca.pem", "localhost", Some("stranger"))),
    );
    assert!(why.contains("alert"), "{why}");
    let acceptor_why = acceptor.last_transport_failure().unwrap();
    assert!(acceptor_why.contains("UnknownIssuer"), "{acceptor_why}");

    trade(
        &acceptor,
        Some(pki.client("ca.pem", "localhost", Some("client"))),
    );
}

#[test]
fn optional_client_certificate_lets_anonymous_clients_in() {
    let pki = Pki::new("optional");
    let acceptor = start_acceptor(Some(pki.server(Some("ca.pem"), false)));
    trade(&acceptor, Some(pki.client("ca.pem", "localhost", None)));
    trade(
        &acceptor,
        Some(pki.client("ca.pem", "localhost", Some("client"))),
    );
    // A certificate is still checked when one is presented.
    let why = refused(
        &acceptor,
        Some(pki.client("ca.pem", "localhost", Some("stranger"))),
    );
    assert!(why.contains("alert"), "{why}");
}

#[test]
fn wrong_ca_or_wrong_server_name_is_refused() {
    let pki = Pki::new("verify");
    let acceptor = start_acceptor(Some(pki.server(None, false)));
    let why = refused(
        &acceptor,
        Some(pki.client("other-ca.pem", "localhost", None)),
    );
    assert!(why.starts_with("TLS handshake failed"), "{why}");
    assert!(why.contains("UnknownIssuer"), "{why}");
    let acceptor_why = acceptor.last_transport_failure().unwrap();
    assert!(acceptor_why.contains("alert"), "{acceptor_why}");

    let why = refused(
        &acceptor,
        Some(pki.client("ca.pem", "fix.example.com", None)),
    );
    assert!(
        why.contains("not valid for name \"fix.example.com\""),
        "{why}"
    );

    // The acceptor still serves a good client.
    trade(&acceptor, Some(pki.client("ca.pem", "localhost", None)));
}

#[test]
fn plaintext_and_tls_peers_do_not_mix() {
    let pki = Pki::new("mix");
    // A plaintext initiator on a TLS acceptor.
    let acceptor = start_acceptor(Some(pki.server(None, false)));
    let why = refused(&acceptor, None);
    assert!(why.contains("speaks TLS"), "{why}");
    let acceptor_why = acceptor.last_transport_failure().unwrap();
    assert!(
        acceptor_why.starts_with("TLS handshake failed"),
        "{acceptor_why}"
    );
    // A raw plaintext socket gets nothing but an alert and the close.
    let mut raw = TcpStream::connect(acceptor.local_addr()).unwrap();
    std::io::Write::write_all(&mut raw, b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01").unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut raw, &mut answer);
    assert!(!answer.starts_with(b"8="), "{answer:?}");
    trade(&acceptor, Some(pki.client("ca.pem", "localhost", None)));
    drop(acceptor);

    // A TLS initiator on a plaintext acceptor.
    let acceptor = start_acceptor(None);
    let why = refused(&acceptor, Some(pki.client("ca.pem", "localhost", None)));
    assert!(why.starts_with("TLS handshake failed"), "{why}");
    let acceptor_why = acceptor.last_transport_failure().unwrap();
    assert!(acceptor_why.contains("speaks TLS"), "{acceptor_why}");
    trade(&acceptor, None);
}

fn load_error(files: &ServerTlsFiles) -> String {
    let err: TlsError = ServerTls::load(files).unwrap_err();
    err.to_string()
}

#[test]
fn bad_files_are_named_in_the_error() {
    let pki = Pki::new("files");
    let good = ServerTlsFiles {
        cert_file: pki.path("server.pem"),
        key_file: pki.path("server.key"),
        client_ca_file: None,
        require_client_cert: false,
    };
    let missing = pki.path("missing.pem");
    let why = load_error(&ServerTlsFiles {
        cert_file: missing.clone(),
        ..good.clone()
    });
    assert!(
        why.starts_with(&format!("cannot read {}", missing.display())),
        "{why}"
    );

    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let why = load_error(&ServerTlsFiles {
        cert_file: garbage.clone(),
        ..good.clone()
    });
    assert_eq!(why, format!("{}: no certificate in it", garbage.display()));
    // A certificate where the key should be.
    let why = load_error(&ServerTlsFiles {
        key_file: pki.path("server.pem"),
        ..good.clone()
    });
    assert!(why.contains("no private key"), "{why}");
    // The client's key with the server's certificate.
    let why = load_error(&ServerTlsFiles {
        key_file: pki.path("client.key"),
        ..good.clone()
    });
    assert!(why.starts_with("cannot use the certificate"), "{why}");
    let why = load_error(&ServerTlsFiles {
        client_ca_file: Some(garbage.clone()),
        ..good
    });
    assert!(why.contains(&garbage.display().to_string()), "{why}");

    let client = |server_name: &str, cert: Option<&Path>| {
        ClientTls::load(&ClientTlsFiles {
            ca_file: pki.path("ca.pem"),
            server_name: server_name.to_owned(),
            cert_file: cert.map(Path::to_owned),
            key_file: None,
        })
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        client("bad name!", None),
        "invalid TLS server name \"bad name!\""
    );
    let why = client("localhost", Some(&pki.path("client.pem")));
    assert!(why.contains("needs its key"), "{why}");
}
