//! The final twin views as text tables for people to read (`replay --show twins`).

use std::fmt::Write;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use twinflow_engine::error::Result;

use crate::dataset::read_dataset;

/// The final asset view (`OUT/twins/assets/`) as a table, one asset a line,
/// sorted by line and asset, followed by the line rollups.
pub fn twin_table(out: &Path) -> Result<String> {
    let assets = read_dataset(&out.join("twins/assets"))?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut quantities: Vec<String> = Vec::new();
    for batch in &assets {
        quantities = batch
            .schema()
            .fields()
            .iter()
            .filter_map(|f| f.name().strip_prefix("fused_"))
            .filter(|q| !q.ends_with("_variance"))
            .map(str::to_owned)
            .collect();
        for i in 0..batch.num_rows() {
            let mut row = vec![
                text(batch, "asset", i),
                text(batch, "line", i),
                text(batch, "site", i),
                clock(int(batch, "window_start_us", i)),
                text(batch, "health", i),
                unsigned(batch, "flags", i).to_string(),
            ];
            for q in &quantities {
                let value = float(batch, &format!("fused_{q}"), i);
                let variance = float(batch, &format!("fused_{q}_variance"), i);
                row.push(match (value, variance) {
                    (Some(v), Some(var)) => format!("{v:.2} ± {:.2}", var.sqrt()),
                    _ => "–".to_owned(),
                });
            }
            rows.push(row);
        }
    }
    rows.sort_by(|a, b| (&a[1], &a[0]).cmp(&(&b[1], &b[0])));
    let mut header: Vec<String> = ["asset", "line", "site", "window (UTC)", "health", "flags"]
        .map(str::to_owned)
        .to_vec();
    header.extend(quantities.iter().cloned());
    let mut table = format_table(&header, &rows);

    let lines = read_dataset(&out.join("twins/lines"))?;
    let mut summaries: Vec<String> = Vec::new();
    for batch in &lines {
        for i in 0..batch.num_rows() {
            let mut summary = format!(
                "{}: {} assets, {} reporting, {} with flags, worst {}",
                text(batch, "line", i),
                unsigned(batch, "assets", i),
                unsigned(batch, "assets_reporting", i),
                unsigned(batch, "assets_with_flags", i),
                text(batch, "worst_health", i),
            );
            for q in &quantities {
                if let Some(mean) = float(batch, &format!("mean_fused_{q}"), i) {
                    let _ = write!(summary, ", mean {q} {mean:.2}");
                }
            }
            summaries.push(summary);
        }
    }
    summaries.sort();
    table.push('\n');
    for summary in summaries {
        table.push_str(&summary);
        table.push('\n');
    }
    Ok(table)
}

/// Left-aligned columns separated by two spaces.
fn format_table(header: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut table = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        table.push_str(cells.join("  ").trim_end());
        table.push('\n');
    }
    table
}

/// Time of day (UTC) of a timestamp in microseconds since the epoch.
fn clock(us: i64) -> String {
    let seconds = us.div_euclid(1_000_000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

fn text(batch: &RecordBatch, column: &str, row: usize) -> String {
    let array = batch.column_by_name(column).expect("column in schema");
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row).to_owned(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_owned(),
        other => format!("<{other}>"),
    }
}

fn int(batch: &RecordBatch, column: &str, row: usize) -> i64 {
    let array = batch.column_by_name(column).expect("column in schema");
    array.as_primitive::<Int64Type>().value(row)
}

fn unsigned(batch: &RecordBatch, column: &str, row: usize) -> u64 {
    let array = batch.column_by_name(column).expect("column in schema");
    array.as_primitive::<UInt64Type>().value(row)
}

fn float(batch: &RecordBatch, column: &str, row: usize) -> Option<f64> {
    let array = batch.column_by_name(column)?;
    let values = array.as_primitive::<Float64Type>();
    (!values.is_null(row)).then(|| values.value(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_utc_time_of_day() {
        // 2026-01-01T13:04:05Z
        assert_eq!(clock(1_767_272_645_000_000), "13:04:05");
        assert_eq!(clock(-1_000_000), "23:59:59");
    }

    #[test]
    fn table_columns_line_up() {
        let header = vec!["a".to_owned(), "bb".to_owned()];
        let rows = vec![vec!["xyz".to_owned(), "1".to_owned()]];
        assert_eq!(format_table(&header, &rows), "a    bb\nxyz  1\n");
    }
}
