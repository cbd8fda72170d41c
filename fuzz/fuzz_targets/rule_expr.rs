//! Fuzz target `rule_expr`: the body is [`vastwatch::fuzz::rule_expr`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vastwatch::fuzz::rule_expr(data));
