package api

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/predictions"
	"github.com/algocloud/algocloud/predictions/webhook"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/store"
)

// webhookEnv is the API on a real SQLite store, as the platform wires it
// (the webhook routes do not reach Temporal).
type webhookEnv struct {
	h          http.Handler
	st         *store.Store
	key        []byte
	alice, bob string // platform tokens
	algID      string
}

func newWebhookEnv(t *testing.T, withKey bool) *webhookEnv {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "algocloud.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	e := &webhookEnv{st: st, algID: "11111111-2222-3333-4444-555555555555"}
	a, err := st.CreateUser(ctx, "alice")
	require.NoError(t, err)
	b, err := st.CreateUser(ctx, "bob")
	require.NoError(t, err)
	e.alice, _, err = st.CreateToken(ctx, a.ID, "t")
	require.NoError(t, err)
	e.bob, _, err = st.CreateToken(ctx, b.ID, "t")
	require.NoError(t, err)
	require.NoError(t, st.CreateAlgorithm(ctx, store.Algorithm{ID: e.algID, OwnerID: a.ID, APIName: "seg"}))
	cfg := Config{
		Store: st, Webhooks: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// The endpoint routes' authentication (no prediction is created here).
		Predictions: &predictions.Service{Store: st},
	}
	if withKey {
		e.key = make([]byte, 32)
		_, _ = rand.Read(e.key)
		cfg.CredentialsKey = e.key
	}
	e.h = New(cfg)
	return e
}

