package integration

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/inference/onnxrt"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"

	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
)

// TestEC2ONNX walks the wizard with environment onnx (the direction
// classifier, image->json) on --compute ec2 and --dns route53 against moto,
// with the local CA. Complete publishes the worker's ONNX Runtime library to
// moto's S3 under its SHA-256 and the bundle naming it; the stand-in for the
// instance runs the fetch script of the user data moto holds, which
// downloads the library through the bucket policy, checks its sum and
// makes no venv; the fetched algocloud-infer loads that library (read from
// its memory map) and answers the classifier's JSON over HTTPS as
// textdir.algocloud.test. Delete removes the bundle and keeps the shared
// library.
func TestEC2ONNX(t *testing.T) {
	model := requireClassifier(t)
	workerLib, err := onnxrt.LibraryPath("")
	require.NoError(t, err)
	libBytes, err := os.ReadFile(workerLib)
	require.NoError(t, err)
	libSum := sha256.Sum256(libBytes)
	libHex := hex.EncodeToString(libSum[:])

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	w := newCloudWorld(t, ctx)
	port := testenv.FreePort(t)
	si := &standIn{home: t.TempDir(), listen: "127.0.0.1:" + strconv.Itoa(port)}

	p := startPlatform(t, t.TempDir(), func(o *platform.Options) {
		o.Domain = "algocloud.test"
		o.Cloud = platform.CloudOptions{
			Compute: platform.ComputeEC2, Certs: platform.CertsLocal, DNS: platform.DNSRoute53,
			AWSRegion: "us-east-1", AWSEndpoint: w.moto.Endpoint,
			// With EC2 agents on: environment onnx keeps the worker's
			// path on EC2 (the agent does not fetch ONNX Runtime yet).
			EC2Agents: true,
			EC2AMIs:   map[string]string{"python": motoAMI, "onnx": motoAMI}, EC2Port: port, EC2Poll: 50 * time.Millisecond,
			EC2HealthURL: func(compute.Server) string { return "https://" + si.listen + "/readyz" },
			BundleBucket: w.bucket, DNSZoneID: w.zoneID, DNSPoll: 20 * time.Millisecond,
		}
	})
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))

	// The classifier's folder, as TestCLIDeployONNX deploys it.
	src := t.TempDir()
	b, err := os.ReadFile(model)
	require.NoError(t, err)
	for name, data := range map[string][]byte{
		"models/cls.onnx":  b,
		onnxrt.ConfigFile:  []byte(classifierConfig),
		"labels.txt":       []byte("0\n180\n"),
		"sample.png":       stripes(t, 192, 48),
		"notes/README.txt": []byte("not part of the model\n"),
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(src, name), data, 0o644))
	}
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Text direction on EC2", "api_name": "textdir", "environment": "onnx", "input": "image", "output": "json",
		"threads": 1, "max_batch_size": 4, "max_queue_delay_ms": 5, "compute": "cpu", "instance_type": "t3.small", "region": "us-east-1",
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	r = throughTest(t, c, id, gitRepo(t, src))
	state := r.Body["state"].(map[string]any)
	require.Equal(t, true, state["test"].(map[string]any)["ok"], string(r.Raw))
	srv := state["server"].(map[string]any)
	require.Equal(t, "ec2", srv["provider"], string(r.Raw))
	require.Nil(t, srv["agent"], "an onnx deployment's instance has no agent: %s", r.Raw)
	instanceID := srv["id"].(string)
	require.Len(t, deploymentInstances(t, ctx, w, id), 1)

	attr, err := w.ec2.DescribeInstanceAttribute(ctx, &awsec2.DescribeInstanceAttributeInput{
		InstanceId: aws.String(instanceID), Attribute: ec2types.InstanceAttributeNameUserData,
	})
	require.NoError(t, err)
	userData, err := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value))
	require.NoError(t, err)

	// Complete: the library, then the bundle, are published; the stand-in
	// boots from the user data once the bundle is there.
	done := make(chan resp, 1)
	go func() { done <- c.Step(id, "complete", nil) }()
	bundleKey := "algocloud/" + id + "/bundle.enc"
	require.Eventually(t, func() bool {
		_, err := w.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(bundleKey)})
		return err == nil
	}, 3*time.Minute, 50*time.Millisecond, "bundle published")
	libKey := "algocloud/onnxruntime/" + libHex + "/libonnxruntime.so.1"
	head, err := w.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(libKey)})
	require.NoError(t, err, "the worker's library is published before the bundle, under its SHA-256")
	require.Equal(t, int64(len(libBytes)), aws.ToInt64(head.ContentLength))
	si.start(t, string(userData))
	select {
	case r = <-done:
	case <-time.After(4 * time.Minute):
		t.Fatal("complete did not return: the endpoint never became ready")
	}
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	endpoint, token := r.Str("endpoint"), r.Str("token")
	require.Equal(t, fmt.Sprintf("https://textdir.algocloud.test:%d", port), endpoint)

	// What the fetch left: the library, checked, at the path live.json
	// names; no venv (environment onnx without requirements runs no Python).
	fetched := filepath.Join(si.home, bundlelayout.ONNXRuntimePath)
	got, err := os.ReadFile(fetched)
	require.NoError(t, err)
	gotSum := sha256.Sum256(got)
	require.Equal(t, libHex, hex.EncodeToString(gotSum[:]), "the instance has the worker's library")
	live, err := os.ReadFile(filepath.Join(si.home, "bundle", "live.json"))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(live, &cfg))
	require.Equal(t, fetched, cfg["onnxruntime_lib"])
	require.Equal(t, "onnx", cfg["environment"])
	require.NoDirExists(t, filepath.Join(si.home, "venv"))
	// The server loaded the fetched library, not the worker's.
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", si.cmd.Process.Pid))
	require.NoError(t, err)
	require.Contains(t, string(maps), fetched)
	require.NotContains(t, string(maps), workerLib)

	// The endpoint, by its name, verified with the local CA only.
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.CA.Pool(), MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			if host != "textdir.algocloud.test" {
				return nil, errors.New("unexpected dial to " + addr)
			}
			return (&net.Dialer{}).DialContext(ctx, network, si.listen)
		},
	}}
	res, out := predict(t, hc, endpoint, token, stripes(t, 300, 80))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	require.True(t, strings.HasPrefix(res.Header.Get("Content-Type"), "application/json"), res.Header.Get("Content-Type"))
	requireDirection(t, out)
	res, out = predict(t, hc, endpoint, token, []byte("not an image"))
	require.Equal(t, http.StatusBadRequest, res.StatusCode, string(out))
	require.Contains(t, string(out), "not_an_image")

	// Delete: the bundle goes; the library, shared by every onnx
	// deployment's bundle that names this sum, stays.
	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	si.stop()
	require.Empty(t, deploymentInstances(t, ctx, w, id))
	_, err = w.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(bundleKey)})
	require.Error(t, err, "bundle deleted")
	obj, err := w.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(libKey)})
	require.NoError(t, err, "library kept")
	_, _ = io.Copy(io.Discard, obj.Body)
	obj.Body.Close()
}
