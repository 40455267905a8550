//! The Lua scripts that run the fleet-wide primitives inside Redis, atomically.
//!
//! They are public for review and for tests: each documents its `KEYS` and `ARGV`.
//! Every script takes, as its first argument, the time to act at: an empty string means
//! the Redis server's clock (`TIME`), which is what kompoz always passes, so that the
//! whole fleet reads one clock; tests pass their own instants to check the boundaries
//! (a lease that expires exactly at its renewal, instants near the end of range).

/// The fleet limit's acquisition: see `src/limit/acquire.lua`.
pub const LIMIT_ACQUIRE: &str =
    concat!(include_str!("limit/prelude.lua"), include_str!("limit/acquire.lua"));
/// The fleet limit's release and abandonment: see `src/limit/release.lua`.
pub const LIMIT_RELEASE: &str =
    concat!(include_str!("limit/prelude.lua"), include_str!("limit/release.lua"));
/// The fleet limit's renewal (and re-registration) of a process's leases: see
/// `src/limit/renew.lua`.
pub const LIMIT_RENEW: &str =
    concat!(include_str!("limit/prelude.lua"), include_str!("limit/renew.lua"));

/// The largest instant, in microseconds, that the limit's scripts track exactly (2^53 - 1);
/// later expiries saturate there.
pub const LIMIT_MAX_MICROS: u64 = (1 << 53) - 1;

/// The fleet rate limit's GCRA decision: see `src/rate/gcra.lua`. It reproduces, value
/// for value, the arithmetic of kompoz's local limiter (`kompoz::rate`), in exact integer
/// nanoseconds over the whole 64-bit range.
pub const RATE_GCRA: &str = include_str!("rate/gcra.lua");

/// The shared breaker's failure reports and openings: see `src/breaker/report.lua`.
pub const BREAKER_REPORT: &str =
    concat!(include_str!("breaker/prelude.lua"), include_str!("breaker/report.lua"));
/// The shared breaker's fleet-wide probe leases: see `src/breaker/probe.lua`.
pub const BREAKER_PROBE: &str =
    concat!(include_str!("breaker/prelude.lua"), include_str!("breaker/probe.lua"));
/// The shared breaker's probe outcomes: see `src/breaker/settle.lua`.
pub const BREAKER_SETTLE: &str =
    concat!(include_str!("breaker/prelude.lua"), include_str!("breaker/settle.lua"));
/// The shared breaker's state, read or restored: see `src/breaker/sync.lua`.
pub const BREAKER_SYNC: &str =
    concat!(include_str!("breaker/prelude.lua"), include_str!("breaker/sync.lua"));
