-- The advisor's recommendations (SPEC §5, §7): a row per target whenever the action or the
-- desired worker count changes. `detail` holds the whole recommendation object as JSON.

CREATE TABLE recommendations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    target          TEXT NOT NULL,
    at              REAL NOT NULL,
    action          TEXT NOT NULL,
    current_workers INTEGER NOT NULL,
    desired_workers INTEGER NOT NULL,
    detail          TEXT NOT NULL
) STRICT;

CREATE INDEX recommendations_by_target ON recommendations (target, at);
CREATE INDEX recommendations_by_time ON recommendations (at);
