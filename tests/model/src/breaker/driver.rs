//! Applies a sequence of [`Op`]s to a real `kompoz::breaker::CircuitBreaker` (on a
//! `ManualClock`, its call futures polled by hand) and to the [`BreakerModel`], comparing
//! everything after each step.

use std::cell::Cell;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::breaker::{
    BreakDuration, BreakerBuilder, BreakerGuard, CallError, CircuitBreaker, FailureRate, Verdict,
};
use kompoz::{Clock, Instant, ManualClock};

use super::model::{Admission, BreakerModel, CallId, Stats, Tally, Transition};
use super::ops::{Classifier, Config, Finish, Op, Scenario, Trip, Window};
use crate::{Divergence, check};

/// Runs a [`Scenario`]; see [`run_ops`].
pub fn run(scenario: &Scenario) -> Result<Tally, Divergence> {
    run_ops(scenario.config(), &scenario.ops)
}

/// Runs `ops` against a breaker built with `config` and against the model.
///
/// After every operation it compares the operation's result, `state()`, every field of
/// `stats()`, the transitions reported to `on_state_change` (with the stats handed to
/// it), whether each kept guard is a probe, and the clock. At the end it ends every kept
/// guard and call (still comparing) and checks, on the real breaker alone, that every
/// probe slot came back and that `total_calls` adds up. Returns the first difference, or
/// how often the run reached the interesting transitions.
pub fn run_ops(config: Config, ops: &[Op]) -> Result<Tally, Divergence> {
    let clock = ManualClock::new();
    let reported = Arc::new(Mutex::new(Vec::new()));
    let seen = reported.clone();
    let mut builder = BreakerBuilder::new()
        .half_open_max_calls(config.half_open_max_calls)
        .break_duration(break_duration(&config))
        .half_open_max_wait(config.half_open_max_wait)
        .on_state_change(move |from, to, stats| {
            seen.lock().unwrap().push(Transition { from, to, stats: Stats::from(*stats) });
        });
    if let Some(successes) = config.success_threshold {
        builder = builder.success_threshold(successes);
    }
    builder = match config.trip {
        Trip::Consecutive(failures) => builder.failure_threshold(failures),
        Trip::Rate(rate) => {
            let mut policy = match rate.window {
                Window::Calls(n) => FailureRate::over_calls(n),
                Window::Time { span, buckets } => FailureRate::over_time(span).buckets(buckets),
            };
            policy = policy.minimum_calls(rate.minimum_calls).threshold(rate.threshold);
            if let Some((slower_than, ratio)) = rate.slow {
                policy = policy.slow_calls(slower_than, ratio);
            }
            builder.trip_on(policy)
        }
    };
    let breaker = builder.build_with(clock.clone()).expect("a valid configuration");
    let mut harness = Harness {
        breaker: &breaker,
        clock: &clock,
        reported,
        model: BreakerModel::new(config),
        guards: Vec::new(),
        calls: Vec::new(),
    };
    harness.compare(None, &"start")?;
    for (step, op) in ops.iter().enumerate() {
        let (real, model) = harness.apply(*op);
        check(Some(step), op, "the result", real, model)?;
        harness.compare(Some(step), op)?;
    }
    harness.finish()
}

/// The configuration's break durations, as a `BreakDuration`.
fn break_duration(config: &Config) -> BreakDuration {
    let b = config.breaks;
    let breaks = if b.initial == b.max {
        BreakDuration::fixed(b.initial)
    } else {
        BreakDuration::exponential(b.initial, b.max)
    };
    match b.jitter {
        Some((ratio, seed)) => breaks.jitter(ratio, seed),
        None => breaks,
    }
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Nothing to compare (an operation with no result).
    Done,
    /// Nothing happened: the operation picks a guard or call and there is none.
    Skipped,
    /// `try_acquire`.
    Admission(Admission),
    /// A poll of a call future.
    Poll(Poll<Result<u8, CallError<u8>>>),
}

/// The inner future of a call: ready once the harness puts a result in it.
struct Gate(Rc<Cell<Option<Result<u8, u8>>>>);

