// Package faultproxy is an HTTP reverse proxy that sits in front of moto's
// EC2 (or any AWS Query API server) and injects the faults a real cloud API
// has: throttling, server errors, dropped connections, answers lost after the
// request took effect, and quota or validation errors. Tests and benchmarks
// point the provider's EC2 endpoint at the proxy instead of at moto.
//
// Each request's EC2 Query API action (the form field Action of the POST
// body, or of the URL query) is matched against a Plan: an ordered list of
// Rules, each naming an action (or any), a Fault, and when it fires (skip the
// first N, at most Count times, with a Probability drawn from a seeded
// source). The first rule that fires decides; a request no rule fires for is
// forwarded untouched. The proxy counts, per action, what it saw, forwarded
// and injected (Counts).
//
// Injected errors have EC2's XML error shape,
//
//	<Response><Errors><Error><Code>…</Code><Message>…</Message></Error></Errors><RequestID>…</RequestID></Response>
//
// which the AWS SDK parses into a smithy.APIError with that code, so the
// client's retryer and the provider's error classification see exactly what
// EC2 would send.
//
// Everything listens on 127.0.0.1; the proxy only ever dials its target.
package faultproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is what the proxy does to a request a rule fires for.
type Fault string

// The faults a Rule can inject.
const (
	// Throttle answers EC2's RequestLimitExceeded (HTTP 503 unless the rule
	// sets Status; EC2 has answered both 503 and 400) without forwarding.
	Throttle Fault = "throttle"
	// ServerError answers InternalError, HTTP 500, without forwarding.
	ServerError Fault = "server-error"
	// APIError answers the rule's Code (with its Status and Message, or the
	// defaults of a known code: see KnownErrors) without forwarding: quota
	// errors such as InstanceLimitExceeded, or validation errors.
	APIError Fault = "api-error"
	// Drop reads the request and closes the connection without forwarding
	// it or answering: the client sees the connection end (EOF).
	Drop Fault = "drop"
	// DropAfter forwards the request (moto acts on it), then closes the
	// connection instead of answering: the request took effect but the
	// answer is lost, as when a worker dies between RunInstances and its
	// answer.
	DropAfter Fault = "drop-after"
)

// Rule injects one fault into requests of one action.
type Rule struct {
	// Action is the EC2 action matched ("RunInstances"); "" or "*" matches
	// every request.
	Action string
	// Fault is what is injected.
	Fault Fault
	// Code, Status and Message shape the error of APIError (required Code)
	// and override those of Throttle and ServerError.
	Code    string
	Status  int
	Message string
	// Skip lets the first Skip matching requests through before the rule
	// may fire.
	Skip int
	// Count caps how often the rule fires; 0 means no cap.
	Count int
	// Probability is the chance that the rule fires for a matching request
	// (drawn from the Plan's seeded source); 0 means every time.
	Probability float64
}

// Plan is what the proxy injects.
type Plan struct {
	// Rules are tried in order for each request; the first that fires decides.
	Rules []Rule
	// Seed seeds the source Probability is drawn from, so that a run with
	// the same requests in the same order injects the same faults.
	Seed uint64
	// ClientTokens makes the proxy honour RunInstances' ClientToken as EC2
	// does and moto does not: the first successful answer for a token is
	// kept, and a later RunInstances with the same token gets that answer
	// again without reaching moto (counted as Replayed). Without it a
	// retried RunInstances whose answer was lost launches a second
	// instance on moto where EC2 would not.
	ClientTokens bool
	// OnForwarded, when set, is called after moto answered a forwarded
	// request and before the answer goes back (or is dropped). Tests use it
	// to kill the client process at that moment. It must not block for long.
	OnForwarded func(action string, status int)
}

// Counts is what the proxy did with one action's requests.
type Counts struct {
	// Requests is how many attempts reached the proxy.
	Requests int
	// Forwarded is how many were passed to the target (DropAfter included).
	Forwarded int
	// Replayed is how many RunInstances got a kept answer (Plan.ClientTokens).
	Replayed int
	// Faults counts injected faults by kind.
	Faults map[Fault]int
}

