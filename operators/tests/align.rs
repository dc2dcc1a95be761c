//! Alignment fills: carry-forward up to its age limit, linear interpolation
//! within its span, nearest within tolerance; rows come out once, in order,
//! as soon as every channel is decided, identically on any number of workers.

use timely::dataflow::InputHandle;
use timely::dataflow::operators::capture::{Capture, Event};
use twinflow_engine::catalog::Catalog;
use twinflow_engine::time::{Micros, SECOND};
use twinflow_operators::align::{AlignWindows, AlignedRow, Alignment, Fill, Source};
use twinflow_operators::stats::Stats;
use twinflow_operators::window::Window;

/// One pump with channels `a` (carry-forward 2 s), `b` (linear, span 4 s)
/// and `c` (nearest, 2 s); sensor ids 0, 1, 2.
fn alignment() -> Alignment {
    let entries: Vec<(String, String, String)> = ["a", "b", "c"]
        .iter()
        .map(|c| (format!("p/{c}"), "p".to_owned(), "x".to_owned()))
        .collect();
    let catalog = Catalog::discovered(&entries).unwrap();
    Alignment::from_catalog(
        &catalog,
        SECOND,
        Fill::CarryForward {
            max_age: 2 * SECOND,
        },
    )
    .with_fill(
        "b",
        Fill::Linear {
            max_span: 4 * SECOND,
        },
    )
    .with_fill(
        "c",
        Fill::Nearest {
            tolerance: 2 * SECOND,
        },
    )
}

/// Aligns windows (sensor, window index, value), each sent at its window's
/// end; returns the rows with the time each came out at.
fn align(windows: &[(u32, i64, f64)], workers: usize) -> Vec<(Micros, AlignedRow)> {
    let windows = windows.to_vec();
    let results = timely::execute(timely::Config::process(workers), move |worker| {
        let mut input = InputHandle::new();
        let captured = worker
            .dataflow::<Micros, _, _>(|scope| input.to_stream(scope).align(alignment()).capture());
        let mut windows = windows.clone();
        windows.sort_by_key(|(_, k, _)| *k);
        for (sensor, k, value) in windows {
            input.advance_to((k + 1) * SECOND);
            if worker.index() == 0 {
                let mut stats = Stats::default();
                stats.push(k * SECOND, value);
                input.send(Window {
                    key: sensor,
                    start_us: k * SECOND,
                    end_us: (k + 1) * SECOND,
                    aggregate: stats,
                });
            }
            worker.step();
        }
        input.close();
        while worker.step() {}
        captured
            .try_iter()
            .flat_map(|event| match event {
                Event::Messages(stamp, rows) => {
                    let time = *stamp.least().expect("a stamped message");
                    rows.into_iter().map(|r| (time, r)).collect()
                }
                Event::Progress(_) => Vec::new(),
            })
            .collect::<Vec<_>>()
    })
    .unwrap();
    let mut rows: Vec<(Micros, AlignedRow)> = results
        .join()
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    rows.sort_by_key(|(_, r)| r.start_us);
    rows
}

/// (value, source) of channel `c` in the row of window `k`.
fn cell(rows: &[(Micros, AlignedRow)], k: i64, c: usize) -> (Option<f64>, Source) {
    let (_, row) = rows
        .iter()
        .find(|(_, r)| r.start_us == k * SECOND)
        .unwrap_or_else(|| panic!("no row for window {k}"));
    (row.values[c].value, row.values[c].source)
}

/// `a` reports in every window 0..=12; `b` in 1, 4, 5 and 11; `c` in 0 and 5.
fn windows() -> Vec<(u32, i64, f64)> {
    let mut windows: Vec<(u32, i64, f64)> = (0..=12).map(|k| (0, k, k as f64)).collect();
    windows.extend([(1, 1, 10.0), (1, 4, 40.0), (1, 5, 50.0), (1, 11, 110.0)]);
    windows.extend([(2, 0, 0.5), (2, 5, 5.5)]);
    windows
}

