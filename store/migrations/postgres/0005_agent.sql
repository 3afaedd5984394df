-- The server agents' command channel (package agenthub): one credential per
-- server (only its SHA-256 is kept) and the commands handed to the agents.
-- Numbered 0005: 0002-0004 are taken by work in flight on other branches.

CREATE TABLE agent_servers (
    id              TEXT NOT NULL PRIMARY KEY,
    credential_hash TEXT NOT NULL UNIQUE, -- SHA-256 hex of the ag_ credential; never the plaintext
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE agent_commands (
    id          TEXT NOT NULL PRIMARY KEY, -- chosen by the workflow, deterministic
    server_id   TEXT NOT NULL,
    deployment  TEXT NOT NULL DEFAULT '', -- the algorithm whose event log gets the progress; '' for none
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL,            -- pending (waits for an agent), leased (handed out), done
    attempt     INTEGER NOT NULL,
    heartbeat_s INTEGER NOT NULL DEFAULT 0,
    task_token  BYTEA NOT NULL,            -- sealed (AES-256-GCM) Temporal task token of the current attempt
    lease       TEXT NOT NULL DEFAULT '', -- the current hand-out; '' while pending
    result      TEXT NOT NULL DEFAULT '', -- the agent's Result (JSON) once done
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX agent_commands_server_state ON agent_commands (server_id, state, created_at);
