//! Applies a sequence of [`Op`]s to a real `kompoz::rate::RateLimiter` and
//! `KeyedRateLimiter` (on a `ManualClock`, waiting futures polled by hand under counting
//! wakers) and to the [`RateModel`], comparing everything after each step.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::rate::{BatchError, KeyedError, KeyedRateLimiter, Quota, RateLimiter};
use kompoz::{Clock, Instant, ManualClock};

use super::model::{RateModel, Stats, Tally, WaiterId};
use super::ops::{Config, MAX_KEYS, Op, Scenario};
use crate::waker::WakeCounter;
use crate::{Divergence, check};

/// Runs a [`Scenario`]; see [`run_ops`].
pub fn run(scenario: &Scenario) -> Result<Tally, Divergence> {
    run_ops(scenario.config(), &scenario.ops)
}

type Waiting<'a> = Pin<Box<dyn Future<Output = Result<(), BatchError>> + 'a>>;

struct Task<'a> {
    id: WaiterId,
    future: Waiting<'a>,
    wakes: Arc<WakeCounter>,
    waker: Waker,
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Skipped,
    Check(Result<(), BatchError>),
    Poll(Poll<Result<(), BatchError>>),
    Keyed(Result<(), KeyedError>),
    Forgot(usize),
}

/// Runs `ops` against limiters built with `config` and against the model.
///
/// After every operation it compares the operation's result (refusals with their
/// `earliest` and `wait` to the nanosecond), every field of `stats()`, the wake-ups of
/// every waiting task, the keyed limiter's counters and keys, the clock's registered
/// timers, and the clock. At the end it cancels every task (still comparing) and checks
/// that the line is empty and no timer is left.
pub fn run_ops(config: Config, ops: &[Op]) -> Result<Tally, Divergence> {
    let clock = ManualClock::new();
    let quota = Quota::every(Duration::from_nanos(config.interval_nanos))
        .and_then(|quota| quota.with_burst(config.burst))
        .expect("a small quota");
    let limiter = RateLimiter::new(quota, clock.clone());
    let keyed = KeyedRateLimiter::with_max_keys(quota, clock.clone(), MAX_KEYS).expect("keys");
    let mut harness = Harness {
        limiter: &limiter,
        keyed: &keyed,
        clock: &clock,
        model: RateModel::new(config),
        tasks: Vec::new(),
        burst: config.burst,
    };
    harness.compare(None, &"start")?;
    for (step, op) in ops.iter().enumerate() {
        let (real, model) = harness.apply(*op);
        check(Some(step), op, "the result", real, model)?;
        harness.compare(Some(step), op)?;
    }
    while let Some(task) = harness.tasks.pop() {
        let id = task.id;
        drop(task);
        harness.model.cancel(id);
        harness.compare(None, &"cancel at the end")?;
    }
    check(None, &"end", "tasks in line", limiter.stats().waiting, 0)?;
    check(None, &"end", "the clock's pending timers", clock.pending_timers(), 0)?;
    Ok(harness.model.tally())
}

struct Harness<'a> {
    limiter: &'a RateLimiter<ManualClock>,
    keyed: &'a KeyedRateLimiter<u8, ManualClock>,
    clock: &'a ManualClock,
    model: RateModel,
    tasks: Vec<Task<'a>>,
    burst: u32,
}

impl<'a> Harness<'a> {
    fn cells(&self, raw: u8) -> u32 {
        u32::from(raw) % (self.burst + 2)
    }

