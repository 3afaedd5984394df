package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/worker"
	"github.com/algocloud/algocloud/workflows"
)

// servedCert is the leaf an endpoint presents on a new TLS connection,
// verified against the platform's CA.
func servedCert(t *testing.T, p *platform.Platform, endpoint string) *x509.Certificate {
	t.Helper()
	u, err := url.Parse(endpoint)
	require.NoError(t, err)
	host, _, _ := net.SplitHostPort(u.Host)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", u.Host,
		&tls.Config{RootCAs: p.CA.Pool(), ServerName: host, MinVersion: tls.VersionTLS12})
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// deploymentState queries a deployment's workflow state.
func deploymentState(t *testing.T, p *platform.Platform, id string) workflows.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := p.Client.QueryWorkflow(ctx, workflows.WorkflowID(id), "", workflows.QueryState)
	require.NoError(t, err)
	var st workflows.State
	require.NoError(t, v.Get(&st))
	return st
}

// TestCertificateRenewalHotReload runs the platform with short-lived local-CA
// certificates (2 minutes; due with a third left) and a 3-second renewal
// schedule: the live endpoint's certificate, read from real TLS handshakes,
// changes while the same algocloud-infer process keeps serving predictions.
func TestCertificateRenewalHotReload(t *testing.T) {
	const validity = 2 * time.Minute
	data := t.TempDir()
	p := startPlatform(t, data, func(o *platform.Options) {
		o.CertValidity = validity
		o.CertRenewEvery = 3 * time.Second
	})
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id, endpoint, token := walk(t, c, "seg", "segmentation", "image")

	first := servedCert(t, p, endpoint)
	require.WithinDuration(t, time.Now().Add(validity), first.NotAfter, validity, "short-lived certificate")
	st := deploymentState(t, p, id)
	require.Equal(t, first.NotAfter.UTC(), st.Cert.NotAfter.UTC())
	handle := st.Live.Handle
	before := servingProcess(t, p, data, handle)

	// Predictions on fresh connections (each a new TLS handshake) while the
	// certificate is renewed: none may fail.
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: p.CA.Pool()},
	}}
	load := startPredictLoad(hc, endpoint, token, samplePNG(t, 32, 24), 1, 150*time.Millisecond)

	// Renewal is due at NotAfter - validity/3; allow the schedule and the
	// reload their time on a loaded machine, but well before expiry.
	var renewed *x509.Certificate
	deadline := first.NotAfter.Add(-5 * time.Second)
	for time.Now().Before(deadline) {
		cur := servedCert(t, p, endpoint)
		if cur.SerialNumber.Cmp(first.SerialNumber) != 0 {
			renewed = cur
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	okBefore := load.ok.Load()
	time.Sleep(2 * time.Second) // predictions on the renewed certificate too
	load.wait()
	require.NotNil(t, renewed, "the endpoint still served the first certificate (serial %x) near its expiry", first.SerialNumber)
	t.Logf("served serial %x (until %s) -> %x (until %s) with %s of the first left; %d predictions ok, %d failed",
		first.SerialNumber, first.NotAfter.Format(time.TimeOnly), renewed.SerialNumber, renewed.NotAfter.Format(time.TimeOnly),
		time.Until(first.NotAfter).Round(time.Second), load.ok.Load(), load.failed.Load())
	require.True(t, renewed.NotAfter.After(first.NotAfter), "renewed certificate expires later: %s vs %s", renewed.NotAfter, first.NotAfter)
	require.Equal(t, first.DNSNames, renewed.DNSNames)
	require.NotEqual(t, first.PublicKey, renewed.PublicKey, "a new key")
	require.Zero(t, load.failed.Load(), "predictions failed during renewal (first: %v)", load.firstErr.Load())
	require.Greater(t, okBefore, int64(0))
	require.Greater(t, load.ok.Load(), okBefore, "predictions after the renewal")

	// Same process, no restart.
	require.Equal(t, before, servingProcess(t, p, data, handle), "the same process serves")

	// The workflow recorded the renewal and the new expiry.
	require.Eventually(t, func() bool {
		st = deploymentState(t, p, id)
		return !st.Cert.NotAfter.Before(renewed.NotAfter.Add(-time.Second))
	}, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, workflows.StatusLive, st.Status)
	require.Equal(t, handle, st.Live.Handle)
	var rec *workflows.StepRecord
	for i := range st.History {
		if st.History[i].Step == workflows.StepRenewCertificate {
			rec = &st.History[i]
			break
		}
	}
	require.NotNil(t, rec, "history: %+v", st.History)
	require.True(t, rec.OK, rec.Message)
	require.Contains(t, rec.Message, "reloaded in place")
	r := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), "certificate renewed for")
	require.Contains(t, string(r.Raw), "without a restart")

	// The schedule the worker made: interval, overlap policy, runs taken.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := p.Client.ScheduleClient().GetHandle(sctx, workflows.RenewalScheduleID)
	desc, err := h.Describe(sctx)
	require.NoError(t, err)
	require.Equal(t, 3*time.Second, desc.Schedule.Spec.Intervals[0].Every)
	require.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, desc.Schedule.Policy.Overlap)
	require.Greater(t, desc.Info.NumActions, 1)
	// A recent run of the schedule, finished, signalled this deployment. Its
	// history and the deployment's (with the renewal step) replay with the
	// current code and, with ALGOCLOUD_CAPTURE_HISTORIES=1, go to the replay
	// corpus: the deployment's takes the cert-renewal change's branch.
	var signaller string
	for i := len(desc.Info.RecentActions) - 1; i >= 0 && signaller == ""; i-- {
		run := desc.Info.RecentActions[i].StartWorkflowResult
		if run == nil {
			continue
		}
		evs := fetchHistory(t, p.Client, run.WorkflowID).Events
		if evs[len(evs)-1].GetWorkflowExecutionCompletedEventAttributes() == nil {
			continue
		}
		for _, ev := range evs {
			if s := ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes(); s != nil &&
				s.GetWorkflowExecution().GetWorkflowId() == workflows.WorkflowID(id) && s.GetSignalName() == workflows.SignalRenewCertificate {
				signaller = run.WorkflowID
			}
		}
	}
	require.NotEmpty(t, signaller, "no finished recent RenewCertificates run signalled %s: %+v", id, desc.Info.RecentActions)
	captureHistory(t, p, signaller, "renew-certificates.json")
	renewal := captureHistory(t, p, workflows.WorkflowID(id), "cert-renewal-after.json")
	require.Contains(t, versionMarkers(t, renewal), "cert-renewal")
	// A worker starting again (or with another interval) keeps one schedule.
	require.NoError(t, worker.EnsureRenewalSchedule(sctx, p.Client, time.Hour, slog.Default()))
	desc, err = h.Describe(sctx)
	require.NoError(t, err)
	require.Len(t, desc.Schedule.Spec.Intervals, 1)
	require.Equal(t, time.Hour, desc.Schedule.Spec.Intervals[0].Every)
}