impl Future for Gate {
    type Output = Result<u8, u8>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<u8, u8>> {
        match self.0.take() {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }
}

type CallFuture<'b> = Pin<Box<dyn Future<Output = Result<u8, CallError<u8>>> + 'b>>;

/// A call future that was let in and whose inner future is still running.
struct Running<'b> {
    id: CallId,
    classify: Option<Classifier>,
    result: Rc<Cell<Option<Result<u8, u8>>>>,
    future: CallFuture<'b>,
}

struct Harness<'b> {
    breaker: &'b CircuitBreaker<ManualClock>,
    clock: &'b ManualClock,
    /// What `on_state_change` received, not yet compared.
    reported: Arc<Mutex<Vec<Transition>>>,
    model: BreakerModel,
    guards: Vec<(CallId, BreakerGuard<'b, ManualClock>)>,
    calls: Vec<Running<'b>>,
}

impl<'b> Harness<'b> {
    /// Applies `op` to both sides; returns (real, model) outcomes.
    fn apply(&mut self, op: Op) -> (Outcome, Outcome) {
        match op {
            Op::TryAcquire => {
                let breaker: &'b CircuitBreaker<ManualClock> = self.breaker;
                let real = breaker.try_acquire();
                let (id, model) = self.model.admit();
                let answer = match real {
                    Ok(guard) => {
                        let answer =
                            if guard.is_probe() { Admission::Probe } else { Admission::Call };
                        // Kept if both let the call in (otherwise the results differ and
                        // the run stops here).
                        if let Some(id) = id {
                            self.guards.push((id, guard));
                        }
                        answer
                    }
                    Err(open) => Admission::Rejected(open),
                };
                (Outcome::Admission(answer), Outcome::Admission(model))
            }
            Op::FinishLater { guard, how, millis } => {
                if self.guards.is_empty() {
                    return (Outcome::Skipped, Outcome::Skipped);
                }
                let by = Duration::from_millis(u64::from(millis));
                self.clock.advance(by);
                self.model.advance(by);
                self.apply(Op::Finish { guard, how })
            }
            Op::Finish { guard, how } => {
                let Some(index) = pick(guard, self.guards.len()) else {
                    return (Outcome::Skipped, Outcome::Skipped);
                };
                let (id, guard) = self.guards.remove(index);
                let verdict = match how {
                    Finish::Success => {
                        guard.success();
                        Verdict::Success
                    }
                    Finish::Failure => {
                        guard.failure();
                        Verdict::Failure
                    }
                    Finish::Record(judged) => {
                        guard.record(judged.into());
                        judged.into()
                    }
                    Finish::Drop => {
                        drop(guard);
                        Verdict::Ignore
                    }
                    Finish::Forget => {
                        std::mem::forget(guard);
                        self.model.forget(id);
                        return (Outcome::Done, Outcome::Done);
                    }
                };
                self.model.finish(id, verdict);
                (Outcome::Done, Outcome::Done)
            }
            Op::Call { classify, ready } => self.call(classify, ready),
            Op::Complete { call, result } => {
                let Some(index) = pick(call, self.calls.len()) else {
                    return (Outcome::Skipped, Outcome::Skipped);
                };
                let mut running = self.calls.remove(index);
                running.result.set(Some(result));
                let real = poll(&mut running.future);
                self.model.finish(running.id, judge(running.classify, &result));
                (Outcome::Poll(real), Outcome::Poll(Poll::Ready(result.map_err(CallError::Inner))))
            }
            Op::Poll { call } => {
                let Some(index) = pick(call, self.calls.len()) else {
                    return (Outcome::Skipped, Outcome::Skipped);
                };
                let real = poll(&mut self.calls[index].future);
                (Outcome::Poll(real), Outcome::Poll(Poll::Pending))
            }
            Op::DropCall { call } => {
                let Some(index) = pick(call, self.calls.len()) else {
                    return (Outcome::Skipped, Outcome::Skipped);
                };
                let running = self.calls.remove(index);
                let id = running.id;
                drop(running);
                self.model.finish(id, Verdict::Ignore);
                (Outcome::Done, Outcome::Done)
            }
            Op::DropUnpolled => {
                drop(self.breaker.call(Gate(Rc::default())));
                (Outcome::Done, Outcome::Done)
            }
            Op::Reset => {
                self.breaker.reset();
                self.model.reset();
                (Outcome::Done, Outcome::Done)
            }
            Op::ForceOpen => {
                self.breaker.force_open();
                self.model.force_open();
                (Outcome::Done, Outcome::Done)
            }
            Op::Advance { millis } => {
                let by = Duration::from_millis(u64::from(millis));
                self.clock.advance(by);
                self.model.advance(by);
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
                self.model.advance(Duration::MAX);
                (Outcome::Done, Outcome::Done)
            }
        }
    }

