#!/bin/sh
# The crash loop of docs/reliability.md: `vastwatch run` killed with SIGKILL at random
# moments (50 times by default) against the simulator, checking the database and the
# notifications after every restart. CI runs the same test with 5 kills.
# Usage: scripts/crash-loop.sh [KILLS]
set -eu
cd "$(dirname "$0")/.."
VASTWATCH_CRASH_KILLS="${1:-50}" exec cargo test --release --test it crash_loop -- --nocapture
