package activities

import (
	"github.com/algocloud/algocloud/internal/sandbox"

	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"
)

func TestServiceConfigCarriesTheSpec(t *testing.T) {
	a := &Activities{PredictTimeout: 7 * time.Second}
	sp := spec.Spec{APIName: "seg", Threads: 3, Input: spec.Image, Output: spec.JSON, MaxBatchSize: 8, MaxQueueDelayMS: 5, MaxQueueSize: 3, PublicMetrics: true}
	cfg, err := a.serviceConfig(compute.Server{Host: "127.0.0.1"}, 9000, actdef.Build{
		Spec: sp, Code: actdef.CodeInfo{Dir: "/code"}, Install: actdef.InstallInfo{Python: "/venv/bin/python"},
		Cert: actdef.CertInfo{CertFile: "c.pem", KeyFile: "k.pem"},
	}, "ab", "live")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9000", cfg.Listen)
	require.Equal(t, 3, cfg.Threads)
	require.Equal(t, spec.JSON, cfg.Output)
	require.Equal(t, 8, cfg.MaxBatchSize)
	require.Equal(t, inferapi.Duration(5*time.Millisecond), cfg.MaxQueueDelay)
	require.Equal(t, 3, cfg.MaxQueueSize, "the deployment's queue bound")
	require.Equal(t, inferapi.Duration(7*time.Second), cfg.Timeout)
	require.Equal(t, "/venv/bin/python", cfg.Python)
	require.Equal(t, "ab", cfg.TokenSHA256)
	require.True(t, cfg.PublicMetrics)
	// Author code runs sandboxed with the instance type's limits.
	require.NotNil(t, cfg.Sandbox)
	require.Equal(t, sandbox.ModeBwrap, cfg.Sandbox.Mode)
	require.Equal(t, sandbox.NetOutbound, cfg.Sandbox.Network)
	require.Equal(t, int64(2<<30), cfg.Sandbox.Limits.MemoryBytes, "t3.small: 2 GiB")
	require.Equal(t, "t3.small", cfg.Sandbox.Limits.Label)

	cfg, err = a.serviceConfig(compute.Server{Host: "127.0.0.1"}, 9000, actdef.Build{Spec: spec.Spec{Threads: 1}}, "", "live")
	require.NoError(t, err)
	require.Equal(t, 1, cfg.MaxBatchSize, "no batching unless asked")
	require.Equal(t, 64, cfg.MaxQueueSize, "the server's default queue unless asked")
	require.False(t, cfg.PublicMetrics, "/metrics needs the token unless asked")

	a.Sandbox = SandboxSettings{Mode: sandbox.ModeNone, Scale: 0.5}
	cfg, err = a.serviceConfig(compute.Server{ID: "d1", Host: "127.0.0.1"}, 9000, actdef.Build{Spec: spec.Spec{Threads: 1, InstanceType: "t3.medium", Network: spec.NetworkNone}}, "", "test")
	require.NoError(t, err)
	require.Equal(t, sandbox.ModeNone, cfg.Sandbox.Mode, "only where the operator chose it")
	require.Equal(t, sandbox.NetNone, cfg.Sandbox.Network)
	require.Equal(t, "d1.test", cfg.Sandbox.Group)
	require.Equal(t, int64(2<<30), cfg.Sandbox.Limits.MemoryBytes, "t3.medium's 4 GiB scaled by 0.5")
}
