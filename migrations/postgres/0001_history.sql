-- vastwatch history schema for PostgreSQL, version 1: the same tables, columns and view as
-- migrations/sqlite/0001_history.sql. Times are unix seconds as DOUBLE PRECISION (SQLite's
-- REAL), integers BIGINT. worker_samples.reqs_working is DOUBLE PRECISION: the API's value
-- is a number, and SQLite's INTEGER affinity keeps a fraction where PostgreSQL's BIGINT
-- would round it.

CREATE TABLE targets (
    id      BIGSERIAL PRIMARY KEY,
    name    TEXT   NOT NULL UNIQUE,
    kind    TEXT   NOT NULL CHECK (kind IN ('endpoint', 'worker_group')),
    vast_id BIGINT NOT NULL
);

-- Ids come from the sequence and are never reused, like SQLite's AUTOINCREMENT.
CREATE TABLE polls (
    id           BIGSERIAL PRIMARY KEY,
    target_id    BIGINT           NOT NULL REFERENCES targets (id),
    started_at   DOUBLE PRECISION NOT NULL,
    duration_ms  BIGINT           NOT NULL,
    outcome      TEXT             NOT NULL,
    error        TEXT,
    http_status  BIGINT,
    worker_count BIGINT
);
CREATE INDEX polls_by_target_time ON polls (target_id, started_at);
CREATE INDEX polls_by_time ON polls (started_at);

CREATE TABLE worker_samples (
    poll_id              BIGINT           NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
    target_id            BIGINT           NOT NULL,
    worker_id            BIGINT           NOT NULL,
    polled_at            DOUBLE PRECISION NOT NULL,
    status               TEXT,
    cur_load             DOUBLE PRECISION,
    new_load             DOUBLE PRECISION,
    cur_load_rolling_avg DOUBLE PRECISION,
    cur_perf             DOUBLE PRECISION,
    measured_perf        DOUBLE PRECISION,
    perf                 DOUBLE PRECISION,
    reliability          DOUBLE PRECISION,
    dlperf               DOUBLE PRECISION,
    reqs_working         DOUBLE PRECISION,
    disk_usage           DOUBLE PRECISION,
    loaded_at            DOUBLE PRECISION,
    extra                TEXT,
    PRIMARY KEY (poll_id, worker_id)
);
CREATE INDEX worker_samples_by_worker ON worker_samples (worker_id, target_id, polled_at);

CREATE TABLE fleet_totals (
    poll_id       BIGINT PRIMARY KEY REFERENCES polls (id) ON DELETE CASCADE,
    workers       BIGINT NOT NULL,
    ready         BIGINT NOT NULL,
    starting      BIGINT NOT NULL,
    inactive      BIGINT NOT NULL,
    failed        BIGINT NOT NULL,
    load          DOUBLE PRECISION,
    new_load      DOUBLE PRECISION,
    load_rolling  DOUBLE PRECISION,
    perf          DOUBLE PRECISION,
    cur_perf      DOUBLE PRECISION,
    measured_perf DOUBLE PRECISION,
    reqs_working  DOUBLE PRECISION
);

CREATE VIEW fleet_samples AS
SELECT
    p.id AS poll_id,
    t.name AS target,
    p.started_at AS polled_at,
    f.workers,
    f.ready,
    f.starting,
    f.inactive,
    f.failed,
    f.load,
    f.load_rolling,
    f.perf,
    f.reqs_working,
    CASE WHEN f.perf <> 0 THEN f.load_rolling / f.perf END AS utilization
FROM fleet_totals AS f
JOIN polls AS p ON p.id = f.poll_id
JOIN targets AS t ON t.id = p.target_id;
