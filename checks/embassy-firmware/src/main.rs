//! The board around the application: a generic Cortex-M4F (`thumbv7em-none-eabihf`) with
//! nothing but its core peripherals, so it builds without a HAL.
//!
//! * **Time**: embassy's time driver on SysTick, interrupting at 1 kHz (embassy's
//!   `tick-hz-1_000`), with embassy's timer queue. A board with a HAL uses the HAL's
//!   driver instead (a free-running hardware timer with a compare alarm) and drops this.
//! * **Executor**: embassy's thread-mode executor (`#[embassy_executor::main]`).
//! * **Heap**: kompoz's core links `alloc`, so the firmware needs a global allocator even
//!   if nothing allocated; here 1 KiB serves the one allocation kompoz makes, the
//!   breaker's boxed `on_state_change` callback.
//!
//! ```text
//! cargo build -p kompoz-embassy-firmware-example --features firmware --target thumbv7em-none-eabihf
//! ```
#![no_std]
#![no_main]

#[cfg(not(all(target_arch = "arm", target_os = "none")))]
compile_error!(
    "the firmware is for the board: build it with `--target thumbv7em-none-eabihf` \
     (the application's tests run on the host: `cargo test -p kompoz-embassy-firmware-example`)"
);

use embassy_executor::Spawner;
use embedded_alloc::LlffHeap;
use kompoz_embassy::EmbassyClock;
use kompoz_embassy::breaker::CircuitBreaker;
use kompoz_embassy::limit::{FixedRegistry, Semaphore};
use kompoz_embassy_firmware_example::{
    BUS_LIMIT, Config, SimulatedBus, SimulatedSensor, Telemetry, refresh_display, sample_sensor,
    sensor_breaker,
};

/// The board's limits, shared by name; no allocation.
static LIMITS: FixedRegistry<1> = FixedRegistry::new();
static BUS: SimulatedBus = SimulatedBus::new();
static SENSOR: SimulatedSensor = Config::SENSOR;
static CONFIG: Config = Config::FIRMWARE;
/// What the firmware saw; read it with a debugger.
static TELEMETRY: Telemetry = Telemetry::new();

#[global_allocator]
static HEAP: LlffHeap = LlffHeap::empty();
const HEAP_BYTES: usize = 1024;

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    // SAFETY: runs once, first thing, before anything allocates.
    unsafe {
        embedded_alloc::init!(HEAP, HEAP_BYTES);
    }
    let peripherals = cortex_m::Peripherals::take().expect("the core peripherals, taken once");
    systick::start(peripherals.SYST);

    // Each task could look the bus up by name itself; main does it once for both.
    let bus_limit = LIMITS.get_or_create(BUS_LIMIT, 1).expect("one limit in a registry of one");
    let breaker = sensor_breaker(&CONFIG, &TELEMETRY).expect("the firmware's breaker settings");
    spawner.spawn(sensor_task(breaker, bus_limit).expect("the sensor task, spawned once"));
    spawner.spawn(display_task(bus_limit).expect("the display task, spawned once"));
}

#[embassy_executor::task]
async fn sensor_task(breaker: CircuitBreaker<EmbassyClock>, bus_limit: &'static Semaphore) {
    sample_sensor(&SENSOR, &BUS, bus_limit, &breaker, &TELEMETRY, &CONFIG).await
}

#[embassy_executor::task]
async fn display_task(bus_limit: &'static Semaphore) {
    refresh_display(&BUS, bus_limit, &TELEMETRY, &CONFIG).await
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // Stop here for the debugger; a product would log and reset.
    loop {
        cortex_m::asm::bkpt();
    }
}

/// embassy's time driver on SysTick: a 64-bit tick count (it never wraps) advanced by the
/// SysTick interrupt at 1 kHz, and embassy's timer queue, served on every tick.
mod systick {
    use core::cell::{Cell, RefCell};
    use core::task::Waker;

    use cortex_m::peripheral::SYST;
    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m_rt::exception;
    use critical_section::Mutex;
    use embassy_time_driver::Driver;
    use embassy_time_queue_utils::Queue;

    /// The core clock at reset: 16 MHz, as on an STM32F4 running from its internal
    /// oscillator. Set your board's.
    const CORE_HZ: u32 = 16_000_000;
    const _: () = assert!(embassy_time_driver::TICK_HZ == 1_000, "SysTick runs at 1 kHz");

    struct SysTickDriver {
        ticks: Mutex<Cell<u64>>,
        queue: Mutex<RefCell<Queue>>,
    }

    embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
        ticks: Mutex::new(Cell::new(0)),
        queue: Mutex::new(RefCell::new(Queue::new())),
    });

    impl Driver for SysTickDriver {
        fn now(&self) -> u64 {
            critical_section::with(|cs| self.ticks.borrow(cs).get())
        }

        fn schedule_wake(&self, at: u64, waker: &Waker) {
            critical_section::with(|cs| {
                let mut queue = self.queue.borrow_ref_mut(cs);
                queue.schedule_wake(at, waker);
                // A deadline already due is served now, not a tick late.
                queue.next_expiration(self.ticks.borrow(cs).get());
            });
        }
    }

    /// Starts the 1 kHz tick.
    pub(crate) fn start(mut syst: SYST) {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(CORE_HZ / 1_000 - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
    }

    #[exception]
    fn SysTick() {
        critical_section::with(|cs| {
            let ticks = DRIVER.ticks.borrow(cs);
            ticks.set(ticks.get() + 1);
            // Wakes the tasks whose timers are due; embassy's wakers only queue the task
            // and signal the executor, so this is short.
            DRIVER.queue.borrow_ref_mut(cs).next_expiration(ticks.get());
        });
    }
}
