//! The twin views are maintained incrementally: at every point in time they
//! equal a from-scratch computation over the inputs seen so far, replaying in
//! two halves (the second continuing from the first) ends where one pass
//! ends, moving an asset changes exactly the rows it should, and windows
//! stamped ahead never move a line's now.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use timely::dataflow::operators::Probe;
use timely::dataflow::operators::capture::{Capture, Event};
use timely::dataflow::{InputHandle, ProbeHandle};
use twinflow_engine::catalog::{AssetId, AssetRecord, Catalog, SensorRecord};
use twinflow_engine::time::{Micros, SECOND};
use twinflow_operators::align::{AlignedRow, AlignedValue, Source, WindowShape};
use twinflow_operators::fuse::{FusedRow, FusedValue};
use twinflow_operators::trust::{SensorTrust, TrustState};
use twinflow_operators::twin::{
    AssetClock, AssetTwin, BuildTwinViews, CatalogChange, Health, Hierarchy, Place, Rollup,
};

const ASSETS: u32 = 6;
const WINDOWS: i64 = 40;
const CHANNELS: usize = 3;

/// Three assets on each of two lines of one site.
fn catalog() -> Catalog {
    let assets = (0..ASSETS)
        .map(|a| AssetRecord {
            asset: format!("asset-{a}"),
            line: format!("line-{}", a / 3),
            site: "site-0".into(),
            kind: "pump".into(),
        })
        .collect();
    let sensors = (0..ASSETS)
        .flat_map(|a| {
            (0..CHANNELS).map(move |c| SensorRecord {
                sensor: format!("asset-{a}/ch-{c}"),
                asset: format!("asset-{a}"),
                channel: format!("ch-{c}"),
                kind: "temperature".into(),
                sigma: 1.0,
                min: -100.0,
                max: 100.0,
                rate_hz: None,
                quantity: None,
            })
        })
        .collect();
    Catalog::new(assets, sensors).unwrap()
}

/// The inputs of the views, each with the time it is sent at (its window's end).
struct Inputs {
    rows: Vec<(Micros, FusedRow)>,
    flags: Vec<(Micros, (AssetId, Micros))>,
}

/// A measured window of `readings` readings, `ahead` of them stamped ahead.
fn shape(readings: u64, ahead: u64) -> Option<WindowShape> {
    Some(WindowShape {
        readings,
        spread: None,
        ahead,
    })
}

/// Random rows for every asset and window (some assets skip some windows),
/// with measured, carried and missing channels, and random flags. In one
/// row in five every measured window holds mostly readings stamped ahead;
/// in the others some may, or exactly half of them may (not mostly).
fn inputs(seed: u64) -> Inputs {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut rows, mut flags) = (Vec::new(), Vec::new());
    for k in 0..WINDOWS {
        let (start, end) = (k * SECOND, (k + 1) * SECOND);
        for asset in 0..ASSETS {
            if rng.random_bool(0.1) {
                continue;
            }
            let clock_ahead = rng.random_bool(0.2);
            let values = (0..CHANNELS)
                .map(|_| {
                    let source = match rng.random_range(0..10) {
                        0 => Source::Missing,
                        1 => Source::Carried,
                        _ => Source::Measured,
                    };
                    let value = (source != Source::Missing).then(|| rng.random_range(20.0..80.0));
                    let readings = rng.random_range(1..=4u64);
                    let ahead = match rng.random_range(0..4) {
                        _ if clock_ahead => readings / 2 + 1,
                        0 => readings / 2 + 1,
                        1 => readings / 2,
                        _ => 0,
                    };
                    AlignedValue {
                        value,
                        source,
                        last_seen_us: Some(start),
                        window: (source == Source::Measured)
                            .then(|| shape(readings, ahead))
                            .flatten(),
                    }
                })
                .collect();
            let fused = (rng.random_range(0..4) > 0).then(|| FusedValue {
                value: rng.random_range(20.0..80.0),
                variance: 0.5,
                sensors: 2,
            });
            let row = AlignedRow {
                asset,
                start_us: start,
                end_us: end,
                values,
            };
            rows.push((
                end,
                FusedRow {
                    row,
                    values: vec![fused],
                    // Now and then fusion has excluded a sensor of the asset.
                    trust: rng
                        .random_bool(0.1)
                        .then_some(SensorTrust {
                            sensor: 0,
                            trust: 0.0,
                            weight: 0.0,
                            state: TrustState::Excluded,
                            residual: None,
                        })
                        .into_iter()
                        .collect(),
                    suspects: Vec::new(),
                    imputed: Vec::new(),
                    surprise: None,
                },
            ));
            if rng.random_bool(0.08) {
                flags.push((end, (asset, start)));
            }
        }
    }
    Inputs { rows, flags }
}

