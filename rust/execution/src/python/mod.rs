//! Python bindings of the execution engine, mounted into `nexus._native`.
//!
//! Every call that waits (logon, stop, a send on the session's channel, a lock
//! the applier thread may hold) runs without the GIL. Orders, positions and
//! reports come back as dicts of plain ints and strings (mantissas at the
//! instrument's scales).

mod errors;
mod tls;
mod venue;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

pub use errors::ExecutionError;

use crate::engine::{
    ExecutionConfig, ExecutionEngine, InstrumentConfig, OrderRequest, ReportRecord, SessionState,
    TimeInForce, VenueSetup, VenueStats,
};
use nexus_oms::{Order, OrderStatus, OrderType, Position, RiskLimits, RiskReason, Side};

fn status_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::PendingNew => "pending_new",
        OrderStatus::New => "new",
        OrderStatus::PartiallyFilled => "partially_filled",
        OrderStatus::Filled => "filled",
        OrderStatus::Canceled => "canceled",
        OrderStatus::Replaced => "replaced",
        OrderStatus::Rejected => "rejected",
        OrderStatus::Expired => "expired",
    }
}

fn reason_name(reason: RiskReason) -> &'static str {
    match reason {
        RiskReason::MaxQuantity => "max_quantity",
        RiskReason::MaxNotional => "max_notional",
        RiskReason::PriceCollar => "price_collar",
        RiskReason::PositionLimit => "position_limit",
        RiskReason::Throttle => "throttle",
        RiskReason::DuplicateOrder => "duplicate_order",
        RiskReason::KillSwitch => "kill_switch",
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

fn order_type_name(order_type: OrderType) -> &'static str {
    match order_type {
        OrderType::Market => "market",
        OrderType::Limit => "limit",
    }
}

fn parse_side(side: &str) -> PyResult<Side> {
    match side {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        other => Err(PyValueError::new_err(format!(
            "side must be 'buy' or 'sell', got {other:?}"
        ))),
    }
}

fn parse_order_type(order_type: &str) -> PyResult<OrderType> {
    match order_type {
        "market" => Ok(OrderType::Market),
        "limit" => Ok(OrderType::Limit),
        other => Err(PyValueError::new_err(format!(
            "order_type must be 'market' or 'limit', got {other:?}"
        ))),
    }
}

fn parse_tif(tif: &str) -> PyResult<TimeInForce> {
    match tif {
        "day" => Ok(TimeInForce::Day),
        "gtc" => Ok(TimeInForce::Gtc),
        "ioc" => Ok(TimeInForce::Ioc),
        "fok" => Ok(TimeInForce::Fok),
        other => Err(PyValueError::new_err(format!(
            "time_in_force must be 'day', 'gtc', 'ioc' or 'fok', got {other:?}"
        ))),
    }
}

fn order_id(order_id: i64) -> PyResult<u64> {
    u64::try_from(order_id).map_err(|_| {
        PyValueError::new_err(format!("order_id must not be negative, got {order_id}"))
    })
}

fn non_negative<T: TryFrom<i64>>(name: &str, value: i64) -> PyResult<T> {
    T::try_from(value).map_err(|_| PyValueError::new_err(format!("{name} out of range: {value}")))
}

/// Resolves `host:port` to its first socket address (`ValueError` when it
/// does not resolve).
///
/// # Errors
/// A host that does not resolve.
pub fn resolve(host: &str, port: u16) -> PyResult<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| PyValueError::new_err(format!("cannot resolve {host}:{port}")))
}

fn order_dict<'py>(py: Python<'py>, order: &Order, venue: &str) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("venue", venue)?;
    d.set_item("order_id", order.order_id)?;
    d.set_item("client_order_id", order.client_order_id())?;
    d.set_item(
        "original_client_order_id",
        order.chain.first().map_or("", String::as_str),
    )?;
    d.set_item("symbol", &order.instrument)?;
    d.set_item("side", side_name(order.side))?;
    d.set_item("order_type", order_type_name(order.order_type))?;
    d.set_item("quantity", order.quantity)?;
    d.set_item("limit_price", order.limit_price)?;
    d.set_item("status", status_name(order.status))?;
    d.set_item("filled", order.filled)?;
    d.set_item("leaves", order.leaves())?;
    d.set_item("average_price", order.average_price())?;
    let reject_reason = match (&order.risk_reject, order.status) {
        (Some(r), _) => Some(reason_name(r.reason)),
        (None, OrderStatus::Rejected) => Some("venue"),
        (None, _) => None,
    };
    d.set_item("reject_reason", reject_reason)?;
    d.set_item("text", order.reject.as_deref())?;
    Ok(d)
}

