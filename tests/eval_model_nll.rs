//! `twinflow eval` of the `model_nll` detector's alarms, on a tiny hand-made
//! log and replay whose figures are worked out by hand below.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::UInt64Array;
use common::{floats, ints, strings, write_parquet};
use twinflow::pipelines::eval::{EvalOptions, Evaluation, evaluate};

const S: i64 = 1_000_000;

/// Assets `a` (two redundant temperatures, a current and a flow) and `b`
/// (the same without flow), their truth over the seconds 0..=599 (2 × 600 s:
/// ⅓ asset-hour): temperatures 50, current 10, flow 30.
///
/// Incidents on `a`: a drift of the flow from 20 s to 90 s, a bias of the
/// current from 100 s to 200 s, false data on the current from 300.5 s to
/// 400 s, a bearing fault from 450 s to 550 s, a dropout of the flow from
/// 560 s to 590 s. On `b`: a bias of the current from 100 s to 200 s, t1
/// stuck from 270 s to 330 s, t2 forged from 400 s to 410 s.
fn write_log(log: &Path) {
    std::fs::create_dir_all(log).unwrap();
    std::fs::write(
        log.join("assets.csv"),
        "asset,line,site,kind\na,l,s,pump\nb,l,s,pump\n",
    )
    .unwrap();
    std::fs::write(
        log.join("sensors.csv"),
        "sensor,asset,channel,kind,sigma,min,max\n\
         a/t1,a,t1,temperature,1.0,0,100\n\
         a/t2,a,t2,temperature,2.0,0,100\n\
         a/current,a,current,current,0.1,0,100\n\
         a/flow,a,flow,flow,0.5,0,100\n\
         b/t1,b,t1,temperature,1.0,0,100\n\
         b/t2,b,t2,temperature,2.0,0,100\n\
         b/current,b,current,current,0.1,0,100\n",
    )
    .unwrap();
    std::fs::write(
        log.join("labels.csv"),
        "asset,sensor,kind,start_us,end_us\n\
         a,a/flow,drift,20000000,90000000\n\
         a,a/current,bias,100000000,200000000\n\
         a,a/current,false_data,300500000,400000000\n\
         a,,bearing_fault,450000000,550000000\n\
         a,a/flow,dropout,560000000,590000000\n\
         b,b/current,bias,100000000,200000000\n\
         b,b/t1,stuck,270000000,330000000\n\
         b,b/t2,forged,400000000,410000000\n",
    )
    .unwrap();
    let (mut asset, mut channel, mut ts, mut value) = (vec![], vec![], vec![], vec![]);
    for (a, channels) in [
        (
            "a",
            &[
                ("t1", 50.0),
                ("t2", 50.0),
                ("current", 10.0),
                ("flow", 30.0),
            ][..],
        ),
        ("b", &[("t1", 50.0), ("t2", 50.0), ("current", 10.0)]),
    ] {
        for &(c, v) in channels {
            for second in 0..600 {
                asset.push(a);
                channel.push(c);
                ts.push(second * S);
                value.push(v);
            }
        }
    }
    write_parquet(
        &log.join("truth.parquet"),
        vec![
            ("asset", strings(&asset)),
            ("channel", strings(&channel)),
            ("ts_us", ints(&ts)),
            ("value", floats(&value)),
        ],
    );
}

