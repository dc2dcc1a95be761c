//! The history manifest (engine::manifest): any bytes must decode to lines
//! or an error, never panic; a line that decodes hashes to its bytes. Also
//! the public key file, which comes from outside too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinflow_engine::manifest::{decode, decode_line, parse_public_key};

fuzz_target!(|data: &[u8]| {
    if let Ok(lines) = decode(data) {
        assert!(lines.len() <= data.len());
    }
    let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let _ = decode_line(first);
    let _ = parse_public_key(data);
});
