package route53

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv/testmoto"

	"github.com/algocloud/algocloud/activities/dns"
)

func TestTXT(t *testing.T) {
	moto := testmoto.Start(t)
	zone, _ := newZone(t, moto.Endpoint, "txt", false)
	r, err := open(t, moto.Endpoint, func(o *Options) { o.Domain = zone })
	require.NoError(t, err)
	ctx := ctxFor(t)
	name := "_acme-challenge.seg." + zone

	_, err = r.TXT(ctx, name)
	require.ErrorIs(t, err, dns.ErrNotFound)

	// Two challenges share one name (seg and *.seg): both values stay.
	require.NoError(t, r.SetTXT(ctx, name, "value-one"))
	require.NoError(t, r.SetTXT(ctx, name, "value-two"))
	require.NoError(t, r.SetTXT(ctx, name, "value-one"), "setting a value again changes nothing")
	got, err := r.TXT(ctx, name)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"value-one", "value-two"}, got)

	require.NoError(t, r.DeleteTXT(ctx, name, "value-one"))
	got, err = r.TXT(ctx, name)
	require.NoError(t, err)
	require.Equal(t, []string{"value-two"}, got)

	// Deleting is idempotent: a value not there, a set not there.
	require.NoError(t, r.DeleteTXT(ctx, name, "value-one"))
	require.NoError(t, r.DeleteTXT(ctx, name, "value-two"))
	_, err = r.TXT(ctx, name)
	require.ErrorIs(t, err, dns.ErrNotFound)
	require.NoError(t, r.DeleteTXT(ctx, name, "value-two"))
	require.NoError(t, r.DeleteTXT(ctx, "never."+zone, "x"))

	// Quotes and backslashes survive the round trip.
	odd := `say "hi" \ bye`
	require.NoError(t, r.SetTXT(ctx, "odd."+zone, odd))
	got, err = r.TXT(ctx, "odd."+zone)
	require.NoError(t, err)
	require.Equal(t, []string{odd}, got)
	require.NoError(t, r.DeleteTXT(ctx, "odd."+zone, odd))

	// TXT records do not disturb the address record of the same name.
	require.NoError(t, r.Upsert(ctx, "seg."+zone, "192.0.2.30", 0))
	require.NoError(t, r.SetTXT(ctx, "seg."+zone, "v"))
	require.NoError(t, r.Delete(ctx, "seg."+zone))
	got, err = r.TXT(ctx, "seg."+zone)
	require.NoError(t, err)
	require.Equal(t, []string{"v"}, got)
}

func TestUnquoteTXT(t *testing.T) {
	for in, want := range map[string]string{
		`"abc"`:         "abc",
		`"abc" "def"`:   "abcdef",
		`"a\"b"`:        `a"b`,
		`unquoted`:      "unquoted",
		`"broken`:       `"broken`,
		quoteTXT(`x\y`): `x\y`,
	} {
		require.Equal(t, want, unquoteTXT(in), in)
	}
}
