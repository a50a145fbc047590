//! Bearer headers and tokens: any bytes as an `Authorization` value. The parser never
//! panics, and what it accepts is a trimmed, visible, bounded part of the header that the
//! token hash takes.
#![no_main]

use kefu_proto::limits::{MAX_CREDENTIAL_BYTES, bearer_credential};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else { return };
    if let Some(credential) = bearer_credential(header) {
        assert!(!credential.is_empty() && credential.len() <= MAX_CREDENTIAL_BYTES);
        assert!(credential.bytes().all(|b| b.is_ascii_graphic()));
        assert!(header.contains(credential));
        let scheme = header.trim_start().split(' ').next().unwrap_or_default();
        assert!(scheme.eq_ignore_ascii_case("bearer"));
    }
});
