//! Python bindings of the venue crate, mounted into `nexus._native`: the market-data venue
//! simulator behind a FIX 4.4 acceptor.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use nexus_fix::session::{
    Acceptor, AcceptorConfig, MemoryStore, Session, SessionConfig, SessionId,
};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::market_data::{BookLevels, MarketDataVenue, MdVenueConfig, MdVenueError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn to_py(err: MdVenueError) -> PyErr {
    match err {
        MdVenueError::UnknownInstrument(_) => PyKeyError::new_err(err.to_string()),
        MdVenueError::BadLevel { .. } | MdVenueError::Config(_) => {
            PyValueError::new_err(err.to_string())
        }
    }
}

fn comp_id(what: &str, id: &str) -> PyResult<()> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(PyValueError::new_err(format!(
            "{what} must be non-empty printable ASCII without spaces, got {id:?}"
        )));
    }
    Ok(())
}

/// The market-data venue (a simulator) behind a FIX 4.4 acceptor on
/// 127.0.0.1: answers MarketDataRequest (35=V) with a snapshot (35=W) and
/// incremental refreshes (35=X) of the books it is fed, or a reject (35=Y).
/// Prices and sizes are int mantissas at the scales of each instrument.
#[pyclass(name = "PaperMarketDataServer", module = "nexus._native", frozen)]
#[derive(Debug)]
pub struct PyPaperMarketDataServer {
    venue: MarketDataVenue,
    acceptor: Mutex<Option<Acceptor>>,
    addr: SocketAddr,
}

#[pymethods]
impl PyPaperMarketDataServer {
    /// `instruments` maps each symbol to its (price_scale, size_scale);
    /// `depth` is the levels published per side; `clients` the CompIDs of
    /// the initiators allowed to log on (FIX.4.4, this venue as
    /// `sender_comp_id`); `port` 0 picks a free one.
    ///
    /// # Errors
    /// Raises `ValueError` for a bad setting, `RuntimeError` when the
    /// acceptor cannot start.
    #[new]
    #[pyo3(signature = (instruments, *, depth = 1, sender_comp_id = "PAPER-MD", clients = vec!["NEXUS".to_owned()], port = 0))]
    fn new(
        py: Python<'_>,
        instruments: BTreeMap<String, (u8, u8)>,
        depth: usize,
        sender_comp_id: &str,
        clients: Vec<String>,
        port: u16,
    ) -> PyResult<Self> {
        comp_id("sender_comp_id", sender_comp_id)?;
        if clients.is_empty() {
            return Err(PyValueError::new_err(
                "at least one client CompID is needed",
            ));
        }
        for client in &clients {
            comp_id("client CompID", client)?;
        }
        let venue = MarketDataVenue::new(MdVenueConfig {
            instruments: instruments
                .into_iter()
                .map(|(s, (p, q))| (s, p, q))
                .collect(),
            depth,
        })
        .map_err(to_py)?;
        let dictionary = std::sync::Arc::new(
            nexus_marketdata::fix_session::dictionary()
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))?,
        );
        let sessions = clients
            .iter()
            .map(|client| {
                let mut config =
                    SessionConfig::new(SessionId::new("FIX.4.4", sender_comp_id, client));
                config.validate = false;
                Session::new(
                    config,
                    std::sync::Arc::clone(&dictionary),
                    Box::new(MemoryStore::new()),
                )
            })
            .collect();
        let mut config = AcceptorConfig::localhost();
        config.bind = SocketAddr::from(([127, 0, 0, 1], port));
        let acceptor = py
            .detach(|| venue.serve(config, sessions))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
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

    /// Sets the book of `symbol` from (price, size) mantissa pairs and sends
    /// the change to its subscribers; returns the entries of the X sent (0:
    /// no change).
    ///
    /// # Errors
    /// Raises `KeyError` for an unknown symbol, `ValueError` for a level that
    /// is not positive or a price twice on a side.
    fn set_book(
        &self,
        symbol: &str,
        bids: Vec<(i64, i64)>,
        asks: Vec<(i64, i64)>,
    ) -> PyResult<usize> {
        self.venue.set_book(symbol, &bids, &asks).map_err(to_py)
    }

    /// Sets the top of book of `symbol` (one level a side).
    ///
    /// # Errors
    /// As `set_book`.
    fn on_quote(
        &self,
        symbol: &str,
        bid: i64,
        ask: i64,
        bid_size: i64,
        ask_size: i64,
    ) -> PyResult<usize> {
        self.venue
            .on_quote(symbol, bid, ask, bid_size, ask_size)
            .map_err(to_py)
    }

    /// Withholds the next `count` changes of `symbol` from every subscriber
    /// (their RptSeq is used): a simulated loss.
    ///
    /// # Errors
    /// Raises `KeyError` for an unknown symbol.
    fn drop_next_updates(&self, symbol: &str, count: u64) -> PyResult<()> {
        self.venue.drop_next_updates(symbol, count).map_err(to_py)
    }

    /// The venue's book of `symbol`: (bids best first, asks best first), as
    /// (price, size) mantissa pairs.
    ///
    /// # Errors
    /// Raises `KeyError` for an unknown symbol.
    fn book(&self, symbol: &str) -> PyResult<BookLevels> {
        self.venue
            .book(symbol)
            .ok_or_else(|| PyKeyError::new_err(format!("unknown instrument {symbol:?}")))
    }

    /// Counters: requests, rejects, snapshots, increments, dropped_full,
    /// withheld, subscriptions.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.venue.stats();
        let out = PyDict::new(py);
        out.set_item("requests", s.requests)?;
        out.set_item("rejects", s.rejects)?;
        out.set_item("snapshots", s.snapshots)?;
        out.set_item("increments", s.increments)?;
        out.set_item("dropped_full", s.dropped_full)?;
        out.set_item("withheld", s.withheld)?;
        out.set_item("subscriptions", s.subscriptions)?;
        Ok(out)
    }

    /// Logs the sessions out and stops the acceptor (idempotent).
    fn stop(&self, py: Python<'_>) {
        let acceptor = lock(&self.acceptor).take();
        if let Some(mut acceptor) = acceptor {
            py.detach(move || acceptor.stop());
        }
    }
}

/// Adds the venue classes to `module`.
///
/// # Errors
/// Fails only if the module cannot take a new attribute.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyPaperMarketDataServer>()
}
