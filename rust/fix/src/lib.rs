//! The FIX engine of Nexus: tag=value framing and codec (the session layer,
//! data dictionaries and acceptance runner grow here).

pub mod frame;
#[cfg(feature = "python")]
pub mod python;

pub use frame::{checksum, encode, verify, Frame, FrameError, SOH};
