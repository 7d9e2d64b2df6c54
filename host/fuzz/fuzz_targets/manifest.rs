//! A plugin file's manifest, read without compiling it: never panics, whatever the bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = warden::runtime::manifest::read(data);
});
