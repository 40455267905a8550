//! The firmware's application, run on the host: its tasks on embassy's executor, on
//! embassy's mock time, with the firmware's own settings. Every instant below is exact,
//! because time moves only when the simulated board moves it (see `support`).

mod support;

use core::time::Duration;

use embassy_time::Instant;
use futures::future::join3;
use kompoz_embassy::limit::FixedRegistry;
use kompoz_embassy::{AsyncCombinator, CircuitState, EmbassyClock, Sleep, async_rule, limited_on};
use kompoz_embassy_firmware_example::{
    BUS_LIMIT, Config, Report, SimulatedBus, SimulatedSensor, Telemetry, Transition,
    refresh_display, sample_sensor, sensor_breaker,
};
use support::{Board, leak};

/// Boots the firmware's two tasks on `board` with `config` and `sensor`, sharing a bus
/// limited to one transfer at a time, as `main.rs` does.
fn boot_firmware(
    board: &Board,
    config: Config,
    sensor: SimulatedSensor,
) -> (&'static Telemetry, &'static SimulatedBus, &'static FixedRegistry<1>) {
    let telemetry = leak(Telemetry::new());
    let bus = leak(SimulatedBus::new());
    let limits = leak(FixedRegistry::<1>::new());
    let sensor = leak(sensor);
    let breaker = sensor_breaker(&config, telemetry).expect("valid settings");
    // Each task looks the bus's limit up by name: both get the same one.
    board.spawn(async move {
        let bus_limit = limits.get_or_create(BUS_LIMIT, 1).expect("room for it");
        sample_sensor(sensor, bus, bus_limit, &breaker, telemetry, &config).await;
    });
    board.spawn(async move {
        let bus_limit = limits.get_or_create(BUS_LIMIT, 1).expect("the same limit");
        refresh_display(bus, bus_limit, telemetry, &config).await;
    });
    (telemetry, bus, limits)
}

fn at_ms(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

#[test]
fn the_firmware_rides_out_a_sensor_outage_on_embassy_time() {
    let board = Board::boot();
    let (telemetry, bus, limits) = boot_firmware(&board, Config::FIRMWARE, Config::SENSOR);
    board.run_until(embassy_time::Duration::from_millis(3_050));

    // The sensor stops answering reads started from 1 s to 2 s. Samples at 1000, 1100
    // and 1200 ms time out 20 ms later; the third opens the breaker. It lets a probe in
    // with the first sample after 500 ms (1800), which hangs too and opens it again; the
    // probe at 2400 reads in 2 ms and closes it.
    use CircuitState::{Closed, HalfOpen, Open};
    let expected = [
        (1_220, Closed, Open),
        (1_800, Open, HalfOpen),
        (1_820, HalfOpen, Open),
        (2_400, Open, HalfOpen),
        (2_402, HalfOpen, Closed),
    ]
    .map(|(ms, from, to)| Transition { at: at_ms(ms), from, to });
    assert_eq!(telemetry.transitions().as_slice(), expected);

    // 30 samples (100 ms to 3 s): 4 timed out, 10 refused while open (1300..=1700 and
    // 1900..=2300) without touching the bus, 16 read; the last read is the 3 s value.
    let report = telemetry.report();
    assert_eq!(
        report,
        Report {
            readings: 16,
            timeouts: 4,
            failures: 0,
            rejections: 10,
            last_reading: SimulatedSensor::temperature_at(EmbassyClock::from_embassy(at_ms(3_000))),
            // Frames due every 250 ms from 260 ms. The one due at 1010 found the hung
            // read on the bus and waited for its timeout to free it (1020): 15 ms. The
            // hung reads did not hold the bus a moment longer.
            frames: 12,
            slowest_frame: Duration::from_millis(15),
            transitions: 5,
        }
    );

    // The wire: 20 reads (16 answered, 4 hung and cancelled) and 12 frames, never two at
    // once, and nothing left on it.
    assert_eq!((bus.transfers(), bus.most_at_once(), bus.on_the_wire()), (32, 1, 0));
    let bus_limit = limits.get(BUS_LIMIT).expect("registered by the tasks");
    let stats = bus_limit.stats();
    assert_eq!((stats.total_acquired, stats.in_flight, stats.waiting), (32, 0, 0));
}

#[test]
fn two_tasks_hammering_the_bus_never_collide_on_it() {
    let board = Board::boot();
    // A bus 83% busy: a read (2 ms) every 5 ms, a frame (3 ms) every 7 ms, so the two
    // tasks often want it at the same time. No outage.
    let config = Config {
        sample_period: Duration::from_millis(5),
        display_startup: Duration::ZERO,
        refresh_period: Duration::from_millis(7),
        frame_time: Duration::from_millis(3),
        ..Config::FIRMWARE
    };
    let sensor = SimulatedSensor::new(Duration::from_millis(2), Duration::ZERO, Duration::ZERO);
    let (telemetry, bus, _) = boot_firmware(&board, config, sensor);
    board.run_until(embassy_time::Duration::from_secs(10));

    let report = telemetry.report();
    assert_eq!(bus.most_at_once(), 1, "two transfers on the wire at once");
    // Each waits for at most one transfer of the other, so every sample keeps its
    // schedule: all 1999 due by 9995 ms read, none timed out.
    assert_eq!((report.readings, report.timeouts, report.rejections), (1_999, 0, 0));
    assert!(report.frames >= 1_427, "{report:?}");
    // Frames did wait for reads (contention happened), at most one read's time.
    assert!(report.slowest_frame > config.frame_time, "{report:?}");
    assert!(report.slowest_frame <= config.frame_time + Duration::from_millis(2), "{report:?}");
}

#[test]
fn a_limit_shared_by_name_by_two_tasks_never_exceeds_its_size() {
    let board = Board::boot();
    let registry = leak(FixedRegistry::<1>::new());
    let bus = leak(SimulatedBus::new());
    let done = leak([std::sync::atomic::AtomicU32::new(0), std::sync::atomic::AtomicU32::new(0)]);
    for task in 0..2 {
        board.spawn(async move {
            // Each task asks for the pool by name, with its size: both get the same one.
            let pool = registry.get_or_create("pool", 2).expect("same name, same size");
            let hold = async_rule(async |held_ms: &mut u64| {
                let _transfer = bus.transfer();
                EmbassyClock.sleep(Duration::from_millis(*held_ms)).await;
                true
            });
            let limited = limited_on(hold, pool);
            // Three runs at once per task: six contenders for two permits.
            for round in 0..100_u64 {
                let (a, b, c) = join3(
                    limited.run_owned(1 + round % 3),
                    limited.run_owned(1 + (round + task) % 4),
                    limited.run_owned(2),
                )
                .await;
                assert!(a.0 && b.0 && c.0);
                done[task as usize].fetch_add(3, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    board.run_until(embassy_time::Duration::from_secs(2));

    let finished = done.each_ref().map(|d| d.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(finished, [300, 300], "both tasks finished all their runs");
    assert_eq!(bus.most_at_once(), 2, "the limit of 2 was reached and never exceeded");
    assert_eq!((bus.transfers(), bus.on_the_wire()), (600, 0));
    let stats = registry.get("pool").expect("registered").stats();
    assert_eq!((stats.total_acquired, stats.in_flight, stats.available), (600, 0, 2));
}
