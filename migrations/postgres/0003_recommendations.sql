-- The advisor's recommendations, as migrations/sqlite/0003_recommendations.sql.

CREATE TABLE recommendations (
    id              BIGSERIAL PRIMARY KEY,
    target          TEXT NOT NULL,
    at              DOUBLE PRECISION NOT NULL,
    action          TEXT NOT NULL,
    current_workers BIGINT NOT NULL,
    desired_workers BIGINT NOT NULL,
    detail          TEXT NOT NULL
);

CREATE INDEX recommendations_by_target ON recommendations (target, at);
CREATE INDEX recommendations_by_time ON recommendations (at);
