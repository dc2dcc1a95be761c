//! Reading a raw log (one Parquet file or a directory of them) in arrival
//! order, split into *runs* that workers read independently.
//!
//! TwinBench defines lateness by the log's global arrival order: an event is
//! late when its time is below the greatest earlier watermark time
//! ([`crate::time::watermark_time`]) minus the lateness. A worker reading run
//! `r` can decide that exactly without seeing the runs before it once it
//! knows the greatest watermark time of every row before the run
//! ([`crate::run_maxima`]), which starts from each run's greatest `ts_us`:
//! from the Parquet page index or column statistics when it can, else from
//! one pass over the `ts_us` column. So the result is the same whichever
//! worker reads which run.

use std::fs::File;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BinaryArray, DictionaryArray, Float64Array, Int64Array, StringArray,
    UInt8Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;

use crate::error::{Error, Result};
use crate::event::RawRow;
use crate::raw_log::col;
use crate::safe_selection::{Narrowed, SafeStarts, widen};
use crate::time::{Micros, watermark_time};

/// The size runs are cut to by default (at page boundaries): small enough
/// that workers reading neighbouring runs stay close in event time.
pub const DEFAULT_RUN_ROWS: usize = 128 * 1024;

/// How a log is split into runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SplitOptions {
    /// Cut row groups into runs of at most this many rows (default: one run per
    /// row group). Smaller runs spread a small log over more workers.
    pub max_run_rows: Option<usize>,
}

/// A stretch of consecutive rows of one row group, read in order by one worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The run's number; runs are numbered in arrival order.
    pub index: u32,
    file: usize,
    row_group: usize,
    /// Rows of the row group, relative to its first row.
    rows: Range<usize>,
    /// Position of the run's first row in the whole log.
    pub first_position: u64,
    /// The greatest event time of the run's own rows (`Micros::MIN` if none):
    /// an upper bound of their greatest watermark time (see
    /// [`crate::run_maxima`]).
    pub max_ts: Micros,
}

impl Run {
    /// Rows in the run.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }
}

/// Which of `peers` takers (processes, or workers splitting a pass over the
/// log) gets each run, given the runs' row counts in order: each run goes to
/// the taker with the fewest rows so far (the lowest index on a tie). They
/// take turns, so they move through event time together and none runs far
/// ahead, and each gets about as many rows as the others, which dealing runs
/// round-robin did not do: a row group's last run is often short, and
/// TwinBench's 1M-row row groups, cut into 7 runs of 143k rows and one of
/// 45k, gave one of two workers every short run (it read 4.6M rows, the
/// other 5.5M; `replay --profile`: ReadLog busy 98 against 122 ms, 109
/// against 111 dealt by rows). A process's workers no longer read a dealt
/// share: they take runs from a queue ([`crate::run_queue`]).
pub fn deal_runs(rows: impl IntoIterator<Item = u64>, peers: usize) -> Vec<usize> {
    let mut read = vec![0u64; peers.max(1)];
    rows.into_iter()
        .map(|rows| {
            let (worker, _) = read
                .iter()
                .enumerate()
                .min_by_key(|&(worker, read)| (*read, worker))
                .expect("at least one worker");
            read[worker] += rows;
            worker
        })
        .collect()
}

/// Column positions of the raw-log columns in one file's schema.
#[derive(Debug, Clone, Copy)]
struct Columns {
    ts: usize,
    arrival: usize,
    asset: usize,
    sensor: usize,
    kind: usize,
    value: usize,
    seq: usize,
    quality: usize,
    tag: Option<usize>,
}

struct LogFile {
    path: PathBuf,
    /// Metadata with `sensor` read as a dictionary (ids are resolved once per dictionary).
    hot: ArrowReaderMetadata,
    /// Metadata with the file's own types, for re-reading whole rows.
    plain: ArrowReaderMetadata,
    columns: Columns,
}

/// A planned raw log: its files, validated, and its runs in arrival order.
pub struct LogSource {
    files: Vec<LogFile>,
    runs: Vec<Run>,
    rows: u64,
}

impl LogSource {
    /// Opens a log: a Parquet file, or a directory whose `events*.parquet` files
    /// (else all `*.parquet` files) are read in name order as one log.
    pub fn open(path: &Path, split: SplitOptions) -> Result<Self> {
        let paths = log_files(path)?;
        let files = paths
            .iter()
            .map(|p| LogFile::open(p))
            .collect::<Result<Vec<_>>>()?;
        let mut source = LogSource {
            files,
            runs: Vec::new(),
            rows: 0,
        };
        source.plan(split)?;
        Ok(source)
    }

