-- Alert instances and their state transitions, as migrations/sqlite/0002_alerts.sql.

CREATE TABLE alerts (
    fingerprint     TEXT PRIMARY KEY,
    alertname       TEXT NOT NULL,
    target          TEXT NOT NULL,
    worker_id       BIGINT,
    severity        TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state           TEXT NOT NULL CHECK (state IN ('inactive', 'pending', 'firing', 'resolved')),
    labels          TEXT NOT NULL,
    annotations     TEXT NOT NULL DEFAULT '{}',
    recommendation  TEXT,
    active_at       DOUBLE PRECISION,
    fired_at        DOUBLE PRECISION,
    resolved_at     DOUBLE PRECISION,
    resolving_since DOUBLE PRECISION,
    last_eval_at    DOUBLE PRECISION NOT NULL,
    value           DOUBLE PRECISION
);

CREATE INDEX alerts_by_state ON alerts (state, last_eval_at);
CREATE INDEX alerts_by_target ON alerts (target, state);
CREATE INDEX alerts_by_active_at ON alerts (active_at);

CREATE TABLE alert_events (
    id          BIGSERIAL PRIMARY KEY,
    fingerprint TEXT NOT NULL REFERENCES alerts (fingerprint),
    at          DOUBLE PRECISION NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    value       DOUBLE PRECISION
);

CREATE INDEX alert_events_by_fingerprint ON alert_events (fingerprint, at);
CREATE INDEX alert_events_by_time ON alert_events (at);
