//! The TwinBench plant: the channel table of the spec, the names of assets,
//! lines and sensors, and the physical truth process of one asset.
//!
//! Sensors are numbered densely: sensor `i` is channel `i % 8` of asset `i / 8`,
//! in the order of [`CHANNELS`]. Every name is formatted once here, so the
//! generator never formats a string per event.

use rand::RngExt;
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use twinflow_engine::catalog::{AssetRecord, Catalog, SensorRecord};

/// Start of plant time: 2026-01-01T00:00:00Z in microseconds since the Unix epoch.
/// Fixed so that the same options always produce the same timestamps.
pub const EPOCH_US: i64 = 1_767_225_600_000_000;
/// Microseconds in one second of plant time.
pub const SECOND_US: i64 = 1_000_000;
/// Assets per production line.
pub const ASSETS_PER_LINE: usize = 20;
/// The single site of the plant.
pub const SITE: &str = "site-0";
/// Every TwinBench asset is a motor-driven pump (it has flow and pressure).
pub const ASSET_KIND: &str = "pump";
/// Sensors per asset: one per entry of [`CHANNELS`].
pub const SENSORS_PER_ASSET: usize = CHANNELS.len();
/// Healthy readings are truth plus noise clipped to this many σ; the truth of a
/// healthy asset keeps this margin (for the noisiest sensor of the quantity) from
/// the operating band, which is how healthy readings are guaranteed to stay in it.
pub const NOISE_CLIP_SIGMAS: f64 = 4.5;

/// The physical quantity a sensor measures; its name is the `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quantity {
    Temperature,
    Pressure,
    Vibration,
    Current,
    Flow,
}

impl Quantity {
    pub const ALL: [Quantity; 5] = [
        Quantity::Temperature,
        Quantity::Pressure,
        Quantity::Vibration,
        Quantity::Current,
        Quantity::Flow,
    ];

    /// The `kind` string of the raw log and the sensor table.
    pub const fn kind(self) -> &'static str {
        match self {
            Quantity::Temperature => "temperature",
            Quantity::Pressure => "pressure",
            Quantity::Vibration => "vibration",
            Quantity::Current => "current",
            Quantity::Flow => "flow",
        }
    }

    /// The range a healthy asset's truth is kept in: the operating band shrunk by
    /// [`NOISE_CLIP_SIGMAS`] times the largest σ among the channels measuring it.
    pub fn healthy_band(self) -> (f64, f64) {
        let mut band = (f64::NEG_INFINITY, f64::INFINITY);
        for channel in CHANNELS.iter().filter(|c| c.quantity == self) {
            let margin = NOISE_CLIP_SIGMAS * channel.sigma;
            band.0 = band.0.max(channel.operating.0 + margin);
            band.1 = band.1.min(channel.operating.1 - margin);
        }
        band
    }
}

/// One row of the spec's sensor table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelSpec {
    pub name: &'static str,
    pub quantity: Quantity,
    pub rate_hz: u32,
    /// Noise standard deviation of the sensor.
    pub sigma: f64,
    /// Where healthy readings stay.
    pub operating: (f64, f64),
    /// Readings outside this range (bounds included in it) are impossible.
    pub physical: (f64, f64),
}

impl ChannelSpec {
    /// Time between two samples (all rates divide one second).
    pub const fn period_us(&self) -> i64 {
        SECOND_US / self.rate_hz as i64
    }

    pub const fn kind(&self) -> &'static str {
        self.quantity.kind()
    }

    /// Width of the operating band; fault magnitudes are fractions of it.
    pub fn operating_span(&self) -> f64 {
        self.operating.1 - self.operating.0
    }

    /// The value clamped into the physical range, and whether it had to be.
    pub fn clamp_physical(&self, value: f64) -> (f64, bool) {
        let clamped = value.clamp(self.physical.0, self.physical.1);
        (clamped, clamped != value)
    }
}

