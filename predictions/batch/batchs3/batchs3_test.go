package batchs3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
	"github.com/algocloud/algocloud/predictions/batch"
	"github.com/algocloud/algocloud/store"
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

// newStore is a real SQLite store with one user and algorithm "alg", and
// a blob store in a folder.
func newStore(t *testing.T) (*store.Store, blobs.Store, string) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "s.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	u, err := st.CreateUser(ctx, "u")
	require.NoError(t, err)
	require.NoError(t, st.CreateAlgorithm(ctx, store.Algorithm{ID: "alg", OwnerID: u.ID, Name: "a", APIName: "a"}))
	bl, err := blobs.NewDir(t.TempDir())
	require.NoError(t, err)
	return st, bl, u.ID
}

// TestCreateRefusesLoopbackEndpoint: an endpoint_url on loopback (moto's)
// is refused at create, naming input.s3.endpoint_url, unless the URL policy
// allows private addresses (the operator's --allow-private-urls); and when
// the create check allowed it but the dialler does not (a name rebound to
// loopback after the check), the listing is refused too. Nothing is stored.
func TestCreateRefusesLoopbackEndpoint(t *testing.T) {
	m := testmoto.Start(t)
	ctx := context.Background()
	st, bl, owner := newStore(t)
	key := bytes.Repeat([]byte{7}, 32)
	loc := &batch.S3Location{URI: "s3://bs3-loop/in/", EndpointURL: m.Endpoint, AccessKeyID: "testing", SecretAccessKey: "testing"}
	req := batch.Request{Algorithm: store.Algorithm{ID: "alg"}, OwnerID: owner, InputS3: loc, Concurrency: 1}

	svc := &batch.Service{Store: st, Blobs: bl, S3: New(netpolicy.Policy{}), CredentialsKey: key, Temporal: &temporal{}}
	_, err := svc.Create(ctx, req)
	var ie *batch.InputError
	require.True(t, errors.As(err, &ie), "%v", err)
	require.Equal(t, "input.s3.endpoint_url", ie.Field)
	require.Contains(t, ie.Msg, "refused by the URL policy")

	out := *loc
	req = batch.Request{Algorithm: store.Algorithm{ID: "alg"}, OwnerID: owner, URLs: []string{"https://93.184.215.14/a.png"}, OutputS3: &out, Concurrency: 1}
	_, err = svc.Create(ctx, req)
	require.True(t, errors.As(err, &ie), "%v", err)
	require.Equal(t, "output.s3.endpoint_url", ie.Field)

	svc.URLPolicy = netpolicy.Policy{Allow: netpolicy.AllClasses} // the check passes, the dialler still refuses
	_, err = svc.Create(ctx, batch.Request{Algorithm: store.Algorithm{ID: "alg"}, OwnerID: owner, InputS3: loc, Concurrency: 1})
	require.True(t, errors.As(err, &ie), "%v", err)
	require.Equal(t, "input.s3", ie.Field)
	require.Contains(t, ie.Msg, "RefusedByURLPolicy")

	list, err := st.ListBatches(ctx, "alg", time.Time{}, 10)
	require.NoError(t, err)
	require.Empty(t, list)
}

// okEndpoint answers every predict 200 with a PNG-typed echo.
type okEndpoint struct{}

func (okEndpoint) Predict(_ context.Context, _ string, body []byte, _ string) (batch.Response, error) {
	return batch.Response{Status: 200, ContentType: "image/png", Body: body}, nil
}
func (okEndpoint) Retryable(error) bool { return false }

// TestRefusedWriteFailsItems: an output prefix S3 refuses to write to (its
// bucket is gone) fails each item with S3's error rather than retrying
// forever, and MarkBatch at the end notes the manifest it could not write
// and removes the credentials all the same.
func TestRefusedWriteFailsItems(t *testing.T) {
	m := testmoto.Start(t)
	ctx := context.Background()
	st, bl, owner := newStore(t)
	key := bytes.Repeat([]byte{9}, 32)
	c := New(netpolicy.Policy{Allow: netpolicy.AllClasses})
	in := batch.S3Location{URI: "s3://bs3-write-in/", Region: "us-east-1", EndpointURL: m.Endpoint, AccessKeyID: "testing", SecretAccessKey: "testing"}
	_, err := c.client(in).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bs3-write-in")})
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		require.NoError(t, c.Put(ctx, in, fmt.Sprintf("%d.png", i), []byte{byte(i)}, "image/png"))
	}
	out := in
	out.URI = "s3://bs3-write-gone/out/"
	svc := &batch.Service{Store: st, Blobs: bl, S3: c, CredentialsKey: key, URLPolicy: netpolicy.Policy{Allow: netpolicy.AllClasses},
		Temporal: &temporal{err: errors.New("down")}}
	// Create checks the output with a listing: make the bucket for that,
	// then take it away before the chunk writes.
	_, err = c.client(out).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bs3-write-gone")})
	require.NoError(t, err)
	req := batch.Request{Algorithm: store.Algorithm{ID: "alg"}, OwnerID: owner, InputS3: &in, OutputS3: &out, Concurrency: 2}
	failed, err := svc.Create(ctx, req)
	require.ErrorContains(t, err, "down")
	box, err := st.BatchS3Sealed(ctx, failed.ID)
	require.NoError(t, err)
	require.Nil(t, box, "a batch whose workflow could not start keeps no credentials")

	svc.Temporal = &temporal{}
	b, err := svc.Create(ctx, req)
	require.NoError(t, err)
	require.Equal(t, 3, b.Total)
	require.Equal(t, "s3://bs3-write-gone/out/", b.OutputURI)
	box, err = st.BatchS3Sealed(ctx, b.ID)
	require.NoError(t, err)
	require.NotNil(t, box)
	require.False(t, bytes.Contains(box, []byte("testing")), "sealed, not plain")
	_, err = c.client(out).DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("bs3-write-gone")})
	require.NoError(t, err)

	a := &batch.Activities{Store: st, Blobs: bl, Endpoint: okEndpoint{}, S3: c, CredentialsKey: key}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err = env.ExecuteActivity(a.MarkBatch, batch.MarkInput{BatchID: b.ID, Status: store.BatchRunning})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(a.RunChunk, batch.ChunkInput{BatchID: b.ID, DeploymentID: "alg", From: 0, To: 3, Concurrency: 2})
	require.NoError(t, err)
	items, err := st.BatchItems(ctx, b.ID, store.ItemFailed, 0, 0)
	require.NoError(t, err)
	require.Len(t, items, 3, "each item fails with S3's refusal")
	require.Contains(t, items[0].Error, "NoSuchBucket")

	_, err = env.ExecuteActivity(a.MarkBatch, batch.MarkInput{BatchID: b.ID, Status: store.BatchSucceeded})
	require.NoError(t, err)
	got, err := st.BatchByID(ctx, b.ID)
	require.NoError(t, err)
	require.Contains(t, got.Error, "manifest")
	box, err = st.BatchS3Sealed(ctx, b.ID)
	require.NoError(t, err)
	require.Nil(t, box, "the credentials are removed at the end")
}

// temporal starts no workflow: it answers err.
type temporal struct{ err error }

func (f *temporal) ExecuteWorkflow(context.Context, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	return nil, f.err
}
func (f *temporal) CancelWorkflow(context.Context, string, string) error { return nil }
