//! The final twin views as text tables for people to read (`replay --show twins`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use arrow::array::StringArray;
use twinflow_engine::error::Result;
use twinflow_engine::profile::OperatorBusy;
use twinflow_engine::time::SECOND;

use crate::dataset::{
    count_at, counts, float_at, floats, int_at, ints, read_dataset, required, string_at, strings,
};
use crate::report::clock;

/// The final asset view (`OUT/twins/assets/`) as a table, one asset a line,
/// sorted by line and asset, followed by the line rollups.
pub fn twin_table(out: &Path) -> Result<String> {
    let dir = out.join("twins/assets");
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut quantities: Vec<String> = Vec::new();
    for batch in &read_dataset(&dir)? {
        quantities = batch
            .schema()
            .fields()
            .iter()
            .filter_map(|f| f.name().strip_prefix("fused_"))
            .filter(|q| !q.ends_with("_variance"))
            .map(str::to_owned)
            .collect();
        let text = |name| required(strings(batch, name), &dir, name);
        let (asset, line, site, health) = (
            text("asset")?,
            text("line")?,
            text("site")?,
            text("health")?,
        );
        let start = required(ints(batch, "window_start_us"), &dir, "window_start_us")?;
        let flags = required(counts(batch, "flags"), &dir, "flags")?;
        let fused: Vec<_> = quantities
            .iter()
            .map(|q| {
                let value = floats(batch, &format!("fused_{q}"));
                (value, floats(batch, &format!("fused_{q}_variance")))
            })
            .collect();
        for i in 0..batch.num_rows() {
            let cell = |column: &StringArray| string_at(column, i).unwrap_or("–").to_owned();
            let mut row = vec![
                cell(&asset),
                cell(&line),
                cell(&site),
                int_at(Some(&start), i).map_or("–".into(), |t| clock(t, SECOND)),
                cell(&health),
                count_at(Some(&flags), i).map_or("–".into(), |n| n.to_string()),
            ];
            for (value, variance) in &fused {
                row.push(
                    match (float_at(value.as_ref(), i), float_at(variance.as_ref(), i)) {
                        (Some(v), Some(var)) => format!("{v:.2} ± {:.2}", var.sqrt()),
                        _ => "–".to_owned(),
                    },
                );
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

    let dir = out.join("twins/lines");
    let mut summaries: Vec<String> = Vec::new();
    for batch in &read_dataset(&dir)? {
        let text = |name| required(strings(batch, name), &dir, name);
        let count = |name| required(counts(batch, name), &dir, name);
        let (line, worst) = (text("line")?, text("worst_health")?);
        let (assets, reporting, flagged) = (
            count("assets")?,
            count("assets_reporting")?,
            count("assets_with_flags")?,
        );
        let means: Vec<_> = quantities
            .iter()
            .map(|q| (q, floats(batch, &format!("mean_fused_{q}"))))
            .collect();
        for i in 0..batch.num_rows() {
            let mut summary = format!(
                "{}: {} assets, {} reporting, {} with flags, worst {}",
                string_at(&line, i).unwrap_or("–"),
                assets.value(i),
                reporting.value(i),
                flagged.value(i),
                string_at(&worst, i).unwrap_or("–"),
            );
            for (q, mean) in &means {
                if let Some(mean) = float_at(mean.as_ref(), i) {
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

/// Each operator's busy time per worker (`replay --profile`), busiest first,
/// with its share of the dataflow's: where a run's time went. Datasets are
/// named relative to `out`.
pub fn operator_table(operators: &[OperatorBusy], out: &Path) -> String {
    let workers = operators.iter().map(|o| o.worker + 1).max().unwrap_or(0);
    let prefix = format!("{}/", out.display());
    let mut busy: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for o in operators {
        let name = o.operator.replace(&prefix, "");
        busy.entry(name).or_insert_with(|| vec![0; workers])[o.worker] += o.busy_us;
    }
    let mut rows: Vec<(String, Vec<u64>)> = busy.into_iter().collect();
    rows.sort_by_key(|(name, us)| (std::cmp::Reverse(us.iter().sum::<u64>()), name.clone()));
    // The root scope holds every operator: the shares are of its time.
    let whole = rows
        .first()
        .map_or(1, |(_, us)| us.iter().sum::<u64>().max(1));
    let mut text = format!("{:<48}", "operator");
    for w in 0..workers {
        write!(text, " {:>10}", format!("w{w} ms")).unwrap();
    }
    text.push_str("   share\n");
    for (name, us) in rows {
        write!(text, "{name:<48}").unwrap();
        for t in &us {
            write!(text, " {:>10.1}", *t as f64 / 1e3).unwrap();
        }
        let share = us.iter().sum::<u64>() as f64 / whole as f64 * 100.0;
        writeln!(text, " {share:>6.1}%").unwrap();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up() {
        let header = vec!["a".to_owned(), "bb".to_owned()];
        let rows = vec![vec!["xyz".to_owned(), "1".to_owned()]];
        assert_eq!(format_table(&header, &rows), "a    bb\nxyz  1\n");
    }
}
