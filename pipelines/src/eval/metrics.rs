//! The figures: fused RMSE and interval coverage per quantity and condition, how fast sensors under incident were suspected, and false suspects.

use std::collections::BTreeMap;

use twinflow_engine::catalog::{AssetId, SensorId};
use twinflow_engine::error::{Error, Result};
use twinflow_engine::time::Micros;

use super::conditions::{Condition, Interval};
use super::inputs::Inputs;
use super::output::{
    BestSensor, CoverageRow, DURING_INCIDENTS, DetectionRow, FalseSuspects, RmseRow,
};
use super::reference::InverseVarianceReference;
use super::{
    DETECTION_DEADLINE_US, DRIFT_ONSET_SIGMAS, MIN_INCIDENT_US, SUSPECT_GRACE_US, WINDOW_US,
};
use crate::twinbench::IncidentKind;
use twinflow_operators::trust::SuspectReason;

/// A running sum of squared errors.
#[derive(Debug, Default, Clone, Copy)]
struct SquaredError {
    sum: f64,
    n: u64,
}

impl SquaredError {
    fn add(&mut self, error: f64) {
        self.sum += error * error;
        self.n += 1;
    }

    fn rmse(&self) -> Option<f64> {
        (self.n > 0).then(|| (self.sum / self.n as f64).sqrt())
    }
}

/// How many of `n` windows' intervals held the truth.
#[derive(Debug, Default, Clone, Copy)]
struct Hits {
    hits: u64,
    n: u64,
}

impl Hits {
    fn add(&mut self, hit: bool) {
        self.hits += u64::from(hit);
        self.n += 1;
    }

    fn merge(&mut self, other: Hits) {
        self.hits += other.hits;
        self.n += other.n;
    }

    fn share(&self) -> Option<f64> {
        (self.n > 0).then(|| self.hits as f64 / self.n as f64)
    }
}

/// What is summed over the windows of one quantity under one condition.
#[derive(Debug, Clone)]
struct Cell {
    windows: u64,
    /// Per method.
    error: Vec<SquaredError>,
    /// Per method.
    covered: Vec<Hits>,
    /// Per sensor channel (its index in the alignment).
    sensors: BTreeMap<usize, SquaredError>,
}

impl Cell {
    fn new(methods: usize) -> Self {
        Cell {
            windows: 0,
            error: vec![SquaredError::default(); methods],
            covered: vec![Hits::default(); methods],
            sensors: BTreeMap::new(),
        }
    }

    fn add_estimate(&mut self, method: usize, value: f64, (lo95, hi95): (f64, f64), truth: f64) {
        self.error[method].add(value - truth);
        self.covered[method].add(lo95 <= truth && truth <= hi95);
    }
}

/// The RMSE and coverage rows, and how many fused rows had no truth.
pub struct FusionFigures {
    pub rmse: Vec<RmseRow>,
    pub coverage: Vec<CoverageRow>,
    pub without_truth: u64,
}

/// Scores every row of `fused/` (method 0, `replay`) and, given a
/// reference, the inverse-variance fusion of the same windows (method 1).
pub fn fusion_figures(
    inputs: &Inputs,
    reference: Option<&InverseVarianceReference>,
    methods: &[String],
) -> Result<FusionFigures> {
    let mut cells: BTreeMap<(usize, Condition), Cell> = BTreeMap::new();
    let mut without_truth = 0;
    for fused in &inputs.fused {
        let (asset, start_us) = (fused.asset, fused.start_us);
        let end_us = start_us + WINDOW_US;
        let group = inputs
            .redundancy
            .groups(asset)
            .iter()
            .find(|g| g.quantity == fused.quantity)
            .ok_or_else(|| {
                Error::format(
                    inputs.out.join("fused"),
                    format!(
                        "asset {:?} has fused {:?}, which its catalog entries do not measure twice",
                        inputs.catalog.asset(asset).asset,
                        inputs.redundancy.quantities()[fused.quantity]
                    ),
                )
            })?;
        // Redundant channels repeat the truth: any member's channel has it.
        let Some(truth) = inputs.truth.at(asset, group.members[0].slot, start_us) else {
            without_truth += 1;
            continue;
        };
        let sensors = group.members.iter().map(|m| m.sensor);
        let condition = inputs.incidents.condition(asset, sensors, start_us, end_us);
        let cell = cells
            .entry((fused.quantity, condition))
            .or_insert_with(|| Cell::new(methods.len()));
        cell.windows += 1;
        cell.add_estimate(0, fused.value, (fused.lo95, fused.hi95), truth);
        if let Some(iv) = reference.and_then(|r| r.estimate(asset, start_us, fused.quantity)) {
            cell.add_estimate(1, iv.value, iv.interval95(), truth);
        }
        for member in &group.members {
            if inputs
                .incidents
                .under_incident(member.sensor, start_us, end_us)
            {
                continue;
            }
            let window = inputs.windows.get(&(member.sensor, start_us));
            let truth = inputs.truth.at(asset, member.slot, start_us);
            if let (Some(window), Some(truth)) = (window, truth) {
                cell.sensors
                    .entry(member.slot)
                    .or_default()
                    .add(window.mean - truth);
            }
        }
    }
    Ok(FusionFigures {
        rmse: rmse_rows(inputs, &cells, methods),
        coverage: coverage_rows(inputs, &cells, methods),
        without_truth,
    })
}

