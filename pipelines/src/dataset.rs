//! Reading back the Parquet datasets a replay wrote (a directory of `part-*.parquet` files each).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use twinflow_engine::error::{Error, Result};

/// The `part-*.parquet` files of a dataset, in name order (none when missing).
pub fn parts(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut parts: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    parts.sort();
    Ok(parts)
}

/// Calls `f` on every batch of a dataset, decoding only `columns` (all of
/// them when `columns` is empty), so large datasets are scanned, never held whole.
pub fn scan(
    dir: &Path,
    columns: &[&str],
    mut f: impl FnMut(&Path, &RecordBatch) -> Result<()>,
) -> Result<()> {
    for part in parts(dir)? {
        scan_file(&part, columns, &mut f)?;
    }
    Ok(())
}

/// Calls `f` on every batch of one Parquet file, decoding only `columns`
/// (all of them when `columns` is empty).
pub fn scan_file(
    path: &Path,
    columns: &[&str],
    mut f: impl FnMut(&Path, &RecordBatch) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::parquet(path, e))?;
    let builder = if columns.is_empty() {
        builder
    } else {
        let indices = columns
            .iter()
            .map(|c| {
                builder
                    .schema()
                    .index_of(c)
                    .map_err(|_| Error::schema(path, format!("no column `{c}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        builder.with_projection(mask)
    };
    let reader = builder.build().map_err(|e| Error::parquet(path, e))?;
    for batch in reader {
        f(path, &batch.map_err(|e| Error::format(path, e))?)?;
    }
    Ok(())
}

/// Every record batch of a dataset, in part order.
pub fn read_dataset(dir: &Path) -> Result<Vec<RecordBatch>> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such dataset"),
        ));
    }
    let mut batches = Vec::new();
    scan(dir, &[], |_, batch| {
        batches.push(batch.clone());
        Ok(())
    })?;
    Ok(batches)
}

// Typed access to a batch's columns, tolerant of how a writer stored them
// (large or dictionary strings, other integer widths): cast when needed,
// `None` when the column is missing or cannot be read as asked.

/// A column cast to `ty` (strings may be large, views or dictionaries).
pub fn column_as(batch: &RecordBatch, name: &str, ty: &DataType) -> Option<ArrayRef> {
    let array = batch.column_by_name(name)?;
    if array.data_type() == ty {
        Some(array.clone())
    } else {
        cast(array, ty).ok()
    }
}

pub fn strings(batch: &RecordBatch, name: &str) -> Option<StringArray> {
    column_as(batch, name, &DataType::Utf8).map(|a| a.as_string::<i32>().clone())
}

pub fn floats(batch: &RecordBatch, name: &str) -> Option<Float64Array> {
    column_as(batch, name, &DataType::Float64).map(|a| a.as_primitive::<Float64Type>().clone())
}

pub fn ints(batch: &RecordBatch, name: &str) -> Option<Int64Array> {
    column_as(batch, name, &DataType::Int64).map(|a| a.as_primitive::<Int64Type>().clone())
}

pub fn counts(batch: &RecordBatch, name: &str) -> Option<UInt64Array> {
    column_as(batch, name, &DataType::UInt64).map(|a| a.as_primitive::<UInt64Type>().clone())
}

/// A column the dataset must have.
pub fn required<T>(column: Option<T>, dir: &Path, name: &str) -> Result<T> {
    column.ok_or_else(|| Error::schema(dir, format!("no readable column `{name}`")))
}

pub fn string_at(array: &StringArray, i: usize) -> Option<&str> {
    array.is_valid(i).then(|| array.value(i))
}

pub fn float_at(array: Option<&Float64Array>, i: usize) -> Option<f64> {
    array.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}

pub fn int_at(array: Option<&Int64Array>, i: usize) -> Option<i64> {
    array.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}

pub fn count_at(array: Option<&UInt64Array>, i: usize) -> Option<u64> {
    array.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}
