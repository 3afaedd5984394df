package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/store"
)

// AgentHub is the platform's side of the server agents' command channel
// (package agenthub implements it), served under /api/agent/v1. Every method
// but AuthenticateAgent is called for a request already authenticated as
// serverID. Refusals wrap agent/protocol's errors (ErrForbidden,
// ErrUnknownCommand, ErrStaleLease, ErrCommandDone, ErrUnavailable);
// AuthenticateAgent's wraps store.ErrUnauthorized.
type AgentHub interface {
	// AuthenticateAgent returns the server a credential belongs to.
	AuthenticateAgent(ctx context.Context, credential string) (serverID string, err error)
	// NextCommand hands out serverID's next command, waiting up to wait;
	// nil when none came. boot is the polling agent process's boot ID
	// ("" when it sends none): a new one hands out again at once what the
	// server's previous agent process held.
	NextCommand(ctx context.Context, serverID, boot string, wait time.Duration) (*protocol.Command, error)
	// CommandProgress records progress of a command handed out to serverID.
	CommandProgress(ctx context.Context, serverID string, p protocol.Progress) error
	// CommandResult records serverID's answer to a command.
	CommandResult(ctx context.Context, serverID string, r protocol.Result) (protocol.Ack, error)
	// PutArtifact stores a file a command of serverID's made (at most
	// protocol.MaxArtifact bytes), uploaded under the command's lease.
	PutArtifact(ctx context.Context, serverID, commandID, lease, name string, body io.Reader) error
}

// agentServerKey is where authenticateAgent leaves the caller's server ID.
const agentServerKey = "algocloud.agent-server"

// defaultAgentWait is a poll's wait when the agent names none.
const defaultAgentWait = 20 * time.Second

// agentRoutes mounts the channel. The routes take a server credential only,
// never a user's API token: an agent is not a user, and a user's token must
// not fetch or answer a server's commands.
func (s *server) agentRoutes(e *gin.Engine) {
	g := e.Group(protocol.BasePath+"/servers/:server", s.authenticateAgent)
	g.GET("/commands/next", s.nextAgentCommand)
	g.POST("/commands/:command/progress", s.agentProgress)
	g.POST("/commands/:command/result", s.agentResult)
	g.PUT("/commands/:command/artifacts/:name", s.agentArtifact)
	g.GET("/commands/:command/input", s.agentInput)
}

// AgentInputs is the optional part of an AgentHub that serves commands'
// input objects (a batch chunk's packed items; agenthub implements it).
type AgentInputs interface {
	// CommandInput opens the input object of a command serverID holds
	// under lease.
	CommandInput(ctx context.Context, serverID, commandID, lease string) (io.ReadCloser, error)
}

// agentInput sends a command's input object to the agent that holds the
// command: only that server, under the command's current lease.
func (s *server) agentInput(c *gin.Context) {
	in, ok := s.agents.(AgentInputs)
	if !ok {
		writeError(c, errNotFound("this platform serves no command inputs"))
		return
	}
	lease := c.GetHeader(protocol.LeaseHeader)
	if lease == "" {
		writeError(c, errField(errcode.InvalidHeader, protocol.LeaseHeader, "send the command's lease"))
		return
	}
	rc, err := in.CommandInput(c.Request.Context(), c.GetString(agentServerKey), c.Param("command"), lease)
	switch {
	case errors.Is(err, blobs.ErrNotFound):
		writeError(c, errNotFound("command "+c.Param("command")+" has no input"))
		return
	case err != nil:
		s.agentFailure(c, "agent input", err)
		return
	}
	defer rc.Close()
	if c.Query("check") != "" {
		// The agent only asks whether the command still runs (a batch
		// chunk polls this to stop promptly when its batch is canceled).
		c.Status(http.StatusNoContent)
		return
	}
	c.Header("Content-Type", "application/octet-stream")
	c.Status(http.StatusOK)
	if _, err := io.Copy(c.Writer, rc); err != nil {
		s.log.WarnContext(c.Request.Context(), "agent input cut short", "command", c.Param("command"), "error", err)
	}
}

// authenticateAgent checks the protocol version and resolves the Bearer
// credential into the server it belongs to, which must be the path's.
func (s *server) authenticateAgent(c *gin.Context) {
	c.Header(protocol.VersionHeader, protocol.Version)
	if s.agents == nil {
		writeError(c, errNotFound("this platform serves no server agents"))
		return
	}
	if v := c.GetHeader(protocol.VersionHeader); v != protocol.Version {
		writeError(c, errorf(errcode.AgentProtocol, "header %s is %q; this platform speaks %q", protocol.VersionHeader, v, protocol.Version))
		return
	}
	scheme, cred, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	cred = strings.TrimSpace(cred)
	if !ok || !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(cred, protocol.CredentialPrefix) {
		c.Header("WWW-Authenticate", `Bearer realm="algocloud-agent"`)
		writeError(c, errUnauthorized("send the server's credential: Authorization: Bearer ag_..."))
		return
	}
	server, err := s.agents.AuthenticateAgent(c.Request.Context(), cred)
	if err != nil {
		if errors.Is(err, store.ErrUnauthorized) {
			c.Header("WWW-Authenticate", `Bearer realm="algocloud-agent", error="invalid_token"`)
			writeError(c, errUnauthorized("the server credential is unknown or was replaced"))
			return
		}
		s.fail(c, "authenticate agent", err)
		return
	}
	if server != c.Param("server") {
		writeError(c, &apiError{Code: errcode.AgentForbidden, Message: "this credential is not for server " + c.Param("server")})
		return
	}
	c.Set(agentServerKey, server)
	c.Next()
}

