-- Five-minute fleet rollups, as migrations/sqlite/0005_rollups.sql.

CREATE TABLE fleet_rollups (
    target_id        BIGINT NOT NULL REFERENCES targets (id),
    bucket           BIGINT NOT NULL,
    polls            BIGINT NOT NULL,
    workers_avg        DOUBLE PRECISION,
    workers_min        DOUBLE PRECISION,
    workers_max        DOUBLE PRECISION,
    ready_avg          DOUBLE PRECISION,
    ready_min          DOUBLE PRECISION,
    ready_max          DOUBLE PRECISION,
    starting_avg       DOUBLE PRECISION,
    starting_min       DOUBLE PRECISION,
    starting_max       DOUBLE PRECISION,
    inactive_avg       DOUBLE PRECISION,
    inactive_min       DOUBLE PRECISION,
    inactive_max       DOUBLE PRECISION,
    failed_avg         DOUBLE PRECISION,
    failed_min         DOUBLE PRECISION,
    failed_max         DOUBLE PRECISION,
    load_avg           DOUBLE PRECISION,
    load_min           DOUBLE PRECISION,
    load_max           DOUBLE PRECISION,
    load_rolling_avg   DOUBLE PRECISION,
    load_rolling_min   DOUBLE PRECISION,
    load_rolling_max   DOUBLE PRECISION,
    perf_avg           DOUBLE PRECISION,
    perf_min           DOUBLE PRECISION,
    perf_max           DOUBLE PRECISION,
    reqs_working_avg   DOUBLE PRECISION,
    reqs_working_min   DOUBLE PRECISION,
    reqs_working_max   DOUBLE PRECISION,
    utilization_avg    DOUBLE PRECISION,
    utilization_min    DOUBLE PRECISION,
    utilization_max    DOUBLE PRECISION,
    PRIMARY KEY (target_id, bucket)
);
CREATE INDEX fleet_rollups_by_bucket ON fleet_rollups (bucket);

CREATE INDEX notification_log_by_sent_at ON notification_log (sent_at);
