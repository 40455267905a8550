//! Runs a [`Script`] through the real retry on a `ManualClock` and compares the run with
//! the [`model`](super::model).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use kompoz::pipeline::Pipeline;
use kompoz::retry::{Decision, RetryPolicy};
use kompoz::{Clock, Error, Instant, ManualClock, Sleep};

use super::model::{Answer, Run, Script, Strategy, expected, ms};
use crate::{Divergence, check};

/// Which face of retry runs the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Face {
    /// `RetryPolicy::retry` with `when` and `on_retry`.
    Plain,
    /// A pipeline's retry layer with `retry_if` and `on_retry`.
    Pipeline,
}

fn policy(script: &Script) -> RetryPolicy {
    let mut builder = RetryPolicy::builder()
        .max_attempts(script.max_attempts)
        .backoff(ms(script.base))
        .jitter(ms(script.jitter))
        .seed(script.seed);
    builder = match script.strategy {
        Strategy::None => RetryPolicy::builder()
            .max_attempts(script.max_attempts)
            .jitter(ms(script.jitter))
            .seed(script.seed),
        Strategy::Constant => builder,
        Strategy::Exponential => builder.exponential(true),
        Strategy::Decorrelated => builder.decorrelated_jitter(true),
    };
    if let Some(cap) = script.cap {
        builder = builder.max_backoff(ms(cap));
    }
    if let Some(deadline) = script.deadline {
        builder = builder.deadline(ms(deadline));
    }
    builder.build().expect("the strategy makes valid scripts")
}

fn decide(answer: &Answer) -> Decision {
    match answer {
        Answer::Ok | Answer::Transient => Decision::Retry,
        Answer::Permanent => Decision::GiveUp,
        Answer::RetryAfter(n) => Decision::RetryAfter(ms(*n)),
    }
}

/// Runs `future`, moving the clock to the next timer whenever it waits.
fn drive<F: Future>(clock: &ManualClock, future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let next = clock.next_deadline().expect("the retry waits with no timer");
        clock.advance(next - clock.now());
    }
}

/// Runs `script` through `face` and compares the run with the model's.
pub fn run(script: &Script, face: Face) -> Result<(), Divergence> {
    let clock = ManualClock::new();
    let nanos = |c: &ManualClock| (c.now() - Instant::ZERO).as_nanos() as u64;
    let starts = RefCell::new(Vec::new());
    let heard = RefCell::new(Vec::new());
    let count = Cell::new(0usize);
    let make = || {
        let i = count.get();
        count.set(i + 1);
        starts.borrow_mut().push(nanos(&clock));
        let attempt = script.attempt(i);
        let timer = clock.clone();
        async move {
            timer.sleep(Duration::from_millis(u64::from(attempt.takes))).await;
            match attempt.answer {
                Answer::Ok => Ok(i as u32 + 1),
                answer => Err((i as u32 + 1, answer)),
            }
        }
    };
    let policy = policy(script);
    let result = match face {
        Face::Plain => drive(
            &clock,
            policy
                .retry(&clock, make)
                .when(|(_, answer)| decide(answer))
                .on_retry(|n, _, delay| heard.borrow_mut().push((n, delay.as_nanos() as u64))),
        )
        .map_err(|(n, _)| n),
        Face::Pipeline => {
            let pipeline = Pipeline::<u32, (u32, Answer), _>::with_timer(clock.clone())
                .retry(policy)
                .retry_if(|error| match error {
                    Error::Inner((_, answer)) => decide(answer),
                    _ => Decision::GiveUp,
                })
                .on_retry(|n, _, delay| heard.borrow_mut().push((n, delay.as_nanos() as u64)));
            drive(&clock, pipeline.call(make)).map_err(|e| match e {
                Error::Inner((n, _)) => n,
                other => panic!("only the call's own errors are scripted: {other:?}"),
            })
        }
    };
    let real = Run { starts: starts.take(), heard: heard.take(), result, ended: nanos(&clock) };
    let model = expected(script);
    check(None, &(face, script), "attempt start times", &real.starts, &model.starts)?;
    check(None, &(face, script), "on_retry (attempt, delay)", &real.heard, &model.heard)?;
    check(None, &(face, script), "result", real.result, model.result)?;
    check(None, &(face, script), "end time", real.ended, model.ended)?;
    check(None, &(face, script), "timers left", clock.pending_timers(), 0)
}