// TestCertificateRenewalEC2 renews a short-lived local-CA certificate of an
// endpoint on EC2 (moto) with the stand-in for the instance, which runs the
// user data's certfetch.sh every second as its systemd timer would (every
// minute there): the renewal republishes the bundle and publishes the
// certificate object, the stand-in installs it, and the same algocloud-infer
// process (same pid, no StopInstances or StartInstances seen by the proxy,
// one boot) serves the new certificate while predictions on fresh
// connections keep succeeding.
func TestCertificateRenewalEC2(t *testing.T) { testCertificateRenewalEC2(t, false) }

// TestCertificateRenewalEC2Legacy is the same for an instance launched
// before the certificate pick-up (its algocloud:cert-pickup tag removed, and
// no timer running): the renewal restarts the service instead (the
// instance stops and starts; the stand-in, like systemd at boot, runs the
// user data's fetch.sh again), after which the endpoint serves the new
// certificate.
func TestCertificateRenewalEC2Legacy(t *testing.T) { testCertificateRenewalEC2(t, true) }

func testCertificateRenewalEC2(t *testing.T, legacy bool) {
	const validity = 2 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	w := newCloudWorld(t, ctx)
	port := testenv.FreePort(t)
	inst := &instanceStandIn{si: &standIn{home: t.TempDir(), listen: "127.0.0.1:" + strconv.Itoa(port)}}
	defer inst.shutdown()
	aws := inst.proxy(t, w.moto.Endpoint)
	data := t.TempDir()
	p := startPlatform(t, data, func(o *platform.Options) {
		o.Domain = "algocloud.test"
		o.CertValidity = validity
		o.CertRenewEvery = 3 * time.Second
		o.Cloud = ec2Options(w, aws, port, inst.si.listen)
		// The worker's path's certificate pick-up (fetch.sh's timer); an
		// agent's instance: TestEC2AgentCertificateRenewal.
		o.Cloud.EC2Agents = false
	})
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Segmentation on EC2", "api_name": "seg", "input": "image", "output": "image", "threads": 1,
		"compute": "cpu", "instance_type": "t3.small", "region": "us-east-1",
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	for _, s := range []string{"provision", "fetch_code", "install_requirements", "test"} {
		var body any
		if s == "fetch_code" {
			body = map[string]any{"git_url": repo, "ref": "main"}
		}
		r = c.Step(id, s, body)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", s, r.Raw)
	}
	instanceID := deploymentState(t, p, id).Server.ID
	attr, err := w.ec2.DescribeInstanceAttribute(ctx, &awsec2.DescribeInstanceAttributeInput{
		InstanceId: awssdk.String(instanceID), Attribute: ec2types.InstanceAttributeNameUserData,
	})
	require.NoError(t, err)
	userData, err := base64.StdEncoding.DecodeString(awssdk.ToString(attr.UserData.Value))
	require.NoError(t, err)
	require.True(t, ec2.HasCertPickup(string(userData)), "the user data installs the certificate pick-up timer")
	desc, err := w.ec2.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{instanceID}})
	require.NoError(t, err)
	require.Contains(t, desc.Reservations[0].Instances[0].Tags, ec2types.Tag{Key: awssdk.String(ec2.TagCertPickup), Value: awssdk.String("1")})
	inst.setUserData(string(userData))
	if legacy {
		// An instance from before the pick-up: no tag, no timer.
		_, err := w.ec2.DeleteTags(ctx, &awsec2.DeleteTagsInput{
			Resources: []string{instanceID}, Tags: []ec2types.Tag{{Key: awssdk.String(ec2.TagCertPickup)}},
		})
		require.NoError(t, err)
	} else {
		inst.runPickup(t, time.Second)
	}

	// Complete publishes the bundle; the instance's first boot fetches it.
	done := make(chan resp, 1)
	go func() { done <- c.Step(id, "complete", nil) }()
	require.Eventually(t, func() bool {
		_, err := w.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: awssdk.String(w.bucket), Key: awssdk.String("algocloud/" + id + "/bundle.enc")})
		return err == nil
	}, 3*time.Minute, 50*time.Millisecond, "bundle published")
	inst.start()
	r = <-done
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	endpoint, token := r.Str("endpoint"), r.Str("token")
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: p.CA.Pool(), MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, inst.si.listen)
		},
	}}
	served := func() *x509.Certificate {
		res, out := predict(t, hc, endpoint, token, samplePNG(t, 16, 16))
		require.Equal(t, http.StatusOK, res.StatusCode, string(out))
		return res.TLS.PeerCertificates[0]
	}
	first := served()
	require.Equal(t, []string{"seg.algocloud.test"}, first.DNSNames)
	pid := inst.pid()
	require.NotZero(t, pid)
	stopsBefore, startsBefore := inst.stops.Load(), inst.starts.Load()

	// Predictions on fresh connections (each a new TLS handshake) while the
	// certificate is renewed: in place, none may fail.
	load := startPredictLoad(hc, endpoint, token, samplePNG(t, 16, 16), 1, 200*time.Millisecond)

	var renewed *x509.Certificate
	for time.Now().Before(first.NotAfter.Add(-5 * time.Second)) {
		require.NoError(t, inst.err())
		st := deploymentState(t, p, id)
		if st.Cert.NotAfter.After(first.NotAfter) && st.Busy == "" {
			renewed = served()
			break
		}
		time.Sleep(time.Second)
	}
	load.wait()
	require.NotNil(t, renewed, "no renewal before the first certificate's expiry")
	require.NotEqual(t, 0, renewed.SerialNumber.Cmp(first.SerialNumber), "the endpoint serves the renewed certificate")
	require.True(t, renewed.NotAfter.After(first.NotAfter))
	st := deploymentState(t, p, id)
	require.Equal(t, workflows.StatusLive, st.Status)
	var rec *workflows.StepRecord
	for i := range st.History {
		if st.History[i].Step == workflows.StepRenewCertificate {
			rec = &st.History[i]
		}
	}
	require.NotNil(t, rec, "history: %+v", st.History)
	require.True(t, rec.OK, rec.Message)
	ev := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events", nil)
	require.Equal(t, http.StatusOK, ev.Status, string(ev.Raw))
	require.NotContains(t, string(ev.Raw), "PRIVATE KEY")
	if legacy {
		require.GreaterOrEqual(t, inst.boots.Load(), int64(2), "the service restarted and fetched the bundle again")
		require.Greater(t, inst.stops.Load(), stopsBefore, "StopInstances")
		require.Contains(t, rec.Message, "restarted")
		require.Contains(t, string(ev.Raw), "its instance has no certificate pick-up")
		t.Logf("EC2 (no pick-up): served serial %x -> %x, instance booted %d times; %s", first.SerialNumber, renewed.SerialNumber, inst.boots.Load(), rec.Message)
		return
	}
	require.Equal(t, pid, inst.pid(), "the same algocloud-infer process serves the renewed certificate")
	require.NoError(t, syscall.Kill(pid, 0), "and it still runs")
	require.Equal(t, int64(1), inst.boots.Load(), "one boot")
	require.Equal(t, stopsBefore, inst.stops.Load(), "no StopInstances")
	require.Equal(t, startsBefore, inst.starts.Load(), "no StartInstances")
	require.GreaterOrEqual(t, inst.pickups.Load(), int64(1), "the pick-up script installed the certificate")
	require.Zero(t, load.failed.Load(), "predictions failed during the renewal (first: %v)", load.firstErr.Load())
	require.Positive(t, load.ok.Load())
	require.Contains(t, rec.Message, "reloaded in place")
	require.Contains(t, string(ev.Raw), "renewed certificate published")
	require.Contains(t, string(ev.Raw), "without a restart")
	t.Logf("EC2 in place: served serial %x -> %x with %s of the first left, pid %d throughout, %d pick-ups, %d predictions ok, 0 failed; %s",
		first.SerialNumber, renewed.SerialNumber, time.Until(first.NotAfter).Round(time.Second), pid, inst.pickups.Load(), load.ok.Load(), rec.Message)

	// Token rotation on EC2: the new hash changes the bundle, so the
	// endpoint restarts with it (the pick-up does not carry tokens); by the
	// time the API answers, the old token is refused and the new one works.
	rot := c.Do(http.MethodPost, "/api/v1/deployments/"+id+"/token", nil)
	require.Equal(t, http.StatusCreated, rot.Status, string(rot.Raw))
	newToken := rot.Str("token")
	res, out := predict(t, hc, endpoint, token, samplePNG(t, 16, 16))
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, string(out))
	res, out = predict(t, hc, endpoint, newToken, samplePNG(t, 16, 16))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	require.Equal(t, workflows.StatusLive, deploymentState(t, p, id).Status)
	t.Logf("EC2 token rotation: instance booted %d times", inst.boots.Load())
}

