package s3store

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/blobs/blobstest"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
)

func TestS3OnMoto(t *testing.T) {
	moto := testmoto.Start(t)
	ctx := context.Background()
	creds := testmoto.Credentials
	s, err := NewS3(ctx, S3Options{Bucket: "blobs-test", Prefix: "/pre/", Endpoint: moto.Endpoint, Credentials: creds})
	require.NoError(t, err)
	require.NoError(t, s.CreateBucket(ctx))
	require.NoError(t, s.CreateBucket(ctx), "idempotent")
	blobstest.Exercise(t, s)

	// Objects live under the prefix, private and encrypted at rest.
	require.NoError(t, s.Put(ctx, "uploads/d2/r/a.zip", strings.NewReader("zip"), 3))
	raw := s3.New(s3.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(moto.Endpoint), UsePathStyle: true})
	head, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("blobs-test"), Key: aws.String("pre/uploads/d2/r/a.zip")})
	require.NoError(t, err)
	require.Equal(t, int64(3), aws.ToInt64(head.ContentLength))
	require.Equal(t, "AES256", string(head.ServerSideEncryption))
	acl, err := raw.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: aws.String("blobs-test"), Key: aws.String("pre/uploads/d2/r/a.zip")})
	require.NoError(t, err)
	for _, g := range acl.Grants {
		require.Empty(t, aws.ToString(g.Grantee.URI), "no group (public) grants")
	}
	keys, err := s.List(ctx, "uploads/d2")
	require.NoError(t, err)
	require.Equal(t, []string{"uploads/d2/r/a.zip"}, keys)
	keys, err = s.List(ctx, "uploads/d1")
	require.NoError(t, err)
	require.Empty(t, keys)
	// A store on a missing bucket fails with an error, not blobs.ErrNotFound.
	other, err := NewS3(ctx, S3Options{Bucket: "no-such-bucket", Endpoint: moto.Endpoint, Credentials: creds})
	require.NoError(t, err)
	_, err = other.Get(ctx, "a")
	require.Error(t, err)
	require.NotErrorIs(t, err, blobs.ErrNotFound)
}
