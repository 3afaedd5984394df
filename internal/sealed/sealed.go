// Package sealed encrypts small secrets at rest under the platform key
// (AES-256-GCM with an authenticated label, as a PEM block): certificates'
// private keys, Git credentials. It is apart from the ACME client so that
// what seals (the API) links no lego.
package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EncryptionKeySize is the size of the key that seals private keys at rest
// (AES-256).
const EncryptionKeySize = 32

// sealedBlockType is the PEM block type of a sealed file.
const sealedBlockType = "ALGOCLOUD SEALED DATA"

// ErrDecrypt means a sealed file could not be opened: the encryption key is
// not the one it was sealed with, or the file was changed.
var ErrDecrypt = errors.New("cannot decrypt: wrong encryption key or tampered file")

// NewEncryptionKey returns a new random 32-byte key for Seal and SaveKey.
func NewEncryptionKey() ([]byte, error) {
	k := make([]byte, EncryptionKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate encryption key: %w", err)
	}
	return k, nil
}

// ParseEncryptionKey decodes a 32-byte key written as base64 (standard or
// URL alphabet, padded or not) or as 64 hex digits, the forms an operator
// puts into an environment variable or a secret store. Its errors never
// contain the value.
func ParseEncryptionKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*EncryptionKeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != EncryptionKeySize {
				return nil, fmt.Errorf("encryption key: %d bytes, want %d", len(k), EncryptionKeySize)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("encryption key: not base64 or hex of %d bytes", EncryptionKeySize)
}

// Seal encrypts plaintext with AES-256-GCM under encKey and returns it as a
// PEM block. label names what is sealed and is authenticated with it, so a
// file sealed as one thing is not opened as another.
func Seal(encKey []byte, label string, plaintext []byte) ([]byte, error) {
	aead, err := newAEAD(encKey)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	data := aead.Seal(nonce, nonce, plaintext, additional(label))
	return pem.EncodeToMemory(&pem.Block{
		Type:    sealedBlockType,
		Headers: map[string]string{"Cipher": "AES-256-GCM", "Label": label},
		Bytes:   data,
	}), nil
}

// Open reverses Seal. A wrong key, a different label or a changed byte give
// an error wrapping ErrDecrypt.
func Open(encKey []byte, label string, sealed []byte) ([]byte, error) {
	aead, err := newAEAD(encKey)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(sealed)
	if block == nil || block.Type != sealedBlockType {
		return nil, fmt.Errorf("open: not a sealed file (want a %q PEM block)", sealedBlockType)
	}
	if c := block.Headers["Cipher"]; c != "AES-256-GCM" {
		return nil, fmt.Errorf("open: unknown cipher %q", c)
	}
	if len(block.Bytes) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("open: %w", ErrDecrypt)
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, block.Bytes[:n], block.Bytes[n:], additional(label))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", label, ErrDecrypt)
	}
	return plain, nil
}

// WriteSealedFile seals plaintext and writes it to path with mode 0600,
// atomically (temporary file, then rename).
func WriteSealedFile(path string, encKey []byte, label string, plaintext []byte) error {
	data, err := Seal(encKey, label, plaintext)
	if err != nil {
		return err
	}
	tmp, err := WriteTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Rename(tmp, path)
}

// ReadSealedFile reads and opens a file written by WriteSealedFile.
func ReadSealedFile(path string, encKey []byte, label string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	plain, err := Open(encKey, label, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return plain, nil
}

// WriteTemp writes data, mode 0600 and synced, to a new temporary file next
// to path and returns its name.
func WriteTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", err
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

func newAEAD(encKey []byte) (cipher.AEAD, error) {
	if len(encKey) != EncryptionKeySize {
		return nil, fmt.Errorf("encryption key: %d bytes, want %d", len(encKey), EncryptionKeySize)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func additional(label string) []byte { return []byte("algocloud sealed v1\x00" + label) }
