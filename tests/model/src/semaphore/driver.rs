//! Applies a sequence of [`Op`]s to a real `kompoz::limit::Semaphore` (on a
//! `ManualClock`, futures polled by hand with counting wakers) and to the
//! [`SemaphoreModel`], comparing everything after each step.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use kompoz::limit::{
    AcquireError, AcquireOwned, LimitError, MAX_PERMITS, OwnedPermit, Permit, Semaphore,
};
use kompoz::{Clock, Instant, ManualClock};

use super::model::{SemaphoreModel, Stats, Tally, WaiterId};
use super::ops::{Op, Scenario};
use crate::waker::WakeCounter;
use crate::{Divergence, check};

/// Runs a [`Scenario`]; see [`run_ops`].
pub fn run(scenario: &Scenario) -> Result<Tally, Divergence> {
    run_ops(scenario.initial_permits(), &scenario.ops)
}

/// Runs `ops` against a semaphore with `permits` permits and against the model.
///
/// After every operation it compares the operation's result, the wake-ups each waiting
/// future has received, the stats, the number of held permits and the manual clock's
/// registered timers. At the end it drops every waiter and permit (still comparing) and
/// checks that all permits came back. Returns the first difference, or how often the run
/// reached the interesting transitions.
pub fn run_ops(permits: usize, ops: &[Op]) -> Result<Tally, Divergence> {
    let semaphore = Arc::new(Semaphore::new(permits).expect("a small number of permits"));
    let clock = ManualClock::new();
    let mut harness = Harness {
        semaphore: &semaphore,
        clock: &clock,
        model: SemaphoreModel::new(permits),
        waiters: Vec::new(),
        permits: Vec::new(),
    };
    harness.compare(None, &"start")?;
    for (step, op) in ops.iter().enumerate() {
        let (real, model) = harness.apply(*op);
        harness.compare_outcomes(Some(step), op, real, model)?;
        harness.compare(Some(step), op)?;
    }
    harness.finish()
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Nothing to compare (an operation with no result).
    Done,
    /// Nothing happened: the operation picks a waiter or permit and there is none.
    Skipped,
    /// A poll of an acquisition.
    Poll(Poll<Result<(), AcquireError>>),
    /// `try_acquire`.
    Try(Result<(), AcquireError>),
    /// `add_permits`.
    Add(Result<(), LimitError>),
}

/// A permit held by the harness.
enum Held<'s> {
    Borrowed(Permit<'s>),
    Owned(OwnedPermit),
}

impl Held<'_> {
    fn semaphore(&self) -> &Semaphore {
        match self {
            Held::Borrowed(permit) => permit.semaphore(),
            Held::Owned(permit) => permit.semaphore(),
        }
    }
}

type TimedAcquire<'s> = Pin<Box<dyn Future<Output = Result<Permit<'s>, AcquireError>> + 's>>;

/// A pending acquisition future of the real semaphore (boxed: acquire futures are
/// `!Unpin`, their wait-list node lives inside them).
enum RealFuture<'s> {
    Borrowed(Pin<Box<kompoz::limit::Acquire<'s>>>),
    Owned(Pin<Box<AcquireOwned>>),
    Timed(TimedAcquire<'s>),
}

impl<'s> RealFuture<'s> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Held<'s>, AcquireError>> {
        match self {
            RealFuture::Borrowed(f) => f.as_mut().poll(cx).map_ok(Held::Borrowed),
            RealFuture::Owned(f) => f.as_mut().poll(cx).map_ok(Held::Owned),
            RealFuture::Timed(f) => f.as_mut().poll(cx).map_ok(Held::Borrowed),
        }
    }
}

/// A waiter: the real future, its counting waker, and its name in the model.
struct Waiter<'s> {
    id: WaiterId,
    future: RealFuture<'s>,
    wakes: Arc<WakeCounter>,
    waker: Waker,
    /// Wake-ups counted by the wakers this waiter was polled with before `waker`.
    earlier_wakes: usize,
}

impl Waiter<'_> {
    /// Every wake-up this waiter received, through any of its wakers.
    fn wake_count(&self) -> usize {
        self.earlier_wakes + self.wakes.count()
    }
}

