//! [`Sim`]: the single-threaded, seeded executor, and its [`Spawner`].

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Waker};

use super::task::{Completion, JoinHandle, Slot, TaskWaker, WakeQueue};
use super::trace::{Fingerprint, SimEvent};
use super::{SimError, TaskId};
use crate::time::{Clock, Instant, ManualClock};

type TaskFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// How many polls one run call may make without time moving before it reports
/// [`SimError::Livelock`], unless [`Sim::set_poll_limit`] says otherwise.
pub const DEFAULT_POLL_LIMIT: u64 = 1_000_000;

/// A deterministic, single-threaded executor on a [`ManualClock`], for tests and fuzz
/// targets of code that uses kompoz.
///
/// * **Seeded.** Among the tasks ready to run, the next one is picked by a random number
///   generator seeded by the caller, so different seeds explore different interleavings
///   and one seed always gives the same one, bit for bit
///   ([`fingerprint`](Sim::fingerprint), [`events`](Sim::events)).
/// * **Time jumps.** Time moves only when every task is waiting: then the clock jumps to
///   the earliest pending timer of its [`ManualClock`]. An hour of timeouts and recovery
///   periods takes microseconds.
/// * **Deadlocks are errors.** If every task waits and no timer is pending, nothing can
///   ever happen: [`run`](Sim::run) and [`block_on`](Sim::block_on) return
///   [`SimError::Deadlock`] instead of hanging; tasks that keep waking each other without
///   time moving give [`SimError::Livelock`].
/// * **Cancellation is dropping.** [`cancel`](Sim::cancel) drops a task's future where it
///   stands, as a real runtime does when a request is abandoned, so code under test meets
///   cancellation at every await point the fuzzer can reach.
///
/// Tasks may borrow from the caller (`Sim<'a>` runs futures that live for `'a`): build
/// the clock and what the tasks share (a breaker, a semaphore) before the `Sim`. Every
/// timer the tasks wait on must come from the simulation's clock; the simulation cannot
/// see any other.
///
/// ```
/// use core::time::Duration;
/// use kompoz::sim::Sim;
/// use kompoz::{Clock, Instant, ManualClock, Sleep};
///
/// let clock = ManualClock::new();
/// let mut sim = Sim::with_clock(42, clock.clone());
/// let slow = sim.spawn({
///     let clock = clock.clone();
///     async move {
///         clock.sleep(Duration::from_secs(3600)).await;
///         clock.now()
///     }
/// });
/// sim.run()?; // an hour of simulated time, at once
/// assert_eq!(slow.take_output(), Ok(Instant::ZERO + Duration::from_secs(3600)));
/// # Ok::<(), kompoz::sim::SimError>(())
/// ```
pub struct Sim<'a> {
    clock: ManualClock,
    seed: u64,
    rng: fastrand::Rng,
    tasks: BTreeMap<TaskId, Task<'a>>,
    /// What the [`Spawner`]s share with the simulation.
    shared: Rc<Shared<'a>>,
    woken: Arc<WakeQueue>,
    /// Tasks ready to be polled (ids of finished or cancelled tasks are skipped).
    ready: Vec<TaskId>,
    fingerprint: Fingerprint,
    events: Option<Vec<SimEvent>>,
    poll_limit: u64,
    /// Polls in the current run call since time last moved.
    polls_since_time_moved: u64,
}

struct Task<'a> {
    future: TaskFuture<'a>,
    scheduling: Arc<TaskWaker>,
    waker: Waker,
}

/// Task numbering and the tasks spawned from inside the simulation, waiting to be
/// adopted by the scheduler.
struct Shared<'a> {
    next_id: Cell<u64>,
    spawned: RefCell<Vec<(TaskId, TaskFuture<'a>)>>,
}

impl<'a> Shared<'a> {
    fn next_id(&self) -> TaskId {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        TaskId(id)
    }
}

/// Wraps a future into a task that hands its output to a [`JoinHandle`].
fn task<'a, T: 'a>(future: impl Future<Output = T> + 'a) -> (TaskFuture<'a>, Rc<Slot<T>>) {
    let slot = Slot::new();
    let completion = Completion(slot.clone());
    let task = async move {
        let output = future.await;
        completion.finish(output);
    };
    (Box::pin(task), slot)
}

