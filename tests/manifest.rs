//! The tamper-evident history of a replay's output (`OUT/_manifest.jsonl`):
//! a tiny TwinBench log is replayed once (2 workers, signed, with a report),
//! then copies of the output are tampered with, one way each, and
//! `twinflow verify` must report exactly that, and fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use twinflow::engine::manifest::MANIFEST_FILE;
use twinflow::pipelines::replay::{ReplayOptions, replay};
use twinflow::pipelines::twinbench::{GenerateOptions, generate};

/// The signing key's seed and its public key, as key files hold them.
const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
/// Another key's public key (RFC 8032 test vector 2).
const OTHER_PUBLIC: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

/// A tiny log, its signed replay (with a report) and the key files, made once.
struct Fixture {
    log: PathBuf,
    out: PathBuf,
    sign_key: PathBuf,
    public_key: PathBuf,
    other_key: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("manifest-fixture");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let fixture = Fixture {
            log: root.join("log"),
            out: root.join("out"),
            sign_key: root.join("sign.key"),
            public_key: root.join("sign.pub"),
            other_key: root.join("other.pub"),
        };
        std::fs::write(&fixture.sign_key, format!("{SEED}\n")).unwrap();
        std::fs::write(&fixture.public_key, format!("{PUBLIC}\n")).unwrap();
        std::fs::write(&fixture.other_key, OTHER_PUBLIC).unwrap();
        generate(&GenerateOptions {
            assets: 2,
            seconds: 4,
            seed: 3,
            out: fixture.log.clone(),
            ..GenerateOptions::default()
        })
        .unwrap();
        let output = twinflow()
            .arg("replay")
            .arg(fixture.log.join("events.parquet"))
            .arg("--out")
            .arg(&fixture.out)
            .args(["--workers", "2", "--run-rows", "200", "--report"])
            .arg("--sign-key")
            .arg(&fixture.sign_key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!("Ed25519 public key {PUBLIC}")),
            "{stderr}"
        );
        fixture
    })
}

fn twinflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twinflow"))
}

/// Runs `twinflow verify DIR [--public-key KEY]`: its exit code and its
/// findings as (kind, subject) pairs, the subject being what comes before the
/// first `:` (a file's path, or `_manifest.jsonl line N`).
fn verify(dir: &Path, key: Option<&Path>) -> (i32, Vec<(String, String)>) {
    let mut command = twinflow();
    command.arg("verify").arg(dir);
    if let Some(key) = key {
        command.arg("--public-key").arg(key);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let code = output.status.code().expect("exited, not killed");
    assert_ne!(
        code,
        101,
        "verify panicked: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    if code == 0 {
        assert!(stdout.starts_with("OK: "), "{stdout}");
        return (0, Vec::new());
    }
    let findings = stdout
        .lines()
        .map(|line| {
            let (kind, rest) = line.split_once(' ').unwrap();
            let subject = rest.trim_start().split(": ").next().unwrap();
            (kind.to_owned(), subject.to_owned())
        })
        .collect();
    (code, findings)
}

/// Asserts that `dir` fails verification with exactly `expected` findings.
fn assert_findings(dir: &Path, key: Option<&Path>, expected: &[(&str, &str)]) {
    let (code, findings) = verify(dir, key);
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect();
    assert_eq!(findings, expected);
    assert_ne!(code, 0);
}

/// A copy of the fixture's output to tamper with.
fn copy_of_output() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    copy_dir(&fixture().out, &out);
    (dir, out)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn manifest_lines(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join(MANIFEST_FILE)).unwrap();
    text.lines().map(str::to_owned).collect()
}

fn write_manifest(out: &Path, lines: &[String]) {
    std::fs::write(out.join(MANIFEST_FILE), lines.join("\n") + "\n").unwrap();
}

/// The 1-based manifest line recording `path` (its latest `add`).
fn line_of(out: &Path, path: &str) -> usize {
    let needle = format!("\"path\":\"{path}\"");
    manifest_lines(out)
        .iter()
        .rposition(|l| l.contains("\"op\":\"add\"") && l.contains(&needle))
        .unwrap_or_else(|| panic!("{path} not in the manifest"))
        + 1
}

