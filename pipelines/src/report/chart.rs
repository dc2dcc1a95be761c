//! The report's charts, drawn by plotters into inline SVG: an asset's fused
//! quantities over time beside its flagged sensors' window means, and a
//! suspect sensor against the other sensors of its quantity.

use plotters::coord::Shift;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::{RangedCoordf64, RangedCoordi64};
use plotters::prelude::*;
use twinflow_engine::error::{Error, Result};

use super::data::{Flag, FusedPoint, Points};
use super::format::{DAY_US, clock};

/// Line colours (red is kept for flags and suspects).
pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
];
/// Flagged windows, flagged means and the suspect sensor.
pub(crate) const FLAG_RED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// Opacity of a flagged window's band.
pub(crate) const BAND_OPACITY: f64 = 0.2;
/// A flagged sensor's window means.
const SENSOR_COLOUR: RGBColor = RGBColor(0x34, 0x49, 0x5e);
const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);
const AXIS: RGBColor = RGBColor(0xbb, 0xbb, 0xbb);
const TEXT: RGBColor = RGBColor(0x44, 0x44, 0x44);
const FONT: &str = "sans-serif";
/// plotters writes a font size as 1/1.24 of the one asked for: these ask
/// for 13 px captions and 11 px labels.
const CAPTION_SIZE: f64 = 13.0 * 1.24;
const LABEL_SIZE: f64 = 11.0 * 1.24;

/// `#rrggbb` of a colour, for the page's legends.
pub(crate) fn css(colour: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", colour.0, colour.1, colour.2)
}

/// Time buckets of a chart: a line keeps at most two points a bucket.
pub(crate) const BUCKETS: usize = 300;
/// Time buckets of a sensor's panel (half as wide).
const PANEL_BUCKETS: usize = 150;

const WIDTH: u32 = 920;
const LANE_H: u32 = 130;
const PANEL_H: u32 = 150;
const PANEL_COLUMNS: usize = 2;
const SUSPECT_VALUES_H: u32 = 240;
const SUSPECT_TRUST_H: u32 = 110;

/// A fused quantity of an asset.
pub(crate) struct Lane<'a> {
    pub label: &'a str,
    pub colour: RGBColor,
    pub points: &'a Points,
}

/// A flagged sensor's window means and its flags.
pub(crate) struct Panel<'a> {
    pub sensor: &'a str,
    pub points: &'a Points,
    pub flags: &'a [&'a Flag],
}

/// One asset's figure: a lane per fused quantity over a shared time axis,
/// then a small panel per flagged sensor.
pub(crate) struct AssetChart<'a> {
    pub lanes: Vec<Lane<'a>>,
    pub panels: Vec<Panel<'a>>,
    pub flags: &'a [&'a Flag],
    pub window_us: i64,
}

/// A sensor of the suspect's quantity: its window means and its trust.
pub(crate) struct SensorLine<'a> {
    pub sensor: &'a str,
    pub colour: RGBColor,
    pub means: Points,
    pub trust: Points,
}

/// A suspect sensor in context: the fused value of its quantity with the 95 %
/// band, every sensor of that quantity, and their trust underneath.
pub(crate) struct SuspectChart<'a> {
    pub quantity: &'a str,
    pub fused: Vec<FusedPoint>,
    pub sensors: Vec<SensorLine<'a>>,
    /// The flagged window's start.
    pub flagged_us: i64,
    pub window_us: i64,
    /// The time span drawn.
    pub span: (i64, i64),
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;
type TimeChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<WithKeyPoints<RangedCoordi64>, RangedCoordf64>>;

/// Draws `draw` onto an SVG of `height` and returns its text.
fn svg(height: u32, draw: impl FnOnce(&Area) -> Drawn) -> Result<String> {
    let mut text = String::with_capacity(32 * 1024);
    {
        let root = SVGBackend::with_string(&mut text, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present())
            .map_err(|e| Error::Config(format!("drawing a chart: {e}")))?;
    }
    text.push('\n');
    Ok(text)
}

