//! Reading back the Parquet datasets a replay wrote (a directory of `part-*.parquet` files each).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
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
        let file = File::open(&part).map_err(|e| Error::io(&part, e))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::parquet(&part, e))?;
        if columns.is_empty() {
            let reader = builder.build().map_err(|e| Error::parquet(&part, e))?;
            for batch in reader {
                f(&part, &batch.map_err(|e| Error::format(&part, e))?)?;
            }
            continue;
        }
        let indices = columns
            .iter()
            .map(|c| {
                builder
                    .schema()
                    .index_of(c)
                    .map_err(|_| Error::schema(&part, format!("no column `{c}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        let reader = builder
            .with_projection(mask)
            .build()
            .map_err(|e| Error::parquet(&part, e))?;
        for batch in reader {
            f(&part, &batch.map_err(|e| Error::format(&part, e))?)?;
        }
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
