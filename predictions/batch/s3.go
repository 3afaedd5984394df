package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/internal/sealed"
)

// S3Location is a user's S3 prefix with the user's own credentials: a
// batch reads its inputs from one and writes its outputs to one. The
// platform's AWS credentials are never used for a user's bucket (one user
// must not reach another's data, or the platform's, through us). It is
// kept sealed in the batch's store row only; String and LogValue show the
// URI alone, so a location printed by mistake leaks no secret.
type S3Location struct {
	URI             string `json:"uri"` // s3://bucket/prefix/
	Region          string `json:"region,omitempty"`
	EndpointURL     string `json:"endpoint_url,omitempty"` // an S3-compatible store; AWS when empty
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token,omitempty"`
}

// String shows the URI only: never the credentials.
func (l S3Location) String() string { return l.URI }

// GoString shows the URI only: never the credentials.
func (l S3Location) GoString() string { return "S3Location(" + l.URI + ")" }

// LogValue logs the URI only: never the credentials.
func (l S3Location) LogValue() slog.Value { return slog.StringValue(l.URI) }

// BucketPrefix splits the URI: s3://bucket/a/b/ is bucket "bucket" and
// prefix "a/b/" ("" for the whole bucket). Check has normalised it.
func (l S3Location) BucketPrefix() (bucket, prefix string) {
	rest := strings.TrimPrefix(l.URI, "s3://")
	bucket, prefix, _ = strings.Cut(rest, "/")
	return bucket, prefix
}

var (
	bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	regionName = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
)

// Check validates l and returns it normalised (a prefix ends in "/", the
// region defaults to us-east-1); its errors are InputErrors naming the
// sub-field of field (input.s3.uri). The endpoint URL's host must resolve
// to addresses policy allows (the S3 client checks again when it dials).
func (l S3Location) Check(ctx context.Context, field string, policy netpolicy.Policy) (S3Location, error) {
	bad := func(sub, format string, args ...any) error {
		return &InputError{Field: field + "." + sub, Msg: fmt.Sprintf(format, args...)}
	}
	if !strings.HasPrefix(l.URI, "s3://") || len(l.URI) > 1024 {
		return l, bad("uri", "must be s3://bucket/prefix/ (at most 1024 bytes)")
	}
	bucket, prefix := l.BucketPrefix()
	if !bucketName.MatchString(bucket) || strings.Contains(bucket, "..") {
		return l, bad("uri", "%q is not an S3 bucket name", bucket)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/" // a prefix is a folder: "in" must not also take "input/..."
	}
	if strings.HasPrefix(prefix, "/") {
		return l, bad("uri", "the prefix must not start with /")
	}
	l.URI = "s3://" + bucket + "/" + prefix
	if l.Region == "" {
		l.Region = "us-east-1"
	}
	if !regionName.MatchString(l.Region) {
		return l, bad("region", "%q is not an AWS region name", l.Region)
	}
	if l.AccessKeyID == "" || len(l.AccessKeyID) > 256 {
		return l, bad("access_key_id", "give the access key of credentials that may use this prefix (the platform's own are never used)")
	}
	if l.SecretAccessKey == "" || len(l.SecretAccessKey) > 256 {
		return l, bad("secret_access_key", "give the secret key of credentials that may use this prefix")
	}
	if len(l.SessionToken) > 8192 {
		return l, bad("session_token", "is over 8192 bytes")
	}
	if l.EndpointURL != "" {
		u, err := url.Parse(l.EndpointURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || len(l.EndpointURL) > 2048 {
			return l, bad("endpoint_url", "must be an absolute http:// or https:// URL of at most 2048 bytes")
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return l, bad("endpoint_url", "must carry no user, query or fragment")
		}
		d := &netpolicy.Dialer{Policy: policy}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = d.Resolve(rctx, u.Hostname())
		cancel()
		if netpolicy.IsForbidden(err) {
			return l, bad("endpoint_url", "%s is refused by the URL policy: %v", u.Redacted(), err)
		}
		if err != nil {
			return l, bad("endpoint_url", "the host of %s does not resolve", u.Redacted())
		}
	}
	return l, nil
}

// S3Object is one object a listing found.
type S3Object struct {
	Key  string
	Size int64
}

// S3 is what batches need of S3, with the user's credentials of each
// location. Package batchs3 implements it with the AWS SDK: apart, so that
// the API (which lists at create through this interface) links no AWS SDK.
// Errors from S3 itself are *S3Error.
type S3 interface {
	// List returns the objects under loc's prefix in key order, at most
	// max; more says there were others.
	List(ctx context.Context, loc S3Location, max int) (objs []S3Object, more bool, err error)
	// Get reads the object key, at most maxBytes (more is a permanent
	// *S3Error).
	Get(ctx context.Context, loc S3Location, key string, maxBytes int64) ([]byte, error)
	// Put writes body as the object key (overwriting it).
	Put(ctx context.Context, loc S3Location, key string, body []byte, contentType string) error
}

// S3Error is an S3 call that failed: Code is S3's error code (AccessDenied,
// NoSuchBucket, ...) or what stood in the way (the URL policy), Msg its
// reason. Permanent says trying again cannot help.
type S3Error struct {
	Op, Code, Msg string
	Permanent     bool
}

func (e *S3Error) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("S3 %s: %s", e.Op, e.Code)
	}
	return fmt.Sprintf("S3 %s: %s: %s", e.Op, e.Code, e.Msg)
}

// isPermanentS3 says err is an S3 refusal that retrying cannot help.
func isPermanentS3(err error) bool {
	var se *S3Error
	return errors.As(err, &se) && se.Permanent
}

// s3Spec is what a batch's s3_sealed column holds, sealed.
type s3Spec struct {
	Input  *S3Location `json:"input,omitempty"`
	Output *S3Location `json:"output,omitempty"`
}

// s3Label binds a sealed spec to its batch: one batch's credentials cannot
// be opened as another's.
func s3Label(batchID string) string { return "batch s3 " + batchID }

func sealS3(key []byte, batchID string, sp s3Spec) ([]byte, error) {
	plain, err := json.Marshal(sp)
	if err != nil {
		return nil, fmt.Errorf("seal S3 credentials: %w", err)
	}
	box, err := sealed.Seal(key, s3Label(batchID), plain)
	if err != nil {
		return nil, fmt.Errorf("seal S3 credentials: %w", err)
	}
	return box, nil
}

func openS3(key []byte, batchID string, box []byte) (s3Spec, error) {
	var sp s3Spec
	plain, err := sealed.Open(key, s3Label(batchID), box)
	if err != nil {
		return sp, fmt.Errorf("unseal the batch's S3 credentials (the API and the worker need the same encryption key): %w", err)
	}
	if err := json.Unmarshal(plain, &sp); err != nil {
		return sp, fmt.Errorf("decode the batch's S3 credentials: %w", err)
	}
	return sp, nil
}

// s3ItemPrefix marks an item's input as an object of the batch's input
// location: "s3:" then the object's key.
const s3ItemPrefix = "s3:"
