package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/workflows"
)

// agentServing names the revision an agent serves and its process (pid and
// start time, restarts), read from the agent's state.json in agentDir: the
// same string before and after means the same process served throughout.
func agentServing(t *testing.T, agentDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(agentDir, "state.json"))
	require.NoError(t, err)
	var st struct {
		Serving *struct {
			ID         string `json:"id"`
			PID        int    `json:"pid"`
			StartTicks uint64 `json:"start_ticks"`
			Restarts   int    `json:"restarts"`
		} `json:"serving"`
	}
	require.NoError(t, json.Unmarshal(b, &st), string(b))
	require.NotNil(t, st.Serving, "the agent serves a revision: %s", b)
	require.NotZero(t, st.Serving.PID, string(b))
	return "revision " + st.Serving.ID + ", pid " + strconv.Itoa(st.Serving.PID) + " started at tick " +
		strconv.FormatUint(st.Serving.StartTicks, 10) + ", " + strconv.Itoa(st.Serving.Restarts) + " restarts"
}

// ec2AgentClient is an HTTPS client of an EC2 agent endpoint: it trusts the
// platform's local CA and dials the stand-in's listen address whatever the
// name (never an address moto handed out). Fresh connections each time
// (no keep-alive), so every request is a new TLS handshake.
func ec2AgentClient(caPool *x509.CertPool, listen string) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: caPool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, listen)
		},
	}}
}

// TestEC2AgentCertificateRenewal renews the certificate of a live endpoint
// on an EC2 instance with an agent (--ec2-agents; the stand-in runs the
// user data's agent) under load: the renewal publishes the new certificate
// as a sealed object and asks the agent (a serve of the revision that
// serves, with the certificate's Fetch) to take it: the serving revision
// reloads it at its next handshake. No request fails, the same revision
// process (pid and start time from the agent's state.json) serves
// throughout, the instance is neither stopped nor started, and the new
// certificate is served. The renewal is an operator's `{}` signal (renew
// now), as TestOperatorSignalRenewsCertificate does locally. The history
// goes to the replay corpus with ALGOCLOUD_CAPTURE_HISTORIES=1, named by
// whether it took the agent-cert-reload change, before the assertions.
func TestEC2AgentCertificateRenewal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w := newCloudWorld(t, ctx)
	port := testenv.FreePort(t)
	si := &agentStandIn{home: t.TempDir(), listen: "127.0.0.1:" + strconv.Itoa(port)}
	reapStandIn(t, si.home) // the serving revision outlives the stand-in's agent
	p := startEC2AgentPlatform(t, w, t.TempDir(), si, port)
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Renewed on EC2 by its agent", "api_name": "seg", "input": "image", "output": "image", "threads": 1,
		"compute": "cpu", "instance_type": "t3.small", "region": "us-east-1",
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	provisionWithAgent(t, ctx, c, w, si, id)
	r = stepsThrough(t, c, id, repo, "complete")
	endpoint, token := r.Str("endpoint"), r.Str("token")
	hc := ec2AgentClient(p.CA.Pool(), si.listen)
	served := func() *x509.Certificate {
		res, out := predict(t, hc, endpoint, token, samplePNG(t, 16, 16))
		require.Equal(t, http.StatusOK, res.StatusCode, string(out))
		return res.TLS.PeerCertificates[0]
	}
	first := served()
	agentDir := filepath.Join(si.home, "agent")
	before := agentServing(t, agentDir)
	instBefore := deploymentInstances(t, ctx, w, id)
	require.Len(t, instBefore, 1)

	// Predictions on fresh connections (each a new TLS handshake) from two
	// clients while the certificate is renewed: none may fail.
	load := startPredictLoad(hc, endpoint, token, samplePNG(t, 16, 16), 2, 100*time.Millisecond)
	time.Sleep(time.Second)
	began := time.Now()
	require.NoError(t, p.Client.SignalWorkflow(ctx, workflows.WorkflowID(id), "", workflows.SignalRenewCertificate, struct{}{}))
	var rec *workflows.StepRecord
	var st workflows.State
	for deadline := time.Now().Add(3 * time.Minute); rec == nil && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		st = deploymentState(t, p, id)
		for i := range st.History {
			if st.History[i].Step == workflows.StepRenewCertificate && st.Busy == "" {
				rec = &st.History[i]
			}
		}
	}
	took := time.Since(began)
	okAtRenewal := load.ok.Load()
	time.Sleep(2 * time.Second) // predictions on the renewed certificate too
	load.wait()
	name := "agent-cert-reload-before.json"
	if slices.Contains(versionMarkers(t, decodedHistory(t, p, fetchHistory(t, p.Client, workflows.WorkflowID(id)))), "agent-cert-reload") {
		name = "agent-cert-reload-after.json"
	}
	captureHistory(t, p, workflows.WorkflowID(id), name)

	require.NotNil(t, rec, "no renewal recorded after the signal: %+v", st.History)
	require.True(t, rec.OK, rec.Message)
	require.Contains(t, rec.Message, "by the server's agent")
	renewed := served()
	require.NotEqual(t, 0, renewed.SerialNumber.Cmp(first.SerialNumber), "the endpoint serves the renewed certificate")
	require.Equal(t, first.DNSNames, renewed.DNSNames)
	require.Equal(t, renewed.NotAfter.UTC(), st.Cert.NotAfter.UTC(), "the state holds the served certificate")
	require.Equal(t, workflows.StatusLive, st.Status)
	require.Equal(t, before, agentServing(t, agentDir), "the same revision process serves the renewed certificate")
	require.Zero(t, load.failed.Load(), "predictions failed during the renewal (first: %v)", load.firstErr.Load())
	require.Positive(t, okAtRenewal)
	require.Greater(t, load.ok.Load(), okAtRenewal, "predictions after the renewal")
	inst := deploymentInstances(t, ctx, w, id)
	require.Len(t, inst, 1)
	require.Equal(t, instBefore[0].LaunchTime, inst[0].LaunchTime, "the instance was not restarted")
	ev := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events", nil)
	require.NotContains(t, string(ev.Raw), "PRIVATE KEY")
	require.Contains(t, string(ev.Raw), "without a restart")
	t.Logf("EC2 agent renewal: serial %x -> %x in %s (signal to step recorded), %s throughout, %d predictions ok, 0 failed; %s",
		first.SerialNumber, renewed.SerialNumber, took.Round(time.Millisecond), before, load.ok.Load(), rec.Message)
}
