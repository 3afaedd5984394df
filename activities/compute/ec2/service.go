package ec2

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/algocloud/algocloud/activities/compute"
)

// LiveService is the service name whose Stop stops the instance.
const LiveService = "live"

// serviceTagPrefix + name is the tag marking a service "started" or
// "stopped": the instance's user data runs the service, so the tag is the
// only record of what Start and Stop were asked.
const serviceTagPrefix = "algocloud:service:"

const (
	markStarted = "started"
	markStopped = "stopped"
)

var serviceNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// managed finds instance id and checks it is one of ours; a missing,
// terminated or foreign instance wraps compute.ErrNotFound.
func (p *Provider) managed(ctx context.Context, id string) (string, types.Instance, error) {
	region, inst, err := p.find(ctx, id)
	if err != nil {
		return "", types.Instance{}, err
	}
	if v, _ := tag(inst.Tags, TagManagedBy); v != managedBy {
		return "", types.Instance{}, fmt.Errorf("instance %s is not an algocloud server: %w", id, compute.ErrNotFound)
	}
	return region, inst, nil
}

// Start marks the service started and waits until the instance runs
// (starting it when stopped) and the endpoint answers HealthURL with 200.
// The service itself is run by the instance's user data on boot, so a Start
// of a running, healthy service re-attaches: it returns the same Handle.
// ctx (and StartTimeout) bound the wait; a server that is gone wraps
// compute.ErrNotFound. While the endpoint does not answer, or answers 503
// not_ready, Start keeps waiting; when it answers init_failed (the
// algorithm's __init__ raised, or its model did not load), Start stops the
// service at once (see initFailed) and returns a *compute.PermanentError
// wrapping an *InitFailedError with the server's message and traceback.
func (p *Provider) Start(ctx context.Context, svc compute.ServiceSpec) (compute.Handle, error) {
	if svc.Server.Provider != ProviderName {
		return compute.Handle{}, permanent("start: server %s belongs to provider %q, not %q", svc.Server.ID, svc.Server.Provider, ProviderName)
	}
	if !serviceNameRe.MatchString(svc.Name) {
		return compute.Handle{}, permanent("start: service name %q is not valid", svc.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer cancel()
	id := svc.Server.ID
	region, inst, err := p.managed(ctx, id)
	if err != nil {
		return compute.Handle{}, fmt.Errorf("start %s on %s: %w", svc.Name, id, err)
	}
	if gone(inst) {
		return compute.Handle{}, fmt.Errorf("start %s: instance %s is %s: %w", svc.Name, id, state(inst), compute.ErrNotFound)
	}
	if v, _ := tag(inst.Tags, serviceTagPrefix+svc.Name); v != markStarted {
		if err := p.mark(ctx, region, id, svc.Name, markStarted); err != nil {
			return compute.Handle{}, err
		}
	}
	if inst, err = p.waitRunning(ctx, region, id, false); err != nil {
		return compute.Handle{}, fmt.Errorf("start %s on %s: %w", svc.Name, id, err)
	}
	port := svc.Port
	if port == 0 {
		port = svc.Server.Port
	}
	if port == 0 {
		port = p.opts.Port
	}
	srv := svc.Server
	srv.Host, srv.Port = host(inst), port
	if err := p.waitHealthy(ctx, p.opts.HealthURL(srv), p.healthClient(inst)); err != nil {
		var ie *InitFailedError
		if errors.As(err, &ie) {
			return compute.Handle{}, p.initFailed(ctx, svc, ie)
		}
		return compute.Handle{}, fmt.Errorf("start %s on %s: %w", svc.Name, id, err)
	}
	return compute.Handle{
		Provider: ProviderName, ServerID: id, Name: svc.Name,
		Address: net.JoinHostPort(srv.Host, strconv.Itoa(port)),
	}, nil
}

// Status maps the instance's state: running is Running, pending Unknown,
// stopping or stopped Exited, and a service marked stopped is Exited. It
// does not dial the endpoint. A service never started, or a server gone,
// wraps compute.ErrNotFound.
func (p *Provider) Status(ctx context.Context, h compute.Handle) (compute.Status, error) {
	if h.Provider != ProviderName {
		return compute.Status{}, permanent("status: handle of provider %q, not %q", h.Provider, ProviderName)
	}
	_, inst, err := p.managed(ctx, h.ServerID)
	if err != nil {
		return compute.Status{}, fmt.Errorf("status of %s on %s: %w", h.Name, h.ServerID, err)
	}
	if gone(inst) {
		return compute.Status{}, fmt.Errorf("status of %s: instance %s is %s: %w", h.Name, h.ServerID, state(inst), compute.ErrNotFound)
	}
	mark, ok := tag(inst.Tags, serviceTagPrefix+h.Name)
	if !ok {
		return compute.Status{}, fmt.Errorf("status of %s on %s: never started: %w", h.Name, h.ServerID, compute.ErrNotFound)
	}
	if mark == markStopped {
		return compute.Status{State: compute.Exited, Detail: "service stopped"}, nil
	}
	detail := "instance " + string(state(inst))
	if inst.StateReason != nil && aws.ToString(inst.StateReason.Message) != "" {
		detail += ": " + aws.ToString(inst.StateReason.Message)
	}
	switch state(inst) {
	case types.InstanceStateNameRunning:
		return compute.Status{State: compute.Running}, nil
	case types.InstanceStateNameStopping, types.InstanceStateNameStopped:
		return compute.Status{State: compute.Exited, Detail: detail}, nil
	default:
		return compute.Status{State: compute.Unknown, Detail: detail}, nil
	}
}

// Stop marks the service stopped. For the live service it also stops the
// instance: the endpoint is paused and its compute no longer billed, and
// Start starts the instance again (its boot fetches the current bundle, which
// is how a redeploy reaches it). Stop does not wait for "stopped"; Start
// waits for it before starting again. Stopping a service that was never
// started, or on a server that is gone, is a no-op.
func (p *Provider) Stop(ctx context.Context, h compute.Handle) error {
	if h.Provider != ProviderName {
		return permanent("stop: handle of provider %q, not %q", h.Provider, ProviderName)
	}
	region, inst, err := p.managed(ctx, h.ServerID)
	if errors.Is(err, compute.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop %s on %s: %w", h.Name, h.ServerID, err)
	}
	mark, ok := tag(inst.Tags, serviceTagPrefix+h.Name)
	if gone(inst) || !ok {
		return nil
	}
	if mark != markStopped {
		if err := p.mark(ctx, region, h.ServerID, h.Name, markStopped); err != nil {
			return err
		}
	}
	if h.Name != LiveService {
		return nil
	}
	switch state(inst) {
	case types.InstanceStateNamePending, types.InstanceStateNameRunning:
		_, err := p.client(region).StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{h.ServerID}})
		if err != nil && !isCode(err, codeIncorrectState) && !isNotFound(err) {
			return classify("stop instance "+h.ServerID, err)
		}
		p.log.Info("instance stopped", "instance", h.ServerID)
	}
	return nil
}

