//! Round-trip latency of a FIX session over TLS against the same session over plain
//! TCP, in the same run: a Nexus initiator sends a NewOrderSingle, the Nexus acceptor
//! answers with an ExecutionReport, the initiator waits for it, then sends the next.
//! The two run in turns (five each) on 127.0.0.1 with certificates made by rcgen
//! (ECDSA P-256, TLS 1.3); p50 and p99 of each, and their ratios.
//!
//! `cargo run --release -p nexus-fix --example tls_roundtrip [ORDERS]` (default 20 000
//! in all, per transport).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_fix::message::{FieldAccess, Message};
use nexus_fix::session::{
    Acceptor, AcceptorConfig, AppEvent, Application, ChannelApplication, ClientTls, ClientTlsFiles,
    Initiator, InitiatorConfig, MemoryStore, OutgoingMessage, ServerTls, ServerTlsFiles, Session,
    SessionConfig, SessionId,
};
use nexus_fix::Dictionary;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

const XML: &str = include_str!("../src/session/test_dictionary.xml");

struct Exchange;

impl Application for Exchange {
    fn on_message(&self, _: &SessionId, msg: &Message<'_>, replies: &mut Vec<OutgoingMessage>) {
        let id = msg.get_str(11).unwrap_or_default().to_owned();
        replies.push(OutgoingMessage::new("8").field(11, id));
    }
}

fn tls_files(dir: &std::path::Path) -> (ServerTls, ClientTls) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    std::fs::write(
        dir.join("ca.pem"),
        params.self_signed(&ca_key).unwrap().pem(),
    )
    .unwrap();
    let issuer = Issuer::new(params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let server = ServerTls::load(&ServerTlsFiles {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
        client_ca_file: None,
        require_client_cert: false,
    })
    .unwrap();
    let client = ClientTls::load(&ClientTlsFiles {
        ca_file: dir.join("ca.pem"),
        server_name: "localhost".to_owned(),
        cert_file: None,
        key_file: None,
    })
    .unwrap();
    (server, client)
}

/// Runs `orders` round trips on a fresh pair of endpoints; returns the samples (ns).
fn run(orders: usize, tls: Option<(ServerTls, ClientTls)>) -> Vec<u64> {
    let dictionary = Arc::new(Dictionary::from_xml(XML, "test_dictionary.xml").unwrap());
    let (server_tls, client_tls) = tls.map_or((None, None), |(s, c)| (Some(s), Some(c)));
    let mut acfg = AcceptorConfig::localhost();
    acfg.tls = server_tls;
    let acceptor_session = Session::new(
        SessionConfig::new(SessionId::new("FIX.4.4", "ISLD", "TW")),
        Arc::clone(&dictionary),
        Box::new(MemoryStore::new()),
    );
    let acceptor = Acceptor::start(acfg, vec![acceptor_session], Arc::new(Exchange)).unwrap();
    let mut icfg = InitiatorConfig::new(acceptor.local_addr());
    icfg.tls = client_tls;
    let session = Session::new(
        SessionConfig::new(SessionId::new("FIX.4.4", "TW", "ISLD")),
        dictionary,
        Box::new(MemoryStore::new()),
    );
    let (app, rx): (ChannelApplication, Receiver<AppEvent>) = ChannelApplication::new(1024);
    let mut initiator = Initiator::start(icfg, session, Arc::new(app)).unwrap();
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok(AppEvent::Logon(_))
    ));
    let sender = initiator.sender();
    let mut samples = Vec::with_capacity(orders);
    for i in 0..orders {
        let id = format!("O{i}");
        let started = Instant::now();
        sender
            .send(
                OutgoingMessage::new("D")
                    .field(11, id.as_str())
                    .field(54, "1")
                    .field(55, "X"),
            )
            .unwrap();
        match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            AppEvent::Message(_, bytes) => {
                assert_eq!(Message::parse(&bytes).unwrap().get_str(11).unwrap(), id);
            }
            other => panic!("unexpected {other:?}"),
        }
        samples.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    initiator.stop();
    drop(acceptor);
    samples
}

fn percentile(samples: &mut [u64], q: f64) -> f64 {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[i.min(samples.len() - 1)] as f64 / 1000.0
}

fn main() {
    let orders: usize = std::env::args()
        .nth(1)
        .map_or(20_000, |a| a.parse().expect("ORDERS must be a number"));
    let dir = std::env::temp_dir().join(format!("nexus-tls-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (server, client) = tls_files(&dir);
    let turns = 5;
    let (mut plain, mut tls) = (Vec::new(), Vec::new());
    for _ in 0..turns {
        plain.extend(run(orders / turns, None));
        tls.extend(run(orders / turns, Some((server.clone(), client.clone()))));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (p50, p99) = (percentile(&mut plain, 0.5), percentile(&mut plain, 0.99));
    let (t50, t99) = (percentile(&mut tls, 0.5), percentile(&mut tls, 0.99));
    println!("order -> report round trip, Nexus initiator <-> Nexus acceptor, 127.0.0.1");
    println!(
        "plain TCP (baseline) n={:<7} p50 {p50:>7.1} us  p99 {p99:>7.1} us",
        plain.len()
    );
    println!(
        "TLS 1.3             n={:<7} p50 {t50:>7.1} us  p99 {t99:>7.1} us",
        tls.len()
    );
    println!(
        "ratio TLS / plain   p50 {:.2}x  p99 {:.2}x",
        t50 / p50,
        t99 / p99
    );
}
