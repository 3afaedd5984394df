package acme

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	miekg "github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/dns"
)

// zoneDNS is a small authoritative DNS server for the test's hosted zone
// that answers from Route53 (moto) through activities/dns: A and AAAA from
// Lookup, TXT from TXT. pebble's VA asks it over TCP for the address of an
// HTTP-01 name and for the TXT record of a DNS-01 challenge; lego asks it
// over UDP whether the TXT record has propagated. So a challenge passes only
// if what activities/dns wrote to Route53 is really there.
type zoneDNS struct {
	// Addr is host:port, the same port for UDP and TCP.
	Addr string

	r53  *dns.Route53
	zone string // FQDN, lower case

	mu      sync.Mutex
	answers []query // questions answered with at least one record
	servers []*miekg.Server
}

// query is one answered question.
type query struct {
	Net, Name string
	Type      uint16
	Values    []string
}

func startZoneDNS(t *testing.T, r53 *dns.Route53) *zoneDNS {
	t.Helper()
	z := &zoneDNS{r53: r53, zone: strings.ToLower(r53.Zone()) + "."}
	// Take a UDP port, then the same TCP port; retry if that one is taken.
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			require.Less(t, attempt, 10, "no port free for both UDP and TCP: %v", err)
			continue
		}
		z.Addr = pc.LocalAddr().String()
		z.servers = []*miekg.Server{
			{PacketConn: pc, Handler: z},
			{Listener: l, Handler: z},
		}
		break
	}
	for _, s := range z.servers {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
	}
	t.Cleanup(func() {
		for _, s := range z.servers {
			_ = s.Shutdown()
		}
	})
	return z
}

// ServeDNS answers one question about the zone; names outside it are refused.
func (z *zoneDNS) ServeDNS(w miekg.ResponseWriter, req *miekg.Msg) {
	m := new(miekg.Msg)
	m.SetReply(req)
	m.Authoritative = true
	defer func() { _ = w.WriteMsg(m) }()
	if len(req.Question) != 1 {
		m.Rcode = miekg.RcodeFormatError
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if name != z.zone && !strings.HasSuffix(name, "."+z.zone) {
		m.Rcode = miekg.RcodeRefused
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hdr := miekg.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: miekg.ClassINET, Ttl: 0}
	var values []string
	switch q.Qtype {
	case miekg.TypeA, miekg.TypeAAAA:
		ip, err := z.r53.Lookup(ctx, name)
		if err != nil && !errors.Is(err, dns.ErrNotFound) {
			m.Rcode = miekg.RcodeServerFailure
			return
		}
		addr := net.ParseIP(ip)
		switch {
		case addr == nil:
		case q.Qtype == miekg.TypeA && addr.To4() != nil:
			m.Answer = append(m.Answer, &miekg.A{Hdr: hdr, A: addr.To4()})
			values = append(values, ip)
		case q.Qtype == miekg.TypeAAAA && addr.To4() == nil:
			m.Answer = append(m.Answer, &miekg.AAAA{Hdr: hdr, AAAA: addr})
			values = append(values, ip)
		}
	case miekg.TypeTXT:
		txts, err := z.r53.TXT(ctx, name)
		if err != nil && !errors.Is(err, dns.ErrNotFound) {
			m.Rcode = miekg.RcodeServerFailure
			return
		}
		for _, v := range txts {
			m.Answer = append(m.Answer, &miekg.TXT{Hdr: hdr, Txt: []string{v}})
		}
		values = txts
	}
	if len(m.Answer) == 0 {
		// NODATA: the zone's SOA tells resolvers how long to remember it.
		m.Ns = []miekg.RR{&miekg.SOA{
			Hdr: miekg.RR_Header{Name: z.zone, Rrtype: miekg.TypeSOA, Class: miekg.ClassINET, Ttl: 0},
			Ns:  "ns." + z.zone, Mbox: "hostmaster." + z.zone,
			Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: 0,
		}}
		return
	}
	z.mu.Lock()
	z.answers = append(z.answers, query{Net: w.RemoteAddr().Network(), Name: name, Type: q.Qtype, Values: values})
	z.mu.Unlock()
}

// answered returns the questions of type t about name that were answered
// with records, over network net ("tcp", "udp", or "" for either).
func (z *zoneDNS) answered(network, name string, t uint16) []query {
	z.mu.Lock()
	defer z.mu.Unlock()
	name = strings.ToLower(strings.TrimSuffix(name, ".")) + "."
	var out []query
	for _, q := range z.answers {
		if q.Name == name && q.Type == t && (network == "" || q.Net == network) {
			out = append(out, q)
		}
	}
	return out
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	return p
}
