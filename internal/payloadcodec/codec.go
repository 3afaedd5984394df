// Package payloadcodec encrypts every Temporal payload the platform writes
// (workflow and activity inputs and results, update arguments, memos, failure
// messages) with AES-256-GCM, so that history, the Temporal database and the
// Temporal UI hold ciphertext only. An operator who holds the platform's key
// decodes through the codec endpoint (Handler) that the Temporal UI and the
// `temporal` CLI call.
//
// Each encrypted payload names its key by ID in its metadata, so the key can
// rotate: the current key encrypts, older keys (by ID) still decrypt.
// Payloads without the encrypted encoding pass through Decode untouched, so
// histories written before the codec keep replaying.
package payloadcodec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

const (
	// MetadataEncodingEncrypted is the metadata encoding of an encrypted
	// payload (the name the Temporal samples and UI know).
	MetadataEncodingEncrypted = "binary/encrypted"
	// MetadataKeyID is the metadata entry naming the key that encrypted a
	// payload.
	MetadataKeyID = "encryption-key-id"

	// MasterKeySize is the size of the platform's encryption key the codec
	// key is derived from.
	MasterKeySize = 32

	// codecKeyInfo and tokenInfo separate what the platform's key is used
	// for: the same bytes never both encrypt payloads and authenticate
	// operators (or seal keys at rest, which use the key itself).
	codecKeyInfo = "algocloud temporal payload codec v1"
	tokenInfo    = "algocloud codec endpoint operator token v1"
)

var (
	// ErrUnknownKey is returned by Decode for a payload encrypted with a key
	// this codec does not hold (a different platform key, or a previous key
	// not passed for rotation).
	ErrUnknownKey = errors.New("payload encrypted with a key this process does not hold")
	// ErrDecrypt is returned by Decode when a payload fails authentication:
	// it was altered, or its key ID collides with another key.
	ErrDecrypt = errors.New("payload does not decrypt (altered, or a different key)")
)

// Key is a codec key derived from a platform key: an AES-256-GCM cipher and
// the ID recorded in every payload it encrypts.
type Key struct {
	id   string
	aead cipher.AEAD
}

// ID is the key's ID: the first 8 bytes of a SHA-256 of the derived key, in
// hex. It names the key without revealing it.
func (k Key) ID() string { return k.id }

// DeriveKey derives the codec key from the platform's 32-byte encryption key
// with HKDF-SHA256, so the platform key itself never encrypts payloads.
func DeriveKey(master []byte) (Key, error) {
	if len(master) != MasterKeySize {
		return Key{}, fmt.Errorf("payload codec: encryption key has %d bytes, want %d", len(master), MasterKeySize)
	}
	sub, err := hkdf.Key(sha256.New, master, nil, codecKeyInfo, 32)
	if err != nil {
		return Key{}, fmt.Errorf("payload codec: derive key: %w", err)
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return Key{}, fmt.Errorf("payload codec: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return Key{}, fmt.Errorf("payload codec: %w", err)
	}
	sum := sha256.Sum256(append([]byte("algocloud codec key id\x00"), sub...))
	return Key{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// Codec is a converter.PayloadCodec that encrypts with its current key and
// decrypts with any of its keys. It is safe for concurrent use.
type Codec struct {
	current Key
	keys    map[string]Key
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a codec encrypting with current and decrypting with current
// and previous (keys being rotated out).
func New(current Key, previous ...Key) *Codec {
	c := &Codec{current: current, keys: map[string]Key{current.id: current}}
	for _, k := range previous {
		if _, ok := c.keys[k.id]; !ok && k.aead != nil {
			c.keys[k.id] = k
		}
	}
	return c
}

// FromMasterKeys derives the codec from the platform's current key and any
// previous ones (nil entries are skipped).
func FromMasterKeys(current []byte, previous ...[]byte) (*Codec, error) {
	cur, err := DeriveKey(current)
	if err != nil {
		return nil, err
	}
	var prev []Key
	for i, p := range previous {
		if p == nil {
			continue
		}
		k, err := DeriveKey(p)
		if err != nil {
			return nil, fmt.Errorf("previous key %d: %w", i+1, err)
		}
		prev = append(prev, k)
	}
	return New(cur, prev...), nil
}

// KeyID is the ID of the key new payloads are encrypted with.
func (c *Codec) KeyID() string { return c.current.id }

// Encode encrypts each payload whole (metadata and data) with the current
// key; the key ID is authenticated as additional data.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("payload codec: marshal payload %d: %w", i, err)
		}
		aead := c.current.aead
		buf := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(buf); err != nil {
			return nil, fmt.Errorf("payload codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(MetadataEncodingEncrypted),
				MetadataKeyID:              []byte(c.current.id),
			},
			Data: aead.Seal(buf, buf, plain, []byte(c.current.id)),
		}
	}
	return out, nil
}

// Decode decrypts encrypted payloads and passes the others through (payloads
// written before the codec). Errors wrap ErrUnknownKey or ErrDecrypt and name
// the key ID, never any content.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != MetadataEncodingEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		k, ok := c.keys[id]
		if !ok {
			return nil, fmt.Errorf("payload %d: key ID %q: %w (this process holds %s; give api, worker and dev the same ALGOCLOUD_ENCRYPTION_KEY, and the old one as the previous key while rotating)", i, id, ErrUnknownKey, c.current.id)
		}
		ns := k.aead.NonceSize()
		if len(p.GetData()) < ns+k.aead.Overhead() {
			return nil, fmt.Errorf("payload %d: %w", i, ErrDecrypt)
		}
		plain, err := k.aead.Open(nil, p.Data[:ns], p.Data[ns:], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("payload %d: key ID %q: %w", i, id, ErrDecrypt)
		}
		dec := &commonpb.Payload{}
		if err := proto.Unmarshal(plain, dec); err != nil {
			return nil, fmt.Errorf("payload %d: decrypted bytes are not a payload: %w", i, err)
		}
		out[i] = dec
	}
	return out, nil
}

// DataConverter is the default data converter with c applied to every
// payload: what every Temporal client, worker and replayer of the platform uses.
func DataConverter(c *Codec) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter moves failures' messages and stack traces into an
// encoded payload too, since an error's message can carry what a payload
// would (a Git URL, a traceback quoting the author's code).
func FailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter: dc, EncodeCommonAttributes: true,
	})
}
