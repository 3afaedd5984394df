// Package agenthub is the platform's side of the command channel to the
// server agents (package agent/link is the agent's side, agent/protocol the
// wire format between them).
//
// A workflow that needs something done on a server runs the generic activity
// RunOnServer with a command (server, deterministic command ID, kind, a
// payload of references). The activity records the command with its Temporal
// task token (sealed) and returns activity.ErrResultPending: it holds no
// worker slot and no goroutine while the agent works. The agent long-polls
// the API (NextCommand), posts progress (CommandProgress: an activity
// heartbeat, and lines in the deployment's event log) and its result
// (CommandResult: client.CompleteActivity). An agent that vanishes stops
// heartbeating; the activity times out and Temporal retries it; the retry
// re-records the command with the new attempt's token, which voids the old
// hand-out's lease, and the command is handed out again. A command whose
// result is stored completes at once on any later attempt. An agent that
// was killed and started again (its supervisor restarts it in a second or
// two) says so on its first poll (a new boot ID): the commands its previous
// process held are handed out again at once, within the same attempt, with
// new leases, instead of after the heartbeat timeout. The boot IDs are
// kept in the store, so an API restart (or another API process) re-hands
// nothing to an agent that did not restart. An agent that vanishes without
// restarting (stopped, hung, cut off) stops polling: once it has not polled
// for twice its long-poll period, the hub voids its leases and fails the
// commands' activity attempts (retryable, ErrTypeAgentSilent), so the step
// hears of it within seconds, not at the heartbeat timeout, and the retry
// hands the command out again when the agent polls.
//
// Agents authenticate with a per-server credential (MintCredential: "ag_" and
// 32 random bytes; only its SHA-256 is stored) that is good for that server's
// commands only. Task tokens, which let whoever holds one complete the
// activity, never leave the platform: they are sealed at rest and the agent
// sees only its lease.
package agenthub

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/store"
)

// Store is what the hub keeps; *store.Store implements it.
type Store interface {
	SetAgentCredential(ctx context.Context, serverID, credentialHash string) error
	AgentServerByCredential(ctx context.Context, credentialHash string) (string, error)
	DeleteAgentCredential(ctx context.Context, serverID string) error
	InsertAgentCommand(ctx context.Context, c store.AgentCommand) error
	GetAgentCommand(ctx context.Context, id string) (store.AgentCommand, error)
	ReissueAgentCommand(ctx context.Context, id string, attempt, heartbeat int, taskToken []byte) (bool, error)
	ClaimAgentCommand(ctx context.Context, serverID, lease string) (store.AgentCommand, bool, error)
	NoteAgentBoot(ctx context.Context, serverID, boot string) (changed bool, requeued int, err error)
	NoteAgentPoll(ctx context.Context, serverID string, silentAfter time.Time) error
	SilentAgentLeases(ctx context.Context, now time.Time) ([]store.AgentCommand, error)
	RequeueAgentLease(ctx context.Context, id, lease string) (bool, error)
	FinishAgentCommand(ctx context.Context, id, lease, result string) (bool, error)
	// AddEvent appends a line to a deployment's progress log.
	AddEvent(ctx context.Context, algorithmID, kind, message string) error
}

var _ Store = (*store.Store)(nil)

// Temporal is the part of the Temporal client the hub uses to finish and
// heartbeat activities by task token; client.Client implements it.
type Temporal interface {
	CompleteActivity(ctx context.Context, taskToken []byte, result interface{}, err error) error
	RecordActivityHeartbeat(ctx context.Context, taskToken []byte, details ...interface{}) error
}

// Config is what New needs. Store and Key are required; Temporal is required
// by the API side (the handlers complete activities) and may be nil in a
// worker-only hub, which only records commands.
type Config struct {
	Store    Store
	Temporal Temporal
	// Key (32 bytes, the platform key) seals the task tokens at rest; API and
	// worker need the same one, as for every sealed thing.
	Key []byte
	// PollEvery is how often a long poll looks in the store for a command
	// recorded by another process (API and worker apart); a command recorded
	// by this process wakes the poll at once. 0 means one second.
	PollEvery time.Duration
	// EventKind is the kind of the event-log lines progress makes for a
	// command without a kind; "" means "agent". A command's lines are
	// logged under its own kind (install, test, serve…).
	EventKind string
	// Blobs keeps the artifacts agents upload (artifacts.go); nil refuses
	// uploads (ErrNoBlobs). API and worker need the same store.
	Blobs blobs.Store
	// SilenceEvery is how often a hub with Temporal looks for agents that
	// stopped polling with commands in hand (silence.go); 0 means one
	// second, negative never.
	SilenceEvery time.Duration
	// SilenceGrace is how long after New the hub starts looking: an agent
	// that was polling the API before it (re)started needs its backoff to
	// poll again. 0 means 30 s.
	SilenceGrace time.Duration
	Logger       *slog.Logger
}

