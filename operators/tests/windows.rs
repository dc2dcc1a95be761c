//! Tumbling, sliding and session windows equal a plain batch computation, with
//! one worker and with three (runs spread over workers), bit for bit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::Inspect;
use twinflow_engine::event::Reading;
use twinflow_operators::stats::Stats;
use twinflow_operators::window::{EventTimeWindows, Windows};

/// Records of 4 sensors in 6 runs; within a run, in arrival order.
fn records() -> Vec<Reading> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    let mut out = Vec::new();
    for run in 0..6u32 {
        for _ in 0..300 {
            out.push(Reading {
                sensor: rng.random_range(0..4),
                run,
                ts_us: rng.random_range(0..20_000_000),
                value: rng.random_range(-5.0..5.0),
                arrival_us: 20_000_000,
            });
        }
    }
    out
}

type Key = (u32, i64, i64);
type Result = (u64, f64, f64, f64, f64);

/// Runs the window operator on `workers` threads; worker `w` feeds runs `w, w+W, …`.
fn run_operator(windows: Windows, workers: usize) -> BTreeMap<Key, Result> {
    let collected = Arc::new(Mutex::new(BTreeMap::new()));
    let sink = Arc::clone(&collected);
    let records = records();
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut input = InputHandle::new();
        let sink = Arc::clone(&sink);
        worker.dataflow::<i64, _, _>(|scope| {
            input
                .to_stream(scope)
                .window::<Stats>(windows)
                .inspect(move |w| {
                    let a = &w.aggregate;
                    let previous = sink.lock().unwrap().insert(
                        (w.key, w.start_us, w.end_us),
                        (a.count, a.mean(), a.min, a.max, a.last),
                    );
                    assert!(previous.is_none(), "window emitted twice");
                });
        });
        let (index, peers) = (worker.index(), worker.peers());
        // Each run is sent in batches of 100 records, as a log reader would:
        // the same batches whatever the worker count.
        for run in (0..6u32).filter(|run| *run as usize % peers == index) {
            let of_run: Vec<Reading> = records.iter().filter(|r| r.run == run).copied().collect();
            for chunk in of_run.chunks(100) {
                input.send_batch(&mut chunk.to_vec());
            }
        }
        input.close();
        while worker.step() {}
    })
    .unwrap();
    Arc::try_unwrap(collected).unwrap().into_inner().unwrap()
}

/// The batch reference: assign windows, fold in (run, arrival) order.
fn batch(windows: Windows) -> BTreeMap<Key, Result> {
    let records = records(); // already in (run, arrival) order
    let mut groups: BTreeMap<Key, Vec<&Reading>> = BTreeMap::new();
    match windows {
        Windows::Tumbling { size } => {
            for r in &records {
                let s = r.ts_us.div_euclid(size) * size;
                groups.entry((r.sensor, s, s + size)).or_default().push(r);
            }
        }
        Windows::Sliding { size, slide } => {
            for r in &records {
                let mut s = r.ts_us.div_euclid(slide) * slide;
                while s + size > r.ts_us {
                    groups.entry((r.sensor, s, s + size)).or_default().push(r);
                    s -= slide;
                }
            }
        }
        Windows::Session { gap } => {
            for sensor in 0..4 {
                let mut times: Vec<i64> = records
                    .iter()
                    .filter(|r| r.sensor == sensor)
                    .map(|r| r.ts_us)
                    .collect();
                times.sort();
                let mut sessions: Vec<(i64, i64)> = Vec::new();
                for t in times {
                    match sessions.last_mut() {
                        Some((_, last)) if t - *last < gap => *last = t,
                        _ => sessions.push((t, t)),
                    }
                }
                for r in records.iter().filter(|r| r.sensor == sensor) {
                    let (first, last) = *sessions
                        .iter()
                        .find(|(f, l)| *f <= r.ts_us && r.ts_us <= *l)
                        .unwrap();
                    groups
                        .entry((sensor, first, last + gap))
                        .or_default()
                        .push(r);
                }
            }
        }
    }
    groups
        .into_iter()
        .map(|(k, rs)| {
            let n = rs.len() as f64;
            let mean = rs.iter().map(|r| r.value).sum::<f64>() / n;
            let min = rs.iter().map(|r| r.value).fold(f64::INFINITY, f64::min);
            let max = rs.iter().map(|r| r.value).fold(f64::NEG_INFINITY, f64::max);
            let max_ts = rs.iter().map(|r| r.ts_us).max().unwrap();
            let last = rs.iter().rev().find(|r| r.ts_us == max_ts).unwrap().value;
            (k, (rs.len() as u64, mean, min, max, last))
        })
        .collect()
}

fn assert_close(actual: &BTreeMap<Key, Result>, expected: &BTreeMap<Key, Result>) {
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (k, a) in actual {
        let e = expected[k];
        assert_eq!((a.0, a.2, a.3, a.4), (e.0, e.2, e.3, e.4), "window {k:?}");
        assert!(
            (a.1 - e.1).abs() < 1e-9,
            "mean of {k:?}: {} vs {}",
            a.1,
            e.1
        );
    }
}

fn check(windows: Windows) {
    let expected = batch(windows);
    let one = run_operator(windows, 1);
    assert_close(&one, &expected);
    let three = run_operator(windows, 3);
    // Bit-identical across worker counts.
    assert_eq!(one, three);
}

#[test]
fn tumbling() {
    check(Windows::Tumbling { size: 1_000_000 });
}

#[test]
fn sliding() {
    check(Windows::Sliding {
        size: 3_000_000,
        slide: 1_000_000,
    });
}

#[test]
fn session() {
    check(Windows::Session { gap: 40_000 });
}