/// The flow's windows during its drift: 0.5, 1 and 2 from the truth at 20,
/// 21 and 22 s (3σ = 1.5: the drift's onset is 22 s). One fused row, and the
/// flags: `alarms` (asset, sensor, second) and a sensor suspect.
fn write_replay(out: &Path, alarms: &[(&str, &str, i64)]) {
    let windows = [(20, 30.5), (21, 31.0), (22, 32.0)];
    write_parquet(
        &out.join("windows/part-00000.parquet"),
        vec![
            ("sensor", strings(&["a/flow"; 3])),
            ("asset", strings(&["a"; 3])),
            ("window_start_us", ints(&windows.map(|w| w.0 * S))),
            ("window_end_us", ints(&windows.map(|w| (w.0 + 1) * S))),
            ("count", Arc::new(UInt64Array::from(vec![1u64; 3]))),
            ("mean", floats(&windows.map(|w| w.1))),
        ],
    );
    write_parquet(
        &out.join("fused/part-00000.parquet"),
        vec![
            ("asset", strings(&["a"])),
            ("window_start_us", ints(&[0])),
            ("quantity", strings(&["temperature"])),
            ("value", floats(&[50.0])),
            ("variance", floats(&[0.1])),
            ("lo95", floats(&[49.0])),
            ("hi95", floats(&[51.0])),
        ],
    );
    let mut flags: Vec<(&str, &str, i64, &str, &str)> = alarms
        .iter()
        .map(|&(asset, sensor, second)| (asset, sensor, second, "model_nll", "cross_channel"))
        .collect();
    flags.push(("a", "a/t1", 290, "sensor_suspect", "deviating"));
    let n = flags.len();
    write_parquet(
        &out.join("flags/part-00000.parquet"),
        vec![
            (
                "asset",
                strings(&flags.iter().map(|f| f.0).collect::<Vec<_>>()),
            ),
            (
                "sensor",
                strings(&flags.iter().map(|f| f.1).collect::<Vec<_>>()),
            ),
            (
                "window_start_us",
                ints(&flags.iter().map(|f| f.2 * S).collect::<Vec<_>>()),
            ),
            (
                "detector",
                strings(&flags.iter().map(|f| f.3).collect::<Vec<_>>()),
            ),
            (
                "reason",
                strings(&flags.iter().map(|f| f.4).collect::<Vec<_>>()),
            ),
            ("value", floats(&vec![1.0; n])),
            ("score", floats(&vec![20.0; n])),
            ("evidence", strings(&vec!["current z +8.1 (usual 1.2)"; n])),
        ],
    );
}