// Release terminates the instance, waits until it is terminated and deletes
// its security group (retrying while EC2 still counts the dead instance as a
// user). Releasing a server that is gone, or was never made, is a no-op; an
// instance without the algocloud:managed-by tag is never touched.
func (p *Provider) Release(ctx context.Context, s compute.Server) error {
	if s.Provider != "" && s.Provider != ProviderName {
		return permanent("release: server %s belongs to provider %q, not %q", s.ID, s.Provider, ProviderName)
	}
	region, inst, err := p.managed(ctx, s.ID)
	if errors.Is(err, compute.ErrNotFound) {
		return p.removeWorkdir(s)
	}
	if err != nil {
		return fmt.Errorf("release %s: %w", s.ID, err)
	}
	c := p.client(region)
	groups, err := groupsOf(ctx, c, inst)
	if err != nil {
		return fmt.Errorf("release %s: %w", s.ID, err)
	}
	if state(inst) != types.InstanceStateNameTerminated {
		_, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{s.ID}})
		if err != nil && !isNotFound(err) {
			return classify("terminate instance "+s.ID, err)
		}
		err = p.poll(ctx, func() (bool, error) {
			inst, err := p.describe(ctx, region, s.ID)
			if errors.Is(err, compute.ErrNotFound) {
				return true, nil
			}
			return err == nil && state(inst) == types.InstanceStateNameTerminated, err
		})
		if err != nil {
			return fmt.Errorf("release %s: wait for termination: %w", s.ID, err)
		}
		p.log.Info("instance terminated", "instance", s.ID)
	}
	if err := p.deleteGroups(ctx, c, groups); err != nil {
		return fmt.Errorf("release %s: %w", s.ID, err)
	}
	return p.removeWorkdir(s)
}