/// The spec's sensor table, in sensor order within an asset.
pub const CHANNELS: [ChannelSpec; 8] = [
    channel(
        "temp-1",
        Quantity::Temperature,
        10,
        0.20,
        (20.0, 120.0),
        (-50.0, 250.0),
    ),
    channel(
        "temp-2",
        Quantity::Temperature,
        10,
        0.35,
        (20.0, 120.0),
        (-50.0, 250.0),
    ),
    channel(
        "temp-3",
        Quantity::Temperature,
        10,
        0.50,
        (20.0, 120.0),
        (-50.0, 250.0),
    ),
    channel(
        "press-1",
        Quantity::Pressure,
        10,
        0.05,
        (0.5, 12.0),
        (0.0, 40.0),
    ),
    channel(
        "press-2",
        Quantity::Pressure,
        10,
        0.08,
        (0.5, 12.0),
        (0.0, 40.0),
    ),
    channel(
        "vib-1",
        Quantity::Vibration,
        50,
        0.10,
        (0.2, 20.0),
        (0.0, 100.0),
    ),
    channel(
        "current",
        Quantity::Current,
        10,
        0.10,
        (2.0, 120.0),
        (0.0, 1000.0),
    ),
    channel("flow", Quantity::Flow, 1, 0.50, (0.0, 250.0), (0.0, 1000.0)),
];

/// The rated rate of a TwinBench channel, by name (`None` for another name).
pub fn rated_rate_hz(channel: &str) -> Option<f64> {
    CHANNELS
        .iter()
        .find(|c| c.name == channel)
        .map(|c| f64::from(c.rate_hz))
}

const fn channel(
    name: &'static str,
    quantity: Quantity,
    rate_hz: u32,
    sigma: f64,
    operating: (f64, f64),
    physical: (f64, f64),
) -> ChannelSpec {
    ChannelSpec {
        name,
        quantity,
        rate_hz,
        sigma,
        operating,
        physical,
    }
}

/// Events per asset per second of plant time before drops (111 per the spec).
pub const fn events_per_asset_second() -> u32 {
    let mut total = 0;
    let mut i = 0;
    while i < CHANNELS.len() {
        total += CHANNELS[i].rate_hz;
        i += 1;
    }
    total
}

/// The plant's names, formatted once.
#[derive(Debug, Clone)]
pub struct Plant {
    assets: Vec<String>,
    lines: Vec<String>,
    sensors: Vec<String>,
}

impl Plant {
    pub fn new(asset_count: usize) -> Self {
        let assets: Vec<String> = (0..asset_count).map(|a| format!("asset-{a:04}")).collect();
        let lines = (0..asset_count.div_ceil(ASSETS_PER_LINE))
            .map(|l| format!("line-{l:02}"))
            .collect();
        let sensors = assets
            .iter()
            .flat_map(|asset| CHANNELS.iter().map(move |c| format!("{asset}/{}", c.name)))
            .collect();
        Plant {
            assets,
            lines,
            sensors,
        }
    }

    pub fn asset_count(&self) -> usize {
        self.assets.len()
    }
    pub fn sensor_count(&self) -> usize {
        self.sensors.len()
    }
    pub fn asset_name(&self, asset: usize) -> &str {
        &self.assets[asset]
    }
    pub fn line_name(&self, asset: usize) -> &str {
        &self.lines[asset / ASSETS_PER_LINE]
    }
    /// `<asset>/<channel>`.
    pub fn sensor_name(&self, sensor: usize) -> &str {
        &self.sensors[sensor]
    }
    pub fn asset_of(sensor: usize) -> usize {
        sensor / SENSORS_PER_ASSET
    }
    pub fn channel_of(sensor: usize) -> &'static ChannelSpec {
        &CHANNELS[sensor % SENSORS_PER_ASSET]
    }
    /// The sensor of `asset` on channel number `channel` (an index into [`CHANNELS`]).
    pub fn sensor_index(asset: usize, channel: usize) -> usize {
        asset * SENSORS_PER_ASSET + channel
    }

    /// The asset and sensor tables (`assets.csv`, `sensors.csv`).
    pub fn catalog(&self) -> Catalog {
        let assets = (0..self.asset_count())
            .map(|a| AssetRecord {
                asset: self.asset_name(a).to_owned(),
                line: self.line_name(a).to_owned(),
                site: SITE.to_owned(),
                kind: ASSET_KIND.to_owned(),
            })
            .collect();
        let sensors = (0..self.sensor_count())
            .map(|s| {
                let channel = Plant::channel_of(s);
                SensorRecord {
                    sensor: self.sensor_name(s).to_owned(),
                    asset: self.asset_name(Plant::asset_of(s)).to_owned(),
                    channel: channel.name.to_owned(),
                    kind: channel.kind().to_owned(),
                    sigma: channel.sigma,
                    min: channel.physical.0,
                    max: channel.physical.1,
                    rate_hz: None,
                    quantity: None,
                }
            })
            .collect();
        Catalog::new(assets, sensors).expect("generated names are unique and consistent")
    }
}

/// The physical truth of one asset during one second, per quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub temperature: f64,
    pub pressure: f64,
    pub vibration: f64,
    pub current: f64,
    pub flow: f64,
}

