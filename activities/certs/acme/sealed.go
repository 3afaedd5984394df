package acme

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-acme/lego/v4/certcrypto"

	"github.com/algocloud/algocloud/internal/sealed"
)

// keyLabel is the label private keys are sealed under.
const keyLabel = "private key"

// SaveKey seals a PEM private key (what Obtain returns, or any PKCS#8, EC or
// RSA key) into path, mode 0600. The plaintext key is never written.
func SaveKey(path string, encKey, keyPEM []byte) error {
	if _, err := certcrypto.ParsePEMPrivateKey(keyPEM); err != nil {
		return fmt.Errorf("save key: not a PEM private key: %w", err)
	}
	if err := sealed.WriteSealedFile(path, encKey, keyLabel, keyPEM); err != nil {
		return fmt.Errorf("save key %s: %w", path, err)
	}
	return nil
}

// LoadKey opens a key saved by SaveKey and returns it PEM-encoded, ready for
// tls.X509KeyPair.
func LoadKey(path string, encKey []byte) ([]byte, error) {
	keyPEM, err := sealed.ReadSealedFile(path, encKey, keyLabel)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	return keyPEM, nil
}

// loadOrCreateKey loads the sealed key at path or, when there is none,
// creates an ECDSA P-256 key and saves it. Creation is exclusive (a hard
// link of a complete temporary file), so two processes starting at once end
// up with the same key: the loser loads the winner's.
func loadOrCreateKey(path string, encKey []byte) (crypto.Signer, error) {
	keyPEM, err := LoadKey(path, encKey)
	if errors.Is(err, os.ErrNotExist) {
		keyPEM, err = createKey(path, encKey)
	}
	if err != nil {
		return nil, err
	}
	key, err := certcrypto.ParsePEMPrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("load key %s: %T is not a signing key", path, key)
	}
	return signer, nil
}

func createKey(path string, encKey []byte) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	key, err := certcrypto.GeneratePrivateKey(certcrypto.EC256)
	if err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	keyPEM := certcrypto.PEMEncode(key)
	data, err := sealed.Seal(encKey, keyLabel, keyPEM)
	if err != nil {
		return nil, err
	}
	tmp, err := sealed.WriteTemp(path, data)
	if err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		return LoadKey(path, encKey) // another process won
	} else if err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	return keyPEM, nil
}