/// Every view's change stream, as captured.
#[derive(Default)]
struct Changes {
    assets: Vec<((AssetId, AssetTwin), Micros, isize)>,
    lines: Vec<((u32, Rollup), Micros, isize)>,
    sites: Vec<((u32, Rollup), Micros, isize)>,
}

/// Everything a captured stream carried.
fn drain<D>(events: std::sync::mpsc::Receiver<Event<Micros, Vec<D>>>) -> Vec<D> {
    events
        .try_iter()
        .flat_map(|event| match event {
            Event::Messages(_, data) => data,
            Event::Progress(_) => Vec::new(),
        })
        .collect()
}

/// A view as of `time`: the changes up to it, accumulated.
fn as_of<D: Ord + Clone>(changes: &[(D, Micros, isize)], time: Micros) -> BTreeMap<D, isize> {
    let mut view = BTreeMap::new();
    for (row, t, diff) in changes {
        if *t <= time {
            *view.entry(row.clone()).or_default() += diff;
        }
    }
    view.retain(|_, n| *n != 0);
    view
}

/// Runs the views over `inputs` on `workers` workers, feeding the first
/// `WINDOWS` windows in `parts` consecutive slices and letting the views
/// settle after each one (so the second slice continues from the state the
/// first left), then any later windows; returns the change streams.
fn run(inputs: Arc<Inputs>, hierarchy: Arc<Hierarchy>, workers: usize, parts: i64) -> Changes {
    let config = timely::Config::process(workers);
    let results = timely::execute(config, move |worker| {
        let index = worker.index();
        let mut rows = InputHandle::new();
        let mut flags = InputHandle::new();
        let probe = ProbeHandle::new();
        let (assets, lines, sites) = worker.dataflow::<Micros, _, _>(|scope| {
            let flag_stream = flags.to_stream(scope);
            let views = rows
                .to_stream(scope)
                .twin_views(flag_stream, hierarchy.places(scope));
            let lines = views.lines.inner.probe_with(&probe).capture();
            (
                views.assets.inner.capture(),
                lines,
                views.sites.inner.capture(),
            )
        });
        // The last window of each slice; after it, the views settle before
        // the next slice is fed.
        let slice_ends: Vec<i64> = (1..=parts).map(|p| p * WINDOWS / parts).collect();
        let last_end = inputs.rows.iter().map(|(end, _)| *end).max().unwrap_or(0);
        for k in 1..=last_end / SECOND {
            let time = k * SECOND;
            rows.advance_to(time);
            flags.advance_to(time);
            // Worker 0 feeds everything; the views route it to the assets' workers.
            if index == 0 {
                for (_, row) in inputs.rows.iter().filter(|(t, _)| *t == time) {
                    rows.send(row.clone());
                }
                for (_, flag) in inputs.flags.iter().filter(|(t, _)| *t == time) {
                    flags.send(*flag);
                }
            }
            if slice_ends.contains(&k) {
                rows.advance_to(time + 1);
                flags.advance_to(time + 1);
                worker.step_while(|| probe.less_than(&(time + 1)));
            }
        }
        rows.close();
        flags.close();
        while worker.step() {}
        (drain(assets), drain(lines), drain(sites))
    })
    .unwrap();
    let mut changes = Changes::default();
    for result in results.join() {
        let (assets, lines, sites) = result.unwrap();
        changes.assets.extend(assets);
        changes.lines.extend(lines);
        changes.sites.extend(sites);
    }
    changes
}

/// An asset in the view: where it sits, its latest row's start, its flags,
/// its health, and its clock (start and whether measured).
type AssetRow = (Place, Micros, u64, Health, Option<(Micros, bool)>);

/// Whether a row's windows were all stamped ahead: it has measured values,
/// and more than half the readings of each arrived ahead.
fn only_ahead(row: &FusedRow) -> bool {
    let measured: Vec<&AlignedValue> = row
        .row
        .values
        .iter()
        .filter(|v| v.source == Source::Measured)
        .collect();
    !measured.is_empty()
        && measured.iter().all(|v| {
            let window = v.window.unwrap();
            2 * window.ahead > window.readings
        })
}

