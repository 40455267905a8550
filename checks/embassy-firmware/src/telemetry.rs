//! What the firmware has seen: counters a debugger (or a host test) can read, and the
//! breaker's transitions with the embassy instant of each.

use core::cell::RefCell;
use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use core::time::Duration;

use critical_section::Mutex;
use kompoz_embassy::{CircuitState, Outcome};

/// Transitions kept; later ones are counted but not kept.
pub const TRANSITIONS_KEPT: usize = 16;

/// A state change of the sensor's breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// When `on_state_change` reported it.
    pub at: embassy_time::Instant,
    /// The state before.
    pub from: CircuitState,
    /// The state after.
    pub to: CircuitState,
}

/// The firmware's counters. All of it lives in a `static` (no allocation) and is updated
/// by the tasks and the breaker's callback.
///
/// ```
/// use kompoz_embassy::{CircuitState, Outcome};
/// use kompoz_embassy_firmware_example::Telemetry;
///
/// static TELEMETRY: Telemetry = Telemetry::new();
/// TELEMETRY.sample(Outcome::Passed, 2_150);
/// TELEMETRY.sample(Outcome::TimedOut, 0);
/// let report = TELEMETRY.report();
/// assert_eq!((report.readings, report.timeouts, report.last_reading), (1, 1, 2_150));
/// ```
#[derive(Debug)]
pub struct Telemetry {
    readings: AtomicU32,
    timeouts: AtomicU32,
    failures: AtomicU32,
    rejections: AtomicU32,
    last_reading: AtomicI32,
    frames: AtomicU32,
    slowest_frame_micros: AtomicU32,
    transitions: Mutex<RefCell<heapless::Vec<Transition, TRANSITIONS_KEPT>>>,
    transitions_seen: AtomicU32,
}

/// A snapshot of [`Telemetry`]'s counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Sensor reads that passed.
    pub readings: u32,
    /// Sensor reads cancelled by their time limit (waiting for the bus included).
    pub timeouts: u32,
    /// Sensor reads that ran and failed (the simulated sensor never does).
    pub failures: u32,
    /// Sensor reads refused by the open breaker, without touching the bus.
    pub rejections: u32,
    /// The last temperature read, in hundredths of a degree Celsius.
    pub last_reading: i32,
    /// Display frames written.
    pub frames: u32,
    /// The longest a frame took from its due time to written, bus wait included.
    pub slowest_frame: Duration,
    /// Breaker transitions reported.
    pub transitions: u32,
}

impl Telemetry {
    /// All zero.
    pub const fn new() -> Self {
        Telemetry {
            readings: AtomicU32::new(0),
            timeouts: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            rejections: AtomicU32::new(0),
            last_reading: AtomicI32::new(0),
            frames: AtomicU32::new(0),
            slowest_frame_micros: AtomicU32::new(0),
            transitions: Mutex::new(RefCell::new(heapless::Vec::new())),
            transitions_seen: AtomicU32::new(0),
        }
    }

    /// Records how one sensor sample ended, and its reading if it passed.
    pub fn sample(&self, outcome: Outcome, reading: i32) {
        let counter = match outcome {
            Outcome::Passed => {
                self.last_reading.store(reading, Ordering::Relaxed);
                &self.readings
            }
            Outcome::TimedOut => &self.timeouts,
            Outcome::Failed => &self.failures,
            Outcome::Rejected(_) => &self.rejections,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a frame written `took` after it was due.
    pub fn frame(&self, took: Duration) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.slowest_frame_micros.fetch_max(micros, Ordering::Relaxed);
    }

    /// Records a breaker transition at embassy's current instant (the breaker's
    /// `on_state_change` callback).
    pub fn transition(&self, from: CircuitState, to: CircuitState) {
        let at = embassy_time::Instant::now();
        self.transitions_seen.fetch_add(1, Ordering::Relaxed);
        critical_section::with(|cs| {
            // Full: keep the first ones, which tell how the trouble started.
            let _ = self.transitions.borrow_ref_mut(cs).push(Transition { at, from, to });
        });
    }

    /// The transitions kept, oldest first.
    pub fn transitions(&self) -> heapless::Vec<Transition, TRANSITIONS_KEPT> {
        critical_section::with(|cs| self.transitions.borrow_ref(cs).clone())
    }

    /// The counters now.
    pub fn report(&self) -> Report {
        let load = |counter: &AtomicU32| counter.load(Ordering::Relaxed);
        Report {
            readings: load(&self.readings),
            timeouts: load(&self.timeouts),
            failures: load(&self.failures),
            rejections: load(&self.rejections),
            last_reading: self.last_reading.load(Ordering::Relaxed),
            frames: load(&self.frames),
            slowest_frame: Duration::from_micros(u64::from(load(&self.slowest_frame_micros))),
            transitions: load(&self.transitions_seen),
        }
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}
