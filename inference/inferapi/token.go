package inferapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ParseTokenHash reads 64 hex digits (surrounding space allowed): the
// form of Config.TokenSHA256 and of Config.TokenFile's content.
func ParseTokenHash(s string) ([]byte, error) {
	sum, err := hex.DecodeString(strings.ToLower(strings.TrimSpace(s)))
	if err != nil || len(sum) != sha256.Size {
		return nil, errors.New("not 64 hex digits (the SHA-256 of the bearer token)")
	}
	return sum, nil
}

// WriteTokenFile replaces path with sha256hex atomically (a temporary file
// renamed over it), so a server reading it never sees half a hash.
func WriteTokenFile(path, sha256hex string) error {
	if _, err := ParseTokenHash(sha256hex); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.ToLower(sha256hex)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write token file: %w", err)
	}
	return nil
}
