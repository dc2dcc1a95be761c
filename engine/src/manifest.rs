//! A directory's tamper-evident history: a hash-chained, signable, append-only file manifest.
//!
//! # Format
//!
//! `DIR/_manifest.jsonl`, one JSON object per line, every line ending in `\n`
//! (the leading underscore makes Parquet dataset readers skip it):
//!
//! ```text
//! {"op":"commit","by":"twinflow 0.1.0 replay (twinbench-reference 0.1.0)","time_unix_us":1767225600000000,"prev":"0000000000000000000000000000000000000000000000000000000000000000"}
//! {"op":"add","path":"windows/part-00000.parquet","size":48213,"rows":1200,"sha256":"<64 hex>","prev":"<64 hex>"}
//! {"op":"add","path":"summary.json","size":512,"rows":null,"sha256":"<64 hex>","prev":"<64 hex>"}
//! {"op":"remove","path":"windows/part-00001.parquet","prev":"<64 hex>"}
//! {"op":"sign","key":"<64 hex>","sig":"<128 hex>","prev":"<64 hex>"}
//! ```
//!
//! - `prev` chains the lines: on the first line it is the genesis value, 64
//!   zeros; on every other line it is the SHA-256 (lowercase hex) of the
//!   previous line's bytes exactly as stored, without their `\n`. Hashing the
//!   stored bytes rather than a re-encoding means an outside tool needs no
//!   canonical JSON: line 4's `prev` is `sed -n 3p _manifest.jsonl | tr -d '\n' | sha256sum`.
//!   The chain head is the SHA-256 of the last line.
//! - `commit` opens what one writer appended in one go: who (`by`) and when.
//! - `add` records a committed file: `path` relative to `DIR` (`/`-separated),
//!   `size` in bytes, `rows` the data rows of a Parquet file (`null` for other
//!   files), `sha256` of the content. A later `add` of a path supersedes it.
//! - `remove` records that a file of the history was deleted on purpose.
//! - `sign` is an Ed25519 (RFC 8032) signature `sig` by public key `key` of the
//!   32 bytes that its `prev` spells, the chain head before it, so it vouches
//!   for every line above it. A writer holding the operator's key ends each
//!   commit with one.
//!
//! The directory's files are what the `add` and `remove` lines leave, read in
//! order. `twinflow verify` recomputes everything from the files and the
//! manifest ([`verify`]).
//!
//! # Re-runs
//!
//! A re-run into the same directory appends to the history, never rewrites
//! it, so every run's record stays checkable. It appends two commits: as it
//! starts, right after deleting what it will not overwrite (parts of workers
//! it no longer has, datasets it no longer writes, the summary), one with a
//! `remove` per file of the history it deleted; when it has finished, one
//! with an `add` per file it wrote, superseding the earlier lines of the
//! same paths. Per-file lines rather than a whole new listing per run,
//! because later writers add a file or two (a report, a day of history) and
//! should append only that. Removals are recorded as they happen, so a run
//! that then fails does not leave them unexplained for good (what it
//! overwrote shows as modified until a run succeeds). A writer records as
//! removed only the files that were there when it opened the history and are
//! gone when it commits: a file someone else deleted stays `deleted` for
//! `verify`, it is not blessed by the next run.
//!
//! # What it proves
//!
//! Editing, inserting, removing or reordering lines breaks the chain below
//! them. The last lines are protected only by a signature (with a key kept
//! away from the directory) or by a chain head kept elsewhere (`verify`
//! prints it): a directory rolled back whole to an earlier consistent state,
//! manifest included, is otherwise indistinguishable from that state.
//!
//! # Keys
//!
//! A signing key file holds the 32-byte Ed25519 seed (the RFC 8032 secret
//! key) as 64 hex digits, e.g. made with `openssl rand -hex 32 > sign.key`;
//! a public key file holds the 32-byte public key as 64 hex digits (replay
//! prints it when it signs). Whitespace around the digits is ignored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Component, Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::sink::Committed;

/// The manifest's file name inside the directory it describes.
pub const MANIFEST_FILE: &str = "_manifest.jsonl";

/// The `prev` of the first line.
pub const GENESIS: Hash = [0; 32];

/// A manifest larger than this is refused unread (about 200 000 lines of ~300
/// bytes), so a hostile file cannot make a reader allocate without bound.
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;

/// Longest line accepted; twinflow writes lines of a few hundred bytes.
pub const MAX_LINE_BYTES: usize = 16 << 10;

/// Damaged lines `verify` reports before it stops reading the manifest.
const MAX_DAMAGED_LINES: usize = 100;

/// Longest path accepted in an entry.
const MAX_PATH_BYTES: usize = 4096;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// A file as recorded by an `add` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Relative to the directory, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Data rows of a Parquet file; `None` for other files.
    pub rows: Option<u64>,
    pub sha256: Hash,
}

impl FileRecord {
    /// The record of a Parquet file committed under `dir` (hashed while written).
    pub fn committed(dir: &Path, committed: &Committed) -> Result<FileRecord> {
        Ok(FileRecord {
            path: relative(dir, &committed.path)?,
            size: committed.size,
            rows: Some(committed.rows),
            sha256: committed.sha256,
        })
    }

    /// The record of a small non-Parquet file under `dir` (summary, report),
    /// hashed by reading it.
    pub fn hash_file(dir: &Path, path: &str) -> Result<FileRecord> {
        check_path(path).map_err(|e| Error::Config(format!("{path:?}: {e}")))?;
        let full = dir.join(path);
        let (size, sha256) = hash_file(&full).map_err(|e| Error::io(&full, e))?;
        Ok(FileRecord {
            path: path.to_owned(),
            size,
            rows: None,
            sha256,
        })
    }
}

/// What one manifest line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Commit { by: String, time_unix_us: i64 },
    Add(FileRecord),
    Remove { path: String },
    Sign { key: [u8; 32], sig: [u8; 64] },
}

impl Entry {
    /// The path an `add` or `remove` line concerns.
    pub fn path(&self) -> Option<&str> {
        match self {
            Entry::Add(record) => Some(&record.path),
            Entry::Remove { path } => Some(path),
            _ => None,
        }
    }
}

