package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/apiclient"
)

// The logs come headed, end with a line break, and show escape sequences
// and other control characters as \xNN; a prediction without logs prints
// nothing. (integration's TestPredictionLogsSurfaces runs the real binary.)
func TestPrintLogs(t *testing.T) {
	var b bytes.Buffer
	printLogs(&b, apiclient.Prediction{ID: "p1", Status: apiclient.StatusSucceeded, Logs: "one\n\x1b[2Jtwo\r\nthree\rfour\tend"})
	require.Equal(t, "--- logs of prediction p1 (what predict printed) ---\none\n\\x1b[2Jtwo\nthree\nfour\tend\n--- end of logs ---\n", b.String())

	b.Reset()
	printLogs(&b, apiclient.Prediction{ID: "p2", Status: apiclient.StatusSucceeded})
	require.Empty(t, b.String())

	require.Equal(t, "a\x1bb\r", printable("a\x1bb\r", false), "piped: the bytes as they are")
	require.Equal(t, "its predict printed nothing", noLogsWhy(apiclient.Prediction{Status: apiclient.StatusFailed}))
	require.Contains(t, noLogsWhy(apiclient.Prediction{Status: apiclient.StatusProcessing}), "processing")
}
