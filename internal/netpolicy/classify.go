// Package netpolicy decides which network addresses the platform may connect
// to on a user's behalf (Git remotes, image URLs) and enforces it where the
// connection is made: every address is checked in net.Dialer's Control hook,
// after resolution and just before connect(2), so a DNS answer that changes
// between a check and the dial (rebinding), a redirect or a second address of
// a name cannot reach a refused address.
//
// It imports only the standard library: both the platform and the small
// algocloud-infer server link it.
package netpolicy

import (
	"net/netip"
	"strings"
)

// Class is a set of reasons an address is not an ordinary public unicast
// address. Public addresses have no class (0); an address may have several,
// e.g. an IPv6 address that embeds a private IPv4 address.
type Class uint32

// The classes. Comments name the ranges; the IPv6 forms that embed an IPv4
// address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) also get the
// classes of the IPv4 address they carry.
const (
	// Loopback is 127.0.0.0/8 and ::1.
	Loopback Class = 1 << iota
	// Private is RFC 1918 (10/8, 172.16/12, 192.168/16), IPv6 unique local
	// fc00::/7, deprecated site-local fec0::/10 and local-use NAT64
	// 64:ff9b:1::/48.
	Private
	// LinkLocal is 169.254.0.0/16 and fe80::/10.
	LinkLocal
	// Metadata is a cloud instance metadata service: 169.254.169.254 (AWS,
	// GCP, Azure), fd00:ec2::254 (AWS IPv6), 100.100.100.200 (Alibaba).
	Metadata
	// SharedAddressSpace is carrier-grade NAT, 100.64.0.0/10.
	SharedAddressSpace
	// Unspecified is 0.0.0.0 and :: (connecting there reaches this host).
	Unspecified
	// ThisNetwork is 0.0.0.0/8.
	ThisNetwork
	// ProtocolAssignments is 192.0.0.0/24 (192.0.0.170, NAT64 discovery, is
	// in it) and 2001::/23 outside Teredo.
	ProtocolAssignments
	// Benchmarking is 198.18.0.0/15 and 2001:2::/48.
	Benchmarking
	// Reserved is 240.0.0.0/4, IPv4-compatible IPv6 ::a.b.c.d, the discard
	// prefix 100::/64 and IPv6 outside 2000::/3 not named by another class.
	Reserved
	// Broadcast is 255.255.255.255.
	Broadcast
	// Multicast is 224.0.0.0/4 and ff00::/8.
	Multicast
	// Documentation is 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
	// 2001:db8::/32 and 3fff::/20.
	Documentation
	// Invalid is the zero netip.Addr.
	Invalid
)

// AllClasses allows every address (dev and tests: the flags that let the
// platform reach private hosts).
const AllClasses Class = Invalid<<1 - 1

var classNames = []string{
	"loopback", "private", "link-local", "cloud metadata", "shared (CGNAT)", "unspecified",
	"this-network", "IETF protocol assignment", "benchmarking", "reserved", "broadcast",
	"multicast", "documentation", "invalid",
}

// String names the classes in c, "public" for none.
func (c Class) String() string {
	if c == 0 {
		return "public"
	}
	var names []string
	for i, n := range classNames {
		if c&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

type rangeClass struct {
	prefix netip.Prefix
	class  Class
}

func ranges(c Class, prefixes ...string) []rangeClass {
	out := make([]rangeClass, len(prefixes))
	for i, p := range prefixes {
		out[i] = rangeClass{netip.MustParsePrefix(p), c}
	}
	return out
}

// v4Ranges and v6Ranges list the special-purpose ranges (IANA registries);
// an address gets the class of every range that contains it.
var v4Ranges = concat(
	ranges(ThisNetwork, "0.0.0.0/8"),
	ranges(Private, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
	ranges(SharedAddressSpace, "100.64.0.0/10"),
	ranges(Loopback, "127.0.0.0/8"),
	ranges(LinkLocal, "169.254.0.0/16"),
	ranges(Metadata, "169.254.169.254/32", "100.100.100.200/32"),
	ranges(ProtocolAssignments, "192.0.0.0/24"),
	ranges(Documentation, "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"),
	ranges(Benchmarking, "198.18.0.0/15"),
	ranges(Multicast, "224.0.0.0/4"),
	ranges(Reserved, "240.0.0.0/4"),
	ranges(Broadcast, "255.255.255.255/32"),
)

var v6Ranges = concat(
	ranges(Loopback, "::1/128"),
	ranges(Private, "fc00::/7", "fec0::/10", "64:ff9b:1::/48"),
	ranges(LinkLocal, "fe80::/10"),
	ranges(Metadata, "fd00:ec2::254/128"),
	ranges(Reserved, "100::/64"),
	ranges(Benchmarking, "2001:2::/48"),
	ranges(Documentation, "2001:db8::/32", "3fff::/20"),
	ranges(Multicast, "ff00::/8"),
)

var (
	ietf2001   = netip.MustParsePrefix("2001::/23")
	teredo     = netip.MustParsePrefix("2001::/32")
	benchmark6 = netip.MustParsePrefix("2001:2::/48")
	global6    = netip.MustParsePrefix("2000::/3")
	compat     = netip.MustParsePrefix("::/96")
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

func concat(lists ...[]rangeClass) []rangeClass {
	var out []rangeClass
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// Classify returns the classes of a; 0 means a public unicast address.
func Classify(a netip.Addr) Class {
	if !a.IsValid() {
		return Invalid
	}
	a = a.WithZone("")
	if a.Is4In6() { // ::ffff:a.b.c.d is the IPv4 address itself
		a = a.Unmap()
	}
	if a.Is4() {
		if a == netip.IPv4Unspecified() {
			return Unspecified | ThisNetwork
		}
		return classIn(a, v4Ranges)
	}
	if a == netip.IPv6Unspecified() {
		return Unspecified
	}
	c := classIn(a, v6Ranges)
	b := a.As16()
	switch {
	case a == netip.IPv6Loopback():
	case compat.Contains(a):
		c |= Reserved | classify4(b[12], b[13], b[14], b[15])
	case nat64.Contains(a):
		c |= classify4(b[12], b[13], b[14], b[15])
	case nat64Local.Contains(a):
		// RFC 6052's /48 layout: the IPv4 address straddles the u octet.
		c |= classify4(b[6], b[7], b[9], b[10])
	case sixToFour.Contains(a):
		c |= classify4(b[2], b[3], b[4], b[5])
	case teredo.Contains(a):
		// The Teredo server, and the client's address stored inverted.
		c |= classify4(b[4], b[5], b[6], b[7]) | classify4(^b[12], ^b[13], ^b[14], ^b[15])
	case ietf2001.Contains(a) && !benchmark6.Contains(a):
		c |= ProtocolAssignments
	case c == 0 && !global6.Contains(a):
		c |= Reserved
	}
	return c
}

func classify4(a, b, c, d byte) Class {
	return Classify(netip.AddrFrom4([4]byte{a, b, c, d}))
}

func classIn(a netip.Addr, list []rangeClass) Class {
	var c Class
	for _, r := range list {
		if r.prefix.Contains(a) {
			c |= r.class
		}
	}
	return c
}