    /// The runs in arrival order.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The runs dealt to taker `index` of `peers`, in order (see
    /// [`deal_runs`]): a worker's share of the verified pre-pass.
    pub fn runs_for(&self, index: usize, peers: usize) -> impl Iterator<Item = &Run> {
        let owners = deal_runs(self.runs.iter().map(|r| r.rows() as u64), peers);
        self.runs
            .iter()
            .zip(owners)
            .filter_map(move |(run, owner)| (owner == index).then_some(run))
    }

    /// Rows in the whole log.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The log's files, in reading order, with their rows (the sum of their
    /// row groups', which opening checked are not negative; the footer's own
    /// total is not checked).
    pub fn files(&self) -> impl Iterator<Item = (&Path, u64)> {
        self.files.iter().map(|f| {
            let groups = f.plain.metadata().row_groups();
            let rows = groups.iter().map(|g| g.num_rows().max(0) as u64).sum();
            (f.path.as_path(), rows)
        })
    }

    /// The file a run comes from.
    pub fn path_of(&self, run: &Run) -> &Path {
        &self.files[run.file].path
    }

    fn plan(&mut self, split: SplitOptions) -> Result<()> {
        let mut position = 0u64;
        for (file_index, file) in self.files.iter().enumerate() {
            for row_group in 0..file.plain.metadata().num_row_groups() {
                for (rows, max) in file.plan_row_group(row_group, split)? {
                    let len = rows.len() as u64;
                    self.runs.push(Run {
                        index: u32::try_from(self.runs.len())
                            .map_err(|_| Error::Config("log has too many runs".into()))?,
                        file: file_index,
                        row_group,
                        rows,
                        first_position: position,
                        max_ts: max,
                    });
                    position += len;
                }
            }
        }
        self.rows = position;
        Ok(())
    }

    /// Every distinct (sensor, asset, kind) in the log, sorted: the catalog of a
    /// log that comes without one.
    pub fn distinct_sensors(&self) -> Result<Vec<(String, String, String)>> {
        let mut seen = std::collections::BTreeMap::<String, (String, String)>::new();
        for file in &self.files {
            let c = file.columns;
            for batch in file.scan([c.asset, c.sensor, c.kind], None)? {
                let batch = batch?;
                let schema = batch.schema();
                let column = |name: &str| -> &StringArray {
                    batch
                        .column(schema.index_of(name).expect("projected"))
                        .as_string()
                };
                let (asset, sensor, kind) =
                    (column(col::ASSET), column(col::SENSOR), column(col::KIND));
                for i in 0..batch.num_rows() {
                    if sensor.is_valid(i) && !seen.contains_key(sensor.value(i)) {
                        let owned = |a: &StringArray| {
                            value_or(a.is_valid(i), || a.value(i), Default::default()).to_owned()
                        };
                        seen.insert(sensor.value(i).to_owned(), (owned(asset), owned(kind)));
                    }
                }
            }
        }
        Ok(seen
            .into_iter()
            .map(|(sensor, (asset, kind))| (sensor, asset, kind))
            .collect())
    }

    /// A reader of a run's `fields` (`sensor` as a dictionary), in order.
    pub fn read_run(&self, run: &Run, fields: Fields) -> Result<RunReader> {
        self.read_run_rows(run, fields, None)
    }

    /// Like [`LogSource::read_run`], of the rows at `offsets` (ascending) only.
    pub fn read_selected(&self, run: &Run, fields: Fields, offsets: &[usize]) -> Result<RunReader> {
        self.read_run_rows(run, fields, Some(row_ranges(offsets)))
    }

    fn read_run_rows(
        &self,
        run: &Run,
        fields: Fields,
        selection: Option<Vec<Range<usize>>>,
    ) -> Result<RunReader> {
        let file = &self.files[run.file];
        let c = file.columns;
        let mut columns = vec![c.ts, c.sensor, c.value, c.arrival];
        if fields == Fields::Checked {
            columns.extend([c.seq, c.quality, c.asset, c.kind]);
            columns.extend(c.tag);
        }
        let reader = file.reader(&file.hot, run, &columns, selection, fields.batch_rows())?;
        Ok(RunReader {
            path: file.path.clone(),
            reader,
        })
    }