fn per_method<T>(
    methods: &[String],
    value: impl Fn(usize) -> Option<T>,
) -> BTreeMap<String, Option<T>> {
    methods
        .iter()
        .enumerate()
        .map(|(m, name)| (name.clone(), value(m)))
        .collect()
}

fn rmse_rows(
    inputs: &Inputs,
    cells: &BTreeMap<(usize, Condition), Cell>,
    methods: &[String],
) -> Vec<RmseRow> {
    cells
        .iter()
        .map(|((quantity, condition), cell)| {
            let clean = cells.get(&(*quantity, Condition::Clean));
            let best_sensor = cell
                .sensors
                .iter()
                .filter_map(|(slot, error)| Some((*slot, error.rmse()?, error.n)))
                // The first channel wins a tie, so the choice is reproducible.
                .reduce(|best, next| if next.1 < best.1 { next } else { best })
                .map(|(slot, rmse, windows)| BestSensor {
                    sensor: inputs.alignment.channels()[slot].clone(),
                    rmse,
                    windows,
                });
            RmseRow {
                quantity: inputs.redundancy.quantities()[*quantity].clone(),
                condition: condition.name().to_owned(),
                windows: cell.windows,
                fused: per_method(methods, |m| cell.error[m].rmse()),
                best_sensor,
                ratio_to_clean: per_method(methods, |m| {
                    let clean = clean?.error[m].rmse()?;
                    (clean > 0.0).then(|| cell.error[m].rmse().map(|r| r / clean))?
                }),
            }
        })
        .collect()
}

fn coverage_rows(
    inputs: &Inputs,
    cells: &BTreeMap<(usize, Condition), Cell>,
    methods: &[String],
) -> Vec<CoverageRow> {
    let mut rows = Vec::new();
    for (q, quantity) in inputs.redundancy.quantities().iter().enumerate() {
        let row = |condition: &str, windows: u64, covered: &[Hits]| CoverageRow {
            quantity: quantity.clone(),
            condition: condition.to_owned(),
            windows,
            coverage: per_method(methods, |m| covered[m].share()),
        };
        let of_quantity: Vec<(&Condition, &Cell)> = cells
            .iter()
            .filter(|((cq, _), _)| *cq == q)
            .map(|((_, condition), cell)| (condition, cell))
            .collect();
        let (clean, incidents): (Vec<_>, Vec<_>) = of_quantity
            .into_iter()
            .partition(|(condition, _)| **condition == Condition::Clean);
        for (condition, cell) in &clean {
            rows.push(row(condition.name(), cell.windows, &cell.covered));
        }
        if !incidents.is_empty() {
            let mut during = vec![Hits::default(); methods.len()];
            for (_, cell) in &incidents {
                for (total, hits) in during.iter_mut().zip(&cell.covered) {
                    total.merge(*hits);
                }
            }
            let windows = incidents.iter().map(|(_, cell)| cell.windows).sum();
            rows.push(row(DURING_INCIDENTS, windows, &during));
        }
        for (condition, cell) in &incidents {
            rows.push(row(condition.name(), cell.windows, &cell.covered));
        }
    }
    rows
}

/// Where a sensor sits: its asset, channel and noise σ.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placement {
    asset: AssetId,
    slot: usize,
    sigma: f64,
}

