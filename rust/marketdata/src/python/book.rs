//! Python bindings of the L2 order book and the recorded Binance feed replay.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::BookStateError;
use crate::book::{BookError, BookState, Level, OrderBook, Side};
use crate::feeds::{self, BinanceBookSync, BinanceEvent, BinanceMarket, Scales};

type Column<'py> = Bound<'py, PyArray1<i64>>;

fn book_error(err: BookError) -> PyErr {
    BookStateError::new_err(err.to_string())
}

fn levels(prices: &[i64], sizes: &[i64], what: &str) -> PyResult<Vec<Level>> {
    if prices.len() != sizes.len() {
        return Err(PyValueError::new_err(format!(
            "{what}: {} prices but {} sizes",
            prices.len(),
            sizes.len()
        )));
    }
    Ok(prices
        .iter()
        .zip(sizes)
        .map(|(p, s)| Level::new(*p, *s))
        .collect())
}

/// An L2 order book with fixed-point prices and sizes.
#[pyclass(name = "OrderBook", module = "nexus._native")]
pub struct PyOrderBook {
    inner: OrderBook,
}

impl From<OrderBook> for PyOrderBook {
    fn from(inner: OrderBook) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl PyOrderBook {
    #[new]
    fn new(price_scale: u8, size_scale: u8) -> Self {
        Self {
            inner: OrderBook::new(price_scale, size_scale),
        }
    }

    /// Replaces the book with a snapshot at `sequence`.
    ///
    /// # Errors
    /// Raises `ValueError` for ragged columns and `BookStateError` for a negative size.
    fn apply_snapshot(
        &mut self,
        bid_prices: PyReadonlyArray1<'_, i64>,
        bid_sizes: PyReadonlyArray1<'_, i64>,
        ask_prices: PyReadonlyArray1<'_, i64>,
        ask_sizes: PyReadonlyArray1<'_, i64>,
        sequence: u64,
    ) -> PyResult<()> {
        let bids = levels(bid_prices.as_slice()?, bid_sizes.as_slice()?, "bids")?;
        let asks = levels(ask_prices.as_slice()?, ask_sizes.as_slice()?, "asks")?;
        self.inner
            .apply_snapshot(&bids, &asks, sequence)
            .map_err(book_error)
    }

    /// Applies level changes in order, without the GIL: `sides` holds 0 for
    /// bid and 1 for ask, a size of 0 deletes the level. Returns how many
    /// were applied; stops at the first refused change.
    ///
    /// # Errors
    /// Raises `ValueError` for ragged columns or a side other than 0/1, and
    /// `BookStateError` (naming the change) when the book refuses one.
    fn apply_deltas(
        &mut self,
        py: Python<'_>,
        sides: PyReadonlyArray1<'_, u8>,
        prices: PyReadonlyArray1<'_, i64>,
        sizes: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<usize> {
        let (sd, px, sz) = (sides.as_slice()?, prices.as_slice()?, sizes.as_slice()?);
        if sd.len() != px.len() || sd.len() != sz.len() {
            return Err(PyValueError::new_err(format!(
                "columns differ in length: sides {}, prices {}, sizes {}",
                sd.len(),
                px.len(),
                sz.len()
            )));
        }
        if let Some(i) = sd.iter().position(|s| *s > 1) {
            return Err(PyValueError::new_err(format!(
                "sides[{i}] is {}, expected 0 (bid) or 1 (ask)",
                sd[i]
            )));
        }
        let book = &mut self.inner;
        let result = py.detach(|| {
            for (i, ((s, p), z)) in sd.iter().zip(px).zip(sz).enumerate() {
                let side = if *s == 0 { Side::Bid } else { Side::Ask };
                book.apply_delta(side, *p, *z).map_err(|e| (i, e))?;
            }
            Ok::<usize, (usize, BookError)>(sd.len())
        });
        result.map_err(|(i, e)| BookStateError::new_err(format!("change {i}: {e}")))
    }

    /// The best bid as (price, size), or None.
    fn best_bid(&self) -> Option<(i64, i64)> {
        self.inner.best_bid().map(|l| (l.price, l.size))
    }

    /// The best ask as (price, size), or None.
    fn best_ask(&self) -> Option<(i64, i64)> {
        self.inner.best_ask().map(|l| (l.price, l.size))
    }

    /// The best `n` levels per side as (bid_prices, bid_sizes, ask_prices, ask_sizes).
    fn depth<'py>(
        &self,
        py: Python<'py>,
        n: usize,
    ) -> (Column<'py>, Column<'py>, Column<'py>, Column<'py>) {
        let depth = self.inner.depth(n);
        let split = |side: &[Level]| -> (Vec<i64>, Vec<i64>) {
            (
                side.iter().map(|l| l.price).collect(),
                side.iter().map(|l| l.size).collect(),
            )
        };
        let (bp, bs) = split(&depth.bids);
        let (ap, asz) = split(&depth.asks);
        (
            bp.into_pyarray(py),
            bs.into_pyarray(py),
            ap.into_pyarray(py),
            asz.into_pyarray(py),
        )
    }

    /// (best bid + best ask) / 2 in price units, or None.
    fn mid(&self) -> Option<f64> {
        self.inner.mid()
    }

    /// Size-weighted top-of-book price in price units, or None.
    fn micro_price(&self) -> Option<f64> {
        self.inner.micro_price()
    }

    /// Top-of-book imbalance in [-1, 1], or None.
    fn imbalance(&self) -> Option<f64> {
        self.inner.imbalance()
    }

    /// Best ask - best bid as a mantissa (negative when crossed), or None.
    fn spread(&self) -> Option<i64> {
        self.inner.spread()
    }

    /// Whether best bid >= best ask.
    fn is_crossed(&self) -> bool {
        self.inner.is_crossed()
    }

    /// "awaiting_snapshot", "live" or "gapped".
    #[getter]
    fn state(&self) -> &'static str {
        match self.inner.state() {
            BookState::AwaitingSnapshot => "awaiting_snapshot",
            BookState::Live => "live",
            BookState::Gapped => "gapped",
        }
    }

