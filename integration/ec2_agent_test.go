package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
)

// agentStandIn is the stand-in instance of a server with an agent: it runs
// the agent-setup.sh of the instance's own user data (from moto) with its
// home in a temporary folder, as systemd's ExecStartPre would (it fetches
// algocloud-infer from the bundle store and writes the credential, bundle
// keys and CA from the user data), then the very command line of the user
// data's algocloud-agent.service with /opt/algocloud moved to that home and
// the endpoint's listen address on 127.0.0.1. Nothing dials the addresses
// moto hands out: the agent long-polls the platform's API on loopback and
// fetches from moto's S3 on loopback.
type agentStandIn struct {
	home, listen string
	cmd          *exec.Cmd
	log          bytes.Buffer
}

func (s *agentStandIn) start(t *testing.T, userData string) {
	t.Helper()
	setup, err := ec2.AgentSetupScript(userData)
	require.NoError(t, err)
	script := filepath.Join(t.TempDir(), "agent-setup.sh")
	require.NoError(t, os.WriteFile(script, []byte(setup), 0o700))
	out, err := (&exec.Cmd{Path: "/bin/bash", Args: []string{"bash", script},
		Env: append(os.Environ(), "ALGOCLOUD_HOME="+s.home)}).CombinedOutput()
	require.NoError(t, err, "agent-setup.sh: %s", out)
	argv, err := ec2.AgentExecStart(userData)
	require.NoError(t, err)
	for i, a := range argv {
		if strings.HasPrefix(a, "/opt/algocloud") {
			argv[i] = s.home + strings.TrimPrefix(a, "/opt/algocloud")
		}
		if i > 0 && argv[i-1] == "--listen" {
			argv[i] = s.listen
		}
	}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Dir = s.home
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, s.cmd.Start())
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("stand-in agent's log:\n%s", s.log.String())
		}
	})
}

