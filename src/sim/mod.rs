//! Simulated Vast worker-list API (SPEC §10): scenarios, and an HTTP server that answers
//! like the real one (`reference/vast-worker-list.md`).
//!
//! - `scenario`: the YAML format, its validation, and the built-in scenarios.
//! - `curve`: values over scenario time.
//! - `respond`: the pure core, what a request at scenario time `t` is answered with.
//! - `server`: the axum edge that reads the clock, checks the key and counts requests.
//!
//! **Invariant:** nothing here reads the system time; scenario time comes from the
//! injected [`Clock`](crate::clock::Clock), and only `server` does I/O.

mod curve;
mod respond;
mod scenario;
mod server;

pub use respond::SimResponse;
pub use scenario::{Fleet, ResponseShape, Scenario, ScenarioError};
pub use server::{RequestCounts, RunningSimulator, SimOptions, Simulator};

#[cfg(test)]
mod tests;