/// The asset view from scratch: per asset in the plant as of `time`, its
/// newest row sent by then, its flags by then, its health, and its newest
/// row sent by then not stamped ahead.
fn expected_assets(
    inputs: &Inputs,
    places: &BTreeMap<AssetId, Place>,
    time: Micros,
) -> BTreeMap<AssetId, AssetRow> {
    let mut view = BTreeMap::new();
    for (&asset, &place) in places {
        let sent = || {
            inputs
                .rows
                .iter()
                .filter(move |(t, r)| *t <= time && r.row.asset == asset)
                .map(|(_, r)| r)
        };
        let Some(latest) = sent().max_by_key(|r| r.row.start_us) else {
            continue;
        };
        let clock = sent()
            .filter(|r| !only_ahead(r))
            .max_by_key(|r| r.row.start_us)
            .map(|r| {
                let measured = r.row.values.iter().any(|v| v.source == Source::Measured);
                (r.row.start_us, measured)
            });
        let flags: Vec<Micros> = inputs
            .flags
            .iter()
            .filter(|(t, (a, _))| *t <= time && *a == asset)
            .map(|(_, (_, start))| *start)
            .collect();
        let sources: Vec<Source> = latest.row.values.iter().map(|v| v.source).collect();
        let health = if flags.contains(&latest.row.start_us) {
            Health::Alarm
        } else if sources.contains(&Source::Missing) {
            Health::Stale
        } else if sources.iter().any(|s| *s != Source::Measured)
            || latest.trust.iter().any(|t| t.state == TrustState::Excluded)
        {
            Health::Degraded
        } else {
            Health::Ok
        };
        view.insert(
            asset,
            (
                place,
                latest.row.start_us,
                flags.len() as u64,
                health,
                clock,
            ),
        );
    }
    view
}

/// A line rollup from scratch, from the expected asset view.
struct ExpectedLine {
    assets: u64,
    with_flags: u64,
    mean: Option<f64>,
    worst: Health,
    now: Micros,
    reporting: u64,
}

/// A line rollup from scratch, from the expected asset view; its now is the
/// newest of the members' clocks, and the members whose clock is there and
/// measured report.
fn expected_line(inputs: &Inputs, assets: &BTreeMap<AssetId, AssetRow>, line: u32) -> ExpectedLine {
    let members: Vec<(&FusedRow, Option<(Micros, bool)>)> = assets
        .iter()
        .filter(|(_, (p, ..))| p.line == line)
        .map(|(asset, (_, start, .., clock))| {
            let (_, row) = inputs
                .rows
                .iter()
                .find(|(_, r)| r.row.asset == *asset && r.row.start_us == *start)
                .unwrap();
            (row, *clock)
        })
        .collect();
    let with_flags = assets
        .values()
        .filter(|(p, _, f, ..)| p.line == line && *f > 0)
        .count() as u64;
    let fused: Vec<f64> = members
        .iter()
        .filter_map(|(row, _)| Some(row.values[0]?.value))
        .collect();
    let mean = (!fused.is_empty()).then(|| fused.iter().sum::<f64>() / fused.len() as f64);
    let worst = assets
        .values()
        .filter(|(p, ..)| p.line == line)
        .map(|(_, _, _, h, _)| *h)
        .max()
        .unwrap();
    let now = members
        .iter()
        .filter_map(|(_, clock)| Some((*clock)?.0))
        .max()
        .unwrap_or(Micros::MIN);
    let reporting = members
        .iter()
        .filter(|(_, clock)| *clock == Some((now, true)))
        .count() as u64;
    ExpectedLine {
        assets: members.len() as u64,
        with_flags,
        mean,
        worst,
        now,
        reporting,
    }
}

