//! Fuzz target `load_files`: the body is [`vastwatch::fuzz::load_files`].

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vastwatch::fuzz::load_files(data));
