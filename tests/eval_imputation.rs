//! `twinflow eval` with a mask: imputation on a tiny hand-made log and
//! replay whose figures are worked out by hand below.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::UInt64Array;
use common::{floats, ints, strings, write_parquet};
use twinflow::pipelines::eval::{EvalOptions, Evaluation, evaluate};
use twinflow::pipelines::mask::{MaskCell, write_mask};

const S: i64 = 1_000_000;

/// Asset `a` with two redundant temperatures, t1 and t2, and a flow no one
/// fuses, over the seconds 0..=9. The temperatures' truth is 50 + s (its
/// spread over the log: √8.25), the flow's 10 in even seconds and 12 in odd
/// ones (spread 1).
fn write_log(log: &Path) {
    std::fs::create_dir_all(log).unwrap();
    std::fs::write(log.join("assets.csv"), "asset,line,site,kind\na,l,s,pump\n").unwrap();
    std::fs::write(
        log.join("sensors.csv"),
        "sensor,asset,channel,kind,sigma,min,max\n\
         a/t1,a,t1,temperature,1.0,0,100\n\
         a/t2,a,t2,temperature,2.0,0,100\n\
         a/flow,a,flow,flow,0.5,0,100\n",
    )
    .unwrap();
    std::fs::write(
        log.join("labels.csv"),
        "asset,sensor,kind,start_us,end_us\n",
    )
    .unwrap();
    let (mut channel, mut ts, mut value) = (vec![], vec![], vec![]);
    for second in 0..10 {
        for (c, v) in [
            ("t1", 50.0 + second as f64),
            ("t2", 50.0 + second as f64),
            ("flow", if second % 2 == 0 { 10.0 } else { 12.0 }),
        ] {
            channel.push(c);
            ts.push(second * S);
            value.push(v);
        }
    }
    write_parquet(
        &log.join("truth.parquet"),
        vec![
            ("asset", strings(&vec!["a"; ts.len()])),
            ("channel", strings(&channel)),
            ("ts_us", ints(&ts)),
            ("value", floats(&value)),
        ],
    );
}

/// The mask hides the flow at 3 and 4 s (no redundant twin), t1 at 5 and
/// 6 s (t2 still measures), and both temperatures at 8 s (the whole quantity).
fn mask_cells() -> Vec<MaskCell> {
    [
        ("flow", 3),
        ("flow", 4),
        ("t1", 5),
        ("t1", 6),
        ("t1", 8),
        ("t2", 8),
    ]
    .iter()
    .map(|&(channel, second)| MaskCell {
        asset: "a".into(),
        channel: channel.into(),
        window_start_us: second * S,
    })
    .collect()
}

