package ec2

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/smithy-go"

	"github.com/algocloud/algocloud/activities/compute"
)

// EC2 error codes this package branches on. EC2 reports them as the API
// error's code (smithy.APIError.ErrorCode), which is what is matched: never
// the message text.
const (
	codeInstanceNotFound  = "InvalidInstanceID.NotFound"
	codeInstanceMalformed = "InvalidInstanceID.Malformed"
	codeGroupNotFound     = "InvalidGroup.NotFound"
	codeGroupIDNotFound   = "InvalidGroupId.NotFound"
	codeGroupDuplicate    = "InvalidGroup.Duplicate"
	codePermDuplicate     = "InvalidPermission.Duplicate"
	codeDependency        = "DependencyViolation"
	codeIncorrectState    = "IncorrectInstanceState"
	codeAMINotFound       = "InvalidAMIID.NotFound"
)

// notFoundCodes mean the instance or group does not exist (any more).
var notFoundCodes = map[string]bool{
	codeInstanceNotFound:  true,
	codeInstanceMalformed: true,
	codeGroupNotFound:     true,
	codeGroupIDNotFound:   true,
}

// permanentCodes are failures a retry cannot fix, with what to tell the
// author or operator. Throttling (RequestLimitExceeded) and 5xx answers are
// retried by the SDK's retryer and, past it, by the activity's retry policy;
// InsufficientInstanceCapacity is transient and stays retryable too.
var permanentCodes = map[string]string{
	"InvalidAMIID.NotFound":              "the machine image does not exist in this region",
	"InvalidAMIID.Malformed":             "the machine image id is malformed",
	"InvalidAMIID.Unavailable":           "the machine image is not available",
	"InvalidInstanceType":                "the instance type is not valid here",
	"InvalidInstanceType.NotFound":       "the instance type does not exist",
	"InvalidParameterValue":              "EC2 refused a parameter",
	"InvalidParameterCombination":        "EC2 refused a combination of parameters",
	"Unsupported":                        "the instance type or option is not supported in this region or zone",
	"UnsupportedOperation":               "the operation is not supported for this instance",
	"InstanceLimitExceeded":              "the account's instance quota for this type and region is used up; ask AWS for more",
	"VcpuLimitExceeded":                  "the account's vCPU quota for this instance family and region is used up; ask AWS for more",
	"SecurityGroupLimitExceeded":         "the account's security group quota is used up",
	"RulesPerSecurityGroupLimitExceeded": "the security group has too many rules",
	"InvalidSubnetID.NotFound":           "the configured subnet does not exist",
	"InvalidVpcID.NotFound":              "the configured VPC does not exist",
	"InvalidUserData.Malformed":          "the instance user data is malformed",
	"OptInRequired":                      "the account is not subscribed to this region or image",
	"AuthFailure":                        "AWS refused the credentials",
	"UnauthorizedOperation":              "the credentials may not do this",
}

// apiCode returns the EC2 error code of err, or "" when it is not an API error.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isCode reports whether err is an EC2 API error with one of codes.
func isCode(err error, codes ...string) bool {
	c := apiCode(err)
	return c != "" && slices.Contains(codes, c)
}

// isNotFound reports whether err says the instance or group does not exist.
func isNotFound(err error) bool { return notFoundCodes[apiCode(err)] }

// classify wraps err from operation op: a vanished resource wraps
// compute.ErrNotFound, a permanent failure is a *compute.PermanentError with a
// clear reason, and everything else stays retryable.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	code := apiCode(err)
	if notFoundCodes[code] {
		return fmt.Errorf("%s: %w (%w)", op, compute.ErrNotFound, err)
	}
	if why, ok := permanentCodes[code]; ok {
		return &compute.PermanentError{Err: fmt.Errorf("%s: %s: %w", op, why, err)}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// permanent makes a *compute.PermanentError from a message.
func permanent(format string, args ...any) error {
	return &compute.PermanentError{Err: fmt.Errorf(format, args...)}
}
