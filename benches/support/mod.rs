//! Code the benchmarks share (not a benchmark itself).

pub mod fleet;
