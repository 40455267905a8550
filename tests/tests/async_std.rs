//! The conformance suite on async-std, in real time.

use std::future::Future;

use kompoz_async_std::AsyncStdClock;
use kompoz_conformance::Runtime;

struct AsyncStd;

impl Runtime for AsyncStd {
    type Timer = AsyncStdClock;

    fn timer(&self) -> AsyncStdClock {
        AsyncStdClock
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        async_std::task::block_on(future)
    }

    fn simulated_time(&self) -> bool {
        false
    }
}

kompoz_conformance::conformance_suite!(AsyncStd);
