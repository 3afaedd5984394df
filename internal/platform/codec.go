package platform

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/algocloud/algocloud/internal/payloadcodec"
	"github.com/algocloud/algocloud/internal/sealed"
)

// CodecPath is where the API server serves the codec endpoint; the Temporal
// UI and CLI are given <API URL>/codec.
const CodecPath = "/codec"

// setupCodec derives the payload codec from the platform's key (the
// configured one, or the development key file, created on first start), so
// every Temporal client below encrypts what it writes to history.
func (p *Platform) setupCodec() error {
	key, err := p.encryptionKey()
	if err != nil {
		return fmt.Errorf("encryption key (payload codec): %w", err)
	}
	prev := p.opts.Cloud.PreviousEncryptionKey
	if prev != nil && len(prev) != sealed.EncryptionKeySize {
		return fmt.Errorf("previous encryption key has %d bytes, want %d", len(prev), sealed.EncryptionKeySize)
	}
	if p.Codec, err = payloadcodec.FromMasterKeys(key, prev); err != nil {
		return err
	}
	if p.codecToken, err = payloadcodec.OperatorToken(key); err != nil {
		return err
	}
	p.DataConverter = payloadcodec.DataConverter(p.Codec)
	p.FailureConverter = payloadcodec.FailureConverter(p.DataConverter)
	p.log.Info("payload codec ready", "key_id", p.Codec.KeyID(), "previous_key", prev != nil)
	return nil
}

// codecHandler mounts the codec endpoint beside the API: /codec/... goes to
// the endpoint, everything else to api.
func (p *Platform) codecHandler(api http.Handler) http.Handler {
	origins := append([]string(nil), p.opts.CodecOrigins...)
	if p.Temporal != nil && p.Temporal.UIAddress() != "" {
		origins = append(origins, "http://"+p.Temporal.UIAddress())
	}
	codec := payloadcodec.NewHandler(payloadcodec.HandlerOptions{
		Codec: p.Codec, Token: p.codecToken, AllowedOrigins: origins, Prefix: CodecPath,
		Logger: p.log.With("component", "codec-endpoint"),
	})
	mux := http.NewServeMux()
	mux.Handle(CodecPath+"/", codec)
	mux.Handle("/", api)
	return mux
}

// CodecToken returns the codec endpoint's operator token for the platform
// key: key when set, else the development key file in dataDir (never
// created here: without a key there is nothing to decode).
func CodecToken(dataDir string, key []byte) (string, error) {
	if key == nil {
		path := filepath.Join(dataDir, "secrets", "encryption.key")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("no encryption key: set ALGOCLOUD_ENCRYPTION_KEY or --encryption-key-file, or pass the --data folder whose secrets/encryption.key the platform made")
		}
		if err != nil {
			return "", fmt.Errorf("read encryption key: %w", err)
		}
		if key, err = sealed.ParseEncryptionKey(string(b)); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
	}
	return payloadcodec.OperatorToken(key)
}

// codecEndpointFor is the URL the embedded UI is told to call: the
// configured one, else this platform's API.
func codecEndpointFor(o Options, apiURL string) string {
	if o.CodecEndpoint != "" {
		return strings.TrimSuffix(o.CodecEndpoint, "/")
	}
	if apiURL == "" {
		return ""
	}
	return apiURL + CodecPath
}
