// Package batchs3 is batch.S3 with the AWS SDK: it lists, reads and writes
// a user's S3 prefix with the credentials the user gave for it, never with
// the platform's own (no default credential chain, no shared config, no
// instance metadata). It is its own package so that the API, which lists a
// batch's input prefix at create through the batch.S3 interface, does not
// link the AWS SDK (internal/layering).
package batchs3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/predictions/batch"
)

// Client is a batch.S3 whose every connection goes through a netpolicy
// dialer: the endpoint (AWS's, or a location's endpoint_url) is checked
// when dialled, so a user's endpoint_url cannot reach a refused address
// even by DNS rebinding after the check at create. Safe for concurrent use.
type Client struct {
	http *http.Client
}

var _ batch.S3 = (*Client)(nil)

// New returns a Client under policy (the URL policy of image URL inputs).
func New(policy netpolicy.Policy) *Client {
	d := &netpolicy.Dialer{Policy: policy, Timeout: 10 * time.Second}
	t := d.HTTPTransport()
	t.ResponseHeaderTimeout = 30 * time.Second
	return &Client{http: &http.Client{Transport: t, Timeout: 5 * time.Minute,
		// S3 answers a wrong region with a 301 the SDK reports; following
		// redirects could lead anywhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// client builds an S3 client of loc with loc's own static credentials.
func (c *Client) client(loc batch.S3Location) *s3.Client {
	o := s3.Options{
		Region:           loc.Region,
		Credentials:      credentials.NewStaticCredentialsProvider(loc.AccessKeyID, loc.SecretAccessKey, loc.SessionToken),
		HTTPClient:       c.http,
		RetryMaxAttempts: 4,
	}
	if loc.EndpointURL != "" {
		o.BaseEndpoint = aws.String(loc.EndpointURL)
		o.UsePathStyle = true // S3-compatible stores rarely do virtual hosts
	}
	return s3.New(o)
}

// List returns the objects under loc's prefix, at most max (ListObjectsV2,
// paged); "folders" (zero-size keys ending in /) are not objects.
func (c *Client) List(ctx context.Context, loc batch.S3Location, max int) ([]batch.S3Object, bool, error) {
	bucket, prefix := loc.BucketPrefix()
	p := s3.NewListObjectsV2Paginator(c.client(loc), &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(int32(min(max+1, 1000))),
	})
	var objs []batch.S3Object
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, false, s3Error("list "+loc.URI, err)
		}
		for _, o := range page.Contents {
			key, size := aws.ToString(o.Key), aws.ToInt64(o.Size)
			if strings.HasSuffix(key, "/") && size == 0 {
				continue
			}
			if len(objs) == max {
				return objs, true, nil
			}
			objs = append(objs, batch.S3Object{Key: key, Size: size})
		}
	}
	return objs, false, nil
}

// Get reads the object key of loc's bucket, at most maxBytes.
func (c *Client) Get(ctx context.Context, loc batch.S3Location, key string, maxBytes int64) ([]byte, error) {
	bucket, _ := loc.BucketPrefix()
	out, err := c.client(loc).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, s3Error("get "+key, err)
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > maxBytes {
		return nil, &batch.S3Error{Op: "get " + key, Code: "TooLarge", Msg: fmt.Sprintf("%d bytes; an item may have %d", n, maxBytes), Permanent: true}
	}
	b, err := io.ReadAll(io.LimitReader(out.Body, maxBytes+1))
	if err != nil {
		return nil, &batch.S3Error{Op: "get " + key, Code: "ReadFailed", Msg: err.Error()}
	}
	if int64(len(b)) > maxBytes {
		return nil, &batch.S3Error{Op: "get " + key, Code: "TooLarge", Msg: fmt.Sprintf("over %d bytes", maxBytes), Permanent: true}
	}
	return b, nil
}

// Put writes body as the object key of loc's bucket.
func (c *Client) Put(ctx context.Context, loc batch.S3Location, key string, body []byte, contentType string) error {
	bucket, _ := loc.BucketPrefix()
	_, err := c.client(loc).PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String(contentType),
	})
	if err != nil {
		return s3Error("put "+key, err)
	}
	return nil
}

// permanentCodes are S3's refusals that retrying cannot help.
var permanentCodes = map[string]bool{
	"AccessDenied": true, "AllAccessDisabled": true, "AccountProblem": true, "NoSuchBucket": true, "NoSuchKey": true,
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "AuthorizationHeaderMalformed": true,
	"PermanentRedirect": true, "InvalidBucketName": true, "InvalidToken": true, "ExpiredToken": true,
	"InvalidRequest": true, "InvalidArgument": true, "IllegalLocationConstraintException": true,
	"NotFound": true, "MovedPermanently": true, "Forbidden": true,
}

// s3Error turns an SDK error into a *batch.S3Error with S3's reason: its
// error code and message, or what kept the call from S3.
func s3Error(op string, err error) error {
	if netpolicy.IsForbidden(err) {
		return &batch.S3Error{Op: op, Code: "RefusedByURLPolicy", Msg: forbiddenReason(err), Permanent: true}
	}
	var api smithy.APIError
	var status interface{ HTTPStatusCode() int }
	code := 0
	if errors.As(err, &status) {
		code = status.HTTPStatusCode()
	}
	if errors.As(err, &api) {
		msg := api.ErrorMessage()
		if code == http.StatusMovedPermanently && msg == "" {
			msg = "the bucket is in another region than the one given"
		}
		perm := permanentCodes[api.ErrorCode()] || (code >= 400 && code < 500 && code != 408 && code != 429) || code == 301
		return &batch.S3Error{Op: op, Code: api.ErrorCode(), Msg: msg, Permanent: perm}
	}
	if code != 0 {
		return &batch.S3Error{Op: op, Code: http.StatusText(code), Permanent: code >= 300 && code < 500 && code != 408 && code != 429}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &batch.S3Error{Op: op, Code: "Unreachable", Msg: err.Error()}
}

// forbiddenReason is the netpolicy refusal inside err.
func forbiddenReason(err error) string {
	var fe *netpolicy.ForbiddenError
	if errors.As(err, &fe) {
		return fe.Error()
	}
	return err.Error()
}
