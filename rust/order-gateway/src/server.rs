//! The gateway's HTTP/2 server: SubmitOrder, CancelOrder and ReplaceOrder to the
//! native path, every other call passed through to the execution service behind
//! it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use nexus_execution::ExecutionEngine;
use thiserror::Error;
use tokio::sync::oneshot;

use crate::change::{CANCEL_ORDER_PATH, REPLACE_ORDER_PATH};
use crate::grpc::{self, Code};
use crate::submit::{Forward, SUBMIT_ORDER_PATH};

/// Any error a body may carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The bodies the gateway sends and forwards.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

/// An instrument the gateway takes orders for: the execution service's
/// instrument spec (symbol, the venue or data source clients name, scales).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayInstrument {
    /// The symbol, e.g. `EUR/USD`: the engine's instrument key.
    pub symbol: String,
    /// The venue clients name in `InstrumentId.venue`, e.g. `OANDA`.
    pub venue: String,
    /// Decimal places of prices.
    pub price_scale: u8,
    /// Decimal places of quantities.
    pub size_scale: u8,
}

/// How the gateway listens and what it serves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where it listens (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The execution service (the Python gRPC server) every other call goes to.
    pub upstream: SocketAddr,
    /// The instruments orders may be placed in.
    pub instruments: Vec<GatewayInstrument>,
    /// The configured venue names a request may route to.
    pub venues: Vec<String>,
    /// Longest a SubmitOrder with `await_venue_ack` waits for the venue.
    pub ack_wait: Duration,
    /// How long such a call first waits for the answer on its own thread
    /// (the engine spins, then sleeps) before it waits off the runtime.
    pub ack_spin: Duration,
    /// Largest request body accepted, bytes (larger: RESOURCE_EXHAUSTED).
    pub max_message_bytes: usize,
    /// HTTP/2 streams per connection at once.
    pub max_concurrent_streams: u32,
    /// Runtime threads.
    pub worker_threads: usize,
}

impl GatewayConfig {
    /// The defaults of the execution service: 5 s for the venue's answer,
    /// 300 us on the caller's thread first, 16 MiB messages, 256 streams, two
    /// threads.
    #[must_use]
    pub fn new(listen: SocketAddr, upstream: SocketAddr) -> Self {
        Self {
            listen,
            upstream,
            instruments: Vec::new(),
            venues: Vec::new(),
            ack_wait: Duration::from_secs(5),
            ack_spin: Duration::from_micros(300),
            max_message_bytes: 16 << 20,
            max_concurrent_streams: 256,
            worker_threads: 2,
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, Error)]
pub enum GatewayError {
    /// The configuration is invalid.
    #[error("invalid order gateway configuration: {0}")]
    Config(String),
    /// The listening socket could not be bound.
    #[error("order gateway cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or its thread could not start.
    #[error("order gateway cannot start its runtime: {0}")]
    Runtime(std::io::Error),
}

/// What the gateway has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// SubmitOrder, CancelOrder and ReplaceOrder calls answered natively.
    pub native: u64,
    /// Calls passed to the service behind, by reason (see [`Forward::label`]).
    pub forwarded: Vec<(&'static str, u64)>,
    /// Passed calls the service behind did not answer (UNAVAILABLE returned).
    pub forward_failures: u64,
    /// Requests refused by the gateway itself (too large, unreadable body).
    pub refused: u64,
    /// Connections accepted.
    pub connections: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    native: AtomicU64,
    forwarded: [AtomicU64; Forward::ALL.len()],
    forward_failures: AtomicU64,
    refused: AtomicU64,
    connections: AtomicU64,
}

impl Counters {
    fn stats(&self) -> GatewayStats {
        GatewayStats {
            native: self.native.load(Ordering::Relaxed),
            forwarded: Forward::ALL
                .iter()
                .zip(&self.forwarded)
                .map(|(reason, n)| (reason.label(), n.load(Ordering::Relaxed)))
                .collect(),
            forward_failures: self.forward_failures.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }
}

/// The native order entry of the execution service: a gRPC server (HTTP/2,
/// plaintext) that answers `ExecutionService/SubmitOrder` in Rust with the
/// engine it shares with the Python service, and passes every other call —
/// and every SubmitOrder it does not take (see [`Forward`]) — byte for byte
/// to that service. Runs on its own threads; stops on [`OrderGateway::stop`]
/// or drop.
#[derive(Debug)]
pub struct OrderGateway {
    addr: SocketAddr,
    counters: Arc<Counters>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OrderGateway {
    /// Binds and starts serving.
    ///
    /// # Errors
    /// An invalid configuration, an address that cannot be bound, or a
    /// runtime that cannot start.
    pub fn start(
        engine: Arc<ExecutionEngine>,
        config: GatewayConfig,
    ) -> Result<Self, GatewayError> {
        if config.worker_threads == 0 || config.worker_threads > 64 {
            return Err(GatewayError::Config(format!(
                "worker_threads must be 1..=64, got {}",
                config.worker_threads
            )));
        }
        if let Some(bad) = config
            .instruments
            .iter()
            .find(|i| i.price_scale > 18 || i.size_scale > 18)
        {
            return Err(GatewayError::Config(format!(
                "instrument {}: scales must be at most 18",
                bad.symbol
            )));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .thread_name("nexus-gateway")
            .enable_all()
            .build()
            .map_err(GatewayError::Runtime)?;
        let listen = config.listen;
        let listener = std::net::TcpListener::bind(listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| GatewayError::Listen {
                addr: listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| GatewayError::Listen {
                addr: listen,
                source,
            })?;
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared::new(engine, config, Arc::clone(&counters)));
        let (shutdown, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("nexus-gateway-accept".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => accept_loop(listener, shared, stopped).await,
                        Err(err) => log::error!("order gateway: cannot use its socket: {err}"),
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(GatewayError::Runtime)?;
        log::info!("order gateway listening on {addr}");
        Ok(Self {
            addr,
            counters,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters.
    #[must_use]
    pub fn stats(&self) -> GatewayStats {
        self.counters.stats()
    }

    /// Stops accepting, ends the open connections (within a second) and
    /// joins its threads. Idempotent.
    pub fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // Err: the accept loop has already ended.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("order gateway: its thread panicked");
            }
        }
    }
}

impl Drop for OrderGateway {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // E.g. out of file descriptors: wait a little, do not spin.
                log::warn!("order gateway: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            log::debug!("order gateway: TCP_NODELAY on {peer}: {err}");
        }
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let max_streams = shared.max_concurrent_streams;
            let service = hyper::service::service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(shared.handle(request).await) }
            });
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder.max_concurrent_streams(max_streams);
            if let Err(err) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                log::debug!("order gateway: connection from {peer} ended: {err}");
            }
        });
    }
}

