//! Fuzz target `scenario`: the body is [`vastwatch::fuzz::scenario`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vastwatch::fuzz::scenario(data));
