package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The hint for an endpoint signed by the platform's CA names the CA's real
// URL (it once printed the placeholder "API/api/ca.pem").
func TestMissingCAHintNamesTheURL(t *testing.T) {
	for api, want := range map[string]string{
		"http://127.0.0.1:8080":           "http://127.0.0.1:8080/api/ca.pem",
		"https://algocloud.example.com/":  "https://algocloud.example.com/api/ca.pem",
		"http://127.0.0.1:9090/platform/": "http://127.0.0.1:9090/platform/api/ca.pem",
	} {
		hint := missingCAHint(api)
		require.Contains(t, hint, "curl -sS --fail -o algocloud-ca.pem "+want+"\n", api)
		require.NotContains(t, hint, "API/api", api)
	}
}
