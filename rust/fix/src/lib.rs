//! The FIX engine of Nexus: tag=value framing and codec, data dictionaries and
//! validation (the session layer and acceptance runner grow here).

pub mod dictionary;
pub mod frame;
pub mod message;
#[cfg(feature = "python")]
pub mod python;
pub mod validate;

pub use frame::{checksum, encode, verify, Frame, FrameError, SOH};
