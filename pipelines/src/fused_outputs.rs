//! The records each fused row contributes to `fused/`, `trust/`, `imputed/` and `flags/`, taken from it in one pass.

use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::progress::operate::FrontierInterest;
use twinflow_engine::catalog::AssetId;
use twinflow_engine::time::Micros;
use twinflow_operators::asset_models::{Imputed, ModelAlarm};
use twinflow_operators::fuse::{FusedRow, FusedValue};
use twinflow_operators::trust::{SensorTrust, Suspect};

/// A row of `fused/`: one fused quantity of one asset and window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FusedRecord {
    pub asset: AssetId,
    pub start_us: Micros,
    /// Index of the quantity in the fusion's quantities.
    pub quantity: usize,
    pub value: FusedValue,
}

/// A row of `trust/`: how far fusion believed one sensor in one window.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TrustRecord {
    pub start_us: Micros,
    pub trust: SensorTrust,
}

/// A row of `imputed/`: a channel not measured in one asset's window, estimated.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ImputedRecord {
    pub asset: AssetId,
    pub start_us: Micros,
    pub imputed: Imputed,
}

/// What [`SplitFused::split_fused`] makes of a stream of fused rows.
pub struct FusedOutputs<'s> {
    /// The rows themselves, unchanged (for the twin views).
    pub rows: Stream<'s, Micros, Vec<FusedRow>>,
    /// Per row, one record per fused quantity that has a value.
    pub fused: Stream<'s, Micros, Vec<FusedRecord>>,
    /// Per row, one record per trust record.
    pub trust: Stream<'s, Micros, Vec<TrustRecord>>,
    /// Per row, its suspects.
    pub suspects: Stream<'s, Micros, Vec<Suspect>>,
    /// Per row, one record per imputed channel.
    pub imputed: Stream<'s, Micros, Vec<ImputedRecord>>,
    /// Per row, the alarm its model raised, if any.
    pub alarms: Stream<'s, Micros, Vec<ModelAlarm>>,
}

/// Splits fused rows into the records of their datasets.
pub trait SplitFused<'s> {
    /// Passes each fused row on, and sends its fused quantities, trust
    /// records, suspects, imputed channels and model alarms as records of their own, at the row's time, in
    /// the rows' order (and each row's: quantities, trust records and
    /// suspects in their order in the row).
    ///
    /// Guarantee: every output holds what the row held, whatever the
    /// number of workers; the rows are not copied. A stream read by several
    /// operators is copied for each of them but the last, and a fused row
    /// (its aligned row, values and trust) is large, while these records
    /// are small.
    ///
    /// ```
    /// use std::sync::mpsc::Receiver;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Event;
    /// use twinflow_operators::align::{AlignedRow, AlignedValue, WindowShape};
    /// use twinflow_operators::fuse::{FusedRow, FusedValue};
    /// use twinflow_operators::trust::{SensorTrust, TrustState};
    /// use twinflow_pipelines::fused_outputs::SplitFused;
    ///
    /// let shape = WindowShape { readings: 10, spread: None, ahead: 0 };
    /// let trust = |sensor, weight| SensorTrust {
    ///     sensor, trust: 1.0, weight, state: TrustState::Trusted, residual: Some(0.5),
    /// };
    /// let value = FusedValue { value: 20.0, variance: 0.01, sensors: 2 };
    /// let row = FusedRow {
    ///     row: AlignedRow {
    ///         asset: 3, start_us: 5_000_000, end_us: 6_000_000,
    ///         values: vec![AlignedValue::measured(20.0, shape, Some(5_000_000)); 2],
    ///     },
    ///     // A quantity without a value has no record in `fused`.
    ///     values: vec![None, Some(value)],
    ///     trust: vec![trust(7, 0.25), trust(8, 0.75)],
    ///     suspects: Vec::new(),
    ///     imputed: Vec::new(),
    ///     surprise: None,
    /// };
    /// let (rows, fused, trust) = timely::execute_directly(move |worker| {
    ///     worker.dataflow::<i64, _, _>(|scope| {
    ///         let split = vec![row].to_stream(scope).split_fused();
    ///         (split.rows.capture(), split.fused.capture(), split.trust.capture())
    ///     })
    /// });
    /// fn records<D>(events: Receiver<Event<i64, Vec<D>>>) -> Vec<D> {
    ///     let batches = events.try_iter().filter_map(|event| match event {
    ///         Event::Messages(_, records) => Some(records),
    ///         Event::Progress(_) => None,
    ///     });
    ///     batches.flatten().collect()
    /// }
    /// let rows = records(rows);
    /// assert_eq!(rows.len(), 1);
    /// assert_eq!(rows[0].trust.len(), 2, "the row passes on whole");
    /// let fused = records(fused);
    /// assert_eq!(fused.len(), 1);
    /// assert_eq!((fused[0].asset, fused[0].start_us, fused[0].quantity), (3, 5_000_000, 1));
    /// assert_eq!(fused[0].value.value, 20.0);
    /// let trust = records(trust);
    /// let sensors: Vec<_> = trust.iter().map(|t| (t.start_us, t.trust.sensor, t.trust.weight)).collect();
    /// assert_eq!(sensors, [(5_000_000, 7, 0.25), (5_000_000, 8, 0.75)]);
    /// ```
    fn split_fused(self) -> FusedOutputs<'s>;
}

