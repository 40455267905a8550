//! The conformance suite on tokio, with tokio's paused clock driving the timers.

use std::future::Future;

use kompoz_conformance::Runtime;
use kompoz_tokio::TokioClock;

/// A current-thread tokio runtime whose clock starts paused: when every task waits, tokio
/// jumps to the next timer, so scenarios are deterministic and instant.
struct Tokio;

impl Runtime for Tokio {
    type Timer = TokioClock;

    fn timer(&self) -> TokioClock {
        TokioClock
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a tokio runtime")
            .block_on(future)
    }

    fn simulated_time(&self) -> bool {
        true
    }
}

kompoz_conformance::conformance_suite!(Tokio);
