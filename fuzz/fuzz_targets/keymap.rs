//! Key map files are the user's input to the workstation. Parsing one, or merging it over
//! the shipped bindings, must never panic; key notation that parses must print back to a
//! sequence that parses to the same keys.
#![no_main]

use kefu_tui::keymap::{Keymap, format_sequence, parse_sequence};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Keymap::empty().merged("fuzz", text);
    let _ = Keymap::default_bindings().merged("fuzz", text);
    // Each line also as key notation.
    for line in text.lines().take(16) {
        if let Ok(keys) = parse_sequence(line) {
            let printed = format_sequence(&keys);
            let back = parse_sequence(&printed).unwrap_or_else(|e| panic!("{line:?} printed as {printed:?}: {e}"));
            assert_eq!(back, keys, "{line:?} printed as {printed:?}");
        }
    }
});
