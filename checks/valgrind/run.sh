#!/usr/bin/env bash
# The breaker's hot paths under valgrind (memcheck, errors fatal), on the default clock.
#
# valgrind 3.19 kills a program that reads the coarse clock through rustix's direct vDSO
# call (SIGSEGV in rustix::backend::param::auxv::check_elf_base; rustix issue #1559).
# StdClock detects valgrind (the core it preloads) and reads the coarse time through std
# there; this check keeps it that way. About 20 s after the release build of the benches.
#
#   checks/valgrind/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

target=${CARGO_TARGET_DIR:-target}
cargo build --release -p kompoz-benches --bin profile
for case in breaker_cheapest_closed_1t breaker_cheapest_open breaker_count_window_1t \
    breaker_time_window_1t; do
    valgrind --error-exitcode=1 -q "$target/release/profile" "$case" kompoz 2000
done
echo "valgrind: the breaker's closed path, rejection and windows ran clean"
