//! Tasks of the simulation: their ids, their wakers, and the [`JoinHandle`] through which
//! a task's output (or its cancellation) is seen.

use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use crate::sync::{AtomicBool, Ordering, SpinMutex};

/// A task's identity within one [`Sim`](super::Sim): numbered from 0 in the order the
/// tasks were spawned, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub(super) u64);

impl TaskId {
    /// The task's number: how many tasks were spawned before it.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.0)
    }
}

/// The ids of tasks woken since the scheduler last looked, in the order they were woken.
///
/// Wakers must be `Send + Sync`, so this is the one piece of the simulation behind a lock
/// (a spin lock: the simulation is single-threaded, it is never contended).
#[derive(Debug, Default)]
pub(super) struct WakeQueue {
    woken: SpinMutex<Vec<TaskId>>,
}

impl WakeQueue {
    /// Moves every woken id to the end of `into`.
    pub(super) fn drain_into(&self, into: &mut Vec<TaskId>) {
        self.woken.with(|woken| into.append(woken));
    }
}

/// The waker of one task: queues the task's id once until the scheduler picks it.
pub(super) struct TaskWaker {
    id: TaskId,
    /// Set while the id is queued (or about to be polled): further wakes are no-ops.
    scheduled: AtomicBool,
    queue: Arc<WakeQueue>,
}

impl TaskWaker {
    /// The waker of a new task, already marked scheduled (a new task is ready).
    pub(super) fn new(id: TaskId, queue: Arc<WakeQueue>) -> Arc<TaskWaker> {
        Arc::new(TaskWaker { id, scheduled: AtomicBool::new(true), queue })
    }

    /// Called just before the task is polled: a wake from now on queues it again.
    pub(super) fn unschedule(&self) {
        self.scheduled.store(false, Ordering::Release);
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.queue.woken.with(|woken| woken.push(self.id));
        }
    }
}

/// Why a [`JoinHandle`] has no output to give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JoinError {
    /// The task has not finished yet (only from [`JoinHandle::take_output`]).
    Running,
    /// The task was cancelled ([`Sim::cancel`](super::Sim::cancel), or the simulation was
    /// dropped) before it finished.
    Cancelled,
    /// The output was taken already, by [`JoinHandle::take_output`] or an earlier await.
    Taken,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JoinError::Running => "the task has not finished yet",
            JoinError::Cancelled => "the task was cancelled before it finished",
            JoinError::Taken => "the task's output was taken already",
        })
    }
}

impl core::error::Error for JoinError {}

/// Where a task leaves its output for its [`JoinHandle`].
pub(super) struct Slot<T> {
    state: RefCell<SlotState<T>>,
    /// The task awaiting the handle, if any.
    joiner: Cell<Option<Waker>>,
}

enum SlotState<T> {
    Running,
    Finished(T),
    Cancelled,
    Taken,
}

impl<T> Slot<T> {
    pub(super) fn new() -> Rc<Slot<T>> {
        Rc::new(Slot { state: RefCell::new(SlotState::Running), joiner: Cell::new(None) })
    }

    fn settle(&self, to: SlotState<T>) {
        let settled = {
            let mut state = self.state.borrow_mut();
            if matches!(*state, SlotState::Running) {
                *state = to;
                true
            } else {
                false
            }
        };
        // Woken after the borrow ends: the waker only queues an id, but stay clean.
        if settled {
            if let Some(joiner) = self.joiner.take() {
                joiner.wake();
            }
        }
    }
}

/// Owned by a task's future: delivers the output, or, if the future is dropped first
/// (the task was cancelled), tells the handle so.
pub(super) struct Completion<T>(pub(super) Rc<Slot<T>>);

impl<T> Completion<T> {
    pub(super) fn finish(&self, output: T) {
        self.0.settle(SlotState::Finished(output));
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        self.0.settle(SlotState::Cancelled);
    }
}

/// The handle of a task spawned on a [`Sim`](super::Sim): tells whether it finished and
/// gives its output, from outside the simulation ([`take_output`](JoinHandle::take_output))
/// or by being awaited in another task.
///
/// Dropping the handle detaches the task: it keeps running. Cancel a task with
/// [`Sim::cancel`](super::Sim::cancel).
///
/// ```
/// use kompoz::sim::{JoinError, Sim};
///
/// let mut sim = Sim::new(7);
/// let answer = sim.spawn(async { 6 * 7 });
/// let one = sim.spawn(async { 1 });
/// // A task may await another's handle.
/// let waiter = sim.spawn(async move { one.await });
/// assert_eq!(answer.take_output(), Err(JoinError::Running));
/// sim.run()?;
/// assert_eq!(answer.take_output(), Ok(42));
/// assert_eq!(answer.take_output(), Err(JoinError::Taken));
/// assert_eq!(waiter.take_output(), Ok(Ok(1)));
/// # Ok::<(), kompoz::sim::SimError>(())
/// ```
pub struct JoinHandle<T> {
    id: TaskId,
    slot: Rc<Slot<T>>,
}

impl<T> JoinHandle<T> {
    pub(super) fn new(id: TaskId, slot: Rc<Slot<T>>) -> JoinHandle<T> {
        JoinHandle { id, slot }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Whether the task ran to completion (its output may have been taken since).
    pub fn is_finished(&self) -> bool {
        matches!(*self.slot.state.borrow(), SlotState::Finished(_) | SlotState::Taken)
    }

    /// Whether the task was cancelled before it finished.
    pub fn is_cancelled(&self) -> bool {
        matches!(*self.slot.state.borrow(), SlotState::Cancelled)
    }

    /// Takes the task's output if it finished; otherwise says why there is none.
    pub fn take_output(&self) -> Result<T, JoinError> {
        self.try_take().unwrap_or(Err(JoinError::Running))
    }

    /// The output, an error, or `None` while the task is still running.
    fn try_take(&self) -> Option<Result<T, JoinError>> {
        let mut state = self.slot.state.borrow_mut();
        match &*state {
            SlotState::Running => None,
            SlotState::Cancelled => Some(Err(JoinError::Cancelled)),
            SlotState::Taken => Some(Err(JoinError::Taken)),
            SlotState::Finished(_) => match core::mem::replace(&mut *state, SlotState::Taken) {
                SlotState::Finished(output) => Some(Ok(output)),
                _ => None,
            },
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.try_take() {
            Some(result) => Poll::Ready(result),
            None => {
                self.slot.joiner.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match *self.slot.state.borrow() {
            SlotState::Running => "running",
            SlotState::Finished(_) => "finished",
            SlotState::Cancelled => "cancelled",
            SlotState::Taken => "taken",
        };
        f.debug_struct("JoinHandle").field("id", &self.id).field("state", &state).finish()
    }
}
