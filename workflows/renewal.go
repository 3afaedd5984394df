package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/activities/actdef"
)

// Certificate renewal: a Temporal Schedule (RenewalScheduleID, created by the
// worker) starts RenewCertificates every interval; it lists live deployments
// whose certificate is due and signals each one's Deployment workflow, which
// issues a new certificate between steps and has the live endpoint take it up.
const (
	// RenewalScheduleID is the schedule that runs RenewCertificates.
	RenewalScheduleID = "algocloud-certificate-renewal"
	// RenewalWorkflowID is the ID prefix of RenewCertificates runs (the
	// schedule appends the time).
	RenewalWorkflowID = "algocloud-certificate-renewal"
	// SignalRenewCertificate asks a live deployment to renew its certificate
	// (RenewCertificateRequest).
	SignalRenewCertificate = "renew_certificate"
	// StepRenewCertificate is the step a renewal is recorded as in State.History.
	StepRenewCertificate = "renew_certificate"
)

// changeCertRenewal versions the renewal step: histories from before it
// never received the signal, and the marker keeps later changes apart.
const changeCertRenewal = "cert-renewal"

// changeAgentCertReload versions the renewal on a remote server with an
// agent (EC2): the renewed certificate goes to the agent (a serve of the
// serving revision whose Fetch brings the new certificate), which the
// serving revision reloads in place, instead of ReloadCertificate's restart
// with a republished bundle.
const changeAgentCertReload = "agent-cert-reload"

// changeCertOnStart versions the certificate check before a stopped
// deployment starts again (renewal skips deployments that are not live).
const changeCertOnStart = "cert-on-start"

// RenewCertificateRequest asks a deployment to renew its certificate.
// NotAfter is the expiry of the certificate found due: a deployment whose
// certificate expires later has been renewed since, and ignores the request.
// A zero NotAfter (an operator's signal with an empty `{}` input, from the
// Temporal UI or CLI) renews now.
type RenewCertificateRequest struct {
	NotAfter time.Time `json:"not_after"`
}

// RenewInput is the input of RenewCertificates (empty; room for options).
type RenewInput struct{}

// RenewResult is what one RenewCertificates run found and did: every live
// deployment's certificate, and which were asked to renew.
type RenewResult struct {
	Certificates []actdef.CertStatus `json:"certificates"`
	Signalled    []string            `json:"signalled"`
	Failed       []string            `json:"failed,omitempty"`
}

// RenewCertificates lists the live deployments' certificates and signals
// each deployment whose certificate is due to renew it. The renewal itself
// runs in the Deployment workflow, so that it never overlaps a step.
func RenewCertificates(ctx workflow.Context, _ RenewInput) (RenewResult, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 5},
	})
	var res RenewResult
	in := actdef.ListCertificatesInput{WorkflowIDPrefix: WorkflowID(""), Query: QueryState}
	if err := workflow.ExecuteActivity(actx, a.ListCertificates, in).Get(actx, &res.Certificates); err != nil {
		return res, err
	}
	log := workflow.GetLogger(ctx)
	for _, c := range res.Certificates {
		if !c.Due {
			continue
		}
		err := workflow.SignalExternalWorkflow(ctx, WorkflowID(c.DeploymentID), "", SignalRenewCertificate,
			RenewCertificateRequest{NotAfter: c.NotAfter}).Get(ctx, nil)
		if err != nil {
			// Deleted meanwhile, or its workflow is gone: the next run sees.
			log.Warn("signal certificate renewal", "deployment", c.DeploymentID, "error", err)
			res.Failed = append(res.Failed, c.DeploymentID)
			continue
		}
		res.Signalled = append(res.Signalled, c.DeploymentID)
	}
	return res, nil
}

// wantsRenewal reports whether a renewal request applies: the deployment is
// live and its certificate is the one found due (not renewed since), or the
// request names none.
func (d *deployment) wantsRenewal(r RenewCertificateRequest) bool {
	return d.st.Status == StatusLive && d.st.Live != nil && d.st.Serving != nil && d.st.Cert != nil &&
		(r.NotAfter.IsZero() || !d.st.Cert.NotAfter.After(r.NotAfter))
}

// renewCertificate issues a new certificate (IssueCertificate with Force)
// and has the live endpoint take it up (ReloadCertificate: in place for
// local endpoints; on EC2 a republished certificate object the instance's
// timer installs in place, or a restart for instances without it). The state
// takes the new certificate only once the endpoint serves it: until then
// ListCertificates sees the state's certificate differ from the one on disk
// and asks again, so a failed reload is retried by the next schedule run.
func (d *deployment) renewCertificate(ctx workflow.Context) (string, error) {
	actx := activityOptions(ctx, 10*time.Minute, heartbeat, 5)
	var cert actdef.CertInfo
	in := actdef.CertInput{DeploymentID: d.st.DeploymentID, APIName: d.st.Spec.APIName, Server: *d.st.Server, Force: true}
	if err := workflow.ExecuteActivity(actx, a.IssueCertificate, in).Get(actx, &cert); err != nil {
		return "", err
	}
	s := d.st.Serving
	build := d.build(s.Spec, s.Code, s.Install)
	build.Cert = cert
	rin := actdef.ReloadInput{
		Service:  actdef.ServiceInput{Build: build, TokenSHA256: d.st.TokenSHA256},
		Endpoint: d.st.Live.Endpoint,
	}
	if d.onAgent() && d.st.Server.AgentID != "" &&
		workflow.GetVersion(ctx, changeAgentCertReload, workflow.DefaultVersion, 1) == 1 {
		// A remote server's agent: the serving revision is served again
		// with the new certificate; the agent fetches it (sealed) and the
		// revision, already serving, reloads it at its next handshake.
		if _, err := d.serveOnAgentWith(ctx, s, cert); err != nil {
			return "", err
		}
		rin.AgentFetched = true
	}
	var rel actdef.CertReload
	rctx := activityOptions(ctx, 5*time.Minute, heartbeat, 5)
	if err := workflow.ExecuteActivity(rctx, a.ReloadCertificate, rin).Get(rctx, &rel); err != nil {
		return "", err
	}
	d.st.Cert = &cert
	if !rel.InPlace { // restarted: the handle (and, on EC2, the address) may be new
		live := rel.Service
		live.Since = d.st.Live.Since
		d.st.Live = &live
	}
	how := "reloaded in place"
	if rin.AgentFetched {
		how = "reloaded in place by the server's agent"
	}
	if !rel.InPlace {
		how = "endpoint restarted with the new bundle"
	}
	return fmt.Sprintf("certificate renewed for %v, valid until %s (serial %s); %s",
		cert.Names, cert.NotAfter.UTC().Format(time.RFC3339), rel.Serial, how), nil
}

// refreshCertificate runs before a stopped deployment starts again: the
// renewal schedule passes over stopped deployments, so IssueCertificate
// (without Force) reissues the certificate here when it has less than 30
// days left, or returns the current one.
func (d *deployment) refreshCertificate(ctx workflow.Context) error {
	if workflow.GetVersion(ctx, changeCertOnStart, workflow.DefaultVersion, 1) != 1 {
		return nil
	}
	actx := activityOptions(ctx, 10*time.Minute, heartbeat, 5)
	var cert actdef.CertInfo
	in := actdef.CertInput{DeploymentID: d.st.DeploymentID, APIName: d.st.Spec.APIName, Server: *d.st.Server}
	if err := workflow.ExecuteActivity(actx, a.IssueCertificate, in).Get(actx, &cert); err != nil {
		return err
	}
	d.st.Cert = &cert
	return nil
}
