//! An exchange that passes a container on whole when all its records go to one worker.

use timely::communication::Push;
use timely::container::{CapacityContainerBuilder, ContainerBuilder, PushInto};
use timely::dataflow::channels::Message;
use timely::dataflow::channels::pact::DistributorPact;
use timely::dataflow::channels::pushers::exchange::Distributor;
use timely::progress::Stamp;

/// The pact [`exchange`] makes.
pub type WholeExchange<D, F> = DistributorPact<Box<dyn FnOnce(usize) -> WholeContainers<D, F>>>;

/// Exchanges records by `route` as timely's `Exchange` does (a record goes
/// to worker `route(record) % peers`), but hands a container whose records
/// all go to one worker to that worker whole, without copying a record.
///
/// This is what lets stages that key their state alike share a partition
/// for free: when windows are already closed on the worker of their asset,
/// the alignment and the detectors keyed by asset receive them as through a
/// `Pipeline`, while a stream partitioned any other way is still exchanged
/// exactly. Records sent from one worker to another keep their order.
///
/// ```
/// use timely::dataflow::operators::{Inspect, Operator, ToStream};
/// use twinflow_engine::exchange::exchange;
///
/// timely::execute(timely::Config::process(2), |worker| {
///     let index = worker.index() as u64;
///     worker.dataflow::<u64, _, _>(|scope| {
///         // Each worker sends 0..8: records go to worker `x % 2`.
///         (0..8u64)
///             .to_stream(scope)
///             .unary(exchange(|x: &u64| *x), "Place", |_, _| {
///                 move |input, output| {
///                     input.for_each(|time, data| output.session(&time).give_container(data))
///                 }
///             })
///             .inspect(move |x| assert_eq!(x % 2, index));
///     });
/// })
/// .unwrap();
/// ```
pub fn exchange<D, F>(route: F) -> WholeExchange<D, F>
where
    F: FnMut(&D) -> u64 + 'static,
    D: 'static,
{
    DistributorPact(Box::new(move |peers| WholeContainers::new(route, peers)))
}

/// The [`Distributor`] behind [`exchange`].
pub struct WholeContainers<D, F> {
    route: F,
    /// Per worker, the records bound for it from split containers.
    builders: Vec<CapacityContainerBuilder<Vec<D>>>,
}

impl<D, F: FnMut(&D) -> u64> WholeContainers<D, F> {
    fn new(route: F, peers: usize) -> Self {
        WholeContainers {
            route,
            builders: (0..peers).map(|_| Default::default()).collect(),
        }
    }

    /// The worker `record` goes to: `route % peers`, as a mask when the
    /// number of workers is a power of two (a division per record is dear).
    #[inline]
    fn target(&mut self, record: &D) -> usize {
        let (route, peers) = ((self.route)(record), self.builders.len() as u64);
        (if peers.is_power_of_two() {
            route & (peers - 1)
        } else {
            route % peers
        }) as usize
    }

    /// The one worker every record of `container` goes to, if there is one.
    fn single_target(&mut self, container: &[D]) -> Option<usize> {
        let (first, rest) = container.split_first()?;
        if self.builders.len() == 1 {
            // One worker: no record needs routing.
            return Some(0);
        }
        let target = self.target(first);
        rest.iter()
            .all(|d| self.target(d) == target)
            .then_some(target)
    }
}

impl<D, F: FnMut(&D) -> u64> Distributor<Vec<D>> for WholeContainers<D, F> {
    fn partition<T: Clone, P: Push<Message<T, Vec<D>>>>(
        &mut self,
        container: &mut Vec<D>,
        stamp: &Stamp<T>,
        pushers: &mut [P],
    ) {
        if let Some(target) = self.single_target(container) {
            // Records split off earlier containers go first, to keep order.
            self.flush(stamp, pushers);
            Message::push_at(container, stamp.clone(), &mut pushers[target]);
            // A pusher to another process serializes the records and hands
            // them back: they are sent, and must not be sent again.
            container.clear();
            return;
        }
        for record in container.drain(..) {
            let target = self.target(&record);
            let builder = &mut self.builders[target];
            builder.push_into(record);
            while let Some(full) = builder.extract() {
                Message::push_at(full, stamp.clone(), &mut pushers[target]);
            }
        }
    }

    fn flush<T: Clone, P: Push<Message<T, Vec<D>>>>(
        &mut self,
        stamp: &Stamp<T>,
        pushers: &mut [P],
    ) {
        for (builder, pusher) in self.builders.iter_mut().zip(pushers) {
            while let Some(rest) = builder.finish() {
                Message::push_at(rest, stamp.clone(), pusher);
            }
        }
    }

