package activities

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/inference"
	"github.com/algocloud/algocloud/spec"
)

func TestServiceConfigCarriesTheSpec(t *testing.T) {
	a := &Activities{PredictTimeout: 7 * time.Second}
	sp := spec.Spec{APIName: "seg", Threads: 3, Input: spec.Image, Output: spec.JSON, MaxBatchSize: 8, MaxQueueDelayMS: 5, PublicMetrics: true}
	cfg := a.serviceConfig(compute.Server{Host: "127.0.0.1"}, 9000, Build{
		Spec: sp, Code: CodeInfo{Dir: "/code"}, Install: InstallInfo{Python: "/venv/bin/python"},
		Cert: CertInfo{CertFile: "c.pem", KeyFile: "k.pem"},
	}, "ab")
	require.Equal(t, "127.0.0.1:9000", cfg.Listen)
	require.Equal(t, 3, cfg.Threads)
	require.Equal(t, spec.JSON, cfg.Output)
	require.Equal(t, 8, cfg.MaxBatchSize)
	require.Equal(t, inference.Duration(5*time.Millisecond), cfg.MaxQueueDelay)
	require.Equal(t, inference.Duration(7*time.Second), cfg.Timeout)
	require.Equal(t, "/venv/bin/python", cfg.Python)
	require.Equal(t, "ab", cfg.TokenSHA256)
	require.True(t, cfg.PublicMetrics)

	cfg = a.serviceConfig(compute.Server{Host: "127.0.0.1"}, 9000, Build{Spec: spec.Spec{Threads: 1}}, "")
	require.Equal(t, 1, cfg.MaxBatchSize, "no batching unless asked")
	require.False(t, cfg.PublicMetrics, "/metrics needs the token unless asked")
}