// removeWorkdir deletes the server's staging folder, and nothing that is not
// directly under StagingDir.
func (p *Provider) removeWorkdir(s compute.Server) error {
	if p.opts.StagingDir == "" || s.Workdir == "" || filepath.Dir(s.Workdir) != p.opts.StagingDir {
		return nil
	}
	if err := os.RemoveAll(s.Workdir); err != nil {
		return fmt.Errorf("release %s: %w", s.ID, err)
	}
	return nil
}

// mark records that service name is started or stopped on the instance.
func (p *Provider) mark(ctx context.Context, region, id, name, value string) error {
	_, err := p.client(region).CreateTags(ctx, &ec2.CreateTagsInput{
		Resources: []string{id},
		Tags:      []types.Tag{{Key: aws.String(serviceTagPrefix + name), Value: aws.String(value)}},
	})
	return classify(fmt.Sprintf("mark service %s %s on %s", name, value, id), err)
}

// waitRunning waits until instance id runs and has an address, starting it
// when it is stopped. justLaunched tolerates InvalidInstanceID.NotFound
// (EC2 is eventually consistent right after RunInstances). An instance that
// terminates meanwhile wraps compute.ErrNotFound.
func (p *Provider) waitRunning(ctx context.Context, region, id string, justLaunched bool) (types.Instance, error) {
	var inst types.Instance
	started := false
	err := p.poll(ctx, func() (bool, error) {
		var err error
		inst, err = p.describe(ctx, region, id)
		if errors.Is(err, compute.ErrNotFound) && justLaunched {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		switch st := state(inst); {
		case gone(inst):
			reason := ""
			if inst.StateReason != nil {
				reason = ": " + aws.ToString(inst.StateReason.Message)
			}
			return false, fmt.Errorf("instance %s is %s%s: %w", id, st, reason, compute.ErrNotFound)
		case st == types.InstanceStateNameStopped && !started:
			_, err := p.client(region).StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
			if err != nil && !isCode(err, codeIncorrectState) {
				return false, classify("start instance "+id, err)
			}
			started = true
			p.log.Info("instance started", "instance", id)
			return false, nil
		case st == types.InstanceStateNameRunning:
			return host(inst) != "", nil
		}
		return false, nil // pending, stopping, or stopped with a start under way
	})
	return inst, err
}

// healthClient is HealthClient, set to verify the endpoint's certificate
// for <api-name>.<Domain> when Domain is set (and the client's transport is
// an *http.Transport, or the default).
func (p *Provider) healthClient(inst types.Instance) *http.Client {
	api, ok := tag(inst.Tags, TagAPIName)
	if p.opts.Domain == "" || !ok || api == "" {
		return p.opts.HealthClient
	}
	base, ok := p.opts.HealthClient.Transport.(*http.Transport)
	if p.opts.HealthClient.Transport == nil {
		base, ok = http.DefaultTransport.(*http.Transport)
	}
	if !ok {
		return p.opts.HealthClient
	}
	t := base.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t.TLSClientConfig.ServerName = api + "." + p.opts.Domain
	c := *p.opts.HealthClient
	c.Transport = t
	return &c
}

// initFailed stops service svc, whose endpoint answered init_failed, and
// returns the permanent error Start reports. Stopping matters: the inference
// server keeps answering init_failed until it is restarted, and for the live
// service Stop stops the instance, so that the next Start (after a fix, with
// a new bundle) boots it and the boot fetches the current code, and a
// broken endpoint is not billed meanwhile. A failed stop is said in the
// error; Release (Delete) cleans up either way.
func (p *Provider) initFailed(ctx context.Context, svc compute.ServiceSpec, ie *InitFailedError) error {
	id := svc.Server.ID
	p.log.Warn("endpoint's algorithm failed to load; stopping the service", "instance", id, "service", svc.Name, "message", ie.Message)
	what := "service stopped"
	if svc.Name == LiveService {
		what = "instance stopped; the next start boots it with the current bundle"
	}
	if err := p.Stop(ctx, compute.Handle{Provider: ProviderName, ServerID: id, Name: svc.Name}); err != nil {
		what = fmt.Sprintf("stopping it failed: %v", err)
	}
	return &compute.PermanentError{Err: fmt.Errorf("start %s on %s (%s): %w", svc.Name, id, what, ie)}
}

// InitFailedError is the endpoint's own report, on its health URL, that the
// algorithm cannot load: the inference server's 503 with code init_failed
// (aai_main.py's import or __init__ raised, or the ONNX model did not load).
// It stays so until the server restarts, so waiting longer cannot help.
type InitFailedError struct {
	// Message is the server's message (for Python, the exception).
	Message string
	// Traceback is the Python traceback, when the server sent one.
	Traceback string
}

// Error says that the algorithm failed to load on the instance, with the
// server's message and the traceback's last lines.
func (e *InitFailedError) Error() string {
	msg := "the algorithm failed to load on the instance: " + e.Message
	if e.Traceback != "" {
		msg += "\n" + e.Traceback
	}
	return msg
}

// initFailedCode is inferapi.CodeInitFailed, the error code of the
// inference server's /readyz when the algorithm failed to load (this package
// does not link the inference server).
const initFailedCode = "init_failed"

// Bounds on what a health answer may bring into errors (and so into the
// workflow's history and the step's error): a traceback's end says the most.
const (
	maxHealthBody    = 1 << 20
	maxInitMessage   = 2 << 10
	maxInitTraceback = 8 << 10
)

// waitHealthy polls url with client until it answers 200, or answers
// init_failed (an *InitFailedError, returned at once).
func (p *Provider) waitHealthy(ctx context.Context, url string, client *http.Client) error {
	if t, ok := client.Transport.(*http.Transport); ok && client != p.opts.HealthClient {
		defer t.CloseIdleConnections()
	}
	var last error
	err := p.poll(ctx, func() (bool, error) {
		err := p.health(ctx, url, client)
		var ie *InitFailedError
		if errors.As(err, &ie) {
			return false, err
		}
		if err != nil && ctx.Err() == nil {
			last = err // keep the endpoint's answer, not the cancellation
		}
		return err == nil, nil
	})
	var ie *InitFailedError
	if errors.As(err, &ie) {
		return err
	}
	if err != nil {
		return fmt.Errorf("endpoint health %s never answered (last: %v): %w", url, last, err)
	}
	return nil
}

// health asks url once: nil on 200, an *InitFailedError when the endpoint
// says its algorithm failed to load, any other error while it is not ready
// (booting, still loading: 503 not_ready, or not listening yet).
func (p *Provider) health(ctx context.Context, url string, client *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	if ie := initFailure(resp.StatusCode, body); ie != nil {
		return ie
	}
	return fmt.Errorf("health: %s", resp.Status)
}

// initFailure reads the inference server's JSON error body: an
// *InitFailedError when it is a 503 with code init_failed, else nil.
func initFailure(status int, body []byte) *InitFailedError {
	if status != http.StatusServiceUnavailable {
		return nil
	}
	var e struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Traceback string `json:"traceback"`
	}
	if json.Unmarshal(body, &e) != nil || e.Code != initFailedCode {
		return nil
	}
	msg := strings.TrimSpace(e.Message)
	if msg == "" {
		msg = "no message"
	}
	return &InitFailedError{Message: lastBytes(msg, maxInitMessage), Traceback: lastBytes(strings.TrimSpace(e.Traceback), maxInitTraceback)}
}

// lastBytes is s, or its last n bytes (from a line start when one is near)
// after a marker.
func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := s[len(s)-n:]
	if i := strings.IndexByte(cut, '\n'); i >= 0 && i < n/4 {
		cut = cut[i+1:]
	}
	return "[...]\n" + strings.ToValidUTF8(cut, "")
}

// defaultHealthURL is the inference server's readiness endpoint on the
// server: 200 once the algorithm loaded, 503 not_ready while it loads, 503
// init_failed when it cannot.
func defaultHealthURL(s compute.Server) string {
	return "https://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) + "/readyz"
}
