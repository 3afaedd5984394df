-- Async predictions (issue 11): one row per prediction, the status the
-- Prediction workflow records at each transition, so GET and list are one
-- indexed query and outlive Temporal's retention. Inputs and outputs are in
-- the blob store (input_key, output_key); small JSON outputs also inline.

CREATE TABLE predictions (
    id                  TEXT PRIMARY KEY,
    algorithm_id        TEXT NOT NULL REFERENCES algorithms (id) ON DELETE CASCADE,
    idempotency_key     TEXT NOT NULL DEFAULT '', -- SHA-256 hex of the Idempotency-Key header; '' when none
    status              TEXT NOT NULL,            -- starting, processing, succeeded, failed, canceled
    input_key           TEXT NOT NULL DEFAULT '',
    input_content_type  TEXT NOT NULL DEFAULT '',
    input_size          BIGINT NOT NULL DEFAULT 0,
    input_kind          TEXT NOT NULL DEFAULT '', -- json, data_uri, url, file
    output_key          TEXT NOT NULL DEFAULT '',
    output_content_type TEXT NOT NULL DEFAULT '',
    output_size         BIGINT NOT NULL DEFAULT 0,
    output_json         TEXT,                     -- the output itself when it is JSON of at most 64 KiB
    error_message       TEXT NOT NULL DEFAULT '',
    error_traceback     TEXT NOT NULL DEFAULT '',
    webhook             TEXT NOT NULL DEFAULT '',
    webhook_events      TEXT NOT NULL DEFAULT '', -- comma-separated filter
    predict_ms          BIGINT,
    created_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    completed_at        TIMESTAMPTZ,
    expires_at          TIMESTAMPTZ,                     -- completed_at + retention
    expired_at          TIMESTAMPTZ                      -- set by the sweep when the blobs are deleted
);

-- Idempotency: one prediction per endpoint and key.
CREATE UNIQUE INDEX predictions_idempotency ON predictions (algorithm_id, idempotency_key) WHERE idempotency_key <> '';
-- Listing, newest first, paged by (created_at, id).
CREATE INDEX predictions_algorithm_created ON predictions (algorithm_id, created_at, id);
-- The retention sweep.
CREATE INDEX predictions_expiry ON predictions (expires_at) WHERE expired_at IS NULL AND expires_at IS NOT NULL;
-- The per-owner cap on running predictions counts these.
CREATE INDEX predictions_running ON predictions (algorithm_id) WHERE status IN ('starting', 'processing');
