//! Tests for the HTTP server.
