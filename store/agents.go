package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Agent command states (AgentCommand.State).
const (
	// AgentPending: the command waits for its server's agent to fetch it.
	AgentPending = "pending"
	// AgentLeased: the command was handed out under Lease and is running.
	AgentLeased = "leased"
	// AgentDone: the agent answered; Result holds its answer.
	AgentDone = "done"
)

// AgentCommand is one command for a server agent as the platform keeps it
// (package agenthub gives the fields their meaning).
type AgentCommand struct {
	ID         string `db:"id"`
	ServerID   string `db:"server_id"`
	Deployment string `db:"deployment"`
	Kind       string `db:"kind"`
	Payload    string `db:"payload"`
	State      string `db:"state"`
	Attempt    int    `db:"attempt"`
	Heartbeat  int    `db:"heartbeat_s"`
	// TaskToken is sealed by the caller; the store never sees it in clear.
	TaskToken []byte    `db:"task_token"`
	Lease     string    `db:"lease"`
	Result    string    `db:"result"`
	CreatedAt time.Time `db:"-"`
	UpdatedAt time.Time `db:"-"`
}

type agentCommandRow struct {
	AgentCommand
	Created dbTime `db:"created_at"`
	Updated dbTime `db:"updated_at"`
}

func (r agentCommandRow) command() AgentCommand {
	c := r.AgentCommand
	c.CreatedAt, c.UpdatedAt = time.Time(r.Created), time.Time(r.Updated)
	return c
}

const agentCommandColumns = `id, server_id, deployment, kind, payload, state, attempt, heartbeat_s, task_token, lease, result, created_at, updated_at`

// SetAgentCredential makes credentialHash (the SHA-256 hex of a server's
// agent credential) the one credential of serverID, replacing any earlier
// one, which stops authenticating at once. A hash already used by another
// server gives ErrConflict.
func (s *Store) SetAgentCredential(ctx context.Context, serverID, credentialHash string) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO agent_servers (id, credential_hash, created_at) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET credential_hash = excluded.credential_hash, created_at = excluded.created_at`),
		serverID, credentialHash, dbTime(s.now()))
	if c := classify(err); c == uniqueViolation || c == primaryKeyViolation {
		return fmt.Errorf("set agent credential of server %s: %w", serverID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("set agent credential of server %s: %w", serverID, err)
	}
	return nil
}

// AgentServerByCredential returns the server whose credential has this
// SHA-256 hex, or ErrUnauthorized.
func (s *Store) AgentServerByCredential(ctx context.Context, credentialHash string) (string, error) {
	var id string
	err := s.db.GetContext(ctx, &id, s.q(`SELECT id FROM agent_servers WHERE credential_hash = ?`), credentialHash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrUnauthorized
	}
	if err != nil {
		return "", fmt.Errorf("authenticate agent: %w", err)
	}
	return id, nil
}

// DeleteAgentCredential removes serverID's credential (the server is gone);
// deleting one that does not exist is not an error.
func (s *Store) DeleteAgentCredential(ctx context.Context, serverID string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM agent_servers WHERE id = ?`), serverID); err != nil {
		return fmt.Errorf("delete agent credential of server %s: %w", serverID, err)
	}
	return nil
}