/// A decoded manifest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The `prev` it claims.
    pub prev: Hash,
    pub entry: Entry,
    /// SHA-256 of the line's bytes: the next line's `prev`.
    pub hash: Hash,
}

/// Why manifest bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("line {line} is incomplete (no newline: an interrupted write?)")]
    Incomplete { line: usize },
}

/// Decodes manifest bytes into lines, checking each line's form (not the
/// chain: see [`verify`]). Any input gives lines or an error, never a panic,
/// and allocation stays proportional to the input, which is at most
/// [`MAX_MANIFEST_BYTES`].
pub fn decode(bytes: &[u8]) -> std::result::Result<Vec<Line>, DecodeError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(DecodeError::TooLarge);
    }
    let mut lines = Vec::new();
    for text in Lines(bytes) {
        let line = lines.len() + 1;
        let text = text.map_err(|_| DecodeError::Incomplete { line })?;
        lines.push(decode_line(text).map_err(|message| DecodeError::Line { line, message })?);
    }
    Ok(lines)
}

/// The lines of manifest bytes, without their `\n`, read lazily (so a reader
/// can stop early); an unterminated last line comes as `Err` with its bytes.
struct Lines<'a>(&'a [u8]);

impl<'a> Iterator for Lines<'a> {
    type Item = std::result::Result<&'a [u8], &'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let (line, rest) = (&self.0[..end], &self.0[end + 1..]);
                self.0 = rest;
                Ok(line)
            }
            None => Err(std::mem::take(&mut self.0)),
        })
    }
}

/// Decodes one line (without its `\n`).
pub fn decode_line(text: &[u8]) -> std::result::Result<Line, String> {
    if text.len() > MAX_LINE_BYTES {
        return Err(format!("longer than {MAX_LINE_BYTES} bytes"));
    }
    let fields: Fields =
        serde_json::from_slice(text).map_err(|e| format!("not a manifest entry: {e}"))?;
    let prev = hex_array(&fields.prev, "prev")?;
    let entry = fields.into_entry()?;
    Ok(Line {
        prev,
        entry,
        hash: Sha256::digest(text).into(),
    })
}

/// Every field any line may have; [`Fields::into_entry`] checks which belong.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    op: String,
    prev: String,
    by: Option<String>,
    time_unix_us: Option<i64>,
    path: Option<String>,
    size: Option<u64>,
    // Present-but-null (a non-Parquet file) differs from absent.
    #[serde(default, deserialize_with = "present")]
    rows: Option<Option<u64>>,
    sha256: Option<String>,
    key: Option<String>,
    sig: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

impl Fields {
    fn into_entry(self) -> std::result::Result<Entry, String> {
        let op = self.op.as_str();
        let given = [
            ("by", self.by.is_some()),
            ("time_unix_us", self.time_unix_us.is_some()),
            ("path", self.path.is_some()),
            ("size", self.size.is_some()),
            ("rows", self.rows.is_some()),
            ("sha256", self.sha256.is_some()),
            ("key", self.key.is_some()),
            ("sig", self.sig.is_some()),
        ];
        let allowed: &[&str] = match op {
            "commit" => &["by", "time_unix_us"],
            "add" => &["path", "size", "rows", "sha256"],
            "remove" => &["path"],
            "sign" => &["key", "sig"],
            _ => return Err(format!("unknown op {op:?}")),
        };
        for (name, is_given) in given {
            if is_given != allowed.contains(&name) {
                let verb = if is_given { "has" } else { "lacks" };
                return Err(format!("a {op:?} entry that {verb} `{name}`"));
            }
        }
        let path = |p: Option<String>| -> std::result::Result<String, String> {
            let p = p.unwrap_or_default();
            check_path(&p).map_err(|e| format!("path {p:?}: {e}"))?;
            Ok(p)
        };
        // Every field was checked present above, so the defaults are never used.
        Ok(match op {
            "commit" => Entry::Commit {
                by: self.by.unwrap_or_default(),
                time_unix_us: self.time_unix_us.unwrap_or_default(),
            },
            "add" => Entry::Add(FileRecord {
                path: path(self.path)?,
                size: self.size.unwrap_or_default(),
                rows: self.rows.flatten(),
                sha256: hex_array(&self.sha256.unwrap_or_default(), "sha256")?,
            }),
            "remove" => Entry::Remove {
                path: path(self.path)?,
            },
            _ => Entry::Sign {
                key: hex_array(&self.key.unwrap_or_default(), "key")?,
                sig: hex_array(&self.sig.unwrap_or_default(), "sig")?,
            },
        })
    }
}

/// Decodes exactly `N` bytes written as `2N` lowercase hex digits.
fn hex_array<const N: usize>(text: &str, field: &str) -> std::result::Result<[u8; N], String> {
    let mut out = [0u8; N];
    let canonical =
        text.len() == 2 * N && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !canonical || hex::decode_to_slice(text, &mut out).is_err() {
        return Err(format!("`{field}` is not {} lowercase hex digits", 2 * N));
    }
    Ok(out)
}

/// A path an entry may name: relative, `/`-separated, inside the directory,
/// and not the manifest itself. Checked on reading too, so a hand-edited
/// manifest cannot make `verify` read a file outside the directory.
fn check_path(path: &str) -> std::result::Result<(), &'static str> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return Err("empty or too long");
    }
    if path.contains(['\\', '\0']) {
        return Err("has a backslash or NUL");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err("not a plain relative path inside the directory");
    }
    if path == MANIFEST_FILE {
        return Err("names the manifest itself");
    }
    Ok(())
}

/// `path` relative to `dir`, `/`-separated.
fn relative(dir: &Path, path: &Path) -> Result<String> {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    let mut parts = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => {
                parts.push(part.to_str().ok_or_else(|| {
                    Error::Config(format!("{}: not a UTF-8 path", path.display()))
                })?)
            }
            Component::CurDir => {}
            _ => {
                return Err(Error::Config(format!(
                    "{}: not inside {}",
                    path.display(),
                    dir.display()
                )));
            }
        }
    }
    let rel = parts.join("/");
    check_path(&rel).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    Ok(rel)
}

