"""Counts, in a soak run's database (scripts/soak.sh), the alert transitions that were
never sent: the crash loop's check (tests/it/crash_loop.rs). Every `firing` and
`resolved` transition in `alert_events` must have reached an outbox message for its
episode (same status and `startsAt`; a `resolved` message covers its episode's firing)
or still wait as a mark. Valid when nothing is muted and every alert is routed, as in the
soak's config. Usage: soak-episodes.py DATABASE"""

import collections
import json
import sqlite3
import sys

db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
transitions = collections.Counter(
    db.execute(
        "SELECT fingerprint, to_state FROM alert_events "
        "WHERE to_state IN ('firing', 'resolved')"
    )
)
episodes = collections.defaultdict(set)
for (payload,) in db.execute("SELECT payload FROM notifications"):
    for alert in json.loads(payload)["alerts"]:
        key = (alert["fingerprint"], alert["status"])
        episodes[key].add(alert["startsAt"])
        if alert["status"] == "resolved":
            episodes[(alert["fingerprint"], "firing")].add(alert["startsAt"])
marks = collections.Counter(
    db.execute("SELECT fingerprint, status FROM notification_marks")
)
unsent = sum(
    max(0, count - len(episodes[key]) - marks[key])
    for key, count in transitions.items()
)
print(
    f"transitions to notify: {sum(transitions.values())}, unsent: {unsent}, "
    f"marks waiting: {sum(marks.values())}"
)
sys.exit(1 if unsent else 0)