const PART: &str = "windows/part-00000.parquet";

#[test]
fn untouched_output_verifies_signed_and_unsigned() {
    let fixture = fixture();
    assert_eq!(verify(&fixture.out, None), (0, vec![]));
    assert_eq!(verify(&fixture.out, Some(&fixture.public_key)), (0, vec![]));
    let output = twinflow()
        .arg("verify")
        .arg(&fixture.out)
        .arg("--public-key")
        .arg(&fixture.public_key)
        .output()
        .unwrap();
    let ok = String::from_utf8(output.stdout).unwrap();
    assert!(
        ok.contains(&format!(
            "signed by Ed25519 key {PUBLIC} (a given public key)"
        )),
        "{ok}"
    );

    // Every dataset part of both workers, the summary and the report are
    // recorded, with Parquet row counts; two commits (replay, then report),
    // each signed.
    let lines = manifest_lines(&fixture.out);
    let ops = |op: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("{{\"op\":\"{op}\"")))
            .count()
    };
    assert_eq!((ops("commit"), ops("sign"), ops("remove")), (2, 2, 0));
    for worker in ["00000", "00001"] {
        let line = &lines[line_of(&fixture.out, &format!("windows/part-{worker}.parquet")) - 1];
        assert!(!line.contains("\"rows\":null"), "{line}");
    }
    assert!(lines[line_of(&fixture.out, "summary.json") - 1].contains("\"rows\":null"));
    line_of(&fixture.out, "report.html");
    line_of(&fixture.out, "twins/assets/part-00001.parquet");

    // An unsigned replay verifies too, but not against a public key.
    let dir = tempfile::tempdir().unwrap();
    replay(&ReplayOptions::new(
        fixture.log.join("events.parquet"),
        dir.path(),
    ))
    .unwrap();
    assert_eq!(verify(dir.path(), None), (0, vec![]));
    assert_findings(
        dir.path(),
        Some(&fixture.public_key),
        &[("unsigned", MANIFEST_FILE)],
    );
}

#[test]
fn a_modified_byte_is_reported() {
    let (_dir, out) = copy_of_output();
    let path = out.join(PART);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    assert_findings(&out, None, &[("modified", PART)]);
}

#[test]
fn a_truncated_file_is_reported() {
    let (_dir, out) = copy_of_output();
    let path = out.join(PART);
    let size = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(size - 100)
        .unwrap();
    assert_findings(&out, None, &[("truncated", PART)]);
}

#[test]
fn a_deleted_file_is_reported() {
    let (_dir, out) = copy_of_output();
    std::fs::remove_file(out.join("summary.json")).unwrap();
    assert_findings(&out, None, &[("deleted", "summary.json")]);
}

#[test]
fn an_added_file_is_reported() {
    let (_dir, out) = copy_of_output();
    let extra = "windows/part-00002.parquet";
    std::fs::copy(out.join(PART), out.join(extra)).unwrap();
    assert_findings(&out, Some(&fixture().public_key), &[("added", extra)]);
}

#[test]
fn reordered_manifest_lines_are_reported() {
    let (_dir, out) = copy_of_output();
    let mut lines = manifest_lines(&out);
    let line = line_of(&out, PART);
    lines.swap(line - 1, line);
    write_manifest(&out, &lines);
    // Only the order is wrong: read in chain order, every file still matches.
    assert_findings(
        &out,
        Some(&fixture().public_key),
        &[("reordered", MANIFEST_FILE)],
    );
}

