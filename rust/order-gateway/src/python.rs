//! Python binding of the order gateway, mounted into `nexus._native`.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nexus_execution::python::{resolve, PyExecutionEngine};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::server::{GatewayConfig, GatewayError, GatewayInstrument, OrderGateway};

fn to_py(err: GatewayError) -> PyErr {
    match err {
        GatewayError::Config(_) => PyValueError::new_err(err.to_string()),
        GatewayError::Listen { .. } | GatewayError::Runtime(_) => {
            PyOSError::new_err(err.to_string())
        }
    }
}

/// The native order entry of the execution service: a gRPC server on
/// `host:port` (0 picks a free port) that answers `SubmitOrder`, `CancelOrder` and
/// `ReplaceOrder` in Rust with `engine` and passes every other call, and every one of
/// those it does not take, to the execution service at `upstream=(host, port)`. `instruments`
/// is a list of `(symbol, venue, price_scale, size_scale)`, `venues` the
/// configured venue names. A SubmitOrder with `await_venue_ack` waits at most
/// `ack_wait_s` (or the call's deadline), the first `ack_spin_us` on the
/// gateway's own thread.
#[pyclass(name = "OrderGateway", module = "nexus._native", frozen)]
#[derive(Debug)]
pub struct PyOrderGateway {
    inner: Mutex<OrderGateway>,
    addr: SocketAddr,
}

#[pymethods]
impl PyOrderGateway {
    #[new]
    #[pyo3(signature = (engine, instruments, venues, upstream, host = "127.0.0.1", port = 0, ack_wait_s = 5.0, ack_spin_us = 300, max_message_bytes = 16_777_216, max_concurrent_streams = 256, worker_threads = 2))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python signature
    fn new(
        py: Python<'_>,
        engine: PyRef<'_, PyExecutionEngine>,
        instruments: Vec<(String, String, u8, u8)>,
        venues: Vec<String>,
        upstream: (String, u16),
        host: &str,
        port: u16,
        ack_wait_s: f64,
        ack_spin_us: u64,
        max_message_bytes: usize,
        max_concurrent_streams: u32,
        worker_threads: usize,
    ) -> PyResult<Self> {
        if !(0.0..=300.0).contains(&ack_wait_s) {
            return Err(PyValueError::new_err(format!(
                "ack_wait_s must be within 0..300, got {ack_wait_s}"
            )));
        }
        if ack_spin_us > 1_000_000 {
            return Err(PyValueError::new_err(format!(
                "ack_spin_us must be at most 1000000, got {ack_spin_us}"
            )));
        }
        let mut config =
            GatewayConfig::new(resolve(host, port)?, resolve(&upstream.0, upstream.1)?);
        config.instruments = instruments
            .into_iter()
            .map(
                |(symbol, venue, price_scale, size_scale)| GatewayInstrument {
                    symbol,
                    venue,
                    price_scale,
                    size_scale,
                },
            )
            .collect();
        config.venues = venues;
        config.ack_wait = Duration::from_secs_f64(ack_wait_s);
        config.ack_spin = Duration::from_micros(ack_spin_us);
        config.max_message_bytes = max_message_bytes;
        config.max_concurrent_streams = max_concurrent_streams;
        config.worker_threads = worker_threads;
        let engine = engine.engine();
        let gateway = py
            .detach(|| OrderGateway::start(engine, config))
            .map_err(to_py)?;
        let addr = gateway.local_addr();
        Ok(Self {
            inner: Mutex::new(gateway),
            addr,
        })
    }

    /// The port it listens on.
    #[getter]
    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address it listens on.
    #[getter]
    fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    /// Its counters: `native` (order calls answered in Rust), `forwarded`
    /// (calls passed to the service, by reason), `forward_failures` (passed
    /// calls the service did not answer), `refused` (too large or unreadable
    /// requests) and `connections`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats();
        let d = PyDict::new(py);
        d.set_item("native", stats.native)?;
        let forwarded = PyDict::new(py);
        for (reason, n) in &stats.forwarded {
            forwarded.set_item(*reason, n)?;
        }
        d.set_item("forwarded", forwarded)?;
        d.set_item("forward_failures", stats.forward_failures)?;
        d.set_item("refused", stats.refused)?;
        d.set_item("connections", stats.connections)?;
        Ok(d)
    }

    /// Stops serving (open connections end within a second). Idempotent.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| {
            self.inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .stop();
        });
    }
}

/// Adds the gateway's class to `module`.
///
/// # Errors
/// If the class cannot be added.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyOrderGateway>()
}
