//! The `nexus._native` extension module: one module that mounts the Python
//! bindings of every Nexus crate. Python code reaches it only through the
//! `nexus.engine` wrapper.

use pyo3::prelude::*;

/// Builds the `nexus._native` module.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    nexus_fix::python::register(module)?;
    nexus_marketdata::python::register(module)?;
    nexus_execution::python::register(module)?;
    nexus_venue::python::register(module)?;
    nexus_order_gateway::python::register(module)?;
    Ok(())
}
