// Package protocol is the wire format of the command channel between the
// platform (package agenthub, served by the API under /api/agent/v1) and the
// server agent that runs on every server (package agent/link): the commands
// the platform hands out, the progress an agent reports while it works and
// the result it answers with. It is JSON over HTTPS, versioned by Version,
// and has no dependencies beyond the standard library so that the agent's
// binary stays small and free of the platform's packages.
//
// The exchange, for one server S holding its credential (Authorization:
// Bearer ag_...):
//
//	GET  /api/agent/v1/servers/S/commands/next?wait=25s&boot=B   200 Command, or 204 when none came in time
//	POST /api/agent/v1/servers/S/commands/ID/progress     Progress: 204
//	POST /api/agent/v1/servers/S/commands/ID/result       Result: 200 Ack
//
// Every Progress and Result carries the Lease of the hand-out it answers: a
// command is handed out again (with a new lease) when the platform gave up
// on the previous hand-out, and what is posted under an older lease is
// refused, so a replayed or late answer never completes a newer attempt.
//
// The poll's boot parameter (optional; an agent without it is served as
// before) is a random ID the agent process picks when it starts
// (NewBoot): when the platform sees a new one for S, the agent was started
// anew, and the commands S's previous process held are handed out again at
// once with new leases (the old leases refused from then on), rather than
// after the platform's heartbeat timeout notices the silence.
package protocol

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Version is the protocol's version. Requests carry it in the VersionHeader
// header; the platform refuses a version it does not speak (400
// agent_protocol_version) rather than misreading it.
const Version = "1"

// VersionHeader carries Version on every request and answer.
const VersionHeader = "Algocloud-Agent-Protocol"

// CredentialPrefix starts every server credential (then 32 random bytes in
// unpadded base64url), so a leaked one is easy to recognise.
const CredentialPrefix = "ag_"

// BasePath is where the platform serves the channel.
const BasePath = "/api/agent/v1"

// MaxWait is the longest a GET of the next command is held open by the
// platform; a proxy with a 30 s idle timeout then never cuts a poll.
const MaxWait = 25 * time.Second

// Limits the platform enforces on what an agent posts.
const (
	// MaxLines is the most progress lines one Progress may carry.
	MaxLines = 200
	// MaxBody is the largest request body (Progress or Result) in bytes.
	MaxBody = 1 << 20
	// MaxIDLength bounds a command ID and a server ID.
	MaxIDLength = 200
)

