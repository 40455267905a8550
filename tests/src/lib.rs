//! kompoz's behaviour suite: every scenario is written once, generic over a [`Runtime`]
//! (a timer plus a way to block on a future), and run by [`conformance_suite!`] on tokio,
//! async-std, smol and the [`ManualClock`](kompoz::ManualClock) (see `tests/*.rs`).
//!
//! Scenarios panic on a failed expectation, like ordinary tests.

pub mod breakers;
pub mod harness;
pub mod limits;
pub mod rates;
pub mod retries;
pub mod timeouts;

pub use harness::{CountingTimer, DropFlag, ManualRuntime, Runtime};

/// Expands to one `#[test]` per scenario, each running on the given [`Runtime`].
///
/// ```text
/// kompoz_conformance::conformance_suite!(kompoz_conformance::ManualRuntime::new());
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($runtime:expr) => {
        $crate::conformance_suite!(@tests $runtime;
            timeouts::fast_inner_passes,
            timeouts::slow_inner_times_out,
            timeouts::on_timeout_handler_changes_the_context,
            timeouts::inner_is_dropped_at_expiry,
            timeouts::ready_inner_creates_no_timer,
            timeouts::concurrent_runs_get_their_own_verdicts,
            timeouts::nested_limits_the_shorter_wins,
            timeouts::simulated_time_costs_no_real_time,
            limits::limited_passes_through,
            limits::ten_runs_under_three_permits_peak_at_three,
            limits::two_rules_share_one_named_limit,
            limits::waiters_are_served_first_come_first_served,
            limits::a_maximum_wait_expires_into_a_rejection,
            limits::close_wakes_every_waiter,
            limits::a_cancellation_storm_leaves_every_permit_free,
            limits::zero_permits_is_refused,
            breakers::closed_breaker_passes_through,
            breakers::threshold_failures_open_the_circuit,
            breakers::an_open_circuit_rejects_without_calling,
            breakers::a_failing_probe_reopens,
            breakers::a_succeeding_probe_closes,
            breakers::the_callback_sees_closed_to_open,
            breakers::stats_count_successes_and_failures,
            breakers::reset_closes,
            breakers::timeouts_count_as_failures_inside_a_breaker,
            breakers::half_open_admits_only_its_probes,
            retries::retry_passes_on_a_later_attempt,
            retries::retry_gives_up_after_max_attempts,
            retries::retry_backoff_waits_between_attempts,
            retries::retry_jitter_stays_in_bounds,
            retries::retry_calls_on_retry_before_each_retry,
            retries::retry_stops_at_an_open_circuit,
            retries::pipeline_retries_timed_out_attempts,
            retries::retry_waits_out_a_rate_refusal,
            retries::parallel_and_fails_fast_and_drops_the_rest,
            retries::parallel_or_cancels_on_success,
            rates::a_burst_then_one_cell_every_interval,
            rates::a_line_of_fifty_is_served_in_arrival_order,
            rates::a_cancelled_waiter_gives_back_its_place,
            rates::a_cancelled_waiters_instant_goes_to_the_next,
            rates::a_keyed_limiter_isolates_keys,
            rates::eviction_keeps_memory_bounded_under_a_million_keys,
            rates::the_combinator_waits_rejects_or_gives_up,
            rates::two_rules_share_one_named_quota,
            rates::edges_are_errors_not_panics,
            breakers::a_count_window_opens_at_its_minimum_and_threshold,
            breakers::a_time_window_forgets_old_failures,
            breakers::slow_calls_open_at_the_slow_ratio,
            breakers::break_durations_grow_to_their_cap_and_start_again_after_closing,
            breakers::a_classifier_keeps_timeouts_out_of_the_breaker,
            breakers::per_key_breakers_isolate_keys_and_evict_idle_ones,
        );
    };
    (@tests $runtime:expr; $($module:ident :: $scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                let runtime = $runtime;
                $crate::Runtime::block_on(
                    &runtime,
                    $crate::$module::$scenario(&runtime),
                );
            }
        )*
    };
}
