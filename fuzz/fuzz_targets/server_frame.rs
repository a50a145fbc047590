//! Clients (the workstation, the tests) parse every frame the relay sends as
//! `ServerFrame`. Parsing must never panic, and a parsed frame must round-trip.
#![no_main]

use kefu_proto::ServerFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = serde_json::from_slice::<ServerFrame>(data) else { return };
    let again = serde_json::to_string(&frame).expect("a parsed frame serialises");
    let back: ServerFrame = serde_json::from_str(&again).expect("a serialised frame parses");
    assert_eq!(back, frame);
});
