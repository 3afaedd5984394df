package route53

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/algocloud/algocloud/activities/dns"
)

// TXTTTL is the TTL of TXT records: short, since ACME challenge records
// live for minutes and a resolver must not keep an old value.
const TXTTTL = 60 * time.Second

// SetTXT adds value to name's TXT record set (creating it), keeping the
// values already there: names that share a challenge name (example.com and
// *.example.com) each add their own. Adding a value that is there already
// changes nothing. It waits until the change is INSYNC.
func (r *Route53) SetTXT(ctx context.Context, name, value string) error {
	n, err := r.inZone(name)
	if err != nil {
		return fmt.Errorf("set TXT %s: %w", name, err)
	}
	if err := checkTXT(value); err != nil {
		return fmt.Errorf("set TXT %s: %w", name, err)
	}
	quoted := quoteTXT(value)
	return r.update(ctx, "set TXT "+name, n, types.RRTypeTxt, func(cur *types.ResourceRecordSet) *types.ResourceRecordSet {
		next := &types.ResourceRecordSet{
			Name: aws.String(n),
			Type: types.RRTypeTxt,
			TTL:  aws.Int64(int64(TXTTTL / time.Second)),
		}
		if cur != nil {
			next.TTL = cur.TTL
			next.ResourceRecords = slices.Clone(cur.ResourceRecords)
			if slices.ContainsFunc(cur.ResourceRecords, func(rr types.ResourceRecord) bool { return aws.ToString(rr.Value) == quoted }) {
				return cur
			}
		}
		next.ResourceRecords = append(next.ResourceRecords, types.ResourceRecord{Value: aws.String(quoted)})
		return next
	})
}

// DeleteTXT removes value from name's TXT record set, deleting the set when
// it was the last value. An absent value or set is not an error. It waits
// until the change is INSYNC.
func (r *Route53) DeleteTXT(ctx context.Context, name, value string) error {
	n, err := r.inZone(name)
	if err != nil {
		return fmt.Errorf("delete TXT %s: %w", name, err)
	}
	quoted := quoteTXT(value)
	return r.update(ctx, "delete TXT "+name, n, types.RRTypeTxt, func(cur *types.ResourceRecordSet) *types.ResourceRecordSet {
		if cur == nil {
			return nil
		}
		keep := slices.DeleteFunc(slices.Clone(cur.ResourceRecords), func(rr types.ResourceRecord) bool {
			return aws.ToString(rr.Value) == quoted
		})
		if len(keep) == len(cur.ResourceRecords) {
			return cur // value absent: sameSet makes this a no-op
		}
		if len(keep) == 0 {
			return nil
		}
		return &types.ResourceRecordSet{Name: aws.String(n), Type: types.RRTypeTxt, TTL: cur.TTL, ResourceRecords: keep}
	})
}

// TXT returns the values of name's TXT record set, unquoted, as Route53
// holds them. A name without one wraps dns.ErrNotFound.
func (r *Route53) TXT(ctx context.Context, name string) ([]string, error) {
	n, err := r.inZone(name)
	if err != nil {
		return nil, fmt.Errorf("TXT %s: %w", name, err)
	}
	set, err := r.get(ctx, n, types.RRTypeTxt)
	if err != nil {
		return nil, fmt.Errorf("TXT %s: %w", name, err)
	}
	if set == nil || len(set.ResourceRecords) == 0 {
		return nil, fmt.Errorf("TXT %s: %w", name, dns.ErrNotFound)
	}
	values := make([]string, 0, len(set.ResourceRecords))
	for _, rr := range set.ResourceRecords {
		values = append(values, unquoteTXT(aws.ToString(rr.Value)))
	}
	return values, nil
}

// checkTXT accepts values that fit one character-string of printable ASCII,
// which is all quoteTXT knows how to write.
func checkTXT(value string) error {
	if len(value) > 255 {
		return &dns.PermanentError{Err: fmt.Errorf("TXT value of %d bytes is longer than 255", len(value))}
	}
	for i := 0; i < len(value); i++ {
		if value[i] < 0x20 || value[i] > 0x7e {
			return &dns.PermanentError{Err: fmt.Errorf("TXT value has a byte 0x%02x outside printable ASCII", value[i])}
		}
	}
	return nil
}

// quoteTXT makes value a Route53 TXT value: a quoted character-string, with
// quotes and backslashes escaped. ACME values are base64url and need none of
// that, but other callers may.
func quoteTXT(value string) string {
	return strconv.Quote(value)
}

// unquoteTXT reverses quoteTXT, joining the several character-strings a long
// value is split into ("abc" "def" -> abcdef).
func unquoteTXT(v string) string {
	var parts []string
	rest := strings.TrimSpace(v)
	for rest != "" {
		if rest[0] != '"' {
			return v // not quoted: take it as it is
		}
		s, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return v
		}
		u, err := strconv.Unquote(s)
		if err != nil {
			return v
		}
		parts = append(parts, u)
		rest = strings.TrimSpace(rest[len(s):])
	}
	return strings.Join(parts, "")
}