/// The replay's measured windows, fused temperatures, estimates and a flag.
fn write_replay(out: &Path, windows: &[(&str, i64, f64)]) {
    write_parquet(
        &out.join("windows/part-00000.parquet"),
        vec![
            (
                "sensor",
                strings(&windows.iter().map(|w| w.0).collect::<Vec<_>>()),
            ),
            ("asset", strings(&vec!["a"; windows.len()])),
            (
                "window_start_us",
                ints(&windows.iter().map(|w| w.1 * S).collect::<Vec<_>>()),
            ),
            (
                "window_end_us",
                ints(&windows.iter().map(|w| (w.1 + 1) * S).collect::<Vec<_>>()),
            ),
            (
                "count",
                Arc::new(UInt64Array::from(vec![10u64; windows.len()])),
            ),
            (
                "mean",
                floats(&windows.iter().map(|w| w.2).collect::<Vec<_>>()),
            ),
        ],
    );
    // window start (s), value, lo95, hi95. At 5 s imputed/ has t1, so this
    // fused value is not its estimate; at 8 s no temperature was measured,
    // so neither is this one.
    let fused: [(i64, f64, f64, f64); 3] = [
        (5, 99.0, 98.0, 100.0),
        (6, 56.3, 55.9, 56.7),
        (8, 58.1, 57.0, 59.0),
    ];
    write_parquet(
        &out.join("fused/part-00000.parquet"),
        vec![
            ("asset", strings(&["a"; 3])),
            ("window_start_us", ints(&fused.map(|f| f.0 * S))),
            ("quantity", strings(&["temperature"; 3])),
            ("value", floats(&fused.map(|f| f.1))),
            ("variance", floats(&[0.1; 3])),
            ("lo95", floats(&fused.map(|f| f.2))),
            ("hi95", floats(&fused.map(|f| f.3))),
        ],
    );
    // channel, window start (s), value, variance. The flow at 1 s and t2 at
    // 6 s are not hidden: not scored.
    let imputed: [(&str, i64, f64, f64); 5] = [
        ("flow", 3, 11.5, 0.25),
        ("t1", 5, 55.2, 0.01),
        ("t1", 8, 57.5, 0.04),
        ("flow", 1, 0.0, 1.0),
        ("t2", 6, 0.0, 1.0),
    ];
    write_parquet(
        &out.join("imputed/part-00000.parquet"),
        vec![
            ("asset", strings(&["a"; 5])),
            ("window_start_us", ints(&imputed.map(|i| i.1 * S))),
            ("channel", strings(&imputed.map(|i| i.0))),
            ("value", floats(&imputed.map(|i| i.2))),
            ("variance", floats(&imputed.map(|i| i.3))),
            ("model", strings(&["gaussian"; 5])),
        ],
    );
    write_parquet(
        &out.join("flags/part-00000.parquet"),
        vec![
            ("asset", strings(&["a"])),
            ("sensor", strings(&["a/t1"])),
            ("window_start_us", ints(&[0])),
            ("detector", strings(&["ewma_z"])),
            ("reason", strings(&["outlier"])),
        ],
    );
}

/// Measured windows (sensor, second, mean): none in a hidden cell; the flow
/// has none at 1 s.
const WINDOWS: [(&str, i64, f64); 10] = [
    ("a/flow", 0, 10.0),
    ("a/flow", 2, 10.4),
    ("a/flow", 5, 11.0),
    ("a/t1", 4, 54.2),
    ("a/t1", 7, 57.3),
    ("a/t1", 9, 59.4),
    ("a/t2", 5, 55.5),
    ("a/t2", 6, 56.1),
    ("a/t2", 7, 57.0),
    ("a/t2", 9, 58.0),
];

fn evaluate_masked(log: &Path, out: &Path, mask: Option<&Path>) -> Evaluation {
    evaluate(&EvalOptions {
        log: log.to_path_buf(),
        out: out.to_path_buf(),
        compare_inverse_variance: false,
        mask: mask.map(Path::to_path_buf),
        progress: false,
    })
    .unwrap()
}

fn close(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("a figure");
    assert!(
        (actual - expected).abs() < 1e-9,
        "{actual} is not {expected}"
    );
}