    fn apply(&mut self, op: Op) -> (Outcome, Outcome) {
        match op {
            Op::Check => {
                let real = self.limiter.check().map_err(BatchError::from);
                (Outcome::Check(real), Outcome::Check(self.model.check_n(1)))
            }
            Op::CheckN { cells } => {
                let cells = self.cells(cells);
                (
                    Outcome::Check(self.limiter.check_n(cells)),
                    Outcome::Check(self.model.check_n(cells)),
                )
            }
            Op::Wait { cells, max_wait_millis } => {
                let limiter: &'a RateLimiter<ManualClock> = self.limiter;
                let max_wait = max_wait_millis.map(|ms| Duration::from_millis(u64::from(ms)));
                let (n, future): (u32, Waiting<'a>) = match (cells.map(|c| self.cells(c)), max_wait)
                {
                    (None, None) => (
                        1,
                        Box::pin(async move {
                            limiter.until_ready().await;
                            Ok(())
                        }),
                    ),
                    (None, Some(max)) => {
                        (1, Box::pin(async move { Ok(limiter.until_ready_within(max).await?) }))
                    }
                    (Some(n), None) => {
                        (n, Box::pin(async move { Ok(limiter.until_n_ready(n).await?) }))
                    }
                    (Some(n), Some(max)) => (n, Box::pin(limiter.until_n_ready_within(n, max))),
                };
                let model_max = max_wait.map(|max| max.as_nanos() as u64);
                let (id, model) = self.model.wait(n, model_max);
                let (wakes, waker) = WakeCounter::new();
                self.tasks.push(Task { id, future, wakes, waker });
                let real = self.poll_task(self.tasks.len() - 1);
                (Outcome::Poll(real), Outcome::Poll(model))
            }
            Op::Poll { waiter } => match self.pick(waiter) {
                None => (Outcome::Skipped, Outcome::Skipped),
                Some(index) => {
                    let id = self.tasks[index].id;
                    let real = self.poll_task(index);
                    (Outcome::Poll(real), Outcome::Poll(self.model.poll(id)))
                }
            },
            Op::Cancel { waiter } => match self.pick(waiter) {
                None => (Outcome::Skipped, Outcome::Skipped),
                Some(index) => {
                    let task = self.tasks.remove(index);
                    let id = task.id;
                    drop(task);
                    self.model.cancel(id);
                    (Outcome::Done, Outcome::Done)
                }
            },
            Op::Reset => {
                self.limiter.reset();
                self.model.reset();
                (Outcome::Done, Outcome::Done)
            }
            Op::KeyedCheck { key, cells } => {
                let key = key % (MAX_KEYS as u8 + 1);
                let cells = self.cells(cells);
                (
                    Outcome::Keyed(self.keyed.check_n(&key, cells)),
                    Outcome::Keyed(self.model.keyed_check(key, cells)),
                )
            }
            Op::RetainRecent => (
                Outcome::Forgot(self.keyed.retain_recent()),
                Outcome::Forgot(self.model.retain_recent()),
            ),
            Op::KeyedReset => {
                self.keyed.reset();
                self.model.keyed_reset();
                (Outcome::Done, Outcome::Done)
            }
            Op::Advance { millis } => {
                let by = Duration::from_millis(u64::from(millis));
                self.clock.advance(by);
                self.model.advance(by.as_nanos() as u64);
                (Outcome::Done, Outcome::Done)
            }
            Op::SetClock { millis } => {
                let to = u64::from(millis) * 1_000_000;
                self.clock.set(Instant::from_nanos(to));
                self.model.set_clock(to);
                (Outcome::Done, Outcome::Done)
            }
            Op::AdvanceToTheEnd => {
                self.clock.advance(Duration::MAX);
                self.model.advance(u64::MAX);
                (Outcome::Done, Outcome::Done)
            }
        }
    }

    /// Polls task `index`; a finished task leaves the list.
    fn poll_task(&mut self, index: usize) -> Poll<Result<(), BatchError>> {
        let task = &mut self.tasks[index];
        let result = task.future.as_mut().poll(&mut Context::from_waker(&task.waker));
        if result.is_ready() {
            self.tasks.remove(index);
        }
        result
    }

    fn pick(&self, waiter: u8) -> Option<usize> {
        (!self.tasks.is_empty()).then(|| usize::from(waiter) % self.tasks.len())
    }

    fn compare(&self, step: Option<usize>, op: &dyn Debug) -> Result<(), Divergence> {
        let s = self.limiter.stats();
        let real = Stats {
            admitted: s.admitted,
            rejected: s.rejected,
            waiting: s.waiting,
            wait: s.wait.as_nanos() as u64,
            available: s.available,
        };
        check(step, op, "stats()", real, self.model.stats())?;
        let k = self.keyed.stats();
        check(
            step,
            op,
            "the keyed limiter's stats()",
            (k.admitted, k.rejected, k.keys),
            self.model.keyed_stats(),
        )?;
        let real_wakes: Vec<usize> = self.tasks.iter().map(|t| t.wakes.count()).collect();
        let model_wakes: Vec<usize> = self.tasks.iter().map(|t| self.model.wakes(t.id)).collect();
        check(step, op, "the wake-ups of each waiting task", real_wakes, model_wakes)?;
        check(
            step,
            op,
            "the clock's pending timers",
            self.clock.pending_timers(),
            self.model.pending_timers(),
        )?;
        check(step, op, "the clock", self.clock.now().as_nanos(), self.model.now())
    }
}
