package platform

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"

	"github.com/algocloud/algocloud/internal/payloadcodec"
)

func newTestPlatform(dir string, cloud CloudOptions) *Platform {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &Platform{opts: Options{DataDir: dir, Cloud: cloud, Logger: log}, log: log}
}

// Dev (no configured key) gets a codec from the key file it creates, and
// `algocloud codec-token` finds the same token in that file; a platform
// rotated to a new key still decodes what the old key encrypted.
func TestSetupCodecDevKeyAndRotation(t *testing.T) {
	dir := t.TempDir()
	_, err := CodecToken(dir, nil)
	require.ErrorContains(t, err, "no encryption key", "codec-token never creates a key")

	p := newTestPlatform(dir, CloudOptions{})
	require.NoError(t, p.setupCodec())
	tok, err := CodecToken(dir, nil)
	require.NoError(t, err)
	require.Equal(t, p.codecToken, tok)
	require.True(t, strings.HasPrefix(tok, payloadcodec.TokenPrefix))

	old, err := p.encryptionKey()
	require.NoError(t, err)
	enc, err := p.DataConverter.ToPayload("before rotation")
	require.NoError(t, err)
	require.Equal(t, payloadcodec.MetadataEncodingEncrypted, string(enc.Metadata[converter.MetadataEncoding]))

	newKey := []byte(strings.Repeat("k", 32))
	rotated := newTestPlatform(t.TempDir(), CloudOptions{EncryptionKey: newKey, PreviousEncryptionKey: old})
	require.NoError(t, rotated.setupCodec())
	require.NotEqual(t, p.Codec.KeyID(), rotated.Codec.KeyID())
	var s string
	require.NoError(t, rotated.DataConverter.FromPayload(enc, &s))
	require.Equal(t, "before rotation", s)
	tok2, err := CodecToken("", newKey)
	require.NoError(t, err)
	require.Equal(t, rotated.codecToken, tok2)
	require.NotEqual(t, tok, tok2)

	notRotated := newTestPlatform(t.TempDir(), CloudOptions{EncryptionKey: newKey})
	require.NoError(t, notRotated.setupCodec())
	require.ErrorIs(t, notRotated.DataConverter.FromPayload(enc, &s), payloadcodec.ErrUnknownKey)

	bad := newTestPlatform(t.TempDir(), CloudOptions{EncryptionKey: newKey, PreviousEncryptionKey: []byte("short")})
	require.ErrorContains(t, bad.setupCodec(), "previous encryption key")
}

// The API server routes /codec/ to the codec endpoint (which wants the
// operator token) and everything else to the API.
func TestCodecHandlerMountsBesideTheAPI(t *testing.T) {
	p := newTestPlatform(t.TempDir(), CloudOptions{})
	require.NoError(t, p.setupCodec())
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(p.codecHandler(api))
	defer srv.Close()

	res, err := http.Post(srv.URL+"/codec/decode", "application/json", strings.NewReader(`{"payloads":[]}`))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/codec/decode", strings.NewReader(`{"payloads":[]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+p.codecToken)
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	res, err = http.Get(srv.URL + "/api/v1/deployments")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusTeapot, res.StatusCode)

	require.Equal(t, "http://127.0.0.1:9/codec", codecEndpointFor(Options{}, "http://127.0.0.1:9"))
	require.Equal(t, "https://ops.example/codec", codecEndpointFor(Options{CodecEndpoint: "https://ops.example/codec/"}, "http://x"))
}
