//! `engine::manifest::verify` over a directory whose `_manifest.jsonl` is the
//! input: the chain, signatures (one trusted key) and the recorded files
//! checked against a fixed directory of two small files. Any manifest must
//! give findings or an error, never a panic; a path in it must never lead
//! outside the directory (checked by `verify` itself).
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use twinflow_engine::manifest::{MANIFEST_FILE, parse_public_key, verify};

/// RFC 8032 test vector 1's public key; the seeds are signed with its seed.
const TRUSTED: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

/// A directory (one per process) holding the files the seeds record.
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("twinflow-fuzz-manifest-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("report")).expect("make the directory");
    std::fs::write(dir.join("summary.json"), b"{}\n").expect("write a file");
    std::fs::write(dir.join("report/index.html"), b"<p>twinflow</p>\n").expect("write a file");
    dir
});

fuzz_target!(|data: &[u8]| {
    let trusted = parse_public_key(TRUSTED.as_bytes()).expect("a valid key");
    std::fs::write(DIR.join(MANIFEST_FILE), data).expect("write the input");
    if let Ok(verification) = verify(&DIR, &[trusted]) {
        let _ = verification.is_ok();
        let _ = verification.ok_line();
    }
});
