package main

// This file shows an async prediction's logs (what the algorithm's predict
// printed) for predict --async --wait and the predictions commands: on
// stderr between two heading lines, so that stdout stays the output.

import (
	"fmt"
	"io"
	"strings"

	"github.com/algocloud/algocloud/internal/apiclient"
)

// printLogs writes p's logs to w between "--- logs of prediction ID ---"
// and "--- end of logs ---"; nothing when it has none.
func printLogs(w io.Writer, p apiclient.Prediction) {
	if p.Logs == "" {
		return
	}
	body := printable(p.Logs, true)
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	fmt.Fprintf(w, "--- logs of prediction %s (what predict printed) ---\n%s--- end of logs ---\n", p.ID, body)
}

// noLogsWhy says why a prediction has no logs.
func noLogsWhy(p apiclient.Prediction) string {
	if !p.Final() {
		return "it is " + p.Status + "; they come when it ends"
	}
	return "its predict printed nothing"
}

// printable is s for a terminal when forTerminal: the algorithm's author
// wrote those bytes, and the person reading them may be someone else, so
// control characters (escape sequences could move the cursor, retitle the
// window or hide lines) show as \xNN; a lone \r (a progress bar's) becomes a
// line break. Tabs and line breaks stay. Otherwise s is unchanged.
func printable(s string, forTerminal bool) string {
	if !forTerminal {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == '\r':
			b.WriteByte('\n')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
