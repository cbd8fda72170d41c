//! The SQLite store: schema migrations, batched ingest of polls, history queries and retention. Every SQL statement lives here.
