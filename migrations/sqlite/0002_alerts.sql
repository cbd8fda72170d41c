-- Alert instances and their state transitions (SPEC §5, §6.4).
--
-- One `alerts` row per instance (fingerprint of its identity labels); an instance that fires
-- again reuses its row, and each episode's transitions are rows of `alert_events`. Times are
-- unix seconds.

CREATE TABLE alerts (
    fingerprint     TEXT PRIMARY KEY,
    alertname       TEXT NOT NULL,
    target          TEXT NOT NULL,
    -- The worker's instance id for worker-scope rules; NULL for fleet-scope ones.
    worker_id       INTEGER,
    severity        TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state           TEXT NOT NULL CHECK (state IN ('inactive', 'pending', 'firing', 'resolved')),
    labels          TEXT NOT NULL,                -- JSON object: the identity labels
    annotations     TEXT NOT NULL DEFAULT '{}',   -- JSON object: rendered annotations
    recommendation  TEXT,                         -- JSON: the advisor's object at the last transition
    active_at       REAL,                         -- when the current episode's expr turned true
    fired_at        REAL,
    resolved_at     REAL,
    -- While firing: since when the resolve condition has held (keep_firing_for's timer).
    resolving_since REAL,
    last_eval_at    REAL NOT NULL,
    value           REAL
) STRICT;

CREATE INDEX alerts_by_state ON alerts (state, last_eval_at);
CREATE INDEX alerts_by_target ON alerts (target, state);
CREATE INDEX alerts_by_active_at ON alerts (active_at);

CREATE TABLE alert_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL REFERENCES alerts (fingerprint),
    at          REAL NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    value       REAL
) STRICT;

CREATE INDEX alert_events_by_fingerprint ON alert_events (fingerprint, at);
CREATE INDEX alert_events_by_time ON alert_events (at);
