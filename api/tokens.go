package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/workflows"
)

// EndpointTokenPrefix starts every endpoint token, so a leaked one is
// recognisable (and told apart from API tokens).
const EndpointTokenPrefix = "ep_"

// newEndpointToken makes an endpoint token (256 random bits) and its SHA-256 hex.
func newEndpointToken() (token, sha256hex string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("read random bytes: %w", err)
	}
	token = EndpointTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(sum[:]), nil
}

// tokenRequest names a new API token.
type tokenRequest struct {
	Name string `json:"name"`
}

// tokenResponse shows a new token once.
type tokenResponse struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Token     string    `json:"token"`
	CreatedAt time.Time `json:"created_at"`
	TokenNote string    `json:"token_note"`
}

// createToken issues another API token for the caller.
func (s *server) createToken(c *gin.Context) {
	var r tokenRequest
	if e := decodeJSON(c, &r, false); e != nil {
		writeError(c, e)
		return
	}
	r.Name = strings.TrimSpace(r.Name)
	switch {
	case r.Name == "":
		writeError(c, errField(errcode.InvalidRequest, "name", "is required"))
		return
	case len(r.Name) > 100:
		writeError(c, errField(errcode.InvalidRequest, "name", "must be at most 100 characters"))
		return
	}
	plain, t, err := s.store.CreateToken(c.Request.Context(), user(c).ID, r.Name)
	if err != nil {
		s.fail(c, "create token", err)
		return
	}
	c.JSON(http.StatusCreated, tokenResponse{
		ID: t.ID, Name: t.Name, Token: plain, CreatedAt: t.CreatedAt,
		TokenNote: "shown only now: only its hash is kept",
	})
}

// rotateTokenResponse is the answer of POST .../token.
type rotateTokenResponse struct {
	DeploymentID string `json:"deployment_id"`
	Token        string `json:"token"`
	TokenNote    string `json:"token_note"`
}

// rotateToken makes a new endpoint token and hands its hash to the workflow
// (the rotate_token update), which, for a live deployment, pushes it to the
// running endpoint before it answers: when the caller reads the new token,
// the endpoint already refuses the old one (no restart, no Complete needed).
// A stopped or draft deployment stores it for its next start. While another
// step runs the rotation is refused with 409 step_rejected (retry once it
// finished). The hash is stored (for later Completes) only once the
// workflow took it, so a refused rotation changes nothing.
func (s *server) rotateToken(c *gin.Context) {
	a := deployment(c)
	ctx := c.Request.Context()
	if e := decodeJSON(c, &struct{}{}, true); e != nil {
		writeError(c, e)
		return
	}
	token, hash, err := newEndpointToken()
	if err != nil {
		s.fail(c, "make endpoint token", err)
		return
	}
	st, err := s.wf.Update(ctx, a.ID, workflows.UpdateRotateToken, workflows.RotateTokenRequest{TokenSHA256: hash})
	if err != nil {
		s.stepFailure(c, a, err)
		return
	}
	if err := s.store.SetEndpointTokenHash(context.WithoutCancel(ctx), a.ID, hash); err != nil {
		// The workflow (and a live endpoint) already use this token;
		// answering it is the only way its owner learns it.
		s.log.ErrorContext(ctx, "store endpoint token hash", "deployment", a.ID, "error", err)
	}
	note := "shown only now: only its hash is kept. "
	if st.Status == workflows.StatusLive {
		note += "The endpoint accepts it now and refuses the previous token"
	} else {
		note += "The deployment is " + st.Status + ": the endpoint accepts this token (and no other) when it next starts"
	}
	c.JSON(http.StatusCreated, rotateTokenResponse{DeploymentID: a.ID, Token: token, TokenNote: note})
}
