//! Request paths and query strings, routed as Bitbucket's Tomcat routes them (src/auth/route.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokengate::fuzzing::route(data));
