-- vastwatch history schema, version 1: targets, poll attempts and worker samples.
--
-- Public (SPEC section 5; names and columns are stable): targets, polls, worker_samples and
-- the view fleet_samples. fleet_totals is internal: it holds each successful poll's fleet
-- sums, computed at ingest from the same rows that go into worker_samples, so that fleet
-- history never has to aggregate raw samples. Times are unix seconds as REAL.

CREATE TABLE targets (
    id      INTEGER PRIMARY KEY,
    name    TEXT    NOT NULL UNIQUE,
    kind    TEXT    NOT NULL CHECK (kind IN ('endpoint', 'worker_group')),
    vast_id INTEGER NOT NULL
);

-- One row per poll attempt, successful or not. outcome is 'ok' or the failure kind;
-- error holds the failure message, or the notes of a successful poll. AUTOINCREMENT so
-- that an id is never reused, even after retention has deleted every older poll.
CREATE TABLE polls (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    target_id    INTEGER NOT NULL REFERENCES targets (id),
    started_at   REAL    NOT NULL,
    duration_ms  INTEGER NOT NULL,
    outcome      TEXT    NOT NULL,
    error        TEXT,
    http_status  INTEGER,
    worker_count INTEGER
);
CREATE INDEX polls_by_target_time ON polls (target_id, started_at);
CREATE INDEX polls_by_time ON polls (started_at);

-- One row per worker in a successful poll, clustered by poll so that each tick appends at
-- the end of the b-tree. Numeric columns carry the API's names and are NULL when absent.
CREATE TABLE worker_samples (
    poll_id              INTEGER NOT NULL REFERENCES polls (id) ON DELETE CASCADE,
    target_id            INTEGER NOT NULL,
    worker_id            INTEGER NOT NULL,
    polled_at            REAL    NOT NULL,
    status               TEXT,
    cur_load             REAL,
    new_load             REAL,
    cur_load_rolling_avg REAL,
    cur_perf             REAL,
    measured_perf        REAL,
    perf                 REAL,
    reliability          REAL,
    dlperf               REAL,
    reqs_working         INTEGER,
    disk_usage           REAL,
    loaded_at            REAL,
    extra                TEXT,
    PRIMARY KEY (poll_id, worker_id)
) WITHOUT ROWID;
-- Per-worker history. worker_id leads because an instance can serve both an endpoint and
-- its worker group, and `history --worker ID` does not need a target.
CREATE INDEX worker_samples_by_worker ON worker_samples (worker_id, target_id, polled_at);

-- Fleet sums of one successful poll (SPEC section 6.3), one row even when the list was
-- empty. Counts by state class follow the reference doc; unknown statuses count only in
-- workers. perf, cur_perf and measured_perf sum over ready workers only.
CREATE TABLE fleet_totals (
    poll_id       INTEGER PRIMARY KEY REFERENCES polls (id) ON DELETE CASCADE,
    workers       INTEGER NOT NULL,
    ready         INTEGER NOT NULL,
    starting      INTEGER NOT NULL,
    inactive      INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    load          REAL,
    new_load      REAL,
    load_rolling  REAL,
    perf          REAL,
    cur_perf      REAL,
    measured_perf REAL,
    reqs_working  REAL
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
