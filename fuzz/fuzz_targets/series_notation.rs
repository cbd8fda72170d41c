//! Fuzz target `series_notation`: the body is [`vastwatch::fuzz::series_notation`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vastwatch::fuzz::series_notation(data));
