package webhook

import (
	"crypto/rand"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/netpolicy"
)

// The Standard Webhooks specification's own example (its README and
// reference libraries' tests): secret, id, timestamp and body give this
// signature.
func TestSignMatchesTheSpecificationsExample(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	sig, err := Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	require.NoError(t, err)
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig)
}

func headers(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h
}

func TestVerifier(t *testing.T) {
	secret, err := NewSecret()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	key, err := ParseSecret(secret)
	require.NoError(t, err)
	require.Len(t, key, 32)

	now := time.Unix(1_800_000_000, 0)
	v, err := NewVerifier(secret)
	require.NoError(t, err)
	v.Now = func() time.Time { return now }
	body := []byte(`{"id":"p1","status":"succeeded"}`)
	sig, err := Sign(secret, "p1-completed", now, body)
	require.NoError(t, err)

	// Within five minutes either way: accepted; beyond: refused.
	require.NoError(t, v.Verify(headers("p1-completed", now, sig), body))
	old, _ := Sign(secret, "p1-completed", now.Add(-4*time.Minute), body)
	require.NoError(t, v.Verify(headers("p1-completed", now.Add(-4*time.Minute), old), body))
	stale, _ := Sign(secret, "p1-completed", now.Add(-6*time.Minute), body)
	require.ErrorIs(t, v.Verify(headers("p1-completed", now.Add(-6*time.Minute), stale), body), ErrTimestamp)
	future, _ := Sign(secret, "p1-completed", now.Add(6*time.Minute), body)
	require.ErrorIs(t, v.Verify(headers("p1-completed", now.Add(6*time.Minute), future), body), ErrTimestamp)

	// Any change to the body, the id or the timestamp breaks the signature.
	require.ErrorIs(t, v.Verify(headers("p1-completed", now, sig), []byte(`{"id":"p1","status":"failed"}`)), ErrSignature)
	require.ErrorIs(t, v.Verify(headers("p2-completed", now, sig), body), ErrSignature)
	require.ErrorIs(t, v.Verify(headers("p1-completed", now.Add(time.Second), sig), body), ErrSignature)
	// Another secret's signature is refused.
	other, _ := NewSecret()
	otherSig, _ := Sign(other, "p1-completed", now, body)
	require.ErrorIs(t, v.Verify(headers("p1-completed", now, otherSig), body), ErrSignature)
	// Several signatures (a rotation): one match is enough; unknown versions are skipped.
	require.NoError(t, v.Verify(headers("p1-completed", now, "v1a,xyz "+otherSig+" "+sig), body))
	// Missing or malformed headers.
	h := headers("p1-completed", now, sig)
	h.Del(HeaderSignature)
	require.ErrorIs(t, v.Verify(h, body), ErrMissingHeaders)
	h = headers("p1-completed", now, sig)
	h.Set(HeaderTimestamp, "soon")
	require.ErrorIs(t, v.Verify(h, body), ErrTimestamp)

	_, err = NewVerifier("whsec_not base64!")
	require.Error(t, err)
}

func TestSealedSecretIsBoundToItsAlgorithm(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secret, _ := NewSecret()
	sealed, err := SealSecret(key, "alg1", secret)
	require.NoError(t, err)
	require.NotContains(t, string(sealed), strings.TrimPrefix(secret, "whsec_"))
	got, err := OpenSecret(key, "alg1", sealed)
	require.NoError(t, err)
	require.Equal(t, secret, got)
	_, err = OpenSecret(key, "alg2", sealed)
	require.Error(t, err, "another algorithm's sealed secret must not open")
	wrong := make([]byte, 32)
	_, err = OpenSecret(wrong, "alg1", sealed)
	require.Error(t, err)
}

func TestCheckURL(t *testing.T) {
	public := netpolicy.Policy{}
	devLoopback := netpolicy.Policy{Allow: netpolicy.Loopback}
	for _, tc := range []struct {
		url    string
		policy netpolicy.Policy
		reason string // "" = accepted
	}{
		{"https://hooks.example.com/algocloud", public, ""},
		{"http://hooks.example.com:8080/x?y=1", public, ""},
		{"https://93.184.216.34/x", public, ""},
		{"https://127.0.0.1:9000/hook", public, "127.0.0.1 is loopback"},
		{"https://[::1]/hook", public, "::1 is loopback"},
		{"https://localhost/hook", public, "localhost is loopback"},
		{"https://api.localhost./hook", public, "is loopback"},
		{"https://127.0.0.1:9000/hook", devLoopback, ""},
		{"https://localhost/hook", devLoopback, ""},
		{"https://10.0.0.1/hook", devLoopback, "10.0.0.1 is private"},
		{"http://169.254.169.254/latest/meta-data/", devLoopback, "cloud metadata"},
		{"http://[fd00:ec2::254]/", public, "cloud metadata"},
		{"http://[::ffff:10.0.0.1]/", public, "private"},
		{"ftp://hooks.example.com/", public, `must start with https://`},
		{"hooks.example.com/x", public, `must start with https://`},
		{"https://user:pw@hooks.example.com/", public, "must not carry a user or password"},
		{"https:///nohost", public, "has no host"},
		{"", public, "is empty"},
		{"https://h.example.com/" + strings.Repeat("a", MaxURLLength), public, "longer than"},
		{"https://h.example.com:0/", public, "port 0"},
	} {
		err := CheckURL(tc.policy, tc.url)
		if tc.reason == "" {
			require.NoError(t, err, tc.url)
			continue
		}
		require.Error(t, err, tc.url)
		require.Contains(t, err.Error(), tc.reason, tc.url)
		require.True(t, strings.HasPrefix(err.Error(), "webhook URL "), err.Error())
		var ue *URLError
		require.True(t, errors.As(err, &ue))
	}
	require.True(t, netpolicy.IsForbidden(CheckURL(public, "https://10.1.2.3/")))
	require.False(t, netpolicy.IsForbidden(CheckURL(public, "ftp://x/")))
}
