-- Webhook endpoints, their durable outbox and their attempts.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    event_types TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_until BIGINT,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_by_creation ON webhooks (created_at, id);

-- One row per (endpoint, event) still to deliver: written in the event's own transaction, so
-- an accepted event is delivered even after a crash, and deleted once delivered (the attempts
-- table keeps the record). `lease_owner`/`lease_until` is how a node claims an attempt.
CREATE TABLE webhook_deliveries (
    webhook_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    object_id TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    lease_owner TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (webhook_id, position)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (webhook_id, state, next_at, position);
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (webhook_id, state, lease_until);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, object_id, state, position);

CREATE TABLE webhook_attempts (
    webhook_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status_code BIGINT,
    duration_ms BIGINT NOT NULL,
    error TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX webhook_attempts_by_hook ON webhook_attempts (webhook_id, at);
