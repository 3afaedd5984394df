package ec2

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
	"github.com/algocloud/algocloud/internal/testenv/faultproxy"
)

// A spec asking for an agent launches with the agent's user data: the
// credential is derived from the launch and registered once, for the
// deployment's agent ID, just before RunInstances; the instance is tagged and its server reported as one with
// an agent; the user data (as moto holds it) installs algocloud-agent.service
// whose ExecStart runs `algocloud-infer agent` with the platform's URL, the
// server's ID, its credential file, its home and its deployment's bundle
// folder. agent-setup.sh, run in a temporary home against a real HTTP
// server for the binary, writes the credential, the bundle keys (which open
// what the bundle store seals) and the CA, 0600. A spec without Agent gets
// today's user data and registers nothing; a platform URL that cannot go on the
// unit's command line is refused before anything is launched.
func TestProvision_AgentUserData(t *testing.T) {
	master := make([]byte, 32)
	master[0] = 9
	var mu sync.Mutex
	var minted []string
	reg := func(_ context.Context, server, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		minted = append(minted, server)
		return nil
	}
	caPEM := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	e := newEnv(t)
	p := e.provider(t, func(o *Options) {
		o.BundleEncryptionKey = master
		o.ArtifactsURL = "http://127.0.0.1:1/bucket/algocloud"
		o.Agent = &AgentOptions{Register: reg, PlatformURL: "https://api.algocloud.test", PlatformCAPEM: caPEM}
	})
	ctx := ctxFor(t)
	s := specFor(uniq("dep-agent"))
	s.Agent = true
	srv, err := p.Provision(ctx, s)
	require.NoError(t, err)
	require.True(t, srv.Agent)
	require.Equal(t, AgentID(s.DeploymentID), srv.AgentID)
	require.Equal(t, AgentID(s.DeploymentID), srv.AgentServer())
	again, err := p.Provision(ctx, s)
	require.NoError(t, err)
	require.Equal(t, srv, again)
	require.Equal(t, []string{AgentID(s.DeploymentID)}, minted, "registered once, at launch")

	inst := e.instancesOf(t, testRegion, s.DeploymentID)[0]
	v, _ := tag(inst.Tags, TagAgent)
	require.Equal(t, "1", v)
	attr, err := e.ec2(testRegion).DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: inst.InstanceId, Attribute: types.InstanceAttributeNameUserData,
	})
	require.NoError(t, err)
	b, err := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value))
	require.NoError(t, err)
	userData := string(b)
	inv, err := e.ec2(testRegion).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{*inst.InstanceId}})
	require.NoError(t, err)
	cred, err := AgentCredential(master, s.DeploymentID, aws.ToString(inv.Reservations[0].Instances[0].ClientToken))
	require.NoError(t, err)
	require.Contains(t, userData, cred, "the credential of this launch (its ClientToken)")
	require.NotContains(t, userData, "fetch.sh", "the agent serves: no fetch.sh unit")
	argv, err := AgentExecStart(userData)
	require.NoError(t, err)
	require.Equal(t, []string{"/opt/algocloud/bin/algocloud-infer", "agent", "--dir", "/opt/algocloud/agent",
		"--listen", "0.0.0.0:443", "--platform", "https://api.algocloud.test", "--server", AgentID(s.DeploymentID),
		"--credential-file", "/opt/algocloud/agent/credential", "--ca-file", "/opt/algocloud/agent/platform-ca.pem",
		"--home", "/opt/algocloud", "--bundle-url", "http://127.0.0.1:1/bucket/algocloud/" + s.DeploymentID,
		"--bundle-keys-file", "/opt/algocloud/agent/bundle.keys", "--artifacts-url", "http://127.0.0.1:1/bucket/algocloud"}, argv)
	unit, err := heredoc(userData, "UNIT")
	require.NoError(t, err)
	require.Contains(t, unit, "Description=algocloud server agent")
	require.Contains(t, unit, "KillMode=process", "a restarted agent adopts the revisions it left")
	require.Contains(t, unit, "IPAddressDeny="+IMDS)

	// agent-setup.sh, run elsewhere with its artifacts on a local server.
	bin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bucket/algocloud/algocloud-infer" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("#!/bin/sh\necho infer\n"))
	}))
	defer bin.Close()
	script, err := AgentSetupScript(userData)
	require.NoError(t, err)
	script = strings.Replace(script, "http://127.0.0.1:1", bin.URL, 1)
	home := filepath.Join(t.TempDir(), "home")
	cmd := exec.Command("/bin/bash", "-c", script)
	cmd.Env = append(os.Environ(), "ALGOCLOUD_HOME="+home)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	got, err := os.ReadFile(filepath.Join(home, "agent", "credential"))
	require.NoError(t, err)
	require.Equal(t, cred+"\n", string(got))
	keysText, err := os.ReadFile(filepath.Join(home, "agent", "bundle.keys"))
	require.NoError(t, err)
	keys, err := bundlelayout.ParseKeys(string(keysText))
	require.NoError(t, err)
	want, err := DeriveBundleKeys(master, s.DeploymentID)
	require.NoError(t, err)
	require.Equal(t, want, keys)
	gotCA, err := os.ReadFile(filepath.Join(home, "agent", "platform-ca.pem"))
	require.NoError(t, err)
	require.Equal(t, string(caPEM), string(gotCA))
	for _, f := range []string{"credential", "bundle.keys", "platform-ca.pem"} {
		fi, err := os.Stat(filepath.Join(home, "agent", f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}
	fi, err := os.Stat(filepath.Join(home, "agent"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	fi, err = os.Stat(filepath.Join(home, "bin", "algocloud-infer"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), fi.Mode().Perm())

	// No agent asked: today's user data, nothing registered.
	plain := specFor(uniq("dep-noagent"))
	srv2, err := p.Provision(ctx, plain)
	require.NoError(t, err)
	require.False(t, srv2.Agent)
	require.Empty(t, srv2.AgentID)
	require.Len(t, minted, 1)

	// A platform URL that cannot be on the unit's command line.
	bad := e.provider(t, func(o *Options) {
		o.BundleEncryptionKey = master
		o.Agent = &AgentOptions{Register: reg, PlatformURL: "https://api.algocloud.test/x y"}
	})
	s3 := specFor(uniq("dep-badurl"))
	s3.Agent = true
	_, err = bad.Provision(ctx, s3)
	require.ErrorContains(t, err, "platform URL")
	require.Empty(t, e.instancesOf(t, testRegion, s3.DeploymentID))
}

// The answer to RunInstances of an instance with an agent is lost, and the
// retry's lookup by tag does not see the instance yet (EC2's tag index lags;
// here its deployment tag is taken off meanwhile): the retry launches again
// under the same ClientToken, gets the first attempt's instance, and
// registers the very credential that instance's user data holds, so the
// agent there can still authenticate. One instance, one credential; a new
// launch gets a new one, and a sweep revokes it.
func TestProvision_AgentRetryKeepsCredential(t *testing.T) {
	master := make([]byte, 32)
	master[0] = 7
	var mu sync.Mutex
	registered := map[string]string{} // server -> credential, as the hub keeps one per server
	var calls int
	reg := func(_ context.Context, server, cred string) error {
		mu.Lock()
		defer mu.Unlock()
		registered[server] = cred
		calls++
		return nil
	}
	revoke := func(_ context.Context, server string) error {
		mu.Lock()
		defer mu.Unlock()
		delete(registered, server)
		return nil
	}
	withAgent := func(o *Options) {
		o.BundleEncryptionKey = master
		o.ArtifactsURL = "http://127.0.0.1:1/bucket/algocloud"
		o.Agent = &AgentOptions{Register: reg, Revoke: revoke, PlatformURL: "https://api.algocloud.test"}
	}
	fe := newFaultEnv(t, faultproxy.Plan{ClientTokens: true, Rules: []faultproxy.Rule{
		{Action: "RunInstances", Fault: faultproxy.DropAfter},
	}}, withAgent)
	ctx := ctxFor(t)
	s := specFor(uniq("dep-agent-retry"))
	s.Agent = true
	_, err := fe.fp.Provision(ctx, s)
	require.Error(t, err, "the answer was lost")
	launched := fe.instancesOf(t, testRegion, s.DeploymentID)
	require.Len(t, launched, 1)
	inst := launched[0]
	first := registered[AgentID(s.DeploymentID)]
	require.NotEmpty(t, first)

	// The retry's lookup misses it.
	_, err = fe.ec2(testRegion).DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{*inst.InstanceId},
		Tags: []types.Tag{{Key: aws.String(TagDeployment)}}})
	require.NoError(t, err)
	require.Empty(t, fe.instancesOf(t, testRegion, s.DeploymentID))
	require.NoError(t, fe.proxy.SetPlan(faultproxy.Plan{ClientTokens: true}))
	fe.proxy.ResetCounts()
	srv, err := fe.viaProxy(t, withAgent).Provision(ctx, s)
	require.NoError(t, err)
	require.Equal(t, *inst.InstanceId, srv.ID, "the same instance")
	require.Equal(t, 1, fe.proxy.Counts()["RunInstances"].Replayed, "launched again under the same ClientToken")
	require.Equal(t, 2, calls, "registered at each launch")

	attr, err := fe.ec2(testRegion).DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: inst.InstanceId, Attribute: types.InstanceAttributeNameUserData,
	})
	require.NoError(t, err)
	b, err := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value))
	require.NoError(t, err)
	require.Equal(t, first, registered[AgentID(s.DeploymentID)], "the retry registered the same credential")
	require.Contains(t, string(b), first, "the instance's user data holds the registered credential")

	// A new launch (the instance terminated) gets a new credential.
	_, err = fe.ec2(testRegion).CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{*inst.InstanceId},
		Tags: []types.Tag{{Key: aws.String(TagDeployment), Value: aws.String(s.DeploymentID)}}})
	require.NoError(t, err)
	require.NoError(t, fe.fp.Release(ctx, srv))
	srv2, err := fe.fp.Provision(ctx, s)
	require.NoError(t, err)
	require.NotEqual(t, srv.ID, srv2.ID)
	require.NotEqual(t, first, registered[AgentID(s.DeploymentID)], "a new instance, a new credential")

	// Swept (as Delete does when no server was recorded): the instance
	// terminated and its agent's credential revoked.
	require.NoError(t, fe.fp.Sweep(ctx, s.DeploymentID))
	require.Empty(t, fe.instancesOf(t, testRegion, s.DeploymentID))
	require.NotContains(t, registered, AgentID(s.DeploymentID), "revoked by the sweep")
}
