-- worker_samples and fleet_totals lose their foreign keys to polls on PostgreSQL. Each
-- check is a lookup and a row lock on polls per inserted row, and together they took more
-- than half of a 50,000-sample tick's ingest (docs/benchmarks.md, "On PostgreSQL").
-- vastwatch writes a poll, its fleet sums and its samples in one transaction, and
-- retention deletes samples and sums before their polls, so the keys never rejected a
-- row of vastwatch's own. Whoever deletes polls by hand deletes their rows in these two
-- tables first (docs/queries.md).
ALTER TABLE worker_samples DROP CONSTRAINT IF EXISTS worker_samples_poll_id_fkey;
ALTER TABLE fleet_totals DROP CONSTRAINT IF EXISTS fleet_totals_poll_id_fkey;