/// Root mean square and mean absolute value.
fn rms(errors: &[f64]) -> f64 {
    (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt()
}

fn mean_abs(errors: &[f64]) -> f64 {
    errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64
}

#[test]
fn imputation_figures_of_a_hand_made_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out, mask) = (
        dir.path().join("log"),
        dir.path().join("out"),
        dir.path().join("mask.parquet"),
    );
    write_log(&log);
    write_replay(&out, &WINDOWS);
    write_mask(&mask, &mask_cells(), &[]).unwrap();
    let eval = evaluate_masked(&log, &out, Some(&mask));
    let imputation = eval.imputation.as_ref().expect("a mask was given");
    assert_eq!((imputation.cells, imputation.without_truth), (6, 0));
    assert!(imputation.imputed_dataset);
    let channels: Vec<(&str, u64, u64)> = imputation
        .channels
        .iter()
        .map(|r| (r.scope.as_str(), r.cells, r.imputed))
        .collect();
    assert_eq!(channels, [("t1", 3, 3), ("t2", 1, 0), ("flow", 2, 1)]);
    let row = |scope: &str| {
        imputation
            .channels
            .iter()
            .chain(&imputation.pooled)
            .find(|r| r.scope == scope)
            .unwrap()
    };
    let temperature_sd = 8.25f64.sqrt();

    // Flow (truth 12 at 3 s, 10 at 4 s). Estimate: imputed 11.5 at 3 s
    // (±1.96·0.5 holds 12), none at 4 s. Carry-forward: 10.4 (2 s) twice.
    // Interpolation from (2 s, 10.4) to (5 s, 11.0): 10.6, 10.8.
    let flow = row("flow");
    close(flow.imputed_share, 0.5);
    close(flow.estimate.rmse, 0.5);
    close(flow.estimate.mae, 0.5);
    close(flow.estimate.nrmse, 0.5);
    close(flow.coverage95, 1.0);
    let carried = [10.4 - 12.0, 10.4 - 10.0];
    close(flow.carry_forward.rmse, rms(&carried));
    close(flow.carry_forward.mae, mean_abs(&carried));
    close(flow.carry_forward.nrmse, rms(&carried));
    let interpolated = [10.6 - 12.0, 10.8 - 10.0];
    close(flow.interpolation.rmse, rms(&interpolated));
    close(flow.interpolation.mae, mean_abs(&interpolated));

    // t1 (truth 55, 56, 58). Estimates: imputed 55.2 at 5 s (±0.196 misses
    // 55), fused 56.3 at 6 s (t2 measured; [55.9, 56.7] holds 56), imputed
    // 57.5 at 8 s (±0.392 misses 58). Carry-forward: 54.2 (4 s), 54.2, 57.3
    // (7 s). Interpolation: (4 s, 54.2) to (7 s, 57.3) at 5 and 6 s, (7 s,
    // 57.3) to (9 s, 59.4) at 8 s.
    let t1 = row("t1");
    assert_eq!(t1.sources["gaussian"], 2);
    assert_eq!(t1.sources["fused/"], 1);
    let estimated = [0.2, 0.3, -0.5];
    close(t1.estimate.rmse, rms(&estimated));
    close(t1.estimate.mae, mean_abs(&estimated));
    close(t1.estimate.nrmse, rms(&estimated) / temperature_sd);
    close(t1.coverage95, 1.0 / 3.0);
    let carried_t1 = [54.2 - 55.0, 54.2 - 56.0, 57.3 - 58.0];
    close(t1.carry_forward.rmse, rms(&carried_t1));
    close(t1.carry_forward.mae, mean_abs(&carried_t1));
    let slope = (57.3 - 54.2) / 3.0;
    let interpolated_t1 = [
        54.2 + slope - 55.0,
        54.2 + 2.0 * slope - 56.0,
        (57.3 + 59.4) / 2.0 - 58.0,
    ];
    close(t1.interpolation.rmse, rms(&interpolated_t1));
    close(t1.interpolation.mae, mean_abs(&interpolated_t1));
    close(
        t1.interpolation.nrmse,
        rms(&interpolated_t1) / temperature_sd,
    );

    // t2 at 8 s: no imputed row, and fused/ does not count (no temperature
    // measured then). Carry-forward 57.0, interpolation 57.5 (truth 58).
    let t2 = row("t2");
    assert_eq!(t2.estimate.cells, 0);
    assert_eq!((t2.estimate.rmse, t2.coverage95), (None, None));
    close(t2.carry_forward.rmse, 1.0);
    close(t2.interpolation.mae, 0.5);

    // Pooled, in nRMSE: every error over its channel's spread.
    let all = row("all");
    assert_eq!((all.cells, all.imputed), (6, 4));
    assert_eq!((all.estimate.rmse, all.estimate.mae), (None, None));
    let normalised = [
        -0.5,
        0.2 / temperature_sd,
        0.3 / temperature_sd,
        -0.5 / temperature_sd,
    ];
    close(all.estimate.nrmse, rms(&normalised));
    close(all.coverage95, 2.0 / 4.0);
    let carried_all = [
        carried[0],
        carried[1],
        carried_t1[0] / temperature_sd,
        carried_t1[1] / temperature_sd,
        carried_t1[2] / temperature_sd,
        -1.0 / temperature_sd,
    ];
    close(all.carry_forward.nrmse, rms(&carried_all));
    // By block kind: the flow's cells; t1 at 5 and 6 s; both at 8 s.
    let kinds: Vec<(&str, u64, u64)> = imputation
        .pooled
        .iter()
        .map(|r| (r.scope.as_str(), r.cells, r.imputed))
        .collect();
    assert_eq!(
        kinds,
        [
            ("all", 6, 4),
            ("non_redundant", 2, 1),
            ("one_sensor", 2, 2),
            ("whole_quantity", 2, 1)
        ]
    );
    close(row("non_redundant").estimate.nrmse, 0.5);
    close(
        row("one_sensor").estimate.nrmse,
        rms(&[0.2, 0.3]) / temperature_sd,
    );
    close(
        row("whole_quantity").carry_forward.nrmse,
        rms(&[-0.7, -1.0]) / temperature_sd,
    );

    // eval.json holds it, and the table shows it.
    let back = Evaluation::read(&eval.write(&out).unwrap()).unwrap();
    assert_eq!(back.imputation.as_ref().unwrap().channels.len(), 3);
    let table = eval.to_string();
    for needle in [
        "imputation on the 6 hidden cells",
        "whole_quantity",
        "cf nrmse",
    ] {
        assert!(table.contains(needle), "{needle} missing from\n{table}");
    }
}

