-- Webhooks (issue 11): each algorithm's signing secret, sealed, and every
-- delivery attempt, so owners see what their receivers answered.

CREATE TABLE webhook_secrets (
    algorithm_id TEXT NOT NULL PRIMARY KEY REFERENCES algorithms (id) ON DELETE CASCADE,
    sealed       TEXT NOT NULL, -- base64 of AES-GCM(credentials key, "whsec_..."); never the plaintext
    created_at   TEXT NOT NULL
) STRICT;

CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  TEXT NOT NULL,          -- the webhook-id header: the same on every attempt of a delivery
    algorithm_id TEXT NOT NULL REFERENCES algorithms (id) ON DELETE CASCADE,
    subject_id   TEXT NOT NULL,          -- the prediction or batch the event is about
    event        TEXT NOT NULL,
    url          TEXT NOT NULL,
    attempt      INTEGER NOT NULL,       -- 1, 2, ... (Temporal's activity attempt); 0 on the failed line
    at           TEXT NOT NULL,
    duration_ms  INTEGER NOT NULL,
    status_code  INTEGER NOT NULL,       -- 0 when no answer came
    outcome      TEXT NOT NULL,          -- delivered, retry, gone, refused, failed (gave up)
    error        TEXT NOT NULL
) STRICT;

CREATE INDEX webhook_attempts_subject ON webhook_attempts (algorithm_id, subject_id, id);