/// The calls the native path may answer.
#[derive(Debug, Clone, Copy)]
enum Native {
    Submit,
    Cancel,
    Replace,
}

/// What every connection's calls share.
pub(crate) struct Shared {
    pub(crate) engine: Arc<ExecutionEngine>,
    pub(crate) instruments: HashMap<String, GatewayInstrument>,
    pub(crate) venues: Vec<String>,
    pub(crate) ack_wait: Duration,
    pub(crate) ack_spin: Duration,
    max_message_bytes: usize,
    max_concurrent_streams: u32,
    upstream: String,
    client: Client<HttpConnector, Body>,
    counters: Arc<Counters>,
}

impl Shared {
    fn new(engine: Arc<ExecutionEngine>, config: GatewayConfig, counters: Arc<Counters>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Self {
            engine,
            instruments: config
                .instruments
                .into_iter()
                .map(|i| (i.symbol.clone(), i))
                .collect(),
            venues: config.venues,
            ack_wait: config.ack_wait,
            ack_spin: config.ack_spin,
            max_message_bytes: config.max_message_bytes,
            max_concurrent_streams: config.max_concurrent_streams,
            upstream: config.upstream.to_string(),
            client,
            counters,
        }
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let method = match request.uri().path() {
            SUBMIT_ORDER_PATH => Some(Native::Submit),
            CANCEL_ORDER_PATH => Some(Native::Cancel),
            REPLACE_ORDER_PATH => Some(Native::Replace),
            _ => None,
        };
        if let Some(method) = method {
            return self.native_call(method, request).await;
        }
        self.count_forward(Forward::OtherMethod);
        self.forward(request.map(|body| body.map_err(BoxError::from).boxed_unsync()))
            .await
    }

    fn count_forward(&self, reason: Forward) {
        self.counters.forwarded[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A call the native path may answer: read whole, then answered here or passed
    /// to the service with the reason counted.
    async fn native_call(
        self: Arc<Self>,
        method: Native,
        request: Request<Incoming>,
    ) -> Response<Body> {
        let (parts, body) = request.into_parts();
        // The prefix plus the largest message: a unary request holds one.
        let body = match Limited::new(body, self.max_message_bytes + 5)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                return if err.is::<http_body_util::LengthLimitError>() {
                    grpc::status_response(
                        Code::ResourceExhausted,
                        &format!(
                            "request larger than the {} bytes allowed",
                            self.max_message_bytes
                        ),
                    )
                } else {
                    grpc::status_response(Code::Internal, &format!("unreadable request: {err}"))
                };
            }
        };
        let native = match method {
            Native::Submit => {
                let budget =
                    grpc::timeout(&parts.headers).map_or(self.ack_wait, |t| t.min(self.ack_wait));
                match self.plan(&body) {
                    Ok(plan) => crate::submit::execute(&self, plan, budget).await,
                    Err(reason) => Err(reason),
                }
            }
            Native::Cancel => self.cancel_order(&body),
            Native::Replace => self.replace_order(&body),
        };
        match native {
            Ok(response) => {
                self.counters.native.fetch_add(1, Ordering::Relaxed);
                response
            }
            Err(reason) => {
                self.count_forward(reason);
                let body = Full::new(body)
                    .map_err(|never| -> BoxError { match never {} })
                    .boxed_unsync();
                self.forward(Request::from_parts(parts, body)).await
            }
        }
    }

    /// Passes a call to the service behind, streaming both ways; headers,
    /// deadline and trailers go through as they are.
    async fn forward(&self, mut request: Request<Body>) -> Response<Body> {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        match http::Uri::builder()
            .scheme("http")
            .authority(self.upstream.as_str())
            .path_and_query(path)
            .build()
        {
            Ok(uri) => *request.uri_mut() = uri,
            Err(err) => {
                return grpc::status_response(Code::Internal, &format!("bad request path: {err}"))
            }
        }
        match self.client.request(request).await {
            Ok(response) => response.map(|body| body.map_err(BoxError::from).boxed_unsync()),
            Err(err) => {
                self.counters
                    .forward_failures
                    .fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "order gateway: the execution service at {} did not answer: {err}",
                    self.upstream
                );
                grpc::status_response(
                    Code::Unavailable,
                    &format!(
                        "the execution service behind the order gateway did not answer: {err}"
                    ),
                )
            }
        }
    }
}
