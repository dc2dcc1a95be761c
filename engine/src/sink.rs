//! Parquet sinks: one file written atomically (temporary name, renamed on
//! success), so a crash never leaves a half-written file under its final name.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Operator;

use crate::error::{Error, Result};
use crate::time::Micros;

/// Rows per Parquet row group in files twinflow writes.
pub const ROW_GROUP_ROWS: usize = 1 << 20;

/// How a file twinflow writes is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd level 1: files kept but seldom read (TwinBench's truth table).
    Zstd,
    /// LZ4 (raw): raw logs and derived datasets. A log is written once and
    /// replayed many times: on TwinBench's, decoding LZ4 instead of zstd
    /// made the whole replay 10-24% faster for a file 26% larger (421 MB
    /// against 334 MB for 10M events). Derived datasets are written at
    /// pipeline speed, without zstd's per-column-chunk context setup. Every
    /// Parquet reader we target (DuckDB, Arrow, Polars) reads it, and logs
    /// compressed otherwise are read as well.
    Lz4,
}

/// Field metadata key: a column with it is written without min/max statistics.
pub const NO_STATISTICS: &str = "twinflow.no_statistics";

/// Field metadata key: a column of random bytes (tags, digests, signatures),
/// written without compression and without statistics, since neither can
/// gain anything on it. Reading TwinBench's tags through LZ4 cost a verified
/// replay about 90 instructions an event for nothing.
pub const RANDOM_BYTES: &str = "twinflow.random_bytes";

/// Field metadata key: a string column dictionary-encoded, for names that
/// readers resolve once per dictionary rather than once per row (the raw
/// log's `sensor`). Other string columns are written plain: LZ4 shrinks
/// repeated names about as well (TwinBench's `twin_changes/assets`: 12 MB
/// plain, 11 MB with dictionaries), and hashing every value into a
/// dictionary cost the dataset writers 4-33% of their time (A/B runs of
/// `replay --profile`).
pub const DICTIONARY: &str = "twinflow.dictionary";

/// `field` carrying the writer hint `key` ([`NO_STATISTICS`],
/// [`RANDOM_BYTES`] or [`DICTIONARY`]).
pub fn with_hint(field: Field, key: &str) -> Field {
    let mut metadata = field.metadata().clone();
    metadata.insert(key.to_owned(), "true".to_owned());
    field.with_metadata(metadata)
}

/// Writer properties shared by every file twinflow writes: `codec`, row
/// groups of `rows` rows, column statistics and page indexes (readers plan
/// and prune with them), and no dictionary encoding: measurements and
/// timestamps hardly ever repeat, and hashing them into a dictionary that
/// is then thrown away costs more than it saves. Fields marked
/// [`NO_STATISTICS`], [`RANDOM_BYTES`] or [`DICTIONARY`] are written as
/// those say.
pub fn writer_properties(schema: &Schema, rows: usize, codec: Codec) -> WriterProperties {
    let compression = match codec {
        Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(1).expect("valid zstd level")),
        Codec::Lz4 => Compression::LZ4_RAW,
    };
    let mut builder = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(rows.max(1)))
        .set_dictionary_enabled(false);
    for field in schema.fields() {
        if field.metadata().contains_key(DICTIONARY) {
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), true);
        }
        let random = field.metadata().contains_key(RANDOM_BYTES);
        if random {
            builder = builder.set_column_compression(
                ColumnPath::from(field.name().as_str()),
                Compression::UNCOMPRESSED,
            );
        }
        if random || field.metadata().contains_key(NO_STATISTICS) {
            builder = builder.set_column_statistics_enabled(
                ColumnPath::from(field.name().as_str()),
                EnabledStatistics::None,
            );
        }
    }
    builder.build()
}

/// A file as committed: its final path, size in bytes, data rows and SHA-256,
/// for the directory's manifest ([`crate::manifest`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Committed {
    pub path: PathBuf,
    pub size: u64,
    pub rows: u64,
    pub sha256: [u8; 32],
}

