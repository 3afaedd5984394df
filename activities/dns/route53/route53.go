// Package route53 keeps a deployment's DNS names in Amazon Route53
// (github.com/aws/aws-sdk-go-v2/service/route53): the address record that
// points <api-name>.<domain> at its server, and the TXT records an ACME
// DNS-01 challenge needs.
//
// Every write is a ChangeResourceRecordSets call followed by a wait on
// GetChange until Route53 reports the change INSYNC (all of its authoritative
// servers answer with it), so that a caller that goes on to use the name (an
// ACME server validating a challenge, a client dialling the endpoint) sees it.
// Writes are idempotent: Upsert sets the record whatever was there, Delete and
// DeleteTXT of an absent record return nil, so a retried activity or a
// compensation that runs twice is harmless.
//
// Errors are told apart by the Route53 API error code (smithy.APIError),
// never by message text: dns.ErrZoneNotFound, dns.ErrNotFound and *dns.PermanentError
// are what callers branch on; anything else (throttling, 5xx, network) is
// retryable and has already been retried by the SDK.
package route53

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/algocloud/algocloud/activities/dns"
)

// Defaults for Options.
const (
	DefaultTTL         = 60 * time.Second
	DefaultPoll        = 5 * time.Second
	DefaultSyncTimeout = 5 * time.Minute
)

// Options configure a Route53 client.
type Options struct {
	// Endpoint overrides the Route53 endpoint (tests: moto's http://127.0.0.1:PORT).
	Endpoint string
	// Region signs requests; Route53 is global, so any region works and the
	// default is us-east-1.
	Region string
	// Credentials overrides the standard AWS credential chain (environment,
	// shared files, instance role). Tests pass static ones.
	Credentials aws.CredentialsProvider
	// ZoneID is the hosted zone that holds the names ("Z123..." or
	// "/hostedzone/Z123..."). When empty, Domain is looked up by name.
	ZoneID string
	// Domain is the zone's name (e.g. "algocloud.example"), used to find the
	// zone when ZoneID is empty. A public zone is preferred over a private
	// one of the same name; two of the same kind are ambiguous (set ZoneID).
	Domain string
	// Poll is the interval between GetChange calls while waiting for INSYNC;
	// default DefaultPoll.
	Poll time.Duration
	// SyncTimeout bounds each wait for INSYNC when ctx has no earlier
	// deadline; default DefaultSyncTimeout.
	SyncTimeout time.Duration
	// Logger receives one line per change; default slog.Default().
	Logger *slog.Logger
}

// Route53 manages records in one hosted zone. Its methods may be called
// concurrently; each honours ctx (cancelling it abandons the wait for INSYNC,
// not the change itself, which Route53 applies anyway).
type Route53 struct {
	client *route53.Client
	zoneID string // without the /hostedzone/ prefix
	zone   string // the zone's name, lower case, with a trailing dot
	opts   Options
	log    *slog.Logger
}

// NewRoute53 loads the AWS configuration and finds the hosted zone: by
// opts.ZoneID (checked with GetHostedZone) or by opts.Domain. A zone that
// does not exist is a *dns.PermanentError wrapping dns.ErrZoneNotFound.
func NewRoute53(ctx context.Context, opts Options) (*Route53, error) {
	if opts.ZoneID == "" && opts.Domain == "" {
		return nil, errors.New("route53: need a zone ID or a domain")
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = DefaultSyncTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	load := []func(*config.LoadOptions) error{
		config.WithRegion(opts.Region),
		// Throttling and PriorRequestNotComplete are retried with backoff.
		config.WithRetryMaxAttempts(5),
	}
	if opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("route53: load AWS config: %w", err)
	}
	client := route53.NewFromConfig(cfg, func(o *route53.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	})
	r := &Route53{client: client, opts: opts, log: opts.Logger.With("dns", "route53")}
	if opts.ZoneID != "" {
		err = r.useZoneID(ctx, opts.ZoneID)
	} else {
		err = r.findZone(ctx, opts.Domain)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// ZoneID returns the hosted zone's ID (without the /hostedzone/ prefix).
func (r *Route53) ZoneID() string { return r.zoneID }

// Zone returns the hosted zone's name, without the trailing dot.
func (r *Route53) Zone() string { return strings.TrimSuffix(r.zone, ".") }

func (r *Route53) useZoneID(ctx context.Context, id string) error {
	id = strings.TrimPrefix(id, "/hostedzone/")
	out, err := r.client.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(id)})
	if err != nil {
		return classify("get hosted zone "+id, err)
	}
	r.zoneID = id
	r.zone = fqdn(aws.ToString(out.HostedZone.Name))
	return nil
}

