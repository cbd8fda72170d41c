#!/bin/sh
# The failover study of docs/benchmarks.md: three `vastwatch run` replicas on one
# PostgreSQL database, the leader SIGKILLed 20 times (a new replica replacing each),
# reporting the median and maximum time until a standby leads. CI runs the same test with
# two kills. Needs a PostgreSQL server: VASTWATCH_TEST_POSTGRES (default
# postgres://postgres@127.0.0.1:5432/postgres).
# Usage: scripts/failover.sh [KILLS]
set -eu
cd "$(dirname "$0")/.."
VASTWATCH_FAILOVER_KILLS="${1:-20}" exec cargo test --release --test it \
  ha::with_three_replicas_leadership_survives_leaders_killed_in_turn -- --nocapture