    /// The sequence number of the last update applied.
    #[getter]
    fn sequence(&self) -> u64 {
        self.inner.sequence()
    }

    /// Price levels per side as (bids, asks).
    fn level_counts(&self) -> (usize, usize) {
        (
            self.inner.level_count(Side::Bid),
            self.inner.level_count(Side::Ask),
        )
    }
}

/// A live Binance book: JSON messages from the WebSocket (diffs, trades,
/// book tickers) and the REST snapshot go in one at a time; the sync rule
/// keeps the book in sequence and counts what it refused.
#[pyclass(name = "BinanceBook", module = "nexus._native")]
pub struct PyBinanceBook {
    sync: BinanceBookSync,
    scales: Scales,
    messages: u64,
    bad: std::collections::BTreeMap<&'static str, u64>,
}

#[pymethods]
impl PyBinanceBook {
    #[new]
    fn new(market_name: &str, price_scale: u8, size_scale: u8) -> PyResult<Self> {
        let scales = Scales {
            price: price_scale,
            size: size_scale,
        };
        Ok(Self {
            sync: BinanceBookSync::new(market(market_name)?, scales),
            scales,
            messages: 0,
            bad: std::collections::BTreeMap::new(),
        })
    }

    /// Takes one JSON message (a combined-stream message or a REST depth
    /// snapshot). Returns what it did: "buffered", "stale", "applied",
    /// "synced", "ignored", or "bad:<reason>" for a message that does not
    /// parse and "gap" for one that breaks the sequence (both counted).
    fn on_message(&mut self, message: &str) -> String {
        self.messages += 1;
        let event = match feeds::parse_binance_json(message, self.scales) {
            Ok(event) => event,
            Err(err) => {
                let name = err.kind().name();
                *self.bad.entry(name).or_insert(0) += 1;
                return format!("bad:{name}");
            }
        };
        match self.sync.on_event(&event) {
            Ok(feeds::SyncStep::Buffered) => "buffered".into(),
            Ok(feeds::SyncStep::Stale) => "stale".into(),
            Ok(feeds::SyncStep::Applied { .. }) => "applied".into(),
            Ok(feeds::SyncStep::Synced { .. }) => "synced".into(),
            Ok(feeds::SyncStep::Ignored) => "ignored".into(),
            Err(_) => "gap".into(),
        }
    }

    /// Counters: messages, bad messages by reason, and the sync's own.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        let s = self.sync.stats();
        out.set_item("messages", self.messages)?;
        out.set_item("bad", self.bad.clone())?;
        out.set_item("diffs", s.diffs)?;
        out.set_item("applied", s.applied)?;
        out.set_item("stale", s.stale)?;
        out.set_item("gaps", s.gaps)?;
        out.set_item("snapshots", s.snapshots)?;
        out.set_item("crossed", s.crossed)?;
        Ok(out)
    }

    /// A copy of the current book.
    fn book(&self) -> PyOrderBook {
        PyOrderBook {
            inner: self.sync.book().clone(),
        }
    }
}

fn market(name: &str) -> PyResult<BinanceMarket> {
    match name {
        "usdm" => Ok(BinanceMarket::UsdM),
        "spot" => Ok(BinanceMarket::Spot),
        other => Err(PyValueError::new_err(format!(
            "market must be 'usdm' or 'spot', not {other:?}"
        ))),
    }
}

