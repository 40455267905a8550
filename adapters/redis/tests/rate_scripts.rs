//! The GCRA script against a real Redis, decision for decision against kompoz's reference
//! model of the arithmetic (`kompoz_model::rate::gcra`), on instants the test chooses: fresh and idle limiters, bursts, the end of
//! the 64-bit range, reservations and charges.

mod support;

use kompoz_model::rate::Decision;
use kompoz_redis::scripts::RATE_GCRA;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Script};
use support::RedisServer;

/// The reference decision: the reference model of kompoz's rate limiters
/// (`kompoz_model::rate`), with nothing queued ahead (the fleet limiter has no line).
fn reference(tat: u64, now: u64, cells: u32, interval: u64, burst: u32) -> Decision {
    kompoz_model::rate::gcra(tat, now, 0, cells, interval, burst)
}

struct Gcra {
    connection: MultiplexedConnection,
    script: Script,
}

impl Gcra {
    async fn new(server: &RedisServer) -> Gcra {
        let client = redis::Client::open(server.url()).unwrap();
        Gcra {
            connection: client.get_multiplexed_async_connection().await.unwrap(),
            script: Script::new(RATE_GCRA),
        }
    }

    async fn set_tat(&mut self, tat: u64) {
        if tat == 0 {
            let _: () = self.connection.del("tat").await.unwrap();
        } else {
            let _: () = self.connection.set("tat", tat.to_string()).await.unwrap();
        }
    }

    async fn tat(&mut self) -> u64 {
        let stored: Option<String> = self.connection.get("tat").await.unwrap();
        stored.map_or(0, |text| text.parse().unwrap())
    }

    /// Runs the script: (cells admitted, TAT or earliest, now).
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &mut self,
        now: Option<u64>,
        interval: u64,
        burst: u32,
        cells: u32,
        mode: &str,
        more: u32,
    ) -> (u32, u64, u64) {
        let tolerance = u128::from(interval) * u128::from(burst);
        let cost = u128::from(interval) * u128::from(cells);
        let mut call = self.script.key("tat");
        call.arg(now.map(|now| now.to_string()).unwrap_or_default())
            .arg(interval.to_string())
            .arg(tolerance.to_string())
            .arg(cost.to_string())
            .arg(mode)
            .arg(cells)
            .arg(more);
        let (admitted, instant, now): (u32, String, String) =
            call.invoke_async(&mut self.connection).await.unwrap();
        (admitted, instant.parse().unwrap(), now.parse().unwrap())
    }
}

const END: u64 = u64::MAX;

/// Instants and intervals that reach the boundaries, and random ones.
fn cases(count: usize) -> Vec<(u64, u64, u64, u32, u32)> {
    let mut rng = fastrand::Rng::with_seed(0x6b6f6d706f7a);
    let intervals = [1, 7, 1_000_000, 333_333_334, 3_600_000_000_000, 1 << 40, (1 << 62) + 12_345];
    let bursts = [1, 2, 3, 10, 1_000, 65_536];
    let instants = |rng: &mut fastrand::Rng| match rng.u8(0..8) {
        0 => 0,
        1 => rng.u64(0..1_000),
        2 => 1_732_800_000_123_456_789 + rng.u64(0..10_000_000_000),
        3 => END - rng.u64(0..1_000),
        4 => END - rng.u64(0..(1 << 50)),
        5 => END,
        6 => rng.u64(..),
        _ => (1 << 53) + rng.u64(0..1_000),
    };
    let mut out = Vec::new();
    while out.len() < count {
        let interval = if rng.bool() {
            intervals[rng.usize(..intervals.len())]
        } else {
            rng.u64(1..(1 << 45))
        };
        let burst = bursts[rng.usize(..bursts.len())];
        if u64::try_from(u128::from(interval) * u128::from(burst)).is_err() {
            continue;
        }
        let now = instants(&mut rng);
        let tat = match rng.u8(0..4) {
            0 => 0,
            1 => now.saturating_add(rng.u64(0..=interval.saturating_mul(u64::from(burst)))),
            2 => now.saturating_sub(rng.u64(0..1_000_000)),
            _ => instants(&mut rng),
        };
        let cells = rng.u32(1..=burst.min(20));
        out.push((tat, now, interval, burst, cells));
    }
    out
}

