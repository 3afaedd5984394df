package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"
)

// changeDNSRecord versions the DNS record activities (UpsertRecord after
// provisioning, DeleteRecord on teardown): histories from before them replay
// without.
const changeDNSRecord = "dns-record"

func (d *deployment) validateProvision(Empty) error {
	if err := d.ready(UpdateProvision); err != nil {
		return err
	}
	if d.st.Server != nil && d.st.Cert != nil {
		return d.reject("already provisioned: server %s", d.st.Server.ID)
	}
	return nil
}

func (d *deployment) provision(ctx workflow.Context, _ Empty) (State, error) {
	err := d.run(ctx, UpdateProvision, func(ctx workflow.Context) (string, error) {
		if d.st.Server == nil {
			actx := activityOptions(ctx, 15*time.Minute, heartbeat, 10)
			var srv = new(compute.Server)
			in := actdef.ProvisionInput{DeploymentID: d.st.DeploymentID, OwnerID: d.st.OwnerID, Spec: d.st.Spec}
			agents := workflow.GetVersion(ctx, changeServerAgent, workflow.DefaultVersion, 1) == 1
			in.Agent = agents
			if err := workflow.ExecuteActivity(actx, a.ProvisionServer, in).Get(actx, srv); err != nil {
				return "", err
			}
			d.st.Server = srv
			if agents {
				d.st.Servers = []compute.Server{*srv}
			}
		}
		cert, err := d.nameAndCertify(ctx)
		if err != nil {
			return "", d.undoProvision(ctx, err)
		}
		d.st.Cert = &cert
		return fmt.Sprintf("server %s at %s, certificate for %v", d.st.Server.ID, d.st.Server.Host, cert.Names), nil
	})
	return d.st, err
}

// nameAndCertify gives the provisioned server its DNS record (when the
// platform manages DNS) and its certificate.
func (d *deployment) nameAndCertify(ctx workflow.Context) (actdef.CertInfo, error) {
	// The address record comes before the certificate: an ACME CA validating
	// HTTP-01 looks the name up.
	if d.st.DNS == nil && workflow.GetVersion(ctx, changeDNSRecord, workflow.DefaultVersion, 1) == 1 {
		actx := activityOptions(ctx, 10*time.Minute, 0, 10)
		if d.outcomes { // a DNS API may wait minutes for its change: it heartbeats
			actx = activityOptions(ctx, 10*time.Minute, heartbeat, 10)
		}
		var rec actdef.DNSRecord
		in := actdef.DNSInput{DeploymentID: d.st.DeploymentID, APIName: d.st.Spec.APIName, Server: *d.st.Server}
		if err := workflow.ExecuteActivity(actx, a.UpsertRecord, in).Get(actx, &rec); err != nil {
			return actdef.CertInfo{}, err
		}
		if rec.Name != "" {
			d.st.DNS = &rec
		}
	}
	// ACME issuance waits for DNS and the CA: minutes, heartbeating.
	actx := activityOptions(ctx, 10*time.Minute, heartbeat, 5)
	var cert actdef.CertInfo
	in := actdef.CertInput{DeploymentID: d.st.DeploymentID, APIName: d.st.Spec.APIName, Server: *d.st.Server}
	err := workflow.ExecuteActivity(actx, a.IssueCertificate, in).Get(actx, &cert)
	return cert, err
}

// changeProvisionSaga versions undoing a provision that failed for good:
// histories from before it replay without the compensations.
const changeProvisionSaga = "provision-saga"

// ProvisionUndoneErrorType is the Temporal application error type (not a
// sentinel error; its value is in histories) of a provision step that failed for
// good and was compensated (or tried to be).
const ProvisionUndoneErrorType = "ProvisionUndone"

// undoProvision is the provision step's compensation: its DNS record or
// certificate failed for good (every retry spent, or a non-retryable error),
// so the record and the server it made are removed again, and nothing of a
// half-provisioned deployment keeps running (or costing) until the author
// retries Provision, which starts afresh, or deletes. A compensation that
// fails itself leaves its part in the state, for Delete to finish; the
// step's error then says so.
func (d *deployment) undoProvision(ctx workflow.Context, cause error) error {
	if workflow.GetVersion(ctx, changeProvisionSaga, workflow.DefaultVersion, 1) != 1 {
		return cause
	}
	actx := activityOptions(ctx, 10*time.Minute, heartbeat, 10)
	var undone []string
	if d.st.DNS != nil {
		if err := workflow.ExecuteActivity(actx, a.DeleteRecord, *d.st.DNS).Get(actx, nil); err != nil {
			return undoFailed(cause, "DNS record "+d.st.DNS.Name, err)
		}
		undone = append(undone, "DNS record "+d.st.DNS.Name)
		d.st.DNS = nil
	}
	if err := workflow.ExecuteActivity(actx, a.ReleaseServer, *d.st.Server).Get(actx, nil); err != nil {
		return undoFailed(cause, "server "+d.st.Server.ID, err)
	}
	undone = append(undone, "server "+d.st.Server.ID)
	d.st.Server, d.st.Servers = nil, nil
	return temporal.NewApplicationError(fmt.Sprintf("%s (undone: %s released; Provision starts afresh)",
		errorMessage(cause), strings.Join(undone, ", ")), ProvisionUndoneErrorType)
}

