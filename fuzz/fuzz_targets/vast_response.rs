//! Fuzz target `vast_response`: the body is [`vastwatch::fuzz::vast_response`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vastwatch::fuzz::vast_response(data));