    /// The offsets within `run` of its rows whose `ts_us` is the run's
    /// greatest. Only the `ts_us` pages that hold it are decoded when the file
    /// has a page index.
    pub fn rows_at_max(&self, run: &Run) -> Result<Vec<usize>> {
        let file = &self.files[run.file];
        let pages = file.ts_pages(run.row_group).unwrap_or_default();
        // The run's pages that may hold the maximum, as ranges of the run.
        let mut ranges: Vec<Range<usize>> = pages
            .iter()
            .filter(|(_, max)| *max >= run.max_ts)
            .filter_map(|(rows, _)| {
                let start = rows.start.max(run.rows.start);
                let end = rows.end.min(run.rows.end);
                (start < end).then(|| start - run.rows.start..end - run.rows.start)
            })
            .collect();
        if pages.is_empty() {
            ranges = std::iter::once(0..run.rows.len()).collect();
        }
        let batch_rows = Fields::Windowing.batch_rows();
        let columns = [file.columns.ts];
        let reader = file.reader(&file.plain, run, &columns, Some(ranges.clone()), batch_rows)?;
        let mut offsets = Vec::new();
        let mut ranges = ranges.into_iter().flatten();
        for batch in reader {
            let batch = batch.map_err(|e| Error::parquet(&file.path, e))?;
            let ts: &Int64Array = batch.column(0).as_primitive();
            for (t, offset) in ts.iter().zip(ranges.by_ref()) {
                if t == Some(run.max_ts) {
                    offsets.push(offset);
                }
            }
        }
        Ok(offsets)
    }

    /// The watermark times of a run's rows, or of the rows at `offsets`
    /// (ascending) only, in order (see [`RunBatch::watermark_times`];
    /// `Micros::MIN` for a row without an event time, which never counts).
    /// Decodes `ts_us` and `arrival_us` only.
    pub fn watermark_times(&self, run: &Run, offsets: Option<&[usize]>) -> Result<Vec<Micros>> {
        let file = &self.files[run.file];
        let c = file.columns;
        let batch_rows = Fields::Windowing.batch_rows();
        let selection = offsets.map(row_ranges);
        let reader = file.reader(&file.plain, run, &[c.ts, c.arrival], selection, batch_rows)?;
        let mut times = Vec::with_capacity(run.rows());
        for batch in reader {
            let batch = batch.map_err(|e| Error::parquet(&file.path, e))?;
            let column = |name: &str| -> Result<&Int64Array> {
                batch
                    .column_by_name(name)
                    .map(|a| a.as_primitive())
                    .ok_or_else(|| Error::parquet(&file.path, format!("no column {name}")))
            };
            let (ts, arrival) = (column(col::TS_US)?, column(col::ARRIVAL_US)?);
            let capped = WatermarkTimes::of(Some(arrival));
            times.extend(
                ts.iter()
                    .enumerate()
                    .map(|(i, t)| t.map_or(Micros::MIN, |t| capped.at(i, t))),
            );
        }
        Ok(times)
    }

    /// Re-reads whole rows of a run, given their offsets within the run (ascending).
    pub fn read_rows(&self, run: &Run, offsets: &[usize]) -> Result<Vec<RawRow>> {
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        let mut reader = self.read_selected(run, Fields::Checked, offsets)?;
        let mut rows = Vec::with_capacity(offsets.len());
        while let Some(batch) = reader.next_batch()? {
            rows.extend((0..batch.ts.len()).map(|i| batch.raw_row(i)));
        }
        Ok(rows)
    }
}

/// Batches of one run, in order.
pub struct RunReader {
    path: PathBuf,
    reader: Narrowed<Guarded<ParquetRecordBatchReader>>,
}

/// Which columns of a run are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fields {
    /// `ts_us`, `sensor`, `value` and `arrival_us`: all windowing needs
    /// (the arrival caps an event's watermark time).
    Windowing,
    /// Also `seq`, `quality`, `asset`, `kind` and `tag`: every field the tag
    /// covers, and the `seq` the replay window needs.
    Checked,
}

impl Fields {
    /// Rows decoded per batch: each batch goes downstream as one container.
    ///
    /// Unverified, a batch's readings fold into one partial per sensor and
    /// window before they cross workers: fewer, larger batches send fewer
    /// partials. 64k rows instead of 16k made two workers' replay of
    /// TwinBench's 10M-event log 9-27% faster (three sets of 3 alternated
    /// runs).
    /// Verified, every arrival crosses to the worker that checks its sensor,
    /// and the small batches keep both workers fed: 64k rows made it 20%
    /// slower.
    pub fn batch_rows(self) -> usize {
        match self {
            Fields::Windowing => 64 * 1024,
            Fields::Checked => 16 * 1024,
        }
    }
}

/// One decoded batch of a run: event times, sensor dictionary and values,
/// and the other columns its [`Fields`] asked for.
pub struct RunBatch {
    pub ts: Int64Array,
    pub sensor: DictionaryArray<Int32Type>,
    pub value: Float64Array,
    pub arrival: Option<Int64Array>,
    pub seq: Option<UInt64Array>,
    pub quality: Option<UInt8Array>,
    /// `None` also when the log has no `tag` column.
    pub tag: Option<BinaryArray>,
    pub asset: Option<DictionaryArray<Int32Type>>,
    pub kind: Option<DictionaryArray<Int32Type>>,
}

