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

/// Runs `tests/interop/<script>` with `arguments` in the environment and
/// reads the JSON it prints.
pub fn run_json(script: &str, arguments: &[&str]) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let output = Command::new(python())
        .arg(path)
        .args(arguments)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A JSON array of numbers.
pub fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}
