//! The control-request parser on any line: no panic, and every accepted
//! request survives a round trip through its own serialization.
#![no_main]

use chatd::core::control::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::parse(data) {
        let again = serde_json::to_vec(&req).expect("requests serialize");
        assert_eq!(Request::parse(&again), Ok(req));
    }
});
