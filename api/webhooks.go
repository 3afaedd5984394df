package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/predictions/webhook"
	"github.com/algocloud/algocloud/store"
)

// WebhookStore keeps endpoints' sealed webhook secrets and the delivery
// attempts the worker records; *store.Store implements it.
type WebhookStore interface {
	// SetWebhookSecret stores (or replaces) an algorithm's sealed secret.
	SetWebhookSecret(ctx context.Context, algorithmID string, sealed []byte) error
	// ListWebhookAttempts returns the attempts about subjectID, oldest first.
	ListWebhookAttempts(ctx context.Context, algorithmID, subjectID string, limit int) ([]store.WebhookAttempt, error)
}

var _ WebhookStore = (*store.Store)(nil)

// webhookSecretResponse is the answer of POST .../webhook_secret.
type webhookSecretResponse struct {
	DeploymentID string `json:"deployment_id"`
	Secret       string `json:"secret"`
	SecretNote   string `json:"secret_note"`
}

// createWebhookSecret makes the deployment's webhook signing secret, or a
// new one (the old one stops signing at once: deliveries sign at send
// time, retries of earlier events included). It is shown only in this
// answer; the store keeps it sealed with the credentials key, which the
// worker's delivery activity unseals when it signs.
func (s *server) createWebhookSecret(c *gin.Context) {
	a := deployment(c)
	ctx := c.Request.Context()
	if e := decodeJSON(c, &struct{}{}, true); e != nil {
		writeError(c, e)
		return
	}
	if s.webhooks == nil || len(s.credKey) == 0 {
		writeError(c, &apiError{Code: errcode.CredentialsUnavailable, Message: "this server has no encryption key or store for webhook secrets"})
		return
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		s.fail(c, "make webhook secret", err)
		return
	}
	sealed, err := webhook.SealSecret(s.credKey, a.ID, secret)
	if err != nil {
		s.fail(c, "seal webhook secret", err)
		return
	}
	if err := s.webhooks.SetWebhookSecret(ctx, a.ID, sealed); err != nil {
		s.fail(c, "store webhook secret", err)
		return
	}
	c.JSON(http.StatusCreated, webhookSecretResponse{
		DeploymentID: a.ID, Secret: secret,
		SecretNote: "shown only now: it is kept sealed. Every webhook of this deployment is signed with it from now on (docs/webhooks.md says how to verify)",
	})
}

// webhookAttempt is one delivery attempt as the API shows it.
type webhookAttempt struct {
	DeliveryID string    `json:"delivery_id"`
	Event      string    `json:"event"`
	URL        string    `json:"url"`
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
	StatusCode int       `json:"status_code"`
	Outcome    string    `json:"outcome"`
	Error      string    `json:"error,omitempty"`
}

// listWebhookAttempts lists the webhook delivery attempts about one
// prediction of the endpoint (authenticateEndpoint: its token or its
// owner's), oldest first. Attempts are kept per endpoint, so no other
// endpoint's show.
func (s *server) listWebhookAttempts(c *gin.Context) {
	s.writeWebhookAttempts(c, c.Param("id"))
}

// writeWebhookAttempts answers the attempts about subjectID (a prediction
// or a batch of the endpoint): {"attempts": [...]}, oldest first.
func (s *server) writeWebhookAttempts(c *gin.Context, subjectID string) {
	ctx := c.Request.Context()
	if s.webhooks == nil {
		writeError(c, errNotFound("this server keeps no webhook attempts"))
		return
	}
	alg := endpointOf(c)
	list, err := s.webhooks.ListWebhookAttempts(ctx, alg.ID, subjectID, 0)
	if err != nil {
		s.fail(c, "list webhook attempts", err)
		return
	}
	out := make([]webhookAttempt, 0, len(list))
	for _, a := range list {
		out = append(out, webhookAttempt{
			DeliveryID: a.DeliveryID, Event: a.Event, URL: a.URL, Attempt: a.Attempt, At: a.At,
			DurationMS: a.Duration.Milliseconds(), StatusCode: a.StatusCode, Outcome: a.Outcome, Error: a.Error,
		})
	}
	c.JSON(http.StatusOK, gin.H{"attempts": out})
}

// checkWebhookURL is the create-time check of a prediction's or batch's
// webhook URL against this server's webhook policy (Config.WebhookPolicy):
// nil, or a 400 naming field (e.g. "webhook") with what is wrong.
func (s *server) checkWebhookURL(field, raw string) *apiError {
	err := webhook.CheckURL(s.webhookPolicy, raw)
	if err == nil {
		return nil
	}
	var ue *webhook.URLError
	if errors.As(err, &ue) {
		return errField(errcode.InvalidWebhook, field, "%s", err.Error())
	}
	return errField(errcode.InvalidWebhook, field, "%v", err)
}
