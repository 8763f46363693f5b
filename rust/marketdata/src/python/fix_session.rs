//! Python binding of the live FIX market-data session.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::book::PyOrderBook;
use super::fix_feed::stats_dict;
use crate::feeds::Scales;
use crate::fix_session::{FixMdSession, FixMdSessionConfig, FixMdSessionError};

/// A live FIX market-data session: a FIX 4.4 (or 4.2) initiator that
/// subscribes its symbols with MarketDataRequest (35=V) and keeps their L2
/// books from the snapshots (35=W) and incremental refreshes (35=X) it
/// receives; re-subscribes a book that leaves sequence, buffering the
/// increments meanwhile; reports its health (healthy, stale, disconnected).
#[pyclass(name = "FixMarketDataSession", module = "nexus._native", frozen)]
#[derive(Debug)]
pub struct PyFixMarketDataSession {
    inner: FixMdSession,
}

#[pymethods]
impl PyFixMarketDataSession {
    /// Starts connecting to `host:port` (in the background, reconnecting until
    /// stopped). `instruments` maps each symbol to its (price_scale,
    /// size_scale); `depth` is MarketDepth (264), 0 for the full book.
    ///
    /// # Errors
    /// Raises `ValueError` for a bad setting or an address that does not
    /// resolve, `RuntimeError` when the threads cannot start.
    #[new]
    #[pyo3(signature = (host, port, sender_comp_id, target_comp_id, instruments, *, depth = 0, begin_string = "FIX.4.4", heart_bt_int = 30, stale_after_s = 5.0, gap_buffer = 10_000, reconnect_min_s = 0.1))]
    #[allow(clippy::too_many_arguments, reason = "keyword arguments from Python")]
    fn new(
        py: Python<'_>,
        host: &str,
        port: u16,
        sender_comp_id: &str,
        target_comp_id: &str,
        instruments: BTreeMap<String, (u8, u8)>,
        depth: u32,
        begin_string: &str,
        heart_bt_int: u32,
        stale_after_s: f64,
        gap_buffer: usize,
        reconnect_min_s: f64,
    ) -> PyResult<Self> {
        let addr: SocketAddr = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| PyValueError::new_err(format!("cannot resolve {host}:{port}")))?;
        let seconds = |what: &str, s: f64| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                PyValueError::new_err(format!("{what} must be a duration in seconds, got {s}"))
            })
        };
        let mut config = FixMdSessionConfig::new(
            addr,
            sender_comp_id,
            target_comp_id,
            instruments
                .into_iter()
                .map(|(s, (p, q))| (s, Scales::new(p, q)))
                .collect(),
        );
        config.begin_string = begin_string.to_owned();
        config.depth = depth;
        config.heart_bt_int = heart_bt_int;
        config.stale_after = seconds("stale_after_s", stale_after_s)?;
        config.gap_buffer = gap_buffer;
        config.reconnect_min = seconds("reconnect_min_s", reconnect_min_s)?;
        let inner = py
            .detach(|| FixMdSession::start(config))
            .map_err(|e| match e {
                FixMdSessionError::Config(_) => PyValueError::new_err(e.to_string()),
                _ => PyRuntimeError::new_err(e.to_string()),
            })?;
        Ok(Self { inner })
    }

    /// A copy of the book of `symbol`.
    ///
    /// # Errors
    /// Raises `KeyError` for a symbol the session does not subscribe.
    fn book(&self, symbol: &str) -> PyResult<PyOrderBook> {
        self.inner
            .book(symbol)
            .map(PyOrderBook::from)
            .ok_or_else(|| PyKeyError::new_err(format!("no book for symbol {symbol:?}")))
    }

    /// The subscribed symbols.
    fn symbols(&self) -> Vec<String> {
        self.inner
            .config()
            .instruments
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Health and counters as of now: health ("healthy", "stale",
    /// "disconnected"), reason, logged_on, logons, stale_episodes,
    /// since_data_s (None before any data), requests_sent, resubscriptions,
    /// rejects, first_rejects as (MDReqID, symbol, code, reason),
    /// data_messages, other_messages, outcomes (data messages by status, a
    /// rejection as "rejected:<reason>"), needs_snapshot.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.status();
        let out = PyDict::new(py);
        out.set_item("health", s.health.name())?;
        out.set_item("reason", s.reason)?;
        out.set_item("logged_on", s.logged_on)?;
        out.set_item("logons", s.logons)?;
        out.set_item("stale_episodes", s.stale_episodes)?;
        out.set_item("since_data_s", s.since_data_s)?;
        out.set_item("requests_sent", s.requests_sent)?;
        out.set_item("resubscriptions", s.resubscriptions)?;
        out.set_item("rejects", s.rejects)?;
        let rejects: Vec<(String, Option<String>, Option<String>, String)> = s
            .first_rejects
            .into_iter()
            .map(|r| (r.md_req_id, r.symbol, r.code, r.reason))
            .collect();
        out.set_item("first_rejects", rejects)?;
        out.set_item("data_messages", s.data_messages)?;
        out.set_item("other_messages", s.other_messages)?;
        out.set_item("outcomes", s.outcomes)?;
        out.set_item("needs_snapshot", s.needs_snapshot)?;
        Ok(out)
    }

    /// The counters of the session's books (as `FixBookFeed.stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.inner.feed_stats())
    }

    /// Logs out, disconnects and joins the threads (idempotent).
    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.inner.stop());
    }
}

/// Adds the FIX market-data session class to `module`.
///
/// # Errors
/// Fails only if the module cannot take a new attribute.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyFixMarketDataSession>()
}
