//! Integration tests: the daemon against the in-process simulator on loopback port 0, with
//! a fresh SQLite file per test, and the `vastwatch` binary driven as a user would.

mod advise;
mod alerts;
mod cli;
mod helpers;
mod notify;
mod notify_cli;
mod notify_crash;
mod polling;
mod receiver;
mod rules_cli;
mod schedule_load;
mod secrets;
mod shutdown;
mod storage;
