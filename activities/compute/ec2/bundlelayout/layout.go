// Package bundlelayout is the layout of an EC2 endpoint's bundle that its
// builder (the activities) and its reader (fetch.sh, the instance's user
// data in activities/compute/ec2) agree on: the placeholders of live.json.in
// and where the ONNX Runtime library goes. Its own package, so the builder
// needs no import of the EC2 provider for it.
package bundlelayout

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
)

// Placeholders in a bundle's live.json.in that fetch.sh fills in.
const (
	HomePlaceholder   = "@ALGOCLOUD_HOME@"
	ListenPlaceholder = "@ALGOCLOUD_LISTEN@"
)

// The ONNX Runtime library of environment onnx deployments: the bundle names
// it by SHA-256 in ONNXRuntimeSumFile (so the MAC covers the sum), and
// fetch.sh downloads <artifacts>/onnxruntime/<sha256>/libonnxruntime.so.1 to
// <home>/ONNXRuntimePath, checks the sum and keeps it across restarts while
// the sum stays the same.
const (
	// ONNXRuntimeSumFile is the bundle member holding the library's SHA-256
	// (hex); a bundle without it fetches no library.
	ONNXRuntimeSumFile = "onnxruntime.sha256"
	// ONNXRuntimePath is where fetch.sh puts the library, under its home
	// (the server agent too: commands.Fetch with a SHA-256).
	ONNXRuntimePath = "lib/libonnxruntime.so.1"
)

// ONNXRuntimeObject is the library's object under the artifacts URL (the
// store's prefix), by its SHA-256 (hex).
func ONNXRuntimeObject(sum string) string { return "onnxruntime/" + sum + "/libonnxruntime.so.1" }

// FileSHA256 is the hex SHA-256 of the file at path: how the store names
// the ONNX Runtime library and how the agent checks what it fetched.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