// Hub is the command channel's platform side. It is safe for concurrent use.
type Hub struct {
	store     Store
	temporal  Temporal
	aead      cipher.AEAD
	pollEvery time.Duration
	eventKind string
	blobs     blobs.Store
	log       *slog.Logger

	mu      sync.Mutex
	wakeups map[string]chan struct{} // per server; closed (and replaced) when a command for it is recorded
	// changes is, per command, the channel closed (and forgotten) when
	// this process stores an artifact or a result of it (Changed).
	changes map[string]chan struct{}
	// boots is, per server, the boot ID of the agent process that polled
	// this process last (NextCommand), a cache of the store's (which
	// decides: a new one there means the agent started anew, and the
	// commands the previous process held are handed out again).
	boots map[string]string
	// closing is closed by Close: long polls answer "none" at once.
	closing   chan struct{}
	closeOnce sync.Once
}

// New returns a Hub.
func New(cfg Config) (*Hub, error) {
	if cfg.Store == nil {
		return nil, errors.New("agenthub: no store")
	}
	if len(cfg.Key) != 32 {
		return nil, fmt.Errorf("agenthub: key is %d bytes, want 32", len(cfg.Key))
	}
	// A key of its own, derived from the platform key, so a task token sealed
	// here is never openable as anything else the platform key seals.
	mac := hmac.New(sha256.New, cfg.Key)
	mac.Write([]byte("algocloud agenthub task-token key v1"))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("agenthub: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("agenthub: %w", err)
	}
	h := &Hub{
		store: cfg.Store, temporal: cfg.Temporal, aead: aead, pollEvery: cfg.PollEvery,
		eventKind: cfg.EventKind, blobs: cfg.Blobs, log: cfg.Logger, wakeups: map[string]chan struct{}{}, changes: map[string]chan struct{}{}, boots: map[string]string{},
		closing: make(chan struct{}),
	}
	if h.pollEvery <= 0 {
		h.pollEvery = time.Second
	}
	if h.eventKind == "" {
		h.eventKind = "agent"
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.temporal != nil && cfg.SilenceEvery >= 0 {
		go h.watchSilence(cmp.Or(cfg.SilenceEvery, time.Second), cmp.Or(cfg.SilenceGrace, 30*time.Second))
	}
	return h, nil
}

// Close ends every long poll now and later (each answers that no command
// came), so that the API's graceful shutdown need not wait for them; the
// agents poll again, elsewhere or when the API is back.
func (h *Hub) Close() {
	h.closeOnce.Do(func() { close(h.closing) })
}

// MintCredential makes a new credential for serverID, replacing any earlier
// one (which stops working at once), and returns its plaintext: "ag_" and 32
// random bytes in unpadded base64url. Only its SHA-256 is stored; the caller
// hands the plaintext to the server (sealed, like the bundle keys) and keeps
// no copy.
func (h *Hub) MintCredential(ctx context.Context, serverID string) (string, error) {
	if err := protocol.ValidID(serverID); err != nil {
		return "", fmt.Errorf("mint agent credential: server id: %w", err)
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", fmt.Errorf("mint agent credential: %w", err)
	}
	plaintext := protocol.CredentialPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	if err := h.store.SetAgentCredential(ctx, serverID, hashCredential(plaintext)); err != nil {
		return "", fmt.Errorf("mint agent credential: %w", err)
	}
	return plaintext, nil
}

// RegisterCredential makes plaintext, a credential its caller derived
// (MintCredential's form: "ag_" and 32 bytes in unpadded base64url), the
// credential of serverID, replacing any earlier one. Registering the one
// already there changes nothing, so a retried launch that derives the same
// credential keeps the one an instance already holds valid (the EC2
// provider; see ec2.AgentCredential). Only its SHA-256 is stored.
func (h *Hub) RegisterCredential(ctx context.Context, serverID, plaintext string) error {
	if err := protocol.ValidID(serverID); err != nil {
		return fmt.Errorf("register agent credential: server id: %w", err)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(plaintext, protocol.CredentialPrefix))
	if err != nil || !strings.HasPrefix(plaintext, protocol.CredentialPrefix) || len(b) != 32 {
		return errors.New("register agent credential: not \"ag_\" and 32 bytes in unpadded base64url")
	}
	if err := h.store.SetAgentCredential(ctx, serverID, hashCredential(plaintext)); err != nil {
		return fmt.Errorf("register agent credential: %w", err)
	}
	return nil
}

// RevokeCredential removes serverID's credential (the server is gone).
func (h *Hub) RevokeCredential(ctx context.Context, serverID string) error {
	return h.store.DeleteAgentCredential(ctx, serverID)
}

// hashCredential is how a credential is kept and looked up: 256 random bits
// need no salt nor a slow hash (the same reasoning as the API tokens).
func hashCredential(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

// sealToken encrypts a task token, bound to its command ID.
func (h *Hub) sealToken(commandID string, token []byte) ([]byte, error) {
	nonce := make([]byte, h.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal task token: %w", err)
	}
	return h.aead.Seal(nonce, nonce, token, []byte("task-token\x00"+commandID)), nil
}

// openToken reverses sealToken.
func (h *Hub) openToken(commandID string, sealed []byte) ([]byte, error) {
	n := h.aead.NonceSize()
	if len(sealed) < n {
		return nil, fmt.Errorf("open task token of %s: too short", commandID)
	}
	t, err := h.aead.Open(nil, sealed[:n], sealed[n:], []byte("task-token\x00"+commandID))
	if err != nil {
		return nil, fmt.Errorf("open task token of %s (another platform key?): %w", commandID, err)
	}
	return t, nil
}

// wakeup returns the channel closed when a command for server is next
// recorded by this process.
func (h *Hub) wakeup(server string) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.wakeups[server]
	if !ok {
		ch = make(chan struct{})
		h.wakeups[server] = ch
	}
	return ch
}

// notify wakes this process's long polls of server.
func (h *Hub) notify(server string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.wakeups[server]; ok {
		close(ch)
		delete(h.wakeups, server)
	}
}

// Changed returns a channel closed when this process next stores an
// artifact or the result of command commandID: a waited command's issuer
// (a batch chunk) selects on it beside its poll of the store, so a part or
// a result is seen when it lands rather than at the next tick, with the
// endpoint idle meanwhile. Only this process's uploads close it (the API
// and the worker may be two processes), so the issuer keeps its poll as
// the fallback. Take the channel before looking in the store, so that
// something stored after the look still closes it. Call stop when no
// longer waiting (a command abandoned or canceled is never notified
// again): it forgets the channel unless it was closed or replaced.
func (h *Hub) Changed(commandID string) (changed <-chan struct{}, stop func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.changes[commandID]
	if !ok {
		ch = make(chan struct{})
		h.changes[commandID] = ch
	}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.changes[commandID] == ch {
			delete(h.changes, commandID)
		}
	}
}

// notifyChanged closes command commandID's Changed channel, if one was
// taken; the next Changed makes a new one. A channel nobody waits on is
// forgotten here too, so the map holds only commands being watched.
func (h *Hub) notifyChanged(commandID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.changes[commandID]; ok {
		close(ch)
		delete(h.changes, commandID)
	}
}

// newLease names one hand-out of a command: 128 random bits, unguessable, so
// an answer can be tied to the hand-out it answers.
func newLease() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new lease: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// storedResult is what the store keeps of a Result: the answer without the
// lease it came under, so a re-sent answer compares equal under any lease.
type storedResult struct {
	OK     bool            `json:"ok"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
}

func encodeResult(r protocol.Result) (string, error) {
	b, err := json.Marshal(storedResult{OK: r.OK, Output: r.Output, Error: r.Error})
	if err != nil {
		return "", fmt.Errorf("encode result of %s: %w", r.CommandID, err)
	}
	return string(b), nil
}
