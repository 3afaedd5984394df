package payloadcodec

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

func masterKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, MasterKeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func newCodec(t *testing.T, master []byte, previous ...[]byte) *Codec {
	t.Helper()
	c, err := FromMasterKeys(master, previous...)
	require.NoError(t, err)
	return c
}

func plainPayloads(t *testing.T, values ...any) []*commonpb.Payload {
	t.Helper()
	ps, err := converter.GetDefaultDataConverter().ToPayloads(values...)
	require.NoError(t, err)
	return ps.Payloads
}

func TestRoundTripEncryptsAndNamesTheKey(t *testing.T) {
	c := newCodec(t, masterKey(t))
	in := plainPayloads(t, "git-password-s3cret", map[string]int{"threads": 2}, nil)
	enc, err := c.Encode(in)
	require.NoError(t, err)
	require.Len(t, enc, len(in))
	for _, p := range enc {
		require.Equal(t, MetadataEncodingEncrypted, string(p.Metadata[converter.MetadataEncoding]))
		require.Equal(t, c.KeyID(), string(p.Metadata[MetadataKeyID]))
		require.Len(t, p.Metadata, 2, "nothing of the original metadata shows")
		require.False(t, bytes.Contains(p.Data, []byte("s3cret")))
		require.False(t, bytes.Contains(p.Data, []byte("json/plain")))
	}
	dec, err := c.Decode(enc)
	require.NoError(t, err)
	require.Len(t, dec, len(in))
	for i := range in {
		require.Equal(t, in[i].Metadata, dec[i].Metadata)
		require.Equal(t, in[i].Data, dec[i].Data)
	}
	// Two encodings of the same value differ (fresh nonce each time).
	again, err := c.Encode(in[:1])
	require.NoError(t, err)
	require.NotEqual(t, enc[0].Data, again[0].Data)
}

func TestDecodeWithAnotherKeyFails(t *testing.T) {
	enc, err := newCodec(t, masterKey(t)).Encode(plainPayloads(t, "x"))
	require.NoError(t, err)
	other := newCodec(t, masterKey(t))
	_, err = other.Decode(enc)
	require.ErrorIs(t, err, ErrUnknownKey)

	// A key ID forged to match the other key still fails authentication.
	enc[0].Metadata[MetadataKeyID] = []byte(other.KeyID())
	_, err = other.Decode(enc)
	require.ErrorIs(t, err, ErrDecrypt)
}

func TestRotationPreviousKeyStillDecodes(t *testing.T) {
	oldKey, newKey := masterKey(t), masterKey(t)
	before := newCodec(t, oldKey)
	enc, err := before.Encode(plainPayloads(t, "written before the rotation"))
	require.NoError(t, err)

	rotated := newCodec(t, newKey, oldKey)
	require.NotEqual(t, before.KeyID(), rotated.KeyID())
	dec, err := rotated.Decode(enc)
	require.NoError(t, err)
	var s string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(dec[0], &s))
	require.Equal(t, "written before the rotation", s)

	// New payloads use the new key only.
	enc2, err := rotated.Encode(plainPayloads(t, "after"))
	require.NoError(t, err)
	require.Equal(t, rotated.KeyID(), string(enc2[0].Metadata[MetadataKeyID]))
	_, err = before.Decode(enc2)
	require.ErrorIs(t, err, ErrUnknownKey)

	// Without the previous key the old payload is refused, by key ID.
	_, err = newCodec(t, newKey).Decode(enc)
	require.ErrorIs(t, err, ErrUnknownKey)
	require.Contains(t, err.Error(), before.KeyID())
}

func TestPlainPayloadsPassThrough(t *testing.T) {
	c := newCodec(t, masterKey(t))
	in := plainPayloads(t, "from a history before the codec", 42)
	dec, err := c.Decode(in)
	require.NoError(t, err)
	require.Equal(t, in, dec)
}

func TestTamperingIsDetected(t *testing.T) {
	c := newCodec(t, masterKey(t))
	for name, tamper := range map[string]func(p *commonpb.Payload){
		"flipped byte":     func(p *commonpb.Payload) { p.Data[len(p.Data)/2] ^= 1 },
		"truncated":        func(p *commonpb.Payload) { p.Data = p.Data[:len(p.Data)-1] },
		"too short":        func(p *commonpb.Payload) { p.Data = p.Data[:5] },
		"nonce changed":    func(p *commonpb.Payload) { p.Data[0] ^= 0x80 },
		"key ID removed":   func(p *commonpb.Payload) { delete(p.Metadata, MetadataKeyID) },
		"appended garbage": func(p *commonpb.Payload) { p.Data = append(p.Data, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			enc, err := c.Encode(plainPayloads(t, "payload"))
			require.NoError(t, err)
			tamper(enc[0])
			_, err = c.Decode(enc)
			require.Error(t, err)
		})
	}
}

func TestDeriveKeyIsStableAndSeparateFromTheToken(t *testing.T) {
	m := masterKey(t)
	a, err := DeriveKey(m)
	require.NoError(t, err)
	b, err := DeriveKey(m)
	require.NoError(t, err)
	require.Equal(t, a.ID(), b.ID())
	require.Len(t, a.ID(), 16)
	// Payloads encrypted by one process decode in another with the same key.
	enc, err := New(a).Encode(plainPayloads(t, "shared"))
	require.NoError(t, err)
	_, err = New(b).Decode(enc)
	require.NoError(t, err)

	tok, err := OperatorToken(m)
	require.NoError(t, err)
	tok2, err := OperatorToken(m)
	require.NoError(t, err)
	require.Equal(t, tok, tok2)
	other, err := OperatorToken(masterKey(t))
	require.NoError(t, err)
	require.NotEqual(t, tok, other)
	require.NotContains(t, tok, a.ID())

	_, err = DeriveKey(m[:16])
	require.Error(t, err)
	_, err = OperatorToken(nil)
	require.Error(t, err)
}

func TestDataAndFailureConvertersEncrypt(t *testing.T) {
	c := newCodec(t, masterKey(t))
	dc := DataConverter(c)
	p, err := dc.ToPayload("marker-in-a-payload")
	require.NoError(t, err)
	require.Equal(t, MetadataEncodingEncrypted, string(p.Metadata[converter.MetadataEncoding]))
	var s string
	require.NoError(t, dc.FromPayload(p, &s))
	require.Equal(t, "marker-in-a-payload", s)

	fc := FailureConverter(dc)
	f := fc.ErrorToFailure(temporal.NewApplicationError("clone https://u:hunter2@git.example/x failed", "GitError"))
	require.NotContains(t, f.String(), "hunter2")
	back := fc.FailureToError(f)
	require.Contains(t, back.Error(), "hunter2")
}
