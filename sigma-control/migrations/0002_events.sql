-- The event log. `position` is handed out from `counters` inside the appending transaction
-- (the row lock serializes appenders), so positions commit in order on both backends and a
-- reader resuming after a position misses nothing.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('events', 0);

CREATE TABLE events (
    position BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    at BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX events_by_object ON events (object_id, sequence);
CREATE INDEX events_by_type ON events (type, position);