/// The watermark times of a batch's rows ([`crate::time::watermark_time`]):
/// a row's `ts_us` capped by its `arrival_us`, or its `ts_us` alone when its
/// arrival is null (or the batch has none).
#[derive(Clone, Copy)]
pub struct WatermarkTimes<'a> {
    arrival: Option<&'a Int64Array>,
    /// Whether any arrival is null (usually none, and then a row's validity
    /// costs nothing).
    nulls: bool,
}

impl<'a> WatermarkTimes<'a> {
    pub fn of(arrival: Option<&'a Int64Array>) -> Self {
        WatermarkTimes {
            arrival,
            nulls: arrival.is_some_and(|a| a.null_count() > 0),
        }
    }

    /// The watermark time of row `i`, whose event time is `ts`.
    #[inline]
    pub fn at(&self, i: usize, ts: Micros) -> Micros {
        match self.arrival {
            Some(a) if !self.nulls || a.is_valid(i) => watermark_time(ts, a.values()[i]),
            _ => ts,
        }
    }

    /// The arrival time of row `i`, whose event time is `ts`: `ts` when the
    /// row's arrival is null (or the batch has none).
    #[inline]
    pub fn arrival(&self, i: usize, ts: Micros) -> Micros {
        match self.arrival {
            Some(a) if !self.nulls || a.is_valid(i) => a.values()[i],
            _ => ts,
        }
    }
}

impl RunBatch {
    /// Its rows' watermark times.
    pub fn watermark_times(&self) -> WatermarkTimes<'_> {
        WatermarkTimes::of(self.arrival.as_ref())
    }

    /// Row `i` with all its fields (of a batch read with [`Fields::Checked`]),
    /// nulls as [`RawRow`] holds them.
    pub fn raw_row(&self, i: usize) -> RawRow {
        let text = |column: Option<&DictionaryArray<Int32Type>>| -> String {
            column
                .filter(|c| c.is_valid(i))
                .map(|c| {
                    let values: &StringArray = c.values().as_string();
                    values.value(c.keys().value(i) as usize).to_owned()
                })
                .unwrap_or_default()
        };
        RawRow {
            ts_us: value_or(self.ts.is_valid(i), || self.ts.value(i), Micros::MIN),
            arrival_us: self
                .arrival
                .as_ref()
                .filter(|a| a.is_valid(i))
                .map_or(Micros::MIN, |a| a.value(i)),
            asset: text(self.asset.as_ref()),
            sensor: text(Some(&self.sensor)),
            kind: text(self.kind.as_ref()),
            value: value_or(self.value.is_valid(i), || self.value.value(i), f64::NAN),
            seq: self
                .seq
                .as_ref()
                .filter(|a| a.is_valid(i))
                .map_or(0, |a| a.value(i)),
            quality: self
                .quality
                .as_ref()
                .filter(|a| a.is_valid(i))
                .map_or(0, |a| a.value(i)),
            tag: self
                .tag
                .as_ref()
                .filter(|t| t.is_valid(i))
                .map(|t| t.value(i).to_vec()),
        }
    }
}

impl RunReader {
    /// The next batch, `None` at the end of the run.
    pub fn next_batch(&mut self) -> Result<Option<RunBatch>> {
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let batch = batch.map_err(|e| Error::parquet(&self.path, e))?;
        // Projected columns keep the file's order, which a foreign file may
        // choose freely: find them by name.
        let column = |name: &str| batch.column_by_name(name);
        let required = |name: &str| {
            column(name).ok_or_else(|| Error::parquet(&self.path, format!("no column {name}")))
        };
        Ok(Some(RunBatch {
            ts: required(col::TS_US)?.as_primitive().clone(),
            sensor: required(col::SENSOR)?.as_dictionary::<Int32Type>().clone(),
            value: required(col::VALUE)?.as_primitive().clone(),
            arrival: column(col::ARRIVAL_US).map(|a| a.as_primitive().clone()),
            seq: column(col::SEQ).map(|a| a.as_primitive().clone()),
            quality: column(col::QUALITY).map(|a| a.as_primitive().clone()),
            tag: column(col::TAG).map(|a| a.as_binary().clone()),
            asset: column(col::ASSET).map(|a| a.as_dictionary::<Int32Type>().clone()),
            kind: column(col::KIND).map(|a| a.as_dictionary::<Int32Type>().clone()),
        }))
    }
}

/// Ids for the entries of a dictionary of names (sensors, assets), resolved
/// once per dictionary rather than once per row. Batches of one column chunk
/// carry the same dictionary (as fresh copies), so comparing the raw bytes —
/// a memcmp of a few kilobytes per batch — finds it again.
pub(crate) struct DictionaryIds<Id> {
    names: Option<StringArray>,
    ids: Vec<Option<Id>>,
}

