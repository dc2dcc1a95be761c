//! Interop: Python's pyarrow and DuckDB (pinned in tests/interop/requirements.txt,
//! installed into target/interop-venv by tests/interop/setup.sh) read every
//! Parquet output, and a DuckDB SQL computation of TwinBench's reference
//! pipeline (W, A, F, D and the final view V) straight from events.parquet and
//! the catalog equals what `twinflow replay` wrote, row by row and in the
//! summary's checksums; the twin change streams rebuild the views.

mod common;

use std::path::Path;
use std::process::Command;

fn twinflow(args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_twinflow"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "twinflow {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn duckdb_and_pyarrow_agree_with_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = common::interop::python();

    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("log"), dir.path().join("out"));
    let (log_s, out_s) = (log.to_str().unwrap(), out.to_str().unwrap());
    twinflow(&[
        "generate",
        "--assets",
        "20",
        "--seconds",
        "90",
        "--seed",
        "3",
        // Enough attacks that every verification rule has events to reject.
        "--incident-scale",
        "20",
        "--out",
        log_s,
        "--csv",
    ]);
    twinflow(&[
        "replay",
        log_s,
        "--out",
        out_s,
        "--workers",
        "2",
        "--run-rows",
        "20000",
        // DuckDB computes the spec's F: inverse-variance fusion.
        "--fusion",
        "inverse-variance",
    ]);

    let check = Command::new(&python)
        .arg(root.join("tests/interop/check.py"))
        .args([log_s, out_s])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "interop check failed:\n{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    println!("{}", String::from_utf8_lossy(&check.stdout));
}
