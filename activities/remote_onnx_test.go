package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/inference/onnxrt"
	"github.com/algocloud/algocloud/internal/sealed"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"

	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
)

// An environment onnx deployment on a remote server: the worker publishes
// the ONNX Runtime library it resolves to S3 (moto) under its SHA-256, once
// per content, and the bundle names that sum (bundlelayout.ONNXRuntimeSumFile, inside
// the MAC) and the server-side library path in live.json.in, with no venv
// Python. A changed library is a new object and a different bundle; a python
// deployment's bundle names no library.
func TestBundle_ONNXRuntimePublished(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	// The library this worker resolves: $ALGOCLOUD_ONNXRUNTIME_LIB (a file
	// of our own, so that the test can change it; nothing loads it here).
	lib := filepath.Join(dir, "lib", "libonnxruntime.so.1")
	require.NoError(t, os.MkdirAll(filepath.Dir(lib), 0o755))
	require.NoError(t, os.WriteFile(lib, bytes.Repeat([]byte("onnxruntime v1 "), 4096), 0o755))
	t.Setenv(onnxrt.LibraryEnv, lib)

	moto := testmoto.Start(t)
	creds := testmoto.Credentials
	s3c := s3.New(s3.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(moto.Endpoint), UsePathStyle: true})
	bucket := "onnx-bundles"
	_, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	encKey, err := sealed.NewEncryptionKey()
	require.NoError(t, err)
	store, err := ec2.NewBundleStore(ctx, ec2.BundleStoreOptions{
		Bucket: bucket, Region: "us-east-1", Endpoint: moto.Endpoint, Credentials: creds, EncryptionKey: encKey,
	})
	require.NoError(t, err)

	ca, err := certs.LoadOrCreateCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	a := &Activities{CA: ca, Domain: "algocloud.test", Bundles: store, KeyEncryptionKey: encKey, PredictTimeout: time.Second}
	srv := compute.Server{Provider: "ec2", ID: "i-0fedcba9876543210", Host: "203.0.113.9", Port: 443, Workdir: filepath.Join(dir, "ec2", "dep-onnx")}
	cert, err := a.IssueCertificate(ctx, actdef.CertInput{DeploymentID: "dep-onnx", APIName: "textdir", Server: srv})
	require.NoError(t, err)
	code := filepath.Join(dir, "code")
	require.NoError(t, os.MkdirAll(code, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(code, onnxrt.ConfigFile), []byte(`{"model": "m.onnx"}`), 0o644))
	in := actdef.ServiceInput{TokenSHA256: "ab", Build: actdef.Build{
		DeploymentID: "dep-onnx", Server: srv, Cert: cert, Code: actdef.CodeInfo{Dir: code, Revision: 1},
		Spec:    spec.Spec{APIName: "textdir", Environment: spec.EnvONNX, Threads: 1, Input: spec.Image, Output: spec.JSON},
		Install: actdef.InstallInfo{}, // onnx without requirements: no venv on the worker
	}}

	fileSum := func() string {
		b, err := os.ReadFile(lib)
		require.NoError(t, err)
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	object := func(sum string) (string, map[string]string) {
		out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(store.ONNXRuntimeKey(sum))})
		require.NoError(t, err)
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		require.NoError(t, err)
		return string(b), out.Metadata
	}

	sum1, err := a.publishONNXRuntime(ctx, in)
	require.NoError(t, err)
	require.Equal(t, fileSum(), sum1)
	require.Equal(t, "algocloud/onnxruntime/"+sum1+"/libonnxruntime.so.1", store.ONNXRuntimeKey(sum1))
	body, meta := object(sum1)
	want, _ := os.ReadFile(lib)
	require.Equal(t, string(want), body, "the worker's library, as it is")
	require.Equal(t, sum1, meta["sha256"])

	// Published once per content: a second publish of the same library
	// finds the object by its sum and uploads nothing (the marker put over
	// it stays).
	_, err = s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(store.ONNXRuntimeKey(sum1)),
		Body: bytes.NewReader([]byte("marker")), Metadata: map[string]string{"sha256": sum1}})
	require.NoError(t, err)
	again, err := a.publishONNXRuntime(ctx, in)
	require.NoError(t, err)
	require.Equal(t, sum1, again)
	body, _ = object(sum1)
	require.Equal(t, "marker", body, "not uploaded again")

	b1, err := a.buildBundle(in, sum1)
	require.NoError(t, err)
	files := untar(t, b1)
	require.Equal(t, sum1+"\n", files[bundlelayout.ONNXRuntimeSumFile])
	var cfg map[string]any
	require.NoError(t, json.Unmarshal([]byte(files["live.json.in"]), &cfg))
	require.Equal(t, bundlelayout.HomePlaceholder+"/"+bundlelayout.ONNXRuntimePath, cfg["onnxruntime_lib"], "the instance's path, not the worker's")
	require.NotContains(t, files["live.json.in"], dir, "no worker path in the server's config")
	require.Equal(t, "/usr/bin/python3", cfg["python"], "no venv Python for onnx without requirements")
	require.Equal(t, spec.EnvONNX, cfg["environment"])

	// A new library (an upgrade on the worker): a new object, the old one
	// kept for bundles that still name it, and a different bundle, so the
	// endpoint restarts with it.
	time.Sleep(10 * time.Millisecond) // a distinct modification time
	require.NoError(t, os.WriteFile(lib, bytes.Repeat([]byte("onnxruntime v2 "), 4096), 0o755))
	sum2, err := a.publishONNXRuntime(ctx, in)
	require.NoError(t, err)
	require.Equal(t, fileSum(), sum2)
	require.NotEqual(t, sum1, sum2)
	body, _ = object(sum2)
	require.Contains(t, body, "onnxruntime v2")
	b2, err := a.buildBundle(in, sum2)
	require.NoError(t, err)
	require.NotEqual(t, b1, b2)

	// No library on the worker: the step says so instead of publishing a
	// bundle the server could not run.
	t.Setenv(onnxrt.LibraryEnv, filepath.Join(dir, "missing.so"))
	_, err = a.publishONNXRuntime(ctx, in)
	require.ErrorContains(t, err, "no ONNX Runtime library")

	// Python: nothing published, no sum, the venv's Python.
	py := in
	py.Spec.Environment = spec.EnvPython
	py.Install.Python = "/worker/venv/bin/python"
	sum, err := a.publishONNXRuntime(ctx, py)
	require.NoError(t, err)
	require.Empty(t, sum)
	b3, err := a.buildBundle(py, sum)
	require.NoError(t, err)
	files = untar(t, b3)
	require.NotContains(t, files, bundlelayout.ONNXRuntimeSumFile)
	cfg = nil
	require.NoError(t, json.Unmarshal([]byte(files["live.json.in"]), &cfg))
	require.Equal(t, bundlelayout.HomePlaceholder+"/venv/bin/python", cfg["python"])
	require.Nil(t, cfg["onnxruntime_lib"])
}
