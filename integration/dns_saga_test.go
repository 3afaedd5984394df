package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/dns"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/workflows"
)

// TestLocalEndpointsWithRoute53: local endpoints named in a Route53 zone
// (moto). Provision upserts <api-name>.<domain> and Delete removes it
// again. Then the zone is deleted (an operator's mistake): a provision's
// record fails for good (NoSuchHostedZone, not retried), so the provision
// is undone (the saga: its server released, the deployment configured
// again, the error saying so), and Delete, with no server recorded, sweeps
// by the deployment ID, as it does for a deployment deleted before any
// provision. The workflows' histories go to the replay corpus with
// ALGOCLOUD_CAPTURE_HISTORIES=1: they take the new branches of the
// dns-record, provision-saga, sweep-on-delete and delete-blobs changes.
func TestLocalEndpointsWithRoute53(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	w := newCloudWorld(t, ctx)
	p := startPlatform(t, t.TempDir(), func(o *platform.Options) {
		o.Domain = "algocloud.test"
		o.Cloud = platform.CloudOptions{
			DNS: platform.DNSRoute53, AWSRegion: "us-east-1", AWSEndpoint: w.moto.Endpoint,
			DNSZoneID: w.zoneID, DNSPoll: 20 * time.Millisecond,
		}
	})
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	create := func(apiName string) string {
		t.Helper()
		r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
			"name": "Named " + apiName, "api_name": apiName, "input": "image", "output": "json", "threads": 1,
		})
		require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
		return r.Str("id")
	}

	// Provision names the local server in the zone; Delete removes the name.
	named := create("named")
	r := c.Step(named, "provision", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Equal(t, "named.algocloud.test", r.Str("state", "dns", "name"), string(r.Raw))
	ip, err := w.r53.Lookup(ctx, "named.algocloud.test")
	require.NoError(t, err)
	require.Equal(t, r.Str("state", "server", "host"), ip)
	require.Equal(t, http.StatusOK, c.Do(http.MethodDelete, "/api/v1/deployments/"+named, nil).Status)
	_, err = w.r53.Lookup(ctx, "named.algocloud.test")
	require.ErrorIs(t, err, dns.ErrNotFound, "Delete removed the record")
	attempts := activityAttempts(t, p.Client, named)
	require.Equal(t, 1, attempts["DeleteRecord"], "attempts %v", attempts)
	require.Equal(t, 1, attempts["ReleaseServer"], "attempts %v", attempts)
	require.Zero(t, attempts["SweepServer"], "a recorded server is released, not swept: %v", attempts)
	h := captureHistory(t, p, workflows.WorkflowID(named), "dns-record-after.json")
	require.Subset(t, versionMarkers(t, h), []string{"dns-record", "delete-blobs"})

	// The zone is gone: the record fails for good and the provision is undone.
	creds := credentials.NewStaticCredentialsProvider("testing", "testing", "")
	_, err = route53.New(route53.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(w.moto.Endpoint)}).
		DeleteHostedZone(ctx, &route53.DeleteHostedZoneInput{Id: aws.String(w.zoneID)})
	require.NoError(t, err)
	undone := create("undone")
	failed := c.Step(undone, "provision", nil)
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+undone, nil)
	require.Equal(t, http.StatusOK, c.Do(http.MethodDelete, "/api/v1/deployments/"+undone, nil).Status)
	// A deployment deleted before it was ever provisioned.
	draft := create("draft")
	require.Equal(t, http.StatusOK, c.Do(http.MethodDelete, "/api/v1/deployments/"+draft, nil).Status)
	// Captured before the assertions the changes decide, so the same walk
	// can capture a history of the code before a change.
	h = captureHistory(t, p, workflows.WorkflowID(undone), "provision-saga-after.json")
	hDraft := captureHistory(t, p, workflows.WorkflowID(draft), "sweep-on-delete-after.json")

	require.Equal(t, http.StatusUnprocessableEntity, failed.Status, string(failed.Raw))
	require.Equal(t, "step_failed", failed.Str("code"), string(failed.Raw))
	require.Contains(t, failed.Str("message"), "no such hosted zone", string(failed.Raw))
	require.Contains(t, failed.Str("message"), "undone: server "+undone+" released; Provision starts afresh", string(failed.Raw))
	require.Equal(t, "configured", st.Str("state", "step"), string(st.Raw))
	require.Empty(t, st.Str("state", "server", "id"), "no server left recorded: %s", st.Raw)
	require.Empty(t, st.Str("state", "dns", "name"), string(st.Raw))
	require.Contains(t, st.Str("state", "last_error", "message"), "undone", string(st.Raw))
	attempts = activityAttempts(t, p.Client, undone)
	require.Equal(t, 1, attempts["UpsertRecord"], "a missing zone is not retried: %v", attempts)
	require.Zero(t, attempts["IssueCertificate"], "no certificate for a name that has no record: %v", attempts)
	require.Equal(t, 1, attempts["ReleaseServer"], "the undo released the server: %v", attempts)
	require.Equal(t, 1, attempts["SweepServer"], "Delete, with no server recorded, swept: %v", attempts)
	require.Zero(t, attempts["DeleteRecord"], "no record was made: %v", attempts)
	require.Subset(t, versionMarkers(t, h), []string{"dns-record", "provision-saga", "sweep-on-delete", "delete-blobs"})

	attempts = activityAttempts(t, p.Client, draft)
	require.Equal(t, 1, attempts["SweepServer"], "a draft's Delete sweeps by the deployment ID: %v", attempts)
	require.Zero(t, attempts["ReleaseServer"], attempts)
	require.Subset(t, versionMarkers(t, hDraft), []string{"sweep-on-delete", "delete-blobs"})
	// Deleted, it frees its API name.
	create("draft")
}
