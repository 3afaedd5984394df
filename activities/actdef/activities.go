package actdef

import (
	"context"

	"github.com/algocloud/algocloud/activities/compute"
)

// Activities is every activity the workflows run, with its signature.
// Temporal's activity type is the method's name, which workflow histories
// record: never rename one. *activities.Activities (the worker registers it)
// and *Names (the workflows name them with it) both implement it, so the two
// cannot drift apart: each asserts it beside its methods.
type Activities interface {
	RecordState(ctx context.Context, r StateRecord) error
	MarkDeleted(ctx context.Context, id string) error
	ProvisionServer(ctx context.Context, in ProvisionInput) (compute.Server, error)
	IssueCertificate(ctx context.Context, in CertInput) (CertInfo, error)
	DeleteBlobs(ctx context.Context, deploymentID string) error
	FetchCode(ctx context.Context, in FetchCodeInput) (CodeInfo, error)
	UpsertRecord(ctx context.Context, in DNSInput) (DNSRecord, error)
	DeleteRecord(ctx context.Context, rec DNSRecord) error
	InstallRequirements(ctx context.Context, in InstallInput) (InstallInfo, error)
	ListCertificates(ctx context.Context, in ListCertificatesInput) ([]CertStatus, error)
	ReloadCertificate(ctx context.Context, in ReloadInput) (CertReload, error)
	StartService(ctx context.Context, in ServiceInput) (ServiceInfo, error)
	StopService(ctx context.Context, h compute.Handle) error
	ReleaseServer(ctx context.Context, s compute.Server) error
	SweepServer(ctx context.Context, deploymentID string) error
	RunTest(ctx context.Context, in TestInput) (TestInfo, error)
}

// Names is how the workflows name an activity: a method value of a nil
// *Names, such as
//
//	var a *actdef.Names
//	workflow.ExecuteActivity(ctx, a.FetchCode, in)
//
// gives Temporal the activity's type (the method's name, as a method value
// of *activities.Activities did before, so histories replay unchanged) and
// the signature it checks the arguments against, without the workflows
// linking the activities and the providers behind them. The worker runs
// *activities.Activities under the same names; these methods never run
// (calling one is a bug: it panics with ErrNotRunnable).
type Names struct{}

var _ Activities = (*Names)(nil)

// ErrNotRunnable is the panic of a *Names method called as a function: the
// worker runs the activities, by name.
var ErrNotRunnable = errNotRunnable{}

type errNotRunnable struct{}

func (errNotRunnable) Error() string {
	return "actdef.Names only names activities; the worker runs them (*activities.Activities)"
}

// RecordState names activities.Activities.RecordState.
func (*Names) RecordState(context.Context, StateRecord) error { panic(ErrNotRunnable) }

// MarkDeleted names activities.Activities.MarkDeleted.
func (*Names) MarkDeleted(context.Context, string) error { panic(ErrNotRunnable) }

// ProvisionServer names activities.Activities.ProvisionServer.
func (*Names) ProvisionServer(context.Context, ProvisionInput) (compute.Server, error) {
	panic(ErrNotRunnable)
}

// IssueCertificate names activities.Activities.IssueCertificate.
func (*Names) IssueCertificate(context.Context, CertInput) (CertInfo, error) { panic(ErrNotRunnable) }

// DeleteBlobs names activities.Activities.DeleteBlobs.
func (*Names) DeleteBlobs(context.Context, string) error { panic(ErrNotRunnable) }

// FetchCode names activities.Activities.FetchCode.
func (*Names) FetchCode(context.Context, FetchCodeInput) (CodeInfo, error) { panic(ErrNotRunnable) }

// UpsertRecord names activities.Activities.UpsertRecord.
func (*Names) UpsertRecord(context.Context, DNSInput) (DNSRecord, error) { panic(ErrNotRunnable) }

// DeleteRecord names activities.Activities.DeleteRecord.
func (*Names) DeleteRecord(context.Context, DNSRecord) error { panic(ErrNotRunnable) }

// InstallRequirements names activities.Activities.InstallRequirements.
func (*Names) InstallRequirements(context.Context, InstallInput) (InstallInfo, error) {
	panic(ErrNotRunnable)
}

// ListCertificates names activities.Activities.ListCertificates.
func (*Names) ListCertificates(context.Context, ListCertificatesInput) ([]CertStatus, error) {
	panic(ErrNotRunnable)
}

// ReloadCertificate names activities.Activities.ReloadCertificate.
func (*Names) ReloadCertificate(context.Context, ReloadInput) (CertReload, error) {
	panic(ErrNotRunnable)
}

// StartService names activities.Activities.StartService.
func (*Names) StartService(context.Context, ServiceInput) (ServiceInfo, error) {
	panic(ErrNotRunnable)
}

// StopService names activities.Activities.StopService.
func (*Names) StopService(context.Context, compute.Handle) error { panic(ErrNotRunnable) }

// ReleaseServer names activities.Activities.ReleaseServer.
func (*Names) ReleaseServer(context.Context, compute.Server) error { panic(ErrNotRunnable) }

// SweepServer names activities.Activities.SweepServer.
func (*Names) SweepServer(context.Context, string) error { panic(ErrNotRunnable) }

// RunTest names activities.Activities.RunTest.
func (*Names) RunTest(context.Context, TestInput) (TestInfo, error) { panic(ErrNotRunnable) }
