//! Named regression sequences: hand-picked races, and any sequence a fuzzer or proptest
//! ever found, kept as a test of its own.

use kompoz_model::semaphore::{Op, WaitLimit, run_ops};

fn passes(permits: usize, ops: &[Op]) {
    if let Err(divergence) = run_ops(permits, ops) {
        panic!("{divergence}");
    }
}

/// A waiter dropped after the permit was handed to it passes the permit to the next one.
#[test]
fn a_granted_waiter_dropped_before_its_poll_passes_the_permit_on() {
    passes(
        0,
        &[
            Op::Acquire { owned: false },
            Op::Acquire { owned: true },
            Op::AddPermits { n: 1 },
            Op::DropWaiter { waiter: 0 },
            Op::Poll { waiter: 0 },
        ],
    );
}

/// A maximum wait that expires while its waiter is queued gives up the place; the next
/// waiter is served.
#[test]
fn an_expired_wait_leaves_the_queue() {
    passes(
        1,
        &[
            Op::TryAcquire { owned: false },
            Op::AcquireWithMaxWait { limit: WaitLimit::Millis(5) },
            Op::Acquire { owned: false },
            Op::Advance { millis: 5 },
            Op::Poll { waiter: 0 },
            Op::DropPermit { permit: 0 },
            Op::Poll { waiter: 0 },
        ],
    );
}

/// Granted, then the timer fires before the next poll: the permit wins (the acquisition
/// is polled first), and the task was woken twice.
#[test]
fn a_grant_and_an_expiry_at_once_the_grant_wins() {
    passes(
        1,
        &[
            Op::TryAcquire { owned: true },
            Op::AcquireWithMaxWait { limit: WaitLimit::Millis(3) },
            Op::DropPermit { permit: 0 },
            Op::Advance { millis: 3 },
            Op::Poll { waiter: 0 },
        ],
    );
}

/// A clock stepped back after a timer fired does not un-fire it; one registered after
/// the step counts from the new time.
#[test]
fn a_clock_stepped_back_neither_unfires_nor_confuses_timers() {
    passes(
        0,
        &[
            Op::SetClock { millis: 100 },
            Op::AcquireWithMaxWait { limit: WaitLimit::Millis(10) },
            Op::Advance { millis: 10 },
            Op::SetClock { millis: 0 },
            Op::AcquireWithMaxWait { limit: WaitLimit::Millis(10) },
            Op::Advance { millis: 9 },
            Op::Poll { waiter: 1 },
            Op::Poll { waiter: 0 },
            Op::Advance { millis: 1 },
            Op::Poll { waiter: 0 },
        ],
    );
}

/// Close while a grant is outstanding: the granted waiter still gets its permit; the
/// queued one fails; nothing leaks.
#[test]
fn close_keeps_an_outstanding_grant() {
    passes(
        0,
        &[
            Op::Acquire { owned: true },
            Op::AcquireWithMaxWait { limit: WaitLimit::Forever },
            Op::AddPermits { n: 1 },
            Op::Close,
            Op::Poll { waiter: 1 },
            Op::Poll { waiter: 0 },
            Op::TryAcquire { owned: false },
            Op::AddPermits { n: 2 },
            Op::AddTooManyPermits,
        ],
    );
}

/// At the end of time a maximum wait, even "forever", expires at once.
#[test]
fn at_the_end_of_time_every_wait_expires_at_once() {
    passes(
        0,
        &[
            Op::AdvanceToTheEnd,
            Op::AcquireWithMaxWait { limit: WaitLimit::Forever },
            Op::AcquireWithMaxWait { limit: WaitLimit::Millis(0) },
            Op::Acquire { owned: false },
        ],
    );
}