impl Truth {
    pub fn get(&self, quantity: Quantity) -> f64 {
        match quantity {
            Quantity::Temperature => self.temperature,
            Quantity::Pressure => self.pressure,
            Quantity::Vibration => self.vibration,
            Quantity::Current => self.current,
            Quantity::Flow => self.flow,
        }
    }
}

/// Load of an idling pump (recirculation).
const IDLE_LOAD: f64 = 0.05;
/// Flow of the largest pump at full load, m³/h.
const MAX_FLOW: f64 = 230.0;
/// Static head of the discharge line, bar.
const STATIC_PRESSURE: f64 = 1.0;
/// Pressure added by the full flow of the largest pump, bar.
const DYNAMIC_PRESSURE: f64 = 10.5;
/// Wear at which the asset is serviced and its wear drops back to [`SERVICED_WEAR`].
const SERVICE_WEAR: f64 = 0.6;
const SERVICED_WEAR: f64 = 0.05;

/// What the asset's operator is doing with it: duty cycles of runs at a
/// setpoint and idle periods, joined by ramps.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Duty {
    Running { setpoint: f64 },
    Idle,
    Ramping { from: f64, to: f64, total_s: u32 },
}

/// The load process: the duty phase, seconds left in it, and a small AR(1)
/// wobble on top (a plant never holds a setpoint exactly).
#[derive(Debug, Clone)]
struct LoadProcess {
    duty: Duty,
    remaining_s: u32,
    wobble: f64,
}

impl LoadProcess {
    fn random(rng: &mut Xoshiro256PlusPlus) -> Self {
        let draw = rng.random::<f64>();
        let (duty, total) = if draw < 0.6 {
            (
                Duty::Running {
                    setpoint: random_setpoint(rng),
                },
                run_seconds(rng),
            )
        } else if draw < 0.85 {
            (Duty::Idle, idle_seconds(rng))
        } else {
            let from = random_setpoint(rng);
            let to = if rng.random_bool(0.3) {
                IDLE_LOAD
            } else {
                random_setpoint(rng)
            };
            let total_s = ramp_seconds(rng);
            (Duty::Ramping { from, to, total_s }, total_s)
        };
        // Start somewhere inside the phase, so assets are not in lockstep.
        let remaining_s = rng.random_range(1..=total);
        LoadProcess {
            duty,
            remaining_s,
            wobble: 0.0,
        }
    }

    /// The load level of the current phase, without wobble.
    fn base(&self) -> f64 {
        match self.duty {
            Duty::Running { setpoint } => setpoint,
            Duty::Idle => IDLE_LOAD,
            Duty::Ramping { from, to, total_s } => {
                let done = 1.0 - self.remaining_s as f64 / total_s as f64;
                from + (to - from) * done
            }
        }
    }

    /// Advances one second and returns the load in [0.02, 1].
    fn advance(&mut self, rng: &mut Xoshiro256PlusPlus) -> f64 {
        self.remaining_s -= 1;
        if self.remaining_s == 0 {
            self.next_phase(rng);
        }
        self.wobble = 0.9 * self.wobble + 0.01 * rng.sample::<f64, _>(StandardNormal);
        (self.base() + self.wobble).clamp(0.02, 1.0)
    }

    fn next_phase(&mut self, rng: &mut Xoshiro256PlusPlus) {
        let level = self.base();
        let (duty, total) = match self.duty {
            Duty::Running { .. } => {
                let to = if rng.random_bool(0.3) {
                    IDLE_LOAD
                } else {
                    random_setpoint(rng)
                };
                let total_s = ramp_seconds(rng);
                (
                    Duty::Ramping {
                        from: level,
                        to,
                        total_s,
                    },
                    total_s,
                )
            }
            Duty::Idle => {
                let total_s = ramp_seconds(rng);
                let to = random_setpoint(rng);
                (
                    Duty::Ramping {
                        from: level,
                        to,
                        total_s,
                    },
                    total_s,
                )
            }
            Duty::Ramping { to, .. } if to == IDLE_LOAD => (Duty::Idle, idle_seconds(rng)),
            Duty::Ramping { to, .. } => (Duty::Running { setpoint: to }, run_seconds(rng)),
        };
        self.duty = duty;
        self.remaining_s = total;
    }
}