impl<'s> SplitFused<'s> for Stream<'s, Micros, Vec<FusedRow>> {
    fn split_fused(self) -> FusedOutputs<'s> {
        let mut builder = OperatorBuilder::new("SplitFused".to_owned(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        // Records leave at their row's time: the operator never waits for
        // its input's frontier.
        builder.set_notify_for(0, FrontierInterest::Never);
        let (mut rows_out, rows) = builder.new_output::<Vec<FusedRow>>();
        let (mut fused_out, fused) = builder.new_output::<Vec<FusedRecord>>();
        let (mut trust_out, trust) = builder.new_output::<Vec<TrustRecord>>();
        let (mut suspects_out, suspects) = builder.new_output::<Vec<Suspect>>();
        let (mut imputed_out, imputed) = builder.new_output::<Vec<ImputedRecord>>();
        let (mut alarms_out, alarms) = builder.new_output::<Vec<ModelAlarm>>();
        builder.build(move |_capabilities| {
            move |_frontiers| {
                let mut rows_out = rows_out.activate();
                let mut fused_out = fused_out.activate();
                let mut trust_out = trust_out.activate();
                let mut suspects_out = suspects_out.activate();
                let mut imputed_out = imputed_out.activate();
                let mut alarms_out = alarms_out.activate();
                input.for_each(|time, batch| {
                    let (mut fused, mut trust, mut suspects) = (Vec::new(), Vec::new(), Vec::new());
                    let (mut imputed, mut alarms) = (Vec::new(), Vec::new());
                    for row in batch.iter() {
                        let (asset, start_us) = (row.asset(), row.start_us());
                        fused.extend(row.values.iter().enumerate().filter_map(|(q, v)| {
                            v.map(|value| FusedRecord {
                                asset,
                                start_us,
                                quantity: q,
                                value,
                            })
                        }));
                        trust.extend(
                            row.trust
                                .iter()
                                .map(|&trust| TrustRecord { start_us, trust }),
                        );
                        suspects.extend(row.suspects.iter().cloned());
                        imputed.extend(row.imputed.iter().map(|&imputed| ImputedRecord {
                            asset,
                            start_us,
                            imputed,
                        }));
                        alarms.extend(row.surprise.as_ref().and_then(|s| s.alarm.clone()));
                    }
                    fused_out.give(&time, &mut fused);
                    trust_out.give(&time, &mut trust);
                    suspects_out.give(&time, &mut suspects);
                    imputed_out.give(&time, &mut imputed);
                    alarms_out.give(&time, &mut alarms);
                    rows_out.give(&time, batch);
                });
            }
        });
        FusedOutputs {
            rows,
            fused,
            trust,
            suspects,
            imputed,
            alarms,
        }
    }
}
