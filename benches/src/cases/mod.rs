//! The cases: what is measured, who competes, and the target kompoz must meet.
//!
//! Each case builds its contenders lazily (some own a tokio runtime). A contender is one
//! small function in the case's module; adding one means writing that function and
//! listing it in the case's `contenders` function.

pub mod breaker;
pub mod breaker_mixed;
pub mod breaker_policies;
pub mod pipeline;
pub mod rate;
pub mod retry;
pub mod semaphore;
pub mod timeout;
pub mod tower;

use crate::harness::Contender;

/// How a case's numbers are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Nanoseconds per operation; lower is better.
    NsPerOp,
    /// Nanoseconds per operation above the case's baseline contender (the bare call):
    /// the overhead a primitive adds. Lower is better.
    OverheadOverBaseline,
    /// Nanoseconds per operation, read as throughput (operations per second, the inverse);
    /// higher throughput is better.
    Throughput,
}

/// Whom kompoz is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// One named peer.
    Peer(&'static str),
    /// Whichever peer does best in this run.
    BestPeer,
}

/// What kompoz must achieve in a case, as a ratio to a reference peer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// kompoz's cost (time or overhead, per the case's [`Metric`]) at most `max` times
    /// the reference's.
    CostAtMost {
        /// The largest allowed ratio.
        max: f64,
        /// Compared with whom.
        of: Reference,
    },
    /// kompoz's throughput at least `min` times the reference's.
    ThroughputAtLeast {
        /// The smallest allowed ratio.
        min: f64,
        /// Compared with whom.
        of: Reference,
    },
}

/// One row of the table.
#[derive(Debug)]
pub struct Case {
    /// Short stable id (criterion's group name).
    pub id: &'static str,
    /// The row's label in the table.
    pub label: &'static str,
    /// How its numbers are read.
    pub metric: Metric,
    /// kompoz's target.
    pub target: Target,
    /// Why kompoz has no row yet, if it has none (the table says so instead of a ratio).
    pub kompoz_missing: Option<&'static str>,
    /// The fewest operations worth one sample (the contended case needs every task busy).
    pub min_ops: u64,
    /// Makes the contenders (runtimes and shared state included).
    pub contenders: fn() -> Vec<Contender>,
}

/// Every case, in table order.
pub fn all_cases() -> Vec<Case> {
    vec![
        semaphore::uncontended_try(),
        semaphore::uncontended_acquire(),
        semaphore::contended(),
        timeout::ready_inner(),
        breaker::closed_one_thread(),
        breaker::closed_two_threads(),
        breaker::open_rejection(),
        breaker::closed_guard_one_thread(),
        breaker::closed_guard_two_threads(),
        breaker::open_guard(),
        breaker::closed_cheapest_one_thread(),
        breaker::open_cheapest(),
        breaker_policies::cheapest_closed_two_threads(),
        breaker_policies::count_window_one_thread(),
        breaker_policies::count_window_two_threads(),
        breaker_mixed::one_thread(),
        breaker_mixed::two_threads(),
        breaker_policies::time_window_one_thread(),
        breaker_policies::time_window_two_threads(),
        breaker_policies::thirty_two_threads(),
        retry::first_time_success(),
        pipeline::stacked(),
        rate::admitted_one_thread(),
        rate::admitted_two_threads(),
        rate::refused(),
        rate::keyed_warm(),
        rate::admitted_precise(),
        tower::timeout(),
        tower::concurrency_limit(),
        tower::rate_limit(),
        tower::breaker_closed(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::Role;

    #[test]
    fn every_contender_runs_and_every_case_has_its_reference() {
        // Runners raise the shared MEASURING flag: not while the harness's tests check it.
        let _serial = crate::harness::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        for case in all_cases() {
            let mut contenders = (case.contenders)();
            for contender in &mut contenders {
                let sample = (contender.run)(case.min_ops);
                assert!(sample.ops >= case.min_ops, "{}: {}", case.id, contender.name);
            }
            let has = |role| contenders.iter().any(|c| c.role == role);
            assert!(has(Role::Peer), "{} has a peer", case.id);
            assert_eq!(has(Role::Kompoz), case.kompoz_missing.is_none(), "{}", case.id);
            if case.metric == Metric::OverheadOverBaseline {
                assert!(has(Role::Baseline), "{} has a baseline to subtract", case.id);
            }
            let named = match case.target {
                Target::CostAtMost { of, .. } | Target::ThroughputAtLeast { of, .. } => of,
            };
            if let Reference::Peer(name) = named {
                assert!(contenders.iter().any(|c| c.name == name), "{}: {name}", case.id);
            }
        }
    }
}