#[test]
fn linear_interpolates_within_its_span_and_leaves_wider_gaps_missing() {
    let rows = align(&windows(), 1);
    assert_eq!(cell(&rows, 1, 1), (Some(10.0), Source::Measured));
    // 10 at window 1, 40 at window 4: a third and two thirds of the way.
    let (two, source) = cell(&rows, 2, 1);
    assert_eq!(source, Source::Interpolated);
    assert!((two.unwrap() - 20.0).abs() < 1e-12);
    assert!((cell(&rows, 3, 1).0.unwrap() - 30.0).abs() < 1e-12);
    // 5 and 11 are 6 s apart, beyond the 4 s span: missing, not invented.
    for k in 6..=10 {
        assert_eq!(cell(&rows, k, 1), (None, Source::Missing), "window {k}");
    }
    // After the last window of `b`, nothing comes: missing.
    assert_eq!(cell(&rows, 12, 1), (None, Source::Missing));
    // Before the first, nothing to interpolate from.
    assert_eq!(cell(&rows, 0, 1), (None, Source::Missing));
}

#[test]
fn nearest_takes_the_closer_window_and_the_earlier_on_a_tie() {
    let rows = align(&windows(), 1);
    assert_eq!(cell(&rows, 1, 2), (Some(0.5), Source::Nearest));
    // Window 2: 2 s after window 0, 3 s before window 5.
    assert_eq!(cell(&rows, 2, 2), (Some(0.5), Source::Nearest));
    // Window 3: 3 s after window 0 is beyond tolerance; window 5 is 2 s away.
    assert_eq!(cell(&rows, 3, 2), (Some(5.5), Source::Nearest));
    assert_eq!(cell(&rows, 7, 2), (Some(5.5), Source::Nearest));
    assert_eq!(cell(&rows, 8, 2), (None, Source::Missing));
}

#[test]
fn carry_forward_stops_at_its_age_limit() {
    // `a` stops after window 3; `c` reports in window 6 so that window has a row.
    let mut windows = windows();
    windows.retain(|(sensor, k, _)| !(*sensor == 0 && (4..=6).contains(k)));
    windows.push((2, 6, 6.5));
    let rows = align(&windows, 1);
    assert_eq!(cell(&rows, 4, 0), (Some(3.0), Source::Carried));
    assert_eq!(cell(&rows, 5, 0), (Some(3.0), Source::Carried));
    // Three windows after window 3: beyond 2 s.
    assert_eq!(cell(&rows, 6, 0), (None, Source::Missing));
    // The row says when the sensor was last seen.
    let (_, row) = rows.iter().find(|(_, r)| r.start_us == 6 * SECOND).unwrap();
    assert_eq!(row.values[0].last_seen_us, Some(3 * SECOND));
}

#[test]
fn rows_come_out_once_in_order_when_decided_and_alike_on_any_worker_count() {
    let one = align(&windows(), 1);
    let starts: Vec<i64> = one.iter().map(|(_, r)| r.start_us / SECOND).collect();
    assert_eq!(starts, (0..=12).collect::<Vec<_>>());
    for (time, row) in &one {
        assert!(*time >= row.end_us, "a row before its window closed");
    }
    // Window 2 waits for `b`'s window 4 (closing at 5 s) to interpolate.
    let (time, _) = one.iter().find(|(_, r)| r.start_us == 2 * SECOND).unwrap();
    assert_eq!(*time, 5 * SECOND);
    // Window 6 waits until `b` cannot get a partner within its span any more:
    // window 5 + 4 s = window 9, closing at 10 s; `c` waits until window 8 closes.
    let (time, _) = one.iter().find(|(_, r)| r.start_us == 6 * SECOND).unwrap();
    assert_eq!(*time, 10 * SECOND);
    let rows = |r: Vec<(Micros, AlignedRow)>| r.into_iter().map(|(_, r)| r).collect::<Vec<_>>();
    assert_eq!(rows(align(&windows(), 3)), rows(one));
}
