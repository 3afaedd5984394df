package integration

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
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
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/onnxrt"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"

	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
)

// TestEC2ONNX walks the wizard with environment onnx (the direction
// classifier, image->json) on --compute ec2 (the server agent on the
// instance) and --dns route53 against moto, with the local CA. Test Code and
// Complete publish the worker's ONNX Runtime library to moto's S3 under its
// SHA-256 and name it in the agent's commands; the stand-in for the instance
// runs the agent of the user data moto holds, which downloads the library
// through the bucket policy, checks its sum and makes no venv; the revision
// it serves loads that library (read from its memory map) and answers the
// classifier's JSON over HTTPS as textdir.algocloud.test. Delete removes
// the deployment's sealed objects and keeps the shared library.
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
	si := &agentStandIn{home: t.TempDir(), listen: "127.0.0.1:" + strconv.Itoa(port)}
	p := startEC2AgentPlatform(t, w, t.TempDir(), si, port, func(o *platform.Options) {
		o.Cloud.EC2AMIs["onnx"] = motoAMI
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
	provisionWithAgent(t, ctx, c, w, si, id)
	repo := gitRepo(t, src)
	r = fetchInstallTest(t, c, id, repo)
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Equal(t, true, st.Body["state"].(map[string]any)["test"].(map[string]any)["ok"], string(st.Raw))
	ev := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events", nil)
	require.Contains(t, string(ev.Raw), "testing on server", "Test Code ran by the instance's agent")

	// The library is in the bucket under its SHA-256, and on the instance.
	libKey := "algocloud/onnxruntime/" + libHex + "/libonnxruntime.so.1"
	head, err := w.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(libKey)})
	require.NoError(t, err, "the worker's library is published under its SHA-256")
	require.Equal(t, int64(len(libBytes)), aws.ToInt64(head.ContentLength))
	fetched := filepath.Join(si.home, bundlelayout.ONNXRuntimePath)
	got, err := os.ReadFile(fetched)
	require.NoError(t, err)
	gotSum := sha256.Sum256(got)
	require.Equal(t, libHex, hex.EncodeToString(gotSum[:]), "the instance has the worker's library")

	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	endpoint, token := r.Str("endpoint"), r.Str("token")
	require.Equal(t, fmt.Sprintf("https://textdir.algocloud.test:%d", port), endpoint)

	// No venv (environment onnx without requirements runs no Python); the
	// serving revision's config names the fetched library, and its process
	// loaded it, not the worker's.
	venvs, _ := filepath.Glob(filepath.Join(si.home, "installs", "*", "venv"))
	require.Empty(t, venvs)
	stateJSON, err := os.ReadFile(filepath.Join(si.home, "agent", "state.json"))
	require.NoError(t, err)
	var state struct {
		Serving *struct {
			PID int `json:"pid"`
		} `json:"serving"`
	}
	require.NoError(t, json.Unmarshal(stateJSON, &state), string(stateJSON))
	require.NotNil(t, state.Serving, string(stateJSON))
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", state.Serving.PID))
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

	// Delete: the deployment's objects go; the library, shared by every
	// onnx deployment that names this sum, stays.
	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	si.stop()
	require.Empty(t, deploymentInstances(t, ctx, w, id))
	list, err := w.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(w.bucket), Prefix: aws.String("algocloud/" + id + "/")})
	require.NoError(t, err)
	require.Empty(t, list.Contents, "the deployment's objects deleted")
	obj, err := w.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(libKey)})
	require.NoError(t, err, "library kept")
	_, _ = io.Copy(io.Discard, obj.Body)
	obj.Body.Close()
}
