-- Replicas that share this database and their last lease renewal (`ha:`), as
-- migrations/sqlite/0006_replicas.sql.
CREATE TABLE replicas (
    replica    TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('leader', 'standby')),
    started_at DOUBLE PRECISION NOT NULL,  -- unix seconds
    renewed_at DOUBLE PRECISION NOT NULL   -- unix seconds
);
