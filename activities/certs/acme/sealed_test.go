package acme

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/stretchr/testify/require"
)

func TestSealOpen(t *testing.T) {
	key, err := NewEncryptionKey()
	require.NoError(t, err)
	secret := []byte("-----BEGIN EC PRIVATE KEY-----\nnot really\n-----END EC PRIVATE KEY-----\n")

	sealed, err := Seal(key, "private key", secret)
	require.NoError(t, err)
	require.False(t, bytes.Contains(sealed, []byte("not really")))
	again, err := Seal(key, "private key", secret)
	require.NoError(t, err)
	require.NotEqual(t, sealed, again, "a fresh nonce every time")

	plain, err := Open(key, "private key", sealed)
	require.NoError(t, err)
	require.Equal(t, secret, plain)

	other, err := NewEncryptionKey()
	require.NoError(t, err)
	_, err = Open(other, "private key", sealed)
	require.ErrorIs(t, err, ErrDecrypt, "wrong key")
	_, err = Open(key, "certificate", sealed)
	require.ErrorIs(t, err, ErrDecrypt, "sealed as something else")

	block, _ := pem.Decode(sealed)
	block.Bytes[len(block.Bytes)-1] ^= 1
	_, err = Open(key, "private key", pem.EncodeToMemory(block))
	require.ErrorIs(t, err, ErrDecrypt, "tampered")

	_, err = Open(key, "private key", secret)
	require.ErrorContains(t, err, "not a sealed file")
	_, err = Seal(key[:16], "private key", secret)
	require.ErrorContains(t, err, "want 32")
}

func TestSaveLoadKey(t *testing.T) {
	encKey, err := NewEncryptionKey()
	require.NoError(t, err)
	priv, err := certcrypto.GeneratePrivateKey(certcrypto.EC256)
	require.NoError(t, err)
	keyPEM := certcrypto.PEMEncode(priv)
	path := filepath.Join(t.TempDir(), "key.sealed")

	require.NoError(t, SaveKey(path, encKey, keyPEM))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "PRIVATE KEY")

	back, err := LoadKey(path, encKey)
	require.NoError(t, err)
	require.Equal(t, keyPEM, back)

	require.ErrorContains(t, SaveKey(path, encKey, []byte("junk")), "not a PEM private key")
	_, err = LoadKey(filepath.Join(t.TempDir(), "absent"), encKey)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// Two workers starting at once on one folder end up with one account key.
func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	encKey, err := NewEncryptionKey()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "sub", "account.key")
	const n = 8
	keys := make([]*ecdsa.PublicKey, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, err := loadOrCreateKey(path, encKey)
			if err == nil {
				keys[i] = k.Public().(*ecdsa.PublicKey)
			}
		})
	}
	wg.Wait()
	for i := range n {
		require.NotNil(t, keys[i])
		require.True(t, keys[0].Equal(keys[i]))
	}
	st, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	left, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	require.NoError(t, err)
	require.Empty(t, left, "no temporary files left")
}

func TestParseEncryptionKey(t *testing.T) {
	key, err := NewEncryptionKey()
	require.NoError(t, err)
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key),
		base64.RawURLEncoding.EncodeToString(key),
		hex.EncodeToString(key),
		" " + base64.StdEncoding.EncodeToString(key) + "\n",
	} {
		got, err := ParseEncryptionKey(s)
		require.NoError(t, err, s)
		require.Equal(t, key, got)
	}
	for _, bad := range []string{"", "short", base64.StdEncoding.EncodeToString(key[:16]), strings.Repeat("z", 64)} {
		_, err := ParseEncryptionKey(bad)
		require.Error(t, err, bad)
		if len(bad) > 4 {
			require.NotContains(t, err.Error(), bad, "the value never appears in errors")
		}
	}
}
