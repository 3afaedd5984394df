package route53

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv/testmoto"

	"github.com/algocloud/algocloud/activities/dns"
)

func requirePermanent(t *testing.T, err error, target error) {
	t.Helper()
	var pe *dns.PermanentError
	require.True(t, errors.As(err, &pe), "want *dns.PermanentError, got %v", err)
	if target != nil {
		require.ErrorIs(t, err, target)
	}
}

func TestUpsertLookupDelete(t *testing.T) {
	moto := testmoto.Start(t)
	zone, id := newZone(t, moto.Endpoint, "records", false)
	r, err := open(t, moto.Endpoint, func(o *Options) { o.Domain = zone })
	require.NoError(t, err)
	require.Equal(t, id, r.ZoneID())
	require.Equal(t, zone, r.Zone())
	ctx := ctxFor(t)
	api := "seg." + zone

	require.NoError(t, r.Upsert(ctx, api, "192.0.2.10", 0))
	ip, err := r.Lookup(ctx, api)
	require.NoError(t, err)
	require.Equal(t, "192.0.2.10", ip)

	// Upsert replaces; names are case-insensitive and may end in a dot.
	require.NoError(t, r.Upsert(ctx, "SEG."+zone+".", "192.0.2.11", 30*time.Second))
	ip, err = r.Lookup(ctx, api)
	require.NoError(t, err)
	require.Equal(t, "192.0.2.11", ip)

	// IPv6 becomes an AAAA record.
	v6 := "v6." + zone
	require.NoError(t, r.Upsert(ctx, v6, "2001:db8::1", 0))
	ip, err = r.Lookup(ctx, v6)
	require.NoError(t, err)
	require.Equal(t, "2001:db8::1", ip)

	// A name next to another is not found through it.
	_, err = r.Lookup(ctx, "se."+zone)
	require.ErrorIs(t, err, dns.ErrNotFound)

	require.NoError(t, r.Delete(ctx, api))
	_, err = r.Lookup(ctx, api)
	require.ErrorIs(t, err, dns.ErrNotFound)
	// The other record is untouched.
	ip, err = r.Lookup(ctx, v6)
	require.NoError(t, err)
	require.Equal(t, "2001:db8::1", ip)

	// Delete is idempotent: gone, and never there.
	require.NoError(t, r.Delete(ctx, api))
	require.NoError(t, r.Delete(ctx, "never."+zone))
	require.NoError(t, r.Delete(ctx, v6))
	_, err = r.Lookup(ctx, v6)
	require.ErrorIs(t, err, dns.ErrNotFound)
}

func TestZoneByID(t *testing.T) {
	moto := testmoto.Start(t)
	zone, id := newZone(t, moto.Endpoint, "byid", false)
	r, err := open(t, moto.Endpoint, func(o *Options) { o.ZoneID = "/hostedzone/" + id })
	require.NoError(t, err)
	require.Equal(t, id, r.ZoneID())
	require.Equal(t, zone, r.Zone())
}

func TestPublicZonePreferred(t *testing.T) {
	moto := testmoto.Start(t)
	zone, _ := newZone(t, moto.Endpoint, "both", true)
	r, err := open(t, moto.Endpoint, func(o *Options) { o.Domain = zone })
	require.NoError(t, err, "a private zone alone is used")
	privateID := r.ZoneID()

	// A public zone of the same name wins.
	_, publicID := newZoneNamed(t, moto.Endpoint, zone)
	r, err = open(t, moto.Endpoint, func(o *Options) { o.Domain = zone })
	require.NoError(t, err)
	require.Equal(t, publicID, r.ZoneID())
	require.NotEqual(t, privateID, publicID)

	// Two public zones of one name are ambiguous.
	newZoneNamed(t, moto.Endpoint, zone)
	_, err = open(t, moto.Endpoint, func(o *Options) { o.Domain = zone })
	requirePermanent(t, err, nil)
	require.ErrorContains(t, err, "set the zone ID")
}