impl<Id> Default for DictionaryIds<Id> {
    fn default() -> Self {
        DictionaryIds {
            names: None,
            ids: Vec::new(),
        }
    }
}

/// Sensor ids of a sensor dictionary.
pub(crate) type SensorIdCache = DictionaryIds<crate::catalog::SensorId>;

impl<Id: Copy> DictionaryIds<Id> {
    pub(crate) fn resolve_with(
        &mut self,
        names: &StringArray,
        lookup: impl Fn(&str) -> Option<Id>,
    ) -> &[Option<Id>] {
        let same = self.names.as_ref().is_some_and(|cached| {
            cached.null_count() == 0
                && names.null_count() == 0
                && cached.value_offsets() == names.value_offsets()
                && cached.value_data() == names.value_data()
        });
        if !same {
            self.ids.clear();
            self.ids.extend(names.iter().map(|n| n.and_then(&lookup)));
            self.names = Some(names.clone());
        }
        &self.ids
    }
}

impl SensorIdCache {
    pub(crate) fn resolve(
        &mut self,
        names: &StringArray,
        catalog: &crate::catalog::Catalog,
    ) -> &[Option<crate::catalog::SensorId>] {
        self.resolve_with(names, |n| catalog.sensor_id(n))
    }
}

impl LogFile {
    fn open(path: &Path) -> Result<Self> {
        let handle = File::open(path).map_err(|e| Error::io(path, e))?;
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let plain = catch_unwind(|| ArrowReaderMetadata::load(&handle, options))
            .map_err(|panic| Error::parquet(path, ReaderPanic::new(panic.as_ref())))?
            .map_err(|e| Error::parquet(path, e))?;
        let file_len = handle.metadata().map_err(|e| Error::io(path, e))?.len();
        check_layout(plain.metadata(), file_len).map_err(|e| Error::parquet(path, e))?;
        let columns = Columns::find(path, plain.schema())?;
        let hot_schema = dictionary_schema(
            plain.schema(),
            [columns.asset, columns.sensor, columns.kind],
        );
        let hot = ArrowReaderMetadata::try_new(
            plain.metadata().clone(),
            ArrowReaderOptions::new().with_schema(hot_schema),
        )
        .map_err(|e| Error::parquet(path, e))?;
        Ok(LogFile {
            path: path.to_path_buf(),
            hot,
            plain,
            columns,
        })
    }

    /// A reader of `columns` (root indices) of `run`, or of the rows of
    /// `selection` (ranges within the run, ascending) only. Decoding starts
    /// only at safe rows (see [`crate::safe_selection`]): the rows before a
    /// selected range back to one are read and dropped.
    fn reader(
        &self,
        meta: &ArrowReaderMetadata,
        run: &Run,
        columns: &[usize],
        selection: Option<Vec<Range<usize>>>,
        batch_rows: usize,
    ) -> Result<Narrowed<Guarded<ParquetRecordBatchReader>>> {
        let handle = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        // Selections are relative to the run; the reader wants them relative to the row group.
        let ranges = match selection {
            Some(within_run) => within_run
                .into_iter()
                .map(|r| run.rows.start + r.start..run.rows.start + r.end)
                .collect(),
            None => vec![run.rows.clone()],
        };
        let safe = SafeStarts::of(meta.metadata(), run.row_group, columns.iter().copied());
        let (selectors, keep) = widen(&ranges, &safe);
        let mask = ProjectionMask::roots(meta.parquet_schema(), columns.iter().copied());
        ParquetRecordBatchReaderBuilder::new_with_metadata(handle, meta.clone())
            .with_row_groups(vec![run.row_group])
            .with_projection(mask)
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(batch_rows)
            .build()
            .map(|reader| Narrowed::new(Guarded::new(reader), keep))
            .map_err(|e| Error::parquet(&self.path, e))
    }

