//! Token strings: shape and checksum (src/token/format.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokengate::fuzzing::token(data));