// InsertAgentCommand stores a new command (its State, Attempt, TaskToken
// set by the caller). An ID already stored gives ErrConflict.
func (s *Store) InsertAgentCommand(ctx context.Context, c AgentCommand) error {
	now := dbTime(s.now())
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO agent_commands (`+agentCommandColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		c.ID, c.ServerID, c.Deployment, c.Kind, c.Payload, c.State, c.Attempt, c.Heartbeat, c.TaskToken, c.Lease, c.Result, now, now)
	if cl := classify(err); cl == uniqueViolation || cl == primaryKeyViolation {
		return fmt.Errorf("insert agent command %s: %w", c.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert agent command %s: %w", c.ID, err)
	}
	return nil
}

// GetAgentCommand returns the command id, or ErrNotFound.
func (s *Store) GetAgentCommand(ctx context.Context, id string) (AgentCommand, error) {
	var r agentCommandRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT `+agentCommandColumns+` FROM agent_commands WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return AgentCommand{}, fmt.Errorf("agent command %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return AgentCommand{}, fmt.Errorf("get agent command %s: %w", id, err)
	}
	return r.command(), nil
}

// ReissueAgentCommand puts a command that is not done back to pending with a
// new attempt's sealed task token (the lease it had is void), and reports
// whether it did; false means the command is done (or gone).
func (s *Store) ReissueAgentCommand(ctx context.Context, id string, attempt, heartbeat int, taskToken []byte) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_commands
		SET state = ?, lease = '', attempt = ?, heartbeat_s = ?, task_token = ?, updated_at = ?
		WHERE id = ? AND state <> ?`),
		AgentPending, attempt, heartbeat, taskToken, dbTime(s.now()), id, AgentDone)
	if err != nil {
		return false, fmt.Errorf("reissue agent command %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("reissue agent command %s: %w", id, err)
	}
	return n == 1, nil
}

// ClaimAgentCommand hands serverID's oldest pending command out under lease
// and returns it; false when none is pending. Two claimers never get the
// same hand-out: the update is conditional on the command still pending.
func (s *Store) ClaimAgentCommand(ctx context.Context, serverID, lease string) (AgentCommand, bool, error) {
	for range 5 { // another claimer may win the race for the oldest; try the next
		var id string
		err := s.db.GetContext(ctx, &id, s.q(`SELECT id FROM agent_commands WHERE server_id = ? AND state = ?
			ORDER BY updated_at, id LIMIT 1`), serverID, AgentPending)
		if errors.Is(err, sql.ErrNoRows) {
			return AgentCommand{}, false, nil
		}
		if err != nil {
			return AgentCommand{}, false, fmt.Errorf("claim agent command of server %s: %w", serverID, err)
		}
		res, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_commands SET state = ?, lease = ?, updated_at = ?
			WHERE id = ? AND state = ?`), AgentLeased, lease, dbTime(s.now()), id, AgentPending)
		if err != nil {
			return AgentCommand{}, false, fmt.Errorf("claim agent command %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return AgentCommand{}, false, fmt.Errorf("claim agent command %s: %w", id, err)
		} else if n == 1 {
			c, err := s.GetAgentCommand(ctx, id)
			return c, err == nil, err
		}
	}
	return AgentCommand{}, false, nil
}

// FinishAgentCommand records result for the command handed out under lease
// and marks it done, and reports whether it did; false means lease is not
// the command's current hand-out (or the command is done already).
func (s *Store) FinishAgentCommand(ctx context.Context, id, lease, result string) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_commands SET state = ?, result = ?, updated_at = ?
		WHERE id = ? AND lease = ? AND state = ?`), AgentDone, result, dbTime(s.now()), id, lease, AgentLeased)
	if err != nil {
		return false, fmt.Errorf("finish agent command %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("finish agent command %s: %w", id, err)
	}
	return n == 1, nil
}

