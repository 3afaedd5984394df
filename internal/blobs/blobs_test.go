package blobs

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv/testmoto"
)

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"a", "uploads/d1/abc/model.onnx", "tests/d/1/out.png"} {
		require.NoError(t, CheckKey(k), k)
	}
	for _, k := range []string{"", "/etc/passwd", "../x", "a/../../b", "a//b", "a/./b", "a/", `a\b`, "a\x00b", strings.Repeat("x", 901)} {
		require.Error(t, CheckKey(k), "%q", k)
	}
}

// exercise runs the same contract against any Store.
func exercise(t *testing.T, s Store) {
	ctx := context.Background()
	// Unknown size (a request part) and known size.
	require.NoError(t, s.Put(ctx, "uploads/d1/r1/code.zip", io.MultiReader(strings.NewReader("hello "), strings.NewReader("world")), -1))
	require.NoError(t, s.Put(ctx, "uploads/d1/r2/model.onnx", bytes.NewReader([]byte{0, 1, 2, 3}), 4))
	require.NoError(t, s.Put(ctx, "uploads/d10/r1/other", strings.NewReader("keep"), 4))
	require.NoError(t, s.Put(ctx, "tests/d1/1/out.json", strings.NewReader(`{"a":1}`), 7))
	// A wrong size is refused.
	require.Error(t, s.Put(ctx, "uploads/d1/r3/short", strings.NewReader("abc"), 10))

	get := func(key string) string {
		t.Helper()
		rc, err := s.Get(ctx, key)
		require.NoError(t, err, key)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		return string(b)
	}
	require.Equal(t, "hello world", get("uploads/d1/r1/code.zip"))
	require.Equal(t, "\x00\x01\x02\x03", get("uploads/d1/r2/model.onnx"))
	require.Equal(t, `{"a":1}`, get("tests/d1/1/out.json"))
	// Replacing a blob.
	require.NoError(t, s.Put(ctx, "tests/d1/1/out.json", strings.NewReader(`{"a":2}`), -1))
	require.Equal(t, `{"a":2}`, get("tests/d1/1/out.json"))

	_, err := s.Get(ctx, "uploads/d1/r3/short")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.Get(ctx, "uploads/nope")
	require.ErrorIs(t, err, ErrNotFound)
	for _, bad := range []string{"../escape", "/abs/path", "a/../../b"} {
		require.Error(t, s.Put(ctx, bad, strings.NewReader("x"), 1), bad)
		_, err := s.Get(ctx, bad)
		require.Error(t, err, bad)
		require.NotErrorIs(t, err, ErrNotFound, bad)
		require.Error(t, s.Delete(ctx, bad), bad)
	}

	// Delete takes a whole prefix (segment-wise: d10 stays), idempotently.
	require.NoError(t, s.Delete(ctx, "uploads/d1"))
	require.NoError(t, s.Delete(ctx, "uploads/d1"))
	require.NoError(t, s.Delete(ctx, "never/was"))
	_, err = s.Get(ctx, "uploads/d1/r1/code.zip")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.Get(ctx, "uploads/d1/r2/model.onnx")
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, "keep", get("uploads/d10/r1/other"))
	require.Equal(t, `{"a":2}`, get("tests/d1/1/out.json"))
	// One key is a prefix too.
	require.NoError(t, s.Delete(ctx, "tests/d1/1/out.json"))
	_, err = s.Get(ctx, "tests/d1/1/out.json")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestDir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "blobs")
	d, err := NewDir(root)
	require.NoError(t, err)
	// A file outside the root that an escaping key would reach.
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(root), "secret"), []byte("s"), 0o600))
	exercise(t, d)
	_, err = d.Get(context.Background(), "../secret")
	require.Error(t, err)
	// Blobs are private files, and no temporary files are left.
	require.NoError(t, d.Put(context.Background(), "x/y", strings.NewReader("z"), 1))
	fi, err := os.Stat(filepath.Join(root, "x", "y"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	ents, err := os.ReadDir(filepath.Join(root, "x"))
	require.NoError(t, err)
	require.Len(t, ents, 1)
	// Deleting the last blob of a deployment drops its emptied folders.
	require.NoError(t, d.Delete(context.Background(), "x/y"))
	_, err = os.Stat(filepath.Join(root, "x"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(filepath.Join(root, "uploads", "d1"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestS3OnMoto(t *testing.T) {
	moto := testmoto.Start(t)
	ctx := context.Background()
	creds := testmoto.Credentials
	s, err := NewS3(ctx, S3Options{Bucket: "blobs-test", Prefix: "/pre/", Endpoint: moto.Endpoint, Credentials: creds})
	require.NoError(t, err)
	require.NoError(t, s.CreateBucket(ctx))
	require.NoError(t, s.CreateBucket(ctx), "idempotent")
	exercise(t, s)

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
	// A store on a missing bucket fails with an error, not ErrNotFound.
	other, err := NewS3(ctx, S3Options{Bucket: "no-such-bucket", Endpoint: moto.Endpoint, Credentials: creds})
	require.NoError(t, err)
	_, err = other.Get(ctx, "a")
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrNotFound)
}
