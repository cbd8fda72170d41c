//! Simulated Vast worker-list API (SPEC §10): scenarios, and an HTTP server that answers like the real one.
