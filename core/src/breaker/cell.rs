//! The atomic cell of the [`Machine`]: one packed 64-bit word, applied by
//! compare-exchange, and beside it the *epoch*, which carries the generation's high bits.
//!
//! # Why two words, and why that is enough
//!
//! The packed word has room for only the low [`GENERATION_BITS`] bits of the generation,
//! and a call may be held across any number of transitions (a guard kept for an hour while
//! someone loops `force_open`/`reset`). Tickets therefore carry the full 64-bit
//! generation, and the epoch word holds a recent full generation: after a transition is
//! committed to the word, its thread raises the epoch to the new generation
//! (`fetch_max`, `Release`). The epoch lags the word only by transitions whose threads
//! are between their compare-exchange and that `fetch_max`, far fewer than 2^24.
//!
//! * **Admission** (the closed fast path) loads the epoch `E`, then the word `W`
//!   (`Acquire` both). The generation of `W` is at least `E` (the transition that made
//!   `E` was committed before it was published) and less than `E + 2^24`, so it is the
//!   first value at or above `E` with `W`'s low bits. Two loads of one cache line, no
//!   read-modify-write.
//! * **Settling** on the slow path loads `W`, then `E`, and takes the same value, and a
//!   ticket counts only if its generation equals it. If the ticket is late by any
//!   multiple of 2^24 the values differ (the epoch has moved past the ticket); if
//!   transitions happened between the two loads, the computed value is not `W`'s but the
//!   compare-exchange on `W` fails (or the outcome is judged late, which it is by then).
//! * The closed-success fast path compares the word alone with the clean closed word of
//!   the ticket's low bits. That is sound whatever the generation's high bits: a success
//!   of an ordinary call in a closed circuit with no failure streak changes nothing,
//!   current or late.
//!
//! What is left is the theoretical case of a thread stopped between two adjacent atomic
//! operations while 2^24 transitions bring the word back to the very value it read (in
//! this case the value computed is too old, so an outcome is judged late, never the
//! reverse, except across the final compare-exchange).

use super::CircuitState;
use super::machine::{Machine, Ticket};
use crate::sync::{AtomicU64, Ordering};

/// Bits of the generation kept in the packed word (the epoch lags the word by far fewer
/// transitions than 2^21: only by those whose threads are between their compare-exchange
/// and their `fetch_max`).
pub(crate) const GENERATION_BITS: u32 = 21;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

// The packed word, from the low bits:
// | state 2 | forced 1 | ready 1 | external 1 | timed 1 | generation 21 | openings 5 |
// | since_forget 6 | probes 13 | second 13 |
// where `second` is the failure streak while closed and the probe successes while
// half-open.
const STATE_MASK: u64 = 0b11;
pub(crate) const FORCED: u64 = 1 << 2;
/// Open only: the break of this open period has been timed (its deadline published).
pub(crate) const READY: u64 = 1 << 3;
/// The trip rule is a policy's: no success is ever a no-op, so the fast path always misses.
pub(crate) const EXTERNAL: u64 = 1 << 4;
/// Slow calls count: admission reads the (coarse) clock to time the call.
pub(crate) const TIMED: u64 = 1 << 5;
/// The flags fixed when the breaker is built, kept by every commit.
const FIXED: u64 = EXTERNAL | TIMED;
const GENERATION_SHIFT: u32 = 6;
const OPENINGS_SHIFT: u32 = GENERATION_SHIFT + GENERATION_BITS;
const FORGET_SHIFT: u32 = OPENINGS_SHIFT + 5;
const PROBES_SHIFT: u32 = FORGET_SHIFT + 6;
const SECOND_SHIFT: u32 = PROBES_SHIFT + 13;
const OPENINGS_MASK: u64 = (1 << 5) - 1;
const FORGET_MASK: u64 = (1 << 6) - 1;
const PROBES_MASK: u64 = (1 << 13) - 1;
const SECOND_MASK: u64 = (1 << 13) - 1;
const _: () = assert!(SECOND_SHIFT + 13 == 64, "the word is full, not overfull");
pub(crate) const CLOSED_BITS: u64 = 0;
pub(crate) const OPEN_BITS: u64 = 1;
const HALF_OPEN_BITS: u64 = 2;

/// The state bits of a packed word.
#[inline]
pub(crate) fn state_bits(word: u64) -> u64 {
    word & STATE_MASK
}

/// Whether `word` is an open circuit, not forced, whose break has been timed: the one
/// open word that the fast rejection handles (one mask and one compare).
#[inline(always)]
pub(crate) fn open_and_timed(word: u64) -> bool {
    word & (STATE_MASK | FORCED | READY) == OPEN_BITS | READY
}

/// The ticket of an ordinary call admitted under `word`, a closed word loaded after
/// `epoch` (see the module docs).
#[inline(always)]
pub(crate) fn closed_ticket(word: u64, epoch: u64) -> Ticket {
    Ticket::ordinary(generation(word, epoch))
}