/// The bytes of one line (without `\n`) as twinflow writes it: fields in a
/// fixed order, `prev` last.
fn encode_line(prev: &Hash, entry: &Entry) -> Vec<u8> {
    #[derive(Serialize)]
    struct CommitLine<'a> {
        op: &'static str,
        by: &'a str,
        time_unix_us: i64,
        prev: String,
    }
    #[derive(Serialize)]
    struct AddLine<'a> {
        op: &'static str,
        path: &'a str,
        size: u64,
        rows: Option<u64>,
        sha256: String,
        prev: String,
    }
    #[derive(Serialize)]
    struct RemoveLine<'a> {
        op: &'static str,
        path: &'a str,
        prev: String,
    }
    #[derive(Serialize)]
    struct SignLine {
        op: &'static str,
        key: String,
        sig: String,
        prev: String,
    }
    let prev = hex::encode(prev);
    let line = match entry {
        Entry::Commit { by, time_unix_us } => serde_json::to_vec(&CommitLine {
            op: "commit",
            by,
            time_unix_us: *time_unix_us,
            prev,
        }),
        Entry::Add(r) => serde_json::to_vec(&AddLine {
            op: "add",
            path: &r.path,
            size: r.size,
            rows: r.rows,
            sha256: hex::encode(r.sha256),
            prev,
        }),
        Entry::Remove { path } => serde_json::to_vec(&RemoveLine {
            op: "remove",
            path,
            prev,
        }),
        Entry::Sign { key, sig } => serde_json::to_vec(&SignLine {
            op: "sign",
            key: hex::encode(key),
            sig: hex::encode(sig),
            prev,
        }),
    };
    line.expect("plain structs serialize")
}

/// Size and SHA-256 of a file, read in chunks.
fn hash_file(path: &Path) -> std::io::Result<(u64, Hash)> {
    let mut file = File::open(path)?;
    let mut sha256 = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                sha256.update(&buffer[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((size, sha256.finalize().into()))
}

/// Reads a file of at most `max` bytes (`None` when it does not exist).
fn read_bounded(path: &Path, max: usize) -> Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() > max {
        return Err(Error::format(path, format!("larger than {max} bytes")));
    }
    Ok(Some(bytes))
}

// ---------------------------------------------------------------------------
// Keys

/// Reads an Ed25519 signing key: a file holding the 32-byte seed as 64 hex digits.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let mut text = read_key_file(path)?;
    let seed = parse_key_hex(&text);
    // The seed's hex copy is cleared; the key itself zeroizes on drop.
    text.fill(0);
    let seed = seed.map_err(|e| Error::format(path, format!("not an Ed25519 signing key: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads an Ed25519 public key: a file holding its 32 bytes as 64 hex digits.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let text = read_key_file(path)?;
    parse_public_key(&text)
        .map_err(|e| Error::format(path, format!("not an Ed25519 public key: {e}")))
}

/// Parses the contents of a public key file (see [`read_public_key`]).
pub fn parse_public_key(text: &[u8]) -> std::result::Result<VerifyingKey, String> {
    let bytes = parse_key_hex(text)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not a point of the curve".to_owned())
}

/// A public key as 64 lowercase hex digits, as key files and the manifest spell it.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    read_bounded(path, 1024)?
        .ok_or_else(|| Error::io(path, std::io::Error::from(ErrorKind::NotFound)))
}

fn parse_key_hex(text: &[u8]) -> std::result::Result<[u8; 32], String> {
    let trimmed = text.trim_ascii();
    let mut key = [0u8; 32];
    if trimmed.len() != 64 || hex::decode_to_slice(trimmed, &mut key).is_err() {
        // The text is not echoed: it may be a secret.
        return Err("expected 64 hex digits".to_owned());
    }
    Ok(key)
}

// ---------------------------------------------------------------------------
// Writing

/// A directory's history, opened for appending commits.
#[derive(Debug)]
pub struct History {
    dir: PathBuf,
    /// The manifest as read (and as last written by this value).
    bytes: Vec<u8>,
    head: Hash,
    live: BTreeMap<String, FileRecord>,
    /// The files of `live` that were there when the history was opened: of
    /// these, the ones gone at the commit were deleted by this writer.
    present: BTreeSet<String>,
}

impl History {
    /// Reads `dir`'s manifest (none yet is an empty history) and notes which
    /// of its files are there, so open it before deleting any. A manifest
    /// that does not decode or whose chain is broken is an error: a writer
    /// never extends a damaged history, which would blur what was altered.
    pub fn open(dir: &Path) -> Result<History> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = read_bounded(&path, MAX_MANIFEST_BYTES)?.unwrap_or_default();
        let damaged = |message: String| {
            Error::format(
                &path,
                format!(
                    "{message}; `twinflow verify {}` says more, and moving the manifest aside starts a new history",
                    dir.display()
                ),
            )
        };
        let lines = decode(&bytes).map_err(|e| damaged(e.to_string()))?;
        let mut head = GENESIS;
        let mut live = BTreeMap::new();
        for (i, line) in lines.into_iter().enumerate() {
            if line.prev != head {
                return Err(damaged(format!(
                    "line {} does not chain from the line before it",
                    i + 1
                )));
            }
            head = line.hash;
            match line.entry {
                Entry::Add(record) => {
                    live.insert(record.path.clone(), record);
                }
                Entry::Remove { path } => {
                    live.remove(&path);
                }
                _ => {}
            }
        }
        let present = live
            .keys()
            .filter(|p| dir.join(p.as_str()).is_file())
            .cloned()
            .collect();
        Ok(History {
            dir: dir.to_path_buf(),
            bytes,
            head,
            live,
            present,
        })
    }

    /// The files the history holds now, by path.
    pub fn files(&self) -> &BTreeMap<String, FileRecord> {
        &self.live
    }

    /// The chain head: SHA-256 of the last line ([`GENESIS`] when empty).
    pub fn head(&self) -> Hash {
        self.head
    }

    /// Appends one commit by `by`: a `remove` for each file of the history
    /// that was there when it was opened and is gone now (unless `added`
    /// holds it again), an `add` for each of `added`, and a `sign` line when
    /// a key is given; nothing when there is nothing to remove or add. Files
    /// gone before the opening stay unexplained, for `verify` to report. The
    /// manifest is replaced atomically (written aside, synced, renamed), so it
    /// is never seen half-written; it must not have changed since it was read.
    pub fn commit(
        &mut self,
        by: &str,
        mut added: Vec<FileRecord>,
        key: Option<&SigningKey>,
    ) -> Result<()> {
        let path = self.dir.join(MANIFEST_FILE);
        let current = read_bounded(&path, MAX_MANIFEST_BYTES)?.unwrap_or_default();
        if current != self.bytes {
            return Err(Error::format(
                &path,
                "changed by someone else while this writer held it; nothing was recorded",
            ));
        }
        added.sort_by(|a, b| a.path.cmp(&b.path));
        added.dedup_by(|a, b| a.path == b.path);
        let gone: Vec<String> = self
            .present
            .iter()
            .filter(|p| added.binary_search_by(|a| a.path.cmp(p)).is_err())
            .filter(|p| !self.dir.join(p.as_str()).exists())
            .cloned()
            .collect();
        if gone.is_empty() && added.is_empty() {
            return Ok(());
        }

        let time_unix_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let mut entries = vec![Entry::Commit {
            by: by.to_owned(),
            time_unix_us,
        }];
        entries.extend(gone.into_iter().map(|path| Entry::Remove { path }));
        entries.extend(added.into_iter().map(Entry::Add));
        let mut bytes = self.bytes.clone();
        let mut head = self.head;
        let mut append = |entry: &Entry, head: &mut Hash| {
            let line = encode_line(head, entry);
            *head = Sha256::digest(&line).into();
            bytes.extend_from_slice(&line);
            bytes.push(b'\n');
        };
        for entry in &entries {
            append(entry, &mut head);
        }
        if let Some(key) = key {
            let sign = Entry::Sign {
                key: key.verifying_key().to_bytes(),
                sig: key.sign(&head).to_bytes(),
            };
            append(&sign, &mut head);
        }

        let tmp = self.dir.join(format!(".{MANIFEST_FILE}.tmp"));
        std::fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, e))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        // The rename is durable once the directory is synced.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }

        for entry in entries {
            match entry {
                Entry::Add(record) => {
                    self.live.insert(record.path.clone(), record);
                }
                Entry::Remove { path } => {
                    self.live.remove(&path);
                }
                _ => {}
            }
        }
        self.present = self
            .live
            .keys()
            .filter(|p| self.dir.join(p.as_str()).is_file())
            .cloned()
            .collect();
        self.bytes = bytes;
        self.head = head;
        Ok(())
    }
}

