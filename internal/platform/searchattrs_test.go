package platform

import (
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"

	"github.com/algocloud/algocloud/activities"
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/internal/temporaldev"
	"github.com/algocloud/algocloud/workflows"
)

// The check names each missing attribute with the command that creates it,
// and a wrong type with what to do; a complete namespace passes.
func TestMissingSearchAttributes(t *testing.T) {
	want := workflows.SearchAttributeTypes()
	require.NoError(t, missingSearchAttributes("default", "t:7233", want, want))

	have := map[string]enums.IndexedValueType{"AlgocloudApiName": enums.INDEXED_VALUE_TYPE_KEYWORD, "Other": enums.INDEXED_VALUE_TYPE_TEXT}
	err := missingSearchAttributes("prod", "temporal:7233", have, want)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "--name AlgocloudApiName", "present ones are not listed")
	require.Contains(t, err.Error(), "temporal operator search-attribute create --address temporal:7233 --namespace prod --name AlgocloudLiveRevision --type Int")
	for _, name := range []string{"AlgocloudOwner", "AlgocloudEnvironment", "AlgocloudCompute", "AlgocloudStep", "AlgocloudStatus"} {
		require.Contains(t, err.Error(), "--namespace prod --name "+name+" --type Keyword")
	}

	have = map[string]enums.IndexedValueType{}
	for k, v := range want {
		have[k] = v
	}
	have["AlgocloudLiveRevision"] = enums.INDEXED_VALUE_TYPE_KEYWORD
	require.ErrorContains(t, missingSearchAttributes("default", "t:7233", have, want), "AlgocloudLiveRevision is a Keyword, want Int")
}

// Against a real Temporal server standing in for a cluster: a worker
// refuses to start where the attributes were never created, saying which
// and how; the API starts once they exist.
func TestStartChecksSearchAttributes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bare, err := temporaldev.Start(temporaldev.Options{Logger: log})
	require.NoError(t, err)
	defer bare.Stop()
	_, err = Start(t.Context(), Options{
		DataDir: t.TempDir(), TemporalAddress: bare.HostPort(), RunWorker: true, InferCommand: []string{"/bin/false"},
		Sandbox: activities.SandboxSettings{Mode: sandbox.ModeNone}, Logger: log,
	})
	require.ErrorContains(t, err, "temporal operator search-attribute create --address "+bare.HostPort()+" --namespace default --name AlgocloudApiName --type Keyword")

	ready, err := temporaldev.Start(temporaldev.Options{Logger: log, SearchAttributes: workflows.SearchAttributeTypes()})
	require.NoError(t, err)
	defer ready.Stop()
	p, err := Start(t.Context(), Options{DataDir: t.TempDir(), TemporalAddress: ready.HostPort(), RunAPI: true, APIAddr: "127.0.0.1:0", Logger: log})
	require.NoError(t, err)
	p.Stop()
}