func TestWaitsForInSync(t *testing.T) {
	moto := testmoto.Start(t)
	zone, _ := newZone(t, moto.Endpoint, "insync", false)
	proxy := newPendingProxy(t, moto.Endpoint, 2)
	r, err := open(t, proxy.URL, func(o *Options) { o.Domain = zone })
	require.NoError(t, err)

	require.NoError(t, r.Upsert(ctxFor(t), "seg."+zone, "192.0.2.20", 0))
	require.EqualValues(t, 3, proxy.getChanges.Load(), "polled GetChange until INSYNC: two PENDING, then INSYNC")

	// A change that never gets in sync ends with ctx.
	proxy.pendingPolls.Store(1 << 30)
	ctx, cancel := context.WithTimeout(ctxFor(t), 200*time.Millisecond)
	defer cancel()
	err = r.Upsert(ctx, "seg."+zone, "192.0.2.21", 0)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "in sync")
}

func TestErrors(t *testing.T) {
	moto := testmoto.Start(t)
	ctx := ctxFor(t)

	_, err := open(t, moto.Endpoint, func(o *Options) { o.Domain = "absent-zone.test" })
	requirePermanent(t, err, dns.ErrZoneNotFound)

	_, err = open(t, moto.Endpoint, func(o *Options) { o.ZoneID = "ZNOSUCHZONE123" })
	requirePermanent(t, err, dns.ErrZoneNotFound)
	require.Equal(t, codeNoSuchHostedZone, apiCode(err), "mapped from the API error code")

	_, err = open(t, moto.Endpoint, func(*Options) {})
	require.ErrorContains(t, err, "need a zone ID or a domain")

	zone, _ := newZone(t, moto.Endpoint, "errors", false)
	r, err := open(t, moto.Endpoint, func(o *Options) { o.Domain = zone })
	require.NoError(t, err)

	requirePermanent(t, r.Upsert(ctx, "seg.other.test", "192.0.2.1", 0), dns.ErrOutsideZone)
	requirePermanent(t, r.Upsert(ctx, "x"+zone, "192.0.2.1", 0), dns.ErrOutsideZone)
	requirePermanent(t, r.Delete(ctx, "seg.other.test"), dns.ErrOutsideZone)
	requirePermanent(t, r.SetTXT(ctx, "seg.other.test", "v"), dns.ErrOutsideZone)
	_, err = r.Lookup(ctx, "seg.other.test")
	requirePermanent(t, err, dns.ErrOutsideZone)
	requirePermanent(t, r.Upsert(ctx, "seg."+zone, "not-an-ip", 0), nil)
	requirePermanent(t, r.SetTXT(ctx, "t."+zone, "caf\xc3\xa9"), nil)

	// A name Route53 refuses: the API's own refusal, classified by its code.
	err = r.Upsert(ctx, "caf\u00e9."+zone, "192.0.2.1", 0)
	requirePermanent(t, err, nil)
	require.Contains(t, []string{codeInvalidChangeBatch, codeInvalidInput}, apiCode(err))

	// The zone deleted under a live client.
	_, err = rawClient(moto.Endpoint).DeleteHostedZone(ctx, &route53.DeleteHostedZoneInput{Id: &r.zoneID})
	require.NoError(t, err)
	requirePermanent(t, r.Upsert(ctx, "seg."+zone, "192.0.2.1", 0), dns.ErrZoneNotFound)
}

func TestClassify(t *testing.T) {
	api := func(code string) error {
		return &smithy.GenericAPIError{Code: code, Message: "whatever the message says"}
	}
	for _, tc := range []struct {
		code      string
		permanent bool
		target    error
	}{
		{"NoSuchHostedZone", true, dns.ErrZoneNotFound},
		{"InvalidChangeBatch", true, nil},
		{"InvalidInput", true, nil},
		{"AccessDenied", true, nil},
		{"Throttling", false, nil},
		{"PriorRequestNotComplete", false, nil},
		{"ServiceUnavailable", false, nil},
		{"SomethingNew", false, nil},
	} {
		t.Run(tc.code, func(t *testing.T) {
			err := classify("op", api(tc.code))
			var pe *dns.PermanentError
			require.Equal(t, tc.permanent, errors.As(err, &pe), "%v", err)
			if tc.target != nil {
				require.ErrorIs(t, err, tc.target)
			}
			require.Equal(t, tc.code, apiCode(err), "the API error stays reachable")
		})
	}
	err := classify("op", context.Canceled)
	require.ErrorIs(t, err, context.Canceled)
	var pe *dns.PermanentError
	require.False(t, errors.As(err, &pe))
}