/// A plot over `[t0, t1]` with clock ticks and a value axis fitted to `values`.
fn time_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    (t0, t1): (i64, i64),
    ticks: usize,
    values: impl Iterator<Item = f64>,
) -> std::result::Result<TimeChart<'a, 'b>, DrawingAreaErrorKind<std::io::Error>> {
    let (lo, hi) = value_range(values);
    let (keys, step) = time_ticks(t0, t1, ticks);
    // Enough decimals to tell about five ticks apart.
    let decimals = (-((hi - lo) / 5.0).log10().floor()).clamp(0.0, 6.0) as usize;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, CAPTION_SIZE).into_font().color(&TEXT))
        .margin_left(4)
        .margin_right(24)
        .margin_top(2)
        .x_label_area_size(20)
        .y_label_area_size(60)
        .build_cartesian_2d((t0..t1).with_key_points(keys), lo..hi)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|t| clock(*t, step))
        .y_label_formatter(&|v| format!("{v:.decimals$}"))
        .y_labels(5)
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS)
        .label_style((FONT, LABEL_SIZE).into_font().color(&TEXT))
        .draw()?;
    Ok(chart)
}

/// A red band over each flagged window, at least 2 px wide.
fn bands(chart: &mut TimeChart, windows: impl Iterator<Item = i64>, window_us: i64) -> Drawn {
    let (t0, t1) = {
        let range = chart.x_range();
        (range.start, range.end)
    };
    let pixels = chart.plotting_area().dim_in_pixel().0.max(1);
    let min_us = 2 * (t1 - t0) / i64::from(pixels);
    let (lo, hi) = {
        let range = chart.y_range();
        (range.start, range.end)
    };
    let mut starts: Vec<i64> = windows.collect();
    starts.dedup();
    let style = FLAG_RED.mix(BAND_OPACITY).filled();
    chart.draw_series(starts.into_iter().map(|t| {
        let widen = (min_us - window_us).max(0) / 2;
        Rectangle::new([(t - widen, hi), (t + window_us + widen, lo)], style)
    }))?;
    Ok(())
}

/// A series as lines broken where windows are missing (a lone window as a dot).
fn line(
    chart: &mut TimeChart,
    points: &[(i64, f64)],
    window_us: i64,
    buckets: usize,
    style: ShapeStyle,
) -> Drawn {
    let (t0, t1) = {
        let range = chart.x_range();
        (range.start, range.end)
    };
    for segment in series_segments(points, t0, t1, window_us, buckets) {
        if let [only] = segment.as_slice() {
            chart.draw_series(std::iter::once(Circle::new(*only, 2, style.color.filled())))?;
        } else {
            chart.draw_series(std::iter::once(PathElement::new(segment, style)))?;
        }
    }
    Ok(())
}

impl AssetChart<'_> {
    /// The time span of everything drawn: first window start to last window end.
    pub fn span(&self) -> (i64, i64) {
        let times = self
            .lanes
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .chain(
                self.panels
                    .iter()
                    .flat_map(|p| p.points.iter().map(|p| p.0)),
            )
            .chain(self.flags.iter().map(|f| f.window_start_us));
        let (t0, t1) = times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
        if t0 > t1 {
            (0, self.window_us)
        } else {
            (t0, t1 + self.window_us)
        }
    }

    pub fn svg(&self) -> Result<String> {
        let span = self.span();
        let lanes = self.lanes.len().max(1) as u32;
        let panel_rows = self.panels.len().div_ceil(PANEL_COLUMNS) as u32;
        svg(lanes * LANE_H + panel_rows * PANEL_H, |root| {
            let (lane_area, panel_area) = root.split_vertically(lanes * LANE_H);
            let flagged = || self.flags.iter().map(|f| f.window_start_us);
            if self.lanes.is_empty() {
                let mut chart = time_chart(
                    &lane_area,
                    "no fused values for this asset",
                    span,
                    8,
                    std::iter::empty(),
                )?;
                bands(&mut chart, flagged(), self.window_us)?;
            }
            for (area, lane) in lane_area
                .split_evenly((self.lanes.len().max(1), 1))
                .iter()
                .zip(&self.lanes)
            {
                let mut chart =
                    time_chart(area, lane.label, span, 8, lane.points.iter().map(|p| p.1))?;
                bands(&mut chart, flagged(), self.window_us)?;
                line(
                    &mut chart,
                    lane.points,
                    self.window_us,
                    BUCKETS,
                    lane.colour.stroke_width(2),
                )?;
            }
            if self.panels.is_empty() {
                return Ok(());
            }
            let areas = panel_area.split_evenly((panel_rows as usize, PANEL_COLUMNS));
            for (area, panel) in areas.iter().zip(&self.panels) {
                let flagged_means = panel
                    .flags
                    .iter()
                    .map(|f| f.value)
                    .filter(|v| v.is_finite());
                let caption = format!("{} ({} flagged)", panel.sensor, panel.flags.len());
                let values = panel.points.iter().map(|p| p.1).chain(flagged_means);
                let mut chart = time_chart(area, &caption, span, 4, values)?;
                bands(
                    &mut chart,
                    panel.flags.iter().map(|f| f.window_start_us),
                    self.window_us,
                )?;
                line(
                    &mut chart,
                    panel.points,
                    self.window_us,
                    PANEL_BUCKETS,
                    SENSOR_COLOUR.stroke_width(1),
                )?;
                chart.draw_series(panel.flags.iter().filter(|f| f.value.is_finite()).map(|f| {
                    Circle::new(
                        (f.window_start_us + self.window_us / 2, f.value),
                        3,
                        FLAG_RED.filled(),
                    )
                }))?;
            }
            Ok(())
        })
    }
}

