package route53

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/algocloud/algocloud/activities/dns"
)

// inZone normalises name to a lower-case FQDN and checks it lies in the zone.
func (r *Route53) inZone(name string) (string, error) {
	n := fqdn(name)
	if n == "." || n == ".." {
		return "", &dns.PermanentError{Err: errors.New("empty name")}
	}
	if n != r.zone && !strings.HasSuffix(n, "."+r.zone) {
		return "", &dns.PermanentError{Err: fmt.Errorf("%w: %s is not in zone %s", dns.ErrOutsideZone, strings.TrimSuffix(n, "."), r.Zone())}
	}
	return n, nil
}

// fqdn lower-cases name and gives it exactly one trailing dot.
func fqdn(name string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), ".")) + "."
}

// unescape turns Route53's octal escapes in names (\052 for '*') back into
// characters.
func unescape(name string) string {
	if !strings.Contains(name, `\`) {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] == '\\' && i+3 < len(name) {
			if v, err := strconv.ParseUint(name[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(name[i])
	}
	return b.String()
}

func sameSet(a, b *types.ResourceRecordSet) bool {
	if aws.ToInt64(a.TTL) != aws.ToInt64(b.TTL) || len(a.ResourceRecords) != len(b.ResourceRecords) {
		return false
	}
	for i := range a.ResourceRecords {
		if aws.ToString(a.ResourceRecords[i].Value) != aws.ToString(b.ResourceRecords[i].Value) {
			return false
		}
	}
	return true
}
