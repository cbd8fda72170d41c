//! Notifications (SPEC §8): routing, grouping, silences and inhibition decide what to send;
//! a durable outbox in SQLite holds every message until its receiver takes it.

pub mod message;
pub mod receiver;
pub mod send;

pub use message::{AlertStatus, Extra, Message, MessageAlert, Reason};
pub use receiver::{
    AlertmanagerReceiver, EmailReceiver, EmailTls, Receiver, ReceiverKind, WebhookFormat,
    WebhookReceiver,
};
pub use send::{ALERTMANAGER_RESEND, ConsoleOut, Outcome, SendBuildError, Sender};