impl SuspectChart<'_> {
    pub fn svg(&self) -> Result<String> {
        let (t0, t1) = self.span;
        let inside = |t: i64| t + self.window_us > t0 && t < t1;
        let fused: Vec<&FusedPoint> = self.fused.iter().filter(|p| inside(p.t)).collect();
        svg(SUSPECT_VALUES_H + SUSPECT_TRUST_H, |root| {
            let (values_area, trust_area) = root.split_vertically(SUSPECT_VALUES_H);
            let values = fused
                .iter()
                .flat_map(|p| [Some(p.value), p.lo95, p.hi95])
                .flatten()
                .chain(
                    self.sensors
                        .iter()
                        .flat_map(|s| s.means.iter().filter(|p| inside(p.0)).map(|p| p.1)),
                );
            let caption = format!(
                "{}: fused (95 % band) and each sensor's window means",
                self.quantity
            );
            let mut chart = time_chart(&values_area, &caption, self.span, 6, values)?;
            bands(&mut chart, std::iter::once(self.flagged_us), self.window_us)?;
            // The 95 % band, a polygon per unbroken run of windows.
            let middle = self.window_us / 2;
            let bounded: Vec<(i64, f64, f64)> = fused
                .iter()
                .filter_map(|p| Some((p.t, p.lo95?, p.hi95?)))
                .collect();
            for run in segments_by(&bounded, |p| p.0, self.window_us + middle) {
                let outline: Vec<(i64, f64)> = run
                    .iter()
                    .map(|p| (p.0 + middle, p.2))
                    .chain(run.iter().rev().map(|p| (p.0 + middle, p.1)))
                    .collect();
                chart.draw_series(std::iter::once(Polygon::new(
                    outline,
                    PALETTE[0].mix(0.18).filled(),
                )))?;
            }
            for sensor in &self.sensors {
                line(
                    &mut chart,
                    &sensor.means,
                    self.window_us,
                    BUCKETS,
                    sensor.colour.stroke_width(1),
                )?;
            }
            let values: Points = fused.iter().map(|p| (p.t, p.value)).collect();
            line(
                &mut chart,
                &values,
                self.window_us,
                BUCKETS,
                PALETTE[0].stroke_width(2),
            )?;

            let mut chart = time_chart(
                &trust_area,
                "trust (0–1)",
                self.span,
                6,
                [0.0, 1.0].into_iter(),
            )?;
            bands(&mut chart, std::iter::once(self.flagged_us), self.window_us)?;
            for sensor in &self.sensors {
                line(
                    &mut chart,
                    &sensor.trust,
                    self.window_us,
                    BUCKETS,
                    sensor.colour.stroke_width(2),
                )?;
            }
            Ok(())
        })
    }
}

/// A value axis around `values` with a little room above and below.
fn value_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = if hi - lo > f64::EPSILON * hi.abs().max(lo.abs()).max(1.0) {
        (hi - lo) * 0.05
    } else if lo == 0.0 {
        1.0
    } else {
        lo.abs() * 0.05
    };
    (lo - pad, hi + pad)
}

