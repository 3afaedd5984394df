// Package webhook delivers prediction and batch events to their owners' URLs
// as Standard Webhooks (https://www.standardwebhooks.com): each request
// carries webhook-id (the delivery's id, the same on every attempt, so
// receivers dedupe by it), webhook-timestamp (unix seconds of the attempt)
// and webhook-signature ("v1," + base64 HMAC-SHA256 of id.timestamp.body
// under the endpoint's secret).
//
// It has four parts: signing and verification (Sign, Verifier; the verifier
// is what receivers written in Go use, and what the tests check deliveries
// with), the per-endpoint secret (NewSecret, SealSecret, OpenSecret: stored
// sealed, shown once), the URL check made when a prediction or batch is
// created (CheckURL), and the durable delivery (the Deliver workflow and its
// SendWebhook activity), which retries with exponential backoff for a day and
// records every attempt in the store. docs/webhooks.md is the receivers' guide.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret; the rest is base64 of the key bytes.
const SecretPrefix = "whsec_"

// secretBytes is the length of the keys NewSecret makes.
const secretBytes = 32

// DefaultTolerance is how far a webhook-timestamp may be from the verifier's
// clock, either way, before Verify refuses the message as replayed or stale.
const DefaultTolerance = 5 * time.Minute

// NewSecret returns a new random secret: "whsec_" + base64 of 32 bytes.
func NewSecret() (string, error) {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:]), nil
}

// ParseSecret returns the key bytes of a secret. The whsec_ prefix is
// optional, as in the reference libraries.
func ParseSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(key) == 0 {
		return nil, errors.New("webhook secret: not whsec_ followed by base64")
	}
	return key, nil
}

// Sign returns the webhook-signature value of one message: "v1," + base64 of
// HMAC-SHA256(key, id + "." + unix seconds + "." + body).
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body)), nil
}

func mac(key []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id + "." + strconv.FormatInt(unix, 10) + "."))
	h.Write(body)
	return h.Sum(nil)
}

// Verification errors, for receivers that branch on them (errors.Is).
var (
	// ErrMissingHeaders means a Standard Webhooks header is absent.
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	// ErrTimestamp means webhook-timestamp is malformed or outside the tolerance.
	ErrTimestamp = errors.New("webhook: timestamp malformed or outside the tolerance")
	// ErrSignature means no v1 signature matches.
	ErrSignature = errors.New("webhook: no matching signature")
)

// Verifier checks that a webhook came from the platform: the signature is
// one made with the secret over this id, timestamp and body, and the
// timestamp is recent. Receivers should also dedupe by webhook-id, which is
// the same on every retry of one delivery.
type Verifier struct {
	key []byte
	// Tolerance is how far webhook-timestamp may be from Now; 0 means
	// DefaultTolerance.
	Tolerance time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewVerifier returns a Verifier for secret ("whsec_...").
func NewVerifier(secret string) (*Verifier, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	return &Verifier{key: key}, nil
}

// Verify checks a received webhook's headers and its raw body (the bytes as
// received: re-encoded JSON would not match). The signature header may list
// several space-separated signatures (during a secret rotation); one
// matching v1 signature is enough.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	if d := now().Sub(time.Unix(unix, 0)); d > tol || d < -tol {
		return ErrTimestamp
	}
	want := mac(v.key, id, unix, body)
	for _, s := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && subtle.ConstantTimeCompare(got, want) == 1 {
			return nil
		}
	}
	return ErrSignature
}
