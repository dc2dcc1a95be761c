//! The building block of stateful per-key operators: records handed over one timestamp at a time, in timestamp order.

use std::collections::BTreeMap;

use timely::ExchangeData;
use timely::dataflow::Stream;
use timely::dataflow::operators::Operator;
use twinflow_engine::runtime::spread;
use twinflow_engine::time::Micros;

use twinflow_engine::exchange::exchange;

/// A stateful step that consumes a stream one timestamp at a time.
pub trait TimeStep<D, O>: 'static {
    /// Processes every record of timestamp `time`, after all earlier
    /// timestamps and once no more records of `time` can arrive. Records come
    /// from several workers in no particular order: a step that keeps state
    /// sorts them by a key of their own first. Outputs are emitted at `time`.
    fn step(&mut self, time: Micros, records: &mut Vec<D>, out: &mut Vec<O>);

    /// The time a record belongs to, if not the timestamp of the message that
    /// carried it. Differential dataflow streams carry updates whose own
    /// times may be later than their message's; a step over them says so here.
    /// A message's first record decides for all of it: either every record
    /// of a message has its own time or none does (so a step over several
    /// streams, concatenated, keeps them in separate messages).
    fn record_time(&self, _record: &D) -> Option<Micros> {
        None
    }

    /// Called once when the input is exhausted, for outputs that waited on
    /// records that will never come; they are emitted at the last frontier the input reached.
    fn finish(&mut self, _out: &mut Vec<O>) {}
}

/// Routes records by `route` (spread over workers by
/// [`twinflow_engine::runtime::spread`], through [`exchange`], so a stream
/// already partitioned by the same route stays where it is), stashes them by
/// timestamp, and runs `step` on each timestamp in order once the input
/// frontier has passed it.
///
/// This is what makes per-key state deterministic: whatever the number of
/// workers and however records interleave, a key's step sees the same records
/// in the same timestamp order (and, within a timestamp, in whatever order the
/// step sorts them).
pub fn in_time_order<'s, D, O, S>(
    stream: Stream<'s, Micros, Vec<D>>,
    name: &str,
    route: impl Fn(&D) -> u64 + 'static,
    mut step: S,
) -> Stream<'s, Micros, Vec<O>>
where
    D: ExchangeData,
    O: ExchangeData,
    S: TimeStep<D, O>,
{
    let route = move |d: &D| spread(route(d));
    stream.unary_frontier(exchange(route), name, |capability, _info| {
        let mut capability = Some(capability);
        // Per timestamp, the containers that brought its records, kept as
        // they came: a timestamp's records come in many containers (a
        // container holds about 8 KB), and appending each to one vector
        // copied every record two or three times as the vector grew.
        let mut stash: BTreeMap<Micros, Vec<Vec<D>>> = BTreeMap::new();
        let mut out = Vec::new();
        move |(input, frontier), output| {
            input.for_each(|stamp, data| {
                let time = *stamp.least().expect("a stamped message");
                match data.first().and_then(|d| step.record_time(d)) {
                    None => stash.entry(time).or_default().push(std::mem::take(data)),
                    Some(_) => {
                        // Runs of records of one time are common: one lookup a run.
                        let mut records = data.drain(..).peekable();
                        while let Some(record) = records.next() {
                            let own = step.record_time(&record).unwrap_or(time);
                            let containers = stash.entry(own).or_default();
                            if containers.is_empty() {
                                containers.push(Vec::new());
                            }
                            let bucket = containers.last_mut().expect("just made");
                            bucket.push(record);
                            while let Some(next) =
                                records.next_if(|r| step.record_time(r).unwrap_or(time) == own)
                            {
                                bucket.push(next);
                            }
                        }
                    }
                }
            });
            let Some(cap) = capability.as_mut() else {
                return;
            };
            let frontier = frontier.frontier();
            while let Some(entry) = stash.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let (time, mut containers) = entry.remove_entry();
                let mut records = match containers.len() {
                    1 => containers.pop().expect("one container"),
                    _ => {
                        let mut records = Vec::with_capacity(containers.iter().map(Vec::len).sum());
                        for mut container in containers {
                            records.append(&mut container);
                        }
                        records
                    }
                };
                step.step(time, &mut records, &mut out);
                if !out.is_empty() {
                    output.session(&cap.delayed(&time)).give_container(&mut out);
                }
            }
            match frontier.first() {
                Some(&next) => {
                    if *cap.time() < next {
                        cap.downgrade(&next);
                    }
                }
                None => {
                    step.finish(&mut out);
                    if !out.is_empty() {
                        output.session(&*cap).give_container(&mut out);
                    }
                    capability = None;
                }
            }
        }
    })
}