/// Checks the views as of `time` against a recomputation.
fn check_view_at(
    changes: &Changes,
    inputs: &Inputs,
    hierarchy: &Hierarchy,
    catalog: &Catalog,
    time: Micros,
) {
    let places: BTreeMap<AssetId, Place> = (0..ASSETS)
        .map(|a| {
            let record = catalog.asset(a);
            (a, place_of(hierarchy, &record.line, &record.site))
        })
        .collect();
    let expected = expected_assets(inputs, &places, time);
    let actual: BTreeMap<AssetId, AssetRow> = as_of(&changes.assets, time)
        .into_iter()
        .map(|((asset, twin), count)| {
            assert_eq!(count, 1, "asset {asset} is in the view {count} times");
            let state = &twin.state;
            let clock = state
                .clock
                .map(|AssetClock { start_us, measured }| (start_us, measured));
            (
                asset,
                (
                    twin.place,
                    state.latest.row.start_us,
                    state.flags,
                    state.health,
                    clock,
                ),
            )
        })
        .collect();
    assert_eq!(actual, expected, "asset view at {time}");
    let lines = as_of(&changes.lines, time);
    for line in 0..2u32 {
        let expected = expected_line(inputs, &expected, line);
        let rollup = lines
            .keys()
            .find(|(l, _)| *l == line)
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("no rollup of line {line} at {time}"));
        assert_eq!(
            (
                rollup.assets,
                rollup.assets_with_flags,
                rollup.worst_health,
                rollup.newest_us,
                rollup.assets_reporting
            ),
            (
                expected.assets,
                expected.with_flags,
                expected.worst,
                expected.now,
                expected.reporting
            ),
            "line {line} at {time}"
        );
        let actual_mean = rollup.mean_fused[0].map(|m| m.0);
        match (actual_mean, expected.mean) {
            (Some(a), Some(e)) => assert!((a - e).abs() < 1e-9, "line {line} mean at {time}"),
            (a, e) => assert_eq!(a, e, "line {line} mean at {time}"),
        }
    }
}

fn place_of(hierarchy: &Hierarchy, line: &str, site: &str) -> Place {
    let id = |name: &dyn Fn(u32) -> String, want: &str| (0..).find(|i| name(*i) == want).unwrap();
    Place {
        line: id(&|i| hierarchy.line_name(i).to_owned(), line),
        site: id(&|i| hierarchy.site_name(i).to_owned(), site),
    }
}

#[test]
fn views_equal_a_recomputation_at_every_time() {
    let catalog = catalog();
    let hierarchy = Arc::new(Hierarchy::new(&catalog, &[]));
    let inputs = Arc::new(inputs(7));
    for workers in [1, 3] {
        let changes = run(Arc::clone(&inputs), Arc::clone(&hierarchy), workers, 1);
        for k in [1, 7, 20, WINDOWS] {
            check_view_at(&changes, &inputs, &hierarchy, &catalog, k * SECOND);
        }
    }
}

#[test]
fn two_halves_end_where_one_pass_ends() {
    let catalog = catalog();
    let hierarchy = Arc::new(Hierarchy::new(&catalog, &[]));
    let inputs = Arc::new(inputs(11));
    let whole = run(Arc::clone(&inputs), Arc::clone(&hierarchy), 2, 1);
    let halves = run(Arc::clone(&inputs), Arc::clone(&hierarchy), 2, 2);
    // After the first half, the views are those of the first half's inputs ...
    check_view_at(&halves, &inputs, &hierarchy, &catalog, WINDOWS / 2 * SECOND);
    // ... and after the second, those of one pass over everything.
    assert_eq!(
        as_of(&halves.assets, Micros::MAX),
        as_of(&whole.assets, Micros::MAX)
    );
    assert_eq!(
        as_of(&halves.lines, Micros::MAX),
        as_of(&whole.lines, Micros::MAX)
    );
    assert_eq!(
        as_of(&halves.sites, Micros::MAX),
        as_of(&whole.sites, Micros::MAX)
    );
    check_view_at(&halves, &inputs, &hierarchy, &catalog, Micros::MAX);
}