    /// Cuts a row group into runs, each with its greatest `ts_us`:
    /// - with `max_run_rows`, into runs of that many rows, their maxima read
    ///   from the `ts_us` column;
    /// - else at `ts_us` page boundaries into runs of about [`DEFAULT_RUN_ROWS`],
    ///   their maxima from the page index (no decoding);
    /// - else (no page index) as one run, its maximum from the column
    ///   statistics, or read from the column when those are missing.
    fn plan_row_group(
        &self,
        row_group: usize,
        split: SplitOptions,
    ) -> Result<Vec<(Range<usize>, Micros)>> {
        let meta = self.plain.metadata();
        let n = meta.row_group(row_group).num_rows() as usize;
        if let Some(run_rows) = split.max_run_rows {
            let run_rows = run_rows.max(1);
            let maxima = self.run_maxima(row_group, run_rows)?;
            return Ok(maxima
                .into_iter()
                .enumerate()
                .map(|(i, max)| {
                    let start = i * run_rows;
                    (start..(start + run_rows).min(n), max)
                })
                .collect());
        }
        if let Some(runs) = self.page_runs(row_group) {
            return Ok(runs);
        }
        let stats_max = match meta
            .row_group(row_group)
            .column(self.columns.ts)
            .statistics()
        {
            Some(Statistics::Int64(s)) if s.max_is_exact() && s.null_count_opt() == Some(0) => {
                s.max_opt().copied()
            }
            _ => None,
        };
        let max = match stats_max {
            Some(max) => max,
            None => self
                .run_maxima(row_group, n.max(1))?
                .first()
                .copied()
                .unwrap_or(Micros::MIN),
        };
        Ok(vec![(0..n, max)])
    }

    /// The `ts_us` pages of a row group from the page index: their rows and
    /// greatest value (`Micros::MIN` for a page of nulls).
    fn ts_pages(&self, row_group: usize) -> Option<Vec<(Range<usize>, Micros)>> {
        let rows = self.plain.metadata().row_group(row_group).num_rows() as usize;
        let index = self.plain.metadata().page_index_for_row_group(row_group);
        let ColumnIndexMetaData::INT64(maxima) = index.column_index(self.columns.ts)? else {
            return None;
        };
        let pages = index.offset_index(self.columns.ts)?.page_locations();
        if pages.is_empty() || maxima.max_values_iter().count() != pages.len() {
            return None;
        }
        let mut out = Vec::with_capacity(pages.len());
        for (i, page) in pages.iter().enumerate() {
            let start = usize::try_from(page.first_row_index).ok()?;
            let end = match pages.get(i + 1) {
                Some(next) => usize::try_from(next.first_row_index).ok()?,
                None => rows,
            };
            if start > end || end > rows {
                return None;
            }
            // A page without a maximum holds only nulls: it cannot raise the watermark.
            out.push((
                start..end,
                maxima.max_value(i).copied().unwrap_or(Micros::MIN),
            ));
        }
        Some(out)
    }

    /// Runs at `ts_us` page boundaries, with maxima from the page index.
    fn page_runs(&self, row_group: usize) -> Option<Vec<(Range<usize>, Micros)>> {
        let mut runs: Vec<(Range<usize>, Micros)> = Vec::new();
        // A run starts where every column a reader decodes may start (see
        // `crate::safe_selection`): in a log whose columns break pages at
        // different rows, runs grow to the next row where they agree.
        let c = self.columns;
        let strings = [c.sensor, c.asset, c.kind].into_iter().chain(c.tag);
        let safe = SafeStarts::of(self.plain.metadata(), row_group, strings);
        for (rows, max) in self.ts_pages(row_group)? {
            match runs.last_mut() {
                Some((range, run_max))
                    if range.len() < DEFAULT_RUN_ROWS || !safe.is_safe(rows.start) =>
                {
                    range.end = rows.end;
                    *run_max = (*run_max).max(max);
                }
                _ => runs.push((rows, max)),
            }
        }
        Some(runs)
    }

    /// Batches of some columns (in file order, with the file's own types) of
    /// one row group, or of the whole file.
    fn scan(
        &self,
        columns: impl IntoIterator<Item = usize>,
        row_group: Option<usize>,
    ) -> Result<impl Iterator<Item = Result<RecordBatch>> + '_> {
        let handle = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mask = ProjectionMask::roots(self.plain.parquet_schema(), columns);
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(handle, self.plain.clone())
                .with_projection(mask)
                .with_batch_size(64 * 1024);
        if let Some(row_group) = row_group {
            builder = builder.with_row_groups(vec![row_group]);
        }
        let reader = builder.build().map_err(|e| Error::parquet(&self.path, e))?;
        Ok(Guarded::new(reader).map(|batch| batch.map_err(|e| Error::parquet(&self.path, e))))
    }

    /// The greatest `ts_us` of each stretch of `run_rows` rows of a row group
    /// (the last one may be shorter), by reading the column.
    ///
    /// The maxima grow with the rows actually read, not with the row count the
    /// footer declares: a damaged footer can declare any count, and sizing the
    /// list from it allocated without bound (2^60 rows in a few bytes) or,
    /// with fewer rows declared than the column holds, indexed past its end.
    /// A count that differs from the column's is an error.
    fn run_maxima(&self, row_group: usize, run_rows: usize) -> Result<Vec<Micros>> {
        let declared = self.plain.metadata().row_group(row_group).num_rows();
        let mut maxima: Vec<Micros> = Vec::new();
        let mut row = 0u64;
        let mut left_in_run = 0usize;
        for batch in self.scan([self.columns.ts], Some(row_group))? {
            let batch = batch?;
            let ts: &Int64Array = batch.column(0).as_primitive();
            for t in ts.iter() {
                if left_in_run == 0 {
                    maxima.push(Micros::MIN);
                    left_in_run = run_rows;
                }
                left_in_run -= 1;
                if let Some(t) = t {
                    let m = maxima.last_mut().expect("a run is open");
                    *m = (*m).max(t);
                }
                row += 1;
            }
        }
        if u64::try_from(declared).ok() != Some(row) {
            return Err(Error::parquet(
                &self.path,
                format!(
                    "row group {row_group} declares {declared} rows, its ts_us column holds {row}"
                ),
            ));
        }
        Ok(maxima)
    }
}

