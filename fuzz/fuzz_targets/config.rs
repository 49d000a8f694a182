//! Config files with `TOKENGATE_*` variables (src/config).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokengate::fuzzing::config(data));