fn random_setpoint(rng: &mut Xoshiro256PlusPlus) -> f64 {
    rng.random_range(0.35..1.0)
}
fn run_seconds(rng: &mut Xoshiro256PlusPlus) -> u32 {
    rng.random_range(120..=900)
}
fn idle_seconds(rng: &mut Xoshiro256PlusPlus) -> u32 {
    rng.random_range(60..=480)
}
fn ramp_seconds(rng: &mut Xoshiro256PlusPlus) -> u32 {
    rng.random_range(10..=90)
}

/// Fixed properties of one asset, drawn once.
#[derive(Debug, Clone, Copy)]
struct AssetParams {
    /// Pump size relative to the largest (scales flow and current).
    size: f64,
    /// Resistance of the discharge line relative to the largest.
    resistance: f64,
    /// Hall temperature, °C.
    ambient: f64,
    /// Thermal time constant, s (minutes, per the spec).
    thermal_tau_s: f64,
    /// Hydraulic time constant of the flow, s.
    flow_tau_s: f64,
    /// Wear added per second.
    wear_per_s: f64,
}

/// The physical state of one asset, advanced one second at a time.
///
/// Couplings (all from the spec): current follows load (a power law); the
/// temperature follows load and wear through a first-order lag of minutes; the
/// flow follows load through a lag of seconds and the pressure rises with the
/// square of the flow; vibration grows with the square of the load and with
/// wear. A developing bearing fault adds vibration directly and heat through the
/// same thermal lag, so both rise together.
#[derive(Debug, Clone)]
pub struct AssetProcess {
    params: AssetParams,
    load: LoadProcess,
    wear: f64,
    /// Temperature of the healthy machine (without bearing heat).
    healthy_temperature: f64,
    /// Extra temperature from a bearing fault, through the thermal lag.
    bearing_heat: f64,
    flow: f64,
}

impl AssetProcess {
    /// A new asset with random properties, in thermal and hydraulic equilibrium
    /// with its initial load (so a run does not begin with a warm-up transient).
    pub fn random(rng: &mut Xoshiro256PlusPlus) -> Self {
        let params = AssetParams {
            size: rng.random_range(0.8..1.0),
            resistance: rng.random_range(0.85..1.0),
            ambient: rng.random_range(25.0..30.0),
            thermal_tau_s: rng.random_range(180.0..480.0),
            flow_tau_s: rng.random_range(3.0..8.0),
            wear_per_s: rng.random_range(2e-6..1e-5),
        };
        let load = LoadProcess::random(rng);
        let wear = rng.random_range(0.0..0.4);
        let level = load.base();
        AssetProcess {
            healthy_temperature: steady_temperature(&params, level, wear),
            flow: steady_flow(&params, level),
            params,
            load,
            wear,
            bearing_heat: 0.0,
        }
    }

    /// Advances one second and returns the truth of the second entered.
    /// `bearing_severity` in [0, 1] is how far a bearing fault has developed.
    pub fn advance(&mut self, rng: &mut Xoshiro256PlusPlus, bearing_severity: f64) -> Truth {
        let p = self.params;
        let load = self.load.advance(rng);
        self.wear += p.wear_per_s;
        if self.wear > SERVICE_WEAR {
            self.wear = SERVICED_WEAR;
        }
        let thermal = 1.0 - (-1.0 / p.thermal_tau_s).exp();
        self.healthy_temperature +=
            (steady_temperature(&p, load, self.wear) - self.healthy_temperature) * thermal;
        let bearing_heat_target = 25.0 * bearing_severity * (0.3 + 0.7 * load);
        self.bearing_heat += (bearing_heat_target - self.bearing_heat) * thermal;
        let hydraulic = 1.0 - (-1.0 / p.flow_tau_s).exp();
        self.flow += (steady_flow(&p, load) - self.flow) * hydraulic;

        let relative_flow = self.flow / MAX_FLOW;
        let healthy = Truth {
            temperature: self.healthy_temperature,
            pressure: STATIC_PRESSURE
                + p.resistance * DYNAMIC_PRESSURE * relative_flow * relative_flow,
            vibration: 0.8 + 5.0 * load * load + 6.0 * self.wear * (0.5 + load),
            current: 4.0 + 100.0 * p.size * load.powf(1.2) * (1.0 + 0.1 * self.wear),
            flow: self.flow,
        };
        let mut truth = clamp_healthy(healthy);
        truth.temperature += self.bearing_heat;
        truth.vibration += 12.0 * bearing_severity * (0.5 + load);
        truth
    }
}

fn steady_temperature(p: &AssetParams, load: f64, wear: f64) -> f64 {
    p.ambient + 70.0 * load.powf(1.4) * (1.0 + 0.15 * wear)
}

