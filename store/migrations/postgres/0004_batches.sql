-- Batch jobs (issue 11): one row per batch, one per item. An item's result is
-- recorded once, keyed by (batch_id, idx): a worker that crashed and retried
-- its chunk skips items whose status is no longer 'pending'.

CREATE TABLE batches (
    id            TEXT PRIMARY KEY,
    algorithm_id  TEXT NOT NULL REFERENCES algorithms (id),
    owner_id      TEXT NOT NULL REFERENCES users (id),
    source        TEXT NOT NULL,                 -- archive | urls
    status        TEXT NOT NULL,                 -- queued | running | succeeded | failed | canceled
    total         INTEGER NOT NULL,
    done          INTEGER NOT NULL DEFAULT 0,    -- items that succeeded
    failed        INTEGER NOT NULL DEFAULT 0,    -- items that failed for good
    concurrency   INTEGER NOT NULL,
    error_message TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    completed_at  TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX batches_algorithm_created ON batches (algorithm_id, created_at);
CREATE INDEX batches_owner_status ON batches (owner_id, status);

CREATE TABLE batch_items (
    batch_id     TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    name         TEXT NOT NULL,                  -- the archive member or the URL
    input        TEXT NOT NULL,                  -- blob key of the input, or the URL
    status       TEXT NOT NULL DEFAULT 'pending', -- pending | succeeded | failed
    http_status  INTEGER NOT NULL DEFAULT 0,
    error        TEXT NOT NULL DEFAULT '',
    output_key   TEXT NOT NULL DEFAULT '',
    content_type TEXT NOT NULL DEFAULT '',
    completed_at TIMESTAMPTZ,
    PRIMARY KEY (batch_id, idx)
);