/// Appends one commit adding the files `paths` (relative to `dir`, not
/// Parquet) to `dir`'s history, e.g. a report written after a run.
pub fn record_files(dir: &Path, by: &str, paths: &[&str], key: Option<&SigningKey>) -> Result<()> {
    let mut history = History::open(dir)?;
    let files = paths
        .iter()
        .map(|p| FileRecord::hash_file(dir, p))
        .collect::<Result<Vec<_>>>()?;
    history.commit(by, files, key)
}

// ---------------------------------------------------------------------------
// Verifying

/// One thing `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A file whose content differs from its record (same size, or larger).
    Modified {
        path: String,
        line: usize,
        size: u64,
        recorded: u64,
    },
    /// A file shorter than its record.
    Truncated {
        path: String,
        line: usize,
        size: u64,
        recorded: u64,
    },
    /// A recorded file that is gone (or is no longer a file).
    Deleted { path: String, line: usize },
    /// A file the history does not hold.
    Added { path: String },
    /// Manifest lines that chain correctly, but not in the order stored.
    Reordered {
        lines: Vec<usize>,
        chain_order: Vec<usize>,
    },
    /// A line whose `prev` is not the hash of the line before it.
    ChainBroken { line: usize, previous: String },
    /// A line (or the whole manifest, `line` 0) that does not decode, or
    /// says something impossible.
    Damaged { line: usize, message: String },
    /// A `sign` line whose signature does not hold, or is by an untrusted key.
    BadSignature { line: usize, message: String },
    /// Lines after the last `sign` line, when public keys are given.
    Unsigned { from: usize, to: usize },
    /// No `sign` line at all, when public keys are given.
    NotSigned,
    /// The directory has no manifest.
    NoManifest,
}

impl Finding {
    /// A one-word name of the kind of finding, as printed first on its line.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Modified { .. } => "modified",
            Finding::Truncated { .. } => "truncated",
            Finding::Deleted { .. } => "deleted",
            Finding::Added { .. } => "added",
            Finding::Reordered { .. } => "reordered",
            Finding::ChainBroken { .. } => "chain",
            Finding::Damaged { .. } => "damaged",
            Finding::BadSignature { .. } => "signature",
            Finding::Unsigned { .. } | Finding::NotSigned => "unsigned",
            Finding::NoManifest => "missing",
        }
    }

    /// The file a finding is about, when it is about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Finding::Modified { path, .. }
            | Finding::Truncated { path, .. }
            | Finding::Deleted { path, .. }
            | Finding::Added { path } => Some(path),
            _ => None,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = MANIFEST_FILE;
        write!(f, "{:<9} ", self.kind())?;
        match self {
            Finding::Modified {
                path,
                line,
                size,
                recorded,
            } if size == recorded => write!(
                f,
                "{path}: content differs from the SHA-256 recorded at {m} line {line}"
            ),
            Finding::Modified {
                path,
                line,
                size,
                recorded,
            }
            | Finding::Truncated {
                path,
                line,
                size,
                recorded,
            } => write!(
                f,
                "{path}: {size} bytes, {m} line {line} records {recorded}"
            ),
            Finding::Deleted { path, line } => {
                write!(f, "{path}: recorded at {m} line {line}, missing")
            }
            Finding::Added { path } => write!(f, "{path}: not recorded in {m}"),
            Finding::Reordered { lines, chain_order } => write!(
                f,
                "{m}: lines {} are out of chain order (they chain as {})",
                join(lines),
                join(chain_order)
            ),
            Finding::ChainBroken { line: 1, .. } => {
                write!(
                    f,
                    "{m} line 1: does not start from the genesis value (64 zeros)"
                )
            }
            Finding::ChainBroken { line, previous } => write!(
                f,
                "{m} line {line}: does not chain from line {} ({previous}): that line was altered, or lines were removed or inserted between them",
                line - 1
            ),
            Finding::Damaged { line: 0, message } => write!(f, "{m}: {message}"),
            Finding::Damaged { line, message } => write!(f, "{m} line {line}: {message}"),
            Finding::BadSignature { line, message } => write!(f, "{m} line {line}: {message}"),
            Finding::NotSigned => write!(f, "{m}: not signed"),
            Finding::Unsigned { from, to } => write!(
                f,
                "{m} lines {from}-{to}: not covered by a signature of a given public key"
            ),
            Finding::NoManifest => write!(f, "{m}: no manifest in this directory"),
        }
    }
}