struct Harness<'s> {
    semaphore: &'s Arc<Semaphore>,
    clock: &'s ManualClock,
    model: SemaphoreModel,
    /// The pending waiters, oldest first (the model knows them by id).
    waiters: Vec<Waiter<'s>>,
    permits: Vec<Held<'s>>,
}

impl<'s> Harness<'s> {
    /// Applies `op` to both sides; returns (real, model) outcomes.
    fn apply(&mut self, op: Op) -> (Outcome, Outcome) {
        match op {
            Op::Acquire { owned } => {
                let future = if owned {
                    RealFuture::Owned(Box::pin(self.semaphore.clone().acquire_owned()))
                } else {
                    let semaphore: &'s Semaphore = self.semaphore;
                    RealFuture::Borrowed(Box::pin(semaphore.acquire()))
                };
                let (id, model) = self.model.acquire(None);
                (self.start(id, future), Outcome::Poll(model))
            }
            Op::AcquireWithMaxWait { limit } => {
                let semaphore: &'s Semaphore = self.semaphore;
                let clock: &'s ManualClock = self.clock;
                let future = RealFuture::Timed(Box::pin(
                    semaphore.acquire_with_max_wait(clock, limit.duration()),
                ));
                let (id, model) = self.model.acquire(Some(limit.duration()));
                (self.start(id, future), Outcome::Poll(model))
            }
            Op::TryAcquire { owned } => {
                let real = if owned {
                    self.semaphore.clone().try_acquire_owned().map(Held::Owned)
                } else {
                    let semaphore: &'s Semaphore = self.semaphore;
                    semaphore.try_acquire().map(Held::Borrowed)
                };
                let real = real.map(|permit| self.hold(permit));
                (Outcome::Try(real), Outcome::Try(self.model.try_acquire()))
            }
            Op::Poll { waiter } => match self.pick_waiter(waiter) {
                None => (Outcome::Skipped, Outcome::Skipped),
                Some(index) => {
                    let id = self.waiters[index].id;
                    let real = self.poll_waiter(index);
                    (Outcome::Poll(real), Outcome::Poll(self.model.poll(id)))
                }
            },
            Op::PollWithNewWaker { waiter } => match self.pick_waiter(waiter) {
                None => (Outcome::Skipped, Outcome::Skipped),
                Some(index) => {
                    let waiter = &mut self.waiters[index];
                    let id = waiter.id;
                    let (wakes, waker) = WakeCounter::new();
                    waiter.earlier_wakes += waiter.wakes.count();
                    waiter.wakes = wakes;
                    waiter.waker = waker;
                    let real = self.poll_waiter(index);
                    (Outcome::Poll(real), Outcome::Poll(self.model.poll(id)))
                }
            },
            Op::DropWaiter { waiter } => match self.pick_waiter(waiter) {
                None => (Outcome::Skipped, Outcome::Skipped),
                Some(index) => {
                    let waiter = self.waiters.remove(index);
                    drop(waiter.future);
                    self.model.drop_waiter(waiter.id);
                    (Outcome::Done, Outcome::Done)
                }
            },
            Op::DropPermit { permit } => {
                if self.permits.is_empty() {
                    return (Outcome::Skipped, Outcome::Skipped);
                }
                let index = usize::from(permit) % self.permits.len();
                drop(self.permits.remove(index));
                self.model.drop_permit();
                (Outcome::Done, Outcome::Done)
            }
            Op::Close => {
                self.semaphore.close();
                self.model.close();
                (Outcome::Done, Outcome::Done)
            }
            Op::AddPermits { n } => {
                let n = usize::from(n % 4);
                (
                    Outcome::Add(self.semaphore.add_permits(n)),
                    Outcome::Add(self.model.add_permits(n)),
                )
            }
            Op::AddTooManyPermits => (
                Outcome::Add(self.semaphore.add_permits(MAX_PERMITS)),
                Outcome::Add(self.model.add_permits(MAX_PERMITS)),
            ),
            Op::Advance { millis } => {
                let by = std::time::Duration::from_millis(u64::from(millis));
                self.clock.advance(by);
                self.model.advance(by);
                (Outcome::Done, Outcome::Done)
            }
            Op::AdvanceToTheEnd => {
                self.clock.advance(std::time::Duration::MAX);
                self.model.advance(std::time::Duration::MAX);
                (Outcome::Done, Outcome::Done)
            }
            Op::SetClock { millis } => {
                let to = u64::from(millis) * 1_000_000;
                self.clock.set(Instant::from_nanos(to));
                self.model.set_clock(to);
                (Outcome::Done, Outcome::Done)
            }
        }
    }

