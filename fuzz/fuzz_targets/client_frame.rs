//! Every inbound WebSocket text frame goes through `decode_client_frame`. It must never
//! panic, and what it accepts must survive a round trip: serialised again, it decodes to
//! the same frame (a frame the relay accepted means one thing only).
#![no_main]

use kefu_proto::ErrorCode;
use kefu_proto::limits::decode_client_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(frame) = decode_client_frame(text) else { return };
    let again = serde_json::to_string(&frame).expect("an accepted frame serialises");
    match decode_client_frame(&again) {
        Ok(back) => assert_eq!(back, frame, "round trip changed the frame: {text} → {again}"),
        // Escapes can make the re-serialised text longer than a frame may be.
        Err(e) if e.code == ErrorCode::TooLarge => {}
        Err(e) => panic!("an accepted frame was refused after a round trip: {text} → {again}: {e:?}"),
    }
});
