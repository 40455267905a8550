//! The fleet limit's Lua scripts against a real Redis, on a clock the test drives:
//! grants, the line, expiry at the exact boundary, abandonment, instants near the end of
//! range.

mod support;

use futures::StreamExt;
use kompoz_redis::scripts::{LIMIT_ACQUIRE, LIMIT_MAX_MICROS, LIMIT_RELEASE, LIMIT_RENEW};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Script};
use support::RedisServer;

const LEASE: u64 = 1_000;
const TTL: u64 = 500;

struct Limit {
    connection: MultiplexedConnection,
    keys: Vec<String>,
    capacity: u32,
    channel: String,
}

impl Limit {
    async fn new(server: &RedisServer, name: &str, capacity: u32) -> Limit {
        let client = redis::Client::open(server.url()).unwrap();
        let connection = client.get_multiplexed_async_connection().await.unwrap();
        let keys = ["holders", "line", "waiters", "arrivals", "abandoned"]
            .iter()
            .map(|part| format!("{{t:limit:{name}}}:{part}"))
            .collect();
        Limit { connection, keys, capacity, channel: format!("t:limit:{name}:owed") }
    }

    async fn acquire(&mut self, now: u64, id: &str, mode: &str) -> (i64, i64) {
        let script = Script::new(LIMIT_ACQUIRE);
        let mut call = script.prepare_invoke();
        for key in &self.keys {
            call.key(key);
        }
        call.arg(now).arg(self.capacity).arg(id).arg(LEASE).arg(mode).arg(TTL).arg(&self.channel);
        call.invoke_async(&mut self.connection).await.unwrap()
    }

    async fn release(&mut self, now: u64, id: &str, mode: &str) -> i64 {
        let script = Script::new(LIMIT_RELEASE);
        let mut call = script.prepare_invoke();
        for key in &self.keys {
            call.key(key);
        }
        call.arg(now).arg(self.capacity).arg(mode).arg(LEASE).arg(&self.channel).arg(id);
        call.invoke_async(&mut self.connection).await.unwrap()
    }

    async fn renew(&mut self, now: u64, ids: &[&str]) -> Vec<String> {
        let script = Script::new(LIMIT_RENEW);
        let mut call = script.prepare_invoke();
        for key in &self.keys {
            call.key(key);
        }
        call.arg(now).arg(self.capacity).arg(LEASE).arg(&self.channel);
        for id in ids {
            call.arg(*id);
        }
        call.invoke_async(&mut self.connection).await.unwrap()
    }

    async fn holders(&mut self) -> Vec<(String, u64)> {
        self.connection.zrange_withscores(&self.keys[0], 0, -1).await.unwrap()
    }

    async fn line(&mut self) -> Vec<String> {
        self.connection.zrange(&self.keys[1], 0, -1).await.unwrap()
    }
}

#[tokio::test]
async fn grants_up_to_capacity_then_queues_in_arrival_order() {
    let Some(server) = RedisServer::start() else { return };
    let mut limit = Limit::new(&server, "grants", 2).await;
    assert_eq!(limit.acquire(100, "a", "wait").await, (1, 100 + LEASE as i64));
    assert_eq!(limit.acquire(100, "b", "try").await, (1, 100 + LEASE as i64));
    // Full: try does not queue, wait does, in order of arrival.
    assert_eq!(limit.acquire(101, "c", "try").await, (0, -1));
    assert_eq!(limit.acquire(102, "d", "wait").await, (0, 0));
    assert_eq!(limit.acquire(103, "e", "wait").await, (0, 1));
    assert_eq!(limit.acquire(104, "d", "wait").await, (0, 0), "asking again keeps the place");
    assert_eq!(limit.line().await, ["d", "e"]);
    // Asking again once granted is idempotent.
    assert_eq!(limit.acquire(105, "a", "wait").await, (1, 100 + LEASE as i64));
    // One permit back: it is owed to d, the head; neither e, a newcomer nor try takes it.
    assert_eq!(limit.release(110, "a", "release").await, 1);
    assert_eq!(limit.acquire(111, "e", "wait").await, (0, 1));
    assert_eq!(limit.acquire(111, "f", "try").await, (0, -1));
    assert_eq!(limit.acquire(111, "g", "wait").await, (0, 2));
    assert_eq!(limit.acquire(112, "d", "wait").await, (1, 112 + LEASE as i64));
    assert_eq!(limit.line().await, ["e", "g"]);
    // Releasing what is not held gives nothing back.
    assert_eq!(limit.release(113, "zzz", "release").await, 0);
}