impl Columns {
    fn find(path: &Path, schema: &Schema) -> Result<Self> {
        let find = |name: &str, expect: &[DataType]| -> Result<usize> {
            let (index, field) = schema.column_with_name(name).ok_or_else(|| {
                Error::schema(
                    path,
                    format!(
                        "missing column `{name}` (a raw log needs {})",
                        expected_columns()
                    ),
                )
            })?;
            if !expect.contains(field.data_type()) {
                return Err(Error::schema(
                    path,
                    format!(
                        "column `{name}` has type {}, expected {}",
                        field.data_type(),
                        expect[0]
                    ),
                ));
            }
            Ok(index)
        };
        let tag = match schema.column_with_name(col::TAG) {
            Some(_) => Some(find(col::TAG, &[DataType::Binary])?),
            None => None,
        };
        Ok(Columns {
            ts: find(col::TS_US, &[DataType::Int64])?,
            arrival: find(col::ARRIVAL_US, &[DataType::Int64])?,
            asset: find(col::ASSET, &[DataType::Utf8])?,
            sensor: find(col::SENSOR, &[DataType::Utf8])?,
            kind: find(col::KIND, &[DataType::Utf8])?,
            value: find(col::VALUE, &[DataType::Float64])?,
            seq: find(col::SEQ, &[DataType::UInt64])?,
            quality: find(col::QUALITY, &[DataType::UInt8])?,
            tag,
        })
    }
}

/// Batches of a Parquet reader over an untrusted file, with a panic of the
/// reader turned into an error that ends them. The reader checks most of a
/// damaged file, not all: fuzzing found it panicking inside (arrow-buffer's
/// "offset + len out of bounds" while decoding definition levels), which
/// would take a worker, and so the whole replay, down without naming the
/// file. Nothing of the reader is used after it panicked.
///
/// Each batch's column types are also checked against the reader's schema,
/// which every reader of batches downcasts by: fuzzing found a file whose
/// `sensor` column (hinted as strings by the embedded Arrow schema, but with
/// no string annotation in the Parquet schema) came out of the dictionary
/// reader as a dictionary of binary values, and `as_string` panicked.
pub(crate) struct Guarded<R> {
    reader: R,
    schema: SchemaRef,
    failed: bool,
}

impl<R: RecordBatchReader> Guarded<R> {
    fn new(reader: R) -> Self {
        Guarded {
            schema: reader.schema(),
            reader,
            failed: false,
        }
    }
}

impl<R> Guarded<R> {
    /// The first column whose type is not the schema's, as an error.
    fn check_types(&self, batch: &RecordBatch) -> std::result::Result<(), ArrowError> {
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            if field.data_type() != column.data_type() {
                return Err(ArrowError::SchemaError(format!(
                    "column `{}` decoded as {}, the file's schema says {}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                )));
            }
        }
        if batch.num_columns() != self.schema.fields().len() {
            return Err(ArrowError::SchemaError(format!(
                "decoded {} columns, the file's schema has {}",
                batch.num_columns(),
                self.schema.fields().len()
            )));
        }
        Ok(())
    }
}

impl<R: Iterator<Item = std::result::Result<RecordBatch, ArrowError>>> Iterator for Guarded<R> {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let reader = &mut self.reader;
        let next = catch_unwind(AssertUnwindSafe(|| reader.next())).unwrap_or_else(|panic| {
            Some(Err(ArrowError::ExternalError(Box::new(ReaderPanic::new(
                panic.as_ref(),
            )))))
        });
        let next = next.map(|batch| batch.and_then(|b| self.check_types(&b).map(|()| b)));
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

/// A panic of the Parquet reader, as an error.
#[derive(Debug)]
struct ReaderPanic(String);

impl ReaderPanic {
    fn new(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        ReaderPanic(message.to_owned())
    }
}

impl std::fmt::Display for ReaderPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the Parquet reader failed on damaged data: {}", self.0)
    }
}

impl std::error::Error for ReaderPanic {}

/// Checks what the Parquet reader takes on trust from a file's footer, so a
/// damaged footer gives an error rather than a panic: the reader asserts that
/// every column chunk's offset and size are non-negative
/// (`ColumnChunkMetaData::byte_range` panics otherwise, found by fuzzing), and
/// planning takes row counts as sizes. A chunk must also lie inside the file.
fn check_layout(meta: &ParquetMetaData, file_len: u64) -> std::result::Result<(), String> {
    for (r, group) in meta.row_groups().iter().enumerate() {
        if group.num_rows() < 0 {
            return Err(format!(
                "row group {r} has a negative row count ({})",
                group.num_rows()
            ));
        }
        for (c, chunk) in group.columns().iter().enumerate() {
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or(chunk.data_page_offset());
            let len = chunk.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(start, len)| start.checked_add(len));
            if end.is_none_or(|end| end > file_len) {
                return Err(format!(
                    "row group {r}, column {c}: chunk of {len} bytes at offset {start} \
                     lies outside the file ({file_len} bytes)"
                ));
            }
        }
    }
    Ok(())
}

