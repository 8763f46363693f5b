//! The FIX engine of Nexus: tag=value framing and codec, data dictionaries and
//! validation (the session layer and acceptance runner grow here).

pub mod dictionary;
pub mod frame;
pub mod message;
#[cfg(feature = "python")]
pub mod python;
pub mod validate;

pub use dictionary::{Dictionary, DictionaryError, FieldType, MsgCategory};
pub use frame::{checksum, encode, verify, Frame, FrameError, SOH};
pub use message::{
    Decimal, FieldAccess, FieldError, Message, MessageBuilder, ParseError, ParseOptions, Section,
    SplitError, Splitter, TimestampPrecision,
};
pub use validate::{MsgTypeStatus, Reject, SessionRejectReason, ValidationOptions, Validator};