#[tokio::test]
async fn a_release_publishes_the_tickets_owed_a_permit() {
    let Some(server) = RedisServer::start() else { return };
    let mut limit = Limit::new(&server, "publish", 2).await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&limit.channel).await.unwrap();
    limit.acquire(0, "a", "wait").await;
    limit.acquire(0, "b", "wait").await;
    for waiter in ["c", "d", "e"] {
        limit.acquire(1, waiter, "wait").await;
    }
    limit.release(2, "a", "release").await;
    let mut messages = pubsub.on_message();
    let first: String = messages.next().await.unwrap().get_payload().unwrap();
    assert_eq!(first, "c");
    drop(messages);
    limit.release(3, "b", "release").await;
    let second: String = pubsub.on_message().next().await.unwrap().get_payload().unwrap();
    assert_eq!(second, "c d", "c has not taken its permit yet: both are owed one");
}

#[tokio::test]
async fn a_lease_is_alive_until_the_instant_of_its_expiry_exclusive() {
    let Some(server) = RedisServer::start() else { return };
    let mut limit = Limit::new(&server, "expiry", 1).await;
    assert_eq!(limit.acquire(1_000, "a", "wait").await.0, 1);
    let expiry = 1_000 + LEASE;
    // One microsecond before: still held.
    assert_eq!(limit.acquire(expiry - 1, "b", "try").await, (0, -1));
    // At the expiry itself: gone, and the permit is free.
    assert_eq!(limit.acquire(expiry, "b", "try").await, (1, (expiry + LEASE) as i64));
    assert_eq!(limit.holders().await, [("b".to_string(), expiry + LEASE)]);
}

#[tokio::test]
async fn renewal_exactly_at_expiry_registers_the_lease_again_and_says_so() {
    let Some(server) = RedisServer::start() else { return };
    let mut limit = Limit::new(&server, "renewal", 2).await;
    limit.acquire(0, "a", "wait").await;
    limit.acquire(0, "b", "wait").await;
    // a is renewed one microsecond before its expiry: extended, not missing.
    assert!(limit.renew(LEASE - 1, &["a"]).await.is_empty());
    assert_eq!(limit.holders().await[1], ("a".to_string(), 2 * LEASE - 1));
    // b's renewal arrives exactly at its expiry: it had lapsed; it is registered again
    // and reported missing.
    assert_eq!(limit.renew(LEASE, &["b"]).await, ["b"]);
    let holders = limit.holders().await;
    assert!(holders.contains(&("b".to_string(), 2 * LEASE)), "{holders:?}");
}

#[tokio::test]
async fn renewal_registers_held_leases_beyond_capacity() {
    let Some(server) = RedisServer::start() else { return };
    let mut limit = Limit::new(&server, "beyond", 1).await;
    limit.acquire(0, "fleet", "wait").await;
    // Two permits taken locally while Redis was away are registered when it returns:
    // the count is true (3 of 1), and nothing is granted until it falls below capacity.
    assert_eq!(limit.renew(10, &["local-1", "local-2"]).await, ["local-1", "local-2"]);
    assert_eq!(limit.holders().await.len(), 3);
    limit.release(11, "fleet", "release").await;
    limit.release(11, "local-1", "release").await;
    assert_eq!(limit.acquire(12, "new", "try").await, (0, -1));
    limit.release(13, "local-2", "release").await;
    assert_eq!(limit.acquire(14, "new", "try").await.0, 1);
}