func undoFailed(cause error, what string, err error) error {
	return temporal.NewApplicationError(fmt.Sprintf("%s; undoing it failed too (%s, left for Delete): %s",
		errorMessage(cause), what, errorMessage(err)), ProvisionUndoneErrorType)
}

func (d *deployment) validateFetchCode(r FetchCodeRequest) error {
	if err := d.ready(UpdateFetchCode); err != nil {
		return err
	}
	if d.st.Server == nil || d.st.Cert == nil {
		return d.reject("provision the server before fetching code")
	}
	n := 0
	for _, set := range []bool{r.GitURL != "", r.Archive != nil, r.Edit != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return d.reject("give exactly one code source: git_url, an uploaded archive or an edit")
	}
	// An edit is of the current revision only: one made from an older one
	// would silently undo whatever came since. (Validators do not run on
	// replay, so older histories are unaffected.)
	if r.Edit != nil {
		if d.st.Code == nil {
			return d.reject("no code to edit: fetch code first")
		}
		if base := r.Edit.Base.Revision; base != d.st.Code.Revision {
			return d.reject("the code changed since you opened it: this edit is of revision %d, the current one is %d; reload it and edit again", base, d.st.Code.Revision)
		}
		if len(r.Files) == 0 {
			return d.reject("an edit needs at least one changed file")
		}
	}
	return nil
}

func (d *deployment) fetchCode(ctx workflow.Context, r FetchCodeRequest) (State, error) {
	err := d.run(ctx, UpdateFetchCode, func(ctx workflow.Context) (string, error) {
		rev := d.st.Revisions + 1
		actx := activityOptions(ctx, 15*time.Minute, heartbeat, 3)
		var code actdef.CodeInfo
		in := actdef.FetchCodeInput{DeploymentID: d.st.DeploymentID, Server: *d.st.Server, Spec: d.st.Spec, Source: r, Revision: rev}
		if err := workflow.ExecuteActivity(actx, a.FetchCode, in).Get(actx, &code); err != nil {
			return "", err
		}
		d.st.Revisions = rev
		d.st.Code = &code
		msg := fmt.Sprintf("code revision %d from %s", rev, code.Source)
		if code.Commit != "" {
			msg += " at " + code.Commit
		}
		if code.GeneratedMain {
			msg += "; aai_main.py generated from the skeleton"
		}
		return msg, nil
	})
	return d.st, err
}

func (d *deployment) validateInstall(r InstallRequest) error {
	if err := d.ready(UpdateInstall); err != nil {
		return err
	}
	if d.st.Code == nil {
		return d.reject("fetch code before installing requirements")
	}
	if r.RequirementsTxt != nil && len(*r.RequirementsTxt) > 64<<10 {
		return d.reject("requirements_txt is over 64 KiB")
	}
	return nil
}

func (d *deployment) install(ctx workflow.Context, r InstallRequest) (State, error) {
	err := d.run(ctx, UpdateInstall, func(ctx workflow.Context) (string, error) {
		revision := 1
		if d.st.Install != nil {
			revision = d.st.Install.Revision + 1
		}
		var info actdef.InstallInfo
		if d.onAgent() {
			var err error
			if info, err = d.installOnAgent(ctx, r, revision); err != nil {
				return "", err
			}
		} else {
			actx := activityOptions(ctx, 30*time.Minute, heartbeat, 3)
			in := actdef.InstallInput{DeploymentID: d.st.DeploymentID, Server: *d.st.Server, Spec: d.st.Spec, Code: *d.st.Code, RequirementsTxt: r.RequirementsTxt}
			if err := workflow.ExecuteActivity(actx, a.InstallRequirements, in).Get(actx, &info); err != nil {
				return "", err
			}
		}
		info.Revision = revision
		if r.RequirementsTxt != nil {
			d.st.Code.Requirements = info.Requirements
		}
		d.st.Install = &info
		return fmt.Sprintf("%d requirement(s) installed", len(info.Requirements)), nil
	})
	return d.st, err
}