    fn relax(&mut self) {
        self.builders.iter_mut().for_each(ContainerBuilder::relax);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::InputHandle;
    use timely::dataflow::operators::Operator;

    use super::{WholeContainers, exchange};

    /// What each worker received: (record, capacity of its container).
    type Received = Arc<Mutex<Vec<Vec<((u64, u64), usize)>>>>;

    /// Runs two workers; worker `w` sends the containers `send(w)`, records
    /// `(sender, sequence)` routed by sequence. Returns what each received.
    fn run(send: fn(u64) -> Vec<Vec<u64>>) -> Vec<Vec<((u64, u64), usize)>> {
        let received: Received = Arc::new(Mutex::new(vec![Vec::new(), Vec::new()]));
        let shared = Arc::clone(&received);
        timely::execute(timely::Config::process(2), move |worker| {
            let me = worker.index() as u64;
            let shared = Arc::clone(&shared);
            let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<(u64, u64)>>>::new();
            worker.dataflow::<u64, _, _>(|scope| {
                input.to_stream(scope).sink(
                    exchange(|&(_, sequence): &(u64, u64)| sequence),
                    "Receive",
                    move |(input, _)| {
                        input.for_each(|_, data| {
                            let capacity = data.capacity();
                            let mut all = shared.lock().unwrap();
                            all[me as usize].extend(data.drain(..).map(|r| (r, capacity)));
                        })
                    },
                );
            });
            for sequences in send(me) {
                let mut container: Vec<(u64, u64)> = Vec::with_capacity(1000);
                container.extend(sequences.into_iter().map(|s| (me, s)));
                input.send_batch(&mut container);
            }
        })
        .unwrap();
        Arc::try_unwrap(received).unwrap().into_inner().unwrap()
    }

    #[test]
    fn every_record_reaches_its_worker_in_order() {
        // Mixed containers, and whole ones for either worker, interleaved.
        let received = run(|_| {
            vec![
                (0..10).collect(),
                vec![20, 22, 24],
                (30..35).collect(),
                vec![41, 43],
                (50..60).collect(),
            ]
        });
        for (worker, records) in received.iter().enumerate() {
            for sender in 0..2 {
                let sequences: Vec<u64> = records
                    .iter()
                    .filter(|((from, _), _)| *from == sender)
                    .map(|((_, s), _)| *s)
                    .collect();
                let expected: Vec<u64> = (0..10)
                    .chain([20, 22, 24])
                    .chain(30..35)
                    .chain([41, 43])
                    .chain(50..60)
                    .filter(|s| s % 2 == worker as u64)
                    .collect();
                assert_eq!(sequences, expected, "worker {worker} from {sender}");
            }
        }
    }

    /// Pushers to other processes serialize a message and leave it with
    /// the caller; what the exchange was given must be gone all the same.
    #[test]
    fn a_container_handed_back_is_not_sent_twice() {
        use timely::communication::Push;
        use timely::dataflow::channels::Message;
        use timely::dataflow::channels::pushers::exchange::Distributor;
        use timely::progress::Stamp;

        /// Records what it is given, and hands the message back.
        #[derive(Default)]
        struct Serializing(Vec<u64>);
        impl Push<Message<u64, Vec<u64>>> for Serializing {
            fn push(&mut self, message: &mut Option<Message<u64, Vec<u64>>>) {
                if let Some(message) = message {
                    self.0.extend_from_slice(&message.data);
                }
            }
        }

        let mut pushers = vec![Serializing::default(), Serializing::default()];
        let stamp = Stamp::from_elem(0u64);
        let mut distributor = WholeContainers::new(|x: &u64| *x, 2);
        for sent in [vec![1, 3, 5], vec![2, 3, 4], vec![7]] {
            let mut container = sent;
            distributor.partition(&mut container, &stamp, &mut pushers);
            assert!(container.is_empty(), "left with {container:?}");
        }
        distributor.flush(&stamp, &mut pushers);
        assert_eq!(pushers[0].0, [2, 4]);
        assert_eq!(pushers[1].0, [1, 3, 5, 3, 7]);
    }

    #[test]
    fn a_container_for_one_worker_travels_whole() {
        // Worker w sends one container of its own records and one of the other's.
        let received = run(|me| vec![vec![me, me + 2, me + 4], vec![1 - me, 3 - me]]);
        for (worker, records) in received.iter().enumerate() {
            assert_eq!(records.len(), 5);
            for ((_, sequence), capacity) in records {
                assert_eq!(*sequence % 2, worker as u64);
                // The input's container (capacity 1000) arrived as it was sent.
                assert_eq!(*capacity, 1000);
            }
        }
    }
}
