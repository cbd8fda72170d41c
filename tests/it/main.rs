//! Integration tests: the daemon against the in-process simulator on loopback port 0, with
//! a fresh SQLite file per test, and the `vastwatch` binary driven as a user would.

mod advise;
mod alerts;
mod api;
mod cli;
mod crash_loop;
mod db_faults;
mod deploy;
mod exposition;
mod faults;
mod fuzz_corpus;
mod ha;
mod helpers;
mod metrics;
mod notify;
mod notify_cli;
mod notify_crash;
mod openapi;
mod page;
mod polling;
mod postgres;
mod receiver;
mod reload;
mod rules_cli;
mod schedule_load;
mod secrets;
mod shutdown;
mod storage;