/// A series ready to draw: each window at its middle, thinned to at most two
/// points per time bucket of `[t0, t1]` when longer than two per bucket, cut
/// into segments where windows are missing.
pub(crate) fn series_segments(
    points: &[(i64, f64)],
    t0: i64,
    t1: i64,
    window_us: i64,
    buckets: usize,
) -> Vec<Points> {
    let mut max_gap = window_us + window_us / 2;
    let thin = points.len() > 2 * buckets;
    if thin {
        // A gap wider than a bucket: segments never share a bucket, so the
        // whole series keeps at most two points a bucket.
        max_gap = max_gap.max((t1 - t0) / buckets as i64 + 1);
    }
    segments_by(points, |p| p.0, max_gap)
        .into_iter()
        .map(|segment| {
            let kept = if thin {
                downsample(segment, t0, t1, buckets)
            } else {
                segment.to_vec()
            };
            kept.iter().map(|&(t, v)| (t + window_us / 2, v)).collect()
        })
        .collect()
}

/// Splits a series (sorted by time) where consecutive items are more than
/// `max_gap` apart.
fn segments_by<T>(items: &[T], time: impl Fn(&T) -> i64, max_gap: i64) -> Vec<&[T]> {
    let mut segments = Vec::new();
    let mut start = 0;
    for i in 1..=items.len() {
        if i == items.len() || time(&items[i]) - time(&items[i - 1]) > max_gap {
            if i > start {
                segments.push(&items[start..i]);
            }
            start = i;
        }
    }
    segments
}

