//! From samples to verdicts: medians, overheads, ratios and targets.

use crate::cases::{Metric, Reference, Target};
use crate::harness::Role;

/// The median of `values` (the mean of the middle two for an even count); `NaN` if empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The share of a sample a measuring thread may spend waiting for a CPU and still count
/// as undisturbed.
pub const MAX_WAITED_SHARE: f64 = 0.05;

/// The median of a contender's samples, preferring the undisturbed ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Robust {
    /// The median.
    pub value: f64,
    /// Samples it was taken over.
    pub used: usize,
    /// Samples taken.
    pub of: usize,
}

/// The median of `samples` (`(cost, undisturbed)`) over the undisturbed ones, if at least
/// a quarter of them (and at least 3) are; otherwise over all of them, and `true`: the
/// machine was too busy for this contender's number to be trusted.
pub fn robust_median(samples: &[(f64, bool)]) -> (Robust, bool) {
    let clean: Vec<f64> = samples.iter().filter(|s| s.1).map(|s| s.0).collect();
    if clean.len() >= 3 && clean.len() * 4 >= samples.len() {
        (Robust { value: median(&clean), used: clean.len(), of: samples.len() }, false)
    } else {
        let all: Vec<f64> = samples.iter().map(|s| s.0).collect();
        (
            Robust { value: median(&all), used: samples.len(), of: samples.len() },
            !samples.is_empty(),
        )
    }
}

/// One contender's result in a case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// Its column.
    pub name: &'static str,
    /// kompoz, peer or baseline.
    pub role: Role,
    /// Median nanoseconds per operation.
    pub ns_per_op: f64,
}

/// How kompoz fared against its target.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The target is met; the ratio it was judged on.
    Met(f64),
    /// The target is missed; the ratio it was judged on.
    Missed(f64),
    /// kompoz has no contender in this case yet (the reason).
    NoKompoz(&'static str),
    /// No ratio can be formed (the reason), e.g. a peer's overhead within noise of zero.
    Undefined(String),
}

/// What a case's results say.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// kompoz against the best peer in the metric's own direction (a cost ratio, lower is
    /// better; or for [`Metric::Throughput`] a throughput ratio, higher is better), and
    /// that peer's name.
    pub vs_best: Option<(f64, &'static str)>,
    /// The target's verdict.
    pub verdict: Verdict,
}

/// The cost the case is judged on: time per operation, or the overhead above the baseline.
pub fn cost(metric: Metric, measured: &Measured, baseline: Option<f64>) -> Option<f64> {
    match metric {
        Metric::NsPerOp | Metric::Throughput => Some(measured.ns_per_op),
        Metric::OverheadOverBaseline => baseline.map(|base| measured.ns_per_op - base),
    }
}

/// The smallest overhead over the bare call that a ratio is formed against, in ns: the
/// bare call's own median moves by 0.3 to 1.1 ns between runs on the shared 2-CPU machine,
/// so a peer that adds less than this is not told apart from adding nothing (tower's
/// `Retry` around a ready service measures +0.0 to +0.1 ns).
pub const OVERHEAD_NOISE_NS: f64 = 1.0;

