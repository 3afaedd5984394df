package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/algocloud/algocloud/internal/payloadcodec"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/workflows"
)

// syncBuffer collects the platform's log lines from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }

// visitHistoryPayloads calls fn with every payload of h (search attributes
// aside: the SDK never encodes those, and the platform sets none).
func visitHistoryPayloads(t testing.TB, h *historypb.History, fn func([]*commonpb.Payload) ([]*commonpb.Payload, error)) {
	t.Helper()
	require.NoError(t, proxy.VisitPayloads(context.Background(), h, proxy.VisitPayloadsOptions{
		SkipSearchAttributes: true,
		Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
			return fn(ps)
		},
	}))
}

// decodedHistory is h with every payload decoded by the platform's codec:
// what a history captured for workflows/testdata must be, so the workflows
// package replays it without the key of the test that captured it.
func decodedHistory(t testing.TB, p *platform.Platform, h *historypb.History) *historypb.History {
	t.Helper()
	out := proto.Clone(h).(*historypb.History)
	visitHistoryPayloads(t, out, p.Codec.Decode)
	return out
}

func randomMarker(t testing.TB) string {
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "codecmarker" + hex.EncodeToString(b)
}

// TestPayloadCodecKeepsSecretsOutOfTemporal walks a deployment through
// Complete (the endpoint token's hash, the spec, the code source and an
// Add-More-Dependencies text with a marker all travel in payloads) and checks
// that history holds only ciphertext under the platform's key ID, that
// neither the endpoint token nor the marker is in any byte of the Temporal or
// metadata databases or the logs, and that the codec endpoint decodes for
// the operator token only (also through the temporal CLI when installed).
func TestPayloadCodecKeepsSecretsOutOfTemporal(t *testing.T) {
	data := t.TempDir()
	logs := &syncBuffer{}
	uiPort := testenv.FreePort(t)
	p := startPlatform(t, data, func(o *platform.Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, os.Stderr), &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.UIPort = uiPort // the embedded Temporal UI, told where the codec endpoint is
	})
	stopped := false
	defer func() {
		if !stopped {
			p.Stop()
		}
	}()
	c := newClient(t, p, devToken(t, p))
	marker := randomMarker(t)

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Codec check", "description": "payload codec", "api_name": "codec",
		"input": "image", "output": "json", "threads": 1,
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "measurements"))
	for _, s := range []struct {
		step string
		body any
	}{
		{"provision", nil},
		{"fetch_code", map[string]any{"git_url": repo, "ref": "main"}},
		// A comment only: it reaches the workflow and the activity in
		// payloads, and no database, file or event keeps it.
		{"install_requirements", map[string]any{"requirements_txt": "# " + marker + "\n"}},
		{"test", nil},
		{"complete", nil},
	} {
		r = c.Step(id, s.step, s.body)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", s.step, r.Raw)
	}
	epToken := r.Str("token")
	require.NotEmpty(t, epToken, string(r.Raw))
	sum := sha256.Sum256([]byte(epToken))
	tokenHash := hex.EncodeToString(sum[:])

	// History: every payload is ciphertext under this platform's key ID and
	// decodes with the codec; the decoded payloads carry the marker and the
	// token's hash, so the checks below are not vacuous.
	wfID := workflows.WorkflowID(id)
	raw := fetchHistory(t, p.Client, wfID)
	var n int
	var plain bytes.Buffer
	// Collected in one visit: a history's maps (memo, headers) are visited
	// in random order.
	var encrypted, decodedHere []*commonpb.Payload
	visitHistoryPayloads(t, raw, func(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
		encrypted = append(encrypted, ps...)
		for _, pl := range ps {
			n++
			require.Equal(t, payloadcodec.MetadataEncodingEncrypted, string(pl.Metadata[converter.MetadataEncoding]), "payload %d is not encrypted", n)
			require.Equal(t, p.Codec.KeyID(), string(pl.Metadata[payloadcodec.MetadataKeyID]))
		}
		dec, err := p.Codec.Decode(ps)
		require.NoError(t, err)
		for _, pl := range dec {
			plain.Write(pl.Data)
		}
		decodedHere = append(decodedHere, dec...)
		return ps, nil
	})
	require.Greater(t, n, 10)
	rawJSON, err := protojson.Marshal(raw)
	require.NoError(t, err)
	for _, secret := range []string{marker, tokenHash, epToken} {
		require.NotContains(t, string(rawJSON), secret)
	}
	for _, want := range []string{marker, tokenHash, `"api_name":"codec"`, `"git_url":"` + repo + `"`} {
		require.True(t, strings.Contains(plain.String(), want), "the decoded history lacks %s", want)
	}

	// The codec endpoint: 401 without a credential, 403 with a wrong one,
	// the decoded payloads for the operator token.
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: encrypted})
	require.NoError(t, err)
	opToken, err := platform.CodecToken(data, nil)
	require.NoError(t, err)
	callCodec := func(auth string) (int, []byte) {
		req, err := http.NewRequest(http.MethodPost, p.APIURL+platform.CodecPath+"/decode", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Namespace", "default")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, b
	}
	status, b := callCodec("")
	require.Equal(t, http.StatusUnauthorized, status, string(b))
	require.NotContains(t, string(b), marker)
	status, b = callCodec("Bearer " + devToken2(t, p))
	require.Equal(t, http.StatusForbidden, status, "a user's API token is not the operator's: %s", b)
	status, b = callCodec("Bearer " + opToken)
	require.Equal(t, http.StatusOK, status, string(b))
	var decoded commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(b, &decoded))
	require.Len(t, decoded.Payloads, len(encrypted))
	for i, pl := range decoded.Payloads {
		require.True(t, proto.Equal(decodedHere[i], pl), "payload %d decodes differently through the endpoint", i)
	}

	// `algocloud codec-token` prints the same token from the key on disk.
	out, err := exec.Command(algocloudBinary(t), "codec-token", "--data", data).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Equal(t, opToken, strings.TrimSpace(string(out)))

	t.Run("embedded Temporal UI", func(t *testing.T) {
		uiOrigin := "http://" + p.Temporal.UIAddress()
		res, err := http.Get(uiOrigin + "/api/v1/settings")
		require.NoError(t, err)
		defer res.Body.Close()
		var settings struct {
			Codec struct {
				Endpoint           string
				IncludeCredentials bool
			}
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&settings))
		require.Equal(t, p.APIURL+platform.CodecPath, settings.Codec.Endpoint)
		require.True(t, settings.Codec.IncludeCredentials, "the UI sends the sign-in cookie")

		// The browser's preflight from the UI's origin is allowed, with
		// credentials; another origin is not.
		for origin, allowed := range map[string]bool{uiOrigin: true, "http://127.0.0.1:1": false} {
			req, err := http.NewRequest(http.MethodOptions, p.APIURL+platform.CodecPath+"/decode", nil)
			require.NoError(t, err)
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			res.Body.Close()
			if allowed {
				require.Equal(t, origin, res.Header.Get("Access-Control-Allow-Origin"))
				require.Equal(t, "true", res.Header.Get("Access-Control-Allow-Credentials"))
			} else {
				require.Empty(t, res.Header.Get("Access-Control-Allow-Origin"))
			}
		}
	})

	t.Run("temporal CLI", func(t *testing.T) {
		bin := temporalCLI(t)
		show := func(extra ...string) string {
			args := append([]string{"workflow", "show", "--address", p.Temporal.HostPort(), "--namespace", "default", "-w", wfID, "-o", "json"}, extra...)
			out, err := exec.Command(bin, args...).CombinedOutput()
			require.NoError(t, err, string(out))
			return string(out)
		}
		// JSON output is the history in protobuf JSON, payloads as the CLI
		// got them.
		payloadData := func(out string) string {
			var h historypb.History
			require.NoError(t, protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal([]byte(out), &h))
			var all bytes.Buffer
			visitHistoryPayloads(t, &h, func(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
				for _, pl := range ps {
					all.WriteString(string(pl.Metadata[converter.MetadataEncoding]) + " ")
					all.Write(pl.Data)
				}
				return ps, nil
			})
			return all.String()
		}
		without := payloadData(show())
		require.Contains(t, without, payloadcodec.MetadataEncodingEncrypted)
		require.False(t, strings.Contains(without, marker), "without the codec the CLI sees ciphertext")
		with := payloadData(show("--codec-endpoint", p.APIURL+platform.CodecPath, "--codec-auth", "Bearer "+opToken))
		require.NotContains(t, with, payloadcodec.MetadataEncodingEncrypted)
		require.True(t, strings.Contains(with, marker), "the CLI's decoded history lacks the marker")
		require.True(t, strings.Contains(with, tokenHash), "the CLI's decoded history lacks the token hash")
		// A wrong --codec-auth gets the endpoint's 403, not the payloads.
		out, err := exec.Command(bin, "workflow", "show", "--address", p.Temporal.HostPort(), "-w", wfID, "-o", "json",
			"--codec-endpoint", p.APIURL+platform.CodecPath, "--codec-auth", "Bearer acc_wrong").CombinedOutput()
		require.Error(t, err)
		require.NotContains(t, string(out), marker)
	})

	// At rest: stop everything (flushing SQLite), then read every byte of
	// the Temporal and metadata databases (with their -wal and -shm files).
	p.Stop()
	stopped = true
	matches, err := filepath.Glob(filepath.Join(data, "temporal*.db*"))
	require.NoError(t, err)
	require.NotEmpty(t, matches)
	meta, err := filepath.Glob(filepath.Join(data, "algocloud*.db*"))
	require.NoError(t, err)
	require.NotEmpty(t, meta)
	var temporalBytes []byte
	for _, f := range append(matches, meta...) {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if strings.HasPrefix(filepath.Base(f), "temporal") {
			temporalBytes = append(temporalBytes, b...)
		}
		require.False(t, bytes.Contains(b, []byte(epToken)), "%s holds the endpoint token", f)
		require.False(t, bytes.Contains(b, []byte(marker)), "%s holds the marker", f)
		if strings.HasPrefix(filepath.Base(f), "temporal") {
			require.False(t, bytes.Contains(b, []byte(tokenHash)), "%s holds the endpoint token's hash", f)
		}
	}
	// Positive controls: history is stored uncompressed, so plaintext in a
	// payload would show; the workflow ID and the payloads' key ID do.
	require.True(t, bytes.Contains(temporalBytes, []byte(wfID)), "the Temporal database files hold the workflow")
	require.True(t, bytes.Contains(temporalBytes, []byte(p.Codec.KeyID())), "the Temporal database files hold the payloads' metadata")
	l := logs.Bytes()
	require.NotEmpty(t, l)
	require.False(t, bytes.Contains(l, []byte(epToken)), "a log line holds the endpoint token")
	require.False(t, bytes.Contains(l, []byte(marker)), "a log line holds the marker")
	require.False(t, bytes.Contains(l, []byte(opToken)), "a log line holds the operator token")
}

