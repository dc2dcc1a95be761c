//! Busy time per operator, read from timely's scheduling log.
//!
//! A pipeline that runs slower than expected is slow in some operator; this
//! says which. Timely logs when it starts and stops scheduling each
//! operator; a [`Profiler`] sums those intervals per operator on one worker.
//! Nested scopes count in their parent too, so compare operators of one scope.
//! The time a worker spent parked, with nothing to run, is reported beside
//! its operators as [`PARKED`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use timely::logging::{ParkEvent, StartStop, TimelyEvent, TimelyEventBuilder};
use timely::worker::Worker;

/// The entry for the time a worker was parked, waiting for messages or
/// progress from other workers, or for a timer (its `activations` count the
/// times it parked): what the worker did not spend in any operator.
pub const PARKED: &str = "(parked)";

/// The log timely's scheduling events go to.
const LOG_NAME: &str = "timely";

/// How long one worker spent in one operator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OperatorBusy {
    pub worker: usize,
    /// The operator's name and its address in the dataflow (`[dataflow, operator]`).
    pub operator: String,
    /// Time spent running the operator, in microseconds.
    pub busy_us: u64,
    /// Times the worker ran it.
    pub activations: u64,
}

#[derive(Default)]
struct Tally {
    names: HashMap<usize, String>,
    busy: HashMap<usize, (Duration, u64)>,
    /// Operators being scheduled, innermost last, with their start times.
    open: Vec<(usize, Duration)>,
    /// Time parked with nothing to do, how often, and since when if parked now.
    parked: (Duration, u64),
    parked_since: Option<Duration>,
}

/// Sums the busy time of every operator a worker builds after
/// [`Profiler::attach`]. Costs a few log records per operator activation.
pub struct Profiler {
    tally: Rc<RefCell<Tally>>,
}

impl Profiler {
    /// Starts profiling `worker`'s operators; build the dataflow after this.
    pub fn attach(worker: &mut Worker) -> Profiler {
        let tally = Rc::new(RefCell::new(Tally::default()));
        let sink = Rc::clone(&tally);
        if let Some(mut registry) = worker.log_register() {
            registry.insert::<TimelyEventBuilder, _>(LOG_NAME, move |_, events| {
                let Some(events) = events else { return };
                let mut tally = sink.borrow_mut();
                for (time, event) in events.drain(..) {
                    match event {
                        TimelyEvent::Operates(op) => {
                            tally
                                .names
                                .insert(op.id, format!("{} {:?}", op.name, op.addr));
                        }
                        TimelyEvent::Schedule(s) => match s.start_stop {
                            StartStop::Start => tally.open.push((s.id, time)),
                            StartStop::Stop => {
                                if let Some((id, started)) = tally.open.pop() {
                                    let entry = tally.busy.entry(id).or_default();
                                    entry.0 += time.saturating_sub(started);
                                    entry.1 += 1;
                                }
                            }
                        },
                        TimelyEvent::Park(ParkEvent::Park(_)) => tally.parked_since = Some(time),
                        TimelyEvent::Park(ParkEvent::Unpark) => {
                            if let Some(since) = tally.parked_since.take() {
                                tally.parked.0 += time.saturating_sub(since);
                                tally.parked.1 += 1;
                            }
                        }
                        _ => {}
                    }
                }
            });
        }
        Profiler { tally }
    }

    /// Stops profiling; returns each operator's busy time and the worker's
    /// [`PARKED`] time, busiest first.
    pub fn finish(self, worker: &mut Worker) -> Vec<OperatorBusy> {
        // Removing the logger flushes what it buffered into the tally.
        if let Some(mut registry) = worker.log_register() {
            registry.remove(LOG_NAME);
        }
        let tally = self.tally.borrow();
        let mut busy: Vec<OperatorBusy> = tally
            .busy
            .iter()
            .map(|(id, (time, activations))| OperatorBusy {
                worker: worker.index(),
                operator: tally
                    .names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| id.to_string()),
                busy_us: time.as_micros() as u64,
                activations: *activations,
            })
            .collect();
        busy.push(OperatorBusy {
            worker: worker.index(),
            operator: PARKED.to_owned(),
            busy_us: tally.parked.0.as_micros() as u64,
            activations: tally.parked.1,
        });
        busy.sort_by(|a, b| b.busy_us.cmp(&a.busy_us).then(a.operator.cmp(&b.operator)));
        busy
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use timely::dataflow::operators::core::Map;
    use timely::dataflow::operators::{Input, Inspect, Probe};

    use super::Profiler;

    #[test]
    fn the_busy_operator_shows_its_time() {
        let busy = timely::execute_directly(|worker| {
            let profiler = Profiler::attach(worker);
            let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, stream) = scope.new_input::<Vec<u64>>();
                let probe = stream
                    .map::<Vec<u64>, _, _>(|x| {
                        // 20 ms of work per record, in an operator named "FlatMap" (`map` is built on `flat_map`).
                        let until = Instant::now() + Duration::from_millis(20);
                        while Instant::now() < until {}
                        x
                    })
                    .inspect(|_| {})
                    .probe()
                    .0;
                (input, probe)
            });
            for round in 0..3 {
                input.send(round);
                input.advance_to(round + 1);
                while probe.less_than(input.time()) {
                    worker.step();
                }
            }
            drop(input);
            while worker.step() {}
            profiler.finish(worker)
        });
        let map = busy
            .iter()
            .find(|b| b.operator.starts_with("FlatMap "))
            .unwrap_or_else(|| panic!("{busy:?}"));
        assert!(map.busy_us >= 60_000, "3 × 20 ms of work: {map:?}");
        assert!(map.activations >= 3, "{map:?}");
        let inspect = busy
            .iter()
            .find(|b| b.operator.starts_with("Inspect "))
            .unwrap();
        assert!(inspect.busy_us < map.busy_us / 10, "{inspect:?} vs {map:?}");
        assert_eq!(busy[0].operator.split(' ').next(), Some("Dataflow"));
    }
}
