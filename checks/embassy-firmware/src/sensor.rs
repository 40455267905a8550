//! A simulated temperature sensor on the shared bus, with an outage.

use core::time::Duration;

use kompoz_embassy::{Clock, EmbassyClock, Instant, Sleep};

use crate::bus::SimulatedBus;

/// A temperature sensor that answers in `read_time`, except during its outage: a read
/// started in the outage window never answers (the sensor holds the bus, as a wedged I²C
/// device does), until something cancels it.
///
/// Its temperature is a slow ramp, 20.00 °C at boot and one hundredth of a degree more
/// every 100 ms, so a reading tells when it was taken.
#[derive(Debug)]
pub struct SimulatedSensor {
    read_time: Duration,
    outage: (Instant, Instant),
}

impl SimulatedSensor {
    /// A sensor that answers in `read_time` and hangs for reads started from `outage_from`
    /// until `outage_until` (time since boot).
    pub const fn new(read_time: Duration, outage_from: Duration, outage_until: Duration) -> Self {
        SimulatedSensor { read_time, outage: (since_boot(outage_from), since_boot(outage_until)) }
    }

    /// Reads the temperature, in hundredths of a degree Celsius, on `bus`.
    pub async fn read(&self, bus: &SimulatedBus) -> i32 {
        let started = EmbassyClock.now();
        let _transfer = bus.transfer();
        if self.outage.0 <= started && started < self.outage.1 {
            core::future::pending::<()>().await;
        }
        EmbassyClock.sleep(self.read_time).await;
        Self::temperature_at(started)
    }

    /// The temperature at `instant`, in hundredths of a degree Celsius.
    pub fn temperature_at(instant: Instant) -> i32 {
        let tenths_of_seconds = instant.as_nanos() / 100_000_000;
        2_000 + i32::try_from(tenths_of_seconds).unwrap_or(i32::MAX - 2_000)
    }
}

/// The instant `time` after boot (embassy's epoch), saturating.
const fn since_boot(time: Duration) -> Instant {
    let nanos = time.as_nanos();
    Instant::from_nanos(if nanos > u64::MAX as u128 { u64::MAX } else { nanos as u64 })
}