/// Packs `m`, with `flags` (the fixed flags, and `READY` if asked) from the caller.
fn pack(m: Machine, flags: u64) -> u64 {
    let (state, second) = match m.state {
        CircuitState::Closed => (CLOSED_BITS, m.failures),
        CircuitState::Open => (OPEN_BITS, 0),
        CircuitState::HalfOpen => (HALF_OPEN_BITS, m.probe_successes),
    };
    state
        | flags
        | if m.forced { FORCED } else { 0 }
        | (m.generation & GENERATION_MASK) << GENERATION_SHIFT
        | (u64::from(m.openings) & OPENINGS_MASK) << OPENINGS_SHIFT
        | (u64::from(m.since_forget) & FORGET_MASK) << FORGET_SHIFT
        | (u64::from(m.probes) & PROBES_MASK) << PROBES_SHIFT
        | (u64::from(second) & SECOND_MASK) << SECOND_SHIFT
}

/// The full generation of a word whose generation is at or above `epoch` and less than
/// `epoch + 2^24`.
#[inline]
fn generation(word: u64, epoch: u64) -> u64 {
    let low = (word >> GENERATION_SHIFT) & GENERATION_MASK;
    epoch.wrapping_add(low.wrapping_sub(epoch) & GENERATION_MASK)
}

/// Unpacks `word`, its generation completed with `epoch` (see the module docs).
pub(crate) fn unpack(word: u64, epoch: u64) -> Machine {
    let second = ((word >> SECOND_SHIFT) & SECOND_MASK) as u32;
    let machine = Machine {
        generation: generation(word, epoch),
        forced: word & FORCED != 0,
        openings: ((word >> OPENINGS_SHIFT) & OPENINGS_MASK) as u32,
        since_forget: ((word >> FORGET_SHIFT) & FORGET_MASK) as u32,
        probes: ((word >> PROBES_SHIFT) & PROBES_MASK) as u32,
        ..Machine::INITIAL
    };
    match word & STATE_MASK {
        CLOSED_BITS => Machine { failures: second, ..machine },
        HALF_OPEN_BITS => {
            Machine { state: CircuitState::HalfOpen, probe_successes: second, ..machine }
        }
        _ => Machine { state: CircuitState::Open, ..machine },
    }
}

/// The word of a clean closed state (no streak, no probe in flight, not forced, the
/// default rule, calls not timed) in the generation with these low bits.
#[inline]
pub(crate) fn clean_closed(generation: u64) -> u64 {
    (generation & GENERATION_MASK) << GENERATION_SHIFT
}

/// The packed word and the epoch.
pub(crate) struct StateCell {
    word: AtomicU64,
    epoch: AtomicU64,
}

impl StateCell {
    /// A closed circuit with no history; `external`: the trip rule is a policy's; `timed`:
    /// calls are timed.
    pub(crate) fn new(external: bool, timed: bool) -> StateCell {
        let flags = if external { EXTERNAL } else { 0 } | if timed { TIMED } else { 0 };
        StateCell { word: AtomicU64::new(pack(Machine::INITIAL, flags)), epoch: AtomicU64::new(0) }
    }

    /// The word as it is now.
    #[inline]
    pub(crate) fn word(&self) -> u64 {
        self.word.load(Ordering::Acquire)
    }

