package predictions

import (
	"encoding/json"
	"time"

	"github.com/algocloud/algocloud/store"
)

// View is a prediction as GET answers it (and as webhooks carry it).
type View struct {
	ID          string          `json:"id"`
	Status      string          `json:"status"`
	CreatedAt   time.Time       `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	CompletedAt *time.Time      `json:"completed_at,omitempty"`
	Metrics     *Metrics        `json:"metrics,omitempty"`
	Input       InputSummary    `json:"input"`
	Output      json.RawMessage `json:"output,omitempty"`
	Error       *ErrorView      `json:"error,omitempty"`
	// Logs is what the algorithm printed (stdout and stderr) during its
	// predict, its last 64 KiB; set by whoever read the logs blob (GET and
	// webhooks, not lists), absent when it printed nothing.
	Logs string `json:"logs,omitempty"`
	// Expired is true once retention deleted the input and output.
	Expired   bool       `json:"expired,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	URLs      URLs       `json:"urls"`
}

// Metrics are a prediction's timings.
type Metrics struct {
	// PredictTime is the endpoint call's duration in seconds.
	PredictTime float64 `json:"predict_time"`
}

// InputSummary describes the input without repeating it.
type InputSummary struct {
	Kind        string `json:"kind"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

// ErrorView is a failed prediction's error.
type ErrorView struct {
	Message   string `json:"message"`
	Traceback string `json:"traceback,omitempty"`
}

// OutputRef is a non-inline output: where to download it.
type OutputRef struct {
	URL         string `json:"url"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

// URLs are the prediction's routes.
type URLs struct {
	Get    string `json:"get"`
	Cancel string `json:"cancel"`
	Output string `json:"output,omitempty"`
}

// NewView renders p; base is the predictions collection's URL
// (…/api/v1/endpoints/{api_name}/predictions).
func NewView(p store.Prediction, base string) View {
	self := base + "/" + p.ID
	v := View{
		ID: p.ID, Status: p.Status, CreatedAt: p.CreatedAt, StartedAt: p.StartedAt, CompletedAt: p.CompletedAt,
		Input:     InputSummary{Kind: p.InputKind, ContentType: p.InputContentType, Size: p.InputSize},
		Expired:   p.ExpiredAt != nil,
		ExpiresAt: p.ExpiresAt,
		URLs:      URLs{Get: self, Cancel: self + "/cancel"},
	}
	if p.PredictTime != nil {
		v.Metrics = &Metrics{PredictTime: p.PredictTime.Seconds()}
	}
	if p.Status == store.PredictionFailed {
		v.Error = &ErrorView{Message: p.Error, Traceback: p.Traceback}
	}
	if p.Status == store.PredictionSucceeded && p.ExpiredAt == nil {
		v.URLs.Output = self + "/output"
		if p.OutputJSON != nil {
			v.Output = json.RawMessage(p.OutputJSON)
		} else {
			v.Output, _ = json.Marshal(OutputRef{URL: v.URLs.Output, ContentType: p.OutputContentType, Size: p.OutputSize})
		}
	}
	return v
}
