package api

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/store"
	"github.com/algocloud/algocloud/workflows"
)

// fakeStore is an in-memory Store with the real one's visible behaviour.
type fakeStore struct {
	mu      sync.Mutex
	tokens  map[string]store.User
	algs    map[string]store.Algorithm
	order   []string
	hashes  map[string]string
	deleted map[string]bool
	events  []store.Event
	nextTok int
	// panicOnList makes ListAlgorithms panic (recovery tests).
	panicOnList bool
}

var fakeNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func newFakeStore() *fakeStore {
	return &fakeStore{
		tokens: map[string]store.User{
			"tokA": {ID: "user-a", Name: "alice"},
			"tokB": {ID: "user-b", Name: "bob"},
		},
		algs: map[string]store.Algorithm{}, hashes: map[string]string{}, deleted: map[string]bool{},
	}
}

func (f *fakeStore) Authenticate(_ context.Context, plaintext string) (store.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.tokens[plaintext]
	if !ok {
		return store.User{}, store.ErrUnauthorized
	}
	return u, nil
}

func (f *fakeStore) CreateToken(_ context.Context, userID, name string) (string, store.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextTok++
	plain := fmt.Sprintf("ac_fake%d", f.nextTok)
	for _, u := range f.tokens {
		if u.ID == userID {
			f.tokens[plain] = u
			return plain, store.Token{ID: fmt.Sprintf("t%d", f.nextTok), UserID: userID, Name: name, CreatedAt: fakeNow}, nil
		}
	}
	return "", store.Token{}, store.ErrNotFound
}

func (f *fakeStore) CreateAlgorithm(_ context.Context, a store.Algorithm) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, b := range f.algs {
		if !f.deleted[id] && b.APIName == a.APIName {
			return fmt.Errorf("create algorithm %s: %w: api name %q is taken", a.ID, store.ErrConflict, a.APIName)
		}
	}
	a.CreatedAt, a.UpdatedAt = fakeNow, fakeNow
	f.algs[a.ID] = a
	f.order = append(f.order, a.ID)
	return nil
}

func (f *fakeStore) GetAlgorithm(_ context.Context, ownerID, id string) (store.Algorithm, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.algs[id]
	if !ok || a.OwnerID != ownerID || f.deleted[id] {
		return store.Algorithm{}, fmt.Errorf("algorithm %s: %w", id, store.ErrNotFound)
	}
	a.HasEndpointToken = f.hashes[id] != ""
	return a, nil
}

func (f *fakeStore) ListAlgorithms(_ context.Context, ownerID string) ([]store.Algorithm, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panicOnList {
		panic("boom")
	}
	out := []store.Algorithm{}
	for _, id := range f.order {
		if a := f.algs[id]; a.OwnerID == ownerID && !f.deleted[id] {
			out = append(out, a)
		}
	}
	return out, nil
}

func (f *fakeStore) SetEndpointTokenHash(_ context.Context, id, sha256hex string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, err := hex.DecodeString(sha256hex); err != nil || len(b) != 32 {
		return fmt.Errorf("not a sha256 hex: %q", sha256hex)
	}
	if _, ok := f.algs[id]; !ok {
		return store.ErrNotFound
	}
	f.hashes[id] = sha256hex
	return nil
}

func (f *fakeStore) EndpointTokenHash(_ context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.algs[id]; !ok {
		return "", store.ErrNotFound
	}
	return f.hashes[id], nil
}

func (f *fakeStore) MarkDeleted(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.algs[id]; !ok {
		return store.ErrNotFound
	}
	f.deleted[id] = true
	return nil
}

func (f *fakeStore) ListEvents(_ context.Context, algorithmID string, afterID int64, limit int) ([]store.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []store.Event{}
	for _, e := range f.events {
		if e.AlgorithmID == algorithmID && e.ID > afterID && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeStore) addEvent(algorithmID, kind, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, store.Event{ID: int64(len(f.events) + 1), AlgorithmID: algorithmID, At: fakeNow, Kind: kind, Message: msg})
}

// call is one Update the fake received.
type call struct {
	ID, Update string
	Arg        any
}

// fakeWorkflows records calls; onUpdate decides each update's outcome.
type fakeWorkflows struct {
	mu       sync.Mutex
	started  []workflows.Input
	startErr error
	states   map[string]workflows.State
	stateErr error
	calls    []call
	queries  int
	onUpdate func(id, update string, arg any, st workflows.State) (workflows.State, error)
}

func newFakeWorkflows() *fakeWorkflows {
	return &fakeWorkflows{states: map[string]workflows.State{}}
}

func (f *fakeWorkflows) Start(_ context.Context, in workflows.Input, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return f.startErr
	}
	f.started = append(f.started, in)
	f.states[in.DeploymentID] = workflows.State{DeploymentID: in.DeploymentID, OwnerID: in.OwnerID, Spec: in.Spec,
		Step: workflows.StepConfigured, Status: workflows.StatusDraft, History: []workflows.StepRecord{}}
	return nil
}

