package sealed

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"

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
