//! The Python environment of the interop tests: tests/interop/setup.sh
//! creates it once in target/interop-venv with the packages pinned in
//! tests/interop/requirements.txt, and again whenever that file changes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment's python, set up first if needed.
pub fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let setup = Command::new("bash")
        .arg(root.join("tests/interop/setup.sh"))
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "setting up the Python environment failed: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    PathBuf::from(String::from_utf8(setup.stdout).unwrap().trim())
}
