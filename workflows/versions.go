package workflows

// Change is one workflow.GetVersion change of the Deployment workflow: a
// branch that deployments started before it must not take when their
// history replays.
type Change struct {
	// ID is the change ID passed to workflow.GetVersion.
	ID string
	// Since is the day the change landed.
	Since string
	// Why says what the new branch does that old histories did not.
	Why string
}

// Changes lists every change ID the workflows pass to workflow.GetVersion,
// oldest first (TestEveryChangeIsListed keeps it complete). An old branch
// (the DefaultVersion side) may go only when no running deployment can
// replay a history from before its change: after every deployment started
// before Since has continued as new (Deployment continues as new when the
// SDK suggests it) or been deleted, and the replay corpus
// (testdata/histories) no longer needs it. Until then both branches stay.
//
// Each change has a corpus history that took its new branch
// (TestCorpusCoversEveryChange), so an edit that drops the branch fails
// TestReplayHistories; docs/architecture.md ("Changing the workflows")
// records that probe for every change and which history catches it.
var Changes = []Change{
	{changeDNSRecord, "2026-11-25", "UpsertRecord after provisioning and DeleteRecord on teardown, for platform-managed DNS (Route53)"},
	{changeProvisionSaga, "2026-11-26", "a provision whose DNS record or certificate failed for good is undone: record deleted, server released"},
	{changeSweepOnDelete, "2026-11-26", "Delete sweeps, by deployment ID, a server a lost Provision may have made without recording it"},
	{changeDeleteBlobs, "2026-11-26", "Delete removes the deployment's blobs (uploads, test outputs, code listings, sealed Git credentials)"},
	{changeCertRenewal, "2026-11-26", "renew_certificate signals renew the certificate between steps (the renewal schedule's deployments)"},
	{changeCertOnStart, "2026-11-26", "Start checks the certificate first (renewal skips deployments that are not live)"},
	{changeStepOutcomes, "2026-12-06", "read once at run start: a failed Test Code fails its step; live means the served install is current too; Delete projects deleting first and its clean-ups heartbeat"},
	{changeSearchAttributes, "2026-12-06", "read once at run start: the run upserts its Algocloud* search attributes (step, status, live revision; api name, environment, compute when they differ) at start and whenever it projects its state"},
	{changeServerAgent, "2026-12-06", "Provision asks for a server agent and keeps the servers as a list; on a server with an agent, Install, Test Code, Complete, Start, Stop and Delete run as agent commands (RunOnServer)"},
	// The Batch workflow's (predictions/batch/webhooks.go declares the
	// const; its corpus is predictions/batch/testdata/histories). The old
	// branch may go once no batch started before 2026-12-06 runs: a batch
	// lasts hours, so a week after every worker runs it.
	{"batch-webhooks", "2026-12-06", "a batch started with a webhook renders itself and starts a WebhookDeliver child at start and when it ends (delivery ids <batch id>-start, -completed)"},
	// The Batch workflow's (predictions/batch/workflow.go). The old branch
	// may go once no batch started before 2026-12-07 runs, as above.
	{"batch-local-mark", "2026-12-07", "read once at each run's start: MarkBatch (running; succeeded, failed or canceled) runs as a local activity inside the workflow task instead of as an activity task"},
	{changeAgentCertReload, "2026-12-07", "a renewal on a remote server with an agent (EC2) serves the serving revision again with the new certificate (the agent fetches it, the revision reloads it in place) instead of restarting the endpoint"},
}