func (s *agentStandIn) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// TestEC2AgentRoute53LocalCA is TestEC2Route53LocalCA with EC2 agents on
// (--agents --ec2-agents): the instance's user data (moto holds it) carries
// the server's credential and installs the agent; the stand-in runs that
// agent, and Install, Test Code and Complete run on it. The algorithm
// imports a package that only the instance's venv has (its requirement,
// installed by the agent's pip from a wheel folder): Test Code passes, the
// worker's data folder holds no trace of the package, and the endpoint
// serves by its name with the local CA's certificate fetched sealed. A
// redeploy swaps the new revision in by the agent, the instance running
// throughout, and so does a token rotation. Delete terminates the
// instance, revokes the credential and removes the code revisions from the
// bucket.
func TestEC2AgentRoute53LocalCA(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	w := newCloudWorld(t, ctx)
	port := testenv.FreePort(t)
	si := &agentStandIn{home: t.TempDir(), listen: "127.0.0.1:" + strconv.Itoa(port)}
	wheels := t.TempDir()
	writeWheel(t, wheels, "onlyoninstance", "0.1.0", "VALUE = 42\n")

	data := t.TempDir()
	p := startEC2AgentPlatform(t, w, data, si, port, func(o *platform.Options) {
		o.Pip.NoIndex = true // no package index is reachable here
		o.Pip.FindLinks = []string{wheels}
	})
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))

	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	src, err := os.ReadFile(filepath.Join(repo, "aai_main.py"))
	require.NoError(t, err)
	commit(t, repo, map[string]string{
		"aai_pip-requirements.txt": "onlyoninstance==0.1.0\n",
		"aai_main.py":              strings.Replace(string(src), "import numpy as np\n", "import numpy as np\nimport onlyoninstance\nassert onlyoninstance.VALUE == 42\n", 1),
	})
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Segmentation on EC2 by its agent", "api_name": "seg", "input": "image", "output": "image", "threads": 1,
		"compute": "cpu", "instance_type": "t3.small", "region": "us-east-1",
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	instanceID, _ := provisionWithAgent(t, ctx, c, w, si, id)
	cred, err := os.ReadFile(filepath.Join(si.home, "agent", "credential"))
	require.NoError(t, err)
	credential := strings.TrimSpace(string(cred))
	require.True(t, strings.HasPrefix(credential, "ag_"))
	for _, f := range []string{"credential", "bundle.keys"} {
		fi, err := os.Stat(filepath.Join(si.home, "agent", f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}
	server, err := p.Agents.AuthenticateAgent(ctx, credential)
	require.NoError(t, err)
	require.Equal(t, ec2.AgentID(id), server, "the credential is the server's own")

	stepsThrough(t, c, id, repo, "test") // through the instance's agent
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Equal(t, true, st.Body["state"].(map[string]any)["test"].(map[string]any)["ok"], string(st.Raw))
	ev := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events", nil)
	require.Contains(t, string(ev.Raw), "by its agent")
	require.Contains(t, string(ev.Raw), "onlyoninstance", "pip's output on the instance streams into the progress log")

	// The package is in the instance's venv, and nowhere in the worker's data.
	found, _ := filepath.Glob(filepath.Join(si.home, "installs", "*", "venv", "lib", "python3*", "site-packages", "onlyoninstance", "__init__.py"))
	require.Len(t, found, 1, "the instance's venv has the package")
	require.NoError(t, filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), "onlyoninstance") || d.Name() == "site-packages" {
			return fmt.Errorf("the worker's data holds %s: pip ran there", path)
		}
		return nil
	}))

	// Complete: the agent fetches the code and the certificate and serves.
	began := time.Now()
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	t.Logf("complete through the instance's agent: %s", time.Since(began).Round(time.Millisecond))
	endpoint, token := r.Str("endpoint"), r.Str("token")
	require.Equal(t, fmt.Sprintf("https://seg.algocloud.test:%d", port), endpoint)
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.CA.Pool(), MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			if host != "seg.algocloud.test" {
				return nil, errors.New("unexpected dial to " + addr)
			}
			return (&net.Dialer{}).DialContext(ctx, network, si.listen)
		},
	}}
	res, out := predict(t, hc, endpoint, token, samplePNG(t, 96, 64))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	img, err := png.Decode(bytes.NewReader(out))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 96, 64), img.Bounds())
	require.Equal(t, []string{"seg.algocloud.test"}, res.TLS.PeerCertificates[0].DNSNames)

	// A redeploy (new code, test, complete) swaps the revision in on the
	// instance by its agent: the instance keeps running (no stop/start, as
	// the worker's path does), and the endpoint serves the new revision.
	commit(t, repo, map[string]string{"NOTES.txt": "second revision\n"})
	t.Log("redeploy")
	stepsThrough(t, c, id, repo, "complete")
	st = c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.EqualValues(t, 2, st.Body["state"].(map[string]any)["live"].(map[string]any)["code_revision"], string(st.Raw))
	inst := deploymentInstances(t, ctx, w, id)
	require.Len(t, inst, 1)
	require.Equal(t, ec2types.InstanceStateNameRunning, inst[0].State.Name, "the redeploy did not stop the instance")
	res, out = predict(t, hc, endpoint, token, samplePNG(t, 96, 64))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))

	// A token rotation is a serve by the agent too (not a restart with a
	// new bundle, as on the worker's path): once it answered, the old token
	// is refused and the new one served, the instance running throughout.
	r = c.Do(http.MethodPost, "/api/v1/deployments/"+id+"/token", nil)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	rotated := r.Str("token")
	res, out = predict(t, hc, endpoint, token, samplePNG(t, 96, 64))
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, "the old token: %s", out)
	res, out = predict(t, hc, endpoint, rotated, samplePNG(t, 96, 64))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	inst = deploymentInstances(t, ctx, w, id)
	require.Len(t, inst, 1)
	require.Equal(t, ec2types.InstanceStateNameRunning, inst[0].State.Name, "the rotation did not stop the instance")

	// The code revisions in the bucket are sealed.
	requireSealed(t, ctx, w, "algocloud/"+id+"/code/", "onlyoninstance")

	// Nothing secret in the workflow's history: no credential, key or token.
	hist := p.Client.GetWorkflowHistory(ctx, "deployment-"+id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for hist.HasNext() {
		ev, err := hist.Next()
		require.NoError(t, err)
		text := ev.String()
		require.NotContains(t, text, credential)
		require.NotContains(t, text, "PRIVATE KEY")
		require.NotContains(t, text, token)
		require.NotContains(t, text, rotated)
	}

	// Delete: instance terminated, credential revoked, code revisions gone.
	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	si.stop()
	out2, err := w.ec2.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{instanceID}})
	require.NoError(t, err)
	require.Equal(t, ec2types.InstanceStateNameTerminated, out2.Reservations[0].Instances[0].State.Name)
	_, err = p.Agents.AuthenticateAgent(ctx, credential)
	require.Error(t, err, "the credential is revoked at release")
	list, err := w.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(w.bucket), Prefix: aws.String("algocloud/" + id + "/")})
	require.NoError(t, err)
	require.Empty(t, list.Contents, "code revisions and certificate object deleted")
}

