package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/workflows"
)

// TestOperatorSignalRenewsCertificate: an operator's renew_certificate
// signal with an empty `{}` input (from the Temporal UI or CLI) renews a live
// deployment's certificate now, though it is far from due (90 days), and the
// endpoint serves the new one. The history goes to the replay corpus with
// ALGOCLOUD_CAPTURE_HISTORIES=1 (cert-renewal-signal.json), captured before
// the assertions the cert-renewal change decides, so the same walk captures
// the code before it too (cert-renewal-before.json: the signal ignored).
func TestOperatorSignalRenewsCertificate(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id, endpoint, _ := walk(t, c, "signalled", "segmentation", "image")
	first := servedCert(t, p, endpoint)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.Client.SignalWorkflow(ctx, workflows.WorkflowID(id), "", workflows.SignalRenewCertificate, struct{}{}))
	var rec *workflows.StepRecord
	var st workflows.State
	for deadline := time.Now().Add(60 * time.Second); rec == nil && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		st = deploymentState(t, p, id)
		for i := range st.History {
			if st.History[i].Step == workflows.StepRenewCertificate {
				rec = &st.History[i]
			}
		}
	}
	captureHistory(t, p, workflows.WorkflowID(id), "cert-renewal-signal.json")

	require.NotNil(t, rec, "no renewal recorded after the signal: %+v", st.History)
	require.True(t, rec.OK, rec.Message)
	require.Contains(t, rec.Message, "reloaded in place")
	renewed := servedCert(t, p, endpoint)
	require.NotEqual(t, 0, renewed.SerialNumber.Cmp(first.SerialNumber), "the endpoint serves the new certificate")
	require.False(t, renewed.NotAfter.Before(first.NotAfter))
	require.Equal(t, renewed.NotAfter.UTC(), st.Cert.NotAfter.UTC(), "the state holds the served certificate")
	require.Equal(t, workflows.StatusLive, st.Status)
}