// predictLoad is clients predicting in a loop, each request on a fresh
// connection where hc keeps none (a new TLS handshake each): the renewal
// tests' load, which must see no failure while the certificate changes.
type predictLoad struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value // the first failure's text
	stop       chan struct{}
	wg         sync.WaitGroup
}

// startPredictLoad starts n clients posting body to endpoint's /predict
// with token through hc, each one request every period; wait stops them.
func startPredictLoad(hc *http.Client, endpoint, token string, body []byte, n int, period time.Duration) *predictLoad {
	l := &predictLoad{stop: make(chan struct{})}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(period):
				}
				if err := predictOnce(hc, endpoint, token, body); err != nil {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

// wait stops the clients and waits for them.
func (l *predictLoad) wait() {
	close(l.stop)
	l.wg.Wait()
}

// predictOnce posts body to the endpoint's /predict and wants 200 (for
// goroutines: it returns errors instead of failing the test).
func predictOnce(hc *http.Client, endpoint, token string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, endpoint+"/predict", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("predict: HTTP %d", res.StatusCode)
	}
	return nil
}

// instanceStandIn plays the instance's power state for the stand-in: the
// platform's AWS calls go through proxy, and StopInstances stops the
// stand-in's server (before moto hears of it) while StartInstances boots it
// again (fetch.sh, then algocloud-infer), as systemd would on the instance.
// runPickup plays the instance's certificate pick-up timer.
type instanceStandIn struct {
	si            *standIn
	mu            sync.Mutex
	userData      string
	running       bool
	bootErr       error
	boots         atomic.Int64
	stops, starts atomic.Int64 // StopInstances and StartInstances seen by the proxy
	pickups       atomic.Int64 // certificates certfetch.sh installed
}

