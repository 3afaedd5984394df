-- Users, their API tokens, algorithms and per-algorithm progress events.
-- Timestamps are UTC text in a fixed-width layout (2006-01-02T15:04:05.000000Z),
-- so comparing and ordering them as text is comparing and ordering them as times.

CREATE TABLE users (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE tokens (
    id           TEXT NOT NULL PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE, -- SHA-256 hex of the plaintext; never the plaintext
    created_at   TEXT NOT NULL,
    last_used_at TEXT
) STRICT;

CREATE INDEX tokens_user_id ON tokens (user_id);

CREATE TABLE algorithms (
    id                  TEXT NOT NULL PRIMARY KEY,
    owner_id            TEXT NOT NULL REFERENCES users (id),
    name                TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    api_name            TEXT NOT NULL,
    workflow_id         TEXT NOT NULL DEFAULT '',
    spec                TEXT,
    step                TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL DEFAULT '',
    endpoint            TEXT NOT NULL DEFAULT '',
    error_message       TEXT NOT NULL DEFAULT '',
    endpoint_token_hash TEXT NOT NULL DEFAULT '',
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    deleted_at          TEXT
) STRICT;

-- An API name belongs to at most one algorithm that is not deleted; deleting frees it.
CREATE UNIQUE INDEX algorithms_api_name_live ON algorithms (api_name) WHERE deleted_at IS NULL;
CREATE INDEX algorithms_owner_created ON algorithms (owner_id, created_at);
CREATE INDEX algorithms_status_live ON algorithms (status) WHERE deleted_at IS NULL;

CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids never reused, so paging by id is safe
    algorithm_id TEXT NOT NULL REFERENCES algorithms (id) ON DELETE CASCADE,
    at           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    message      TEXT NOT NULL
) STRICT;

CREATE INDEX events_algorithm_id ON events (algorithm_id, id);
