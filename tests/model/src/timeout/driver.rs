//! Applies a sequence of [`Op`]s to real `kompoz::timeout`/`timeout_at` futures on a
//! `ManualClock` (polled by hand with counting wakers) and to the [`TimeoutModel`],
//! comparing every result, the wake-ups, the clock's registered timers and its time.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::{Clock, Instant, ManualClock, Sleep, timeout, timeout_at};

use super::model::{TimeoutId, TimeoutModel};
use super::ops::{Inner, Op, Scenario};
use crate::waker::WakeCounter;
use crate::{Divergence, check};

/// Runs a [`Scenario`]; see [`run_ops`].
pub fn run(scenario: &Scenario) -> Result<(), Divergence> {
    run_ops(&scenario.ops)
}

/// Runs `ops` on real timeouts and on the model, comparing after every step; at the end
/// drops every timeout and checks that no timer is left registered.
pub fn run_ops(ops: &[Op]) -> Result<(), Divergence> {
    let clock = ManualClock::new();
    let mut harness = Harness { clock: &clock, model: TimeoutModel::new(), live: Vec::new() };
    for (step, op) in ops.iter().enumerate() {
        let (real, model) = harness.apply(*op);
        check(Some(step), op, "the result", real, model)?;
        harness.compare(Some(step), op)?;
    }
    while let Some(live) = harness.live.pop() {
        harness.model.drop_timeout(live.id);
        drop(live);
        harness.compare(None, &"drop a timeout")?;
    }
    check(None, &"end", "the clock's pending timers", clock.pending_timers(), 0)
}

/// A future that is ready once opened; opening wakes the task that last polled it.
#[derive(Default)]
struct GateState {
    open: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

struct Gate(Arc<GateState>);

impl Future for Gate {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut waker = self.0.waker.lock().unwrap();
        if self.0.open.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl GateState {
    fn open(&self) {
        let waker = {
            let mut waker = self.waker.lock().unwrap();
            self.open.store(true, Ordering::SeqCst);
            waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

type Limited<'c> = Pin<Box<dyn Future<Output = Result<(), kompoz::Elapsed>> + 'c>>;

struct Live<'c> {
    id: TimeoutId,
    future: Limited<'c>,
    gate: Option<Arc<GateState>>,
    wakes: Arc<WakeCounter>,
    waker: Waker,
}

struct Harness<'c> {
    clock: &'c ManualClock,
    model: TimeoutModel,
    live: Vec<Live<'c>>,
}

/// A poll's outcome, `Err(())` standing for `Elapsed`.
type Outcome = Option<Poll<Result<(), ()>>>;

impl<'c> Harness<'c> {
    fn apply(&mut self, op: Op) -> (Outcome, Outcome) {
        match op {
            Op::Start { limit, at, inner, poll } => {
                let clock = self.clock;
                let mut gate = None;
                let kind = inner;
                let inner: Pin<Box<dyn Future<Output = ()> + 'c>> = match kind {
                    Inner::Ready => Box::pin(std::future::ready(())),
                    Inner::Never => Box::pin(std::future::pending()),
                    Inner::Sleep(ms) => Box::pin(clock.sleep(Duration::from_millis(u64::from(ms)))),
                    Inner::Gate => {
                        let state = Arc::new(GateState::default());
                        gate = Some(state.clone());
                        Box::pin(Gate(state))
                    }
                };
                let limit_duration = Duration::from_millis(u64::from(limit));
                let future: Limited<'c> = if at {
                    Box::pin(timeout_at(clock, clock.now() + limit_duration, inner))
                } else {
                    Box::pin(timeout(clock, limit_duration, inner))
                };
                let id = self.model.start(limit, at, kind);
                let (wakes, waker) = WakeCounter::new();
                self.live.push(Live { id, future, gate, wakes, waker });
                if !poll {
                    return (None, None);
                }
                let index = self.live.len() - 1;
                (Some(self.poll(index)), Some(self.model.poll(id)))
            }
            Op::Poll { timeout } => match self.pick(timeout) {
                None => (None, None),
                Some(index) => {
                    let id = self.live[index].id;
                    (Some(self.poll(index)), Some(self.model.poll(id)))
                }
            },
            Op::Drop { timeout } => {
                if let Some(index) = self.pick(timeout) {
                    let live = self.live.remove(index);
                    self.model.drop_timeout(live.id);
                }
                (None, None)
            }
            Op::Open { timeout } => {
                if let Some(index) = self.pick(timeout) {
                    if let Some(gate) = &self.live[index].gate {
                        gate.open();
                    }
                    self.model.open(self.live[index].id);
                }
                (None, None)
            }
            Op::Advance { millis } => {
                self.clock.advance(Duration::from_millis(u64::from(millis)));
                self.model.advance(u64::from(millis) * 1_000_000);
                (None, None)
            }
            Op::AdvanceToTheEnd => {
                self.clock.advance(Duration::MAX);
                self.model.advance(u64::MAX);
                (None, None)
            }
            Op::SetClock { millis } => {
                let to = u64::from(millis) * 1_000_000;
                self.clock.set(Instant::from_nanos(to));
                self.model.set_clock(to);
                (None, None)
            }
        }
    }

    fn poll(&mut self, index: usize) -> Poll<Result<(), ()>> {
        let live = &mut self.live[index];
        let poll = live.future.as_mut().poll(&mut Context::from_waker(&live.waker));
        if poll.is_ready() {
            self.live.remove(index);
        }
        poll.map(|result| result.map_err(|_elapsed| ()))
    }

    fn pick(&self, index: u8) -> Option<usize> {
        (!self.live.is_empty()).then(|| usize::from(index) % self.live.len())
    }

    fn compare(&self, step: Option<usize>, op: &dyn Debug) -> Result<(), Divergence> {
        let real: Vec<usize> = self.live.iter().map(|l| l.wakes.count()).collect();
        let model: Vec<usize> = self.live.iter().map(|l| self.model.wakes(l.id)).collect();
        check(step, op, "the wake-ups of each timeout's task", real, model)?;
        let timers = (self.clock.pending_timers(), self.model.pending_timers());
        check(step, op, "the clock's pending timers", timers.0, timers.1)?;
        check(step, op, "the clock", self.clock.now().as_nanos(), self.model.now())
    }
}