#[test]
fn an_edited_entry_hash_is_reported() {
    // The forger's move: change a part, then write its new SHA-256 into the
    // manifest. The file matches its entry now, but the next line no longer
    // chains from the edited one.
    let (_dir, out) = copy_of_output();
    let path = out.join(PART);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let line = line_of(&out, PART);
    let mut lines = manifest_lines(&out);
    let old = serde_json::from_str::<serde_json::Value>(&lines[line - 1]).unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let new = twinflow::engine::manifest::FileRecord::hash_file(&out, PART)
        .unwrap()
        .sha256;
    lines[line - 1] = lines[line - 1].replace(&old, &hex(&new));
    write_manifest(&out, &lines);
    let next = format!("{MANIFEST_FILE} line {}", line + 1);
    assert_findings(&out, None, &[("chain", next.as_str())]);
    let (_, findings) = verify(&out, None);
    assert_eq!(findings.len(), 1);

    // An entry's `prev` edited: that line and the next no longer chain.
    let (_dir, out) = copy_of_output();
    let mut lines = manifest_lines(&out);
    let prev = serde_json::from_str::<serde_json::Value>(&lines[line - 1]).unwrap()["prev"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut forged = prev.clone().into_bytes();
    forged[0] = if forged[0] == b'0' { b'1' } else { b'0' };
    lines[line - 1] = lines[line - 1].replace(&prev, std::str::from_utf8(&forged).unwrap());
    write_manifest(&out, &lines);
    let (this, next) = (
        format!("{MANIFEST_FILE} line {line}"),
        format!("{MANIFEST_FILE} line {}", line + 1),
    );
    assert_findings(
        &out,
        None,
        &[("chain", this.as_str()), ("chain", next.as_str())],
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_corrupt_signature_or_a_wrong_key_is_reported() {
    let fixture = fixture();
    // The last line signs the report's commit: one hex digit of it changed.
    let (_dir, out) = copy_of_output();
    let mut lines = manifest_lines(&out);
    let last = lines.len() - 1;
    assert!(
        lines[last].starts_with("{\"op\":\"sign\""),
        "{}",
        lines[last]
    );
    let at = lines[last].find("\"sig\":\"").unwrap() + 7;
    let mut line = lines[last].clone().into_bytes();
    line[at] = if line[at] == b'a' { b'b' } else { b'a' };
    lines[last] = String::from_utf8(line).unwrap();
    write_manifest(&out, &lines);
    let subject = format!("{MANIFEST_FILE} line {}", last + 1);
    // Checked against the key it names, and against the given one.
    assert_findings(&out, None, &[("signature", subject.as_str())]);
    assert_findings(
        &out,
        Some(&fixture.public_key),
        &[("signature", subject.as_str())],
    );

    // Untouched, but checked against another key: every signature fails.
    let lines = manifest_lines(&fixture.out);
    let signs: Vec<String> = (0..lines.len())
        .filter(|&i| lines[i].contains("\"op\":\"sign\""))
        .map(|i| format!("{MANIFEST_FILE} line {}", i + 1))
        .collect();
    assert_eq!(signs.len(), 2);
    let expected: Vec<(&str, &str)> = signs.iter().map(|s| ("signature", s.as_str())).collect();
    assert_findings(&fixture.out, Some(&fixture.other_key), &expected);
}

#[test]
fn a_damaged_manifest_is_reported_without_panicking() {
    let (_dir, out) = copy_of_output();
    let original = manifest_lines(&out);

    // A line that is no entry: one finding for it (the break after it is its
    // consequence), and the file it recorded is then unrecorded.
    let line = line_of(&out, PART);
    let mut lines = original.clone();
    lines[line - 1] = "{\"op\":\"add\",\"path\":".to_owned();
    write_manifest(&out, &lines);
    let at = format!("{MANIFEST_FILE} line {line}");
    assert_findings(&out, None, &[("damaged", at.as_str()), ("added", PART)]);

    // A path escaping the directory.
    let mut lines = original.clone();
    lines[line - 1] = lines[line - 1].replace(PART, "../../etc/passwd");
    write_manifest(&out, &lines);
    let (code, findings) = verify(&out, None);
    assert_eq!(code, 1);
    assert!(
        findings.contains(&("damaged".into(), at.clone())),
        "{findings:?}"
    );

    // Junk, an empty manifest, none at all.
    for junk in [
        &b"\x00\xff\xfe garbage"[..],
        b"\n\n\n",
        b"[[[[[[[[[[[[\n",
        b"{}\n",
    ] {
        std::fs::write(out.join(MANIFEST_FILE), junk).unwrap();
        let (code, findings) = verify(&out, Some(&fixture().public_key));
        assert_eq!(code, 1);
        assert!(findings.iter().any(|(k, _)| k == "damaged"), "{findings:?}");
    }
    std::fs::write(out.join(MANIFEST_FILE), b"").unwrap();
    let (code, findings) = verify(&out, None);
    assert_eq!(code, 1);
    assert!(findings.iter().all(|(k, _)| k == "added"), "{findings:?}");
    std::fs::remove_file(out.join(MANIFEST_FILE)).unwrap();
    assert_findings(&out, None, &[("missing", MANIFEST_FILE)]);

    // A replay into a directory whose manifest is damaged refuses to extend it.
    std::fs::write(out.join(MANIFEST_FILE), b"not json\n").unwrap();
    let err = replay(&ReplayOptions::new(
        fixture().log.join("events.parquet"),
        &out,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("twinflow verify"), "{err}");
}

#[test]
fn a_rerun_records_what_it_removed() {
    // Two workers, then one into the same directory: as it starts, the second
    // run removes the first's part-00001 files and the summary, and says so;
    // when it ends, it records what it wrote.
    let (_dir, out) = copy_of_output();
    let before = manifest_lines(&out).len();
    replay(&ReplayOptions::new(
        fixture().log.join("events.parquet"),
        &out,
    ))
    .unwrap();
    assert_eq!(verify(&out, None), (0, vec![]));
    let lines = manifest_lines(&out);
    assert_eq!(
        lines[..before],
        manifest_lines(&fixture().out)[..],
        "history rewritten"
    );
    let commits: Vec<usize> = (before..lines.len())
        .filter(|&i| lines[i].contains("\"op\":\"commit\""))
        .collect();
    assert_eq!(
        commits.len(),
        2,
        "a commit as the run starts, one as it ends"
    );
    assert!(lines[commits[0]].contains("starting: removed earlier outputs"));
    let removed: Vec<&String> = lines[before..]
        .iter()
        .filter(|l| l.contains("\"op\":\"remove\""))
        .collect();
    assert!(removed.len() > 1);
    assert!(
        removed
            .iter()
            .all(|l| l.contains("part-00001.parquet") || l.contains("\"summary.json\"")),
        "{removed:?}"
    );
    assert!(line_of(&out, "summary.json") > commits[1]);
    assert!(!out.join(PART.replace("00000", "00001")).exists());
    // The new commit is unsigned, the earlier ones are.
    let unsigned = format!("{MANIFEST_FILE} lines {}-{}", before + 1, lines.len());
    assert_findings(
        &out,
        Some(&fixture().public_key),
        &[("unsigned", unsigned.as_str())],
    );

    // `twinflow report` appends (and signs) its own commit.
    let output = twinflow()
        .arg("report")
        .arg(&out)
        .arg("--sign-key")
        .arg(&fixture().sign_key)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(verify(&out, Some(&fixture().public_key)), (0, vec![]));
}

#[test]
fn two_processes_write_one_manifest() {
    // Both processes share OUT; only the leader records, after the gather,
    // every part of both processes' workers.
    let fixture = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let hostfile = dir.path().join("hosts.txt");
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        })
        .collect();
    let hosts: String = ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
    std::fs::write(&hostfile, hosts).unwrap();
    let processes: Vec<_> = (0..2)
        .map(|process| {
            let mut command = twinflow();
            command
                .arg("replay")
                .arg(fixture.log.join("events.parquet"))
                .arg("--out")
                .arg(&out)
                .args(["--processes", "2", "--process", &process.to_string()])
                .arg("--hostfile")
                .arg(&hostfile)
                .args(["--run-rows", "200", "--sign-key"])
                .arg(&fixture.sign_key);
            std::thread::spawn(move || command.output().unwrap())
        })
        .collect();
    for process in processes {
        let output = process.join().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(verify(&out, Some(&fixture.public_key)), (0, vec![]));
    let lines = manifest_lines(&out);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("\"op\":\"commit\""))
            .count(),
        1
    );
    line_of(&out, "windows/part-00000.parquet");
    line_of(&out, "windows/part-00001.parquet");
}
