//! TLS settings and venue entries read from Python dicts, with unknown keys
//! refused by name: an initiator's TLS files (`ca`, `server_name`, `cert`,
//! `key`), an acceptor's (`cert`, `key`, `client_ca`, `require_client_cert`)
//! and a venue of the engine (`name`, `fee_bps`, `latency_ms`, `connect_to`,
//! `tls`).

use std::path::PathBuf;
use std::time::Duration;

use nexus_fix::session::{ClientTlsFiles, ServerTlsFiles};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{non_negative, resolve};
use crate::engine::VenueSetup;

fn check_keys(what: &str, d: &Bound<'_, PyDict>, allowed: &[&str]) -> PyResult<()> {
    for key in d.keys() {
        let key: String = key.extract()?;
        if !allowed.contains(&key.as_str()) {
            return Err(PyValueError::new_err(format!(
                "unknown key {key:?} in {what}; allowed: {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

fn item<'py, T: FromPyObjectOwned<'py>>(
    what: &str,
    d: &Bound<'py, PyDict>,
    key: &str,
) -> PyResult<Option<T>> {
    match d.get_item(key)? {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => match v.extract::<T>() {
            Ok(t) => Ok(Some(t)),
            Err(e) => {
                let e: PyErr = e.into();
                Err(PyValueError::new_err(format!("{what}: bad {key}: {e}")))
            }
        },
    }
}

fn required<'py, T: FromPyObjectOwned<'py>>(
    what: &str,
    d: &Bound<'py, PyDict>,
    key: &str,
) -> PyResult<T> {
    item(what, d, key)?.ok_or_else(|| PyValueError::new_err(format!("{what} needs {key}")))
}

/// Reads an initiator's TLS files.
pub fn client_files(d: &Bound<'_, PyDict>) -> PyResult<ClientTlsFiles> {
    const WHAT: &str = "initiator tls";
    check_keys(WHAT, d, &["ca", "server_name", "cert", "key"])?;
    Ok(ClientTlsFiles {
        ca_file: required::<PathBuf>(WHAT, d, "ca")?,
        server_name: required::<String>(WHAT, d, "server_name")?,
        cert_file: item(WHAT, d, "cert")?,
        key_file: item(WHAT, d, "key")?,
    })
}

/// Reads an acceptor's TLS files.
pub fn server_files(d: &Bound<'_, PyDict>) -> PyResult<ServerTlsFiles> {
    const WHAT: &str = "acceptor tls";
    check_keys(
        WHAT,
        d,
        &["cert", "key", "client_ca", "require_client_cert"],
    )?;
    Ok(ServerTlsFiles {
        cert_file: required::<PathBuf>(WHAT, d, "cert")?,
        key_file: required::<PathBuf>(WHAT, d, "key")?,
        client_ca_file: item(WHAT, d, "client_ca")?,
        require_client_cert: item(WHAT, d, "require_client_cert")?.unwrap_or(true),
    })
}

/// Reads a venue of the engine: a `(name, fee_bps, latency_ms)` tuple (a paper
/// venue) or a dict with `name` and optionally `fee_bps`, `latency_ms`,
/// `connect_to=(host, port)` (an external acceptor) and `tls` (its TLS files).
pub fn venue(entry: &Bound<'_, PyAny>) -> PyResult<VenueSetup> {
    let (name, fee_bps, latency_ms, connect_to, tls) = match entry.cast::<PyDict>() {
        Ok(d) => {
            check_keys(
                "venue",
                d,
                &["name", "fee_bps", "latency_ms", "connect_to", "tls"],
            )?;
            let name: String = required("venue", d, "name")?;
            let what = format!("venue {name}");
            let connect_to: Option<(String, i64)> = item(&what, d, "connect_to")?;
            let connect_to = connect_to
                .map(|(host, port)| resolve(&host, non_negative("port", port)?))
                .transpose()?;
            let tls = match d.get_item("tls")? {
                Some(t) if !t.is_none() => {
                    Some(client_files(t.cast::<PyDict>().map_err(|_| {
                        PyValueError::new_err(format!("{what}: tls must be a dict"))
                    })?)?)
                }
                _ => None,
            };
            (
                name,
                item(&what, d, "fee_bps")?.unwrap_or(0),
                item(&what, d, "latency_ms")?.unwrap_or(0.0),
                connect_to,
                tls,
            )
        }
        Err(_) => {
            let (name, fee_bps, latency_ms): (String, i64, f64) = entry.extract()?;
            (name, fee_bps, latency_ms, None, None)
        }
    };
    let latency = Duration::try_from_secs_f64(latency_ms / 1e3).map_err(|_| {
        PyValueError::new_err(format!(
            "latency of venue {name} must be finite and not negative, got {latency_ms} ms"
        ))
    })?;
    Ok(VenueSetup {
        fee_bps,
        latency,
        connect_to,
        tls,
        ..VenueSetup::paper(&name)
    })
}