// requireSealed checks that the bucket holds objects under prefix and that
// none has any of clear in it: they are sealed.
func requireSealed(t *testing.T, ctx context.Context, w *cloudWorld, prefix string, clear ...string) {
	t.Helper()
	list, err := w.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(w.bucket), Prefix: aws.String(prefix)})
	require.NoError(t, err)
	require.NotEmpty(t, list.Contents)
	for _, o := range list.Contents {
		obj, err := w.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: o.Key})
		require.NoError(t, err)
		var sealed bytes.Buffer
		_, _ = sealed.ReadFrom(obj.Body)
		obj.Body.Close()
		for _, c := range clear {
			require.NotContains(t, sealed.String(), c, aws.ToString(o.Key))
		}
	}
}

// startEC2AgentPlatform starts the platform on moto with ec2Options
// (--compute ec2 --dns route53 --certs local, the agent on each instance).
func startEC2AgentPlatform(t *testing.T, w *cloudWorld, data string, si *agentStandIn, port int, mutate ...func(*platform.Options)) *platform.Platform {
	t.Helper()
	return startPlatform(t, data, append([]func(*platform.Options){func(o *platform.Options) {
		o.Domain = "algocloud.test"
		o.Cloud = ec2Options(w, w.moto.Endpoint, port, si.listen)
	}}, mutate...)...)
}

// provisionWithAgent runs Provision, checks the server is an EC2 instance
// with an agent, and starts the stand-in from the user data moto holds; it
// returns the instance ID and that user data.
func provisionWithAgent(t *testing.T, ctx context.Context, c *client, w *cloudWorld, si *agentStandIn, id string) (string, string) {
	t.Helper()
	r := c.Step(id, "provision", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	srv := st.Body["state"].(map[string]any)["server"].(map[string]any)
	require.Equal(t, "ec2", srv["provider"], string(st.Raw))
	require.Equal(t, true, srv["agent"], string(st.Raw))
	require.Equal(t, ec2.AgentID(id), srv["agent_id"], string(st.Raw))
	instanceID := srv["id"].(string)
	require.Len(t, deploymentInstances(t, ctx, w, id), 1)
	attr, err := w.ec2.DescribeInstanceAttribute(ctx, &awsec2.DescribeInstanceAttributeInput{
		InstanceId: aws.String(instanceID), Attribute: ec2types.InstanceAttributeNameUserData,
	})
	require.NoError(t, err)
	b, err := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value))
	require.NoError(t, err)
	userData := string(b)
	require.Contains(t, userData, "algocloud-agent.service")
	require.NotContains(t, userData, "PRIVATE KEY")
	si.start(t, userData)
	return instanceID, userData
}

// TestEC2AgentInitErrorCaughtByTest is TestEC2InitError's "works on the
// worker only" code (its __init__ reads .git/HEAD, which a checkout has and
// the code an instance gets has not) with EC2 agents on: Test Code now runs
// on the instance, on the very code revision it would serve, so it fails
// there with the exception and its traceback, and nothing can be completed.
func TestEC2AgentInitErrorCaughtByTest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	w := newCloudWorld(t, ctx)
	port := testenv.FreePort(t)
	si := &agentStandIn{home: t.TempDir(), listen: "127.0.0.1:" + strconv.Itoa(port)}
	p := startEC2AgentPlatform(t, w, t.TempDir(), si, port)
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))

	repo := gitRevisionRepo(t)

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Works on the worker only", "api_name": "gitrev", "input": "image", "output": "image", "threads": 1,
		"compute": "cpu", "instance_type": "t3.small", "region": "us-east-1",
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	provisionWithAgent(t, ctx, c, w, si, id)
	r = c.Step(id, "fetch_code", map[string]any{"git_url": repo, "ref": "main"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	r = c.Step(id, "install_requirements", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	r = c.Step(id, "test", nil)
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	test := st.Body["state"].(map[string]any)["test"].(map[string]any)
	require.Equal(t, false, test["ok"], "test answered %d %s; state %s", r.Status, r.Raw, st.Raw)
	failure := fmt.Sprint(test["message"], "\n", test["traceback"])
	for _, want := range []string{"FileNotFoundError", ".git/HEAD", "Traceback (most recent call last)"} {
		require.Contains(t, failure, want, string(st.Raw))
	}
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusConflict, r.Status, "complete needs a passing test: %s", r.Raw)
	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Empty(t, deploymentInstances(t, ctx, w, id))
}