func (r *Route53) findZone(ctx context.Context, domain string) error {
	want := fqdn(domain)
	out, err := r.client.ListHostedZonesByName(ctx, &route53.ListHostedZonesByNameInput{
		DNSName:  aws.String(want),
		MaxItems: aws.Int32(100),
	})
	if err != nil {
		return classify("find hosted zone "+domain, err)
	}
	// The answer starts at the name and goes on in order: keep exact matches.
	var public, private []types.HostedZone
	for _, z := range out.HostedZones {
		if fqdn(aws.ToString(z.Name)) != want {
			continue
		}
		if z.Config != nil && z.Config.PrivateZone {
			private = append(private, z)
		} else {
			public = append(public, z)
		}
	}
	pick := public
	if len(pick) == 0 {
		pick = private
	}
	switch len(pick) {
	case 0:
		return &dns.PermanentError{Err: fmt.Errorf("find hosted zone %s: %w", domain, dns.ErrZoneNotFound)}
	case 1:
		r.zoneID = strings.TrimPrefix(aws.ToString(pick[0].Id), "/hostedzone/")
		r.zone = want
		return nil
	default:
		return &dns.PermanentError{Err: fmt.Errorf("find hosted zone %s: %d zones have this name; set the zone ID", domain, len(pick))}
	}
}

// Upsert points name at ip (an A record for IPv4, AAAA for IPv6) with ttl
// (0 means DefaultTTL), replacing what the record held, and waits until the
// change is INSYNC.
func (r *Route53) Upsert(ctx context.Context, name, ip string, ttl time.Duration) error {
	addr := net.ParseIP(ip)
	if addr == nil {
		return &dns.PermanentError{Err: fmt.Errorf("upsert %s: %q is not an IP address", name, ip)}
	}
	rrType := types.RRTypeA
	if addr.To4() == nil {
		rrType = types.RRTypeAaaa
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	n, err := r.inZone(name)
	if err != nil {
		return fmt.Errorf("upsert %s: %w", name, err)
	}
	set := &types.ResourceRecordSet{
		Name:            aws.String(n),
		Type:            rrType,
		TTL:             aws.Int64(int64(ttl / time.Second)),
		ResourceRecords: []types.ResourceRecord{{Value: aws.String(addr.String())}},
	}
	if err := r.change(ctx, "upsert "+name, types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: set}); err != nil {
		return err
	}
	r.log.InfoContext(ctx, "record set", "name", n, "type", rrType, "ip", addr.String())
	return nil
}

// Lookup returns the address name points at (its A record, else its AAAA
// record), as Route53 holds it. A name without one wraps dns.ErrNotFound.
func (r *Route53) Lookup(ctx context.Context, name string) (string, error) {
	n, err := r.inZone(name)
	if err != nil {
		return "", fmt.Errorf("lookup %s: %w", name, err)
	}
	for _, t := range []types.RRType{types.RRTypeA, types.RRTypeAaaa} {
		set, err := r.get(ctx, n, t)
		if err != nil {
			return "", fmt.Errorf("lookup %s: %w", name, err)
		}
		if set != nil && len(set.ResourceRecords) > 0 {
			return aws.ToString(set.ResourceRecords[0].Value), nil
		}
	}
	return "", fmt.Errorf("lookup %s: %w", name, dns.ErrNotFound)
}