fn join(numbers: &[usize]) -> String {
    numbers
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`verify`] found.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Manifest findings first (by line), then file findings (by path).
    pub findings: Vec<Finding>,
    /// Manifest lines.
    pub lines: usize,
    /// Files the history holds.
    pub files: usize,
    /// SHA-256 of the last line: keep it elsewhere to detect a rollback.
    pub head: Hash,
    /// Keys of the `sign` lines that hold, in order of first use.
    pub signed_by: Vec<[u8; 32]>,
    /// Whether they were checked against given public keys.
    pub keys_given: bool,
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// The line `twinflow verify` prints when there is no finding.
    pub fn ok_line(&self) -> String {
        let signed = match (self.signed_by.as_slice(), self.keys_given) {
            ([], _) => "not signed".to_owned(),
            (keys, given) => format!(
                "signed by Ed25519 key {}{}",
                keys.iter().map(hex::encode).collect::<Vec<_>>().join(", "),
                if given {
                    " (a given public key)"
                } else {
                    " (no public key given to check it against)"
                }
            ),
        };
        format!(
            "OK: {} files match {MANIFEST_FILE} ({} lines, chain head {}), {signed}",
            self.files,
            self.lines,
            hex::encode(self.head)
        )
    }
}

/// Checks `dir` against its manifest: the chain, the signatures (against
/// `trusted` keys when any are given: then every line must be covered by one
/// of theirs; else each against the key it names), and every file, recorded
/// or not. Errors are only failures to read; everything found wrong is a
/// [`Finding`].
pub fn verify(dir: &Path, trusted: &[VerifyingKey]) -> Result<Verification> {
    let mut verification = Verification {
        findings: Vec::new(),
        lines: 0,
        files: 0,
        head: GENESIS,
        signed_by: Vec::new(),
        keys_given: !trusted.is_empty(),
    };
    if !dir.is_dir() {
        return Err(Error::io(dir, std::io::Error::from(ErrorKind::NotFound)));
    }
    let path = dir.join(MANIFEST_FILE);
    let bytes = match std::fs::metadata(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            verification.findings.push(Finding::NoManifest);
            return Ok(verification);
        }
        Err(e) => return Err(Error::io(&path, e)),
        Ok(m) if m.len() > MAX_MANIFEST_BYTES as u64 => {
            verification.findings.push(Finding::Damaged {
                line: 0,
                message: format!("larger than {MAX_MANIFEST_BYTES} bytes, not read"),
            });
            return Ok(verification);
        }
        Ok(_) => read_bounded(&path, MAX_MANIFEST_BYTES)?.unwrap_or_default(),
    };
    let findings = &mut verification.findings;

    let mut hashes: Vec<Hash> = Vec::new();
    let mut lines: Vec<Option<Line>> = Vec::new();
    let mut damaged = 0;
    for text in Lines(&bytes) {
        let number = lines.len() + 1;
        let Ok(text) = text else {
            findings.push(Finding::Damaged {
                line: number,
                message: "incomplete (no newline: an interrupted write?); not read".into(),
            });
            break;
        };
        match decode_line(text) {
            Ok(line) => lines.push(Some(line)),
            // Damaged lines are kept (their hashes still chain), but only so
            // many: a file of newlines must not cost memory per byte.
            Err(_) if damaged == MAX_DAMAGED_LINES => {
                findings.push(Finding::Damaged {
                    line: number,
                    message: format!(
                        "{MAX_DAMAGED_LINES} lines above are damaged already; the rest is not read"
                    ),
                });
                break;
            }
            Err(message) => {
                damaged += 1;
                findings.push(Finding::Damaged {
                    line: number,
                    message,
                });
                lines.push(None);
            }
        }
        hashes.push(Sha256::digest(text).into());
    }
    verification.lines = lines.len();
    verification.head = hashes.last().copied().unwrap_or(GENESIS);

    let order = chain_order(&lines, &hashes, findings);
    let live = fold(&lines, &order, findings);
    check_signatures(&lines, &order, trusted, &mut verification);
    let findings = &mut verification.findings;
    verification.files = live.len();
    check_files(dir, &live, findings)?;
    Ok(verification)
}

