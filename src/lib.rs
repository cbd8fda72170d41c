//! vastwatch: watches Vast.ai serverless fleets, stores every snapshot, and tells operators
//! what is wrong and what to do about it.
//!
//! The modules follow the data flow: [`schedule`] ticks, [`poll`] fetches worker lists,
//! [`store`] keeps them, [`rules`] alert on them, [`advise`] recommends how to scale each
//! fleet, and (in a later stage) `notify` delivers alerts.
//! [`config`], [`api`], [`metrics`], [`sim`] and [`cli`] sit beside the flow. See
//! ARCHITECTURE.md for the map.

pub mod advise;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod fuzz;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod poll;
pub mod replay;
pub mod rules;
pub mod schedule;
pub mod service;
pub mod shard;
pub mod sim;
pub mod store;
pub mod time;
