//! The order gateway over real HTTP/2 on 127.0.0.1, with a real engine trading
//! with its paper venue over FIX. The service behind it is absent here (the
//! Python tests put the real one there): what the gateway passes on comes back
//! UNAVAILABLE, and what it answers itself does not need it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use nexus_execution::{ExecutionConfig, ExecutionEngine, InstrumentConfig, RiskLimits};
use nexus_order_gateway::proto::nexus::common::v1 as common;
use nexus_order_gateway::proto::nexus::execution::v1 as ex;
use nexus_order_gateway::{GatewayConfig, GatewayInstrument, OrderGateway};
use prost::Message;

const SUBMIT: &str = "/nexus.execution.v1.ExecutionService/SubmitOrder";
const CANCEL: &str = "/nexus.execution.v1.ExecutionService/CancelOrder";
const REPLACE: &str = "/nexus.execution.v1.ExecutionService/ReplaceOrder";

fn dead_port() -> SocketAddr {
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap() // closed when `probe` drops
}

fn start() -> (Arc<ExecutionEngine>, OrderGateway) {
    let engine = Arc::new(
        ExecutionEngine::start(ExecutionConfig {
            instruments: vec![InstrumentConfig::new("EUR/USD", 5, 0, 1)],
            limits: RiskLimits {
                collar_bps: 0,
                ..RiskLimits::default()
            },
            ..ExecutionConfig::default()
        })
        .unwrap(),
    );
    assert!(engine.wait_logged_on(Duration::from_secs(5)));
    engine
        .on_quote(
            "EUR/USD",
            137_000,
            137_010,
            1_000_000,
            1_000_000,
            1_700_000_000_000_000_000,
        )
        .unwrap();
    let mut config = GatewayConfig::new("127.0.0.1:0".parse().unwrap(), dead_port());
    config.instruments = vec![GatewayInstrument {
        symbol: "EUR/USD".into(),
        venue: "OANDA".into(),
        price_scale: 5,
        size_scale: 0,
    }];
    config.venues = vec!["PAPER".into()];
    config.max_message_bytes = 4096;
    let gateway = OrderGateway::start(Arc::clone(&engine), config).unwrap();
    (engine, gateway)
}

fn order(client_id: &str) -> ex::SubmitOrderRequest {
    ex::SubmitOrderRequest {
        client_order_id: client_id.into(),
        instrument: Some(common::InstrumentId {
            symbol: "EUR/USD".into(),
            venue: "OANDA".into(),
        }),
        side: common::Side::Buy as i32,
        order_type: ex::OrderType::Limit as i32,
        quantity: Some(common::Decimal {
            mantissa: 1000,
            scale: 0,
        }),
        limit_price: Some(common::Decimal {
            mantissa: 100_000,
            scale: 5,
        }),
        await_venue_ack: true,
        ..ex::SubmitOrderRequest::default()
    }
}

fn framed(message: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap());
    out.put_slice(message);
    out.freeze()
}

/// One unary call: (grpc-status, grpc-message, the answer's message bytes).
fn call(addr: SocketAddr, path: &str, body: Bytes) -> (String, String, Bytes) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Full<Bytes>>();
        let request = http::Request::post(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(body))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let headers = response.headers().clone();
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let field = |name: &str| {
            trailers
                .get(name)
                .or_else(|| headers.get(name))
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let (status, message) = (field("grpc-status"), field("grpc-message"));
        let body = collected.to_bytes();
        let message_bytes = if body.len() >= 5 {
            body.slice(5..)
        } else {
            Bytes::new()
        };
        (status, message, message_bytes)
    })
}