// pid is the stand-in's algocloud-infer process, or 0.
func (s *instanceStandIn) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.si.cmd == nil || s.si.cmd.Process == nil {
		return 0
	}
	return s.si.cmd.Process.Pid
}

// runPickup runs the user data's certfetch.sh every interval while the
// stand-in runs, as the instance's systemd timer runs it (every minute
// there), until the test ends. Its failures (no certificate object before
// the first renewal) are what the timer would log; the files stay.
func (s *instanceStandIn) runPickup(t *testing.T, every time.Duration) {
	script, err := ec2.CertFetchScript(s.userData)
	require.NoError(t, err)
	stop, done := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
			s.mu.Lock()
			running := s.running
			s.mu.Unlock()
			if !running {
				continue
			}
			cmd := exec.Command("bash", "-c", script)
			cmd.Env = append(os.Environ(), "ALGOCLOUD_HOME="+s.si.home)
			out, err := cmd.CombinedOutput()
			if err == nil && strings.Contains(string(out), "installed certificate version") {
				s.pickups.Add(1)
			}
		}
	}()
}

func (s *instanceStandIn) setUserData(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.userData = u
}

// start boots the stand-in unless it runs.
func (s *instanceStandIn) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running || s.userData == "" {
		return
	}
	if err := s.si.boot(s.userData); err != nil {
		s.bootErr = err
		return
	}
	s.running = true
	s.boots.Add(1)
}