func (e *webhookEnv) do(t *testing.T, method, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

func TestWebhookSecretIsShownOnceAndStoredSealed(t *testing.T) {
	e := newWebhookEnv(t, true)
	path := "/api/v1/deployments/" + e.algID + "/webhook_secret"
	w := e.do(t, http.MethodPost, path, e.alice)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	first := jsonOf(t, w)["secret"].(string)
	require.True(t, strings.HasPrefix(first, "whsec_"), first)
	key, err := webhook.ParseSecret(first)
	require.NoError(t, err)
	require.Len(t, key, 32)

	sealed, err := e.st.WebhookSecret(context.Background(), e.algID)
	require.NoError(t, err)
	require.NotContains(t, string(sealed), strings.TrimPrefix(first, "whsec_"), "stored in plain text")
	opened, err := webhook.OpenSecret(e.key, e.algID, sealed)
	require.NoError(t, err)
	require.Equal(t, first, opened)
	// What the worker signs with verifies with what the owner was shown.
	now := time.Now()
	sig, err := webhook.Sign(opened, "p1-completed", now, []byte(`{}`))
	require.NoError(t, err)
	v, err := webhook.NewVerifier(first)
	require.NoError(t, err)
	h := http.Header{}
	h.Set(webhook.HeaderID, "p1-completed")
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(webhook.HeaderSignature, sig)
	require.NoError(t, v.Verify(h, []byte(`{}`)))

	// A rotation replaces it; nothing shows a secret back.
	w = e.do(t, http.MethodPost, path, e.alice)
	require.Equal(t, http.StatusCreated, w.Code)
	second := jsonOf(t, w)["secret"].(string)
	require.NotEqual(t, first, second)
	sealed, _ = e.st.WebhookSecret(context.Background(), e.algID)
	opened, _ = webhook.OpenSecret(e.key, e.algID, sealed)
	require.Equal(t, second, opened)
	got := e.do(t, http.MethodGet, "/api/v1/deployments", e.alice)
	require.Equal(t, http.StatusOK, got.Code)
	require.NotContains(t, got.Body.String(), "whsec_")

	// Another user's deployment: 404, nothing changed.
	requireError(t, e.do(t, http.MethodPost, path, e.bob), http.StatusNotFound, "not_found")
	sealed, _ = e.st.WebhookSecret(context.Background(), e.algID)
	opened, _ = webhook.OpenSecret(e.key, e.algID, sealed)
	require.Equal(t, second, opened)

	// No encryption key: 503, never a plaintext secret.
	noKey := newWebhookEnv(t, false)
	requireError(t, noKey.do(t, http.MethodPost, "/api/v1/deployments/"+noKey.algID+"/webhook_secret", noKey.alice),
		http.StatusServiceUnavailable, "credentials_unavailable")
}

func TestWebhookAttemptsRoute(t *testing.T) {
	e := newWebhookEnv(t, true)
	ctx := context.Background()
	for i, outcome := range []string{store.WebhookRetry, store.WebhookDelivered} {
		require.NoError(t, e.st.AddWebhookAttempt(ctx, store.WebhookAttempt{
			DeliveryID: "p1-completed", AlgorithmID: e.algID, SubjectID: "p1", Event: "completed",
			URL: "https://hooks.example.com/x", Attempt: i + 1, Duration: 120 * time.Millisecond,
			StatusCode: []int{500, 200}[i], Outcome: outcome, Error: []string{"HTTP 500: down", ""}[i],
		}))
	}
	w := e.do(t, http.MethodGet, "/api/v1/endpoints/seg/predictions/p1/webhooks", e.alice)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	list := jsonOf(t, w)["attempts"].([]any)
	require.Len(t, list, 2)
	first := list[0].(map[string]any)
	require.Equal(t, "p1-completed", first["delivery_id"])
	require.Equal(t, float64(500), first["status_code"])
	require.Equal(t, "retry", first["outcome"])
	require.Equal(t, "HTTP 500: down", first["error"])
	require.Equal(t, float64(120), first["duration_ms"])
	require.Equal(t, "delivered", list[1].(map[string]any)["outcome"])

	none := e.do(t, http.MethodGet, "/api/v1/endpoints/seg/predictions/p2/webhooks", e.alice)
	require.Equal(t, http.StatusOK, none.Code)
	require.Empty(t, jsonOf(t, none)["attempts"])
	// Another user, an unknown api_name, no token.
	requireError(t, e.do(t, http.MethodGet, "/api/v1/endpoints/seg/predictions/p1/webhooks", e.bob), http.StatusNotFound, "not_found")
	requireError(t, e.do(t, http.MethodGet, "/api/v1/endpoints/nope/predictions/p1/webhooks", e.alice), http.StatusNotFound, "not_found")
	requireError(t, e.do(t, http.MethodGet, "/api/v1/endpoints/seg/predictions/p1/webhooks", "ac_wrong"), http.StatusUnauthorized, "unauthorized")
	// The endpoint's own token is accepted, another endpoint token is not.
	tok, hash, err := newEndpointToken()
	require.NoError(t, err)
	require.NoError(t, e.st.SetEndpointTokenHash(ctx, e.algID, hash))
	w = e.do(t, http.MethodGet, "/api/v1/endpoints/seg/predictions/p1/webhooks", tok)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Len(t, jsonOf(t, w)["attempts"], 2)
	other, _, _ := newEndpointToken()
	requireError(t, e.do(t, http.MethodGet, "/api/v1/endpoints/seg/predictions/p1/webhooks", other), http.StatusNotFound, "not_found")
}

// checkWebhookURL is what the prediction and batch create handlers answer a
// refused webhook with: 400 invalid_webhook naming the field.
func TestCheckWebhookURLNamesTheField(t *testing.T) {
	strict := &server{}
	dev := &server{webhookPolicy: netpolicy.Policy{Allow: netpolicy.Loopback}}
	for _, tc := range []struct {
		s    *server
		url  string
		want string
	}{
		{strict, "http://127.0.0.1:9000/hook", "loopback"},
		{strict, "https://10.0.0.1/hook", "private"},
		{strict, "http://169.254.169.254/latest/meta-data/", "cloud metadata"},
		{dev, "https://10.0.0.1/hook", "private"},
		{dev, "http://169.254.169.254/", "cloud metadata"},
		{strict, "ftp://hooks.example.com/", "https://"},
	} {
		e := tc.s.checkWebhookURL("webhook", tc.url)
		require.NotNil(t, e, tc.url)
		require.Equal(t, "invalid_webhook", e.Code.String())
		require.Equal(t, http.StatusBadRequest, e.Code.Status())
		require.True(t, strings.HasPrefix(e.Message, "webhook: "), e.Message)
		require.Contains(t, e.Message, tc.want)
		require.Equal(t, "webhook", e.Extra["fields"].([]spec.FieldError)[0].Field)
	}
	require.Nil(t, strict.checkWebhookURL("webhook", "https://hooks.example.com/x"))
	require.Nil(t, dev.checkWebhookURL("webhook", "http://127.0.0.1:9000/hook"))
}