#[test]
fn a_plain_order_is_answered_natively_once_the_venue_has_acknowledged_it() {
    let (engine, gateway) = start();
    let (status, message, body) = call(
        gateway.local_addr(),
        SUBMIT,
        framed(&order("gw-1").encode_to_vec()),
    );
    assert_eq!(status, "0", "{message}");
    let answer = ex::SubmitOrderResponse::decode(body)
        .unwrap()
        .order
        .unwrap();
    assert_eq!(answer.client_order_id, "gw-1");
    assert_eq!(
        answer.status,
        ex::OrderStatus::New as i32,
        "{}",
        answer.text
    );
    assert_eq!(answer.venue, "PAPER");
    assert_eq!(
        answer.quantity,
        Some(common::Decimal {
            mantissa: 1000,
            scale: 0
        })
    );
    assert_eq!(answer.leaves_quantity.unwrap().mantissa, 1000);
    let (held, _) = engine.order_by_client_id("gw-1").unwrap();
    assert_eq!(held.order_id.to_string(), answer.order_id);
    assert_eq!(gateway.stats().native, 1);
}

#[test]
fn what_it_does_not_take_goes_to_the_service_and_a_missing_service_is_unavailable() {
    let (_engine, gateway) = start();
    let addr = gateway.local_addr();
    let mut bad = order("has space");
    bad.quantity = None;
    let cases: [(&str, Bytes, &str); 5] = [
        (SUBMIT, framed(&bad.encode_to_vec()), "invalid"),
        (SUBMIT, Bytes::from_static(b"\0\0\0\0\x09abc"), "framing"),
        (SUBMIT, framed(b"\xff\xff\xff"), "undecodable"),
        (
            "/nexus.execution.v1.ExecutionService/GetOrders",
            framed(b""),
            "other_method",
        ),
        (SUBMIT, framed(&order("gw-1").encode_to_vec()), ""),
    ];
    for (path, body, reason) in cases {
        let (status, message, _) = call(addr, path, body);
        if reason.is_empty() {
            assert_eq!(status, "0", "{message}");
            continue;
        }
        assert_eq!(
            status, "14",
            "{reason}: UNAVAILABLE expected, got {message}"
        );
        assert!(message.contains("did not answer"), "{message}");
    }
    // A retry of an order the engine knows is the service's to answer.
    let (status, _, _) = call(addr, SUBMIT, framed(&order("gw-1").encode_to_vec()));
    assert_eq!(status, "14");
    let stats = gateway.stats();
    for label in [
        "invalid",
        "framing",
        "undecodable",
        "other_method",
        "known_client_order_id",
    ] {
        assert_eq!(forwarded(&gateway, label), 1, "{label}: {stats:?}");
    }
    assert_eq!(stats.forward_failures, 5);
    assert_eq!(stats.native, 1);
}

#[test]
fn oversized_requests_and_garbage_connections_leave_the_gateway_serving() {
    let (_engine, mut gateway) = start();
    let addr = gateway.local_addr();
    let mut huge = order("gw-huge");
    huge.strategy_id = "x".repeat(8192);
    let (status, message, _) = call(addr, SUBMIT, framed(&huge.encode_to_vec()));
    assert_eq!(status, "8", "RESOURCE_EXHAUSTED expected: {message}");
    assert!(message.contains("4096 bytes"), "{message}");
    assert_eq!(gateway.stats().refused, 1);
    // Not HTTP/2 at all: the connection is closed, nothing else happens.
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff garbage")
        .unwrap();
    let mut sink = Vec::new();
    let _ = garbage.read_to_end(&mut sink); // closed (or reset) by the gateway
    let (status, message, _) = call(addr, SUBMIT, framed(&order("gw-ok").encode_to_vec()));
    assert_eq!(status, "0", "{message}");
    gateway.stop();
    gateway.stop();
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after stop"
    );
}

/// Calls passed to the service with reason `label`.
fn forwarded(gateway: &OrderGateway, label: &str) -> u64 {
    gateway
        .stats()
        .forwarded
        .iter()
        .find(|(l, _)| *l == label)
        .map_or(0, |(_, n)| *n)
}