func (d *deployment) validateTest(TestRequest) error {
	if err := d.ready(UpdateTest); err != nil {
		return err
	}
	if d.st.Code == nil || d.st.Install == nil || d.st.Install.CodeRevision != d.st.Code.Revision {
		return d.reject("install requirements for the current code before testing")
	}
	return nil
}

func (d *deployment) test(ctx workflow.Context, _ TestRequest) (State, error) {
	err := d.run(ctx, UpdateTest, func(ctx workflow.Context) (string, error) {
		var info actdef.TestInfo
		if d.onAgent() {
			var err error
			if info, err = d.testOnAgent(ctx); err != nil {
				return "", err
			}
		} else {
			actx := activityOptions(ctx, 10*time.Minute, heartbeat, 2)
			in := actdef.TestInput{Build: d.build(d.st.Spec, *d.st.Code, *d.st.Install)}
			if err := workflow.ExecuteActivity(actx, a.RunTest, in).Get(actx, &info); err != nil {
				return "", err
			}
		}
		d.st.Test = &info // kept when it failed: the wizard shows its traceback
		if !info.OK {
			if d.outcomes {
				// A failed step: run records it ok:false with LastError, and
				// the update fails. Not an activity error: the test ran, and
				// running it again would fail the same way.
				return "", errors.New("test failed: " + info.Message)
			}
			return "test failed: " + info.Message, nil
		}
		return "test passed: " + info.Summary, nil
	})
	return d.st, err
}

func (d *deployment) validateComplete(r CompleteRequest) error {
	if err := d.ready(UpdateComplete); err != nil {
		return err
	}
	if !d.st.testCurrent() {
		return d.reject("Test Code must pass for the current code and requirements before completing")
	}
	if r.TokenSHA256 == "" && d.st.TokenSHA256 == "" {
		return d.reject("no endpoint token")
	}
	return nil
}

func (d *deployment) complete(ctx workflow.Context, r CompleteRequest) (State, error) {
	if r.TokenSHA256 != "" {
		d.st.TokenSHA256 = r.TokenSHA256
	}
	err := d.run(ctx, UpdateComplete, func(ctx workflow.Context) (string, error) {
		msg, err := d.startService(ctx, true)
		if err == nil {
			d.st.Status = StatusLive
		}
		return msg, err
	})
	return d.st, err
}

// startService (re)starts the live endpoint. fresh serves the current, tested
// working copy (Complete); otherwise it serves what was last completed (start
// after stop, reconcile after a platform restart), even if the working copy
// has moved on since.
func (d *deployment) startService(ctx workflow.Context, fresh bool) (string, error) {
	serving := d.st.Serving
	if fresh {
		serving = &Serving{Spec: d.st.Spec, Code: *d.st.Code, Install: *d.st.Install}
	}
	if serving == nil {
		return "", fmt.Errorf("nothing completed to serve")
	}
	var info actdef.ServiceInfo
	if d.onAgent() {
		var err error
		if info, err = d.serveOnAgent(ctx, serving); err != nil { // Since: the agent's
			return "", err
		}
	} else {
		actx := activityOptions(ctx, 5*time.Minute, heartbeat, 5)
		in := actdef.ServiceInput{Build: d.build(serving.Spec, serving.Code, serving.Install), TokenSHA256: d.st.TokenSHA256}
		if err := workflow.ExecuteActivity(actx, a.StartService, in).Get(actx, &info); err != nil {
			return "", err
		}
		info.Since = workflow.Now(ctx)
	}
	d.st.Live = &info
	d.st.Serving = serving
	return "endpoint live at " + info.Endpoint, nil
}

func (d *deployment) validateStop(Empty) error {
	if err := d.ready(UpdateStop); err != nil {
		return err
	}
	if d.st.Status != StatusLive {
		return d.reject("only a live deployment can be stopped (it is %s)", d.st.Status)
	}
	return nil
}

func (d *deployment) stop(ctx workflow.Context, _ Empty) (State, error) {
	err := d.run(ctx, UpdateStop, func(ctx workflow.Context) (string, error) {
		if d.onAgent() {
			if err := d.stopOnAgent(ctx); err != nil {
				return "", err
			}
		} else {
			actx := activityOptions(ctx, 2*time.Minute, heartbeat, 10)
			if err := workflow.ExecuteActivity(actx, a.StopService, d.st.Live.Handle).Get(actx, nil); err != nil {
				return "", err
			}
		}
		d.st.Status = StatusStopped
		return "endpoint stopped", nil
	})
	return d.st, err
}

func (d *deployment) validateStart(Empty) error {
	if err := d.ready(UpdateStart); err != nil {
		return err
	}
	if d.st.Status != StatusStopped {
		return d.reject("only a stopped deployment can be started (it is %s)", d.st.Status)
	}
	return nil
}

