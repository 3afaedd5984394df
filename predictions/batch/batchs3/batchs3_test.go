package batchs3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
	"github.com/algocloud/algocloud/predictions/batch"
)

// TestClientAgainstMoto lists, reads and writes a prefix of a real moto
// server with the location's own credentials, and checks the refusals:
// a missing bucket and an over-size object are permanent S3Errors with S3's
// reason, and a loopback endpoint is refused unless the policy allows it.
func TestClientAgainstMoto(t *testing.T) {
	m := testmoto.Start(t)
	ctx := context.Background()
	loc := batch.S3Location{URI: "s3://bs3-unit/in/", Region: "us-east-1", EndpointURL: m.Endpoint,
		AccessKeyID: "testing", SecretAccessKey: "testing"}
	c := New(netpolicy.Policy{Allow: netpolicy.AllClasses})
	raw := c.client(loc)
	_, err := raw.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bs3-unit")})
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		require.NoError(t, c.Put(ctx, loc, fmt.Sprintf("in/sub/%d.png", i), bytes.Repeat([]byte{byte(i)}, 10+i), "image/png"))
	}
	require.NoError(t, c.Put(ctx, loc, "in/folder/", nil, "application/x-directory"))
	require.NoError(t, c.Put(ctx, loc, "input-not-in-prefix.png", []byte("x"), "image/png"))

	objs, more, err := c.List(ctx, loc, 10)
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, objs, 5, "the folder key and the object outside the prefix are not listed: %v", objs)
	require.Equal(t, "in/sub/0.png", objs[0].Key)
	objs, more, err = c.List(ctx, loc, 3)
	require.NoError(t, err)
	require.True(t, more)
	require.Len(t, objs, 3)

	b, err := c.Get(ctx, loc, "in/sub/2.png", 100)
	require.NoError(t, err)
	require.Equal(t, bytes.Repeat([]byte{2}, 12), b)
	_, err = c.Get(ctx, loc, "in/sub/4.png", 5)
	var se *batch.S3Error
	require.True(t, errors.As(err, &se), "%v", err)
	require.True(t, se.Permanent)
	require.Equal(t, "TooLarge", se.Code)

	missing := loc
	missing.URI = "s3://bs3-no-such-bucket/in/"
	_, _, err = c.List(ctx, missing, 10)
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, "NoSuchBucket", se.Code)
	require.True(t, se.Permanent)
	err = c.Put(ctx, missing, "in/x", []byte("x"), "text/plain")
	require.True(t, errors.As(err, &se), "%v", err)
	require.True(t, se.Permanent)

	// The default policy (public addresses only) refuses moto's loopback
	// address when dialling, whatever the check at create said.
	_, _, err = New(netpolicy.Policy{}).List(ctx, loc, 10)
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, "RefusedByURLPolicy", se.Code)
	require.True(t, se.Permanent)
}