#[test]
fn eval_finds_the_mask_the_replay_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out, mask) = (
        dir.path().join("log"),
        dir.path().join("out"),
        dir.path().join("mask.parquet"),
    );
    write_log(&log);
    write_replay(&out, &WINDOWS);
    write_mask(&mask, &mask_cells(), &[]).unwrap();
    assert!(evaluate_masked(&log, &out, None).imputation.is_none());
    let summary = serde_json::json!({ "mask": mask });
    std::fs::write(out.join("summary.json"), summary.to_string()).unwrap();
    let eval = evaluate_masked(&log, &out, None);
    assert_eq!(eval.imputation.unwrap().mask, mask);
}

#[test]
fn a_replay_that_was_not_masked_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out, mask) = (
        dir.path().join("log"),
        dir.path().join("out"),
        dir.path().join("mask.parquet"),
    );
    write_log(&log);
    // t1 measured at 5 s, which the mask hides.
    let mut windows = WINDOWS.to_vec();
    windows.push(("a/t1", 5, 55.0));
    write_replay(&out, &windows);
    write_mask(&mask, &mask_cells(), &[]).unwrap();
    let error = evaluate(&EvalOptions {
        log,
        out,
        compare_inverse_variance: false,
        mask: Some(mask),
        progress: false,
    })
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("1 windows lie in cells the mask hides"),
        "{error}"
    );
}

#[test]
fn a_quantity_imputed_estimates_its_sensors_without_rows_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out, mask) = (
        dir.path().join("log"),
        dir.path().join("out"),
        dir.path().join("mask.parquet"),
    );
    write_log(&log);
    write_replay(&out, &WINDOWS);
    write_mask(&mask, &mask_cells(), &[]).unwrap();
    // Temperature at 8 s, both sensors hidden: t2 takes it (error 0.2), t1
    // keeps its own row (57.5).
    let quantity_row = |channel: &str| {
        vec![
            ("asset", strings(&["a"])),
            ("window_start_us", ints(&[8 * S])),
            ("channel", strings(&[channel])),
            ("value", floats(&[58.2])),
            ("variance", floats(&[0.01])),
            ("model", strings(&["mixture"])),
        ]
    };
    let part = out.join("imputed/part-00001.parquet");
    write_parquet(&part, quantity_row("temperature"));
    let eval = evaluate_masked(&log, &out, Some(&mask));
    let imputation = eval.imputation.unwrap();
    let row = |scope: &str| {
        imputation
            .channels
            .iter()
            .find(|r| r.scope == scope)
            .unwrap()
    };
    assert_eq!(row("t2").sources["mixture"], 1);
    close(row("t2").estimate.rmse, 0.2);
    close(row("t1").estimate.rmse, rms(&[0.2, 0.3, -0.5]));

    // A name that is neither a channel nor a quantity of the asset is refused.
    write_parquet(&part, quantity_row("flux"));
    let error = evaluate(&EvalOptions {
        log,
        out,
        compare_inverse_variance: false,
        mask: Some(mask),
        progress: false,
    })
    .unwrap_err();
    assert!(error.to_string().contains("\"a/flux\""), "{error}");
}
