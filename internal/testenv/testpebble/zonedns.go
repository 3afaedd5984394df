package testpebble

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/algocloud/algocloud/activities/dns"

	"github.com/algocloud/algocloud/activities/dns/route53"
)

// ZoneDNS is an authoritative DNS server for one Route53 zone that answers
// A, AAAA and TXT questions from Route53 through activities/dns (Lookup,
// TXT), on the same 127.0.0.1 port over UDP and TCP. Names outside the zone
// are refused. pebble's VA asks it over TCP (for an HTTP-01 name's address,
// a DNS-01 challenge's TXT record); lego asks it over UDP whether a TXT
// record has propagated. So a challenge passes only if what activities/dns
// wrote to Route53 is really there.
type ZoneDNS struct {
	// Addr is host:port, the same port for UDP and TCP.
	Addr string

	r53     *route53.Route53
	zone    string // FQDN, lower case
	mu      sync.Mutex
	answers []Query // questions answered with at least one record
	servers []*miekg.Server
}

// Query is one question ZoneDNS answered with records.
type Query struct {
	// Net is the network it came over: "udp" or "tcp".
	Net string
	// Name is the FQDN asked about, lower case.
	Name string
	// Type is the question's type (miekg/dns's TypeA, TypeTXT, ...).
	Type uint16
	// Values are the answer's addresses or TXT strings.
	Values []string
}

// StartZoneDNS serves r53's zone until the test ends.
func StartZoneDNS(t testing.TB, r53 *route53.Route53) *ZoneDNS {
	t.Helper()
	z := &ZoneDNS{r53: r53, zone: strings.ToLower(r53.Zone()) + "."}
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testpebble: %v", err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			if attempt == 10 {
				t.Fatalf("testpebble: no port free for both UDP and TCP: %v", err)
			}
			continue
		}
		z.Addr = pc.LocalAddr().String()
		z.servers = []*miekg.Server{{PacketConn: pc, Handler: z}, {Listener: l, Handler: z}}
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

// Answered counts the questions of type t ("A", "TXT") about name answered
// with at least one record, over either network.
func (z *ZoneDNS) Answered(t, name string) int {
	return len(z.Queries("", name, miekg.StringToType[t]))
}

// Queries returns the questions of type qtype about name that were answered
// with records, over network ("tcp", "udp", or "" for either), in the order
// they came.
func (z *ZoneDNS) Queries(network, name string, qtype uint16) []Query {
	z.mu.Lock()
	defer z.mu.Unlock()
	name = strings.ToLower(strings.TrimSuffix(name, ".")) + "."
	var out []Query
	for _, q := range z.answers {
		if q.Name == name && q.Type == qtype && (network == "" || q.Net == network) {
			out = append(out, q)
		}
	}
	return out
}

// ServeDNS answers one question about the zone.
func (z *ZoneDNS) ServeDNS(w miekg.ResponseWriter, req *miekg.Msg) {
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
	z.answers = append(z.answers, Query{Net: w.RemoteAddr().Network(), Name: name, Type: q.Qtype, Values: values})
	z.mu.Unlock()
}