/// The order in which to read the lines: as stored when the chain holds (or
/// is broken beyond repair, each break then a finding), else the order in
/// which they chain when they are all there, only shuffled.
fn chain_order(lines: &[Option<Line>], hashes: &[Hash], findings: &mut Vec<Finding>) -> Vec<usize> {
    let stored: Vec<usize> = (0..lines.len()).collect();
    let expected = |i: usize| if i == 0 { GENESIS } else { hashes[i - 1] };
    let breaks: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            // A damaged line is a finding already: the break after it is its
            // consequence, and its own `prev` cannot be read.
            let after_damaged = i > 0 && lines[i - 1].is_none();
            matches!(&lines[i], Some(line) if line.prev != expected(i) && !after_damaged)
        })
        .collect();
    if breaks.is_empty() {
        return stored;
    }
    if lines.iter().all(Option::is_some) {
        // Follow the chain from the genesis through whichever line claims
        // each predecessor; if that visits every line once, only the order
        // is wrong.
        let mut next: HashMap<Hash, usize> = HashMap::new();
        let mut unique = true;
        for (i, line) in lines.iter().enumerate() {
            if let Some(line) = line {
                unique &= next.insert(line.prev, i).is_none();
            }
        }
        let mut order = Vec::with_capacity(lines.len());
        let mut head = GENESIS;
        while unique && order.len() < lines.len() {
            let Some(&i) = next.get(&head) else { break };
            order.push(i);
            head = hashes[i];
        }
        if unique && order.len() == lines.len() {
            let misplaced: Vec<usize> = (0..order.len()).filter(|&k| order[k] != k).collect();
            findings.push(Finding::Reordered {
                lines: misplaced.iter().map(|&k| k + 1).collect(),
                chain_order: misplaced.iter().map(|&k| order[k] + 1).collect(),
            });
            return order;
        }
    }
    for i in breaks {
        let previous = match i.checked_sub(1).and_then(|p| lines[p].as_ref()) {
            None if i == 0 => "the genesis".to_owned(),
            None => "damaged".to_owned(),
            Some(line) => describe(&line.entry),
        };
        findings.push(Finding::ChainBroken {
            line: i + 1,
            previous,
        });
    }
    stored
}

fn describe(entry: &Entry) -> String {
    match entry {
        Entry::Commit { by, .. } => format!("commit by {by}"),
        Entry::Add(record) => format!("add {}", record.path),
        Entry::Remove { path } => format!("remove {path}"),
        Entry::Sign { .. } => "sign".to_owned(),
    }
}

/// The files the history holds after reading the lines in `order`, each with
/// the (1-based) line of its record.
fn fold<'a>(
    lines: &'a [Option<Line>],
    order: &[usize],
    findings: &mut Vec<Finding>,
) -> BTreeMap<&'a str, (usize, &'a FileRecord)> {
    let mut live = BTreeMap::new();
    for &i in order {
        match lines[i].as_ref().map(|l| &l.entry) {
            Some(Entry::Add(record)) => {
                live.insert(record.path.as_str(), (i + 1, record));
            }
            Some(Entry::Remove { path }) => {
                let held = live.remove(path.as_str());
                if held.is_none() {
                    findings.push(Finding::Damaged {
                        line: i + 1,
                        message: format!("removes {path}, which the history does not hold"),
                    });
                }
            }
            _ => {}
        }
    }
    live
}

/// Checks every `sign` line, and with trusted keys that every line is covered.
fn check_signatures(
    lines: &[Option<Line>],
    order: &[usize],
    trusted: &[VerifyingKey],
    verification: &mut Verification,
) {
    let mut last_sign = None;
    for (position, &i) in order.iter().enumerate() {
        let Some(Line {
            prev,
            entry: Entry::Sign { key, sig },
            ..
        }) = &lines[i]
        else {
            continue;
        };
        last_sign = Some(position);
        let message = if !trusted.is_empty() && !trusted.iter().any(|t| t.as_bytes() == key) {
            Some(format!(
                "signed by key {}, not a given public key",
                hex::encode(key)
            ))
        } else {
            match VerifyingKey::from_bytes(key) {
                Err(_) => Some(format!(
                    "key {} is not an Ed25519 public key",
                    hex::encode(key)
                )),
                Ok(k) => k
                    .verify_strict(prev, &Signature::from_bytes(sig))
                    .err()
                    .map(|_| format!("signature does not verify with key {}", hex::encode(key))),
            }
        };
        match message {
            Some(message) => verification.findings.push(Finding::BadSignature {
                line: i + 1,
                message,
            }),
            None if !verification.signed_by.contains(key) => verification.signed_by.push(*key),
            None => {}
        }
    }
    if trusted.is_empty() {
        return;
    }
    match last_sign {
        None => verification.findings.push(Finding::NotSigned),
        Some(position) if position + 1 < order.len() => {
            verification.findings.push(Finding::Unsigned {
                from: position + 2,
                to: order.len(),
            })
        }
        Some(_) => {}
    }
}

/// Compares every recorded file with the directory, and lists the files not recorded.
fn check_files(
    dir: &Path,
    live: &BTreeMap<&str, (usize, &FileRecord)>,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let mut file_findings = Vec::new();
    for (&path, &(line, record)) in live {
        let full = dir.join(path);
        let metadata = match std::fs::metadata(&full) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                file_findings.push(Finding::Deleted {
                    path: path.to_owned(),
                    line,
                });
                continue;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                file_findings.push(Finding::Deleted {
                    path: path.to_owned(),
                    line,
                });
                continue;
            }
            Err(e) => return Err(Error::io(&full, e)),
        };
        let (size, recorded) = (metadata.len(), record.size);
        let path = path.to_owned();
        if size < recorded {
            file_findings.push(Finding::Truncated {
                path,
                line,
                size,
                recorded,
            });
        } else if size > recorded
            || hash_file(&full).map_err(|e| Error::io(&full, e))? != (recorded, record.sha256)
        {
            file_findings.push(Finding::Modified {
                path,
                line,
                size,
                recorded,
            });
        }
    }
    for path in files_under(dir)? {
        if path != MANIFEST_FILE && !live.contains_key(path.as_str()) {
            file_findings.push(Finding::Added { path });
        }
    }
    file_findings.sort_by(|a, b| a.path().cmp(&b.path()));
    findings.extend(file_findings);
    Ok(())
}