fn evaluate_replay(log: &Path, out: &Path) -> Evaluation {
    evaluate(&EvalOptions {
        log: log.to_path_buf(),
        out: out.to_path_buf(),
        compare_inverse_variance: false,
        mask: None,
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

/// The alarms of the first test, in seconds.
const ALARMS: [(&str, &str, i64); 10] = [
    // The flow's drift (onset 22 s): 28 s, named.
    ("a", "a/flow", 50),
    // a's current bias (from 100 s): 30 s, named.
    ("a", "a/current", 130),
    // 260 s: a's bias is explained to 200 + 60 s, exclusive: false.
    ("a", "a/current", 260),
    // 280 s: only b has an incident (t1 stuck): false.
    ("a", "a/t2", 280),
    // 295 s: its window [295, 296) meets 300.5 − 5 s: explained, but it is
    // before the false data's first window (300 s): no detection.
    ("a", "a/current", 295),
    // The false data (from 300.5 s, deadline 360.5 s): 59.5 s, not named.
    ("a", "a/flow", 360),
    // The bearing fault (from 450 s): 20 s.
    ("a", "a/t1", 470),
    // b's current bias (from 100 s, deadline 160 s): 1 s too late;
    // explained, though.
    ("b", "b/current", 161),
    // b's t1 stuck (from 270 s): 30 s, named by its redundant twin.
    ("b", "b/t2", 300),
    // During the forged events on b/t2, which explain nothing: false.
    ("b", "b/t1", 405),
];

#[test]
fn model_nll_figures_of_a_hand_made_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("log"), dir.path().join("out"));
    write_log(&log);
    write_replay(&out, &ALARMS);
    let eval = evaluate_replay(&log, &out);
    close(Some(eval.asset_hours), 1.0 / 3.0);
    // The sensor suspect is still read as one.
    assert_eq!(eval.false_suspects.suspects, 1);
    let nll = eval
        .model_nll
        .clone()
        .expect("model_nll alarms were scored");
    assert_eq!(nll.alarms, 10);

    // (kind, channels, incidents, detected, named); the forged events are left out.
    let rows: Vec<(&str, &str, u64, u64, Option<u64>)> = nll
        .detection
        .iter()
        .map(|r| {
            (
                r.kind.as_str(),
                r.channels.as_str(),
                r.incidents,
                r.detected,
                r.named,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("bearing_fault", "asset", 1, 1, None),
            ("bias", "non_redundant", 2, 1, Some(1)),
            ("drift", "non_redundant", 1, 1, Some(1)),
            ("dropout", "non_redundant", 1, 0, Some(0)),
            ("false_data", "non_redundant", 1, 1, Some(0)),
            ("stuck", "redundant", 1, 1, Some(1)),
        ]
    );
    let row = |kind: &str| nll.detection.iter().find(|r| r.kind == kind).unwrap();
    close(row("bearing_fault").median_delay_s, 20.0);
    assert_eq!(row("bearing_fault").named_share, None);
    close(row("bias").share, 0.5);
    close(row("bias").named_share, 0.5);
    close(row("bias").median_delay_s, 30.0);
    close(row("drift").median_delay_s, 28.0);
    close(row("dropout").share, 0.0);
    assert_eq!(row("dropout").median_delay_s, None);
    close(row("false_data").median_delay_s, 59.5);
    close(row("false_data").named_share, 0.0);
    close(row("stuck").median_delay_s, 30.0);
    close(row("stuck").named_share, 1.0);

    // False: a at 260 s and 280 s, b at 405 s (during forged events).
    assert_eq!(nll.false_alarms.count, 3);
    close(nll.false_alarms.per_asset_hour, 9.0);
    assert_eq!(nll.false_alarms.during_quarantined_attacks, 1);

    // Bias or false data on current: a's bias and false data detected, b's
    // bias not; a's bias alone named.
    let target = nll.target.clone().expect("the catalog has current");
    assert_eq!((target.incidents, target.detected, target.named), (3, 2, 1));
    close(target.share, 2.0 / 3.0);
    close(target.false_alarms_per_asset_hour, 9.0);
    assert_eq!(target.met, Some(false));

    let table = eval.to_string();
    for needle in ["model_nll: 10 alarms", "false_data", "59.5 s", "not met"] {
        assert!(table.contains(needle), "{needle} missing from\n{table}");
    }
    let back = Evaluation::read(&eval.write(&out).unwrap()).unwrap();
    assert_eq!(back.model_nll, eval.model_nll);
}

#[test]
fn the_target_is_met_when_every_current_lie_is_alarmed_without_false_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("log"), dir.path().join("out"));
    write_log(&log);
    // b's bias now alarmed on its deadline's window (160 s), naming t1.
    let alarms = [
        ("a", "a/current", 130),
        ("a", "a/current", 360),
        ("b", "b/t1", 160),
    ];
    write_replay(&out, &alarms);
    let nll = evaluate_replay(&log, &out).model_nll.unwrap();
    assert_eq!(nll.false_alarms.count, 0);
    let target = nll.target.unwrap();
    assert_eq!((target.incidents, target.detected, target.named), (3, 3, 2));
    assert_eq!(target.met, Some(true));
    let bias = nll.detection.iter().find(|r| r.kind == "bias").unwrap();
    close(bias.median_delay_s, 45.0);
}

#[test]
fn without_model_nll_alarms_there_is_no_section() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("log"), dir.path().join("out"));
    write_log(&log);
    write_replay(&out, &[]);
    let eval = evaluate_replay(&log, &out);
    assert_eq!(eval.model_nll, None);
    assert!(!eval.to_string().contains("model_nll"));
}

#[test]
fn an_alarm_naming_a_sensor_of_another_asset_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("log"), dir.path().join("out"));
    write_log(&log);
    write_replay(&out, &[("a", "b/current", 130)]);
    let err = evaluate(&EvalOptions {
        log,
        out,
        compare_inverse_variance: false,
        mask: None,
        progress: false,
    })
    .unwrap_err();
    assert!(err.to_string().contains("b/current"), "{err}");
}
