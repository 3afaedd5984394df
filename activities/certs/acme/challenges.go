package acme

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/challenge/http01"
)

// TXTRecords is what a DNS-01 challenge needs of a DNS service
// (*dns.Route53 in activities/dns is one). Both methods must be idempotent
// and return only once the change is visible to the zone's authoritative
// servers (Route53: INSYNC); names come without a trailing dot. They may be
// called concurrently for different names and must honour ctx.
type TXTRecords interface {
	// SetTXT adds value to name's TXT records, keeping other values.
	SetTXT(ctx context.Context, name, value string) error
	// DeleteTXT removes value from name's TXT records; absent is not an error.
	DeleteTXT(ctx context.Context, name, value string) error
}

// txtProvider is the lego DNS-01 provider over TXTRecords, made for one
// Obtain so that it carries that call's ctx (lego's Provider has none).
type txtProvider struct {
	ctx               context.Context
	records           TXTRecords
	timeout, interval time.Duration
}

var _ challenge.ProviderTimeout = txtProvider{}

// cleanUpTimeout bounds removing a challenge record after the call's ctx
// has ended, so a cancelled Obtain still leaves no record behind.
const cleanUpTimeout = time.Minute

func (p txtProvider) Present(domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(domain, keyAuth)
	return p.records.SetTXT(p.ctx, dns01.UnFqdn(info.EffectiveFQDN), info.Value)
}

func (p txtProvider) CleanUp(domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(domain, keyAuth)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), cleanUpTimeout)
	defer cancel()
	return p.records.DeleteTXT(ctx, dns01.UnFqdn(info.EffectiveFQDN), info.Value)
}

// Timeout is how long lego waits for the record to propagate, and how often
// it looks.
func (p txtProvider) Timeout() (timeout, interval time.Duration) { return p.timeout, p.interval }

// HTTPTokens answers HTTP-01 challenges from a web server that is already
// running on port 80 of the name (the inference server, a gateway): mount
// it at ChallengePath and pass it as Options.HTTPProvider. Its methods may
// be called concurrently.
type HTTPTokens struct {
	mu     sync.RWMutex
	tokens map[string]string // token -> key authorization
}

// ChallengePath is where HTTP-01 tokens are served (RFC 8555 section 8.3).
const ChallengePath = "/.well-known/acme-challenge/"

var (
	_ challenge.Provider = (*HTTPTokens)(nil)
	_ http.Handler       = (*HTTPTokens)(nil)
)

// Present publishes the key authorization for token.
func (h *HTTPTokens) Present(_, token, keyAuth string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tokens == nil {
		h.tokens = map[string]string{}
	}
	h.tokens[token] = keyAuth
	return nil
}

// CleanUp withdraws token.
func (h *HTTPTokens) CleanUp(_, token, _ string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.tokens, token)
	return nil
}

// ServeHTTP answers GET ChallengePath+token with the key authorization and
// 404 for anything else. Tokens are unguessable, so the Host is not checked.
func (h *HTTPTokens) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, ChallengePath)
	if !ok || r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.NotFound(w, r)
		return
	}
	h.mu.RLock()
	keyAuth, ok := h.tokens[token]
	h.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(keyAuth))
}

// httpProvider is the HTTP-01 provider New configures: the caller's, or
// lego's own server on HTTPAddress:HTTPPort for the length of a challenge.
func httpProvider(opts Options) challenge.Provider {
	if opts.HTTPProvider != nil {
		return opts.HTTPProvider
	}
	return http01.NewProviderServer(opts.HTTPAddress, itoa(opts.HTTPPort))
}

// ctxTransport ties every request lego makes during one call to that call's
// ctx: lego's API takes no context, and this is how cancelling Obtain stops
// its requests.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(req.WithContext(t.ctx))
}