func (f *fakeWorkflows) Update(_ context.Context, id, update string, arg any) (workflows.State, error) {
	f.mu.Lock()
	f.calls = append(f.calls, call{id, update, arg})
	st, ok := f.states[id]
	hook := f.onUpdate
	f.mu.Unlock()
	if !ok {
		return workflows.State{}, fmt.Errorf("update: %w", ErrWorkflowNotFound)
	}
	if hook == nil {
		return st, nil
	}
	st, err := hook(id, update, arg, st)
	// A step that ran and failed keeps what it changed (a failed Test Code
	// keeps its result), as the workflow does; a rejection changes nothing.
	var se *StepError
	if err == nil || (errors.As(err, &se) && se.Kind == StepFailed) {
		f.mu.Lock()
		f.states[id] = st
		f.mu.Unlock()
	}
	return st, err
}

func (f *fakeWorkflows) State(_ context.Context, id string) (workflows.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if f.stateErr != nil {
		return workflows.State{}, f.stateErr
	}
	st, ok := f.states[id]
	if !ok {
		return workflows.State{}, ErrWorkflowNotFound
	}
	return st, nil
}

func (f *fakeWorkflows) lastCall(t *testing.T) call {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.calls, "no update was sent")
	return f.calls[len(f.calls)-1]
}

func (f *fakeWorkflows) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// rejected and failed are the errors TemporalWorkflows hands handlers for the
// workflow's own application errors.
func rejected(msg, step, status string) error {
	return convertError("update", temporal.NewApplicationError(msg, workflows.RejectedErrorType, step, status))
}

func failed(msg, step string) error {
	return convertError("update", temporal.NewApplicationError(msg, workflows.StepFailedErrorType, step))
}

// env is a server over fakes.
type env struct {
	t       *testing.T
	h       *gin.Engine
	store   *fakeStore
	wf      *fakeWorkflows
	uploads string // the blob store's folder
	blobs   *blobs.Dir
	logs    *bytes.Buffer
}

func newEnv(t *testing.T, mods ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, store: newFakeStore(), wf: newFakeWorkflows(), uploads: t.TempDir(), logs: &bytes.Buffer{}}
	var err error
	e.blobs, err = blobs.NewDir(e.uploads)
	require.NoError(t, err)
	cfg := Config{
		Store: e.store, Workflows: e.wf, Blobs: e.blobs, CARootPEM: []byte("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"),
		Skeleton: func(in, out spec.IOType) (string, error) {
			if in == spec.Image && out == spec.Image {
				return "class AlgoClass:\n    pass\n", nil
			}
			return "", fmt.Errorf("no skeleton for %s->%s", in, out)
		},
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: e.logs}, nil)),
	}
	for _, m := range mods {
		m(&cfg)
	}
	e.h = newEngine(cfg)
	return e
}

// lockedWriter serialises log writes (the SSE test logs from two goroutines).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// do sends a request; body is marshalled unless it is a string, []byte or io.Reader.
func (e *env) do(method, path, token string, body any, header ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	case io.Reader:
		r = b
	default:
		raw, err := json.Marshal(b)
		require.NoError(e.t, err)
		r = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

// jsonOf decodes a JSON answer.
func jsonOf(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	require.Contains(t, w.Header().Get("Content-Type"), "application/json", "body: %s", w.Body.String())
	var m map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &m), "body: %s", w.Body.String())
	return m
}

// requireError checks an error answer's status and code and returns its body.
func requireError(t *testing.T, w *httptest.ResponseRecorder, status int, code string) map[string]any {
	t.Helper()
	require.Equal(t, status, w.Code, "body: %s", w.Body.String())
	m := jsonOf(t, w)
	require.Equal(t, code, m["code"], "body: %s", w.Body.String())
	require.NotEmpty(t, m["message"])
	return m
}

// fieldNames lists the "field" of each entry of an error's "fields".
func fieldNames(m map[string]any) []string {
	var out []string
	list, _ := m["fields"].([]any)
	for _, f := range list {
		out = append(out, f.(map[string]any)["field"].(string))
	}
	return out
}

// validSpec is a spec that passes validation.
func validSpec(apiName string) map[string]any {
	return map[string]any{"name": "Edge detector", "api_name": apiName, "input": "image", "output": "image"}
}

// create makes a deployment as token's user and returns its id.
func (e *env) create(token, apiName string) string {
	e.t.Helper()
	w := e.do(http.MethodPost, "/api/v1/deployments", token, validSpec(apiName))
	require.Equal(e.t, http.StatusCreated, w.Code, "body: %s", w.Body.String())
	id, _ := jsonOf(e.t, w)["id"].(string)
	require.NotEmpty(e.t, id)
	return id
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