// NoteAgentBoot records boot as the boot ID of serverID's agent process and,
// when it differs from the one recorded before (the agent started anew, or
// polls for the first time), puts every command of serverID handed out
// (leased) back to pending, in the same transaction: their leases void (a
// result posted under one is refused as stale), their attempt and task
// token kept, so the hub hands them to the new process at once, within the
// same activity attempt, instead of after the attempt's heartbeat timeout.
// However many API processes see the new boot, and whether they started
// before or after it, its commands are handed out again once.
// It reports whether the boot was new and how many commands it moved. An
// unknown server (no credential) is no error: nothing is recorded.
func (s *Store) NoteAgentBoot(ctx context.Context, serverID, boot string) (changed bool, requeued int, err error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return false, 0, fmt.Errorf("note agent boot of server %s: %w", serverID, err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE agent_servers SET boot_id = ? WHERE id = ? AND boot_id <> ?`), boot, serverID, boot)
	if err != nil {
		return false, 0, fmt.Errorf("note agent boot of server %s: %w", serverID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, 0, fmt.Errorf("note agent boot of server %s: %w", serverID, err)
	} else if n == 0 {
		return false, 0, nil // the same boot (or no such server)
	}
	res, err = tx.ExecContext(ctx, s.q(`UPDATE agent_commands SET state = ?, lease = '', updated_at = ?
		WHERE server_id = ? AND state = ?`), AgentPending, dbTime(s.now()), serverID, AgentLeased)
	if err != nil {
		return false, 0, fmt.Errorf("requeue agent commands of server %s: %w", serverID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, 0, fmt.Errorf("requeue agent commands of server %s: %w", serverID, err)
	}
	if err := tx.Commit(); err != nil {
		return false, 0, fmt.Errorf("note agent boot of server %s: %w", serverID, err)
	}
	return true, int(n), nil
}

// NoteAgentPoll records that serverID's agent counts as gone if it has
// not polled again by silentAfter (the hub sets it at each poll's start
// and end).
func (s *Store) NoteAgentPoll(ctx context.Context, serverID string, silentAfter time.Time) error {
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_servers SET silent_after = ? WHERE id = ?`), dbTime(silentAfter), serverID); err != nil {
		return fmt.Errorf("note agent poll of server %s: %w", serverID, err)
	}
	return nil
}

// AgentSilentAfter returns serverID's silent_after (when its agent counts
// as gone if it has not polled again) and whether the server still has an
// agent: false once its credential is deleted (the server is gone). A zero
// time is an agent not heard since liveness was recorded. A batch chunk
// waiting on the agent reads it (predictions/batch), as its command has no
// task token for the hub to fail.
func (s *Store) AgentSilentAfter(ctx context.Context, serverID string) (time.Time, bool, error) {
	var at *dbTime
	err := s.db.GetContext(ctx, &at, s.q(`SELECT silent_after FROM agent_servers WHERE id = ?`), serverID)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("silence of the agent of server %s: %w", serverID, err)
	}
	if at == nil {
		return time.Time{}, true, nil
	}
	return time.Time(*at), true, nil
}

// SilentAgentLeases returns the commands handed out (leased) to agents that
// have not polled by their silent_after, as of now.
func (s *Store) SilentAgentLeases(ctx context.Context, now time.Time) ([]AgentCommand, error) {
	var rows []agentCommandRow
	err := s.db.SelectContext(ctx, &rows, s.q(`SELECT `+prefixColumns("c.", agentCommandColumns)+`
		FROM agent_commands c JOIN agent_servers s ON s.id = c.server_id
		WHERE c.state = ? AND s.silent_after IS NOT NULL AND s.silent_after < ?
		ORDER BY c.updated_at, c.id`), AgentLeased, dbTime(now))
	if err != nil {
		return nil, fmt.Errorf("list silent agents' commands: %w", err)
	}
	out := make([]AgentCommand, len(rows))
	for i, r := range rows {
		out[i] = r.command()
	}
	return out, nil
}

// RequeueAgentLease puts command id back to pending if it is still handed
// out under lease (its lease void, its attempt and task token kept), and
// reports whether it did: of several callers for one hand-out, one wins.
func (s *Store) RequeueAgentLease(ctx context.Context, id, lease string) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_commands SET state = ?, lease = '', updated_at = ?
		WHERE id = ? AND state = ? AND lease = ?`), AgentPending, dbTime(s.now()), id, AgentLeased, lease)
	if err != nil {
		return false, fmt.Errorf("requeue agent command %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("requeue agent command %s: %w", id, err)
	}
	return n == 1, nil
}

// prefixColumns qualifies each of a comma-separated column list with p.
func prefixColumns(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}