// shutdown stops the stand-in's server.
func (s *instanceStandIn) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.si.stop()
	s.running = false
}

func (s *instanceStandIn) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bootErr
}

// proxy serves moto's API at a new URL, watching EC2 actions.
func (s *instanceStandIn) proxy(t *testing.T, motoEndpoint string) string {
	u, err := url.Parse(motoEndpoint)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var action string
		if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			q, _ := url.ParseQuery(string(body))
			action = q.Get("Action")
		}
		if action == "StopInstances" {
			s.stops.Add(1)
			s.shutdown()
		}
		rp.ServeHTTP(w, r)
		if action == "StartInstances" {
			s.starts.Add(1)
			go s.start()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// boot starts the stand-in (standIn.start, for a test, wraps it): it returns
// errors instead of failing the test, so goroutines can use it, and leaves
// stopping to the caller.
func (s *standIn) boot(userData string) error {
	script, err := ec2.FetchScript(userData)
	if err != nil {
		return err
	}
	fetch := exec.Command("bash", "-c", script)
	fetch.Env = append(os.Environ(), "ALGOCLOUD_HOME="+s.home, "ALGOCLOUD_LISTEN="+s.listen)
	out, err := fetch.CombinedOutput()
	if err != nil {
		return fmt.Errorf("fetch.sh: %w: %s", err, out)
	}
	if err := sandboxedVenv(s.home, out); err != nil {
		return err
	}
	s.cmd = exec.Command(filepath.Join(s.home, "bin", "algocloud-infer"), "--config", filepath.Join(s.home, "bundle", "live.json"))
	s.cmd.Dir = s.home
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return s.cmd.Start()
}

// servingProcess names the process that serves a live endpoint and how often
// it was restarted: for a server with an agent, the serving revision of the
// agent's state file; otherwise the provider's service.
func servingProcess(t *testing.T, p *platform.Platform, data string, h compute.Handle) string {
	t.Helper()
	if h.Name != "agent" {
		require.NotZero(t, h.PID)
		st, err := p.Provider.Status(context.Background(), h)
		require.NoError(t, err)
		return fmt.Sprintf("%s, %d restarts", st.Detail, st.Restarts)
	}
	return agentServing(t, filepath.Join(data, "servers", h.ServerID, "agent"))
}
