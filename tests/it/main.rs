//! Integration tests: the daemon against the in-process simulator on loopback port 0, with
//! a fresh SQLite file per test, and the `vastwatch` binary driven as a user would.

mod advise;
mod alerts;
mod cli;
mod helpers;
mod polling;
mod rules_cli;
mod schedule_load;
mod secrets;
mod shutdown;