// Command is one thing the platform asks a server's agent to do.
type Command struct {
	// ID names the command; it is chosen by the workflow (deterministic, e.g.
	// workflow ID, step and code revision), so the same step asks for the
	// same ID on every attempt and an agent that already answered it answers
	// again from what it kept instead of running it twice.
	ID string `json:"id"`
	// Server is the server the command is for.
	Server string `json:"server"`
	// Kind says which of the agent's handlers runs it (e.g. "install",
	// "test", "swap"); an agent with no handler for a kind answers a failed
	// Result naming it.
	Kind string `json:"kind"`
	// Attempt is the platform's attempt number of the step (1 first); it
	// grows when the platform gave up on a hand-out and sent it again.
	Attempt int `json:"attempt"`
	// Lease names this hand-out; Progress and Result must carry it.
	Lease string `json:"lease"`
	// HeartbeatSeconds is how often, at least, the agent must post Progress
	// (lines or none) while it works, or the platform decides the agent
	// vanished and hands the command out again.
	HeartbeatSeconds int `json:"heartbeat_seconds,omitempty"`
	// Payload is the kind's input: references (a revision, a blob key), never
	// a secret.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Progress is what an agent reports while a command runs: output lines (pip's,
// a test's) for the deployment's progress log, and, even with no lines, a
// sign of life.
type Progress struct {
	CommandID string   `json:"command_id"`
	Lease     string   `json:"lease"`
	Lines     []string `json:"lines,omitempty"`
}

// Result is an agent's answer to a command: OK with the kind's Output, or
// not OK with Error saying why.
type Result struct {
	CommandID string          `json:"command_id"`
	Lease     string          `json:"lease"`
	OK        bool            `json:"ok"`
	Output    json.RawMessage `json:"output,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// Ack is the platform's answer to a Result. Duplicate is true when the command
// was already completed with this very result (an agent re-sending an answer
// whose acknowledgement it lost); it is still a success.
type Ack struct {
	CommandID string `json:"command_id"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// ErrorBody is the JSON body of every refusal (the platform API's error
// shape): a stable Code to branch on and a Message for people.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Refusals the platform answers; the agent's client and the platform's
// handlers branch on them with errors.Is.
var (
	// ErrForbidden: the credential is valid but not for this server, or the
	// command belongs to another server (403 agent_forbidden).
	ErrForbidden = errors.New("forbidden: not this server's")
	// ErrUnknownCommand: no command has this ID (404 agent_command_not_found).
	ErrUnknownCommand = errors.New("no such command")
	// ErrStaleLease: the lease is not the command's current hand-out (a late
	// or replayed answer, or one for a command not handed out now; 409
	// agent_stale_lease). The agent drops it; the command comes back with a
	// new lease if the platform still wants it.
	ErrStaleLease = errors.New("stale lease: not the command's current hand-out")
	// ErrCommandDone: the command is already completed with another result
	// (409 agent_command_done).
	ErrCommandDone = errors.New("command already completed")
	// ErrUnavailable: the platform could not pass the progress or result on
	// to its workflow service now (503 temporal_unavailable); the agent
	// sends it again.
	ErrUnavailable = errors.New("the platform cannot pass it on now; try again")
	// ErrArtifactTooLarge: an artifact is over MaxArtifact (413
	// body_too_large).
	ErrArtifactTooLarge = errors.New("artifact over the size limit")
)

// ValidID reports why id cannot be a command or server ID: it must be 1 to
// MaxIDLength printable ASCII characters without "/", so it fits in a URL
// path segment unchanged and in a log line unescaped.
func ValidID(id string) error {
	if id == "" {
		return errors.New("empty")
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("longer than %d characters", MaxIDLength)
	}
	for _, r := range id {
		if r <= ' ' || r > '~' || r == '/' || r == '%' || r == '?' || r == '#' {
			return fmt.Errorf("character %q is not allowed (printable ASCII without space, /, %%, ? or #)", r)
		}
	}
	return nil
}

// CommandPath is the path of one command's sub-resource ("progress",
// "result") for server, under BasePath.
func CommandPath(server, commandID, what string) string {
	return strings.Join([]string{BasePath, "servers", server, "commands", commandID, what}, "/")
}

// NextPath is the long-poll path of server's next command.
func NextPath(server string) string {
	return strings.Join([]string{BasePath, "servers", server, "commands", "next"}, "/")
}

// NewBoot returns a new boot ID: 128 random bits in hex, picked once per
// agent process.
func NewBoot() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(b[:])
}

// ValidBoot reports why boot cannot be a boot ID: 8 to 64 hex digits.
func ValidBoot(boot string) error {
	if len(boot) < 8 || len(boot) > 64 {
		return errors.New("must be 8 to 64 hex digits")
	}
	for _, r := range boot {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return fmt.Errorf("character %q is not a lowercase hex digit", r)
		}
	}
	return nil
}

// MaxArtifact is the largest artifact (a test's output) an agent may upload
// for one command.
const MaxArtifact = 32 << 20

// ArtifactPath is where an agent PUTs a file a command made (a test's
// output image) under the command's current lease (in the VersionHeader's
// company, header LeaseHeader), before it posts the Result that names it:
// results stay small JSON and workflow histories hold references only. name
// is 1 to 64 letters, digits, '.', '_' or '-'.
func ArtifactPath(server, commandID, name string) string {
	return strings.Join([]string{BasePath, "servers", server, "commands", commandID, "artifacts", name}, "/")
}

// LeaseHeader carries the lease an artifact upload is made under.
const LeaseHeader = "Algocloud-Agent-Lease"

// ValidArtifactName reports why name cannot name an artifact: 1 to 64
// letters, digits, '.', '_' or '-', not starting with '.', so it is one
// path segment and one blob key segment unchanged.
func ValidArtifactName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > 64 {
		return errors.New("longer than 64 characters")
	}
	if name[0] == '.' {
		return errors.New("starts with '.'")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("character %q is not allowed (letters, digits, '.', '_', '-')", r)
		}
	}
	return nil
}

// InputPath is where an agent GETs the input object of a command that has
// one (a batch chunk's packed items, commands.Batch), under the command's
// current lease (header LeaseHeader): only the server the command was
// issued to may read it, so a command's payload carries no input bytes.
func InputPath(server, commandID string) string {
	return strings.Join([]string{BasePath, "servers", server, "commands", commandID, "input"}, "/")
}

// MaxInput is the largest input object a command may have (a batch chunk's
// packed items): the platform packs a chunk's items into one object only
// while they fit, and runs the chunk itself otherwise.
const MaxInput = 512 << 20
