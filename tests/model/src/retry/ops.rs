//! A fuzzer's view of a retried call: [`Case`] derives [`Arbitrary`], so any bytes decode
//! into one, and [`Case::script`] turns it into a valid [`Script`] (at least one attempt,
//! at most ten, a cap never below the base), the way the breaker's scenario takes its
//! numbers modulo small bounds.

use arbitrary::Arbitrary;

use super::model::{Answer, Attempt, Script, Strategy};

/// How one scripted attempt ends, as the fuzzer picks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub enum Ending {
    /// Succeeds.
    Ok,
    /// Fails; retried after the backoff.
    Transient,
    /// Fails; the predicate gives up.
    Permanent,
    /// Fails, naming its wait: this many milliseconds, taken modulo 1,000.
    RetryAfter(u16),
}

/// One scripted attempt, as the fuzzer picks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Arbitrary)]
pub struct Step {
    /// Milliseconds of manual time it runs, taken modulo 200.
    pub takes: u8,
    /// How it ends.
    pub ending: Ending,
}

/// A whole retried call: the policy's numbers and the attempts' script.
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary)]
pub struct Case {
    /// `max_attempts`, taken modulo 10, plus 1.
    pub max_attempts: u8,
    /// The backoff strategy, taken modulo 4 (none, constant, exponential, decorrelated).
    pub strategy: u8,
    /// `backoff` in milliseconds.
    pub base: u8,
    /// `max_backoff` in milliseconds, raised to `base` if below it.
    pub cap: Option<u16>,
    /// `jitter` in milliseconds, taken modulo 64.
    pub jitter: u8,
    /// `deadline` in milliseconds.
    pub deadline: Option<u16>,
    /// The draws' seed.
    pub seed: u64,
    /// The attempts (the first ten; the last one repeats); none means one that succeeds.
    pub steps: Vec<Step>,
}

impl Case {
    /// The valid script this case stands for.
    pub fn script(&self) -> Script {
        let strategy = match self.strategy % 4 {
            0 => Strategy::None,
            1 => Strategy::Constant,
            2 => Strategy::Exponential,
            _ => Strategy::Decorrelated,
        };
        let base = u16::from(self.base);
        let attempts: Vec<Attempt> = self
            .steps
            .iter()
            .take(10)
            .map(|step| Attempt {
                takes: u16::from(step.takes) % 200,
                answer: match step.ending {
                    Ending::Ok => Answer::Ok,
                    Ending::Transient => Answer::Transient,
                    Ending::Permanent => Answer::Permanent,
                    Ending::RetryAfter(ms) => Answer::RetryAfter(ms % 1_000),
                },
            })
            .collect();
        Script {
            max_attempts: u32::from(self.max_attempts % 10) + 1,
            strategy,
            base,
            cap: self.cap.map(|cap| cap.max(base)),
            jitter: u16::from(self.jitter % 64),
            deadline: self.deadline,
            seed: self.seed,
            attempts: if attempts.is_empty() {
                vec![Attempt { takes: 0, answer: Answer::Ok }]
            } else {
                attempts
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbitrary::Unstructured;

    #[test]
    fn any_bytes_make_a_valid_script() {
        for len in [0usize, 1, 7, 64, 512] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let case = Case::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
            let script = case.script();
            assert!((1..=10).contains(&script.max_attempts));
            assert!((1..=10).contains(&script.attempts.len()));
            assert!(script.cap.is_none_or(|cap| cap >= script.base));
        }
    }
}
