package inference

import (
	"errors"
	"fmt"
	"github.com/algocloud/algocloud/inference/inferapi"
	"log/slog"
	"os"
	"sync"
)

// tokenHash is the SHA-256 of the bearer token the server accepts. With
// Config.TokenFile it follows that file: every authorisation stats it and,
// when it changed (another file, size or modification time), reads the new
// hash, so a rotated token takes effect at the next request, the old one
// refused at once, without a restart (the platform replaces the file with a
// rename: a reader never sees half a hash). A file that does not hold a hash
// (or is gone) keeps the current one and logs an error, once per change, as
// the certificate reloader does (tls.go). Reload (SIGHUP) reads it at once.
type tokenHash struct {
	path string // "" when the hash is fixed by Config.TokenSHA256
	log  *slog.Logger

	mu   sync.Mutex
	sum  []byte
	stat os.FileInfo // of the file last tried
}

// newTokenHash reads the hash from cfg: TokenFile when set, else TokenSHA256.
func newTokenHash(cfg Config, log *slog.Logger) (*tokenHash, error) {
	t := &tokenHash{path: cfg.TokenFile, log: log}
	if t.path == "" {
		sum, err := inferapi.ParseTokenHash(cfg.TokenSHA256)
		if err != nil {
			return nil, errors.New("inference config: token_sha256 must be 64 hex digits (the SHA-256 of the bearer token)")
		}
		t.sum = sum
		return t, nil
	}
	st, err := os.Stat(t.path)
	if err == nil {
		err = t.swap(st)
	}
	if err != nil {
		return nil, fmt.Errorf("inference config: token_file: %w", err)
	}
	return t, nil
}

// current is the hash to compare with, after looking at the file.
func (t *tokenHash) current() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.path != "" {
		st, err := os.Stat(t.path)
		switch {
		case err != nil:
			if t.stat != nil { // log once, not at every request
				t.log.Error("endpoint token file unreadable; keeping the current token", "token_file", t.path, "error", err)
			}
			t.stat = nil
		case !sameFile(st, t.stat):
			if err := t.swap(st); err != nil {
				t.log.Error("endpoint token file holds no token hash; keeping the current token", "token_file", t.path, "error", err)
			}
		}
	}
	return t.sum
}

// swap reads the file whose stat is st; st is remembered even on failure,
// so a bad file is not re-read (and logged) at every request.
func (t *tokenHash) swap(st os.FileInfo) error {
	t.stat = st
	b, err := os.ReadFile(t.path)
	if err != nil {
		return err
	}
	sum, err := inferapi.ParseTokenHash(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", t.path, err)
	}
	if t.sum != nil {
		t.log.Info("endpoint token changed", "token_file", t.path) // never the hash itself
	}
	t.sum = sum
	return nil
}

// ReloadToken reads Config.TokenFile again at once (the server also notices
// a changed file by itself at the next request). On failure the current
// token stays. A server whose token is fixed in its config returns nil.
func (s *Server) ReloadToken() error {
	t := s.token
	if t.path == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st, err := os.Stat(t.path)
	if err == nil {
		err = t.swap(st)
	}
	if err != nil {
		t.log.Error("endpoint token reload failed; keeping the current token", "token_file", t.path, "error", err)
	}
	return err
}
