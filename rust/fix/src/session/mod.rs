//! The FIX session layer: the transport-independent state machine ([`state`]),
//! message stores ([`store`]), session schedules ([`schedule`]), a TCP acceptor
//! and initiator on std threads ([`tcp`]), optionally over TLS ([`tls`]), and a
//! bounded-channel application adapter ([`channel`]).
//!
//! The state machine follows QuickFIX's `Session` and passes all 117 of QuickFIX's
//! session acceptance scripts (FIX.4.2 and FIX.4.4, `tests/acceptance.rs`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use nexus_fix::message::Message;
//! use nexus_fix::session::{
//!     Acceptor, AcceptorConfig, Application, FileStore, OutgoingMessage, Session,
//!     SessionConfig, SessionId,
//! };
//! use nexus_fix::Dictionary;
//!
//! struct Echo;
//! impl Application for Echo {
//!     fn on_message(&self, _: &SessionId, msg: &Message<'_>, replies: &mut Vec<OutgoingMessage>) {
//!         replies.push(OutgoingMessage::from_body(msg));
//!     }
//! }
//!
//! let dictionary = Arc::new(Dictionary::from_file("FIX44.xml")?);
//! let config = SessionConfig::new(SessionId::new("FIX.4.4", "NEXUS", "CLIENT"));
//! let store = FileStore::open("var/fix", "NEXUS-CLIENT")?;
//! let session = Session::new(config, dictionary, Box::new(store));
//! let mut acceptor = Acceptor::start(AcceptorConfig::localhost(), vec![session], Arc::new(Echo))?;
//! println!("listening on {}", acceptor.local_addr());
//! acceptor.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod channel;
pub mod schedule;
pub mod state;
pub mod store;
pub mod tcp;
pub mod tls;
mod transport;

pub use channel::{AppEvent, ChannelApplication};
pub use schedule::Schedule;
pub use state::{
    Application, Fields, FieldsIter, LogonFlag, NullApplication, Outbox, OutgoingMessage, Session,
    SessionConfig, SessionEvent, SessionId,
};
pub use store::{FileStore, MemoryStore, MessageStore, StoreError};
pub use tcp::{
    Acceptor, AcceptorConfig, Initiator, InitiatorConfig, SessionDriver, SessionSender, TcpError,
};
pub use tls::{ClientTls, ClientTlsFiles, ServerTls, ServerTlsFiles, TlsError};
