//! The FIX engine of Nexus: tag=value framing and codec, data dictionaries and
//! validation, and the session layer ([`session`]): state machine, message stores,
//! TCP acceptor and initiator.

pub mod dictionary;
pub mod frame;
pub mod message;
#[cfg(feature = "python")]
pub mod python;
pub mod session;
pub mod validate;

pub use dictionary::{Dictionary, DictionaryError, FieldType, MsgCategory};
pub use frame::{checksum, encode, verify, Frame, FrameError, SOH};
pub use message::{
    Decimal, FieldAccess, FieldError, Message, MessageBuilder, ParseError, ParseOptions, Section,
    SplitError, Splitter, TimestampPrecision,
};
pub use session::{
    Acceptor, Application, Initiator, MessageStore, OutgoingMessage, Session, SessionConfig,
    SessionId,
};
pub use validate::{MsgTypeStatus, Reject, SessionRejectReason, ValidationOptions, Validator};
