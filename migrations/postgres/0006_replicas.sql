-- Replicas that share this database and their last lease renewal (`ha:`), as
-- migrations/sqlite/0006_replicas.sql.
CREATE TABLE replicas (
    replica    TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('leader', 'standby')),
    started_at DOUBLE PRECISION NOT NULL,  -- unix seconds
    renewed_at DOUBLE PRECISION NOT NULL   -- unix seconds
);

-- Delivery claims: a replica takes due outbox rows by setting claimed_by and
-- claimed_until before it sends them, so no two replicas send one row. A claim that
-- outlives its replica (claimed_until passed, or the replica is gone) is taken over.
ALTER TABLE notifications ADD COLUMN claimed_by TEXT;
ALTER TABLE notifications ADD COLUMN claimed_until DOUBLE PRECISION;  -- unix seconds
