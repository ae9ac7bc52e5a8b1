-- Simulcast targets: where a live stream's source is pushed while it is active. The stream
-- key is the target platform's secret, kept to publish with and never shown after creation.
CREATE TABLE simulcast_targets (
    id TEXT PRIMARY KEY,
    live_stream_id TEXT NOT NULL REFERENCES live_streams (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    stream_key TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    status_changed_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX simulcast_targets_by_stream ON simulcast_targets (live_stream_id, created_at, id);
