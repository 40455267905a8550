//! The shared I²C bus, as the wire sees it: who is on it right now, and the most ever at
//! once. It does not keep anyone off (the kompoz limit does that); it only tells whether
//! the limit held.

use core::sync::atomic::{AtomicU32, Ordering};

/// A bus that two tasks share: the sensor task reads the sensor on it, the display task
/// writes frames on it. Each transfer holds a [`BusTransfer`] for as long as it drives
/// the wire.
///
/// ```
/// use kompoz_embassy_firmware_example::SimulatedBus;
///
/// let bus = SimulatedBus::new();
/// let first = bus.transfer();
/// let second = bus.transfer(); // nothing stopped it: that is the limit's job
/// assert_eq!(bus.most_at_once(), 2);
/// drop((first, second));
/// assert_eq!((bus.on_the_wire(), bus.transfers()), (0, 2));
/// ```
#[derive(Debug, Default)]
pub struct SimulatedBus {
    on_the_wire: AtomicU32,
    most_at_once: AtomicU32,
    transfers: AtomicU32,
}

impl SimulatedBus {
    /// An idle bus.
    pub const fn new() -> Self {
        SimulatedBus {
            on_the_wire: AtomicU32::new(0),
            most_at_once: AtomicU32::new(0),
            transfers: AtomicU32::new(0),
        }
    }

    /// Starts a transfer; it ends when the returned value is dropped, also when the
    /// transfer is cancelled midway (a timeout dropped it).
    pub fn transfer(&self) -> BusTransfer<'_> {
        let now = self.on_the_wire.fetch_add(1, Ordering::Relaxed) + 1;
        self.most_at_once.fetch_max(now, Ordering::Relaxed);
        self.transfers.fetch_add(1, Ordering::Relaxed);
        BusTransfer { bus: self }
    }

    /// Transfers on the wire right now.
    pub fn on_the_wire(&self) -> u32 {
        self.on_the_wire.load(Ordering::Relaxed)
    }

    /// The most transfers that were ever on the wire at once: more than 1 is a collision.
    pub fn most_at_once(&self) -> u32 {
        self.most_at_once.load(Ordering::Relaxed)
    }

    /// Transfers started so far.
    pub fn transfers(&self) -> u32 {
        self.transfers.load(Ordering::Relaxed)
    }
}

/// A transfer on a [`SimulatedBus`], in progress until dropped.
#[derive(Debug)]
#[must_use = "the transfer ends when this is dropped"]
pub struct BusTransfer<'a> {
    bus: &'a SimulatedBus,
}

impl Drop for BusTransfer<'_> {
    fn drop(&mut self) {
        self.bus.on_the_wire.fetch_sub(1, Ordering::Relaxed);
    }
}
