// Package s3store is the blobs.Store in an S3 bucket. It is its own package so
// that what needs only the blobs.Store interface (the API) does not link the AWS SDK.
package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/algocloud/algocloud/internal/blobs"
)

// S3Options configures an S3 store.
type S3Options struct {
	// Bucket holds the blobs; it must be private (no public-read policy):
	// uploads are users' code.
	Bucket string
	// Prefix is put before every key (default "algocloud-blobs").
	Prefix string
	// Region is the bucket's region (default us-east-1).
	Region string
	// Endpoint overrides the S3 endpoint (moto in tests); path-style then.
	Endpoint string
	// Credentials override the standard chain (tests).
	Credentials aws.CredentialsProvider
}

// S3 is a blobs.Store in an S3 bucket: the key a/b is the object Prefix/a/b,
// written private (no ACL grants) and server-side encrypted.
type S3 struct {
	client *s3.Client
	opts   S3Options
}

// NewS3 returns a store in the bucket; credentials come from the standard
// chain unless opts.Credentials is set. It does not touch the bucket.
func NewS3(ctx context.Context, o S3Options) (*S3, error) {
	if o.Bucket == "" {
		return nil, errors.New("blob store: no bucket")
	}
	o.Prefix = strings.Trim(o.Prefix, "/")
	if o.Prefix == "" {
		o.Prefix = "algocloud-blobs"
	}
	if err := blobs.CheckKey(o.Prefix); err != nil {
		return nil, fmt.Errorf("blob store prefix: %w", err)
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	load := []func(*config.LoadOptions) error{config.WithRegion(o.Region), config.WithRetryMaxAttempts(5)}
	if o.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("blob store: load AWS config: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			so.UsePathStyle = true
		}
	})
	return &S3{client: client, opts: o}, nil
}

// CreateBucket makes the bucket when it does not exist yet (dev and tests;
// in production the bucket is made, private, beforehand).
func (s *S3) CreateBucket(ctx context.Context) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(s.opts.Bucket)}
	if s.opts.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(s.opts.Region)}
	}
	_, err := s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create blob bucket %s: %w", s.opts.Bucket, err)
	}
	return nil
}

func (s *S3) object(key string) (string, error) {
	if err := blobs.CheckKey(key); err != nil {
		return "", err
	}
	return s.opts.Prefix + "/" + key, nil
}

// Put uploads r as one object. A body that cannot seek (a request part) is
// first spooled to a private temporary file: the SDK signs seekable bodies.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	body, ok := r.(io.ReadSeeker)
	if !ok || size < 0 {
		f, err := os.CreateTemp("", "algocloud-blob-*")
		if err != nil {
			return fmt.Errorf("put blob %s: spool: %w", key, err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		n, err := io.Copy(f, blobs.ReaderWithContext(ctx, r))
		if err == nil && size >= 0 && n != size {
			err = fmt.Errorf("got %d bytes, want %d", n, size)
		}
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			return fmt.Errorf("put blob %s: spool: %w", key, err)
		}
		body, size = f, n
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.opts.Bucket), Key: aws.String(obj), Body: body,
		ContentLength: aws.Int64(size), ServerSideEncryption: types.ServerSideEncryptionAes256,
	})
	if err != nil {
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	return nil
}

// Get opens the object's body.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(obj)})
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("%w: %s", blobs.ErrNotFound, key)
		}
		return nil, fmt.Errorf("get blob %s: %w", key, err)
	}
	return out.Body, nil
}

// List returns the keys of the blobs under prefix (as Delete counts them).
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	objs, err := s.list(ctx, prefix)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = strings.TrimPrefix(o, s.opts.Prefix+"/")
	}
	return keys, nil
}

// list returns the object names of the prefix: itself when it exists, and
// everything under prefix/.
func (s *S3) list(ctx context.Context, prefix string) ([]string, error) {
	obj, err := s.object(prefix)
	if err != nil {
		return nil, err
	}
	var objs []string
	_, err = s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(obj)})
	switch {
	case err == nil:
		objs = append(objs, obj)
	case !notFound(err):
		return nil, fmt.Errorf("list blobs %s: %w", prefix, err)
	}
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.opts.Bucket), Prefix: aws.String(obj + "/")})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list blobs %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			objs = append(objs, aws.ToString(o.Key))
		}
	}
	return objs, nil
}

// Delete lists the objects of the prefix and deletes them one by one;
// deleting what is already gone succeeds, so Delete is idempotent.
func (s *S3) Delete(ctx context.Context, prefix string) error {
	objs, err := s.list(ctx, prefix)
	if err != nil {
		return err
	}
	for _, k := range objs {
		if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(k)}); err != nil && !notFound(err) {
			return fmt.Errorf("delete blob %s: %w", k, err)
		}
	}
	return nil
}

func notFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var api smithy.APIError
	return errors.As(err, &nsk) || errors.As(err, &nf) ||
		(errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound"))
}

var _ blobs.Store = (*S3)(nil)
