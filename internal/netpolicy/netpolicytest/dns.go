// Package netpolicytest runs a DNS server on 127.0.0.1 for tests of
// netpolicy's users: names answer whatever the test says (forbidden
// addresses, or a different address on each query, as DNS rebinding does),
// without touching the system's resolver or any other host.
package netpolicytest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Answer returns the addresses for name (lower case, no trailing dot) on its
// n-th lookup (n counts from 0, per name: the n-th A query and the n-th AAAA
// query, which a resolver sends together); the server answers each query
// with the addresses of its family.
type Answer func(name string, n int) []netip.Addr

// DNS is a running test DNS server.
type DNS struct {
	// Resolver sends every query to the server (never to the system's).
	Resolver *net.Resolver

	mu      sync.Mutex
	queries map[string]int
}

// Lookups returns how many A queries name got.
func (d *DNS) Lookups(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[strings.ToLower(name)+"/A"]
}

// StartDNS starts a DNS server on 127.0.0.1 answering with answer; it stops
// when the test ends.
func StartDNS(t testing.TB, answer Answer) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for DNS: %v", err)
	}
	d := &DNS{queries: map[string]int{}}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		for _, q := range req.Question {
			if q.Qtype != dns.TypeA && q.Qtype != dns.TypeAAAA {
				continue
			}
			name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
			key := name + "/" + dns.TypeToString[q.Qtype]
			d.mu.Lock()
			n := d.queries[key]
			d.queries[key]++
			d.mu.Unlock()
			for _, a := range answer(name, n) {
				hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 0}
				switch {
				case a.Is4() && q.Qtype == dns.TypeA:
					hdr.Rrtype = dns.TypeA
					m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
				case !a.Is4() && q.Qtype == dns.TypeAAAA:
					hdr.Rrtype = dns.TypeAAAA
					m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
				}
			}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	addr := pc.LocalAddr().String()
	d.Resolver = &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "udp", addr)
		},
	}
	return d
}
