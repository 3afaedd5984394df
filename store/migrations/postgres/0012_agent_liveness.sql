-- What the agent hub knows of each server's agent process, kept here so that
-- every API process (and the next one, after a restart) sees the same:
-- boot_id is the boot ID of the agent process that polled last (a new one
-- means the agent started anew, and what its previous process held is handed
-- out again, once); silent_after is when the agent counts as gone if it has
-- not polled again by then (its commands' leases are then voided and their
-- activity attempts failed, so the step hears of it before the heartbeat
-- timeout). '' and NULL: never polled since this migration.
-- Numbered 0012: 0009-0011 are left to branches in flight.
ALTER TABLE agent_servers ADD COLUMN boot_id TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_servers ADD COLUMN silent_after TIMESTAMPTZ;