/// Judges a case from its contenders' medians.
pub fn evaluate(
    metric: Metric,
    target: Target,
    kompoz_missing: Option<&'static str>,
    results: &[Measured],
) -> Evaluation {
    let baseline = results.iter().find(|m| m.role == Role::Baseline).map(|m| m.ns_per_op);
    let cost_of = |m: &Measured| cost(metric, m, baseline);
    let kompoz = results.iter().find(|m| m.role == Role::Kompoz).and_then(cost_of);
    let best_peer = results
        .iter()
        .filter(|m| m.role == Role::Peer)
        .filter_map(|m| Some((cost_of(m)?, m.name)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    // kompoz relative to `reference`, in the metric's direction.
    let ratio = |kompoz: f64, reference: f64| match metric {
        Metric::Throughput => reference / kompoz,
        _ => kompoz / reference,
    };
    // The least cost a ratio is formed against: overheads within noise of zero give none.
    let floor = if metric == Metric::OverheadOverBaseline { OVERHEAD_NOISE_NS } else { 0.0 };
    let vs_best = match (kompoz, best_peer) {
        (Some(k), Some((b, name))) if b > floor && k > 0.0 => Some((ratio(k, b), name)),
        _ => None,
    };
    let Some(kompoz) = kompoz else {
        return Evaluation {
            vs_best,
            verdict: Verdict::NoKompoz(kompoz_missing.unwrap_or("no kompoz contender")),
        };
    };
    let of = match target {
        Target::CostAtMost { of, .. } | Target::ThroughputAtLeast { of, .. } => of,
    };
    let reference = match of {
        Reference::BestPeer => best_peer,
        Reference::Peer(name) => {
            results.iter().find(|m| m.name == name).and_then(cost_of).map(|cost| (cost, name))
        }
    };
    let verdict = match reference {
        None => Verdict::Undefined("the reference peer was not measured".into()),
        Some((reference, name)) if reference <= floor => Verdict::Undefined(format!(
            "{name}'s cost ({reference:+.1} ns) is within noise of zero (under \
             {OVERHEAD_NOISE_NS} ns): no ratio"
        )),
        Some((reference, _)) => {
            let r = ratio(kompoz, reference);
            let met = match target {
                Target::CostAtMost { max, .. } => r <= max,
                Target::ThroughputAtLeast { min, .. } => r >= min,
            };
            if met { Verdict::Met(r) } else { Verdict::Missed(r) }
        }
    };
    Evaluation { vs_best, verdict }
}

/// The target in words, e.g. `"<= 1.00x tokio"`.
pub fn describe(metric: Metric, target: Target) -> String {
    let whom = |of: Reference| match of {
        Reference::Peer(name) => name.to_string(),
        Reference::BestPeer => "best peer".to_string(),
    };
    match (metric, target) {
        (Metric::OverheadOverBaseline, Target::CostAtMost { max, of }) => {
            format!("overhead <= {max:.2}x {}'s", whom(of))
        }
        (_, Target::CostAtMost { max, of }) => format!("<= {max:.2}x {}", whom(of)),
        (_, Target::ThroughputAtLeast { min, of }) => {
            format!("throughput >= {min:.2}x {}", whom(of))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &'static str, role: Role, ns_per_op: f64) -> Measured {
        Measured { name, role, ns_per_op }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn robust_medians_set_disturbed_samples_aside() {
        let samples = [(10.0, true), (11.0, true), (12.0, true), (90.0, false), (95.0, false)];
        let (m, fell_back) = robust_median(&samples);
        assert_eq!((m.value, m.used, m.of, fell_back), (11.0, 3, 5, false));
        let busy = [(10.0, true), (90.0, false), (95.0, false), (99.0, false), (98.0, false)];
        let (m, fell_back) = robust_median(&busy);
        assert_eq!((m.value, m.used, fell_back), (95.0, 5, true));
    }

    #[test]
    fn cost_against_a_named_peer() {
        let target = Target::CostAtMost { max: 1.0, of: Reference::Peer("tokio") };
        let results = [
            m("kompoz", Role::Kompoz, 30.0),
            m("tokio", Role::Peer, 24.0),
            m("maitake-sync", Role::Peer, 20.0),
        ];
        let e = evaluate(Metric::NsPerOp, target, None, &results);
        assert_eq!(e.verdict, Verdict::Missed(1.25));
        assert_eq!(e.vs_best, Some((1.5, "maitake-sync")));
        let results = [m("kompoz", Role::Kompoz, 12.0), m("tokio", Role::Peer, 24.0)];
        assert_eq!(evaluate(Metric::NsPerOp, target, None, &results).verdict, Verdict::Met(0.5));
    }

    #[test]
    fn overhead_subtracts_the_baseline() {
        let target = Target::CostAtMost { max: 0.2, of: Reference::BestPeer };
        let results = [
            m("bare", Role::Baseline, 2.0),
            m("kompoz", Role::Kompoz, 5.0),
            m("failsafe", Role::Peer, 22.0),
            m("recloser", Role::Peer, 17.0),
        ];
        // kompoz adds 3 ns; the best peer (recloser) adds 15 ns: 3/15 = 0.2.
        let e = evaluate(Metric::OverheadOverBaseline, target, None, &results);
        assert_eq!(e.verdict, Verdict::Met(0.2));
        assert_eq!(e.vs_best, Some((0.2, "recloser")));
        let results = [m("bare", Role::Baseline, 2.0), m("recloser", Role::Peer, 1.5)];
        let e = evaluate(Metric::OverheadOverBaseline, target, None, &[results[0], results[1]]);
        assert_eq!(e.verdict, Verdict::NoKompoz("no kompoz contender"));
        let results = [results[0], results[1], m("kompoz", Role::Kompoz, 3.0)];
        let e = evaluate(Metric::OverheadOverBaseline, target, None, &results);
        assert!(matches!(e.verdict, Verdict::Undefined(_)));
        // A peer that adds less than the noise floor gives no ratio either.
        let results = [results[0], m("tower", Role::Peer, 2.05), results[2]];
        let e = evaluate(Metric::OverheadOverBaseline, target, None, &results);
        assert!(matches!(e.verdict, Verdict::Undefined(_)) && e.vs_best.is_none());
    }

    #[test]
    fn throughput_is_the_inverse_of_time() {
        let target = Target::ThroughputAtLeast { min: 1.0, of: Reference::Peer("tokio") };
        let results = [m("kompoz", Role::Kompoz, 400.0), m("tokio", Role::Peer, 300.0)];
        let e = evaluate(Metric::Throughput, target, None, &results);
        assert_eq!(e.verdict, Verdict::Missed(0.75));
        let results = [m("kompoz", Role::Kompoz, 300.0), m("tokio", Role::Peer, 400.0)];
        let e = evaluate(Metric::Throughput, target, None, &results);
        assert!(matches!(e.verdict, Verdict::Met(r) if r > 1.3));
    }
}
