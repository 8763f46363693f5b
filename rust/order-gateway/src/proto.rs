//! The protobuf messages of the Execution contract, generated at build time
//! from `proto/nexus/execution/v1/execution.proto` (and the types it imports).
#![allow(missing_docs, clippy::all, clippy::pedantic)] // generated code

/// The `nexus.*` packages.
pub mod nexus {
    /// `nexus.common`.
    pub mod common {
        /// `nexus.common.v1`: shared types.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/nexus.common.v1.rs"));
        }
    }
    /// `nexus.execution`.
    pub mod execution {
        /// `nexus.execution.v1`: the Execution service's messages.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/nexus.execution.v1.rs"));
        }
    }
}

/// The `google.*` packages the contract imports.
pub mod google {
    /// `google.rpc`: the rich error status.
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}
