package temporaldev

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
)

// A port taken before the server binds it is an error Start returns, not a
// panic that takes the test binary (or `algocloud dev`) down.
func TestStartReportsTakenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	srv, err := Start(Options{FrontendPort: port, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		srv.Stop()
		t.Fatalf("Start on taken port %d succeeded", port)
	}
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("Start on taken port: %v, want errPortTaken", err)
	}
}

// Free ports are picked again after a collision, so a plain Start works.
func TestStartPicksPorts(t *testing.T) {
	srv, err := Start(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
}

// Start registers the custom search attributes it is given, usable at once
// (a workflow starts with them and a visibility query finds it): a new
// database gets them with its namespace, one from before them gets them
// added (then the server restarts, so no service's namespace cache lacks
// them); starting again adds nothing, and one registered with another type
// is refused.
func TestStartRegistersSearchAttributes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	attrs := map[string]enums.IndexedValueType{
		"AlgocloudTestName": enums.INDEXED_VALUE_TYPE_KEYWORD,
		"AlgocloudTestRev":  enums.INDEXED_VALUE_TYPE_INT,
	}
	start := func(o Options) (*Server, client.Client) {
		t.Helper()
		o.Logger = log
		srv, err := Start(o)
		require.NoError(t, err)
		c, err := client.Dial(client.Options{HostPort: srv.HostPort(), Logger: sdklog.NewStructuredLogger(log)})
		require.NoError(t, err)
		list, err := c.OperatorService().ListSearchAttributes(t.Context(), &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
		require.NoError(t, err)
		for name, typ := range o.SearchAttributes {
			require.Equal(t, typ, list.GetCustomAttributes()[name], name)
		}
		return srv, c
	}
	findable := func(c client.Client, id string) {
		t.Helper()
		// No worker: the workflow stays scheduled, its start is what counts.
		_, err := c.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{
			ID: id, TaskQueue: "nobody-polls",
			TypedSearchAttributes: temporal.NewSearchAttributes(
				temporal.NewSearchAttributeKeyKeyword("AlgocloudTestName").ValueSet(id),
				temporal.NewSearchAttributeKeyInt64("AlgocloudTestRev").ValueSet(3)),
		}, "SomeWorkflow")
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			res, err := c.ListWorkflow(t.Context(), &workflowservice.ListWorkflowExecutionsRequest{
				Query: `AlgocloudTestName = "` + id + `" AND AlgocloudTestRev >= 3`,
			})
			require.NoError(t, err)
			return len(res.GetExecutions()) == 1 && res.GetExecutions()[0].GetExecution().GetWorkflowId() == id
		}, 20*time.Second, 100*time.Millisecond, "visibility finds %s by its search attributes", id)
	}

	srv, c := start(Options{SearchAttributes: attrs}) // in memory: a new database
	findable(c, "wf-new")
	c.Close()
	srv.Stop()

	db := filepath.Join(t.TempDir(), "temporal.db")
	srv, c = start(Options{DatabaseFile: db}) // from before the attributes
	c.Close()
	srv.Stop()
	srv, c = start(Options{DatabaseFile: db, SearchAttributes: attrs})
	findable(c, "wf-added")
	c.Close()
	srv.Stop()
	srv, c = start(Options{DatabaseFile: db, SearchAttributes: attrs}) // nothing to add
	c.Close()
	srv.Stop()

	_, err := Start(Options{DatabaseFile: db, Logger: log, SearchAttributes: map[string]enums.IndexedValueType{
		"AlgocloudTestRev": enums.INDEXED_VALUE_TYPE_KEYWORD,
	}})
	require.ErrorContains(t, err, "AlgocloudTestRev is registered in namespace default as Int")
}
