//! `cargo +nightly fuzz run compile`: any input must compile or fail with errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = policy::compile_str("fuzz.toml", text) {
            let _ = e.to_string();
        }
    }
});
