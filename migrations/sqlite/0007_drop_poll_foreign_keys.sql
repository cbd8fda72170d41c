-- Nothing changes on SQLite: this version keeps the two backends' migration histories in
-- step. PostgreSQL's 0007 drops the foreign keys from worker_samples and fleet_totals to
-- polls, whose per-row checks there cost more than half of a tick's ingest; SQLite checks
-- them with an in-process b-tree lookup per row and keeps them.
SELECT 1;
