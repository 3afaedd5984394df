package route53

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/smithy-go"

	"github.com/algocloud/algocloud/activities/dns"
)

// Route53 error codes this package branches on: the API error's code
// (smithy.APIError.ErrorCode), never its message.
const (
	codeNoSuchHostedZone   = "NoSuchHostedZone"
	codeInvalidChangeBatch = "InvalidChangeBatch"
	codeInvalidInput       = "InvalidInput"
)

// permanentCodes are refusals a retry cannot fix, with what to tell the
// operator. Throttling, PriorRequestNotComplete and 5xx stay retryable (the
// SDK's retryer has already retried them).
var permanentCodes = map[string]string{
	codeInvalidChangeBatch:        "Route53 refused the change",
	codeInvalidInput:              "Route53 refused the request",
	"InvalidDomainName":           "the domain name is not valid",
	"InvalidArgument":             "Route53 refused an argument",
	"AccessDenied":                "the credentials may not change this zone",
	"AccessDeniedException":       "the credentials may not change this zone",
	"InvalidClientTokenId":        "AWS refused the credentials",
	"SignatureDoesNotMatch":       "AWS refused the credentials",
	"UnrecognizedClientException": "AWS refused the credentials",
}

// apiCode returns the Route53 error code of err, or "" when it is not an API error.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isConflict reports whether a change failed because the record set is not
// what the change expected: a DELETE of values that are no longer there or a
// CREATE of a set that now exists. Route53 says InvalidChangeBatch; moto says
// InvalidInput for the DELETE. update re-reads and retries on these.
func isConflict(err error) bool {
	c := apiCode(err)
	return c == codeInvalidChangeBatch || c == codeInvalidInput
}

// classify wraps err from operation op: a missing zone is permanent and
// wraps dns.ErrZoneNotFound, a refusal in permanentCodes is a *dns.PermanentError
// with a clear reason, everything else stays retryable.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	code := apiCode(err)
	if code == codeNoSuchHostedZone {
		return &dns.PermanentError{Err: fmt.Errorf("%s: %w (%w)", op, dns.ErrZoneNotFound, err)}
	}
	if why, ok := permanentCodes[code]; ok {
		return &dns.PermanentError{Err: fmt.Errorf("%s: %s: %w", op, why, err)}
	}
	return fmt.Errorf("%s: %w", op, err)
}
