//! Step 2 of the robust fusion: each sensor against the other witnesses, and disputes between the last two.

use super::measurement::Measurement;
use super::{GroupFilter, Shared};

/// Two sensors that disagree, and what the prediction said when they began to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum PairDispute {
    /// The prediction agreed with one and not the other (member index):
    /// a sudden lie, which the prediction had not yet followed.
    Blame(usize),
    /// The prediction cannot tell (it had followed a slow drift, or it is
    /// too uncertain, or it is one of the two speaking: see [`Solo`]):
    /// neither is excluded. While the prediction is sharper than their
    /// disagreement the filter coasts on it, so it does not follow either
    /// and may yet tell them apart (it is asked again each window, if it is
    /// a `witness`); once it is not, both are absorbed with a variance that
    /// covers their disagreement. `named` once an `ambiguous` suspect has
    /// been raised.
    Ambiguous {
        windows: u32,
        named: bool,
        witness: bool,
    },
}

/// A group member whose word alone has fed the filter lately: the other
/// was silent (or excluded). After [`SOLO_MEMORY`] windows, or once it made
/// the filter restart (a jump nothing confirmed), the prediction is that
/// sensor's own word, not a witness between it and a returning partner. If
/// it jumped and the partner comes back disagreeing, the jump is what the
/// partner contradicts: the solo sensor is blamed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Solo {
    pub(super) member: usize,
    pub(super) windows: u32,
    pub(super) jumped: bool,
}

/// Windows a sensor must feed the filter alone before the prediction is its
/// word rather than a witness (about the filter's memory).
pub(super) const SOLO_MEMORY: u32 = 30;

/// The weight of each window's gap in an agreeing pair's mean gap, and how
/// many of its honest σ make the mean gap significant.
const GAP_WEIGHT: f64 = 0.1;
const GAP_SIGNIFICANT: f64 = 3.0;

/// Windows an ambiguous dispute lasts before it is named.
pub(super) const AMBIGUOUS_AFTER: u32 = 10;
/// A prediction residual (σ) within which the prediction agrees with a sensor.
pub(super) const AGREES: f64 = 2.0;
/// Windows in a row the model's witness must blame the same member of a
/// disputing pair before the blame sticks: the model is broad, and its
/// errors come in spells.
const MODEL_VOTES: u32 = 3;
/// How many times sharper than the prediction the model must be for a lone
/// sensor to answer to it instead.
const LONE_MODEL_SHARPER: f64 = 4.0;

/// What step 2 made of one window: each measured sensor's residual (for
/// output), the evidence for its trust (`None`: none this window), who is
/// absorbed, and extra variance covering an unresolved disagreement.
pub(super) struct Judgement {
    pub(super) residuals: Vec<Option<f64>>,
    pub(super) evidence: Vec<Option<f64>>,
    pub(super) consistent: Vec<usize>,
    pub(super) widen: f64,
    /// Absorb nothing and keep the prediction (an unresolved dispute).
    pub(super) coast: bool,
    /// Start the filter afresh from the consistent sensors: the prediction
    /// was a liar's word.
    pub(super) restart: bool,
    /// A lone candidate is consistent because an excluded sensor agrees
    /// with it (see step 2).
    pub(super) corroborated: bool,
    /// A lone candidate is gated against a prediction that an excluded
    /// sensor agrees with: keep the prediction; the candidate is no jump.
    pub(super) backed: bool,
    /// Variance of an error the group cannot resolve (an agreeing pair's
    /// persistent gap), added to the reported estimate's.
    pub(super) unresolved: f64,
}

impl GroupFilter {
    /// Step 2: compares each measured sensor with the other witnesses.
    ///
    /// `witness` is an estimate of the quantity that owes nothing to its
    /// sensors (the asset model's prediction from its other channels). It is
    /// far broader than a sensor, so it never makes a sensor consistent by
    /// agreeing with it; it only settles what the sensors and the prediction
    /// cannot: which of two disputing sensors lies, and whether a lone
    /// sensor's jump is a move (the model moved too) or a lie (the model
    /// stayed with the prediction).
    pub(super) fn judge(
        &mut self,
        shared: &Shared,
        measured: &[Option<Measurement>],
        candidates: &[usize],
        prior: Option<(f64, f64)>,
        witness: Option<(f64, f64)>,
    ) -> Judgement {
        let n = measured.len();
        let gate = shared.gate_sigma;
        // The witnesses of sensor i: the other candidates; or, with
        // `everyone`, every other measured sensor. An
        // excluded sensor is judged by everyone, and by the prediction: two
        // honest sensors excluded while a liar ran the group agree with each
        // other, are readmitted, and outvote it; one that agrees with the
        // prediction is readmitted too.
        let others = |i: usize, everyone: bool| {
            (0..n)
                .filter(move |&j| j != i && (everyone || candidates.contains(&j)))
                .filter_map(|j| measured[j].map(|m| (m.z, m.r)))
        };
        // How many witnesses there are, and the residual to the one a sensor
        // agrees with best (the first of equals).
        let best = |m: Measurement, witnesses: &mut dyn Iterator<Item = (f64, f64)>| {
            witnesses.fold((0, None::<f64>), |(count, best), w| {
                let r = m.against(w);
                let better = best.is_none_or(|b| r.abs().total_cmp(&b.abs()).is_lt());
                (count + 1, if better { Some(r) } else { best })
            })
        };
        let mut judgement = Judgement {
            residuals: vec![None; n],
            evidence: vec![None; n],
            consistent: Vec::new(),
            widen: 0.0,
            coast: false,
            restart: false,
            corroborated: false,
            backed: false,
            unresolved: 0.0,
        };
        // Whether a measured sensor outside the candidates agrees with the
        // prediction: it then backs the prediction against a lone candidate.
        let prediction_backed = || {
            prior.is_some_and(|p| {
                (0..n)
                    .filter(|j| !candidates.contains(j))
                    .filter_map(|j| measured[j])
                    .any(|m| m.against(p).abs() <= AGREES)
            })
        };
        // What an excluded sensor answers to besides the other sensors: the
        // prediction, or the model once it is sharper (a prediction left
        // without sensors grows broad enough to agree with anything).
        let reference = match (prior, witness) {
            (Some(p), Some(w)) if w.1 < p.1 => Some(w),
            (None, w) => w,
            (p, _) => p,
        };
        // A lone candidate answers to the model only once the prediction is
        // far broader: the model's inputs may lie too.
        let lone_reference = match (prior, witness) {
            (Some(p), Some(w)) if w.1 * LONE_MODEL_SHARPER < p.1 => Some(w),
            (p, _) => p,
        };
        for (i, m) in measured.iter().enumerate() {
            let Some(m) = *m else { continue };
            let candidate = candidates.contains(&i);
            let (around, best_residual) = best(m, &mut others(i, !candidate));
            let residual = match around {
                // A lone candidate answers to the prediction, unless a sensor
                // excluded earlier agrees with it: two sensors that agree on
                // a move the prediction missed saw the plant move.
                0 if candidate => match best(m, &mut others(i, true)).1 {
                    Some(r) if r.abs() <= gate => {
                        judgement.corroborated = true;
                        Some(r)
                    }
                    _ => {
                        // Against the sharper of the prediction and the
                        // model: a prediction that a jump has broadened
                        // would let the next jump in.
                        let r = lone_reference.map(|p| m.against(p));
                        let jumped = r.is_some_and(|r| r.abs() > gate);
                        // The model's say on a jump: a move if it left the
                        // prediction with the sensor, a lie if it stayed.
                        let model = witness.zip(prior).map(|(w, p)| {
                            let from_prediction = Measurement::estimate(p).against(w).abs();
                            (m.against(w).abs(), from_prediction)
                        });
                        match model {
                            Some((sensor, prediction))
                                if jumped && sensor <= AGREES && prediction > gate =>
                            {
                                judgement.corroborated = true;
                                Some(m.against(witness.expect("zipped")))
                            }
                            // Against the prediction and a sensor (or the
                            // model) that agrees with it, the lone candidate
                            // is the one off.
                            _ if jumped
                                && (prediction_backed()
                                    || model.is_some_and(|(sensor, prediction)| {
                                        sensor > gate && prediction <= AGREES
                                    })) =>
                            {
                                judgement.backed = true;
                                judgement.evidence[i] = r;
                                r
                            }
                            _ => r,
                        }
                    }
                },
                0 => reference.map(|p| m.against(p)),
                _ if !candidate => best_residual
                    .into_iter()
                    .chain(reference.map(|p| m.against(p)))
                    .min_by(|a, b| a.abs().total_cmp(&b.abs())),
                _ => best_residual,
            };
            judgement.residuals[i] = residual.or(Some(0.0));
            // Evidence needs two independent witnesses; a pair is settled below,
            // and a lone sensor's prediction is made of its own readings.
            if around >= 2 || !candidate {
                judgement.evidence[i] = residual;
            }
        }
        match candidates {
            [a, b] => self.judge_pair(*a, *b, measured, prior, witness, gate, &mut judgement),
            _ => {
                self.pair = None;
                self.pair_gap = None;
                self.model_vote = None;
                judgement.consistent = candidates
                    .iter()
                    .copied()
                    .filter(|&i| judgement.residuals[i].is_some_and(|r| r.abs() <= gate))
                    .collect();
            }
        }
        judgement
    }

