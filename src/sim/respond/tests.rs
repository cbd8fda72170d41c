//! Tests for the pure response core.