#[test]
fn moving_an_asset_changes_both_lines_at_that_time_and_nothing_else() {
    let catalog = catalog();
    // Asset 1 moves from line-0 to line-1 half-way through window 20, when no
    // data arrives (rows arrive at window ends).
    let moved_at = 20 * SECOND + SECOND / 2;
    let change = CatalogChange {
        at_us: moved_at,
        asset: 1,
        place: Some(("line-1".into(), "site-0".into())),
    };
    let hierarchy = Arc::new(Hierarchy::new(&catalog, &[change]));
    let inputs = Arc::new(inputs(3));
    let changes = run(Arc::clone(&inputs), Arc::clone(&hierarchy), 2, 1);

    let at = |time| -> Vec<_> {
        changes
            .assets
            .iter()
            .filter(|(_, t, _)| *t == time)
            .collect()
    };
    // The asset view: asset 1 retracted at line-0 and inserted at line-1, nothing else.
    let asset_changes = at(moved_at);
    assert_eq!(asset_changes.len(), 2, "{asset_changes:?}");
    let line_0 = place_of(&hierarchy, "line-0", "site-0");
    let line_1 = place_of(&hierarchy, "line-1", "site-0");
    for ((asset, twin), _, diff) in &asset_changes {
        assert_eq!(*asset, 1);
        let expected = if *diff < 0 { line_0 } else { line_1 };
        assert_eq!(twin.place, expected);
    }
    // The line rollups: one retraction and one insertion for each of the two lines.
    let mut line_changes: Vec<(u32, isize)> = changes
        .lines
        .iter()
        .filter(|(_, t, _)| *t == moved_at)
        .map(|((line, _), _, diff)| (*line, *diff))
        .collect();
    line_changes.sort();
    assert_eq!(
        line_changes,
        vec![
            (line_0.line, -1),
            (line_0.line, 1),
            (line_1.line, -1),
            (line_1.line, 1)
        ]
    );
    let lines_after = as_of(&changes.lines, moved_at);
    let count = |line| {
        lines_after
            .keys()
            .find(|(l, _)| *l == line)
            .unwrap()
            .1
            .assets
    };
    assert_eq!((count(line_0.line), count(line_1.line)), (2, 4));
    // The site holds the same assets with the same data: no change at all.
    assert!(changes.sites.iter().all(|(_, t, _)| *t != moved_at));
}

/// A punctual row of `asset` for the window starting at `start`: every
/// channel measured, no reading ahead, or, with `ahead`, only channel 0
/// measured (by a sensor whose clock runs ahead) and the others carried.
fn row(asset: AssetId, start: Micros, ahead: bool) -> FusedRow {
    let values = (0..CHANNELS)
        .map(|c| {
            let (source, window) = match (c, ahead) {
                (0, true) => (Source::Measured, shape(4, 4)),
                (_, true) => (Source::Carried, None),
                (_, false) => (Source::Measured, shape(4, 0)),
            };
            AlignedValue {
                value: Some(50.0),
                source,
                last_seen_us: Some(start),
                window,
            }
        })
        .collect();
    let row = AlignedRow {
        asset,
        start_us: start,
        end_us: start + SECOND,
        values,
    };
    FusedRow {
        row,
        values: vec![None],
        trust: Vec::new(),
        suspects: Vec::new(),
        imputed: Vec::new(),
        surprise: None,
    }
}

#[test]
fn an_asset_stamped_ahead_does_not_move_its_line_now() {
    let catalog = catalog();
    let hierarchy = Arc::new(Hierarchy::new(&catalog, &[]));
    let mut inputs = inputs(5);
    // Line-0's assets (0, 1, 2) all measure the last window on time ...
    let last = (WINDOWS - 1) * SECOND;
    inputs
        .rows
        .retain(|(_, r)| !(r.row.asset < 3 && r.row.start_us == last));
    for asset in 0..3 {
        inputs.rows.push((last + SECOND, row(asset, last, false)));
    }
    // ... and asset 0 has a sensor stamping its readings 3.5 s ahead: when
    // the input ends, its last windows lie past every other asset's, with
    // only that sensor measured.
    for k in WINDOWS..WINDOWS + 4 {
        inputs
            .rows
            .push(((k + 1) * SECOND, row(0, k * SECOND, true)));
    }
    let inputs = Arc::new(inputs);
    let line_0 = place_of(&hierarchy, "line-0", "site-0").line;
    for workers in [1, 3] {
        let changes = run(Arc::clone(&inputs), Arc::clone(&hierarchy), workers, 1);
        for k in [20, WINDOWS - 2, WINDOWS, WINDOWS + 2, WINDOWS + 4] {
            check_view_at(&changes, &inputs, &hierarchy, &catalog, k * SECOND);
        }
        // Asset 0's latest row is its last one stamped ahead; its clock,
        // and line-0's now, stay at the last window measured on time, where
        // all three assets report.
        let final_assets = as_of(&changes.assets, Micros::MAX);
        let (_, asset_0) = final_assets.keys().find(|(a, _)| *a == 0).unwrap();
        assert_eq!(asset_0.state.latest.row.start_us, (WINDOWS + 3) * SECOND);
        assert_eq!(
            asset_0.state.clock,
            Some(AssetClock {
                start_us: last,
                measured: true
            })
        );
        let final_lines = as_of(&changes.lines, Micros::MAX);
        let (_, rollup) = final_lines.keys().find(|(l, _)| *l == line_0).unwrap();
        assert_eq!((rollup.newest_us, rollup.assets_reporting), (last, 3));
    }
}
