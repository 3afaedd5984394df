package inferapi

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
)

// LogsHeader asks /predict for the algorithm's logs and carries them back.
// A request with "Algocloud-Logs: 1" gets, on its answer (success or error),
// the header Algocloud-Logs holding base64 (standard, padded) of the UTF-8
// text the algorithm wrote to sys.stdout and sys.stderr during its call: the
// last MaxLogBytes of it, starting with "[earlier output dropped]" when cut.
// An answer to a request without it never carries logs, so callers of the
// synchronous API see no change; the ONNX environment has no logs (the
// header is then absent). The platform's async predictions ask for them.
const LogsHeader = "Algocloud-Logs"

// MaxLogBytes bounds the logs of one call (the Python runner keeps the end).
const MaxLogBytes = 64 << 10

// WantsLogs reports whether r asked for logs.
func WantsLogs(h http.Header) bool {
	return strings.TrimSpace(h.Get(LogsHeader)) == "1"
}

// SetLogs puts logs on an answer's header (nothing when empty).
func SetLogs(h http.Header, logs string) {
	if logs != "" {
		h.Set(LogsHeader, base64.StdEncoding.EncodeToString([]byte(logs)))
	}
}

// Logs reads the logs of an answer ("" when it carries none).
func Logs(h http.Header) (string, error) {
	v := strings.TrimSpace(h.Get(LogsHeader))
	if v == "" {
		return "", nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", fmt.Errorf("decode the %s header: %w", LogsHeader, err)
	}
	return string(b), nil
}
