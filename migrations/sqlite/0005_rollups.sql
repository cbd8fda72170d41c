-- Five-minute fleet rollups (public, like fleet_samples): long history after raw samples
-- expire. Retention rolls a target's bucket up in the same transaction that deletes the
-- bucket's raw polls, so a bucket is counted exactly once even across a crash.
--
-- One row per target and five-minute bucket that had at least one successful poll.
-- `bucket` is the bucket's start in unix seconds (a multiple of 300); `polls` is the number
-- of successful polls it aggregates. Each fleet_samples number has its average, minimum and
-- maximum over those polls (NULL when it was missing in every one of them).

CREATE TABLE fleet_rollups (
    target_id        INTEGER NOT NULL REFERENCES targets (id),
    bucket           INTEGER NOT NULL,
    polls            INTEGER NOT NULL,
    workers_avg      REAL,
    workers_min      REAL,
    workers_max      REAL,
    ready_avg        REAL,
    ready_min        REAL,
    ready_max        REAL,
    starting_avg     REAL,
    starting_min     REAL,
    starting_max     REAL,
    inactive_avg     REAL,
    inactive_min     REAL,
    inactive_max     REAL,
    failed_avg       REAL,
    failed_min       REAL,
    failed_max       REAL,
    load_avg         REAL,
    load_min         REAL,
    load_max         REAL,
    load_rolling_avg REAL,
    load_rolling_min REAL,
    load_rolling_max REAL,
    perf_avg         REAL,
    perf_min         REAL,
    perf_max         REAL,
    reqs_working_avg REAL,
    reqs_working_min REAL,
    reqs_working_max REAL,
    utilization_avg  REAL,
    utilization_min  REAL,
    utilization_max  REAL,
    PRIMARY KEY (target_id, bucket)
) WITHOUT ROWID;
-- History over all targets, and retention of rollups, filter on bucket alone.
CREATE INDEX fleet_rollups_by_bucket ON fleet_rollups (bucket);

-- Retention of what each receiver was last sent filters on this time.
CREATE INDEX notification_log_by_sent_at ON notification_log (sent_at);
