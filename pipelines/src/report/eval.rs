//! `OUT/eval.json` (written by `twinflow eval`) as tables. Read as plain JSON
//! so the report does not depend on the eval module: each list of records
//! becomes a table whose columns are the records' keys (nested objects
//! flattened one level, `fused inverse-variance`), each object a list of
//! figures, and anything missing is simply not shown.

use maud::{Markup, html};
use serde_json::Value;

use super::format::{group, number};

/// Columns in this order (by key, then nested key); others after them in
/// name order (JSON objects come back sorted by name).
const COLUMN_ORDER: [&str; 15] = [
    "kind",
    "channels",
    "quantity",
    "condition",
    "windows",
    "incidents",
    "detected",
    "share",
    "named",
    "named_share",
    "median_delay_s",
    "fused",
    "sensor",
    "best_sensor",
    "ratio_to_clean",
];

fn rank(key: &str) -> usize {
    COLUMN_ORDER
        .iter()
        .position(|k| *k == key)
        .unwrap_or(COLUMN_ORDER.len())
}

/// The sections of eval.json in the order shown (by JSON pointer), with their headings.
const SECTIONS: [(&str, &str); 7] = [
    ("/rmse", "Fused RMSE against the truth"),
    ("/coverage", "95 % interval coverage"),
    ("/detection", "Detection of sensor incidents"),
    ("/false_suspects", "False suspects"),
    (
        "/model_nll/detection",
        "model_nll alarms within 60 s of incidents",
    ),
    ("/model_nll/false_alarms", "model_nll false alarms"),
    ("/model_nll/target", "model_nll target"),
];

/// The eval section (eval.json, or why it could not be read), or nothing
/// when there is no eval.json.
pub(crate) fn eval_section(eval: Option<&Result<Value, String>>) -> Markup {
    let Some(eval) = eval else {
        return html! {};
    };
    html! {
        section #eval {
            h2 { "Evaluation against the truth" }
            @match eval {
                Ok(eval) => { (tables(eval)) }
                Err(error) => { p.note { "eval.json could not be read: " (error) } }
            }
        }
    }
}

fn tables(eval: &Value) -> Markup {
    html! {
            p.note { "From eval.json, written by twinflow eval against the generator's truth and labels." }
            @for (pointer, title) in SECTIONS {
                @if let Some(value) = eval.pointer(pointer).filter(|v| !v.is_null()) {
                    h3 { (title) }
                    (any(value))
                }
            }
    }
}

fn any(value: &Value) -> Markup {
    match value {
        Value::Array(rows) => records(rows),
        Value::Object(fields) => html! {
            dl.figures {
                @for (key, value) in fields { div { dt { (words(key)) } dd { (cell(value)) } } }
            }
        },
        other => html! { p { (cell(other)) } },
    }
}

/// A list of records as a table; nested objects' keys become columns.
fn records(rows: &[Value]) -> Markup {
    let mut columns: Vec<(String, Option<String>)> = Vec::new();
    for row in rows.iter().filter_map(Value::as_object) {
        for (key, value) in row {
            let subkeys: Vec<Option<String>> = match value.as_object() {
                Some(nested) => nested.keys().cloned().map(Some).collect(),
                None => vec![None],
            };
            for sub in subkeys {
                let column = (key.clone(), sub);
                if !columns.contains(&column) {
                    columns.push(column);
                }
            }
        }
    }
    columns.sort_by(|(a, a_sub), (b, b_sub)| {
        let sub = |s: &Option<String>| s.as_deref().map_or(0, rank);
        (rank(a), a, sub(a_sub), a_sub).cmp(&(rank(b), b, sub(b_sub), b_sub))
    });
    let lookup = |row: &Value, (key, sub): &(String, Option<String>)| -> Option<Value> {
        let value = row.get(key)?;
        match sub {
            Some(sub) => value.get(sub).cloned(),
            None => (!value.is_object()).then(|| value.clone()),
        }
    };
    html! {
        div.scroll { table.eval {
            thead { tr {
                @for (key, sub) in &columns {
                    th { (words(key)) @if let Some(sub) = sub { " " (sub) } }
                }
            } }
            tbody {
                @for row in rows {
                    tr {
                        @for column in &columns {
                            @match lookup(row, column) {
                                Some(Value::Number(n)) => { td.n { (figure(&n)) } }
                                Some(other) => { td { (cell(&other)) } }
                                None => { td.muted { "–" } }
                            }
                        }
                    }
                }
                @if rows.is_empty() { tr { td.muted { "none" } } }
            }
        } }
    }
}

/// A JSON value in a cell: numbers as figures, nested values compactly.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "–".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => figure(n),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

fn figure(n: &serde_json::Number) -> String {
    match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => group(u),
        (None, Some(x)) => number(x),
        (None, None) => n.to_string(),
    }
}

/// `median_delay_s` reads as `median delay s`.
fn words(key: &str) -> String {
    key.replace('_', " ")
}
