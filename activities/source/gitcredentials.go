package source

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/sealed"
)

// Git credentials are here, beside the Auth they become, so that the API
// (which seals them) and the worker's FetchCode (which opens them) share
// them without the API linking the activities.

// CredentialsPrefix is where the API keeps sealed Git credentials in the blob
// store: CredentialsPrefix/<deployment>/<random>. The workflow (and so
// Temporal's history) carries only that key, never the secret.
const CredentialsPrefix = "credentials"

// MaxSealedCredentials bounds what FetchCode reads back.
const MaxSealedCredentials = 64 << 10

// GitCredentials is fetch_code's git_auth: a password or token for an
// http(s) URL, or an SSH deploy key with the known_hosts lines its server's
// host key is checked against. String, GoString and LogValue never show the
// values, so one that reaches a log stays safe.
type GitCredentials struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	SSHPrivateKey string `json:"ssh_private_key,omitempty"`
	KnownHosts    string `json:"known_hosts,omitempty"`
}

// String names the kind of credential only.
func (c GitCredentials) String() string { return c.Auth().String() }

// GoString keeps %#v from printing the secret.
func (c GitCredentials) GoString() string { return c.String() }

// LogValue keeps slog from printing the secret.
func (c GitCredentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Auth is the clone's view of c.
func (c GitCredentials) Auth() *Auth {
	a := &Auth{Username: c.Username, Password: c.Password}
	if c.SSHPrivateKey != "" {
		a.SSHPrivateKey = []byte(c.SSHPrivateKey)
	}
	if c.KnownHosts != "" {
		a.KnownHosts = []byte(c.KnownHosts)
	}
	return a
}

// CredentialsLabel binds a sealed credential to its deployment, so one
// deployment's reference cannot open another's (Seal authenticates it).
func CredentialsLabel(deploymentID string) string { return "git credentials " + deploymentID }

// SealGitCredentials seals c with key (AES-256-GCM, sealed.Seal) and puts it
// in the blob store under a new random key of the deployment, which it
// returns: the opaque reference CodeSource.Credentials carries.
func SealGitCredentials(ctx context.Context, store blobs.Store, key []byte, deploymentID string, c GitCredentials) (string, error) {
	plain, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode git credentials: %w", err)
	}
	box, err := sealed.Seal(key, CredentialsLabel(deploymentID), plain)
	clear(plain)
	if err != nil {
		return "", fmt.Errorf("seal git credentials: %w", err)
	}
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	ref := path.Join(CredentialsPrefix, deploymentID, hex.EncodeToString(rnd[:]))
	if err := store.Put(ctx, ref, bytes.NewReader(box), int64(len(box))); err != nil {
		return "", fmt.Errorf("store sealed git credentials: %w", err)
	}
	return ref, nil
}
