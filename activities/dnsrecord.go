package activities

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/algocloud/algocloud/activities/dns"

	"github.com/algocloud/algocloud/activities/actdef"
)

// endpointName is the endpoint's DNS name, <api-name>.<domain>.
func (a *Activities) endpointName(apiName string) string { return apiName + "." + a.Domain }

// UpsertRecord points <api-name>.<domain> at the server's address when DNS
// is configured (Activities.DNS), and returns the record; without DNS it
// does nothing and returns the zero DNSRecord. Retrying it is harmless.
func (a *Activities) UpsertRecord(ctx context.Context, in actdef.DNSInput) (actdef.DNSRecord, error) {
	if a.DNS == nil {
		return actdef.DNSRecord{}, nil
	}
	// A DNS API may wait for its change to propagate: heartbeat meanwhile.
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "upserting DNS record" })()
	rec := actdef.DNSRecord{Name: a.endpointName(in.APIName), Address: in.Server.Host}
	if err := a.upsert(ctx, rec); err != nil {
		return actdef.DNSRecord{}, err
	}
	a.event(ctx, in.DeploymentID, "provision", "DNS record %s -> %s", rec.Name, rec.Address)
	return rec, nil
}

func (a *Activities) upsert(ctx context.Context, rec actdef.DNSRecord) error {
	if net.ParseIP(rec.Address) == nil {
		return nonRetryable(actdef.BadInputErrorType, fmt.Errorf("DNS record %s: server address %q is not an IP address", rec.Name, rec.Address))
	}
	if err := a.DNS.Upsert(ctx, rec.Name, rec.Address, 0); err != nil {
		return dnsError(err)
	}
	return nil
}

// DeleteRecord removes the endpoint's address record, on teardown. A record
// already gone, or no DNS configured, is not an error.
func (a *Activities) DeleteRecord(ctx context.Context, rec actdef.DNSRecord) error {
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
		return nonRetryable(actdef.BadInputErrorType, err)
	}
	return err
}
