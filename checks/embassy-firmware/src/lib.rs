//! An example firmware: kompoz on embassy, for a Cortex-M4F (`thumbv7em-none-eabihf`).
//!
//! Two embassy tasks share one I²C bus:
//!
//! * the **sensor task** reads a temperature sensor every 100 ms through
//!   `circuit_breaker(with_timeout(limited_on(read, bus), 20 ms))`: a sensor that stops
//!   answering costs 20 ms per read instead of a hung task and a hung bus, and after three
//!   timeouts in a row the breaker stops trying for half a second at a time;
//! * the **display task** writes a frame every 250 ms through `limited_on(write, bus)`.
//!
//! The bus limit is kompoz's limit shared by name (`"i2c"`, one transfer at a time), from
//! a `static` [`FixedRegistry`](kompoz_embassy::limit::FixedRegistry): no allocation, and
//! each task may look it up by name. Time is embassy's, through
//! [`EmbassyClock`].
//!
//! This library is the application and builds for the host too, where the tests run its
//! tasks on embassy's executor and embassy's mock time. `src/main.rs` is the board
//! around it: a SysTick time driver, a small heap, the entry point.
//!
//! ```
//! use kompoz_embassy_firmware_example::{Config, Telemetry, sensor_breaker};
//! use kompoz_embassy::CircuitState;
//!
//! static TELEMETRY: Telemetry = Telemetry::new();
//! let breaker = sensor_breaker(&Config::FIRMWARE, &TELEMETRY)?;
//! assert_eq!(breaker.state(), CircuitState::Closed);
//! # Ok::<(), kompoz_embassy::breaker::BreakerError>(())
//! ```
#![no_std]

use core::time::Duration;

use kompoz_embassy::breaker::{BreakerBuilder, BreakerError, CircuitBreaker};
use kompoz_embassy::limit::Semaphore;
use kompoz_embassy::{
    AsyncCombinator, Clock, EmbassyClock, Sleep, async_rule, circuit_breaker, limited_on,
    with_timeout,
};

mod bus;
mod sensor;
mod telemetry;

pub use bus::{BusTransfer, SimulatedBus};
pub use sensor::SimulatedSensor;
pub use telemetry::{Report, TRANSITIONS_KEPT, Telemetry, Transition};

/// The name of the bus's limit in the firmware's registry.
pub const BUS_LIMIT: &str = "i2c";

/// How the firmware behaves: its periods, limits and breaker settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// How often the sensor task samples.
    pub sample_period: Duration,
    /// The time limit of one sample, waiting for the bus included.
    pub read_timeout: Duration,
    /// Timeouts in a row that open the sensor's breaker.
    pub failure_threshold: u32,
    /// How long the open breaker refuses reads before it lets one probe through.
    pub recovery_timeout: Duration,
    /// How long the display takes to power up before its first frame.
    pub display_startup: Duration,
    /// How often the display task writes a frame.
    pub refresh_period: Duration,
    /// How long writing one frame holds the bus.
    pub frame_time: Duration,
}

impl Config {
    /// The firmware's settings.
    pub const FIRMWARE: Config = Config {
        sample_period: Duration::from_millis(100),
        read_timeout: Duration::from_millis(20),
        failure_threshold: 3,
        recovery_timeout: Duration::from_millis(500),
        display_startup: Duration::from_millis(10),
        refresh_period: Duration::from_millis(250),
        frame_time: Duration::from_millis(5),
    };

    /// The firmware's sensor: answers in 2 ms, and stops answering from 1 s to 2 s after
    /// boot.
    pub const SENSOR: SimulatedSensor = SimulatedSensor::new(
        Duration::from_millis(2),
        Duration::from_secs(1),
        Duration::from_secs(2),
    );
}

/// The sensor's breaker, on embassy time, reporting its transitions to `telemetry`.
/// Fails (naming the field) if `config` has a zero `failure_threshold`.
pub fn sensor_breaker(
    config: &Config,
    telemetry: &'static Telemetry,
) -> Result<CircuitBreaker<EmbassyClock>, BreakerError> {
    BreakerBuilder::new()
        .failure_threshold(config.failure_threshold)
        .recovery_timeout(config.recovery_timeout)
        .on_state_change(|from, to, _stats| telemetry.transition(from, to))
        .build_with(EmbassyClock)
}

/// The sensor task: every `sample_period`, reads `sensor` on `bus` through
/// `circuit_breaker(with_timeout(limited_on(read, bus_limit), read_timeout), breaker)`,
/// and records each outcome. Never returns.
///
/// Samples are due on a fixed schedule (like embassy's `Ticker`), counted from the
/// task's start.
pub async fn sample_sensor(
    sensor: &SimulatedSensor,
    bus: &SimulatedBus,
    bus_limit: &Semaphore,
    breaker: &CircuitBreaker<EmbassyClock>,
    telemetry: &Telemetry,
    config: &Config,
) {
    let read = async_rule(async |reading: &mut i32| {
        *reading = sensor.read(bus).await;
        true
    });
    let guarded =
        circuit_breaker(with_timeout(limited_on(read, bus_limit), config.read_timeout), breaker);
    let mut due = EmbassyClock.now();
    loop {
        due += config.sample_period;
        EmbassyClock.sleep_until(due).await;
        let mut reading = 0;
        let outcome = guarded.run_detailed(&mut reading).await;
        telemetry.sample(outcome, reading);
    }
}

/// The display task: after `display_startup`, every `refresh_period` writes a frame on
/// `bus` through `limited_on(write, bus_limit)`, and records how long it took from its
/// due time. Never returns.
pub async fn refresh_display(
    bus: &SimulatedBus,
    bus_limit: &Semaphore,
    telemetry: &Telemetry,
    config: &Config,
) {
    let write = async_rule(async |_frame: &mut u32| {
        let _transfer = bus.transfer();
        EmbassyClock.sleep(config.frame_time).await;
        true
    });
    let limited = limited_on(write, bus_limit);
    let mut due = EmbassyClock.now() + config.display_startup;
    let mut frame = 0;
    loop {
        due += config.refresh_period;
        EmbassyClock.sleep_until(due).await;
        frame += 1;
        limited.run(&mut frame).await;
        telemetry.frame(EmbassyClock.now() - due);
    }
}