// Injected is the number of faults injected.
func (c Counts) Injected() int {
	n := 0
	for _, v := range c.Faults {
		n += v
	}
	return n
}

func (c *Counts) add(o Counts) {
	c.Requests += o.Requests
	c.Forwarded += o.Forwarded
	c.Replayed += o.Replayed
	for f, v := range o.Faults {
		if c.Faults == nil {
			c.Faults = map[Fault]int{}
		}
		c.Faults[f] += v
	}
}

// KnownErrors are the HTTP status and message the proxy gives an injected
// EC2 error code when the rule sets none (messages as EC2 words them).
var KnownErrors = map[string]struct {
	Status  int
	Message string
}{
	"RequestLimitExceeded":         {http.StatusServiceUnavailable, "Request limit exceeded."},
	"InternalError":                {http.StatusInternalServerError, "An internal error has occurred."},
	"Unavailable":                  {http.StatusServiceUnavailable, "The server is overloaded and can't handle the request."},
	"InsufficientInstanceCapacity": {http.StatusInternalServerError, "We currently do not have sufficient capacity in the Availability Zone you requested."},
	"InstanceLimitExceeded": {http.StatusBadRequest, "You have requested more instances (1) than your current instance limit of 0 allows " +
		"for the specified instance type. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."},
	"VcpuLimitExceeded": {http.StatusBadRequest, "You have requested more vCPU capacity than your current vCPU limit of 0 allows " +
		"for the instance bucket that the specified instance type belongs to."},
	"SecurityGroupLimitExceeded": {http.StatusBadRequest, "The maximum number of security groups has been reached."},
	"InvalidAMIID.NotFound":      {http.StatusBadRequest, "The image id '[ami-0000000000000000]' does not exist"},
	"InvalidParameterValue":      {http.StatusBadRequest, "Invalid value for a parameter."},
	"Unsupported":                {http.StatusBadRequest, "The requested configuration is currently not supported."},
}

// maxBody bounds the request bodies the proxy reads (EC2 takes 16 KiB of
// user data, base64'd, in RunInstances).
const maxBody = 8 << 20

// Proxy is a running fault-injecting proxy. Its methods may be called
// concurrently.
type Proxy struct {
	// URL is the proxy's base URL (http://127.0.0.1:PORT): the endpoint to
	// give the EC2 client.
	URL string

	target *url.URL
	srv    *http.Server
	ln     net.Listener
	fwd    *http.Client

	mu     sync.Mutex
	plan   Plan
	rng    *mrand.Rand
	seen   []int // per rule: matching requests
	fired  []int // per rule: times fired
	counts map[string]*Counts
	tokens map[string]kept
}

type kept struct {
	status int
	header http.Header
	body   []byte
}

// Listen starts a proxy to target (a base URL, such as moto's
// http://127.0.0.1:PORT) on a free 127.0.0.1 port. Close stops it.
func Listen(target string, plan Plan) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q is not an http(s) base URL", target)
	}
	if err := check(plan); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{
		URL:    "http://" + ln.Addr().String(),
		target: u,
		ln:     ln,
		fwd: &http.Client{
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second},
			// Never follow redirects: the client should see what the target said.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		counts: map[string]*Counts{},
		tokens: map[string]kept{},
	}
	p.setPlan(plan)
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Start is Listen for tests: it fails the test on error and closes the proxy
// when the test ends.
func Start(tb testing.TB, target string, plan Plan) *Proxy {
	tb.Helper()
	p, err := Listen(target, plan)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// Close stops the proxy and drops the connections it holds.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	p.fwd.CloseIdleConnections()
	return err
}