/// Waits until the engine's copy of order `client_id` has `status`.
fn wait_for(engine: &ExecutionEngine, client_id: &str, status: nexus_execution::OrderStatus) {
    for _ in 0..500 {
        if engine
            .order_by_client_id(client_id)
            .is_some_and(|(o, _)| o.status == status)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{client_id} never reached {status:?}");
}

#[test]
fn replace_and_cancel_are_answered_natively_and_reach_the_venue() {
    let (engine, gateway) = start();
    let addr = gateway.local_addr();
    let (status, message, body) = call(addr, SUBMIT, framed(&order("gw-c1").encode_to_vec()));
    assert_eq!(status, "0", "{message}");
    let placed = ex::SubmitOrderResponse::decode(body)
        .unwrap()
        .order
        .unwrap();
    // Replace: a new quantity, the limit price left as it is.
    let replace = ex::ReplaceOrderRequest {
        order_id: placed.order_id.clone(),
        new_client_order_id: "gw-c1-r".into(),
        quantity: Some(common::Decimal {
            mantissa: 15,
            scale: -2, // 1,500 units
        }),
        ..ex::ReplaceOrderRequest::default()
    };
    let (status, message, body) = call(addr, REPLACE, framed(&replace.encode_to_vec()));
    assert_eq!(status, "0", "{message}");
    let replaced = ex::ReplaceOrderResponse::decode(body)
        .unwrap()
        .order
        .unwrap();
    assert_eq!(replaced.order_id, placed.order_id);
    assert_eq!(replaced.venue, "PAPER");
    assert_eq!(gateway.stats().native, 2);
    // The venue takes it: the order is now 1,500 under the new ClOrdID, at the
    // same price.
    for _ in 0..500 {
        let (held, _) = engine
            .order_with_venue(placed.order_id.parse().unwrap())
            .unwrap();
        if held.quantity == 1500 && held.client_order_id() == "gw-c1-r" {
            assert_eq!(held.limit_price, Some(100_000));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for(&engine, "gw-c1-r", nexus_execution::OrderStatus::New);
    // Cancel by order id: answered here, and the venue cancels.
    let cancel = ex::CancelOrderRequest {
        order_id: placed.order_id.clone(),
        ..ex::CancelOrderRequest::default()
    };
    let (status, message, body) = call(addr, CANCEL, framed(&cancel.encode_to_vec()));
    assert_eq!(status, "0", "{message}");
    let pending = ex::CancelOrderResponse::decode(body)
        .unwrap()
        .order
        .unwrap();
    assert_eq!(pending.order_id, placed.order_id);
    assert_eq!(gateway.stats().native, 3);
    wait_for(&engine, "gw-c1-r", nexus_execution::OrderStatus::Canceled);
    // What it does not take goes to the service (absent here: UNAVAILABLE), and
    // the engine's state is as it was.
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            CANCEL,
            ex::CancelOrderRequest {
                client_order_id: "gw-c1-r".into(),
                ..ex::CancelOrderRequest::default()
            }
            .encode_to_vec(),
            "by_client_order_id",
        ),
        (
            CANCEL,
            ex::CancelOrderRequest {
                order_id: "999999".into(),
                ..ex::CancelOrderRequest::default()
            }
            .encode_to_vec(),
            "unknown_order",
        ),
        (
            CANCEL,
            ex::CancelOrderRequest {
                order_id: "12a".into(),
                ..ex::CancelOrderRequest::default()
            }
            .encode_to_vec(),
            "invalid",
        ),
        // A second cancel of a closed order: the engine refuses.
        (CANCEL, cancel.encode_to_vec(), "engine_refused"),
        (
            REPLACE,
            ex::ReplaceOrderRequest {
                order_id: placed.order_id.clone(),
                new_client_order_id: "gw-c1-r2".into(),
                limit_price: Some(common::Decimal {
                    mantissa: 1_000_001,
                    scale: 6, // more places than the instrument's 5
                }),
                ..ex::ReplaceOrderRequest::default()
            }
            .encode_to_vec(),
            "precision",
        ),
        (REPLACE, b"\xff\xff\xff".to_vec(), "undecodable"),
    ];
    for (path, body, reason) in cases {
        let before = forwarded(&gateway, reason);
        let (status, message, _) = call(addr, path, framed(&body));
        assert_eq!(
            status, "14",
            "{reason}: UNAVAILABLE expected, got {message}"
        );
        assert_eq!(forwarded(&gateway, reason), before + 1, "{reason}");
    }
    assert_eq!(gateway.stats().native, 3);
    let (held, _) = engine.order_by_client_id("gw-c1-r").unwrap();
    assert_eq!(held.status, nexus_execution::OrderStatus::Canceled);
}
