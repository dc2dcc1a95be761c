//! How the `model_nll` detector's alarms match the labelled incidents: per incident kind, the share that raised an alarm on their asset (and named their sensor) and how soon, false alarms per asset-hour, and the target on `current`.

use std::collections::BTreeMap;

use twinflow_engine::catalog::{AssetId, SensorId};
use twinflow_engine::time::{Micros, SECOND};

use super::WINDOW_US;
use super::conditions::Interval;
use super::inputs::{Alarm, Inputs};
use super::metrics::{Placement, drift_onset, median};
use super::output::{AlarmRow, AlarmTarget, FalseAlarms, ModelNll};
use crate::twinbench::IncidentKind;

/// `flags/`'s `detector` for the asset model's alarms.
pub const MODEL_NLL: &str = "model_nll";
/// An alarm counts as detection only this soon after the onset.
pub const ALARM_DEADLINE_US: Micros = 60 * SECOND;
/// An alarm this long before an incident starts is explained by it.
pub const ALARM_LEAD_US: Micros = 5 * SECOND;
/// An alarm this long after an incident ends is still explained by it.
pub const ALARM_GRACE_US: Micros = 60 * SECOND;
/// Attacks whose events verification quarantines before any window: the
/// model never sees them, so they are not scored and explain no alarm.
pub const QUARANTINED_KINDS: [IncidentKind; 3] = [
    IncidentKind::Forged,
    IncidentKind::Replayed,
    IncidentKind::Flooding,
];

/// The target: these kinds on this channel (it has no redundant
/// twin) alarmed within the deadline in at least this share of incidents, at
/// no more false alarms per asset-hour than this.
pub const TARGET_CHANNEL: &str = "current";
pub const TARGET_KINDS: [IncidentKind; 2] = [IncidentKind::Bias, IncidentKind::FalseData];
pub const TARGET_SHARE: f64 = 0.9;
pub const TARGET_FALSE_ALARMS_PER_ASSET_HOUR: f64 = 0.2;

/// Which channels an incident concerns: a row of the table per kind and these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Channels {
    /// A sensor no other sensor of its asset measures the quantity of.
    NonRedundant,
    /// A sensor of a redundant group (fused with the others).
    Redundant,
    /// The whole asset (a bearing fault).
    Asset,
}

impl Channels {
    /// Its name in the table and in `eval.json`.
    pub const fn name(self) -> &'static str {
        match self {
            Channels::NonRedundant => "non_redundant",
            Channels::Redundant => "redundant",
            Channels::Asset => "asset",
        }
    }
}

/// What is counted over the incidents of one row.
#[derive(Debug, Default)]
struct Tally {
    incidents: u64,
    detected: u64,
    named: u64,
    delays_s: Vec<f64>,
    never_exceeded: u64,
}

impl Tally {
    fn add(&mut self, outcome: Option<Caught>) {
        self.incidents += 1;
        if let Some(caught) = outcome {
            self.detected += 1;
            self.named += u64::from(caught.named);
            self.delays_s.push(caught.delay_s);
        }
    }

    fn share(&self) -> Option<f64> {
        (self.incidents > 0).then(|| self.detected as f64 / self.incidents as f64)
    }

    fn named_share(&self) -> Option<f64> {
        (self.incidents > 0).then(|| self.named as f64 / self.incidents as f64)
    }
}

/// How an incident's first alarm caught it.
#[derive(Debug, Clone, Copy)]
struct Caught {
    delay_s: f64,
    /// Whether an alarm within the deadline named its sensor.
    named: bool,
}

/// Whether verification quarantines the events of incidents of this kind.
fn quarantined(kind: &str) -> bool {
    QUARANTINED_KINDS.iter().any(|k| k.name() == kind)
}

