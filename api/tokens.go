package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
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
		writeError(c, errField("invalid_request", "name", "is required"))
		return
	case len(r.Name) > 100:
		writeError(c, errField("invalid_request", "name", "must be at most 100 characters"))
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

// rotateToken makes a new endpoint token and stores its hash. It does not touch
// the running endpoint: the token takes effect at the next Complete Deployment
// (POST .../steps/complete), which passes the stored hash to the workflow; for a
// live deployment whose code has not changed since, that restarts the endpoint
// with the new token and the old one stops working. Until then the old token
// keeps working.
func (s *server) rotateToken(c *gin.Context) {
	a := deployment(c)
	if e := decodeJSON(c, &struct{}{}, true); e != nil {
		writeError(c, e)
		return
	}
	token, hash, err := newEndpointToken()
	if err != nil {
		s.fail(c, "make endpoint token", err)
		return
	}
	if err := s.store.SetEndpointTokenHash(c.Request.Context(), a.ID, hash); err != nil {
		s.fail(c, "store endpoint token hash", err)
		return
	}
	c.JSON(http.StatusCreated, rotateTokenResponse{
		DeploymentID: a.ID, Token: token,
		TokenNote: "shown only now: only its hash is kept. It takes effect at the next Complete Deployment " +
			"(POST /api/v1/deployments/" + a.ID + "/steps/complete); until then the endpoint accepts the previous token",
	})
}
