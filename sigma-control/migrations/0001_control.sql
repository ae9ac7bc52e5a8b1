-- The control plane: live streams, playback ids, signing keys, API tokens, transitions.
-- Portable between SQLite and PostgreSQL: TEXT and BIGINT only; times are Unix milliseconds.
CREATE TABLE live_streams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    stream_key TEXT NOT NULL,
    stream_key_hash TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    status_changed_at BIGINT NOT NULL,
    latency_mode TEXT NOT NULL,
    playback_policy TEXT NOT NULL,
    reconnect_window BIGINT NOT NULL,
    auto_start BIGINT NOT NULL,
    ladder TEXT,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX live_streams_by_creation ON live_streams (created_at, id);

CREATE TABLE playback_ids (
    id TEXT PRIMARY KEY,
    live_stream_id TEXT NOT NULL REFERENCES live_streams (id) ON DELETE CASCADE,
    policy TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX playback_ids_by_stream ON playback_ids (live_stream_id, created_at);

CREATE TABLE signing_keys (
    id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE status_transitions (
    live_stream_id TEXT NOT NULL,
    status TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX status_transitions_by_stream ON status_transitions (live_stream_id, at);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