fn report_dict<'py>(py: Python<'py>, report: &ReportRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("sequence", report.sequence)?;
    d.set_item("exec_id", &report.exec_id)?;
    d.set_item("exec_type", report.exec_type.name())?;
    d.set_item("order", order_dict(py, &report.order, &report.venue)?)?;
    d.set_item("last_quantity", report.last_quantity)?;
    d.set_item("last_price", report.last_price)?;
    d.set_item("commission", report.commission)?;
    Ok(d)
}

fn position_dict<'py>(
    py: Python<'py>,
    symbol: &str,
    position: &Position,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("symbol", symbol)?;
    d.set_item("quantity", position.quantity)?;
    d.set_item("average_price", position.average_price())?;
    d.set_item("realized", position.realized)?;
    Ok(d)
}

fn session_dict<'py>(py: Python<'py>, state: &SessionState) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("venue", &state.venue)?;
    d.set_item("simulated", state.simulated)?;
    d.set_item("session_id", &state.session_id)?;
    d.set_item("logged_on", state.logged_on)?;
    d.set_item("next_sender_seq", state.next_sender_seq)?;
    d.set_item("next_target_seq", state.next_target_seq)?;
    d.set_item("transport_failures", state.transport_failures)?;
    d.set_item(
        "last_transport_failure",
        state.last_transport_failure.as_deref(),
    )?;
    Ok(d)
}

fn venue_stats_dict<'py>(py: Python<'py>, stats: &VenueStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &stats.name)?;
    d.set_item("fee_bps", stats.fee_bps)?;
    d.set_item("ack_ms", stats.ack_ms)?;
    d.set_item("cost_bps", stats.cost_bps)?;
    d.set_item("routed", stats.routed)?;
    d.set_item("logged_on", stats.logged_on)?;
    d.set_item("simulated", stats.simulated)?;
    Ok(d)
}

/// The execution engine: paper venues (or external FIX 4.4 acceptors), a FIX
/// 4.4 session to each and the order manager they share, in-process. Prices
/// and quantities are int mantissas at the scales of each instrument.
#[pyclass(name = "ExecutionEngine", module = "nexus._native", frozen)]
#[derive(Debug)]
pub struct PyExecutionEngine {
    inner: Arc<ExecutionEngine>,
}

impl PyExecutionEngine {
    /// The engine itself, for native code that trades beside Python (the
    /// order gateway).
    #[must_use]
    pub fn engine(&self) -> Arc<ExecutionEngine> {
        Arc::clone(&self.inner)
    }

    fn with_venue(&self, order: Order) -> (Order, String) {
        let venue = self
            .inner
            .order_with_venue(order.order_id)
            .map(|(_, v)| v)
            .unwrap_or_default();
        (order, venue)
    }
}