#[tokio::test]
async fn every_decision_matches_the_reference_arithmetic_to_the_nanosecond() {
    let Some(server) = RedisServer::start() else { return };
    let mut gcra = Gcra::new(&server).await;
    let (mut admitted, mut refused, mut at_the_end) = (0, 0, 0);
    for (tat, now, interval, burst, cells) in cases(1_500) {
        gcra.set_tat(tat).await;
        let (granted, instant, seen) = gcra.run(Some(now), interval, burst, cells, "take", 0).await;
        assert_eq!(seen, now);
        let expected = reference(tat, now, cells, interval, burst);
        let case = format!("tat {tat}, now {now}, T {interval}, burst {burst}, cells {cells}");
        match expected {
            Decision::Conform(next) => {
                admitted += 1;
                assert_eq!((granted, instant), (cells, next), "{case}");
                assert_eq!(gcra.tat().await, next, "{case}: the TAT stored");
            }
            Decision::Wait(earliest) => {
                refused += 1;
                at_the_end += usize::from(earliest == END);
                assert_eq!((granted, instant), (0, earliest), "{case}");
                assert_eq!(gcra.tat().await, tat, "{case}: a refusal changes nothing");
            }
        }
    }
    eprintln!("{admitted} admitted, {refused} refused ({at_the_end} at the end of time)");
    assert!(admitted > 300 && refused > 300 && at_the_end > 20);
}

#[tokio::test]
async fn a_reservation_takes_as_many_more_cells_as_conform() {
    let Some(server) = RedisServer::start() else { return };
    let mut gcra = Gcra::new(&server).await;
    for (tat, now, interval, burst, cells) in cases(500) {
        let more = fastrand::u32(0..=burst.min(40));
        gcra.set_tat(tat).await;
        let (granted, instant, _) = gcra.run(Some(now), interval, burst, cells, "take", more).await;
        let case =
            format!("tat {tat}, now {now}, T {interval}, burst {burst}, cells {cells} + {more}");
        // The most cells, up to cells + more, that the reference admits at once.
        let best = (cells..=cells + more).rev().find_map(|n| {
            match reference(tat, now, n, interval, burst) {
                Decision::Conform(next) => Some((n, next)),
                Decision::Wait(_) => None,
            }
        });
        match best {
            Some((n, next)) => assert_eq!((granted, instant), (n, next), "{case}"),
            None => {
                let Decision::Wait(earliest) = reference(tat, now, cells, interval, burst) else {
                    unreachable!()
                };
                assert_eq!((granted, instant), (0, earliest), "{case}");
            }
        }
    }
}

#[tokio::test]
async fn a_charge_counts_cells_admitted_elsewhere_up_to_a_full_burst() {
    let Some(server) = RedisServer::start() else { return };
    let mut gcra = Gcra::new(&server).await;
    let (interval, burst) = (10_000_000, 10); // 100 per second, burst 10
    let now = 5_000_000_000;
    gcra.set_tat(0).await;
    // Three cells spent locally: the TAT moves three intervals ahead of now.
    assert_eq!(
        gcra.run(Some(now), interval, burst, 3, "charge", 0).await,
        (0, now + 3 * interval, now)
    );
    assert_eq!(gcra.tat().await, now + 3 * interval);
    // Far more than a burst: the debt stops at a full burst (now + tau).
    assert_eq!(gcra.run(Some(now), interval, burst, 10, "charge", 0).await.1, now + 10 * interval);
    // Then nothing conforms until one interval has passed.
    assert_eq!(gcra.run(Some(now), interval, burst, 1, "take", 0).await, (0, now + interval, now));
    assert_eq!(gcra.run(Some(now + interval), interval, burst, 1, "take", 0).await.0, 1);
}

#[tokio::test]
async fn the_redis_clock_is_used_when_no_instant_is_given() {
    let Some(server) = RedisServer::start() else { return };
    let mut gcra = Gcra::new(&server).await;
    gcra.set_tat(0).await;
    let (seconds, micros): (u64, u64) =
        redis::cmd("TIME").query_async(&mut gcra.connection).await.unwrap();
    let before = seconds * 1_000_000_000 + micros * 1_000;
    let (granted, tat, now) = gcra.run(None, 1_000_000, 5, 1, "take", 0).await;
    assert_eq!(granted, 1);
    assert!(now >= before && now < before + 60_000_000_000, "{now} vs {before}");
    assert_eq!(tat, now + 1_000_000);
    // The key expires once its TAT is in the past (plus a second), counted from the
    // script's own reading of the clock: read as an instant (PEXPIRETIME), not as a TTL,
    // whose reading drifts with the time the test takes to ask for it.
    let expires_at: u64 =
        redis::cmd("PEXPIRETIME").arg("tat").query_async(&mut gcra.connection).await.unwrap();
    let after_tat = expires_at.checked_sub(tat / 1_000_000);
    // Milliseconds truncate on both sides; a stall inside Redis between the script's
    // reading of the clock and its SET could add a few more.
    assert!(after_tat.is_some_and(|ms| (1_000..=1_010).contains(&ms)), "{after_tat:?}");
}
