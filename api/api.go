// Package api is algocloud's REST API: the wizard's steps, the deployments an
// author owns, their progress events and the files they need (the aai_main.py
// skeleton, the local CA root, the OpenAPI document). Handlers read metadata
// from a Store and drive each deployment's Temporal workflow through
// Workflows; both are interfaces this package owns, so handlers are tested
// with fakes and the binary wires the real ones.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/predictions"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/store"
)

// DefaultMaxUploadBytes bounds a fetch_code upload when Config.MaxUploadBytes is 0.
const DefaultMaxUploadBytes int64 = 512 << 20

// maxJSONBytes bounds every JSON request body.
const maxJSONBytes int64 = 1 << 20

// Store is the metadata the API reads and writes; *store.Store implements it.
// Implementations must be safe for concurrent use and honour ctx. Errors wrap
// store.ErrNotFound (no such row, or another owner's), store.ErrConflict (an
// API name taken) and store.ErrUnauthorized (an unknown token).
type Store interface {
	// Authenticate returns the user an API token belongs to.
	Authenticate(ctx context.Context, plaintext string) (store.User, error)
	// CreateToken issues an API token for userID; the plaintext is returned once.
	CreateToken(ctx context.Context, userID, name string) (string, store.Token, error)
	// CreateAlgorithm stores a new algorithm; a taken API name gives ErrConflict.
	CreateAlgorithm(ctx context.Context, a store.Algorithm) error
	// GetAlgorithm returns ownerID's algorithm id; any other gives ErrNotFound.
	GetAlgorithm(ctx context.Context, ownerID, id string) (store.Algorithm, error)
	// ListAlgorithms returns ownerID's algorithms that are not deleted.
	ListAlgorithms(ctx context.Context, ownerID string) ([]store.Algorithm, error)
	// SetEndpointTokenHash stores the SHA-256 hex of an endpoint token.
	SetEndpointTokenHash(ctx context.Context, id, sha256hex string) error
	// EndpointTokenHash returns the stored endpoint token hash, "" when none.
	EndpointTokenHash(ctx context.Context, id string) (string, error)
	// MarkDeleted hides the algorithm and frees its API name.
	MarkDeleted(ctx context.Context, id string) error
	// ListEvents returns up to limit events of algorithmID with IDs above
	// afterID, oldest first.
	ListEvents(ctx context.Context, algorithmID string, afterID int64, limit int) ([]store.Event, error)
}

var _ Store = (*store.Store)(nil)

// Config is what New needs. Store and Workflows are required.
type Config struct {
	// Store holds users, tokens, algorithms and events.
	Store Store
	// Workflows reaches each deployment's workflow.
	Workflows Workflows
	// Blobs holds fetch_code uploads (the worker reads them from the same
	// store: a bucket or, on one machine, a folder) and Test Code's outputs;
	// nil refuses uploads (503 uploads_unavailable).
	Blobs blobs.Store
	// CARootPEM is the local CA's root certificate served at /api/ca.pem;
	// empty when the platform has no local CA (/api/ca.pem answers 404).
	CARootPEM []byte
	// PublicEndpointCerts is true when endpoints get publicly trusted
	// certificates (the worker's --certs acme): clients verify them with the
	// system's roots, so Complete Deployment's answer has no ca_url and the
	// generated clients name no CA file. /api/ca.pem still serves CARootPEM
	// (the platform's own CA). False (the default, --certs local): the local
	// CA signs the endpoints' certificates and clients verify with its root.
	PublicEndpointCerts bool
	// Skeleton renders aai_main.py for an API type (templates.Skeleton).
	Skeleton func(in, out spec.IOType) (string, error)
	// Logger receives one Info line per request; nil logs to slog.Default().
	Logger *slog.Logger
	// MaxUploadBytes bounds a whole fetch_code upload request; 0 means
	// DefaultMaxUploadBytes.
	MaxUploadBytes int64
	// CredentialsKey (32 bytes) seals fetch_code's Git credentials before
	// they are put in Blobs; the worker opens them with the same key. nil
	// refuses git_auth (503 credentials_unavailable).
	CredentialsKey []byte
	// Web serves the web wizard (web.Handler): GET and HEAD of /, /favicon.ico,
	// /ui and everything under /ui/. It is reached through the router's
	// NoRoute handler, so it never shadows /api/... or /healthz and is not a
	// route of the API document. nil serves no wizard.
	Web http.Handler
	// Unsandboxed says the platform runs author code without a sandbox
	// (--sandbox=none): /api/v1/me says so, and the wizard shows it.
	Unsandboxed bool
	// Batches runs batch jobs (/api/v1/endpoints/{api_name}/batches); nil
	// answers those routes 503 batches_unavailable.
	Batches Batches
	// Agents is the server agents' command channel (agenthub.Hub), served
	// under /api/agent/v1 to server credentials only; nil answers those
	// routes 404.
	Agents AgentHub
	// Webhooks keeps sealed webhook secrets and delivery attempts; nil
	// refuses webhook secrets (503 credentials_unavailable).
	Webhooks WebhookStore
	// WebhookPolicy is the URL policy webhook URLs pass when a prediction or
	// batch is created (the worker checks it again at dial time); the zero
	// Policy allows public addresses only.
	WebhookPolicy netpolicy.Policy
	// Predictions runs async predictions (/api/v1/endpoints/...); nil
	// answers them 503 predictions_unavailable.
	Predictions Predictions
	// MaxPredictionInput bounds one prediction's input; 0 means
	// predictions.DefaultMaxInputBytes.
	MaxPredictionInput int64
	// PredictionURLPolicy is what image URL inputs must pass at create (the
	// endpoints' own policy, which checks again when they fetch).
	PredictionURLPolicy netpolicy.Policy
}