#[pymethods]
impl PyExecutionEngine {
    /// Starts the engine. `instruments` is a list of `(symbol, price_scale,
    /// qty_scale, tick)`; the sessions log on in the background
    /// (see `wait_logged_on`). One venue named `target` by default: a paper
    /// venue charging `fee_bps` on `venue_port`, or, with `connect_to=(host,
    /// port)`, that external FIX 4.4 acceptor, over TLS with `tls={"ca": ...,
    /// "server_name": ..., "cert": ..., "key": ...}` (PEM files; cert and key
    /// for mutual TLS). `venues=[...]` names several venues instead, between
    /// which venue selection chooses (fees plus `latency_cost_bps_per_ms` times
    /// the measured acknowledgement time): `(name, fee_bps, latency_ms)` for a
    /// paper venue, or a dict with `name` and optionally `fee_bps`,
    /// `latency_ms`, `connect_to` and `tls` (as above). With `store_dir` the
    /// FIX sessions keep their messages and sequence numbers in files there and
    /// resume them on the next start. With `journal_dir` orders, positions and
    /// applied reports are journaled there and restored on the next start, and
    /// the orders still open are reconciled with their venues once they log on;
    /// the journal is compacted once it grows by `journal_compact_bytes`.
    /// `wait_report_after` spins up to `wait_spin_us` microseconds (yielding the
    /// core) before it sleeps: a venue's answer is then seen without waiting for
    /// a sleeping thread to wake; 0 sleeps at once. With `busy_poll_us` the FIX
    /// sessions' readers keep polling their sockets that long after each message
    /// (a core per session busy while orders flow); 0 blocks at once. With
    /// `caller_reads_us` a caller spinning in `wait_report_after` reads the
    /// venue's answer from the session's socket itself, and the session's reader
    /// stays aside until that long after the last such read (a report arriving
    /// while no caller waits is applied that much later at most); 0: never.
    #[new]
    #[pyo3(signature = (
        instruments,
        *,
        venue_port = 0,
        connect_to = None,
        tls = None,
        heart_bt_int = 30,
        sender = "NEXUS",
        target = "PAPER",
        max_order_quantity = None,
        max_notional = None,
        max_position = None,
        collar_bps = 0,
        max_orders_per_second = 0,
        fee_bps = 0,
        venues = None,
        latency_cost_bps_per_ms = 0.1,
        store_dir = None,
        journal_dir = None,
        journal_compact_bytes = 16_777_216,
        wait_spin_us = 200,
        busy_poll_us = 0,
        caller_reads_us = 0
    ))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python signature
    fn new(
        py: Python<'_>,
        instruments: Vec<(String, i64, i64, i64)>,
        venue_port: i64,
        connect_to: Option<(String, i64)>,
        tls: Option<Bound<'_, PyDict>>,
        heart_bt_int: i64,
        sender: &str,
        target: &str,
        max_order_quantity: Option<i64>,
        max_notional: Option<i128>,
        max_position: Option<i64>,
        collar_bps: i64,
        max_orders_per_second: i64,
        fee_bps: i64,
        venues: Option<Vec<Bound<'_, PyAny>>>,
        latency_cost_bps_per_ms: f64,
        store_dir: Option<std::path::PathBuf>,
        journal_dir: Option<std::path::PathBuf>,
        journal_compact_bytes: i64,
        wait_spin_us: i64,
        busy_poll_us: i64,
        caller_reads_us: i64,
    ) -> PyResult<Self> {
        let mut specs = Vec::with_capacity(instruments.len());
        for (symbol, price_scale, qty_scale, tick) in instruments {
            let price_scale: u8 = non_negative("price_scale", price_scale)?;
            let qty_scale: u8 = non_negative("qty_scale", qty_scale)?;
            specs.push(InstrumentConfig::new(&symbol, price_scale, qty_scale, tick));
        }
        let positive = |name: &str, v: Option<i64>| -> PyResult<i64> {
            match v {
                None => Ok(i64::MAX),
                Some(v) if v > 0 => Ok(v),
                Some(v) => Err(PyValueError::new_err(format!(
                    "{name} must be positive, got {v}"
                ))),
            }
        };
        let max_notional = match max_notional {
            None => i128::MAX,
            Some(v) if v > 0 => v,
            Some(v) => {
                return Err(PyValueError::new_err(format!(
                    "max_notional must be positive, got {v}"
                )))
            }
        };
        let connect_to = connect_to
            .map(|(host, port)| resolve(&host, non_negative("port", port)?))
            .transpose()?;
        let tls = tls.as_ref().map(tls::client_files).transpose()?;
        let venues = match venues {
            None => vec![VenueSetup {
                port: non_negative("venue_port", venue_port)?,
                connect_to,
                fee_bps,
                tls,
                ..VenueSetup::paper(target)
            }],
            Some(_) if connect_to.is_some() || tls.is_some() => {
                return Err(PyValueError::new_err(
                    "connect_to and tls name one external venue; they cannot be combined \
                     with venues (give each venue its own connect_to and tls)",
                ))
            }
            Some(list) => list.iter().map(tls::venue).collect::<PyResult<_>>()?,
        };
        let config = ExecutionConfig {
            instruments: specs,
            venues,
            latency_cost_bps_per_ms,
            store_dir,
            journal_dir,
            journal_compact_bytes: non_negative("journal_compact_bytes", journal_compact_bytes)?,
            wait_spin: Duration::from_micros(non_negative("wait_spin_us", wait_spin_us)?),
            busy_poll: Duration::from_micros(non_negative("busy_poll_us", busy_poll_us)?),
            caller_reads: Duration::from_micros(non_negative("caller_reads_us", caller_reads_us)?),
            heart_bt_int: non_negative("heart_bt_int", heart_bt_int)?,
            sender_comp_id: sender.to_owned(),
            limits: RiskLimits {
                max_order_quantity: positive("max_order_quantity", max_order_quantity)?,
                max_notional,
                collar_bps: non_negative("collar_bps", collar_bps)?,
                max_position: positive("max_position", max_position)?,
                max_orders_per_window: non_negative(
                    "max_orders_per_second",
                    max_orders_per_second,
                )?,
                throttle_window_ns: 1_000_000_000,
                ..RiskLimits::default()
            },
        };
        let inner = py
            .detach(|| ExecutionEngine::start(config))
            .map_err(errors::to_py)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Waits up to `timeout_s` seconds for the FIX session to log on; returns
    /// whether it did.
    fn wait_logged_on(&self, py: Python<'_>, timeout_s: f64) -> PyResult<bool> {
        let timeout = Duration::try_from_secs_f64(timeout_s.max(0.0)).map_err(|_| {
            PyValueError::new_err(format!("timeout_s must be finite, got {timeout_s}"))
        })?;
        Ok(py.detach(|| self.inner.wait_logged_on(timeout)))
    }

    /// Feeds a top of book (mantissas; ts_ns since the Unix epoch) to every
    /// in-process paper venue (it may fill resting orders), and to the risk
    /// engine.
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
    ) -> PyResult<()> {
        py.detach(|| {
            self.inner
                .on_quote(symbol, bid, ask, bid_size, ask_size, ts_ns)
        })
        .map_err(errors::to_py)
    }

    /// Checks and sends a new order; returns its dict (status "pending_new"
    /// when sent, "rejected" with its reason when a risk check refused it).
    /// `venues`: where it may go (None or empty: any; one: there; several:
    /// venue selection chooses among them).
    #[pyo3(signature = (client_order_id, symbol, side, order_type, quantity, limit_price = None, time_in_force = "day", venues = None))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python signature
    fn submit<'py>(
        &self,
        py: Python<'py>,
        client_order_id: &str,
        symbol: &str,
        side: &str,
        order_type: &str,
        quantity: i64,
        limit_price: Option<i64>,
        time_in_force: &str,
        venues: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let request = OrderRequest {
            venues: venues.unwrap_or_default(),
            client_order_id: client_order_id.to_owned(),
            symbol: symbol.to_owned(),
            side: parse_side(side)?,
            order_type: parse_order_type(order_type)?,
            quantity,
            limit_price,
            time_in_force: parse_tif(time_in_force)?,
        };
        let (order, venue) = py
            .detach(|| -> Result<_, crate::engine::ExecutionError> {
                let order = self.inner.submit(request)?;
                Ok(self.with_venue(order))
            })
            .map_err(errors::to_py)?;
        order_dict(py, &order, &venue)
    }

    /// Sends a cancel of `order_id` under `new_client_order_id`; returns the
    /// order's dict.
    fn cancel<'py>(
        &self,
        py: Python<'py>,
        order_id: i64,
        new_client_order_id: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let id = self::order_id(order_id)?;
        let (order, venue) = py
            .detach(|| -> Result<_, crate::engine::ExecutionError> {
                let order = self.inner.cancel(id, new_client_order_id)?;
                Ok(self.with_venue(order))
            })
            .map_err(errors::to_py)?;
        order_dict(py, &order, &venue)
    }

    /// Sends a cancel/replace of `order_id` to `quantity` at `limit_price`
    /// under `new_client_order_id`; returns the order's dict.
    fn replace<'py>(
        &self,
        py: Python<'py>,
        order_id: i64,
        new_client_order_id: &str,
        quantity: i64,
        limit_price: Option<i64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let id = self::order_id(order_id)?;
        let (order, venue) = py
            .detach(|| -> Result<_, crate::engine::ExecutionError> {
                let order = self
                    .inner
                    .replace(id, new_client_order_id, quantity, limit_price)?;
                Ok(self.with_venue(order))
            })
            .map_err(errors::to_py)?;
        order_dict(py, &order, &venue)
    }

    /// Every order, by id.
    fn orders<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let orders = py.detach(|| self.inner.orders_with_venues());
        orders.iter().map(|(o, v)| order_dict(py, o, v)).collect()
    }

    /// One order by id, or None.
    fn order<'py>(&self, py: Python<'py>, order_id: i64) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Ok(id) = u64::try_from(order_id) else {
            return Ok(None);
        };
        let order = py.detach(|| self.inner.order_with_venue(id));
        order.map(|(o, v)| order_dict(py, &o, &v)).transpose()
    }

    /// The order any ClOrdID of whose chain is `client_order_id` (its dict
    /// names the chain's first as `original_client_order_id`), or None.
    fn order_by_client_id<'py>(
        &self,
        py: Python<'py>,
        client_order_id: &str,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let order = py.detach(|| self.inner.order_by_client_id(client_order_id));
        order.map(|(o, v)| order_dict(py, &o, &v)).transpose()
    }

    /// The position of every instrument.
    fn positions<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let positions = py.detach(|| self.inner.positions());
        positions
            .iter()
            .map(|(s, p)| position_dict(py, s, p))
            .collect()
    }

    /// Up to `max_reports` reports with a sequence number above `sequence`
    /// (0 for the first), oldest first.
    #[pyo3(signature = (sequence, max_reports = 1000))]
    fn reports_since<'py>(
        &self,
        py: Python<'py>,
        sequence: i64,
        max_reports: i64,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let sequence = u64::try_from(sequence).unwrap_or(0);
        let max: usize = non_negative("max_reports", max_reports)?;
        let reports = py.detach(|| self.inner.reports_since(sequence, max));
        reports.iter().map(|r| report_dict(py, r)).collect()
    }

    /// Sequence number of the latest logged report (0 before the first).
    fn last_sequence(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.inner.last_sequence())
    }

    /// Waits (without the GIL) until a report with a sequence number above
    /// `sequence` is logged or `timeout_s` passes; returns the latest sequence
    /// number (at most `sequence` on timeout). Wakes as the report is logged;
    /// with `spin` it first spins up to the engine's `wait_spin_us`.
    #[pyo3(signature = (sequence, timeout_s, *, spin = true))]
    fn wait_report_after(
        &self,
        py: Python<'_>,
        sequence: i64,
        timeout_s: f64,
        spin: bool,
    ) -> PyResult<u64> {
        let sequence = u64::try_from(sequence).unwrap_or(0);
        let timeout = Duration::try_from_secs_f64(timeout_s.max(0.0)).map_err(|_| {
            PyValueError::new_err(format!("timeout_s must be finite, got {timeout_s}"))
        })?;
        Ok(py.detach(|| {
            if spin {
                self.inner.wait_report_after(sequence, timeout)
            } else {
                self.inner.wait_report_sleeping(sequence, timeout)
            }
        }))
    }

    /// Engages or releases the kill switch; engaging sends cancels for the
    /// open orders and returns their ids.
    fn set_kill_switch(&self, py: Python<'_>, engaged: bool) -> PyResult<Vec<u64>> {
        py.detach(|| self.inner.set_kill_switch(engaged))
            .map_err(errors::to_py)
    }

    /// The first venue's FIX session: venue, simulated, session_id, logged_on,
    /// next_sender_seq, next_target_seq.
    fn session<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let state = py.detach(|| self.inner.session_state());
        session_dict(py, &state)
    }

    /// Every venue's FIX session, in configuration order (as `session`).
    fn sessions<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let states = py.detach(|| self.inner.sessions());
        states.iter().map(|s| session_dict(py, s)).collect()
    }

    /// How venue selection sees each venue: name, fee_bps, ack_ms (moving
    /// average of the acknowledgement time), cost_bps, routed, logged_on,
    /// simulated.
    fn venue_stats<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let stats = py.detach(|| self.inner.venue_stats());
        stats.iter().map(|s| venue_stats_dict(py, s)).collect()
    }

    /// The order journal (None without one): path, bytes, replayed, written,
    /// compactions, write_errors, notes (what was recovered or could not be
    /// done, with why), status_requests, status_answers, unreconciled.
    fn journal<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(status) = py.detach(|| self.inner.journal_status()) else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("path", status.path.to_string_lossy().into_owned())?;
        d.set_item("bytes", status.bytes)?;
        d.set_item("replayed", status.replayed)?;
        d.set_item("written", status.written)?;
        d.set_item("compactions", status.compactions)?;
        d.set_item("write_errors", status.write_errors)?;
        d.set_item("notes", status.notes)?;
        d.set_item("status_requests", status.status_requests)?;
        d.set_item("status_answers", status.status_answers)?;
        d.set_item("unreconciled", status.unreconciled)?;
        Ok(Some(d))
    }

    /// Venue messages that could not be applied, most recent last, with why.
    fn unapplied(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| self.inner.unapplied())
    }

    /// Logs out and stops every thread of the engine. Idempotent.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.inner.stop());
    }
}

/// Adds the execution engine's classes and exceptions to `module`.
///
/// # Errors
/// Propagates the errors of adding them.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyExecutionEngine>()?;
    module.add_class::<venue::PyPaperVenueServer>()?;
    module.add("ExecutionError", module.py().get_type::<ExecutionError>())?;
    Ok(())
}
