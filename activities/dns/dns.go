// Package dns is what the platform asks of the service that keeps its
// endpoints' DNS names: the RecordStore interface and the errors callers
// branch on. Its implementation is below it (route53/, Amazon Route53), as
// compute's providers are below compute, so that what needs only the
// interface links no AWS SDK.
package dns

import (
	"context"
	"errors"
	"time"
)

// RecordStore keeps endpoints' address records (*route53.Route53 is one). Both
// methods are idempotent and return once the change is visible.
type RecordStore interface {
	// Upsert points name at ip (ttl 0: the store's default).
	Upsert(ctx context.Context, name, ip string, ttl time.Duration) error
	// Delete removes name's address records; absent is not an error.
	Delete(ctx context.Context, name string) error
}

// Errors callers branch on with errors.Is.
var (
	// ErrNotFound: the name has no record of the asked type.
	ErrNotFound = errors.New("no such record")
	// ErrZoneNotFound: the hosted zone does not exist (or the credentials
	// may not see it). Always inside a *PermanentError.
	ErrZoneNotFound = errors.New("no such hosted zone")
	// ErrOutsideZone: the name does not lie in the hosted zone. Always
	// inside a *PermanentError.
	ErrOutsideZone = errors.New("name outside the hosted zone")
)

// PermanentError marks a failure that retrying cannot fix: a missing zone, a
// name outside it, a value Route53 refuses, credentials that may not do this.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }
