//! The native order entry of the Nexus execution service.
//!
//! [`OrderGateway`] is a gRPC server (HTTP/2 over TCP, plaintext) that speaks the
//! `nexus.execution.v1.ExecutionService` contract. It answers `SubmitOrder`,
//! `CancelOrder` and `ReplaceOrder` in Rust, with the
//! [`nexus_execution::ExecutionEngine`] it shares with the Python service, and
//! passes every other call — and every order call it does not take — byte for
//! byte to that service (see [`Forward`]). One port thus serves
//! the whole contract, and the order path never waits on Python: on the machine
//! this was built on, Python's grpc.aio stack alone costs about 0.5 ms a call.
//!
//! Its messages are generated at build time from `proto/` ([`proto`]).

mod change;
mod grpc;
pub mod proto;
mod server;
mod submit;

#[cfg(feature = "python")]
pub mod python;

pub use server::{
    BoxError, GatewayConfig, GatewayError, GatewayInstrument, GatewayStats, OrderGateway,
};
pub use submit::Forward;