/// At most two points per bucket of a series sorted by time: `[t0, t1]` is
/// cut into `buckets` equal spans, and each keeps its lowest and its highest
/// point, in time order (one point when they are the same).
fn downsample(points: &[(i64, f64)], t0: i64, t1: i64, buckets: usize) -> Points {
    let buckets = buckets.max(1);
    let span = i128::from((t1 - t0).max(1));
    let bucket = |t: i64| {
        let offset = i128::from((t - t0).max(0));
        ((offset * buckets as i128 / span) as usize).min(buckets - 1)
    };
    let mut kept = Vec::with_capacity(points.len().min(2 * buckets));
    let mut i = 0;
    while i < points.len() {
        let b = bucket(points[i].0);
        let (mut lo, mut hi, mut j) = (i, i, i);
        while j < points.len() && bucket(points[j].0) == b {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        kept.push(points[lo.min(hi)]);
        if lo != hi {
            kept.push(points[lo.max(hi)]);
        }
        i = j;
    }
    kept
}

/// A round step of about `span / target`: 1, 2 or 5 times a power of ten.
fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let unit = raw / magnitude;
    let nice = if unit < 1.5 {
        1.0
    } else if unit < 3.0 {
        2.0
    } else if unit < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Round time ticks within `[t0, t1]` (about `target` of them), aligned to
/// the clock, and their step in microseconds.
pub(crate) fn time_ticks(t0: i64, t1: i64, target: usize) -> (Vec<i64>, i64) {
    const STEPS_MS: [i64; 27] = [
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000,
        120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000,
        21_600_000, 43_200_000, 86_400_000,
    ];
    let span = (t1 - t0).max(1);
    let target = target.max(1) as i64;
    let step = STEPS_MS
        .iter()
        .map(|ms| ms * 1_000)
        .find(|step| span / step <= target)
        .unwrap_or_else(|| {
            let days = (span / DAY_US / target).max(1);
            nice_step(days as f64, 1).max(1.0) as i64 * DAY_US
        });
    let first = t0.div_euclid(step) * step + if t0.rem_euclid(step) == 0 { 0 } else { step };
    let ticks = (0..)
        .map(|k| first + k * step)
        .take_while(|t| *t <= t1)
        .collect();
    (ticks, step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::format::SECOND_US;

    #[test]
    fn downsampling_keeps_the_min_and_max_of_each_bucket() {
        // 1000 points over 1 s, values a deterministic jumble.
        let points: Points = (0..1000i64)
            .map(|i| (i * 1_000, ((i * 7_919) % 1_009) as f64 - 500.0))
            .collect();
        let (t0, t1, buckets) = (0, 1_000_000, 10);
        let kept = downsample(&points, t0, t1, buckets);
        assert!(kept.len() <= 2 * buckets, "{} points", kept.len());
        assert!(
            kept.windows(2).all(|w| w[0].0 < w[1].0),
            "not in time order"
        );
        for b in 0..buckets as i64 {
            let (from, to) = (b * 100_000, (b + 1) * 100_000);
            let inside = |p: &&(i64, f64)| p.0 >= from && p.0 < to;
            let min = points
                .iter()
                .filter(inside)
                .map(|p| p.1)
                .fold(f64::MAX, f64::min);
            let max = points
                .iter()
                .filter(inside)
                .map(|p| p.1)
                .fold(f64::MIN, f64::max);
            let kept_here: Vec<f64> = kept.iter().filter(inside).map(|p| p.1).collect();
            assert_eq!(kept_here.len(), 2, "bucket {b}");
            assert!(
                kept_here.contains(&min) && kept_here.contains(&max),
                "bucket {b}"
            );
        }
        // A bucket of one point keeps it once; a flat bucket keeps one point.
        assert_eq!(
            downsample(&[(0, 1.0), (500, 2.0), (501, 2.0)], 0, 1_000, 2),
            vec![(0, 1.0), (500, 2.0)]
        );
    }

    #[test]
    fn series_are_cut_where_windows_are_missing() {
        let points: Points = [0, 1, 2, 5, 6, 9].map(|t| (t, t as f64)).to_vec();
        let lengths: Vec<usize> = segments_by(&points, |p| p.0, 1)
            .iter()
            .map(|s| s.len())
            .collect();
        assert_eq!(lengths, [3, 2, 1]);
        assert!(segments_by(&[] as &[(i64, f64)], |p| p.0, 1).is_empty());
        // Windows of 2 drawn at their middles; a gap of two windows cuts.
        assert_eq!(
            series_segments(&[(0, 1.0), (2, 2.0), (6, 3.0)], 0, 8, 2, BUCKETS),
            vec![vec![(1, 1.0), (3, 2.0)], vec![(7, 3.0)]]
        );
    }

    #[test]
    fn long_series_are_thinned_to_two_points_a_bucket() {
        let (t0, t1) = (0, 10_000 * SECOND_US);
        let points: Points = (0..10_000)
            .map(|i| (i * SECOND_US, (i as f64 / 7.0).sin()))
            .collect();
        let drawn = series_segments(&points, t0, t1, SECOND_US, BUCKETS);
        assert_eq!(drawn.len(), 1, "one unbroken line");
        assert!(drawn[0].len() <= 2 * BUCKETS, "{} points", drawn[0].len());
        assert!(drawn[0].len() > BUCKETS, "{} points", drawn[0].len());
        // Cut by gaps, still at most two points a bucket.
        let gapped: Points = points
            .iter()
            .filter(|p| p.0 % (2_000 * SECOND_US) >= 100 * SECOND_US)
            .copied()
            .collect();
        let drawn = series_segments(&gapped, t0, t1, SECOND_US, BUCKETS);
        assert_eq!(drawn.len(), 5);
        let total: usize = drawn.iter().map(Vec::len).sum();
        assert!(total <= 2 * BUCKETS, "{total} points");
    }

    #[test]
    fn ticks_are_round() {
        let (ticks, step) = time_ticks(3 * SECOND_US, 63 * SECOND_US, 8);
        assert_eq!(step, 10 * SECOND_US);
        assert_eq!(
            ticks,
            (1..=6).map(|k| k * 10 * SECOND_US).collect::<Vec<_>>()
        );
        assert_eq!(time_ticks(0, 600 * SECOND_US, 8).1, 120 * SECOND_US);
        let (lo, hi) = value_range([5.0, 5.0].into_iter());
        assert!(lo < 5.0 && hi > 5.0);
        assert_eq!(value_range([0.0, 10.0].into_iter()), (-0.5, 10.5));
        assert_eq!(value_range(std::iter::empty()), (0.0, 1.0));
    }

    #[test]
    fn svg_text_is_escaped_by_plotters_and_needs_no_font() {
        let points: Points = (0..10).map(|i| (i * SECOND_US, i as f64)).collect();
        let chart = AssetChart {
            lanes: vec![Lane {
                label: "a<&>b",
                colour: PALETTE[0],
                points: &points,
            }],
            panels: Vec::new(),
            flags: &[],
            window_us: SECOND_US,
        };
        let svg = chart.svg().unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains(">\na&lt;&amp;&gt;b\n</text>"), "{svg}");
        assert!(!svg.contains("a<&>b"));
        // One line of ten windows, in the lane's colour.
        let lines: Vec<&str> = svg
            .split("<polyline")
            .skip(1)
            .filter(|l| l.contains("stroke=\"#1F77B4\""))
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0]
                .split("points=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .split_whitespace()
                .count(),
            10
        );
    }
}
