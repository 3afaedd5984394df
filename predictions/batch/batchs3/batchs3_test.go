package batchs3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
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

	list, err := st.ListBatches(ctx, "alg", store.BatchPage{}, 10)
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

// iam calls moto's IAM query API, signed with moto's fake credentials
// (before auth is turned on), and returns the answer's body.
func iam(t *testing.T, endpoint string, params url.Values) string {
	t.Helper()
	params.Set("Version", "2010-05-08")
	body := params.Encode()
	req, err := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sum := sha256.Sum256([]byte(body))
	creds, err := testmoto.Credentials.Retrieve(context.Background())
	require.NoError(t, err)
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "iam", "us-east-1", time.Now()))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
	return string(b)
}

// TestCredentialsRefused turns moto's IAM checks on: a user whose policy
// allows everything on one bucket and only listing on another. Unknown
// keys, a wrong secret and a bucket the user may not read are each a 400
// naming input.s3 or output.s3 with S3's reason; a prefix the user may
// list but not write fails every item with AccessDenied; and the user's
// own bucket works.
func TestCredentialsRefused(t *testing.T) {
	m := testmoto.Start(t)
	ctx := context.Background()
	st, bl, owner := newStore(t)
	admin := batch.S3Location{URI: "s3://bs3-auth-ok/", Region: "us-east-1", EndpointURL: m.Endpoint, AccessKeyID: "testing", SecretAccessKey: "testing"}
	c := New(netpolicy.Policy{Allow: netpolicy.AllClasses})
	for _, b := range []string{"bs3-auth-ok", "bs3-auth-other", "bs3-auth-listonly"} {
		_, err := c.client(admin).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)})
		require.NoError(t, err)
	}
	// Whole buckets, not prefixes: with its checks on, moto 5.x computes
	// the signature of a listing whose prefix has a "/" wrongly
	// (getmoto/moto#5948), where AWS does not.
	require.NoError(t, c.Put(ctx, admin, "a.png", []byte("a"), "image/png"))
	require.NoError(t, c.Put(ctx, admin, "b.png", []byte("b"), "image/png"))
	iam(t, m.Endpoint, url.Values{"Action": {"CreateUser"}, "UserName": {"bs3"}})
	iam(t, m.Endpoint, url.Values{"Action": {"PutUserPolicy"}, "UserName": {"bs3"}, "PolicyName": {"p"}, "PolicyDocument": {`{
		"Version": "2012-10-17", "Statement": [
		{"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::bs3-auth-ok", "arn:aws:s3:::bs3-auth-ok/*"]},
		{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": ["arn:aws:s3:::bs3-auth-listonly"]}]}`}})
	key := iam(t, m.Endpoint, url.Values{"Action": {"CreateAccessKey"}, "UserName": {"bs3"}})
	id := regexp.MustCompile(`<AccessKeyId>([^<]+)</AccessKeyId>`).FindStringSubmatch(key)
	secret := regexp.MustCompile(`<SecretAccessKey>([^<]+)</SecretAccessKey>`).FindStringSubmatch(key)
	require.NotNil(t, id, key)
	require.NotNil(t, secret, key)
	// From now on moto checks every request's credentials and policy.
	res, err := http.Post(m.Endpoint+"/moto-api/reset-auth", "text/plain", strings.NewReader("0"))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	svc := &batch.Service{Store: st, Blobs: bl, S3: c, CredentialsKey: bytes.Repeat([]byte{3}, 32),
		URLPolicy: netpolicy.Policy{Allow: netpolicy.AllClasses}, Temporal: &temporal{}}
	user := func(uri string) *batch.S3Location {
		return &batch.S3Location{URI: uri, Region: "us-east-1", EndpointURL: m.Endpoint, AccessKeyID: id[1], SecretAccessKey: secret[1]}
	}
	// The user's credentials on a bucket its policy does not name.
	_, _, err = c.List(ctx, *user("s3://bs3-auth-other/"), 10)
	var se *batch.S3Error
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, "AccessDenied", se.Code)
	require.True(t, se.Permanent)
	unknown, wrongSecret := user("s3://bs3-auth-ok/"), user("s3://bs3-auth-ok/")
	unknown.AccessKeyID = "AKIANOSUCHKEY0000000"
	wrongSecret.SecretAccessKey = "not-the-secret"
	for name, tc := range map[string]struct {
		in, out     *batch.S3Location
		field, code string
	}{
		"unknown key":      {unknown, nil, "input.s3", "InvalidAccessKeyId"},
		"wrong secret":     {wrongSecret, nil, "input.s3", "SignatureDoesNotMatch"},
		"another's bucket": {user("s3://bs3-auth-other/"), nil, "input.s3", "AccessDenied"},
		"another's output": {user("s3://bs3-auth-ok/"), user("s3://bs3-auth-other/"), "output.s3", "AccessDenied"},
	} {
		_, err := svc.Create(ctx, batch.Request{Algorithm: store.Algorithm{ID: "alg"}, OwnerID: owner, InputS3: tc.in, OutputS3: tc.out, Concurrency: 1})
		var ie *batch.InputError
		require.True(t, errors.As(err, &ie), "%s: %v", name, err)
		require.Equal(t, tc.field, ie.Field, name)
		require.Contains(t, ie.Msg, tc.code, name)
		require.NotContains(t, ie.Msg, secret[1], name)
	}

	// Its own bucket in, a prefix it may list but not write out: the
	// batch is created, and each item fails with S3's AccessDenied.
	b, err := svc.Create(ctx, batch.Request{Algorithm: store.Algorithm{ID: "alg"}, OwnerID: owner,
		InputS3: user("s3://bs3-auth-ok/"), OutputS3: user("s3://bs3-auth-listonly/"), Concurrency: 1})
	require.NoError(t, err)
	require.Equal(t, 2, b.Total)
	a := &batch.Activities{Store: st, Blobs: bl, Endpoint: okEndpoint{}, S3: c, CredentialsKey: svc.CredentialsKey}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err = env.ExecuteActivity(a.MarkBatch, batch.MarkInput{BatchID: b.ID, Status: store.BatchRunning})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(a.RunChunk, batch.ChunkInput{BatchID: b.ID, DeploymentID: "alg", From: 0, To: 2, Concurrency: 1})
	require.NoError(t, err)
	items, err := st.BatchItems(ctx, b.ID, store.ItemFailed, 0, 0)
	require.NoError(t, err)
	require.Len(t, items, 2, "the inputs were read; each write was refused")
	require.Contains(t, items[0].Error, "AccessDenied")
}
