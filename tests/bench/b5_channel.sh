#!/bin/sh
# b5_channel.sh - B5: the INS channel alone (messages/s at 64 B, GB/s at 64 KiB, wake-up round trip)
# Usage: tests/bench/b5_channel.sh [build-dir] [rounds]
# Prints the figures as "name: value" lines (medians of the rounds) last.
set -eu
build=${1:-build}
rounds=${2:-5}
bin="$build/tests/bench/bench_channel"
[ -x "$bin" ] || { echo "b5_channel: $bin not built (cmake --build $build --target bench_channel)" >&2; exit 1; }
echo "# B5 $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r), $(nproc) CPUs, $bin $rounds" >&2
exec "$bin" "$rounds"