    /// `call` or `call_with`, polled once.
    fn call(
        &mut self,
        classify: Option<Classifier>,
        ready: Option<Result<u8, u8>>,
    ) -> (Outcome, Outcome) {
        let breaker: &'b CircuitBreaker<ManualClock> = self.breaker;
        let result = Rc::new(Cell::new(ready));
        let gate = Gate(result.clone());
        let mut future: CallFuture<'b> = match classify {
            None => Box::pin(breaker.call(gate)),
            Some(classifier) => {
                Box::pin(breaker.call_with(move |r: &Result<u8, u8>| classifier.verdict(r), gate))
            }
        };
        let real = poll(&mut future);
        let model = match self.model.admit() {
            (None, Admission::Rejected(open)) => Poll::Ready(Err(CallError::Rejected(open))),
            (None, answer) => unreachable!("refused with {answer:?}"),
            (Some(id), _) => match ready {
                Some(result) => {
                    self.model.finish(id, judge(classify, &result));
                    Poll::Ready(result.map_err(CallError::Inner))
                }
                None => {
                    // Kept if both are pending (otherwise the results differ and the run
                    // stops here).
                    if real.is_pending() {
                        self.calls.push(Running { id, classify, result, future });
                    }
                    Poll::Pending
                }
            },
        };
        (Outcome::Poll(real), Outcome::Poll(model))
    }

    /// Compares everything observable: state, stats, reported transitions, the kept
    /// guards, the clock.
    fn compare(&mut self, step: Option<usize>, op: &dyn Debug) -> Result<(), Divergence> {
        check(step, op, "state()", self.breaker.state(), self.model.state())?;
        check(step, op, "stats()", Stats::from(self.breaker.stats()), self.model.stats())?;
        let reported = std::mem::take(&mut *self.reported.lock().unwrap());
        check(step, op, "the transitions reported", reported, self.model.take_transitions())?;
        let real_probes: Vec<bool> = self.guards.iter().map(|(_, g)| g.is_probe()).collect();
        let model_probes: Vec<bool> =
            self.guards.iter().map(|(id, _)| self.model.is_probe(*id)).collect();
        check(step, op, "is_probe() of each kept guard", real_probes, model_probes)?;
        check(step, op, "the clock", self.clock.now().as_nanos(), self.model.now())
    }

    /// Ends every kept guard (dropped) and call (cancelled), comparing after each, then
    /// checks that the real breaker has every probe slot back (unless a guard was leaked)
    /// and that its totals add up.
    fn finish(mut self) -> Result<Tally, Divergence> {
        while let Some((id, guard)) = self.guards.pop() {
            drop(guard);
            self.model.finish(id, Verdict::Ignore);
            self.compare(None, &"drop a guard")?;
        }
        while let Some(running) = self.calls.pop() {
            let id = running.id;
            drop(running);
            self.model.finish(id, Verdict::Ignore);
            self.compare(None, &"drop a call")?;
        }
        let s = self.breaker.stats();
        if self.model.tally().leaked_guards == 0 {
            check(None, &"end", "probes_in_flight with nothing running", s.probes_in_flight, 0)?;
        }
        let sum = s.success_count + s.total_failures + s.abandoned_calls + s.rejected_calls;
        check(None, &"end", "total_calls against its parts", s.total_calls, sum)?;
        Ok(self.model.tally())
    }
}

/// Polls a call future once, with a waker nobody needs (the harness polls by hand).
fn poll(future: &mut CallFuture<'_>) -> Poll<Result<u8, CallError<u8>>> {
    future.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

/// The verdict of `call` (errors are failures) or of `call_with(classifier)`.
fn judge(classify: Option<Classifier>, result: &Result<u8, u8>) -> Verdict {
    match classify {
        Some(classifier) => classifier.verdict(result),
        None => Verdict::from(result.is_ok()),
    }
}

fn pick(index: u8, len: usize) -> Option<usize> {
    (len > 0).then(|| usize::from(index) % len)
}
