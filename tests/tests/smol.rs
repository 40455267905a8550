//! The conformance suite on smol, in real time.

use std::future::Future;

use kompoz_conformance::Runtime;
use kompoz_smol::SmolClock;

struct Smol;

impl Runtime for Smol {
    type Timer = SmolClock;

    fn timer(&self) -> SmolClock {
        SmolClock
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        smol::block_on(future)
    }

    fn simulated_time(&self) -> bool {
        false
    }
}

kompoz_conformance::conformance_suite!(Smol);