/// Every file under `dir` (anything but a directory; symbolic links are not
/// followed), relative and `/`-separated, names that are not UTF-8 shown lossily.
fn files_under(dir: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((full, rel)) = pending.pop() {
        for entry in std::fs::read_dir(&full).map_err(|e| Error::io(&full, e))? {
            let entry = entry.map_err(|e| Error::io(&full, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let child = if rel.is_empty() {
                name.into_owned()
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            if kind.is_dir() {
                pending.push((entry.path(), child));
            } else {
                files.push(child);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    use crate::sink::ParquetFile;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32])
    }

    fn write(dir: &Path, path: &str, content: &[u8]) -> FileRecord {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        FileRecord::hash_file(dir, path).unwrap()
    }

    fn kinds(v: &Verification) -> Vec<(&'static str, Option<&str>)> {
        v.findings.iter().map(|f| (f.kind(), f.path())).collect()
    }

    #[test]
    fn parquet_commit_hashes_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let mut file =
            ParquetFile::create(&dir.path().join("d/part-00000.parquet"), schema.clone()).unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(0..1000))],
        )
        .unwrap();
        file.write(&batch).unwrap();
        file.write(&batch).unwrap();
        let committed = file.commit().unwrap();
        let record = FileRecord::committed(dir.path(), &committed).unwrap();
        let read = FileRecord::hash_file(dir.path(), "d/part-00000.parquet").unwrap();
        assert_eq!(record.rows, Some(2000));
        assert_eq!(
            (record.path.as_str(), record.size, record.sha256),
            (read.path.as_str(), read.size, read.sha256)
        );
    }

    #[test]
    fn lines_chain_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a/part-00000.parquet", b"alpha");
        let b = write(dir.path(), "b.json", b"{}");
        let mut history = History::open(dir.path()).unwrap();
        history
            .commit("test", vec![b.clone(), a.clone()], Some(&key(7)))
            .unwrap();
        let bytes = std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap();
        let lines = decode(&bytes).unwrap();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].prev, GENESIS);
        for pair in lines.windows(2) {
            assert_eq!(pair[1].prev, pair[0].hash);
        }
        // Sorted by path; every line re-encodes to the bytes stored.
        assert_eq!(lines[1].entry, Entry::Add(a));
        assert_eq!(lines[2].entry, Entry::Add(b));
        for (line, text) in lines.iter().zip(bytes.split(|&b| b == b'\n')) {
            assert_eq!(encode_line(&line.prev, &line.entry), text);
        }
        // The documented outside check: line k's prev is SHA-256 of line k-1.
        let text = String::from_utf8(bytes).unwrap();
        let second: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        let first_hash = hex::encode(Sha256::digest(text.lines().next().unwrap().as_bytes()));
        assert_eq!(second["prev"], first_hash);
        assert_eq!(History::open(dir.path()).unwrap().head(), history.head());
        let v = verify(dir.path(), &[key(7).verifying_key()]).unwrap();
        assert!(v.is_ok(), "{:?}", v.findings);
        assert!(v.ok_line().starts_with("OK: 2 files"), "{}", v.ok_line());
    }

    #[test]
    fn rerun_supersedes_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let first = vec![
            write(dir.path(), "w/part-00000.parquet", b"0"),
            write(dir.path(), "w/part-00001.parquet", b"1"),
            write(dir.path(), "summary.json", b"s1"),
        ];
        let mut history = History::open(dir.path()).unwrap();
        history.commit("run 1", first, None).unwrap();

        // Run 2 has one worker: it opens the history, deletes part 1 and the
        // summary, and writes part 0 and the summary again.
        let mut history = History::open(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join("w/part-00001.parquet")).unwrap();
        std::fs::remove_file(dir.path().join("summary.json")).unwrap();
        let second = vec![
            write(dir.path(), "w/part-00000.parquet", b"zero"),
            write(dir.path(), "summary.json", b"s2"),
        ];
        history.commit("run 2", second, None).unwrap();
        assert_eq!(history.files().len(), 2);

        let text = std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap();
        let ops: Vec<_> = decode(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|l| describe(&l.entry))
            .collect();
        assert_eq!(
            ops[4..],
            [
                "commit by run 2",
                "remove w/part-00001.parquet",
                "add summary.json",
                "add w/part-00000.parquet"
            ]
        );
        let v = verify(dir.path(), &[]).unwrap();
        assert!(v.is_ok(), "{:?}", v.findings);

        // A file deleted by someone else is not blessed by the next run.
        std::fs::remove_file(dir.path().join("summary.json")).unwrap();
        let mut history = History::open(dir.path()).unwrap();
        history.commit("run 3", vec![], None).unwrap();
        assert_eq!(
            kinds(&verify(dir.path(), &[]).unwrap()),
            [("deleted", Some("summary.json"))]
        );
    }

    #[test]
    fn writer_refuses_a_damaged_or_changed_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", b"a");
        let mut history = History::open(dir.path()).unwrap();
        history.commit("one", vec![a.clone()], None).unwrap();
        let mut stale = History::open(dir.path()).unwrap();
        history.commit("two", vec![a], None).unwrap();
        let err = stale.commit("three", vec![], None).unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");

        let path = dir.path().join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"one\"", "\"uno\"", 1)).unwrap();
        let err = History::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("line 2 does not chain"), "{err}");
    }

    #[test]
    fn decoder_rejects_malformed_lines() {
        let prev = "0".repeat(64);
        let sha = "ab".repeat(32);
        let ok = format!(
            r#"{{"op":"add","path":"a/b","size":1,"rows":null,"sha256":"{sha}","prev":"{prev}"}}"#
        );
        assert!(decode_line(ok.as_bytes()).is_ok());
        let bad = [
            "".to_owned(),
            "{}".to_owned(),
            "[1,2]".to_owned(),
            "\u{0}\u{ff}".to_owned(),
            ok.replace("\"rows\":null,", ""),
            ok.replace("\"add\"", "\"delete\""),
            ok.replace("a/b", "../etc/passwd"),
            ok.replace("a/b", "/etc/passwd"),
            ok.replace("a/b", "a//b"),
            ok.replace("a/b", MANIFEST_FILE),
            ok.replace(&sha, &sha.to_uppercase()),
            ok.replace(&sha, &sha[2..]),
            ok.replace("\"size\":1", "\"size\":-1"),
            ok.replace("\"size\":1", "\"size\":1,\"size\":2"),
            ok.replace("\"size\":1", "\"size\":1,\"key\":\"00\""),
            ok.replace("\"size\":1", "\"size\":1,\"extra\":0"),
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            format!(r#"{{"op":"add","path":"{}"}}"#, "x".repeat(MAX_LINE_BYTES)),
        ];
        for text in bad {
            assert!(decode_line(text.as_bytes()).is_err(), "{text:?}");
        }
        assert_eq!(
            decode(ok.as_bytes()),
            Err(DecodeError::Incomplete { line: 1 })
        );
        assert_eq!(decode(b""), Ok(vec![]));
        assert!(matches!(
            decode(b"\n"),
            Err(DecodeError::Line { line: 1, .. })
        ));
    }

    #[test]
    fn decoder_survives_arbitrary_bytes() {
        // A cheap stand-in for the fuzz target: mutations of a valid manifest.
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", b"a");
        History::open(dir.path())
            .unwrap()
            .commit("x", vec![a], Some(&key(1)))
            .unwrap();
        let bytes = std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap();
        // A file of newlines: reading stops after so many damaged lines.
        std::fs::write(dir.path().join(MANIFEST_FILE), vec![b'\n'; 100_000]).unwrap();
        let v = verify(dir.path(), &[]).unwrap();
        let damaged = v.findings.iter().filter(|f| f.kind() == "damaged").count();
        assert_eq!(
            (damaged, v.lines),
            (MAX_DAMAGED_LINES + 1, MAX_DAMAGED_LINES)
        );
        assert!(matches!(
            decode(&[b'\n'; 100_000]),
            Err(DecodeError::Line { line: 1, .. })
        ));

        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..2000 {
            let mut mutated = bytes.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = (state as usize) % mutated.len();
                mutated[i] = (state >> 32) as u8;
            }
            let _ = decode(&mutated);
            if round % 10 == 0 {
                std::fs::write(dir.path().join(MANIFEST_FILE), &mutated).unwrap();
                let _ = verify(dir.path(), &[key(1).verifying_key()]).unwrap();
            }
        }
    }

    #[test]
    fn verify_pinpoints_each_kind_of_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|p| write(dir.path(), p, p.repeat(10).as_bytes()))
            .collect();
        History::open(dir.path())
            .unwrap()
            .commit("x", files, None)
            .unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let pristine = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = pristine.lines().collect();

        // Lines 2 and 3 (a, b) swapped.
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        std::fs::write(&path, swapped.join("\n") + "\n").unwrap();
        let v = verify(dir.path(), &[]).unwrap();
        assert_eq!(
            v.findings,
            [Finding::Reordered {
                lines: vec![2, 3],
                chain_order: vec![3, 2]
            }]
        );
        assert!(
            v.findings[0]
                .to_string()
                .starts_with("reordered _manifest.jsonl: lines 2, 3")
        );

        // A line removed.
        let mut removed = lines.clone();
        removed.remove(2);
        std::fs::write(&path, removed.join("\n") + "\n").unwrap();
        let v = verify(dir.path(), &[]).unwrap();
        assert_eq!(kinds(&v), [("chain", None), ("added", Some("b"))]);

        // Garbage in a line: one finding, not a second for the break after it.
        let mut garbage = lines.clone();
        garbage[2] = "{not json";
        std::fs::write(&path, garbage.join("\n") + "\n").unwrap();
        let v = verify(dir.path(), &[]).unwrap();
        assert_eq!(kinds(&v), [("damaged", None), ("added", Some("b"))]);

        // Half a line at the end.
        std::fs::write(&path, &pristine[..pristine.len() - 10]).unwrap();
        let v = verify(dir.path(), &[]).unwrap();
        assert_eq!(kinds(&v), [("damaged", None), ("added", Some("d"))]);

        // No manifest.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            verify(dir.path(), &[]).unwrap().findings,
            [Finding::NoManifest]
        );
    }

    #[test]
    fn signatures_cover_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", b"a");
        let mut history = History::open(dir.path()).unwrap();
        history.commit("x", vec![a], Some(&key(1))).unwrap();
        let trusted = [key(1).verifying_key()];
        assert!(verify(dir.path(), &trusted).unwrap().is_ok());
        // A wrong key, and an untrusted one among trusted keys.
        let v = verify(dir.path(), &[key(2).verifying_key()]).unwrap();
        assert_eq!(kinds(&v), [("signature", None)]);
        assert!(
            verify(
                dir.path(),
                &[key(2).verifying_key(), key(1).verifying_key()]
            )
            .unwrap()
            .is_ok()
        );

        // An unsigned commit after a signed one.
        let b = write(dir.path(), "b", b"b");
        history.commit("y", vec![b], None).unwrap();
        let v = verify(dir.path(), &trusted).unwrap();
        assert_eq!(v.findings, [Finding::Unsigned { from: 4, to: 5 }]);
        assert!(verify(dir.path(), &[]).unwrap().is_ok());

        // Unsigned throughout.
        let other = tempfile::tempdir().unwrap();
        let c = write(other.path(), "c", b"c");
        History::open(other.path())
            .unwrap()
            .commit("z", vec![c], None)
            .unwrap();
        let v = verify(other.path(), &trusted).unwrap();
        assert_eq!(v.findings, [Finding::NotSigned]);
        assert_eq!(
            v.findings[0].to_string(),
            "unsigned  _manifest.jsonl: not signed"
        );
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("sign.key");
        std::fs::write(&seed, format!("  {}\n", hex::encode([9u8; 32]))).unwrap();
        let key = read_signing_key(&seed).unwrap();
        assert_eq!(key.to_bytes(), [9u8; 32]);
        let public = dir.path().join("sign.pub");
        std::fs::write(&public, public_key_hex(&key.verifying_key())).unwrap();
        assert_eq!(read_public_key(&public).unwrap(), key.verifying_key());
        std::fs::write(&seed, "secret-not-hex").unwrap();
        let err = read_signing_key(&seed).unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
        std::fs::write(&seed, vec![b'a'; 5000]).unwrap();
        assert!(read_signing_key(&seed).is_err());
        assert!(parse_public_key(&[b'f'; 62]).is_err());
    }
}
