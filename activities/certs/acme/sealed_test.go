package acme

import (
	"crypto/ecdsa"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/sealed"
)

func TestSaveLoadKey(t *testing.T) {
	encKey, err := sealed.NewEncryptionKey()
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
	encKey, err := sealed.NewEncryptionKey()
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
