-- Notifications (SPEC §5, §8): the durable outbox, the marks that feed it, what each
-- receiver was last sent per group, and silences. Times are unix seconds.

-- The outbox: every message is written here before its first attempt.
CREATE TABLE notifications (
    id              TEXT PRIMARY KEY,       -- UUIDv7; also the webhook-id
    receiver        TEXT NOT NULL,
    group_key       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,                   -- NULL once delivered or failed
    last_error      TEXT,
    created_at      REAL NOT NULL,
    delivered_at    REAL,
    payload         TEXT NOT NULL           -- JSON: Alertmanager v4 plus `vastwatch`
) STRICT;

CREATE INDEX notifications_due ON notifications (receiver, status, next_attempt_at);
CREATE INDEX notifications_by_group ON notifications (receiver, group_key, status);
CREATE INDEX notifications_by_created_at ON notifications (created_at);
CREATE INDEX notifications_by_status ON notifications (status, created_at);

-- "To notify" marks: one per alert transition that notifications care about, written in
-- the same transaction as the transition and deleted in the transaction that turns it
-- into outbox rows.
CREATE TABLE notification_marks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    at          REAL NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
    alert       TEXT NOT NULL            -- JSON snapshot: labels, annotations, times
) STRICT;

-- What each receiver was last sent for each group (Alertmanager's notification log), so
-- a restart neither repeats nor forgets.
CREATE TABLE notification_log (
    group_key TEXT NOT NULL,
    receiver  TEXT NOT NULL,
    sent_at   REAL NOT NULL,
    firing    TEXT NOT NULL,              -- JSON array of fingerprints
    resolved  TEXT NOT NULL,              -- JSON array of fingerprints
    PRIMARY KEY (group_key, receiver)
) STRICT;

CREATE TABLE silences (
    id         TEXT PRIMARY KEY,            -- UUID
    matchers   TEXT NOT NULL,               -- JSON array of {name, op, value}
    starts_at  REAL NOT NULL,
    ends_at    REAL NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
) STRICT;

CREATE INDEX silences_by_ends_at ON silences (ends_at);