    /// A pair of sensors: consistent while they agree; when they disagree,
    /// the prediction at the start of the disagreement names the liar, or
    /// cannot (see [`PairDispute`]); the model's witness, when it blames
    /// the same one for [`MODEL_VOTES`] windows in a row, names it too.
    #[allow(clippy::too_many_arguments)]
    fn judge_pair(
        &mut self,
        a: usize,
        b: usize,
        measured: &[Option<Measurement>],
        prior: Option<(f64, f64)>,
        witness: Option<(f64, f64)>,
        gate: f64,
        judgement: &mut Judgement,
    ) {
        let (ma, mb) = (
            measured[a].expect("measured"),
            measured[b].expect("measured"),
        );
        let apart = ma.against((mb.z, mb.r));
        if apart.abs() <= gate {
            self.pair = None;
            self.model_vote = None;
            judgement.consistent = vec![a, b];
            // Agreeing, both earn back trust; how far apart they are says
            // nothing about which of them is off. But a gap that persists
            // (a drift growing within the gate) is an error one of them
            // makes, and the estimate's variance owns up to half of it.
            judgement.evidence[a] = Some(0.0);
            judgement.evidence[b] = Some(0.0);
            let gap = ma.z - mb.z;
            let mean_gap = match self.pair_gap {
                Some((pa, pb, mean)) if (pa, pb) == (a, b) => mean + GAP_WEIGHT * (gap - mean),
                _ => gap,
            };
            self.pair_gap = Some((a, b, mean_gap));
            // The mean gap of an honest pair has variance (ra + rb)·w/(2 − w).
            let honest = (ma.r + mb.r) * GAP_WEIGHT / (2.0 - GAP_WEIGHT);
            if mean_gap * mean_gap > GAP_SIGNIFICANT * GAP_SIGNIFICANT * honest {
                judgement.unresolved = mean_gap * mean_gap / 4.0;
            }
            return;
        }
        // Who a witness blames: the one it disagrees with, when it agrees
        // with the other.
        let blamed_by = |w: Option<(f64, f64)>| {
            let (wa, wb) = (ma.against(w?).abs(), mb.against(w?).abs());
            match () {
                _ if wa <= AGREES && wb > gate => Some(b),
                _ if wb <= AGREES && wa > gate => Some(a),
                _ => None,
            }
        };
        let blame = blamed_by(prior).map(PairDispute::Blame);
        self.model_vote = blamed_by(witness).map(|liar| match self.model_vote {
            Some((same, votes)) if same == liar => (liar, votes + 1),
            _ => (liar, 1),
        });
        let model_blames = self
            .model_vote
            .filter(|&(_, votes)| votes >= MODEL_VOTES)
            .map(|(liar, _)| PairDispute::Blame(liar));
        let solo = self
            .solo
            .filter(|s| (s.member == a || s.member == b) && (s.jumped || s.windows >= SOLO_MEMORY));
        let dispute = match (self.pair, solo) {
            (Some(PairDispute::Blame(liar)), _) => PairDispute::Blame(liar),
            _ if model_blames.is_some() => model_blames.expect("just checked"),
            (None, Some(solo)) if solo.jumped => {
                judgement.restart = true;
                PairDispute::Blame(solo.member)
            }
            (None, Some(_)) => PairDispute::Ambiguous {
                windows: 0,
                named: false,
                witness: false,
            },
            (Some(ambiguous @ PairDispute::Ambiguous { witness: false, .. }), _) => ambiguous,
            (unresolved, _) => blame.unwrap_or(unresolved.unwrap_or(PairDispute::Ambiguous {
                windows: 0,
                named: false,
                witness: true,
            })),
        };
        self.pair = Some(match dispute {
            PairDispute::Blame(liar) => {
                let honest = if liar == a { b } else { a };
                judgement.consistent = vec![honest];
                judgement.evidence[liar] = Some(if liar == a { apart } else { -apart });
                judgement.evidence[honest] = Some(0.0);
                dispute
            }
            PairDispute::Ambiguous {
                windows,
                named,
                witness,
            } => {
                let half_apart = (ma.z - mb.z).powi(2) / 4.0;
                // Whichever is right, the estimate's error owns up to it.
                judgement.unresolved = half_apart;
                if prior.is_some_and(|(_, p)| p < half_apart) {
                    judgement.coast = true;
                } else {
                    judgement.consistent = vec![a, b];
                    judgement.widen = half_apart;
                }
                PairDispute::Ambiguous {
                    windows: windows + 1,
                    named,
                    witness,
                }
            }
        });
    }
}