impl<'a> Sim<'a> {
    /// A simulation seeded with `seed`, on a new [`ManualClock`] at [`Instant::ZERO`].
    pub fn new(seed: u64) -> Sim<'a> {
        Sim::with_clock(seed, ManualClock::new())
    }

    /// A simulation seeded with `seed`, on `clock` (clones share its time line: give
    /// them to the breakers, timeouts and limits under test).
    pub fn with_clock(seed: u64, clock: ManualClock) -> Sim<'a> {
        Sim {
            clock,
            seed,
            rng: fastrand::Rng::with_seed(seed),
            tasks: BTreeMap::new(),
            shared: Rc::new(Shared { next_id: Cell::new(0), spawned: RefCell::new(Vec::new()) }),
            woken: Arc::new(WakeQueue::default()),
            ready: Vec::new(),
            fingerprint: Fingerprint::new(),
            events: None,
            poll_limit: DEFAULT_POLL_LIMIT,
            polls_since_time_moved: 0,
        }
    }

    /// The simulation's clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The seed the simulation was made with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Starts running `future` as a task (first polled when the simulation next runs).
    pub fn spawn<T: 'a>(&mut self, future: impl Future<Output = T> + 'a) -> JoinHandle<T> {
        let id = self.shared.next_id();
        let (future, slot) = task(future);
        self.adopt(id, future);
        JoinHandle::new(id, slot)
    }

    /// A handle that spawns tasks from inside the simulation.
    pub fn spawner(&self) -> Spawner<'a> {
        Spawner { shared: self.shared.clone() }
    }

    /// Cancels a task: drops its future now, wherever it is waiting, so its destructors
    /// run (permits and probe slots go back, timers unregister) and its handle reports
    /// [`JoinError::Cancelled`](super::JoinError::Cancelled). Returns whether the task
    /// was still running.
    pub fn cancel(&mut self, task: TaskId) -> bool {
        self.adopt_spawned();
        match self.tasks.remove(&task) {
            Some(cancelled) => {
                drop(cancelled);
                let at = self.clock.now();
                self.note(SimEvent::Cancelled { task, at });
                true
            }
            None => false,
        }
    }

    /// How many tasks are alive: spawned, not finished, not cancelled.
    pub fn task_count(&self) -> usize {
        self.tasks.len() + self.shared.spawned.borrow().len()
    }

    /// Polls ready tasks until none is ready, without moving time.
    pub fn run_until_idle(&mut self) -> Result<(), SimError> {
        self.polls_since_time_moved = 0;
        self.poll_until_idle()
    }

    /// Runs until every task has finished, jumping time to the next timer whenever all
    /// of them wait. [`SimError::Deadlock`] if they all wait and no timer is pending.
    pub fn run(&mut self) -> Result<(), SimError> {
        self.polls_since_time_moved = 0;
        loop {
            self.poll_until_idle()?;
            if self.tasks.is_empty() {
                return Ok(());
            }
            if !self.jump_to_next_timer(Instant::MAX) {
                return Err(self.deadlock());
            }
        }
    }

    /// Runs until the clock reads `deadline` (or later, if it already does), jumping from
    /// timer to timer, then polls until idle. Tasks still waiting then are left waiting:
    /// this is not a deadlock, as something outside the tasks may yet wake them.
    pub fn run_until(&mut self, deadline: Instant) -> Result<(), SimError> {
        self.polls_since_time_moved = 0;
        loop {
            self.poll_until_idle()?;
            if !self.jump_to_next_timer(deadline) {
                break;
            }
        }
        let from = self.clock.now();
        if from < deadline {
            self.clock.advance(deadline.saturating_duration_since(from));
            self.time_moved(from);
            self.poll_until_idle()?;
        }
        Ok(())
    }

    /// [`run_until`](Sim::run_until) `duration` from now.
    pub fn run_for(&mut self, duration: core::time::Duration) -> Result<(), SimError> {
        self.run_until(self.clock.now().saturating_add(duration))
    }

    /// Spawns `future` and runs the simulation until it finishes (other tasks run
    /// meanwhile, and may still be alive afterwards); returns its output.
    /// [`SimError::Deadlock`] if it can never finish.
    pub fn block_on<T: 'a>(&mut self, future: impl Future<Output = T> + 'a) -> Result<T, SimError> {
        let handle = self.spawn(future);
        self.polls_since_time_moved = 0;
        loop {
            self.poll_until_idle()?;
            // Nothing but `cancel` (which needs `&mut self`) ends a task other than by
            // finishing, so this task has either finished or is still running.
            if let Ok(output) = handle.take_output() {
                return Ok(output);
            }
            if !self.jump_to_next_timer(Instant::MAX) {
                return Err(self.deadlock());
            }
        }
    }

    /// Starts (or stops) recording every step as a [`SimEvent`]; off by default, as a
    /// fuzz target rarely needs more than the [`fingerprint`](Sim::fingerprint).
    pub fn record_events(&mut self, on: bool) {
        match (on, self.events.is_some()) {
            (true, false) => self.events = Some(Vec::new()),
            (false, true) => self.events = None,
            _ => {}
        }
    }

    /// The events recorded since [`record_events`](Sim::record_events) was turned on.
    pub fn events(&self) -> &[SimEvent] {
        self.events.as_deref().unwrap_or(&[])
    }

    /// A hash of every step so far (spawns, polls, cancellations, time jumps, each with
    /// its task and time): two runs are the same run exactly when their fingerprints
    /// are equal (barring a 64-bit hash collision).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint.get()
    }

    /// Sets how many polls one run call may make without time moving before it gives up
    /// with [`SimError::Livelock`] (default [`DEFAULT_POLL_LIMIT`]).
    pub fn set_poll_limit(&mut self, polls: u64) {
        self.poll_limit = polls;
    }

    fn adopt(&mut self, id: TaskId, future: TaskFuture<'a>) {
        let scheduling = TaskWaker::new(id, self.woken.clone());
        let waker = Waker::from(scheduling.clone());
        self.tasks.insert(id, Task { future, scheduling, waker });
        self.ready.push(id);
        let at = self.clock.now();
        self.note(SimEvent::Spawned { task: id, at });
    }

    /// Takes in the tasks spawned through a [`Spawner`], in the order they were spawned.
    fn adopt_spawned(&mut self) {
        let spawned = core::mem::take(&mut *self.shared.spawned.borrow_mut());
        for (id, future) in spawned {
            self.adopt(id, future);
        }
    }

    /// Polls one ready task, chosen by the seeded generator. `Ok(false)` when none is
    /// ready.
    fn poll_one(&mut self) -> Result<bool, SimError> {
        self.adopt_spawned();
        self.woken.drain_into(&mut self.ready);
        if self.ready.is_empty() {
            return Ok(false);
        }
        if self.polls_since_time_moved >= self.poll_limit {
            return Err(SimError::Livelock {
                polls: self.polls_since_time_moved,
                at: self.clock.now(),
            });
        }
        let id = self.ready.swap_remove(self.rng.usize(..self.ready.len()));
        let Some(task) = self.tasks.get_mut(&id) else {
            // Woken after it finished or was cancelled (a stale waker).
            return Ok(true);
        };
        self.polls_since_time_moved += 1;
        task.scheduling.unschedule();
        let finished = task.future.as_mut().poll(&mut Context::from_waker(&task.waker)).is_ready();
        if finished {
            self.tasks.remove(&id);
        }
        let at = self.clock.now();
        self.note(SimEvent::Polled { task: id, at, finished });
        Ok(true)
    }

    fn poll_until_idle(&mut self) -> Result<(), SimError> {
        while self.poll_one()? {}
        Ok(())
    }

    /// Moves the clock to the earliest pending timer if it is due no later than `limit`.
    /// Returns whether it did.
    fn jump_to_next_timer(&mut self, limit: Instant) -> bool {
        match self.clock.next_deadline() {
            Some(next) if next <= limit => {
                let from = self.clock.now();
                // A deadline at or before now (the clock was set back) fires at once.
                self.clock.advance(next.saturating_duration_since(from));
                self.time_moved(from);
                true
            }
            _ => false,
        }
    }

    fn time_moved(&mut self, from: Instant) {
        self.polls_since_time_moved = 0;
        let to = self.clock.now();
        self.note(SimEvent::TimeJumped { from, to });
    }

    fn deadlock(&self) -> SimError {
        SimError::Deadlock { blocked: self.tasks.len(), at: self.clock.now() }
    }

    fn note(&mut self, event: SimEvent) {
        self.fingerprint.add(event);
        if let Some(events) = &mut self.events {
            events.push(event);
        }
    }
}