impl Placement {
    /// Where the catalog puts `sensor`.
    pub(super) fn of(inputs: &Inputs, sensor: SensorId) -> Self {
        let (asset, slot) = inputs.alignment.slot_of(sensor);
        Placement {
            asset,
            slot,
            sigma: inputs.catalog.sensor(sensor).sigma,
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    incidents: u64,
    detected: u64,
    delays_s: Vec<f64>,
    never_exceeded: u64,
}

/// Per incident kind on a redundant sensor: how many incidents got a
/// `sensor_suspect` flag naming their sensor within the deadline.
pub fn detection(inputs: &Inputs) -> Vec<DetectionRow> {
    let mut placements: Vec<Option<Placement>> = vec![None; inputs.catalog.sensors().len()];
    for asset in 0..inputs.catalog.assets().len() as AssetId {
        for group in inputs.redundancy.groups(asset) {
            for member in &group.members {
                placements[member.sensor as usize] = Some(Placement {
                    asset,
                    slot: member.slot,
                    sigma: member.sigma,
                });
            }
        }
    }
    let mut flagged: Vec<Vec<Micros>> = vec![Vec::new(); inputs.catalog.sensors().len()];
    for flag in &inputs.suspects {
        flagged[flag.sensor as usize].push(flag.start_us);
    }
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for (sensor, incidents) in inputs.incidents.by_sensor() {
        let Some(placement) = placements[sensor as usize] else {
            continue;
        };
        for incident in incidents {
            // Spikes last a few samples: all count, to show they are gated, not suspected.
            let spike = incident.kind == IncidentKind::Spike.name();
            if !spike && incident.end_us - incident.start_us < MIN_INCIDENT_US {
                continue;
            }
            let tally = tallies.entry(&incident.kind).or_default();
            let onset = if incident.kind == IncidentKind::Drift.name() {
                match drift_onset(inputs, sensor, placement, incident) {
                    Some(onset) => onset,
                    None => {
                        tally.never_exceeded += 1;
                        continue;
                    }
                }
            } else {
                incident.start_us
            };
            tally.incidents += 1;
            // A sensor still excluded for an earlier incident when this one
            // starts is already named, and kept out of the twin.
            let onset_window = incident.start_us - incident.start_us.rem_euclid(WINDOW_US);
            if inputs.excluded.contains(&(sensor, onset_window)) {
                tally.detected += 1;
                tally.delays_s.push(0.0);
                continue;
            }
            let flags = &flagged[sensor as usize];
            // The first flag from the incident's start on: a drift named
            // before it exceeds 3σ is caught early, with no delay.
            let first = flags.partition_point(|&start| start + WINDOW_US <= incident.start_us);
            if let Some(&start) = flags.get(first)
                && start <= onset + DETECTION_DEADLINE_US
            {
                tally.detected += 1;
                tally
                    .delays_s
                    .push((start - onset).max(0) as f64 / WINDOW_US as f64);
            }
        }
    }
    tallies
        .into_iter()
        .map(|(kind, mut tally)| DetectionRow {
            kind: kind.to_owned(),
            incidents: tally.incidents,
            detected: tally.detected,
            share: (tally.incidents > 0).then(|| tally.detected as f64 / tally.incidents as f64),
            median_delay_s: median(&mut tally.delays_s),
            never_exceeded_3_sigma: tally.never_exceeded,
        })
        .collect()
}

/// When a drift becomes visible: the first window of the incident whose
/// mean strays more than 3σ from the truth (its start, or the incident's if
/// later); `None` if none does.
pub(super) fn drift_onset(
    inputs: &Inputs,
    sensor: SensorId,
    placement: Placement,
    incident: &Interval,
) -> Option<Micros> {
    let first = incident.start_us - incident.start_us.rem_euclid(WINDOW_US);
    (first..incident.end_us)
        .step_by(WINDOW_US as usize)
        .find(|&start| {
            let window = inputs.windows.get(&(sensor, start));
            let truth = inputs.truth.at(placement.asset, placement.slot, start);
            window
                .zip(truth)
                .is_some_and(|(w, t)| (w.mean - t).abs() > DRIFT_ONSET_SIGMAS * placement.sigma)
        })
        .map(|start| start.max(incident.start_us))
}

pub(super) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

/// `sensor_suspect` flags naming a sensor none of whose incidents, extended
/// by the grace period, holds the flag's window start. An `ambiguous` flag
/// says that two sensors disagree and which one lies cannot be told: it is
/// false only if neither had an incident.
pub fn false_suspects(inputs: &Inputs, asset_hours: f64) -> FalseSuspects {
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let mut count = 0;
    for flag in &inputs.suspects {
        let in_incident =
            |sensor: SensorId| {
                inputs.incidents.of_sensor(sensor).iter().any(|i| {
                    i.start_us <= flag.start_us && flag.start_us < i.end_us + SUSPECT_GRACE_US
                })
            };
        let explained = if flag.reason == SuspectReason::Ambiguous.code() {
            let asset = inputs.catalog.asset_of(flag.sensor);
            inputs
                .redundancy
                .groups(asset)
                .iter()
                .find(|g| g.members.iter().any(|m| m.sensor == flag.sensor))
                .is_some_and(|g| g.members.iter().any(|m| in_incident(m.sensor)))
        } else {
            in_incident(flag.sensor)
        };
        if !explained {
            count += 1;
            *by_reason.entry(flag.reason.clone()).or_default() += 1;
        }
    }
    FalseSuspects {
        suspects: inputs.suspects.len() as u64,
        count,
        per_asset_hour: (asset_hours > 0.0).then(|| count as f64 / asset_hours),
        by_reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
