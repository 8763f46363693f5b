//! `PaperVenueServer`: the paper venue behind a FIX 4.4 acceptor, for external
//! initiators (e.g. QuickFIX).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nexus_fix::session::{
    AcceptorConfig, MemoryStore, ServerTls, Session, SessionConfig, SessionId, TlsError,
};
use nexus_fix::Acceptor;
use nexus_venue::{EngineConfig, FeeModel, InstrumentSpec, PaperVenue, VenueConfig};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{errors, non_negative};
use crate::engine::ExecutionError as EngineError;

const BEGIN_STRING: &str = "FIX.4.4";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn comp_id(what: &str, id: &str) -> PyResult<()> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(PyValueError::new_err(format!(
            "{what} must be non-empty printable ASCII without spaces, got {id:?}"
        )));
    }
    Ok(())
}

/// The paper venue (a simulator) behind a FIX 4.4 acceptor on 127.0.0.1, for
/// external initiators. Prices and quantities are int mantissas at the scales
/// of each instrument.
#[pyclass(name = "PaperVenueServer", module = "nexus._native", frozen)]
#[derive(Debug)]
pub struct PyPaperVenueServer {
    venue: PaperVenue,
    acceptor: Mutex<Option<Acceptor>>,
    addr: SocketAddr,
}

impl PyPaperVenueServer {
    fn session_id(sender: &str, target: &str) -> SessionId {
        SessionId::new(BEGIN_STRING, sender, target)
    }
}

#[pymethods]
impl PyPaperVenueServer {
    /// Starts the acceptor. `instruments` is a list of `(symbol, price_scale,
    /// qty_scale, tick)`; `sessions` a list of `(sender_comp_id,
    /// target_comp_id)` as the venue sees them (its SenderCompID first). With
    /// `tls={"cert": ..., "key": ...}` (PEM files) the acceptor speaks TLS
    /// only; add `"client_ca"` to verify client certificates against that CA
    /// bundle (mutual TLS), required unless `"require_client_cert": False`.
    #[new]
    #[pyo3(signature = (instruments, sessions, *, port = 0, fee_bps = 0, tls = None))]
    fn new(
        py: Python<'_>,
        instruments: Vec<(String, i64, i64, i64)>,
        sessions: Vec<(String, String)>,
        port: i64,
        fee_bps: i64,
        tls: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let tls = match tls {
            None => None,
            Some(d) => {
                let files = super::tls::server_files(&d)?;
                Some(ServerTls::load(&files).map_err(|e| match e {
                    TlsError::Read { .. } => pyo3::exceptions::PyOSError::new_err(e.to_string()),
                    e => PyValueError::new_err(e.to_string()),
                })?)
            }
        };
        if instruments.is_empty() {
            return Err(PyValueError::new_err("no instruments"));
        }
        if sessions.is_empty() {
            return Err(PyValueError::new_err("no sessions"));
        }
        let mut specs = Vec::with_capacity(instruments.len());
        for (symbol, price_scale, qty_scale, tick) in instruments {
            if tick <= 0 {
                return Err(PyValueError::new_err(format!(
                    "tick of {symbol} must be positive, got {tick}"
                )));
            }
            let price_scale: u8 = non_negative("price_scale", price_scale)?;
            let qty_scale: u8 = non_negative("qty_scale", qty_scale)?;
            if price_scale > 18 || qty_scale > 18 {
                return Err(PyValueError::new_err(format!(
                    "scales of {symbol} must be at most 18"
                )));
            }
            specs.push(InstrumentSpec::new(&symbol, price_scale, qty_scale, tick));
        }
        let fee_bps: i64 = non_negative("fee_bps", fee_bps)?;
        let port: u16 = non_negative("port", port)?;
        let dictionary = Arc::new(PaperVenue::dictionary().map_err(|e| errors::to_py(e.into()))?);
        let mut fix_sessions = Vec::with_capacity(sessions.len());
        for (sender, target) in &sessions {
            comp_id("sender_comp_id", sender)?;
            comp_id("target_comp_id", target)?;
            if sender == target {
                return Err(PyValueError::new_err("sender and target must differ"));
            }
            fix_sessions.push(Session::new(
                SessionConfig::new(Self::session_id(sender, target)),
                Arc::clone(&dictionary),
                Box::new(MemoryStore::new()),
            ));
        }
        let venue = PaperVenue::new(VenueConfig {
            engine: EngineConfig {
                slippage_ticks: 0,
                fees: if fee_bps > 0 {
                    FeeModel::Bps(fee_bps)
                } else {
                    FeeModel::None
                },
            },
            instruments: specs,
            ..VenueConfig::default()
        });
        let mut config = AcceptorConfig::localhost();
        config.bind = SocketAddr::from(([127, 0, 0, 1], port));
        config.tls = tls;
        let acceptor = py
            .detach(|| venue.serve(config, fix_sessions))
            .map_err(|e| errors::to_py(EngineError::Tcp(e)))?;
        let addr = acceptor.local_addr();
        Ok(Self {
            venue,
            acceptor: Mutex::new(Some(acceptor)),
            addr,
        })
    }

    /// The port the acceptor listens on (127.0.0.1).
    #[getter]
    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Feeds a top of book (mantissas; ts_ns since the Unix epoch); fills of
    /// resting orders go out as unsolicited ExecutionReports. Returns the
    /// number of fills.
    #[allow(clippy::too_many_arguments)] // mirrors the Python signature
    fn on_quote(
        &self,
        py: Python<'_>,
        symbol: &str,
        bid: i64,
        ask: i64,
        bid_size: i64,
        ask_size: i64,
        ts_ns: i64,
    ) -> PyResult<usize> {
        py.detach(|| {
            self.venue
                .on_quote(symbol, bid, ask, bid_size, ask_size, ts_ns)
        })
        .map_err(|e| errors::to_py(e.into()))
    }

    /// Whether the session `(sender_comp_id, target_comp_id)` is logged on.
    fn is_logged_on(&self, py: Python<'_>, sender_comp_id: &str, target_comp_id: &str) -> bool {
        let id = Self::session_id(sender_comp_id, target_comp_id);
        py.detach(|| {
            lock(&self.acceptor)
                .as_ref()
                .is_some_and(|a| a.is_logged_on(&id))
        })
    }

    /// The (next sender, next target) sequence numbers of the session, or None
    /// for an unknown session or after `stop`.
    fn seq_nums(
        &self,
        py: Python<'_>,
        sender_comp_id: &str,
        target_comp_id: &str,
    ) -> Option<(u64, u64)> {
        let id = Self::session_id(sender_comp_id, target_comp_id);
        py.detach(|| lock(&self.acceptor).as_ref().and_then(|a| a.seq_nums(&id)))
    }

    /// Connections dropped for a transport failure (a TLS handshake or TLS
    /// error, a TLS client on a plaintext acceptor) and why the last one was.
    fn transport_failures(&self, py: Python<'_>) -> (u64, Option<String>) {
        py.detach(|| {
            lock(&self.acceptor).as_ref().map_or((0, None), |a| {
                (a.transport_failures(), a.last_transport_failure())
            })
        })
    }

    /// Logs the sessions out, closes the connections and joins every thread.
    /// Idempotent.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| {
            let acceptor = lock(&self.acceptor).take();
            if let Some(mut acceptor) = acceptor {
                acceptor.stop();
            }
        });
    }
}