func check(plan Plan) error {
	for i, r := range plan.Rules {
		switch r.Fault {
		case Throttle, ServerError, Drop, DropAfter:
		case APIError:
			if r.Code == "" {
				return fmt.Errorf("faultproxy: rule %d: an api-error needs a Code", i)
			}
		default:
			return fmt.Errorf("faultproxy: rule %d: unknown fault %q", i, r.Fault)
		}
		if r.Probability < 0 || r.Probability > 1 {
			return fmt.Errorf("faultproxy: rule %d: probability %v is not in [0, 1]", i, r.Probability)
		}
		if r.Skip < 0 || r.Count < 0 {
			return fmt.Errorf("faultproxy: rule %d: negative skip or count", i)
		}
		if r.Status != 0 && (r.Status < 100 || r.Status > 599) {
			return fmt.Errorf("faultproxy: rule %d: status %d is not an HTTP status", i, r.Status)
		}
	}
	return nil
}

// SetPlan replaces the plan; rule counters start again and the random
// source is reseeded. Counts and kept ClientToken answers are not reset.
func (p *Proxy) SetPlan(plan Plan) error {
	if err := check(plan); err != nil {
		return err
	}
	p.setPlan(plan)
	return nil
}

func (p *Proxy) setPlan(plan Plan) {
	p.mu.Lock()
	defer p.mu.Unlock()
	plan.Rules = append([]Rule(nil), plan.Rules...)
	p.plan = plan
	p.rng = mrand.New(mrand.NewPCG(plan.Seed, plan.Seed^0x9e3779b97f4a7c15))
	p.seen = make([]int, len(plan.Rules))
	p.fired = make([]int, len(plan.Rules))
}

// Counts returns a copy of the counts by action ("" for requests without
// an Action).
func (p *Proxy) Counts() map[string]Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]Counts, len(p.counts))
	for a, c := range p.counts {
		var cp Counts
		cp.add(*c)
		out[a] = cp
	}
	return out
}

// Total sums the counts of every action.
func (p *Proxy) Total() Counts {
	var t Counts
	for _, c := range p.Counts() {
		t.add(c)
	}
	return t
}

// ResetCounts zeroes the counts.
func (p *Proxy) ResetCounts() {
	p.mu.Lock()
	p.counts = map[string]*Counts{}
	p.mu.Unlock()
}

// decide counts the request and returns the rule that fires for it, if any.
func (p *Proxy) decide(action string) (Rule, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.count(action)
	c.Requests++
	for i, r := range p.plan.Rules {
		if r.Action != "" && r.Action != "*" && r.Action != action {
			continue
		}
		p.seen[i]++
		if p.seen[i] <= r.Skip || (r.Count > 0 && p.fired[i] >= r.Count) {
			continue
		}
		if r.Probability > 0 && p.rng.Float64() >= r.Probability {
			continue
		}
		p.fired[i]++
		if c.Faults == nil {
			c.Faults = map[Fault]int{}
		}
		c.Faults[r.Fault]++
		return r, true
	}
	return Rule{}, false
}

func (p *Proxy) count(action string) *Counts {
	c := p.counts[action]
	if c == nil {
		c = &Counts{}
		p.counts[action] = c
	}
	return c
}

// ServeHTTP applies the plan to one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		http.Error(w, "faultproxy: read request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxBody {
		http.Error(w, "faultproxy: request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	form := parseForm(r, body)
	action := form.Get("Action")
	rule, fire := p.decide(action)
	if fire {
		switch rule.Fault {
		case Throttle:
			writeEC2Error(w, rule, "RequestLimitExceeded")
			return
		case ServerError:
			writeEC2Error(w, rule, "InternalError")
			return
		case APIError:
			writeEC2Error(w, rule, rule.Code)
			return
		case Drop:
			drop(w)
			return
		}
	}
	token := ""
	if action == "RunInstances" {
		token = form.Get("ClientToken")
	}
	if k, ok := p.replay(token); ok {
		if fire && rule.Fault == DropAfter {
			drop(w)
			return
		}
		writeKept(w, k)
		return
	}
	resp, err := p.forward(r, body)
	if err != nil {
		http.Error(w, "faultproxy: forward: "+err.Error(), http.StatusBadGateway)
		return
	}
	p.mu.Lock()
	p.count(action).Forwarded++
	if token != "" && p.plan.ClientTokens && resp.status/100 == 2 {
		if _, ok := p.tokens[token]; !ok {
			p.tokens[token] = resp
		}
	}
	hook := p.plan.OnForwarded
	p.mu.Unlock()
	if hook != nil {
		hook(action, resp.status)
	}
	if fire && rule.Fault == DropAfter {
		drop(w)
		return
	}
	writeKept(w, resp)
}

