//! `Authorization` header values (src/auth/credential.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokengate::fuzzing::credential(data));