// Delete removes name's address records (A and AAAA) and waits until the
// change is INSYNC. A name without them is not an error.
func (r *Route53) Delete(ctx context.Context, name string) error {
	n, err := r.inZone(name)
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	for _, t := range []types.RRType{types.RRTypeA, types.RRTypeAaaa} {
		err := r.update(ctx, "delete "+name, n, t, func(*types.ResourceRecordSet) *types.ResourceRecordSet { return nil })
		if err != nil {
			return err
		}
	}
	return nil
}

// get returns the record set of name (a normalised FQDN) and type, or nil.
func (r *Route53) get(ctx context.Context, name string, t types.RRType) (*types.ResourceRecordSet, error) {
	out, err := r.client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
		HostedZoneId:    aws.String(r.zoneID),
		StartRecordName: aws.String(name),
		StartRecordType: t,
		MaxItems:        aws.Int32(1),
	})
	if err != nil {
		return nil, classify("list records", err)
	}
	// The listing starts at (name, type) or the next set after it.
	for i := range out.ResourceRecordSets {
		s := &out.ResourceRecordSets[i]
		if s.Type == t && fqdn(unescape(aws.ToString(s.Name))) == name && s.SetIdentifier == nil {
			return s, nil
		}
	}
	return nil, nil
}

// maxConflicts bounds the read-modify-write retries of update.
const maxConflicts = 5

// update reads the record set (name, t), asks edit for what it should become
// (nil: no set) and writes the difference. Route53 refuses a DELETE whose
// values are not exactly the current ones and a CREATE of a set that exists,
// so a concurrent writer makes the change fail as a whole; update then reads
// again and retries. That makes it a compare-and-swap: no writer's values are
// lost.
func (r *Route53) update(ctx context.Context, op, name string, t types.RRType, edit func(cur *types.ResourceRecordSet) *types.ResourceRecordSet) error {
	var lastErr error
	for range maxConflicts {
		cur, err := r.get(ctx, name, t)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		next := edit(cur)
		var changes []types.Change
		switch {
		case cur == nil && next == nil:
			return nil
		case cur == nil:
			changes = []types.Change{{Action: types.ChangeActionCreate, ResourceRecordSet: next}}
		case next == nil:
			changes = []types.Change{{Action: types.ChangeActionDelete, ResourceRecordSet: cur}}
		case sameSet(cur, next):
			return nil
		default:
			changes = []types.Change{
				{Action: types.ChangeActionDelete, ResourceRecordSet: cur},
				{Action: types.ChangeActionCreate, ResourceRecordSet: next},
			}
		}
		err = r.change(ctx, op, changes...)
		if err == nil {
			return nil
		}
		if !isConflict(err) {
			return err
		}
		lastErr = err
	}
	return &dns.PermanentError{Err: fmt.Errorf("%s: the record kept changing under us: %w", op, lastErr)}
}

// change submits changes as one batch and waits until it is INSYNC.
func (r *Route53) change(ctx context.Context, op string, changes ...types.Change) error {
	out, err := r.client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(r.zoneID),
		ChangeBatch:  &types.ChangeBatch{Changes: changes, Comment: aws.String("algocloud")},
	})
	if err != nil {
		return classify(op, err)
	}
	if err := r.waitInSync(ctx, out.ChangeInfo); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// waitInSync polls GetChange until the change is INSYNC.
func (r *Route53) waitInSync(ctx context.Context, info *types.ChangeInfo) error {
	if info == nil || info.Status == types.ChangeStatusInsync {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.SyncTimeout)
	defer cancel()
	id := aws.ToString(info.Id)
	t := time.NewTicker(r.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for change %s to be in sync: %w", id, ctx.Err())
		case <-t.C:
		}
		out, err := r.client.GetChange(ctx, &route53.GetChangeInput{Id: aws.String(id)})
		if err != nil {
			return classify("wait for change "+id+" to be in sync", err)
		}
		if out.ChangeInfo != nil && out.ChangeInfo.Status == types.ChangeStatusInsync {
			return nil
		}
	}
}

var _ dns.RecordStore = (*Route53)(nil)
