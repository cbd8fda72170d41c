-- Notifications, as migrations/sqlite/0004_notifications.sql.
--
-- notifications.rowid stands in for SQLite's implicit rowid: the outbox delivers each
-- group's messages in insertion order, which the store reads from it.

CREATE TABLE notifications (
    id              TEXT PRIMARY KEY,
    receiver        TEXT NOT NULL,
    group_key       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION,
    last_error      TEXT,
    created_at      DOUBLE PRECISION NOT NULL,
    delivered_at    DOUBLE PRECISION,
    payload         TEXT NOT NULL,
    rowid           BIGSERIAL NOT NULL UNIQUE
);

CREATE INDEX notifications_due ON notifications (receiver, status, next_attempt_at);
CREATE INDEX notifications_by_group ON notifications (receiver, group_key, status);
CREATE INDEX notifications_by_created_at ON notifications (created_at);
CREATE INDEX notifications_by_status ON notifications (status, created_at);

CREATE TABLE notification_marks (
    id          BIGSERIAL PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    at          DOUBLE PRECISION NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
    alert       TEXT NOT NULL
);

CREATE TABLE notification_log (
    group_key TEXT NOT NULL,
    receiver  TEXT NOT NULL,
    sent_at   DOUBLE PRECISION NOT NULL,
    firing    TEXT NOT NULL,
    resolved  TEXT NOT NULL,
    PRIMARY KEY (group_key, receiver)
);

CREATE TABLE silences (
    id         TEXT PRIMARY KEY,
    matchers   TEXT NOT NULL,
    starts_at  DOUBLE PRECISION NOT NULL,
    ends_at    DOUBLE PRECISION NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL
);

CREATE INDEX silences_by_ends_at ON silences (ends_at);
