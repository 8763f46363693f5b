//! The execution engine trading with an external venue over TLS: a paper venue
//! behind a TLS acceptor (certificates generated for the test, mutual TLS), and
//! the start-up errors for bad TLS settings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_execution::{
    ExecutionConfig, ExecutionEngine, ExecutionError, InstrumentConfig, OrderRequest, OrderStatus,
    OrderType, Side, TimeInForce, VenueSetup,
};
use nexus_fix::session::{
    AcceptorConfig, ClientTlsFiles, MemoryStore, ServerTls, ServerTlsFiles, Session, SessionConfig,
    SessionId,
};
use nexus_venue::{InstrumentSpec, PaperVenue, VenueConfig};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

const SYM: &str = "ESZ6";

/// A temporary directory with a CA, a server certificate for `localhost` and a
/// client certificate, removed on drop.
struct Pki(PathBuf);

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("nexus-exec-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        std::fs::write(
            dir.join("ca.pem"),
            params.self_signed(&ca_key).unwrap().pem(),
        )
        .unwrap();
        let issuer = Issuer::new(params, ca_key);
        for (name, san) in [("server", "localhost"), ("client", "NEXUS")] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![san.to_owned()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Self(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    fn client(&self) -> ClientTlsFiles {
        ClientTlsFiles {
            ca_file: self.path("ca.pem"),
            server_name: "localhost".to_owned(),
            cert_file: Some(self.path("client.pem")),
            key_file: Some(self.path("client.key")),
        }
    }
}

fn config(venue: VenueSetup) -> ExecutionConfig {
    ExecutionConfig {
        instruments: vec![InstrumentConfig::new(SYM, 2, 0, 25)],
        venues: vec![venue],
        heart_bt_int: 5,
        ..ExecutionConfig::default()
    }
}

#[test]
fn trades_with_an_external_venue_over_mutual_tls() {
    let pki = Pki::new("trade");
    let venue = PaperVenue::new(VenueConfig {
        instruments: vec![InstrumentSpec::new(SYM, 2, 0, 25)],
        ..VenueConfig::default()
    });
    let session = Session::new(
        SessionConfig::new(SessionId::new("FIX.4.4", "BROKER", "NEXUS")),
        Arc::new(PaperVenue::dictionary().unwrap()),
        Box::new(MemoryStore::new()),
    );
    let mut acceptor_config = AcceptorConfig::localhost();
    acceptor_config.tls = Some(
        ServerTls::load(&ServerTlsFiles {
            cert_file: pki.path("server.pem"),
            key_file: pki.path("server.key"),
            client_ca_file: Some(pki.path("ca.pem")),
            require_client_cert: true,
        })
        .unwrap(),
    );
    let mut acceptor = venue.serve(acceptor_config, vec![session]).unwrap();
    let engine = ExecutionEngine::start(config(VenueSetup {
        tls: Some(pki.client()),
        ..VenueSetup::external("BROKER", acceptor.local_addr())
    }))
    .unwrap();
    assert!(engine.wait_logged_on(Duration::from_secs(5)));
    engine.on_quote(SYM, 10_000, 10_025, 5, 20, 1).unwrap();
    venue.on_quote(SYM, 10_000, 10_025, 5, 20, 1).unwrap();
    let order = engine
        .submit(OrderRequest {
            client_order_id: "T1".to_owned(),
            symbol: SYM.to_owned(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            quantity: 2,
            limit_price: Some(10_025),
            time_in_force: TimeInForce::Day,
            venues: Vec::new(),
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.order(order.order_id).unwrap().status != OrderStatus::Filled {
        assert!(Instant::now() < deadline, "not filled");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(engine.positions()[0].1.quantity, 2);
    let state = engine.session_state();
    assert_eq!(
        (state.transport_failures, state.last_transport_failure),
        (0, None)
    );
    engine.stop();
    acceptor.stop();
    assert_eq!(acceptor.transport_failures(), 0);
}

#[test]
fn a_venue_without_our_certificate_is_counted_not_logged_on() {
    let pki = Pki::new("refused");
    let mut acceptor_config = AcceptorConfig::localhost();
    acceptor_config.tls = Some(
        ServerTls::load(&ServerTlsFiles {
            cert_file: pki.path("server.pem"),
            key_file: pki.path("server.key"),
            client_ca_file: None,
            require_client_cert: false,
        })
        .unwrap(),
    );
    let venue = PaperVenue::new(VenueConfig {
        instruments: vec![InstrumentSpec::new(SYM, 2, 0, 25)],
        ..VenueConfig::default()
    });
    let session = Session::new(
        SessionConfig::new(SessionId::new("FIX.4.4", "BROKER", "NEXUS")),
        Arc::new(PaperVenue::dictionary().unwrap()),
        Box::new(MemoryStore::new()),
    );
    let mut acceptor = venue.serve(acceptor_config, vec![session]).unwrap();
    // The venue's certificate is for localhost; we expect another name.
    let engine = ExecutionEngine::start(config(VenueSetup {
        tls: Some(ClientTlsFiles {
            server_name: "broker.example.com".to_owned(),
            ..pki.client()
        }),
        ..VenueSetup::external("BROKER", acceptor.local_addr())
    }))
    .unwrap();
    assert!(!engine.wait_logged_on(Duration::from_millis(500)));
    let state = engine.session_state();
    assert!(state.transport_failures >= 1, "{state:?}");
    let why = state.last_transport_failure.unwrap();
    assert!(why.contains("broker.example.com"), "{why}");
    engine.stop();
    acceptor.stop();
}

#[test]
fn bad_tls_settings_fail_the_start_naming_the_file() {
    let pki = Pki::new("bad");
    let addr = "127.0.0.1:9".parse().unwrap();
    let missing = pki.path("nope.pem");
    let err = ExecutionEngine::start(config(VenueSetup {
        tls: Some(ClientTlsFiles {
            ca_file: missing.clone(),
            ..pki.client()
        }),
        ..VenueSetup::external("BROKER", addr)
    }))
    .unwrap_err();
    assert!(matches!(err, ExecutionError::Tls { .. }), "{err:?}");
    let why = err.to_string();
    assert!(
        why.starts_with("TLS of venue BROKER: cannot read")
            && why.contains(&*missing.to_string_lossy()),
        "{why}"
    );
    // TLS is for external venues only.
    let err = ExecutionEngine::start(config(VenueSetup {
        tls: Some(pki.client()),
        ..VenueSetup::paper("PAPER")
    }))
    .unwrap_err();
    assert!(matches!(err, ExecutionError::Config(_)), "{err:?}");
}