/// Counts and hashes the bytes on their way to the file, so recording a
/// committed file in the manifest costs no second read of it; and hands
/// what it has written to the disk as it goes, so the sync at commit has
/// little left to wait for.
///
/// Without the early writeback every byte of a replay's output was still
/// dirty when its files were committed: the syncs then waited for the disk
/// at the end of the run (41 ms after a one-worker TwinBench replay of
/// 1.15 s, the windows file alone 22 ms; with it, 11-16 ms in all).
struct Hashing {
    inner: File,
    sha256: Sha256,
    bytes: u64,
    /// Bytes handed to the disk so far.
    written_back: u64,
}

/// How many written bytes [`Hashing`] gathers before it starts writing them back.
const WRITEBACK_BYTES: u64 = 4 << 20;

impl Hashing {
    fn new(inner: File) -> Self {
        Hashing {
            inner,
            sha256: Sha256::new(),
            bytes: 0,
            written_back: 0,
        }
    }

    /// Starts writing the bytes not yet written back to the disk, without
    /// waiting for them (Linux; elsewhere the sync at commit does it all).
    fn write_back(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let (start, len) = (self.written_back, self.bytes - self.written_back);
            // SAFETY: the descriptor is this open file's; the call only
            // starts writeback of the range and touches no memory of ours.
            // Its outcome is advisory: the sync at commit reports any failure.
            unsafe {
                libc::sync_file_range(
                    self.inner.as_raw_fd(),
                    start as libc::off64_t,
                    len as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        self.written_back = self.bytes;
    }
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.bytes += n as u64;
        if self.bytes - self.written_back >= WRITEBACK_BYTES {
            self.write_back();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A Parquet file being written; it appears under its final name only after
/// [`ParquetFile::finish`].
pub struct ParquetFile {
    path: PathBuf,
    tmp: PathBuf,
    // The hasher sits below the buffer, so it sees the few large writes the
    // buffer makes rather than every small header and footer write.
    writer: ArrowWriter<BufWriter<Hashing>>,
    rows: u64,
}

impl ParquetFile {
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        let properties = writer_properties(&schema, ROW_GROUP_ROWS, Codec::Zstd);
        Self::create_with(path, schema, properties)
    }

    /// Like [`ParquetFile::create`], with explicit writer properties.
    pub fn create_with(
        path: &Path,
        schema: SchemaRef,
        properties: WriterProperties,
    ) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{file_name}.tmp"));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let writer = ArrowWriter::try_new(
            // Column chunks come in large writes, which pass the buffer by;
            // it only gathers the small ones (headers, footers), and a worker
            // has a dozen files open: 64 KB each, not 256, took two workers'
            // replay of TwinBench from 121 to 111 MB at peak, in the same time.
            BufWriter::with_capacity(64 << 10, Hashing::new(file)),
            schema,
            Some(properties),
        )
        .map_err(|e| Error::parquet(&tmp, e))?;
        Ok(ParquetFile {
            path: path.to_path_buf(),
            tmp,
            writer,
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .map_err(|e| Error::parquet(&self.tmp, e))
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Records `metadata` (key, value) in the file's footer.
    pub fn append_metadata(&mut self, metadata: &[(String, String)]) {
        for (key, value) in metadata {
            self.writer
                .append_key_value_metadata(KeyValue::new(key.clone(), value.clone()));
        }
    }

    /// Closes the file, syncs it to disk and moves it to its final name;
    /// returns its row count.
    pub fn finish(self) -> Result<u64> {
        self.commit().map(|c| c.rows)
    }

    /// Like [`ParquetFile::finish`]; returns what was committed.
    pub fn commit(self) -> Result<Committed> {
        self.close()?.commit()
    }

    /// Writes the footer and starts writing the file's last bytes to the
    /// disk, without waiting for them: [`Commit::finish`] then syncs it with
    /// others, and moves it to its final name.
    pub fn close(self) -> Result<ClosedFile> {
        let ParquetFile {
            path,
            tmp,
            writer,
            rows,
        } = self;
        let buffered = writer.into_inner().map_err(|e| Error::parquet(&tmp, e))?;
        let mut hashing = buffered
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        hashing.write_back();
        let Hashing {
            inner: file,
            sha256,
            bytes,
            ..
        } = hashing;
        Ok(ClosedFile {
            file,
            tmp,
            committed: Committed {
                path,
                size: bytes,
                rows,
                sha256: sha256.finalize().into(),
            },
        })
    }
}

/// A file whose bytes are all written and on their way to the disk, under
/// its temporary name until it is committed.
pub struct ClosedFile {
    file: File,
    tmp: PathBuf,
    committed: Committed,
}

impl ClosedFile {
    /// Syncs the file to disk and moves it to its final name.
    fn commit(self) -> Result<Committed> {
        self.sync()?;
        self.rename()
    }

    fn sync(&self) -> Result<()> {
        self.file.sync_all().map_err(|e| Error::io(&self.tmp, e))
    }

    fn rename(self) -> Result<Committed> {
        let path = &self.committed.path;
        std::fs::rename(&self.tmp, path).map_err(|e| Error::io(path, e))?;
        Ok(self.committed)
    }
}

/// Files to commit together: those already committed (a part's earlier
/// files) and those closed, waiting to be synced and renamed.
#[derive(Default)]
pub struct Commit {
    done: Vec<Committed>,
    closed: Vec<ClosedFile>,
}

impl Commit {
    /// Adds `other`'s files to this commit.
    pub fn extend(&mut self, other: Commit) {
        self.done.extend(other.done);
        self.closed.extend(other.closed);
    }

    /// Syncs every closed file, all at once, then moves each to its final
    /// name; returns every file committed. No file is renamed unless all
    /// synced: a failed commit leaves none of its closed files in place.
    ///
    /// One sync after another, each of a worker's dozen files waited for the
    /// disk in turn: a two-worker TwinBench replay spent 24-39 ms from the end
    /// of its dataflow to its files committed, 12-25 ms with the syncs
    /// together (5 alternated runs), and its median time fell 3 % (24 runs).
    pub fn finish(self) -> Result<Vec<Committed>> {
        let Commit { mut done, closed } = self;
        let synced: Vec<Result<()>> = std::thread::scope(|scope| {
            // A file whose thread cannot be had is synced here, in turn.
            // The threads are not named: a thread that allocates gets a heap
            // of its own from mimalloc, 2 MB more at peak each (a dozen files:
            // the whole pipeline's one-worker replay peaked at 83 MB, not 60).
            let syncs: Vec<_> = closed
                .iter()
                .map(|file| {
                    std::thread::Builder::new()
                        .spawn_scoped(scope, move || file.sync())
                        .map_err(|_| file)
                })
                .collect();
            syncs
                .into_iter()
                .map(|sync| match sync {
                    Ok(thread) => thread.join().expect("a sync thread does not panic"),
                    Err(file) => file.sync(),
                })
                .collect()
        });
        synced.into_iter().collect::<Result<()>>()?;
        for file in closed {
            done.push(file.rename()?);
        }
        Ok(done)
    }
}

/// Values (rows × columns) per row group in dataset part files: the writer
/// holds a whole row group in memory, so wide datasets get fewer rows per
/// group, and a worker's dozen open parts stay within a few megabytes.
pub const PART_ROW_GROUP_CELLS: usize = 128 * 1024;

/// Rows per row group of a part file with `columns` columns.
fn part_row_group_rows(columns: usize) -> usize {
    (PART_ROW_GROUP_CELLS / columns.max(1)).clamp(4 * 1024, 64 * 1024)
}

/// Rows buffered by a [`PartWriter`] before they are encoded and written.
/// Encoding a batch makes its Arrow columns (and, for the twin views, a
/// copy of every row's values by column) all at once, on each worker: with
/// 8k rows a two-worker replay of TwinBench peaked at 115-117 MB, with 4k
/// at 103-107 MB (one worker 69 against 63), in the same time (10
/// alternated runs; 2k saved a little more memory, and one worker's
/// fastest run was 10 % slower).
const PART_BATCH_ROWS: usize = 4 * 1024;

/// Row groups after which a [`PartWriter`] commits its file and goes on in a
/// new one. A Parquet writer keeps every row group's metadata (per column:
/// the chunk's metadata, its page index entries) until its file is closed,
/// so the memory a file costs grows with its row groups times its columns.
/// Rolling by row groups rather than rows bounds it alike for narrow and
/// wide datasets: rolling every 2^20 rows, a one-worker replay of a
/// 40M-event log held 6.2 MB of footers at peak against 1.9 MB at 10M
/// events (massif), mostly `twin_changes/assets` (44 columns, 4k-row
/// groups: 180 row groups before its first roll).
pub const PART_FILE_ROW_GROUPS: u64 = 64;

/// Turns buffered records into an Arrow batch.
pub type Encoder<T> = dyn FnMut(&[T]) -> RecordBatch;

/// A worker's part of a dataset: records are buffered, encoded into Arrow
/// batches by `encode`, and written to Parquet files of at most
/// `rows_per_file` rows each: `part-NNNNN.parquet` for worker NNNNN, then
/// `part-NNNNN-0001.parquet`, `part-NNNNN-0002.parquet` and so on.
pub struct PartWriter<T> {
    /// The dataset's directory: where the part's files go, and what names
    /// its writer in profiles.
    dataset: PathBuf,
    index: usize,
    schema: SchemaRef,
    /// Footer metadata of every file.
    metadata: Vec<(String, String)>,
    rows_per_file: u64,
    file: ParquetFile,
    /// Files already committed (their count numbers the next file).
    committed: Vec<Committed>,
    buffer: Vec<T>,
    encode: Box<Encoder<T>>,
}

impl<T> PartWriter<T> {
    /// Creates `dir/part-NNNNN.parquet` for worker `index`.
    pub fn create(
        dir: &Path,
        index: usize,
        schema: SchemaRef,
        encode: impl FnMut(&[T]) -> RecordBatch + 'static,
    ) -> Result<Self> {
        let rows_per_file =
            part_row_group_rows(schema.fields().len()) as u64 * PART_FILE_ROW_GROUPS;
        Ok(PartWriter {
            dataset: dir.to_path_buf(),
            index,
            file: part_file(dir, index, 0, &schema, &[])?,
            schema,
            metadata: Vec::new(),
            rows_per_file,
            committed: Vec::new(),
            buffer: Vec::new(),
            encode: Box::new(encode),
        })
    }

    /// Records `metadata` (key, value) in every file's footer: how the
    /// file's rows came to be (see `Lineage` in the pipelines crate).
    pub fn with_metadata(mut self, metadata: &[(String, String)]) -> Self {
        self.file.append_metadata(metadata);
        self.metadata.extend_from_slice(metadata);
        self
    }

    /// Rolls to a new file after `rows` rows (by default, after
    /// [`PART_FILE_ROW_GROUPS`] row groups).
    pub fn with_rows_per_file(mut self, rows: u64) -> Self {
        self.rows_per_file = rows.max(1);
        self
    }

    /// Like [`PartWriter::create`], with the schema of the batches `encode`
    /// makes (taken from encoding no records).
    pub fn from_encoder(
        dir: &Path,
        index: usize,
        mut encode: impl FnMut(&[T]) -> RecordBatch + 'static,
    ) -> Result<Self> {
        let schema = encode(&[]).schema();
        Self::create(dir, index, schema, encode)
    }

    pub fn push(&mut self, record: T) -> Result<()> {
        if self.file.rows >= self.rows_per_file {
            self.roll()?;
        }
        self.buffer.push(record);
        let room = self.rows_per_file - self.file.rows;
        if self.buffer.len() >= PART_BATCH_ROWS || self.buffer.len() as u64 >= room {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buffer.is_empty() {
            let batch = (self.encode)(&self.buffer);
            self.buffer.clear();
            self.file.write(&batch)?;
        }
        Ok(())
    }

    /// Commits the full file and goes on in the next.
    fn roll(&mut self) -> Result<()> {
        let number = self.committed.len() + 1;
        let next = part_file(
            &self.dataset,
            self.index,
            number,
            &self.schema,
            &self.metadata,
        )?;
        let full = std::mem::replace(&mut self.file, next);
        self.committed.push(full.commit()?);
        Ok(())
    }

    /// Writes what is buffered and commits the last file; returns the rows
    /// written in all.
    pub fn finish(self) -> Result<u64> {
        Ok(self.commit()?.iter().map(|c| c.rows).sum())
    }

    /// Like [`PartWriter::finish`]; returns every file committed, in order.
    pub fn commit(self) -> Result<Vec<Committed>> {
        self.close()?.finish()
    }

    /// Writes what is buffered and closes the last file: the files to
    /// commit, with the earlier ones already committed.
    pub fn close(mut self) -> Result<Commit> {
        self.flush()?;
        Ok(Commit {
            done: self.committed,
            closed: vec![self.file.close()?],
        })
    }
}

/// The name of file `number` of worker `index`'s part of a dataset:
/// `part-NNNNN.parquet` first, then `part-NNNNN-0001.parquet` and so on.
pub fn part_file_name(index: usize, number: usize) -> String {
    match number {
        0 => format!("part-{index:05}.parquet"),
        n => format!("part-{index:05}-{n:04}.parquet"),
    }
}

/// The (worker, file number) a [`part_file_name`] names; `None` for any
/// other name.
pub fn parse_part_file_name(name: &str) -> Option<(usize, usize)> {
    let part = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    match part.split_once('-') {
        Some((index, number)) => Some((index.parse().ok()?, number.parse().ok()?)),
        None => Some((part.parse().ok()?, 0)),
    }
}

/// File `number` of worker `index`'s part of the dataset in `dir`.
fn part_file(
    dir: &Path,
    index: usize,
    number: usize,
    schema: &SchemaRef,
    metadata: &[(String, String)],
) -> Result<ParquetFile> {
    let name = part_file_name(index, number);
    let rows = part_row_group_rows(schema.fields().len());
    let properties = writer_properties(schema, rows, Codec::Lz4);
    let mut file = ParquetFile::create_with(&dir.join(name), schema.clone(), properties)?;
    file.append_metadata(metadata);
    Ok(file)
}

/// A dataset part shared by the dataflow, which fills it, and the worker,
/// which commits it when the dataflow is done. A write error is kept (the
/// first one) and returned by [`SharedPart::close`]; later records are dropped
/// then, since the run fails anyway.
pub struct SharedPart<T> {
    dataset: PathBuf,
    writer: RefCell<Option<PartWriter<T>>>,
    error: RefCell<Option<Error>>,
}

impl<T> SharedPart<T> {
    pub fn new(writer: PartWriter<T>) -> Rc<Self> {
        Rc::new(SharedPart {
            dataset: writer.dataset.clone(),
            writer: RefCell::new(Some(writer)),
            error: RefCell::new(None),
        })
    }

    fn push(&self, record: T) {
        if self.error.borrow().is_some() {
            return;
        }
        if let Some(writer) = self.writer.borrow_mut().as_mut()
            && let Err(e) = writer.push(record)
        {
            *self.error.borrow_mut() = Some(e);
        }
    }

    /// Closes the part's last file (see [`PartWriter::close`]), or returns
    /// the first write error.
    pub fn close(&self) -> Result<Commit> {
        if let Some(e) = self.error.borrow_mut().take() {
            return Err(e);
        }
        match self.writer.borrow_mut().take() {
            Some(writer) => writer.close(),
            None => Err(Error::Runtime("dataset part finished twice".into())),
        }
    }
}

/// Writes a stream into a dataset part.
pub trait WritePart<T> {
    /// Appends every record to `part`, after showing it to `observe` (for counters).
    fn write_part(self, part: Rc<SharedPart<T>>, observe: impl FnMut(&T) + 'static);
}

impl<'s, T: timely::ExchangeData> WritePart<T> for Stream<'s, Micros, Vec<T>> {
    fn write_part(self, part: Rc<SharedPart<T>>, mut observe: impl FnMut(&T) + 'static) {
        let name = format!("WritePart {}", part.dataset.display());
        self.sink(Pipeline, &name, move |(input, _frontier)| {
            input.for_each(|_, data| {
                for record in data.drain(..) {
                    observe(&record);
                    part.push(record);
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    /// Bytes written through [`Hashing`] reach the file whole and in order
    /// across writebacks (writes of odd sizes, 2.5 writeback chunks in all),
    /// and its size and hash are those of the file as read back.
    #[test]
    fn hashing_writes_back_what_it_wrote() {
        let path = std::env::temp_dir().join(format!("twinflow-writeback-{}", std::process::id()));
        let expected: Vec<u8> = (0..WRITEBACK_BYTES * 5 / 2)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut file = Hashing::new(File::create(&path).unwrap());
        for chunk in expected.chunks(1_000_003) {
            file.write_all(chunk).unwrap();
        }
        // Written back twice, each time once a chunk had gathered.
        assert!(file.written_back >= 2 * WRITEBACK_BYTES);
        assert!(file.bytes - file.written_back < WRITEBACK_BYTES);
        let Hashing { bytes, sha256, .. } = file;
        let sha256 = sha256.finalize();
        let read = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(read == expected, "the file holds the bytes written");
        assert_eq!(bytes, read.len() as u64);
        assert_eq!(sha256, Sha256::digest(&read));
    }

    /// A part rolls to a new file every `rows_per_file` rows: 25 records in
    /// files of 10 make three files of 10, 10 and 5 rows, each with the
    /// footer metadata, holding the records in order; 20 records make two
    /// (no empty third file).
    #[test]
    fn parts_roll_to_new_files() {
        use arrow::array::{AsArray, UInt64Array};
        use arrow::datatypes::UInt64Type;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

        let dir = std::env::temp_dir().join(format!("twinflow-roll-{}", std::process::id()));
        for (records, expected) in [(25u64, vec![10, 10, 5]), (20, vec![10, 10])] {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let encode = |rows: &[u64]| {
                let column = std::sync::Arc::new(rows.iter().copied().collect::<UInt64Array>());
                RecordBatch::try_from_iter([("n", column as arrow::array::ArrayRef)]).unwrap()
            };
            let mut part = PartWriter::from_encoder(&dir, 3, encode)
                .unwrap()
                .with_metadata(&[("source".into(), "test".into())])
                .with_rows_per_file(10);
            for n in 0..records {
                part.push(n).unwrap();
            }
            let committed = part.commit().unwrap();
            let names: Vec<String> = committed
                .iter()
                .map(|c| c.path.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            let expected_names = [
                "part-00003.parquet",
                "part-00003-0001.parquet",
                "part-00003-0002.parquet",
            ];
            assert_eq!(names, expected_names[..expected.len()]);
            assert_eq!(
                committed.iter().map(|c| c.rows).collect::<Vec<_>>(),
                expected
            );
            let mut read: Vec<u64> = Vec::new();
            for c in &committed {
                let file = std::fs::File::open(&c.path).unwrap();
                let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
                let footer = builder
                    .metadata()
                    .file_metadata()
                    .key_value_metadata()
                    .unwrap();
                assert!(
                    footer.iter().any(|kv| kv.key == "source"),
                    "{}",
                    c.path.display()
                );
                for batch in builder.build().unwrap() {
                    read.extend(
                        batch
                            .unwrap()
                            .column(0)
                            .as_primitive::<UInt64Type>()
                            .values(),
                    );
                }
            }
            assert_eq!(read, (0..records).collect::<Vec<_>>());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// By default a part rolls after [`PART_FILE_ROW_GROUPS`] full row groups,
    /// however wide: 32 columns make row groups of 4096 rows (128k values),
    /// so 64 groups and 5 rows more make a file of 64 groups and one of 5 rows.
    #[test]
    fn parts_roll_after_a_bounded_number_of_row_groups() {
        use arrow::array::{ArrayRef, NullArray, UInt64Array};
        use parquet::file::reader::{FileReader, SerializedFileReader};

        let dir = std::env::temp_dir().join(format!("twinflow-groups-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let encode = |rows: &[u64]| {
            let n: ArrayRef = std::sync::Arc::new(rows.iter().copied().collect::<UInt64Array>());
            let nulls: ArrayRef = std::sync::Arc::new(NullArray::new(rows.len()));
            let columns = (1..32).map(|c| (format!("empty{c}"), nulls.clone(), true));
            let columns = std::iter::once(("n".to_owned(), n, false)).chain(columns);
            RecordBatch::try_from_iter_with_nullable(columns).unwrap()
        };
        let mut part = PartWriter::from_encoder(&dir, 0, encode).unwrap();
        let group = 4096;
        let records = PART_FILE_ROW_GROUPS * group + 5;
        (0..records).for_each(|n| part.push(n).unwrap());
        let groups: Vec<Vec<i64>> = part
            .commit()
            .unwrap()
            .iter()
            .map(|c| {
                let reader = SerializedFileReader::new(File::open(&c.path).unwrap()).unwrap();
                let metadata = reader.metadata();
                (0..metadata.num_row_groups())
                    .map(|g| metadata.row_group(g).num_rows())
                    .collect()
            })
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0], vec![group as i64; PART_FILE_ROW_GROUPS as usize]);
        assert_eq!(groups[1], vec![5]);
    }

    /// Closed parts stay under their temporary names until the commit, which
    /// puts every file in place with the size, rows and SHA-256 it reports.
    #[test]
    fn closed_parts_commit_together() {
        use arrow::array::UInt64Array;

        let dir = std::env::temp_dir().join(format!("twinflow-commit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let encode = |rows: &[u64]| {
            let column = std::sync::Arc::new(rows.iter().copied().collect::<UInt64Array>());
            RecordBatch::try_from_iter([("n", column as arrow::array::ArrayRef)]).unwrap()
        };
        let mut commit = Commit::default();
        for (worker, records) in [(0, 5u64), (1, 12)] {
            let mut part = PartWriter::from_encoder(&dir, worker, encode)
                .unwrap()
                .with_rows_per_file(10);
            (0..records).for_each(|n| part.push(n).unwrap());
            commit.extend(part.close().unwrap());
        }
        let listing = || {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        // Worker 1's first file rolled (committed); the last files wait.
        assert_eq!(
            listing(),
            [
                ".part-00000.parquet.tmp",
                ".part-00001-0001.parquet.tmp",
                "part-00001.parquet"
            ]
        );
        let mut committed = commit.finish().unwrap();
        committed.sort();
        assert_eq!(
            listing(),
            [
                "part-00000.parquet",
                "part-00001-0001.parquet",
                "part-00001.parquet"
            ]
        );
        assert_eq!(
            committed.iter().map(|c| c.rows).collect::<Vec<_>>(),
            [5, 2, 10]
        );
        for c in &committed {
            let bytes = std::fs::read(&c.path).unwrap();
            assert_eq!(c.size, bytes.len() as u64);
            assert_eq!(c.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Part file names: worker and file number survive the round trip, and
    /// other names in a dataset's directory are not taken for parts.
    #[test]
    fn part_file_names_round_trip() {
        assert_eq!(part_file_name(3, 0), "part-00003.parquet");
        assert_eq!(part_file_name(3, 2), "part-00003-0002.parquet");
        for (index, number) in [(0, 0), (3, 2), (12, 0), (7, 9999)] {
            let name = part_file_name(index, number);
            assert_eq!(parse_part_file_name(&name), Some((index, number)), "{name}");
        }
        for other in [
            "summary.json",
            "part-x.parquet",
            "part-00001.parquet.tmp",
            "part-1-a.parquet",
        ] {
            assert_eq!(parse_part_file_name(other), None, "{other}");
        }
    }

    /// The field hints reach the writer: a random-bytes column is stored
    /// uncompressed without statistics, a no-statistics column keeps the
    /// codec, a dictionary column alone is dictionary-encoded, and a plain
    /// one keeps codec and statistics.
    #[test]
    fn field_hints_set_codec_statistics_and_dictionary() {
        let schema = Schema::new(vec![
            Field::new("ts_us", DataType::Int64, false),
            with_hint(Field::new("tag", DataType::Binary, true), RANDOM_BYTES),
            with_hint(Field::new("health", DataType::Utf8, false), NO_STATISTICS),
            with_hint(Field::new("sensor", DataType::Utf8, false), DICTIONARY),
            Field::new("asset", DataType::Utf8, false),
        ]);
        let properties = writer_properties(&schema, 1024, Codec::Lz4);
        let column = |name: &str| ColumnPath::from(name);
        let got: Vec<(Compression, EnabledStatistics, bool)> =
            ["ts_us", "tag", "health", "sensor", "asset"]
                .iter()
                .map(|name| {
                    (
                        properties.compression(&column(name)),
                        properties.statistics_enabled(&column(name)),
                        properties.dictionary_enabled(&column(name)),
                    )
                })
                .collect();
        use Compression::{LZ4_RAW, UNCOMPRESSED};
        use EnabledStatistics::{None, Page};
        assert_eq!(
            got,
            [
                (LZ4_RAW, Page, false),
                (UNCOMPRESSED, None, false),
                (LZ4_RAW, None, false),
                (LZ4_RAW, Page, true),
                (LZ4_RAW, Page, false),
            ]
        );
    }
}