// server holds the handlers' dependencies.
type server struct {
	store     Store
	wf        Workflows
	blobs     blobs.Store
	caPEM     []byte
	skeleton  func(in, out spec.IOType) (string, error)
	log       *slog.Logger
	maxUpload int64
	web       http.Handler
	credKey   []byte
	// unsandboxed: author code runs without a sandbox (Config.Unsandboxed).
	unsandboxed bool
	// batches runs batch jobs (Config.Batches).
	batches Batches
	// agents serves /api/agent/v1 (Config.Agents).
	agents AgentHub
	// webhooks and webhookPolicy: Config.Webhooks and Config.WebhookPolicy.
	webhooks      WebhookStore
	webhookPolicy netpolicy.Policy
	// preds, maxPredictionInput, urlPolicy: async predictions (predictions.go).
	preds              Predictions
	maxPredictionInput int64
	urlPolicy          netpolicy.Policy

	// endpointCA is true when clients verify endpoints with caPEM (a local
	// CA signs their certificates), false when they use the system's roots.
	endpointCA bool
	// ssePoll and sseLifetime pace the event stream; tests shorten them.
	ssePoll     time.Duration
	sseLifetime time.Duration
}

// unsandboxedWarning is what /api/v1/me says on a platform started with
// --sandbox=none (the same words as every Test Code result there).
const unsandboxedWarning = "author code runs UNSANDBOXED on this platform (started with --sandbox=none): it can read the platform's keys and data"

// New returns the API's HTTP handler. Every route under /api/v1 requires an
// API token (Authorization: Bearer ...); /healthz, /api/openapi.json and
// /api/ca.pem are public.
func New(cfg Config) http.Handler { return newEngine(cfg) }