// nextAgentCommand is the agent's long poll: 200 with a command, or 204 when
// none came within ?wait= (a Go duration, at most 25s; default 20s).
// ?boot= is the agent process's boot ID (protocol.ValidBoot).
func (s *server) nextAgentCommand(c *gin.Context) {
	wait := defaultAgentWait
	if q := c.Query("wait"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d < 0 || d > protocol.MaxWait {
			writeError(c, errField(errcode.InvalidQuery, "wait", "must be a duration from 0s to %s, like 20s", protocol.MaxWait))
			return
		}
		wait = d
	}
	boot := c.Query("boot")
	if err := protocol.ValidBoot(boot); boot != "" && err != nil {
		writeError(c, errField(errcode.InvalidQuery, "boot", "%s", err.Error()))
		return
	}
	cmd, err := s.agents.NextCommand(c.Request.Context(), c.GetString(agentServerKey), boot, wait)
	if err != nil {
		s.agentFailure(c, "next agent command", err)
		return
	}
	if cmd == nil {
		c.Status(http.StatusNoContent)
		return
	}
	c.JSON(http.StatusOK, cmd)
}

// agentProgress records output lines and a sign of life of a running command.
func (s *server) agentProgress(c *gin.Context) {
	var p protocol.Progress
	if e := decodeJSON(c, &p, false); e != nil {
		writeError(c, e)
		return
	}
	if e := checkCommandID(c, p.CommandID); e != nil {
		writeError(c, e)
		return
	}
	if len(p.Lines) > protocol.MaxLines {
		writeError(c, errField(errcode.InvalidField, "lines", "at most %d lines at a time", protocol.MaxLines))
		return
	}
	if err := s.agents.CommandProgress(c.Request.Context(), c.GetString(agentServerKey), p); err != nil {
		s.agentFailure(c, "agent progress", err)
		return
	}
	c.Status(http.StatusNoContent)
}

// agentResult records an agent's answer and completes its activity.
func (s *server) agentResult(c *gin.Context) {
	var r protocol.Result
	if e := decodeJSON(c, &r, false); e != nil {
		writeError(c, e)
		return
	}
	if e := checkCommandID(c, r.CommandID); e != nil {
		writeError(c, e)
		return
	}
	ack, err := s.agents.CommandResult(c.Request.Context(), c.GetString(agentServerKey), r)
	if err != nil {
		s.agentFailure(c, "agent result", err)
		return
	}
	c.JSON(http.StatusOK, ack)
}

// agentArtifact stores a file a command made (a test's output), which the
// agent uploads under the command's lease before posting the result that
// names it.
func (s *server) agentArtifact(c *gin.Context) {
	name := c.Param("name")
	if err := protocol.ValidArtifactName(name); err != nil {
		writeError(c, errField(errcode.InvalidArtifactName, "name", "artifact name %q: %v", name, err))
		return
	}
	lease := c.GetHeader(protocol.LeaseHeader)
	if lease == "" {
		writeError(c, errField(errcode.InvalidHeader, protocol.LeaseHeader, "send the command's lease"))
		return
	}
	if c.Request.ContentLength > protocol.MaxArtifact {
		writeError(c, errTooLarge(protocol.MaxArtifact))
		return
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, protocol.MaxArtifact)
	err := s.agents.PutArtifact(c.Request.Context(), c.GetString(agentServerKey), c.Param("command"), lease, name, body)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		c.Status(http.StatusNoContent)
	case errors.As(err, &tooBig), errors.Is(err, protocol.ErrArtifactTooLarge):
		writeError(c, errTooLarge(protocol.MaxArtifact))
	default:
		s.agentFailure(c, "agent artifact", err)
	}
}

// checkCommandID requires the body's command_id to be the path's.
func checkCommandID(c *gin.Context, id string) *apiError {
	if id != c.Param("command") {
		return errField(errcode.InvalidField, "command_id", "must be the command of the path (%s)", c.Param("command"))
	}
	return nil
}

// agentFailure answers a refusal of the channel with its code.
func (s *server) agentFailure(c *gin.Context, what string, err error) {
	switch {
	case errors.Is(err, protocol.ErrForbidden):
		writeError(c, &apiError{Code: errcode.AgentForbidden, Message: "the command is another server's"})
	case errors.Is(err, protocol.ErrUnknownCommand):
		writeError(c, &apiError{Code: errcode.AgentCommandNotFound, Message: "no command " + c.Param("command") + " was issued"})
	case errors.Is(err, protocol.ErrStaleLease):
		writeError(c, &apiError{Code: errcode.AgentStaleLease, Message: "the lease is not the command's current hand-out"})
	case errors.Is(err, protocol.ErrCommandDone):
		writeError(c, &apiError{Code: errcode.AgentCommandDone, Message: "the command is already completed with another result"})
	case errors.Is(err, protocol.ErrUnavailable):
		_ = c.Error(err)
		s.log.WarnContext(c.Request.Context(), what, "path", c.Request.URL.Path, "error", err)
		writeError(c, &apiError{Code: errcode.TemporalUnavailable, Message: "the workflow service did not take it; send it again shortly"})
	default:
		s.fail(c, what, err)
	}
}
