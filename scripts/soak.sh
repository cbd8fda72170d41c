#!/bin/sh
# The soak run of docs/reliability.md: `vastwatch run` polling 200 simulated workers every
# second for an hour (scripts/soak-scenario.yaml), with the shipped rules and the soak's
# own (scripts/soak-rules.yaml) firing and resolving, notifications going to a local
# webhook sink (scripts/soak-sink.py). Every ~10 s it samples the daemon's RSS, threads and
# open files, the database's file sizes and row counts into samples.csv; at the end it
# stops the daemon and fails on any ERROR in its log or any transition never sent
# (scripts/soak-episodes.py).
# Usage: scripts/soak.sh [SECONDS]     (default 3600; SOAK_DIR chooses the output folder,
#        VASTWATCH_BIN a vastwatch binary to run instead of building the release one)
# Plot:  python3 scripts/soak-plot.py SOAK_DIR/samples.csv docs/images/soak.svg
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
seconds="${1:-3600}"
out="${SOAK_DIR:-/tmp/vastwatch-soak}"
if [ -e "$out/vastwatch.db" ]; then
    echo "soak: $out already holds a run; remove it or set SOAK_DIR" >&2
    exit 1
fi
mkdir -p "$out"

# VASTWATCH_BIN runs a binary already built instead.
bin="${VASTWATCH_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release --locked --bin vastwatch
    bin="$repo/target/release/vastwatch"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
sim_port=$(free_port)
api_port=$(free_port)
sink_port=$(free_port)

cat >"$out/vastwatch.yaml" <<YAML
database: vastwatch.db
listen: 127.0.0.1:$api_port
api:
  base_url: http://127.0.0.1:$sim_port
  api_key_env: SOAK_VAST_KEY
schedule: 1s
jitter: 0s
rules: [$repo/rules/vast.yaml, $repo/scripts/soak-rules.yaml]
targets:
  - {name: soak-surge, endpoint: 901}
  - {name: soak-reliability, endpoint: 902}
  - {name: soak-churn, worker_group: 1901}
  - {name: soak-calm, worker_group: 1902}
notify:
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 15m
  receivers:
    - name: sink
      webhook: {url: "http://127.0.0.1:$sink_port/hook"}
  routes:
    - receivers: [sink]
YAML

pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

: >"$out/deliveries.jsonl"
python3 scripts/soak-sink.py "$sink_port" "$out/deliveries.jsonl" &
pids="$pids $!"
"$bin" simulate --listen "127.0.0.1:$sim_port" --scenario scripts/soak-scenario.yaml \
    >"$out/simulate.log" 2>&1 &
sim_pid=$!
pids="$pids $sim_pid"
sleep 1
SOAK_VAST_KEY=soak-key "$bin" run --config "$out/vastwatch.yaml" >"$out/run.log" 2>&1 &
daemon=$!
pids="$pids $daemon"

status_kb() { awk -v key="$1:" '$1 == key {print $2}' "/proc/$2/status"; }
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
rows() {
    sqlite3 -readonly "$out/vastwatch.db" "SELECT
        (SELECT count(*) FROM polls), (SELECT count(*) FROM worker_samples),
        (SELECT count(*) FROM alert_events), (SELECT count(*) FROM notifications),
        (SELECT count(*) FROM notifications WHERE status = 'delivered'),
        (SELECT count(*) FROM notification_marks)" 2>/dev/null | tr '|' ',' || echo ",,,,,"
}

echo "elapsed_s,rss_kb,threads,open_files,sim_rss_kb,db_bytes,wal_bytes,polls,worker_samples,alert_events,notifications,delivered,marks,readyz" \
    >"$out/samples.csv"
start=$(date +%s)
echo "soak: $seconds s into $out (daemon $daemon, API 127.0.0.1:$api_port)"
while :; do
    now=$(date +%s)
    elapsed=$((now - start))
    if ! kill -0 "$daemon" 2>/dev/null; then
        echo "soak: the daemon died after $elapsed s; see $out/run.log" >&2
        exit 1
    fi
    readyz=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api_port/readyz" || true)
    curl -s -o /dev/null "http://127.0.0.1:$api_port/metrics" || true
    echo "$elapsed,$(status_kb VmRSS "$daemon"),$(status_kb Threads "$daemon"),$(ls "/proc/$daemon/fd" | wc -l),$(status_kb VmRSS "$sim_pid"),$(size "$out/vastwatch.db"),$(size "$out/vastwatch.db-wal"),$(rows),$readyz" \
        >>"$out/samples.csv"
    [ "$elapsed" -ge "$seconds" ] && break
    sleep 10
done

kill -TERM "$daemon"
wait "$daemon" || { echo "soak: the daemon did not stop cleanly" >&2; exit 1; }
pids=$(echo "$pids" | sed "s/ $daemon\$//")
errors=$(grep -c ' ERROR ' "$out/run.log" || true)
warnings=$(grep -c ' WARN ' "$out/run.log" || true)
sqlite3 -readonly "$out/vastwatch.db" \
    "SELECT 'alert events: ' || count(*) || ' (' || ifnull(sum(to_state = 'firing'), 0)
            || ' firing, ' || ifnull(sum(to_state = 'resolved'), 0) || ' resolved)'
            FROM alert_events;
     SELECT 'notifications: ' || count(*) || ' ('
            || ifnull(sum(status = 'delivered'), 0) || ' delivered)' FROM notifications;
     SELECT 'failed polls: ' || count(*) FROM polls WHERE outcome != 'ok';" | tee "$out/summary.txt"
echo "deliveries at the sink: $(wc -l <"$out/deliveries.jsonl")" | tee -a "$out/summary.txt"
all_sent=0
episodes=$(python3 scripts/soak-episodes.py "$out/vastwatch.db") || all_sent=1
echo "$episodes" | tee -a "$out/summary.txt"
echo "log: $errors ERROR, $warnings WARN lines" | tee -a "$out/summary.txt"
[ "$errors" -eq 0 ] && [ "$all_sent" -eq 0 ]
