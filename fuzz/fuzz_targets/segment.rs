//! SQLite audit segment bodies read back from the store (src/store/sqlite/segment.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokengate::fuzzing::segment(data));
