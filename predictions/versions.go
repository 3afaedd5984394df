package predictions

// Change is one workflow.GetVersion change of the Prediction workflow: a
// branch that predictions started before it must not take when their
// history replays.
type Change struct {
	// ID is the change ID passed to workflow.GetVersion.
	ID string
	// Since is the day the change landed.
	Since string
	// Why says what the new branch does that old histories did not.
	Why string
}

// changeLogsEvent: a prediction whose predict printed fires the logs webhook
// event between output and completed.
const changeLogsEvent = "prediction-logs-event"

// Changes lists every change ID the Prediction workflow passes to
// workflow.GetVersion, oldest first (TestEveryChangeIsListed keeps it
// complete), as workflows/versions.go does for the Deployment workflow. An
// old branch (the DefaultVersion side) may go once no prediction started
// before Since can still be running: a prediction waits for its endpoint
// 24 hours at most (maxQueued), so a few days after Since, provided the
// replay corpus (testdata/histories) no longer needs it.
//
// Each change has a corpus history that took its new branch
// (TestCorpusCoversEveryChange) and one captured before it.
var Changes = []Change{
	{changeLogsEvent, "2026-12-06", "a prediction whose predict printed fires the logs webhook event (after output, before completed); histories before it (prediction-webhooks.json) never did"},
}
