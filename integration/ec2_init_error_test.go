package integration

import (
	"context"
	"encoding/base64"
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

	"github.com/algocloud/algocloud/activities/dns"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
)

// gitRevisionInit is an __init__ that works where the code is a Git
// checkout and nowhere else: it stamps the model with the revision read from
// .git/HEAD. Test Code runs it in the worker's clone, which has .git, so it
// passes; the bundle an instance gets holds code/ without .git
// (docs/cloud.md), so there it raises FileNotFoundError. A real "works on my
// machine" failure, with nothing in the code or the stand-in that knows it
// is a test.
const gitRevisionInit = `    def __init__(self):
        # The revision this model was built from, for the logs.
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, ".git", "HEAD")) as f:
            self.revision = f.read().strip()
        self.blur = ImageFilter.GaussianBlur(radius=1)
`

// gitRevisionRepo is a Git repository of examples/segmentation whose
// __init__ is gitRevisionInit: it works in a checkout and nowhere else.
func gitRevisionRepo(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	require.NoError(t, os.CopyFS(src, os.DirFS(filepath.Join(repoRoot(t), "examples", "segmentation"))))
	mainPy := filepath.Join(src, "aai_main.py")
	code, err := os.ReadFile(mainPy)
	require.NoError(t, err)
	orig := "    def __init__(self):\n        # A light blur before thresholding removes speckle; a real model would load here.\n        self.blur = ImageFilter.GaussianBlur(radius=1)\n"
	require.Contains(t, string(code), orig, "examples/segmentation changed: adapt this test")
	code = []byte("import os\n" + strings.Replace(string(code), orig, gitRevisionInit, 1))
	require.NoError(t, os.WriteFile(mainPy, code, 0o644))
	return gitRepo(t, src)
}

// TestEC2InitError is the one EC2 test that keeps the worker's path
// (--ec2-agents=false) covered while that opt-out exists: code whose
// __init__ fails only on the instance passes Test Code on the worker;
// Complete then answers 422 step_failed with the Python exception and
// traceback as soon as the instance's /readyz says init_failed, instead of
// waiting out the provider's start timeout (15 minutes here, the default).
// The instance is left stopped, and Delete removes the instance, its group,
// the record, the bundle and the staging folder. (With the agent, the
// default, the same code fails Test Code on the instance:
// TestEC2AgentInitErrorCaughtByTest.)
func TestEC2InitError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	w := newCloudWorld(t, ctx)
	port := testenv.FreePort(t)
	si := &standIn{home: t.TempDir(), listen: "127.0.0.1:" + strconv.Itoa(port)}
	data := t.TempDir()
	p := startPlatform(t, data, func(o *platform.Options) {
		o.Domain = "algocloud.test"
		o.Cloud = ec2Options(w, w.moto.Endpoint, port, si.listen)
		o.Cloud.EC2Agents = false // the worker's path
	})
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	repo := gitRevisionRepo(t)

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Works on the worker only", "api_name": "gitrev", "input": "image", "output": "image", "threads": 1,
		"compute": "cpu", "instance_type": "t3.small", "region": "us-east-1",
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	// Test Code passes: the worker's clone has .git
	r = throughTest(t, c, id, repo)
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	state := st.Body["state"].(map[string]any)
	require.Equal(t, true, state["test"].(map[string]any)["ok"], string(st.Raw))
	instanceID := state["server"].(map[string]any)["id"].(string)

	attr, err := w.ec2.DescribeInstanceAttribute(ctx, &awsec2.DescribeInstanceAttributeInput{
		InstanceId: aws.String(instanceID), Attribute: ec2types.InstanceAttributeNameUserData,
	})
	require.NoError(t, err)
	userData, err := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value))
	require.NoError(t, err)

	done := make(chan resp, 1)
	go func() { done <- c.Step(id, "complete", nil) }()
	bundleKey := "algocloud/" + id + "/bundle.enc"
	require.Eventually(t, func() bool {
		_, err := w.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(bundleKey)})
		return err == nil
	}, 3*time.Minute, 50*time.Millisecond, "bundle published")
	si.start(t, string(userData))
	booted := time.Now()
	// A guard, not a timing claim: the provider's start timeout is 15 min and
	// the activity's 5 min, so a Complete that waited for either fails here.
	select {
	case r = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("complete did not return: init_failed was not recognised")
	}
	si.stop()
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	require.Equal(t, "step_failed", r.Str("code"), string(r.Raw))
	require.Equal(t, "complete", r.Str("failed_step"), string(r.Raw))
	msg := r.Str("message")
	for _, want := range []string{
		"failed to load on the instance",
		"FileNotFoundError", ".git/HEAD", // the exception
		"Traceback (most recent call last)", "in __init__", // the traceback
		"instance stopped",
	} {
		require.Contains(t, msg, want, msg)
	}
	require.Empty(t, r.Str("token"), "no endpoint token for an endpoint that never went live")
	t.Logf("complete answered %s after the stand-in started: %s", time.Since(booted).Round(time.Millisecond), msg)

	st = c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.NotEqual(t, "live", st.Str("state", "status"), string(st.Raw))
	require.Empty(t, st.Str("state", "busy"), string(st.Raw))
	require.Contains(t, st.Str("state", "last_error", "message"), "FileNotFoundError", string(st.Raw))
	inst := deploymentInstances(t, ctx, w, id)
	require.Len(t, inst, 1)
	require.Contains(t, []ec2types.InstanceStateName{ec2types.InstanceStateNameStopping, ec2types.InstanceStateNameStopped},
		inst[0].State.Name, "the broken endpoint's instance is stopped")

	// Delete cleans up everything the deployment made.
	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	out, err := w.ec2.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{instanceID}})
	require.NoError(t, err)
	require.Equal(t, ec2types.InstanceStateNameTerminated, out.Reservations[0].Instances[0].State.Name)
	require.Empty(t, deploymentInstances(t, ctx, w, id))
	require.Nil(t, deploymentGroup(t, ctx, w, id))
	_, err = w.r53.Lookup(ctx, "gitrev.algocloud.test")
	require.ErrorIs(t, err, dns.ErrNotFound)
	_, err = w.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(bundleKey)})
	require.Error(t, err, "bundle deleted")
	require.NoDirExists(t, filepath.Join(data, "ec2", id))
}