fn steady_flow(p: &AssetParams, load: f64) -> f64 {
    MAX_FLOW * p.size * load.powf(0.9)
}

/// Keeps every quantity of a healthy asset inside its healthy band. The model
/// above is built to stay inside anyway; this makes the guarantee explicit.
fn clamp_healthy(t: Truth) -> Truth {
    let clamp = |q: Quantity, v: f64| {
        let (lo, hi) = q.healthy_band();
        v.clamp(lo, hi)
    };
    Truth {
        temperature: clamp(Quantity::Temperature, t.temperature),
        pressure: clamp(Quantity::Pressure, t.pressure),
        vibration: clamp(Quantity::Vibration, t.vibration),
        current: clamp(Quantity::Current, t.current),
        flow: clamp(Quantity::Flow, t.flow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn table_matches_spec_totals() {
        assert_eq!(events_per_asset_second(), 111);
        assert_eq!(
            CHANNELS
                .iter()
                .filter(|c| c.quantity == Quantity::Temperature)
                .count(),
            3
        );
        assert_eq!(
            CHANNELS
                .iter()
                .filter(|c| c.quantity == Quantity::Pressure)
                .count(),
            2
        );
        for c in &CHANNELS {
            assert_eq!(
                c.period_us() * c.rate_hz as i64,
                SECOND_US,
                "{} rate divides a second",
                c.name
            );
            assert!(c.physical.0 <= c.operating.0 && c.operating.1 <= c.physical.1);
        }
    }

    #[test]
    fn names_lines_and_catalog() {
        let plant = Plant::new(41);
        assert_eq!(plant.asset_name(7), "asset-0007");
        assert_eq!(plant.line_name(19), "line-00");
        assert_eq!(plant.line_name(20), "line-01");
        assert_eq!(plant.line_name(40), "line-02");
        assert_eq!(
            plant.sensor_name(Plant::sensor_index(3, 5)),
            "asset-0003/vib-1"
        );
        let catalog = plant.catalog();
        assert_eq!(catalog.assets().len(), 41);
        assert_eq!(catalog.sensors().len(), 41 * 8);
        let flow = &catalog.sensors()[7];
        assert_eq!(
            (
                flow.sensor.as_str(),
                flow.kind.as_str(),
                flow.sigma,
                flow.min,
                flow.max
            ),
            ("asset-0000/flow", "flow", 0.5, 0.0, 1000.0)
        );
    }

    /// Over hours of plant time, healthy truth stays in the healthy band, all
    /// load phases occur, and the couplings hold: pressure is a function of flow
    /// squared, and temperature lags load (it is not a function of current load).
    #[test]
    fn truth_process_is_coupled_and_in_band() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut asset = AssetProcess::random(&mut rng);
        let (mut saw_idle, mut saw_full) = (false, false);
        let mut previous: Option<Truth> = None;
        for _ in 0..4 * 3600 {
            let t = asset.advance(&mut rng, 0.0);
            for q in Quantity::ALL {
                let (lo, hi) = q.healthy_band();
                assert!(
                    (lo..=hi).contains(&t.get(q)),
                    "{q:?} = {} outside {lo}..{hi}",
                    t.get(q)
                );
            }
            let rel = t.flow / MAX_FLOW;
            let expect = STATIC_PRESSURE + asset.params.resistance * DYNAMIC_PRESSURE * rel * rel;
            assert!((t.pressure - expect).abs() < 1e-9);
            if let Some(p) = previous {
                // A lag of minutes: one second moves the temperature only a little.
                assert!((t.temperature - p.temperature).abs() < 1.0);
            }
            saw_idle |= t.current < 10.0;
            saw_full |= t.current > 60.0;
            previous = Some(t);
        }
        assert!(saw_idle && saw_full, "duty cycles reach idle and high load");
    }

    #[test]
    fn bearing_fault_raises_vibration_and_temperature() {
        let mut rng_a = Xoshiro256PlusPlus::seed_from_u64(9);
        let mut healthy = AssetProcess::random(&mut rng_a);
        let mut faulty = healthy.clone();
        let mut rng_b = rng_a.clone();
        let (mut h, mut f) = (None, None);
        for _ in 0..300 {
            h = Some(healthy.advance(&mut rng_a, 0.0));
            f = Some(faulty.advance(&mut rng_b, 1.0));
        }
        let (h, f) = (h.unwrap(), f.unwrap());
        assert!(f.vibration > h.vibration + 5.0);
        assert!(f.temperature > h.temperature + 3.0);
        assert_eq!((f.current, f.flow), (h.current, h.flow));
    }
}