    /// Polls a new real waiter once; keeps it if pending.
    fn start(&mut self, id: WaiterId, future: RealFuture<'s>) -> Outcome {
        let (wakes, waker) = WakeCounter::new();
        self.waiters.push(Waiter { id, future, wakes, waker, earlier_wakes: 0 });
        Outcome::Poll(self.poll_waiter(self.waiters.len() - 1))
    }

    /// Polls real waiter `index`; a finished waiter leaves the list, its permit is held.
    fn poll_waiter(&mut self, index: usize) -> Poll<Result<(), AcquireError>> {
        let waiter = &mut self.waiters[index];
        let mut cx = Context::from_waker(&waiter.waker);
        match waiter.future.poll(&mut cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.waiters.remove(index);
                Poll::Ready(result.map(|permit| self.hold(permit)))
            }
        }
    }

    fn hold(&mut self, permit: Held<'s>) {
        assert!(std::ptr::eq(permit.semaphore(), &**self.semaphore), "a foreign permit");
        self.permits.push(permit);
    }

    fn pick_waiter(&self, waiter: u8) -> Option<usize> {
        (!self.waiters.is_empty()).then(|| usize::from(waiter) % self.waiters.len())
    }

    fn compare_outcomes(
        &self,
        step: Option<usize>,
        op: &Op,
        real: Outcome,
        model: Outcome,
    ) -> Result<(), Divergence> {
        check(step, op, "the result", real, model)
    }

    /// Compares everything observable: stats, held permits, wake-ups, timers.
    fn compare(&self, step: Option<usize>, op: &dyn Debug) -> Result<(), Divergence> {
        let real = Stats::from(self.semaphore.stats());
        check(step, op, "stats()", real, self.model.stats())?;
        check(step, op, "the permits held", self.permits.len(), self.model.held())?;
        check(step, op, "available_permits()", self.semaphore.available_permits(), real.available)?;
        check(step, op, "is_closed()", self.semaphore.is_closed(), real.closed)?;
        let real_wakes: Vec<usize> = self.waiters.iter().map(Waiter::wake_count).collect();
        let model_wakes: Vec<usize> = self.waiters.iter().map(|w| self.model.wakes(w.id)).collect();
        check(step, op, "the wake-ups of each pending waiter", real_wakes, model_wakes)?;
        check(
            step,
            op,
            "the clock's pending timers",
            self.clock.pending_timers(),
            self.model.pending_timers(),
        )?;
        check(step, op, "the clock", self.clock.now().as_nanos(), self.model.now())
    }

    /// Drops every waiter, then every permit (comparing after each), then checks that the
    /// semaphore is whole again.
    fn finish(mut self) -> Result<Tally, Divergence> {
        while let Some(waiter) = self.waiters.pop() {
            let id = waiter.id;
            drop(waiter);
            self.model.drop_waiter(id);
            self.compare(None, &"drop a waiter")?;
        }
        while let Some(permit) = self.permits.pop() {
            drop(permit);
            self.model.drop_permit();
            self.compare(None, &"drop a permit")?;
        }
        // Conservation, on the real semaphore alone: every permit came back.
        let stats = self.semaphore.stats();
        let real = (stats.available, stats.in_flight, stats.waiting);
        check(None, &"end", "(available, in_flight, waiting)", real, (stats.capacity, 0, 0))?;
        check(None, &"end", "the clock's pending timers", self.clock.pending_timers(), 0)?;
        Ok(self.model.tally())
    }
}