/// Scores the alarms of `inputs` (`None` without any) against its labels.
pub fn score(inputs: &Inputs, asset_hours: f64) -> Option<ModelNll> {
    if inputs.alarms.is_empty() {
        return None;
    }
    let mut alarms_of: Vec<Vec<Alarm>> = vec![Vec::new(); inputs.catalog.assets().len()];
    for alarm in &inputs.alarms {
        alarms_of[alarm.asset as usize].push(*alarm);
    }
    let group_of = redundant_groups(inputs);
    let names = |incident_sensor: SensorId, alarm: &Alarm| {
        alarm.sensor == incident_sensor
            || group_of[incident_sensor as usize]
                .is_some_and(|g| group_of[alarm.sensor as usize] == Some(g))
    };

    let by_asset = incidents_by_asset(inputs);
    let mut rows: BTreeMap<(&str, Channels), Tally> = BTreeMap::new();
    let mut target = Tally::default();
    for &(asset, sensor, incident) in by_asset.iter().flatten() {
        if quarantined(&incident.kind) {
            continue;
        }
        let channels = match sensor {
            None => Channels::Asset,
            Some(s) if group_of[s as usize].is_some() => Channels::Redundant,
            Some(_) => Channels::NonRedundant,
        };
        let row = rows.entry((&incident.kind, channels)).or_default();
        let onset = match sensor {
            Some(s) if incident.kind == IncidentKind::Drift.name() => {
                match drift_onset(inputs, s, Placement::of(inputs, s), incident) {
                    Some(onset) => onset,
                    None => {
                        row.never_exceeded += 1;
                        continue;
                    }
                }
            }
            _ => incident.start_us,
        };
        let caught = first_alarm(&alarms_of[asset as usize], incident, onset, |alarm| {
            sensor.is_some_and(|s| names(s, alarm))
        });
        row.add(caught);
        let targeted = sensor.is_some_and(|s| {
            inputs.catalog.sensor(s).channel == TARGET_CHANNEL
                && TARGET_KINDS.iter().any(|k| k.name() == incident.kind)
        });
        if targeted {
            target.add(caught);
        }
    }

    let false_alarms = false_alarms(&inputs.alarms, &by_asset, asset_hours);
    let has_target_channel = inputs
        .catalog
        .sensors()
        .iter()
        .any(|s| s.channel == TARGET_CHANNEL);
    let target = has_target_channel.then(|| {
        let per_hour = false_alarms.per_asset_hour;
        let share = target.share();
        AlarmTarget {
            channel: TARGET_CHANNEL.to_owned(),
            kinds: TARGET_KINDS.iter().map(|k| k.name().to_owned()).collect(),
            incidents: target.incidents,
            detected: target.detected,
            share,
            named: target.named,
            named_share: target.named_share(),
            min_share: TARGET_SHARE,
            false_alarms_per_asset_hour: per_hour,
            max_false_alarms_per_asset_hour: TARGET_FALSE_ALARMS_PER_ASSET_HOUR,
            met: share.zip(per_hour).map(|(share, per_hour)| {
                share >= TARGET_SHARE && per_hour <= TARGET_FALSE_ALARMS_PER_ASSET_HOUR
            }),
        }
    });
    Some(ModelNll {
        alarms: inputs.alarms.len() as u64,
        detection: rows
            .into_iter()
            .map(|((kind, channels), mut tally)| AlarmRow {
                kind: kind.to_owned(),
                channels: channels.name().to_owned(),
                incidents: tally.incidents,
                detected: tally.detected,
                share: tally.share(),
                named: (channels != Channels::Asset).then_some(tally.named),
                named_share: if channels == Channels::Asset {
                    None
                } else {
                    tally.named_share()
                },
                median_delay_s: median(&mut tally.delays_s),
                never_exceeded_3_sigma: tally.never_exceeded,
            })
            .collect(),
        false_alarms,
        target,
    })
}

/// Per sensor, the asset and quantity of its redundant group, if it is in one.
fn redundant_groups(inputs: &Inputs) -> Vec<Option<(AssetId, usize)>> {
    let mut group_of = vec![None; inputs.catalog.sensors().len()];
    for asset in 0..inputs.catalog.assets().len() as AssetId {
        for group in inputs.redundancy.groups(asset) {
            for member in &group.members {
                group_of[member.sensor as usize] = Some((asset, group.quantity));
            }
        }
    }
    group_of
}

/// Per asset, every labelled incident on it: its sensors' (with the sensor)
/// and its own (without).
fn incidents_by_asset(inputs: &Inputs) -> Vec<Vec<(AssetId, Option<SensorId>, &Interval)>> {
    let catalog = &inputs.catalog;
    let mut by_asset: Vec<Vec<_>> = (0..catalog.assets().len() as AssetId)
        .map(|asset| {
            let own = inputs.incidents.of_asset(asset).iter();
            own.map(|i| (asset, None, i)).collect()
        })
        .collect();
    for (sensor, incidents) in inputs.incidents.by_sensor() {
        let asset = catalog.asset_of(sensor);
        by_asset[asset as usize].extend(incidents.iter().map(|i| (asset, Some(sensor), i)));
    }
    by_asset
}

/// The first of an asset's `alarms` (in window order) in a window from the
/// one holding the incident's start to `onset` + the deadline, and whether
/// any alarm in that span `names` the incident's sensor.
fn first_alarm(
    alarms: &[Alarm],
    incident: &Interval,
    onset: Micros,
    names: impl Fn(&Alarm) -> bool,
) -> Option<Caught> {
    let from = alarms.partition_point(|a| a.start_us + WINDOW_US <= incident.start_us);
    let within = &alarms[from..];
    let within = &within[..within.partition_point(|a| a.start_us <= onset + ALARM_DEADLINE_US)];
    let first = within.first()?;
    Some(Caught {
        delay_s: (first.start_us - onset).max(0) as f64 / WINDOW_US as f64,
        named: within.iter().any(names),
    })
}

/// Alarms whose window meets no incident of their asset stretched from
/// [`ALARM_LEAD_US`] before its start to [`ALARM_GRACE_US`] after its end
/// (quarantined attacks aside), per asset-hour.
fn false_alarms(
    alarms: &[Alarm],
    by_asset: &[Vec<(AssetId, Option<SensorId>, &Interval)>],
    asset_hours: f64,
) -> FalseAlarms {
    let (mut count, mut during_quarantined) = (0, 0);
    for alarm in alarms {
        let near = |incident: &&Interval| {
            incident.start_us - ALARM_LEAD_US < alarm.start_us + WINDOW_US
                && alarm.start_us < incident.end_us + ALARM_GRACE_US
        };
        let (quarantined, scored): (Vec<&Interval>, Vec<&Interval>) = by_asset
            [alarm.asset as usize]
            .iter()
            .map(|(_, _, incident)| *incident)
            .filter(near)
            .partition(|incident| quarantined(&incident.kind));
        if scored.is_empty() {
            count += 1;
            during_quarantined += u64::from(!quarantined.is_empty());
        }
    }
    FalseAlarms {
        count,
        per_asset_hour: (asset_hours > 0.0).then(|| count as f64 / asset_hours),
        during_quarantined_attacks: during_quarantined,
    }
}