func (d *deployment) start(ctx workflow.Context, _ Empty) (State, error) {
	err := d.run(ctx, UpdateStart, func(ctx workflow.Context) (string, error) {
		if err := d.refreshCertificate(ctx); err != nil {
			return "", err
		}
		msg, err := d.startService(ctx, false)
		if err == nil {
			d.st.Status = StatusLive
		}
		return msg, err
	})
	return d.st, err
}

func (d *deployment) validateDelete(Empty) error {
	if d.st.Status == StatusDeleted {
		return d.reject("deployment is already deleted")
	}
	if d.st.Busy == UpdateDelete {
		return d.reject("deletion is already running")
	}
	return nil
}

// changeSweepOnDelete versions Delete's sweep (SweepServer) of a deployment
// without a recorded server: histories from before it replay without.
const changeSweepOnDelete = "sweep-on-delete"

// changeDeleteBlobs versions Delete's removal of the deployment's blobs
// (uploads, test outputs): histories from before it replay without.
const changeDeleteBlobs = "delete-blobs"

// delete tears everything down (the saga's compensations, each idempotent):
// the live endpoint, the DNS record, the server with its code, venv,
// certificate and published bundle (or, when no server was recorded, what a
// lost Provision may have made, found by the deployment ID), its blobs, then the store
// row, which frees the API name. It waits for a running step first.
func (d *deployment) delete(ctx workflow.Context, _ Empty) (State, error) {
	if err := workflow.Await(ctx, func() bool { return d.st.Busy == "" }); err != nil {
		return d.st, err
	}
	d.st.Status = StatusDeleting
	if d.outcomes {
		// The list reads the store: say deleting there now, not when the
		// teardown ends, so list and detail agree throughout.
		d.project(ctx)
	}
	err := d.run(ctx, UpdateDelete, func(ctx workflow.Context) (string, error) {
		// Heartbeats notice a lost attempt in seconds, not at the time limit.
		actx := activityOptions(ctx, 10*time.Minute, heartbeat, 0)
		if d.onAgent() && d.st.Live != nil {
			// The agent drains and stops what serves; ReleaseServer then
			// stops the agent (and any revision a lost serve command
			// started) and revokes its credential.
			if err := d.stopOnAgent(ctx); err != nil {
				return "", err
			}
		} else if d.st.Live != nil {
			if err := workflow.ExecuteActivity(actx, a.StopService, d.st.Live.Handle).Get(actx, nil); err != nil {
				return "", err
			}
		}
		if d.st.DNS != nil && workflow.GetVersion(ctx, changeDNSRecord, workflow.DefaultVersion, 1) == 1 {
			if err := workflow.ExecuteActivity(actx, a.DeleteRecord, *d.st.DNS).Get(actx, nil); err != nil {
				return "", err
			}
			d.st.DNS = nil
		}
		if d.st.Server != nil {
			if err := workflow.ExecuteActivity(actx, a.ReleaseServer, *d.st.Server).Get(actx, nil); err != nil {
				return "", err
			}
			d.st.Servers = nil
		} else if workflow.GetVersion(ctx, changeSweepOnDelete, workflow.DefaultVersion, 1) == 1 {
			// No server recorded, yet a Provision may have made one whose
			// answer was lost: find it by the deployment ID.
			if err := workflow.ExecuteActivity(actx, a.SweepServer, d.st.DeploymentID).Get(actx, nil); err != nil {
				return "", err
			}
		}
		if workflow.GetVersion(ctx, changeDeleteBlobs, workflow.DefaultVersion, 1) == 1 {
			// The deployment's uploads and test outputs (idempotent).
			bctx := activityOptions(ctx, 5*time.Minute, 0, 0)
			if d.outcomes {
				// It heartbeats: a worker lost mid-way is noticed in
				// seconds, not after the 5 minutes.
				bctx = activityOptions(ctx, 5*time.Minute, heartbeat, 0)
			}
			if err := workflow.ExecuteActivity(bctx, a.DeleteBlobs, d.st.DeploymentID).Get(bctx, nil); err != nil {
				return "", err
			}
		}
		if err := workflow.ExecuteActivity(actx, a.MarkDeleted, d.st.DeploymentID).Get(actx, nil); err != nil {
			return "", err
		}
		d.st.Status = StatusDeleted
		return "deleted", nil
	})
	return d.st, err
}

// build names what an inference server of this deployment runs.
func (d *deployment) build(sp spec.Spec, code actdef.CodeInfo, install actdef.InstallInfo) actdef.Build {
	return actdef.Build{DeploymentID: d.st.DeploymentID, Server: *d.st.Server, Spec: sp, Code: code, Install: install, Cert: *d.st.Cert}
}