impl Drop for Sim<'_> {
    fn drop(&mut self) {
        // Tasks spawned but never adopted may hold a `Spawner`, and so the queue that holds
        // them: a cycle. Drop them here (their handles then report them cancelled).
        let orphans = core::mem::take(&mut *self.shared.spawned.borrow_mut());
        drop(orphans);
    }
}

impl fmt::Debug for Sim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("now", &self.clock.now())
            .field("tasks", &self.task_count())
            .field("fingerprint", &self.fingerprint.get())
            .finish_non_exhaustive()
    }
}

/// Spawns tasks on a [`Sim`] from inside it (a task that fans out, a hedged request).
/// The new task is adopted by the scheduler at its next step.
///
/// ```
/// use kompoz::sim::Sim;
///
/// let mut sim = Sim::new(1);
/// let spawner = sim.spawner();
/// let parent = sim.spawn(async move {
///     let child = spawner.spawn(async { 2 });
///     child.await.map(|n| n * 21)
/// });
/// sim.run()?;
/// assert_eq!(parent.take_output(), Ok(Ok(42)));
/// # Ok::<(), kompoz::sim::SimError>(())
/// ```
#[derive(Clone)]
pub struct Spawner<'a> {
    shared: Rc<Shared<'a>>,
}

impl<'a> Spawner<'a> {
    /// Spawns `future` on the simulation this spawner came from. If the simulation is
    /// gone, the task never runs (and is dropped with the last spawner).
    pub fn spawn<T: 'a>(&self, future: impl Future<Output = T> + 'a) -> JoinHandle<T> {
        let id = self.shared.next_id();
        let (future, slot) = task(future);
        self.shared.spawned.borrow_mut().push((id, future));
        JoinHandle::new(id, slot)
    }
}

impl fmt::Debug for Spawner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner").finish_non_exhaustive()
    }
}