// replay returns the kept answer for a RunInstances ClientToken.
func (p *Proxy) replay(token string) (kept, bool) {
	if token == "" {
		return kept{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.plan.ClientTokens {
		return kept{}, false
	}
	k, ok := p.tokens[token]
	if ok {
		p.count("RunInstances").Replayed++
	}
	return k, ok
}

// parseForm returns the Query API parameters: the form body of a POST, else
// the URL query.
func parseForm(r *http.Request, body []byte) url.Values {
	ct := r.Header.Get("Content-Type")
	if r.Method == http.MethodPost && (ct == "" || strings.HasPrefix(ct, "application/x-www-form-urlencoded")) {
		if v, err := url.ParseQuery(string(body)); err == nil && v.Get("Action") != "" {
			return v
		}
	}
	return r.URL.Query()
}

// hopHeaders are not passed on (RFC 9110, section 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// forward sends the request to the target, keeping its Host header (it is
// signed), and reads the whole answer.
func (p *Proxy) forward(r *http.Request, body []byte) (kept, error) {
	u := *p.target
	u.Path = strings.TrimSuffix(p.target.Path, "/") + r.URL.Path
	u.RawPath = ""
	u.RawQuery = r.URL.RawQuery
	// The answer must come back even when the client has gone: DropAfter
	// and a killed client both mean moto finishes what it was asked.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Minute)
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return kept{}, err
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Host = r.Host
	resp, err := p.fwd.Do(out)
	if err != nil {
		return kept{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return kept{}, err
	}
	h := resp.Header.Clone()
	for _, k := range hopHeaders {
		h.Del(k)
	}
	h.Del("Content-Length")
	return kept{status: resp.StatusCode, header: h, body: b}, nil
}

func writeKept(w http.ResponseWriter, k kept) {
	for key, vs := range k.header {
		w.Header()[key] = append([]string(nil), vs...)
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(k.body)))
	w.WriteHeader(k.status)
	_, _ = w.Write(k.body)
}

// drop closes the client's connection without an answer.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): abort the handler, which resets the stream.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// ec2Error is EC2's error document.
type ec2Error struct {
	XMLName   xml.Name `xml:"Response"`
	Code      string   `xml:"Errors>Error>Code"`
	Message   string   `xml:"Errors>Error>Message"`
	RequestID string   `xml:"RequestID"`
}

// ErrorXML renders EC2's XML error document for code and message.
func ErrorXML(code, message, requestID string) []byte {
	b, err := xml.Marshal(ec2Error{Code: code, Message: message, RequestID: requestID})
	if err != nil { // a struct of strings always marshals
		panic(err)
	}
	return append([]byte(xml.Header), b...)
}

func writeEC2Error(w http.ResponseWriter, r Rule, defaultCode string) {
	code := r.Code
	if code == "" {
		code = defaultCode
	}
	status, msg := r.Status, r.Message
	if k, ok := KnownErrors[code]; ok {
		if status == 0 {
			status = k.Status
		}
		if msg == "" {
			msg = k.Message
		}
	}
	if status == 0 {
		status = http.StatusBadRequest
	}
	if msg == "" {
		msg = "Injected " + code + " (faultproxy)."
	}
	id := requestID()
	body := ErrorXML(code, msg, id)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Header().Set("x-amzn-RequestId", id)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// requestID is a random UUID-shaped ID, as EC2's.
func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