/// Replays a recorded Binance feed (hftbacktest `.gz`: `<ts_ns> <json>` lines)
/// through the Binance book-sync rule, without the GIL; returns the final
/// book and the counters (lines, bad lines by reason, diffs applied, stale,
/// gaps, crossed, ...).
///
/// # Errors
/// Raises `ValueError` for an unknown market, `OSError` when the file cannot be read.
#[pyfunction]
#[pyo3(signature = (path, market_name, price_scale, size_scale))]
fn replay_binance_book<'py>(
    py: Python<'py>,
    path: PathBuf,
    market_name: &str,
    price_scale: u8,
    size_scale: u8,
) -> PyResult<(PyOrderBook, Bound<'py, PyDict>)> {
    let market = market(market_name)?;
    let scales = Scales {
        price: price_scale,
        size: size_scale,
    };
    let (sync, stats) = py
        .detach(|| {
            let file = feeds::read_binance_gz(&path, scales)?;
            let mut sync = BinanceBookSync::new(market, scales);
            for recorded in &file.events {
                // A gap is counted by the sync itself and waits for a snapshot.
                let _ = sync.on_event(&recorded.event);
            }
            Ok::<_, feeds::ReadError>((sync, file.stats))
        })
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    let counters = PyDict::new(py);
    let s = sync.stats();
    counters.set_item("lines", stats.lines)?;
    counters.set_item("bad_lines", stats.bad_total())?;
    counters.set_item("diffs", s.diffs)?;
    counters.set_item("applied", s.applied)?;
    counters.set_item("stale", s.stale)?;
    counters.set_item("gaps", s.gaps)?;
    counters.set_item("crossed", s.crossed)?;
    counters.set_item("level_updates", s.level_updates)?;
    counters.set_item("snapshots", s.snapshots)?;
    Ok((
        PyOrderBook {
            inner: sync.into_book(),
        },
        counters,
    ))
}

/// The book-building input of a recorded Binance feed as columns: the first
/// snapshot's levels, then every level change of the diffs newer than it, in
/// file order, as (side 0/1, price, size) — for benchmarks and tests that
/// feed a book from Python. (Sequence checks are the sync's job; see
/// `replay_binance_book`.)
///
/// # Errors
/// Raises `OSError` when the file cannot be read, `ValueError` when it holds no snapshot.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn binance_book_columns<'py>(
    py: Python<'py>,
    path: PathBuf,
    price_scale: u8,
    size_scale: u8,
) -> PyResult<(
    (Column<'py>, Column<'py>, Column<'py>, Column<'py>, u64),
    (Bound<'py, PyArray1<u8>>, Column<'py>, Column<'py>),
)> {
    let scales = Scales {
        price: price_scale,
        size: size_scale,
    };
    let file = py
        .detach(|| feeds::read_binance_gz(&path, scales))
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    // Diffs buffered before the snapshot arrived count too, as in the sync.
    let snapshot = file.events.iter().find_map(|r| match &r.event {
        BinanceEvent::Snapshot(s) => Some(s),
        _ => None,
    });
    let (mut sides, mut prices, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(snap) = snapshot {
        for recorded in &file.events {
            let BinanceEvent::Depth(diff) = &recorded.event else {
                continue;
            };
            if diff.final_update_id <= snap.last_update_id {
                continue;
            }
            for (side, levels) in [(0u8, &diff.bids), (1u8, &diff.asks)] {
                for level in levels {
                    sides.push(side);
                    prices.push(level.price);
                    sizes.push(level.size);
                }
            }
        }
    }
    let snap = snapshot.ok_or_else(|| {
        PyValueError::new_err(format!("{} holds no depth snapshot", path.display()))
    })?;
    let split = |levels: &[Level]| -> (Vec<i64>, Vec<i64>) {
        (
            levels.iter().map(|l| l.price).collect(),
            levels.iter().map(|l| l.size).collect(),
        )
    };
    let (bp, bs) = split(&snap.bids);
    let (ap, asz) = split(&snap.asks);
    Ok((
        (
            bp.into_pyarray(py),
            bs.into_pyarray(py),
            ap.into_pyarray(py),
            asz.into_pyarray(py),
            snap.last_update_id,
        ),
        (
            sides.into_pyarray(py),
            prices.into_pyarray(py),
            sizes.into_pyarray(py),
        ),
    ))
}

/// Adds the order-book classes and functions to `module`.
///
/// # Errors
/// Fails only if the module cannot take a new attribute.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyOrderBook>()?;
    module.add_class::<PyBinanceBook>()?;
    module.add_function(wrap_pyfunction!(replay_binance_book, module)?)?;
    module.add_function(wrap_pyfunction!(binance_book_columns, module)?)?;
    module.add("BookStateError", module.py().get_type::<BookStateError>())?;
    Ok(())
}
