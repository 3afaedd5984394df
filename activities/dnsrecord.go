package activities

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/dns"
)

// RecordStore keeps endpoints' address records (*dns.Route53 is one). Both
// methods are idempotent and return once the change is visible.
type RecordStore interface {
	// Upsert points name at ip (ttl 0: the store's default).
	Upsert(ctx context.Context, name, ip string, ttl time.Duration) error
	// Delete removes name's address records; absent is not an error.
	Delete(ctx context.Context, name string) error
}

var _ RecordStore = (*dns.Route53)(nil)

// DNSInput asks for the address record of a deployment's endpoint.
type DNSInput struct {
	DeploymentID string         `json:"deployment_id"`
	APIName      string         `json:"api_name"`
	Server       compute.Server `json:"server"`
}

// DNSRecord is an endpoint's address record; the zero value means the
// platform manages no DNS.
type DNSRecord struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// endpointName is the endpoint's DNS name, <api-name>.<domain>.
func (a *Activities) endpointName(apiName string) string { return apiName + "." + a.Domain }

// UpsertRecord points <api-name>.<domain> at the server's address when DNS
// is configured (Activities.DNS), and returns the record; without DNS it
// does nothing and returns the zero DNSRecord. Retrying it is harmless.
func (a *Activities) UpsertRecord(ctx context.Context, in DNSInput) (DNSRecord, error) {
	if a.DNS == nil {
		return DNSRecord{}, nil
	}
	// A DNS API may wait for its change to propagate: heartbeat meanwhile.
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "upserting DNS record" })()
	rec := DNSRecord{Name: a.endpointName(in.APIName), Address: in.Server.Host}
	if err := a.upsert(ctx, rec); err != nil {
		return DNSRecord{}, err
	}
	a.event(ctx, in.DeploymentID, "provision", "DNS record %s -> %s", rec.Name, rec.Address)
	return rec, nil
}

func (a *Activities) upsert(ctx context.Context, rec DNSRecord) error {
	if net.ParseIP(rec.Address) == nil {
		return nonRetryable(BadInputErrorType, fmt.Errorf("DNS record %s: server address %q is not an IP address", rec.Name, rec.Address))
	}
	if err := a.DNS.Upsert(ctx, rec.Name, rec.Address, 0); err != nil {
		return dnsError(err)
	}
	return nil
}

// DeleteRecord removes the endpoint's address record, on teardown. A record
// already gone, or no DNS configured, is not an error.
func (a *Activities) DeleteRecord(ctx context.Context, rec DNSRecord) error {
	if a.DNS == nil || rec.Name == "" {
		return nil
	}
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "deleting DNS record" })()
	if err := a.DNS.Delete(ctx, rec.Name); err != nil {
		return dnsError(err)
	}
	return nil
}

// dnsError makes refusals that retrying cannot fix (a missing zone, a name
// outside it) permanent for the workflow.
func dnsError(err error) error {
	var perm *dns.PermanentError
	if errors.As(err, &perm) {
		return nonRetryable(BadInputErrorType, err)
	}
	return err
}