    /// Admission's read: the epoch, then the word. The word of a closed circuit whose calls
    /// are not timed (one mask and one compare) gives an ordinary call's ticket at once;
    /// any other is handed back, with the epoch, for the other paths.
    #[inline(always)]
    pub(crate) fn admit_closed(&self) -> Result<Ticket, (u64, u64)> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let word = self.word.load(Ordering::Acquire);
        if word & (STATE_MASK | TIMED) == CLOSED_BITS {
            Ok(closed_ticket(word, epoch))
        } else {
            Err((word, epoch))
        }
    }

    /// The machine in `word` (a word just loaded), with the epoch loaded after it.
    #[inline]
    pub(crate) fn machine(&self, word: u64) -> Machine {
        unpack(word, self.epoch.load(Ordering::Acquire))
    }

    /// Commits `next` over `seen` (the word `next` was computed from), keeping `READY`
    /// if `keep_ready`; then publishes a new generation to the epoch.
    pub(crate) fn commit(&self, seen: u64, next: Machine, keep_ready: bool) -> Result<(), u64> {
        let keep = FIXED | if keep_ready { READY } else { 0 };
        let word = pack(next, seen & keep);
        // Strong: a commit fails only if the word changed. A spurious failure (weak
        // compare-exchange on LL/SC CPUs; miri simulates them) sent a hung probe's
        // replacement round the loop, where its own raise of `last_probe_at` made the
        // hung probe look fresh: the call was refused and recovery waited one more
        // `half_open_max_wait`.
        self.word.compare_exchange(seen, word, Ordering::AcqRel, Ordering::Acquire)?;
        if next.generation & GENERATION_MASK != (seen >> GENERATION_SHIFT) & GENERATION_MASK {
            self.epoch.fetch_max(next.generation, Ordering::Release);
        }
        Ok(())
    }

    /// Whether `word` is the open period `generation` whose break has not been timed yet.
    /// Everything `SeqCst`: see `CircuitBreaker::publish_deadline`.
    pub(crate) fn unpublished(&self, word: u64, generation: u64) -> bool {
        word & (STATE_MASK | READY) == OPEN_BITS
            && self.machine_seq_cst(word).generation == generation
    }

    fn machine_seq_cst(&self, word: u64) -> Machine {
        unpack(word, self.epoch.load(Ordering::SeqCst))
    }

    /// `SeqCst` load of the word.
    pub(crate) fn word_seq_cst(&self) -> u64 {
        self.word.load(Ordering::SeqCst)
    }

    /// Marks the open period `generation` ready, unless the word moved on.
    pub(crate) fn set_ready(&self, generation: u64) {
        let mut word = self.word_seq_cst();
        while self.unpublished(word, generation) {
            match self.word.compare_exchange(word, word | READY, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }

    /// Tests: pretends `transitions` transitions have happened (the word's generation and
    /// the epoch move on together), keeping the rest of the word.
    #[cfg(test)]
    pub(crate) fn skip_generations(&self, transitions: u64) {
        let word = self.word.load(Ordering::SeqCst);
        let mut m = self.machine(word);
        m.generation += transitions;
        self.word.store(pack(m, word & (FIXED | READY)), Ordering::SeqCst);
        self.epoch.store(m.generation, Ordering::SeqCst);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_field_survives_packing() {
        let m = Machine {
            state: CircuitState::HalfOpen,
            forced: false,
            generation: (7 << GENERATION_BITS) + 12_345,
            failures: 0,
            probes: super::super::MAX_COUNT,
            probe_successes: super::super::MAX_COUNT,
            openings: super::super::machine::MAX_OPENINGS,
            since_forget: super::super::machine::MAX_SINCE_FORGET,
        };
        let word = pack(m, EXTERNAL | TIMED);
        assert_eq!(unpack(word, 7 << GENERATION_BITS), m);
        assert_eq!(word & FIXED, FIXED);
        let closed = Machine {
            failures: super::super::MAX_COUNT,
            probes: 3,
            since_forget: 5,
            ..Machine::INITIAL
        };
        assert_eq!(unpack(pack(closed, 0), 0), closed);
        let forced =
            Machine { state: CircuitState::Open, forced: true, probes: 1, ..Machine::INITIAL };
        assert_eq!(unpack(pack(forced, 0), 0), forced);
    }

    #[test]
    fn the_largest_counts_the_machine_makes_fit_the_word() {
        use super::super::machine::{Event, Limits, Rule};
        let limits = Limits {
            rule: Rule::Consecutive { failure_threshold: super::super::MAX_COUNT },
            half_open_max_calls: super::super::MAX_COUNT,
            success_threshold: super::super::MAX_COUNT,
        };
        let mut m = Machine::INITIAL;
        for _ in 0..100 {
            m = m.step(Event::ForceOpen, &limits).next;
            m = m.step(Event::Reset, &limits).next;
            m = Machine { state: CircuitState::HalfOpen, ..m };
            m = m
                .step(
                    Event::Failure(super::super::machine::Ticket::new(m.generation, true)),
                    &limits,
                )
                .next;
            assert_eq!(unpack(pack(m, 0), m.generation), m, "{m:?}");
        }
        assert_eq!(m.openings, 1, "each reset forgets the openings");
        for _ in 0..100 {
            m = Machine { state: CircuitState::HalfOpen, ..m };
            let ticket = super::super::machine::Ticket::new(m.generation, true);
            m = m.step(Event::Failure(ticket), &limits).next;
            assert_eq!(unpack(pack(m, 0), m.generation), m, "{m:?}");
        }
        assert_eq!(m.openings, super::super::machine::MAX_OPENINGS);
    }

    #[test]
    fn the_generation_is_completed_from_any_epoch_behind_it_by_less_than_the_low_bits_span() {
        let span = 1u64 << GENERATION_BITS;
        for full in [0, 1, span - 1, span, span + 1, 5 * span + 77, u64::MAX / 2] {
            let word = clean_closed(full);
            for lag in [0, 1, 1000, span - 1] {
                let epoch = full.saturating_sub(lag);
                assert_eq!(generation(word, epoch), full, "full {full}, lag {lag}");
            }
        }
    }

    #[test]
    fn a_ticket_from_2_pow_24_transitions_ago_is_late() {
        let cell = StateCell::new(false, false);
        let old = cell.admit_closed().unwrap();
        cell.skip_generations(1 << GENERATION_BITS);
        let word = cell.word();
        assert_eq!(word, clean_closed(old.generation()), "the same packed word");
        let now = cell.machine(word);
        assert_eq!(now.generation, old.generation() + (1 << GENERATION_BITS));
        assert_ne!(now.generation, old.generation());
        assert_eq!(cell.admit_closed().unwrap().generation(), now.generation);
    }
}
