//! Notifications (SPEC §8): routing, grouping, silences and inhibition decide what to send;
//! a durable outbox in SQLite holds every message until its receiver takes it.

pub mod delivery;
pub mod group;
pub mod matcher;
pub mod message;
pub mod notifier;
pub mod receiver;
pub mod route;
pub mod send;
pub mod silence;

pub use group::{AlertSnapshot, Flush, FlushContext, Grouper, LogEntry, Outgoing};
pub use message::{AlertStatus, Extra, Message, MessageAlert, Reason};
pub use notifier::{Notifier, NotifyStats, StepReport};
pub use receiver::{
    AlertmanagerReceiver, EmailReceiver, EmailTls, Receiver, ReceiverKind, WebhookFormat,
    WebhookReceiver,
};
pub use route::{GroupBy, GroupTiming, InhibitRule, NotifyConfig, Route};
pub use send::{ConsoleOut, Outcome, SendBuildError, Sender};
pub use silence::Silence;
