//! A reference model of a retried call: a plain loop over the script, with the delay
//! rules written out again from the documentation, independently of the core's code.
//!
//! The promises modelled:
//! * attempts run one after another; the next starts after the previous one ended and
//!   its wait passed;
//! * a success ends the call; so does a failure the predicate gives up on, the
//!   `max_attempts`-th failure, or a wait that would end past the deadline (measured
//!   from the first attempt's start);
//! * the wait is the hint of a failure that names one, else the backoff: constant,
//!   `base × 2ⁿ` capped, or decorrelated jitter (a uniform draw between `base` and three
//!   times the previous backoff, capped), plus a uniform jitter draw from `[0, jitter]`;
//!   draws come from `fastrand::Rng::with_seed(seed)`, the backoff's first, and a draw
//!   over an empty range draws nothing;
//! * `on_retry` hears `(attempt number, delay)` before each wait.

use std::time::Duration;

/// How one attempt ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    /// Succeeds.
    Ok,
    /// Fails, and is worth retrying after the backoff.
    Transient,
    /// Fails, and the predicate gives up on it.
    Permanent,
    /// Fails, naming its wait in milliseconds.
    RetryAfter(u16),
}

/// One scripted attempt: how long it takes (ms) and how it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attempt {
    /// Milliseconds of manual time it runs.
    pub takes: u16,
    /// How it ends.
    pub answer: Answer,
}

/// The backoff strategy, as the model knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// No wait.
    None,
    /// Always `base`.
    Constant,
    /// `base × 2ⁿ`, capped.
    Exponential,
    /// Decorrelated jitter, capped.
    Decorrelated,
}

/// A policy and a script: everything a run depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Script {
    /// `max_attempts` (at least 1).
    pub max_attempts: u32,
    /// The strategy.
    pub strategy: Strategy,
    /// `backoff`, ms.
    pub base: u16,
    /// `max_backoff`, ms, if any (at least `base`).
    pub cap: Option<u16>,
    /// `jitter`, ms.
    pub jitter: u16,
    /// `deadline`, ms, if any.
    pub deadline: Option<u16>,
    /// The draws' seed.
    pub seed: u64,
    /// The attempts, in order; the script repeats its last attempt if the call goes on.
    pub attempts: Vec<Attempt>,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Run {
    /// When each attempt started, in nanoseconds.
    pub starts: Vec<u64>,
    /// What `on_retry` heard: the attempt that failed and the delay, in nanoseconds.
    pub heard: Vec<(u32, u64)>,
    /// The result: the number (from 1) of the attempt that succeeded, or of the one
    /// whose failure ended the call.
    pub result: Result<u32, u32>,
    /// When the call ended, in nanoseconds.
    pub ended: u64,
}

const MS: u64 = 1_000_000;

fn draw(rng: &mut fastrand::Rng, low: u64, high: u64) -> u64 {
    if high <= low { low } else { rng.u64(low..=high) }
}

impl Script {
    /// The `i`-th attempt (0-based): the script's, or its last one repeated.
    pub fn attempt(&self, i: usize) -> Attempt {
        self.attempts[i.min(self.attempts.len() - 1)]
    }
}

/// What the model says the run does.
pub fn expected(script: &Script) -> Run {
    let base = u64::from(script.base) * MS;
    let cap = script.cap.map_or(u64::MAX, |c| u64::from(c) * MS);
    let jitter = u64::from(script.jitter) * MS;
    let mut rng = fastrand::Rng::with_seed(script.seed);
    let (mut now, mut previous) = (0u64, 0u64);
    let mut run = Run { starts: Vec::new(), heard: Vec::new(), result: Ok(0), ended: 0 };
    for i in 0.. {
        let number = i as u32 + 1;
        let attempt = script.attempt(i);
        run.starts.push(now);
        now += u64::from(attempt.takes) * MS;
        let hint = match attempt.answer {
            Answer::Ok => {
                run.result = Ok(number);
                break;
            }
            Answer::Permanent => {
                run.result = Err(number);
                break;
            }
            Answer::Transient => None,
            Answer::RetryAfter(ms) => Some(u64::from(ms) * MS),
        };
        if number >= script.max_attempts {
            run.result = Err(number);
            break;
        }
        let delay = match hint {
            Some(hint) => hint,
            None => {
                let backoff = match script.strategy {
                    Strategy::None => 0,
                    Strategy::Constant => base,
                    Strategy::Exponential => {
                        let doubled = u128::from(base) << i.min(64);
                        u64::try_from(doubled).unwrap_or(u64::MAX).min(cap)
                    }
                    Strategy::Decorrelated => {
                        let high = previous.max(base).saturating_mul(3);
                        draw(&mut rng, base, high).min(cap)
                    }
                };
                previous = backoff;
                backoff + draw(&mut rng, 0, jitter)
            }
        };
        if let Some(deadline) = script.deadline {
            if now + delay > u64::from(deadline) * MS {
                run.result = Err(number);
                break;
            }
        }
        run.heard.push((number, delay));
        now += delay;
    }
    run.ended = now;
    run
}

/// Milliseconds as a `Duration`.
pub(crate) fn ms(n: u16) -> Duration {
    Duration::from_millis(u64::from(n))
}
