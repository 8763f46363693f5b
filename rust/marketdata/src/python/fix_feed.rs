//! Python binding of the FIX market-data feed (35=W and 35=X into L2 order books).

use std::collections::BTreeMap;

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::book::PyOrderBook;
use crate::feeds::Scales;
use crate::fix_feed::{FixBookFeed, FixFeedStats, MessageOutcome, MessageStatus, RejectReason};

/// What one message did, for Python: (status, reason of a rejection, MDReqID).
type PyOutcome = (&'static str, Option<&'static str>, Option<String>);

fn outcome(o: MessageOutcome) -> PyOutcome {
    let reason = match o.status {
        MessageStatus::Rejected(reason) => Some(reason.name()),
        _ => None,
    };
    (o.status.name(), reason, o.md_req_id)
}

/// L2 order books kept by FIX market data: MarketDataSnapshotFullRefresh
/// (35=W) and MarketDataIncrementalRefresh (35=X) of FIX 4.2, 4.4 and
/// FIXT 1.1/5.0 SP2, one book per configured symbol; bad input is counted by
/// reason.
#[pyclass(name = "FixBookFeed", module = "nexus._native")]
pub struct PyFixBookFeed {
    inner: FixBookFeed,
}

#[pymethods]
impl PyFixBookFeed {
    /// `instruments` maps each symbol to its (price_scale, size_scale).
    #[new]
    fn new(instruments: BTreeMap<String, (u8, u8)>) -> Self {
        let mut inner = FixBookFeed::new();
        for (symbol, (price, size)) in &instruments {
            inner.add_instrument(symbol, Scales::new(*price, *size));
        }
        Self { inner }
    }

    /// Adds a symbol (or resets its book) with an empty book awaiting a snapshot.
    fn add_instrument(&mut self, symbol: &str, price_scale: u8, size_scale: u8) {
        self.inner
            .add_instrument(symbol, Scales::new(price_scale, size_scale));
    }

    /// Takes one whole FIX message; returns (status, reason, MDReqID): status
    /// "snapshot", "applied", "stale", "gap", "awaiting_snapshot", "buffered",
    /// "ignored" or "rejected" (with the reason's name).
    fn on_message(&mut self, message: &[u8]) -> PyOutcome {
        outcome(self.inner.on_message(message))
    }

    /// Takes whole FIX messages in order, without the GIL; returns the
    /// outcome of each.
    fn on_messages(&mut self, py: Python<'_>, messages: Vec<Bound<'_, PyBytes>>) -> Vec<PyOutcome> {
        let frames: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
        let inner = &mut self.inner;
        py.detach(|| {
            frames
                .iter()
                .map(|frame| outcome(inner.on_message(frame)))
                .collect()
        })
    }

    /// Takes a buffer of FIX messages back to back (a FIX log; whitespace
    /// between messages is skipped), without the GIL; returns the outcome of
    /// each message, and a "rejected"/"malformed" one for each stretch of
    /// bytes that is not a whole message.
    fn on_buffer(&mut self, py: Python<'_>, data: &[u8]) -> Vec<PyOutcome> {
        let inner = &mut self.inner;
        py.detach(|| inner.on_buffer(data).into_iter().map(outcome).collect())
    }

    /// A copy of the book of `symbol`.
    ///
    /// # Errors
    /// Raises `KeyError` for a symbol the feed does not have.
    fn book(&self, symbol: &str) -> PyResult<PyOrderBook> {
        self.inner
            .book(symbol)
            .map(|book| PyOrderBook::from(book.clone()))
            .ok_or_else(|| PyKeyError::new_err(format!("no book for symbol {symbol:?}")))
    }

    /// The symbols, in the order they were added.
    fn symbols(&self) -> Vec<String> {
        self.inner.symbols().map(str::to_owned).collect()
    }

    /// The symbols whose book is not live and needs a snapshot.
    fn needs_snapshot(&self) -> Vec<String> {
        self.inner.needs_snapshot().map(str::to_owned).collect()
    }

    /// Counters: messages, snapshots, updates applied, stale, gaps, refused
    /// while awaiting a snapshot, crossed, rejected updates, ignored trades and
    /// other entries, the gap buffer's (buffered, buffer_applied,
    /// buffer_dropped), rejections by reason (every reason present), and the
    /// first rejections as (message number, reason, description).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, self.inner.stats())
    }

    /// Keeps, per book waiting for a snapshot, up to `max_changes` level
    /// changes of the numbered updates that arrive meanwhile, and applies
    /// those newer than the snapshot when it comes; 0 (the default) refuses
    /// them instead.
    fn set_gap_buffer(&mut self, max_changes: usize) {
        self.inner.set_gap_buffer(max_changes);
    }

    /// The number of updates buffered for `symbol`.
    fn buffered(&self, symbol: &str) -> usize {
        self.inner.buffered(symbol)
    }
}

/// The counters of a feed as a dict (see `FixBookFeed.stats`).
pub(super) fn stats_dict<'py>(py: Python<'py>, s: &FixFeedStats) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("messages", s.messages)?;
    out.set_item("other_messages", s.other_messages)?;
    out.set_item("snapshots", s.snapshots)?;
    out.set_item("updates_applied", s.updates_applied)?;
    out.set_item("level_updates", s.level_updates)?;
    out.set_item("stale", s.stale)?;
    out.set_item("gaps", s.gaps)?;
    out.set_item("awaiting_snapshot", s.awaiting_snapshot)?;
    out.set_item("crossed", s.crossed)?;
    out.set_item("updates_rejected", s.updates_rejected)?;
    out.set_item("trades", s.trades)?;
    out.set_item("other_entries", s.other_entries)?;
    out.set_item("buffered", s.buffered)?;
    out.set_item("buffer_applied", s.buffer_applied)?;
    out.set_item("buffer_dropped", s.buffer_dropped)?;
    let rejected = PyDict::new(py);
    for reason in RejectReason::ALL {
        rejected.set_item(reason.name(), s.rejected(reason))?;
    }
    out.set_item("rejected", rejected)?;
    let first: Vec<(u64, &str, String)> = s
        .first_errors
        .iter()
        .map(|e| (e.message, e.error.reason().name(), e.error.to_string()))
        .collect();
    out.set_item("first_errors", first)?;
    Ok(out)
}

/// Adds the FIX market-data feed class to `module`.
///
/// # Errors
/// Fails only if the module cannot take a new attribute.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyFixBookFeed>()
}