func newEngine(cfg Config) *gin.Engine {
	s := &server{
		store: cfg.Store, wf: cfg.Workflows, caPEM: cfg.CARootPEM, skeleton: cfg.Skeleton,
		log: cfg.Logger, maxUpload: cfg.MaxUploadBytes, web: cfg.Web, blobs: cfg.Blobs,
		credKey: cfg.CredentialsKey, unsandboxed: cfg.Unsandboxed, batches: cfg.Batches,
		webhooks: cfg.Webhooks, webhookPolicy: cfg.WebhookPolicy,
		preds: cfg.Predictions, maxPredictionInput: cfg.MaxPredictionInput, urlPolicy: cfg.PredictionURLPolicy,
		agents:  cfg.Agents,
		ssePoll: 500 * time.Millisecond, sseLifetime: 10 * time.Minute,
		endpointCA: len(cfg.CARootPEM) > 0 && !cfg.PublicEndpointCerts,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxUpload <= 0 {
		s.maxUpload = DefaultMaxUploadBytes
	}
	if s.maxPredictionInput <= 0 {
		s.maxPredictionInput = predictions.DefaultMaxInputBytes
	}
	return s.routes()
}

// routes builds the engine. Keep openapi.json in step: a test compares them.
func (s *server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(s.logRequests, s.recoverPanics)
	e.NoRoute(s.noRoute)
	e.NoMethod(func(c *gin.Context) {
		writeError(c, &apiError{Code: errcode.MethodNotAllowed, Message: "method not allowed on this route"})
	})

	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/api/openapi.json", s.openAPI)
	e.GET("/api/ca.pem", s.caRoot)

	v1 := e.Group("/api/v1", s.authenticate)
	v1.GET("/me", s.me)
	v1.POST("/tokens", s.createToken)
	v1.GET("/skeleton", s.getSkeleton)

	v1.POST("/deployments", s.createDeployment)
	v1.GET("/deployments", s.listDeployments)
	d := v1.Group("/deployments/:id", s.loadDeployment)
	d.GET("", s.getDeployment)
	d.DELETE("", s.deleteDeployment)
	d.PUT("/spec", s.updateSpec)
	d.POST("/steps/:step", s.runStep)
	d.POST("/token", s.rotateToken)
	d.POST("/webhook_secret", s.createWebhookSecret)
	d.GET("/events", s.listEvents)
	d.GET("/events/stream", s.streamEvents)
	d.GET("/test/output", s.testOutput)
	d.GET("/code", s.getCode)
	d.GET("/code/file", s.getCodeFile)
	d.GET("/clients", s.listClients)
	d.GET("/clients/:name", s.getClient)

	// An endpoint's own routes take its token (ep_...) or its owner's.
	ep := e.Group("/api/v1/endpoints/:api_name", s.authenticateEndpoint)
	ep.POST("/predictions", s.createPrediction)
	ep.GET("/predictions", s.listPredictions)
	ep.GET("/predictions/:id", s.getPrediction)
	ep.GET("/predictions/:id/output", s.predictionOutput)
	ep.POST("/predictions/:id/cancel", s.cancelPrediction)
	ep.GET("/predictions/:id/webhooks", s.listWebhookAttempts)
	b := ep.Group("/batches", s.batchesAvailable)
	b.POST("", s.createBatch)
	b.GET("", s.listBatches)
	b.GET("/:batch_id", s.getBatch)
	b.GET("/:batch_id/output.zip", s.batchOutput)
	b.GET("/:batch_id/errors", s.batchErrors)
	b.POST("/:batch_id/cancel", s.cancelBatch)
	b.GET("/:batch_id/webhooks", s.listBatchWebhooks)

	s.agentRoutes(e)
	return e
}

// noRoute answers paths no route has: the web wizard's pages and assets when
// Config.Web is set, else a JSON 404. The wizard lives here rather than in
// routes of its own so the API's route table stays what openapi.json lists.
func (s *server) noRoute(c *gin.Context) {
	if s.web != nil && isWebPath(c.Request.URL.Path) {
		// Gin primes a NoRoute answer with 404; the wizard picks its own.
		c.Status(http.StatusOK)
		s.web.ServeHTTP(c.Writer, c.Request)
		return
	}
	writeError(c, errNotFound("no such route"))
}

// isWebPath reports whether path belongs to the web wizard; nothing under
// /api/ or /healthz does.
func isWebPath(path string) bool {
	return path == "/" || path == "/favicon.ico" || path == "/ui" || strings.HasPrefix(path, "/ui/")
}

// logRequests logs one line per request. It logs the path without the query
// and never a header: Authorization carries tokens.
func (s *server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	attrs := []any{
		"method", c.Request.Method, "path", c.Request.URL.Path, "route", c.FullPath(),
		"status", c.Writer.Status(), "bytes", c.Writer.Size(), "duration", time.Since(start),
	}
	if u, ok := c.Get(userKey); ok {
		attrs = append(attrs, "user", u.(store.User).ID)
	}
	if len(c.Errors) > 0 {
		attrs = append(attrs, "error", c.Errors.Last().Err.Error())
	}
	s.log.InfoContext(c.Request.Context(), "http request", attrs...)
}

// recoverPanics turns a handler's panic into a logged stack and a JSON 500.
func (s *server) recoverPanics(c *gin.Context) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler { // net/http's way to abort a response: let it do so
			panic(r)
		}
		s.log.ErrorContext(c.Request.Context(), "handler panic", "path", c.Request.URL.Path, "panic", r, "stack", string(debug.Stack()))
		if !c.Writer.Written() {
			writeError(c, errInternal())
		}
		c.Abort()
	}()
	c.Next()
}

// userKey is where authenticate leaves the caller's store.User.
const userKey = "algocloud.user"

// authenticate resolves the Bearer token into a user or answers 401.
func (s *server) authenticate(c *gin.Context) {
	scheme, token, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		c.Header("WWW-Authenticate", `Bearer realm="algocloud"`)
		writeError(c, errUnauthorized("send an API token: Authorization: Bearer <token>"))
		return
	}
	u, err := s.store.Authenticate(c.Request.Context(), token)
	if err != nil {
		if errors.Is(err, store.ErrUnauthorized) || errors.Is(err, store.ErrNotFound) {
			c.Header("WWW-Authenticate", `Bearer realm="algocloud", error="invalid_token"`)
			writeError(c, errUnauthorized("the API token is unknown or revoked"))
			return
		}
		s.fail(c, "authenticate", err)
		return
	}
	c.Set(userKey, u)
	c.Next()
}

// user is the authenticated caller.
func user(c *gin.Context) store.User { return c.MustGet(userKey).(store.User) }

// caRoot serves the local CA's root certificate, whether or not endpoints
// use it (with PublicEndpointCerts they do not).
func (s *server) caRoot(c *gin.Context) {
	if len(s.caPEM) == 0 {
		writeError(c, errNotFound("this platform has no local CA: endpoints use publicly trusted certificates"))
		return
	}
	c.Header("Content-Disposition", `attachment; filename="algocloud-ca.pem"`)
	c.Data(http.StatusOK, "application/x-pem-file", s.caPEM)
}

// me answers who the token belongs to.
func (s *server) me(c *gin.Context) {
	u := user(c)
	if s.unsandboxed {
		c.JSON(http.StatusOK, gin.H{"id": u.ID, "name": u.Name, "sandbox": "none", "warning": unsandboxedWarning})
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": u.ID, "name": u.Name, "sandbox": "bwrap"})
}
