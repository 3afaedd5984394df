package netpolicy

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestClassify covers every range the policy names, the addresses from the
// acceptance report (NAT64, 6to4 and IPv4-compatible forms of the metadata
// address, 192.0.0.170, benchmarking, 240/4) and public neighbours just
// outside each range. Public addresses are only classified, never dialled.
func TestClassify(t *testing.T) {
	cases := []struct {
		addr string
		want Class
	}{
		// The acceptance report's addresses.
		{"64:ff9b::a9fe:a9fe", LinkLocal | Metadata},
		{"2002:a9fe:a9fe::1", LinkLocal | Metadata},
		{"::a9fe:a9fe", Reserved | LinkLocal | Metadata},
		{"192.0.0.170", ProtocolAssignments},
		{"198.18.0.1", Benchmarking},
		{"198.19.255.254", Benchmarking},
		{"240.0.0.1", Reserved},
		{"254.1.2.3", Reserved},

		// IPv4 ranges.
		{"127.0.0.1", Loopback},
		{"127.255.255.254", Loopback},
		{"10.0.0.1", Private},
		{"172.16.5.4", Private},
		{"172.31.255.255", Private},
		{"192.168.1.1", Private},
		{"169.254.1.1", LinkLocal},
		{"169.254.169.254", LinkLocal | Metadata},
		{"100.100.100.200", SharedAddressSpace | Metadata},
		{"100.64.0.1", SharedAddressSpace},
		{"100.127.255.255", SharedAddressSpace},
		{"0.0.0.0", Unspecified | ThisNetwork},
		{"0.1.2.3", ThisNetwork},
		{"192.0.0.1", ProtocolAssignments},
		{"255.255.255.255", Reserved | Broadcast},
		{"224.0.0.1", Multicast},
		{"239.255.255.250", Multicast},
		{"192.0.2.1", Documentation},
		{"198.51.100.7", Documentation},
		{"203.0.113.9", Documentation},

		// IPv6 ranges.
		{"::1", Loopback},
		{"::", Unspecified},
		{"fd00::1", Private},
		{"fc00::1", Private},
		{"fec0::1", Private},
		{"fd00:ec2::254", Private | Metadata},
		{"fe80::1", LinkLocal},
		{"fe80::1%eth0", LinkLocal},
		{"febf::1", LinkLocal},
		{"ff02::1", Multicast},
		{"2001:db8::1", Documentation},
		{"3fff::1", Documentation},
		{"2001:2::1", Benchmarking},
		{"2001:100::1", ProtocolAssignments},
		{"100::1", Reserved},
		{"4000::1", Reserved},

		// IPv6 forms that embed an IPv4 address are judged by it too.
		{"::ffff:127.0.0.1", Loopback},
		{"::ffff:169.254.169.254", LinkLocal | Metadata},
		{"::ffff:10.1.2.3", Private},
		{"::127.0.0.1", Reserved | Loopback},
		{"::8.8.8.8", Reserved},
		{"64:ff9b::127.0.0.1", Loopback},
		{"64:ff9b::10.0.0.1", Private},
		{"64:ff9b::192.0.0.170", ProtocolAssignments},
		{"64:ff9b:1:7f00:1:0:1::", Private | Loopback},        // local-use NAT64 of 127.0.0.1 (/48 layout)
		{"64:ff9b:1:808:8:800::", Private},                    // local-use NAT64 is local even for 8.8.8.8
		{"2002:7f00:1::1", Loopback},                          // 6to4 of 127.0.0.1
		{"2002:c612:1::", Benchmarking},                       // 6to4 of 198.18.0.1
		{"2002:f000:1::", Reserved},                           // 6to4 of 240.0.0.1
		{"2001:0:a9fe:a9fe::f7f7:f7f7", LinkLocal | Metadata}, // Teredo server 169.254.169.254
		{"2001:0:808:808::80ff:fffe", Loopback},               // Teredo client 127.0.0.1 (stored inverted)

		// Public neighbours: classified only, never dialled.
		{"8.8.8.8", 0},
		{"93.184.215.14", 0},
		{"1.1.1.1", 0},
		{"172.32.0.1", 0},
		{"100.128.0.1", 0},
		{"198.20.0.1", 0},
		{"192.0.1.1", 0},
		{"223.255.255.255", 0},
		{"169.253.255.255", 0},
		{"::ffff:8.8.8.8", 0},
		{"2606:4700::1111", 0},
		{"2a00:1450:4001::1", 0},
		{"64:ff9b::808:808", 0},          // NAT64 of 8.8.8.8
		{"2002:808:808::1", 0},           // 6to4 of 8.8.8.8
		{"2001:0:808:808::f7f7:f7f7", 0}, // Teredo server and client 8.8.8.8
		{"2001:200::1", 0},               // just past 2001::/23
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			got := Classify(a)
			require.Equal(t, tc.want, got, "%s: got %s, want %s", tc.addr, got, tc.want)
			err := Policy{}.Check(a)
			if tc.want == 0 {
				require.NoError(t, err)
			} else {
				require.True(t, IsForbidden(err), "%s: %v", tc.addr, err)
			}
		})
	}
	require.Equal(t, Invalid, Classify(netip.Addr{}))
}

func TestPolicyAllow(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	meta := netip.MustParseAddr("169.254.169.254")
	require.Error(t, Policy{}.Check(lo))
	require.NoError(t, Policy{Allow: Loopback}.Check(lo))
	require.Error(t, Policy{Allow: LinkLocal}.Check(meta), "metadata needs its own class")
	require.NoError(t, Policy{Allow: LinkLocal | Metadata}.Check(meta))
	require.NoError(t, Policy{Allow: AllClasses}.Check(meta))
	require.Error(t, Policy{Allow: Private}.Check(netip.MustParseAddr("64:ff9b:1:7f00:1:0:1::")),
		"an embedded loopback address needs Loopback too")
	exc := Policy{AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	require.NoError(t, exc.Check(netip.MustParseAddr("127.0.0.2")))
	require.NoError(t, exc.Check(netip.MustParseAddr("::ffff:127.0.0.2")))
	require.Error(t, exc.Check(lo))
	require.Equal(t, "loopback, private", (Loopback | Private).String())
	require.Equal(t, "public", Class(0).String())
	err := Policy{}.Check(meta)
	require.EqualError(t, err, "address 169.254.169.254 is link-local, cloud metadata, not a public address")
}