fn expected_columns() -> String {
    crate::raw_log::raw_log_schema()
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The file schema with the given string columns as dictionaries: names
/// repeat, and a dictionary is read once per column chunk.
fn dictionary_schema(schema: &SchemaRef, columns: [usize; 3]) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if columns.contains(&i) {
                Field::new(
                    f.name(),
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                    f.is_nullable(),
                )
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The Parquet files of a log, in reading order.
fn log_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut all = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".parquet") && !name.starts_with('.') {
            all.push((name, entry.path()));
        }
    }
    all.sort();
    let events: Vec<PathBuf> = all
        .iter()
        .filter(|(n, _)| n.starts_with("events"))
        .map(|(_, p)| p.clone())
        .collect();
    let chosen = if events.is_empty() {
        all.into_iter().map(|(_, p)| p).collect()
    } else {
        events
    };
    if chosen.is_empty() {
        return Err(Error::format(path, "directory holds no .parquet log files"));
    }
    Ok(chosen)
}

/// A selection of the rows at `offsets` (ascending) of a run.
fn row_ranges(offsets: &[usize]) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = Vec::with_capacity(offsets.len());
    for &o in offsets {
        match ranges.last_mut() {
            Some(last) if last.end == o => last.end = o + 1,
            Some(last) => {
                debug_assert!(o > last.end, "offsets must ascend");
                ranges.push(o..o + 1);
            }
            None => ranges.push(o..o + 1),
        }
    }
    ranges
}

/// `value()` for a valid slot, else `default` (null fields of set-aside rows).
fn value_or<T>(valid: bool, value: impl FnOnce() -> T, default: T) -> T {
    if valid { value() } else { default }
}

#[cfg(test)]
mod tests {
    use super::deal_runs;

    /// TwinBench's pattern of runs (three long, one short) no longer puts
    /// every short run on one worker: rows per worker differ by less than a
    /// long run, on 1 to 5 workers, and the workers still take turns (a
    /// worker's consecutive runs are at most two rounds apart).
    #[test]
    fn runs_are_dealt_by_rows_read() {
        let rows: Vec<u64> = (0..40).map(|i| if i % 4 == 3 { 45 } else { 143 }).collect();
        for peers in 1..=5 {
            let owners = deal_runs(rows.iter().copied(), peers);
            let mut read = vec![0u64; peers];
            for (&owner, &r) in owners.iter().zip(&rows) {
                read[owner] += r;
            }
            let spread = read.iter().max().unwrap() - read.iter().min().unwrap();
            assert!(spread < 143, "{peers} workers read {read:?}");
            // Workers take turns: between two runs of one worker, fewer
            // than two rounds of the others.
            let mut last_turn = vec![None::<usize>; peers];
            for (turn, &owner) in owners.iter().enumerate() {
                if let Some(previous) = last_turn[owner] {
                    assert!(
                        turn - previous <= 2 * peers,
                        "worker {owner} waited too long"
                    );
                }
                last_turn[owner] = Some(turn);
            }
        }
        // Round-robin gave worker 1 all 10 short runs.
        let owners = deal_runs(rows.iter().copied(), 2);
        let short_on_worker_1 = owners
            .iter()
            .zip(&rows)
            .filter(|&(&o, &r)| o == 1 && r == 45)
            .count();
        assert!(
            short_on_worker_1 < 10,
            "worker 1 got {short_on_worker_1} of 10 short runs"
        );
    }
}
