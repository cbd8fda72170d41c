-- Replicas that share this database and their last lease renewal (`ha:`). A single
-- process on a SQLite file always leads and writes nothing here; the table exists so
-- that both backends have the same public tables.
CREATE TABLE replicas (
    replica    TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('leader', 'standby')),
    started_at REAL NOT NULL,  -- unix seconds
    renewed_at REAL NOT NULL   -- unix seconds
);