// devToken2 is a second API token of the dev user: a valid credential of
// the REST API that the codec endpoint must still refuse.
func devToken2(t testing.TB, p *platform.Platform) string {
	t.Helper()
	u, err := p.Store.UserByName(context.Background(), "dev")
	require.NoError(t, err)
	tok, _, err := p.Store.CreateToken(context.Background(), u.ID, "codec-check")
	require.NoError(t, err)
	return tok
}

// temporalCLI finds the temporal CLI ($ALGOCLOUD_TEMPORAL_BIN, PATH or
// ~/go/bin); without it the test skips unless ALGOCLOUD_REQUIRE_TOOLS is set.
func temporalCLI(t *testing.T) string {
	if p := os.Getenv("ALGOCLOUD_TEMPORAL_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", "temporal")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("ALGOCLOUD_REQUIRE_TOOLS") != "" {
		t.Fatal("the temporal CLI is not installed: go install github.com/temporalio/cli/cmd/temporal@v1.5.1")
	}
	t.Skip("the temporal CLI is not installed (go install github.com/temporalio/cli/cmd/temporal@v1.5.1); set ALGOCLOUD_REQUIRE_TOOLS=1 to fail instead")
	return ""
}

// testEncryptionKey is a fresh platform key in hex, for processes that must
// share one (ALGOCLOUD_ENCRYPTION_KEY).
func testEncryptionKey(t testing.TB) string {
	b := make([]byte, payloadcodec.MasterKeySize)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