#[tokio::test]
async fn an_abandoned_id_is_never_granted_until_forgotten() {
    let Some(server) = RedisServer::start() else { return };
    let mut limit = Limit::new(&server, "abandon", 1).await;
    limit.acquire(0, "holder", "wait").await;
    limit.acquire(1, "w", "wait").await;
    // The waiter's owner gives up: out of line, and remembered as abandoned.
    assert_eq!(limit.release(2, "w", "abandon").await, 0);
    assert!(limit.line().await.is_empty());
    // Its ACQUIRE, still on its way, arrives after: refused, even with permits free.
    limit.release(3, "holder", "release").await;
    assert_eq!(limit.acquire(4, "w", "wait").await, (-1, 0));
    assert!(limit.renew(4, &["w"]).await.is_empty(), "renewal does not register it either");
    assert!(limit.holders().await.is_empty());
    // An ACQUIRE that was granted before its abandonment arrived is taken back.
    limit.acquire(5, "x", "wait").await;
    assert_eq!(limit.release(6, "x", "abandon").await, 1);
    // The record is forgotten after a lease time: the id could be granted again.
    assert_eq!(limit.acquire(2 + LEASE - 1, "w", "try").await, (-1, 0));
    assert_eq!(limit.acquire(2 + LEASE, "w", "try").await.0, 1);
}

#[tokio::test]
async fn a_waiter_that_stops_polling_loses_its_place_at_its_deadline() {
    let Some(server) = RedisServer::start() else { return };
    let mut limit = Limit::new(&server, "stalled", 1).await;
    limit.acquire(0, "holder", "wait").await;
    limit.acquire(10, "slow", "wait").await;
    limit.acquire(20, "next", "wait").await;
    limit.release(30, "holder", "release").await;
    // The permit is owed to "slow"; "next" waits behind it until slow's deadline.
    assert_eq!(limit.acquire(10 + TTL - 1, "next", "wait").await, (0, 1));
    assert_eq!(limit.acquire(10 + TTL, "next", "wait").await.0, 1);
    assert!(limit.line().await.is_empty());
    // "slow" comes back: it joins the end of the line as a newcomer.
    assert_eq!(limit.acquire(10 + TTL + 1, "slow", "wait").await, (0, 0));
}

#[tokio::test]
async fn instants_near_the_end_of_range_saturate_and_keep_their_order() {
    let Some(server) = RedisServer::start() else { return };
    let mut limit = Limit::new(&server, "range", 2).await;
    let late = LIMIT_MAX_MICROS - 10;
    // Expiry would be beyond 2^53 - 1: it saturates there, exactly.
    assert_eq!(limit.acquire(late, "a", "wait").await, (1, LIMIT_MAX_MICROS as i64));
    assert_eq!(limit.acquire(late - 5_000, "b", "wait").await, (1, (late - 4_000) as i64));
    // b expires at its (exact) expiry, and so does c later; a, saturated, is still held
    // one microsecond before the end.
    assert_eq!(limit.acquire(late - 4_000, "c", "try").await.0, 1);
    assert_eq!(limit.acquire(LIMIT_MAX_MICROS - 1, "d", "try").await.0, 1);
    assert_eq!(limit.acquire(LIMIT_MAX_MICROS - 1, "e", "try").await.0, 0);
    let holders = limit.holders().await;
    assert!(holders.contains(&("a".to_string(), LIMIT_MAX_MICROS)), "{holders:?}");
    assert!(limit.renew(LIMIT_MAX_MICROS - 1, &["a"]).await.is_empty());
}

#[tokio::test]
async fn the_redis_clock_is_used_when_no_instant_is_given() {
    let Some(server) = RedisServer::start() else { return };
    let mut limit = Limit::new(&server, "clock", 1).await;
    let (seconds, micros): (u64, u64) =
        redis::cmd("TIME").query_async(&mut limit.connection).await.unwrap();
    let before = seconds * 1_000_000 + micros;
    let script = Script::new(LIMIT_ACQUIRE);
    let mut call = script.prepare_invoke();
    for key in &limit.keys {
        call.key(key);
    }
    call.arg("").arg(1).arg("a").arg(LEASE).arg("wait").arg(TTL).arg(&limit.channel);
    let (granted, expiry): (i64, i64) = call.invoke_async(&mut limit.connection).await.unwrap();
    assert_eq!(granted, 1);
    let expiry = expiry as u64;
    assert!(
        expiry >= before + LEASE && expiry < before + LEASE + 60_000_000,
        "{expiry} vs {before}"
    );
}
