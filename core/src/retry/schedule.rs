//! The retry's state machine: a pure function over a plain value.
//!
//! [`Schedule::after_failure`] knows nothing of futures or clocks: given the policy, the
//! decision on the failure and (when the policy has a deadline) the time since the first
//! attempt started, it says whether to give up or how long to wait. The retry future,
//! the combinator and the reference model in `tests/model` all run this one function.

use core::time::Duration;

use fastrand::Rng;

use super::backoff::uniform;
use super::{Decision, RetryPolicy};

/// Where a retried call stands: a plain `Copy` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Schedule {
    /// Attempts that have failed so far.
    pub(crate) failed: u32,
    /// The last backoff delay (before jitter); decorrelated jitter grows from it.
    pub(crate) previous: Duration,
    /// The jitter generator's state, once it has been seeded.
    pub(crate) rng: Option<u64>,
}

/// Why a retried call stopped retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Stop {
    /// The failure is not one to retry.
    NotRetryable,
    /// `max_attempts` attempts were made.
    Exhausted,
    /// The next attempt would start past the deadline.
    Deadline,
}

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Next {
    /// Give up: the call ends with the failure.
    Stop(Stop),
    /// Wait this long, then make the next attempt.
    Wait(Duration),
}

impl Schedule {
    /// Nothing has failed yet.
    pub(crate) const START: Schedule = Schedule { failed: 0, previous: Duration::ZERO, rng: None };

    /// An attempt failed and `decide` said `decision`. `elapsed` is the time since the
    /// first attempt started, needed only when the policy has a deadline; `seed` makes a
    /// generator's first seed, called only if a draw is needed and the policy has none.
    pub(crate) fn after_failure(
        self,
        policy: &RetryPolicy,
        decision: Decision,
        elapsed: Option<Duration>,
        seed: impl FnOnce() -> u64,
    ) -> (Schedule, Next) {
        let failed = self.failed.saturating_add(1);
        let mut next = Schedule { failed, ..self };
        if decision == Decision::GiveUp {
            return (next, Next::Stop(Stop::NotRetryable));
        }
        if failed >= policy.max_attempts() {
            return (next, Next::Stop(Stop::Exhausted));
        }
        let delay = match decision {
            Decision::RetryAfter(hint) => hint,
            _ => {
                let mut rng = if policy.draws() {
                    Some(Rng::with_seed(self.rng.or(policy.seed()).unwrap_or_else(seed)))
                } else {
                    None
                };
                // Only draws when it must: `rng` is `None` exactly when nothing draws.
                let mut scratch = Rng::with_seed(0);
                let draws = rng.as_mut().unwrap_or(&mut scratch);
                let backoff = policy.backoff().delay(failed - 1, self.previous, draws);
                let jitter = uniform(draws, Duration::ZERO, policy.jitter());
                next.previous = backoff;
                next.rng = rng.map(|rng| rng.get_seed());
                backoff.saturating_add(jitter)
            }
        };
        if let (Some(deadline), Some(elapsed)) = (policy.deadline(), elapsed) {
            if elapsed.saturating_add(delay) > deadline {
                return (next, Next::Stop(Stop::Deadline));
            }
        }
        (next, Next::Wait(delay))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const MS: Duration = Duration::from_millis(1);

    fn no_seed() -> u64 {
        panic!("no draw was needed")
    }

    /// The waits of a call whose every attempt fails with `decision`.
    fn waits(policy: &RetryPolicy, decision: Decision) -> (Vec<Duration>, Stop) {
        let mut schedule = Schedule::START;
        let mut waits = Vec::new();
        let mut elapsed = Duration::ZERO;
        loop {
            let (next, step) = schedule.after_failure(policy, decision, Some(elapsed), || 42);
            schedule = next;
            match step {
                Next::Wait(d) => {
                    waits.push(d);
                    elapsed = elapsed.saturating_add(d);
                }
                Next::Stop(stop) => return (waits, stop),
            }
        }
    }

    #[test]
    fn kompoz_exponential_backoff() {
        let p = RetryPolicy::builder().max_attempts(4).backoff(MS * 10).exponential(true);
        let (w, stop) = waits(&p.build().unwrap(), Decision::Retry);
        assert_eq!((w, stop), (alloc::vec![MS * 10, MS * 20, MS * 40], Stop::Exhausted));
    }

    #[test]
    fn give_up_and_hints() {
        let p = RetryPolicy::builder().backoff(MS * 10).build().unwrap();
        let (next, step) = Schedule::START.after_failure(&p, Decision::GiveUp, None, no_seed);
        assert_eq!((next.failed, step), (1, Next::Stop(Stop::NotRetryable)));
        let hint = Decision::RetryAfter(MS * 777);
        let (_, step) = Schedule::START.after_failure(&p, hint, None, no_seed);
        assert_eq!(step, Next::Wait(MS * 777), "the hint replaces the backoff exactly");
    }

    #[test]
    fn the_deadline_refuses_a_wait_that_would_end_past_it() {
        let p = RetryPolicy::builder().max_attempts(10).backoff(MS * 100).deadline(MS * 250);
        let (w, stop) = waits(&p.build().unwrap(), Decision::Retry);
        assert_eq!((w, stop), (alloc::vec![MS * 100, MS * 100], Stop::Deadline));
        let p = RetryPolicy::builder().max_attempts(10).backoff(MS * 100).deadline(MS * 200);
        let (w, _) = waits(&p.build().unwrap(), Decision::Retry);
        assert_eq!(w.len(), 2, "an attempt may start exactly at the deadline");
    }

    #[test]
    fn seeded_jitter_is_the_same_sequence_every_time_and_in_bounds() {
        let p = RetryPolicy::builder()
            .max_attempts(20)
            .backoff(MS * 10)
            .jitter(MS * 5)
            .seed(7)
            .build()
            .unwrap();
        let (a, _) = waits(&p, Decision::Retry);
        let (b, _) = waits(&p, Decision::Retry);
        assert_eq!(a, b);
        assert!(a.iter().all(|d| *d >= MS * 10 && *d <= MS * 15));
        assert!(a.windows(2).any(|w| w[0] != w[1]), "the jitter moves");
        // The policy's seed wins over a fresh one, and only drawing policies seed.
        let (s, _) = Schedule::START.after_failure(&p, Decision::Retry, None, no_seed);
        assert!(s.rng.is_some());
        let flat = RetryPolicy::builder().backoff(MS).build().unwrap();
        let (s, _) = Schedule::START.after_failure(&flat, Decision::Retry, None, no_seed);
        assert_eq!(s.rng, None);
    }

    #[test]
    fn duration_max_saturates() {
        let p = RetryPolicy::builder().backoff(Duration::MAX).jitter(Duration::MAX).seed(1);
        let (w, _) = waits(&p.build().unwrap(), Decision::Retry);
        assert_eq!(w, alloc::vec![Duration::MAX, Duration::MAX]);
        let p = RetryPolicy::builder().deadline(Duration::ZERO).build().unwrap();
        let (w, stop) = waits(&p, Decision::Retry);
        assert_eq!((w, stop), (alloc::vec![Duration::ZERO, Duration::ZERO], Stop::Exhausted));
    }
}
