//! [`FleetPermit`]: a permit of a fleet-wide limit, given back when dropped.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use kompoz::limit::OwnedPermit;
use tokio::sync::{mpsc, oneshot};

use super::keeper::{LeaseState, Order};

/// How a [`FleetPermit`] was admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Admission {
    /// Granted by Redis: counted fleet-wide.
    Fleet,
    /// Redis was unreachable ([`Degradation::Local`](crate::Degradation::Local)): admitted
    /// by the local semaphore, and registered with Redis as soon as it is reachable again.
    Local,
    /// Redis was unreachable ([`Degradation::FailOpen`](crate::Degradation::FailOpen)):
    /// admitted without any limit.
    Open,
}

/// A permit of a [`FleetLimit`](super::FleetLimit). Dropping it gives it back: the local
/// permit at once, the lease in Redis by the limit's keeper task a moment later (one
/// round trip). It may be dropped anywhere, in any thread, inside or outside the runtime.
///
/// ```no_run
/// # use kompoz_redis::Fleet;
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let fleet = Fleet::builder("redis://127.0.0.1:6379").build()?;
/// let limit = fleet.limit("reports", 2).build()?;
/// let permit = limit.acquire().await?;
/// assert!(!permit.lapsed());
/// permit.release().await; // or just drop it
/// # Ok(()) }
/// ```
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct FleetPermit {
    admission: Admission,
    /// Dropped first: the lease goes back to the keeper before the local permit frees.
    lease: Option<Lease>,
    _local: Option<OwnedPermit>,
}

/// A lease held by this process; dropping it orders its release.
pub(crate) struct Lease {
    pub(crate) id: String,
    pub(crate) state: Arc<LeaseState>,
    pub(crate) keeper: mpsc::UnboundedSender<Order>,
}

impl Lease {
    /// Registers the lease `id` with the keeper.
    pub(crate) fn hold(keeper: &mpsc::UnboundedSender<Order>, id: String, in_redis: bool) -> Lease {
        let state = Arc::new(LeaseState::default());
        let _ = keeper.send(Order::Hold { id: id.clone(), state: Arc::clone(&state), in_redis });
        Lease { id, state, keeper: keeper.clone() }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let id = std::mem::take(&mut self.id);
        if id.is_empty() {
            return; // released explicitly
        }
        // The keeper is gone only if the runtime is: Redis expires the lease by itself.
        let _ = self.keeper.send(Order::Release { id, done: None });
    }
}

impl FleetPermit {
    pub(crate) fn new(
        admission: Admission,
        lease: Option<Lease>,
        local: Option<OwnedPermit>,
    ) -> Self {
        FleetPermit { admission, lease, _local: local }
    }

    /// How this permit was admitted.
    pub fn admission(&self) -> Admission {
        self.admission
    }

    /// The lease's id in Redis (`None` for a fail-open admission).
    pub fn lease_id(&self) -> Option<&str> {
        self.lease.as_ref().map(|lease| lease.id.as_str())
    }

    /// Whether Redis lost this permit's lease while it was held: no renewal got through
    /// for a whole lease time (Redis unreachable, or this process stalled), or Redis
    /// restarted and forgot it. The lease is registered again, but meanwhile the fleet
    /// may have admitted another holder: a caller that must never overlap should stop.
    pub fn lapsed(&self) -> bool {
        self.lease.as_ref().is_some_and(|lease| lease.state.lapsed.load(Ordering::Acquire))
    }

    /// Gives the permit back and waits until Redis has been asked to take the lease
    /// back (dropping the permit does the same without waiting).
    pub async fn release(mut self) {
        let Some(mut lease) = self.lease.take() else { return };
        let (done, told) = oneshot::channel();
        let id = std::mem::take(&mut lease.id);
        // With its id taken, the lease's own drop sends nothing.
        let sent = lease.keeper.send(Order::Release { id, done: Some(done) });
        drop(lease);
        if sent.is_ok() {
            let _ = told.await;
        }
    }
}

impl fmt::Debug for FleetPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetPermit")
            .field("admission", &self.admission)
            .field("lease_id", &self.lease_id())
            .field("lapsed", &self.lapsed())
            .finish()
    }
}
