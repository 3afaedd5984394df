package batch

import (
	"time"

	"github.com/algocloud/algocloud/store"
)

// View is a batch as the API shows it: GET .../batches/{id} answers it, and
// a batch webhook's body is it at the moment of the event, so a receiver
// sees what it would GET.
type View struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Source      string     `json:"source"`
	Concurrency int        `json:"concurrency"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at"`
	CompletedAt *time.Time `json:"completed_at"`
	Counts      struct {
		Total  int `json:"total"`
		Done   int `json:"done"`
		Failed int `json:"failed"`
		Left   int `json:"left"`
	} `json:"counts"`
	Rate       float64           `json:"rate"`
	ETASeconds *float64          `json:"eta_seconds"`
	Error      string            `json:"error,omitempty"`
	URLs       map[string]string `json:"urls"`
	// Output is where the outputs go when not to output.zip: the S3
	// prefix's URI only, never its credentials.
	Output *OutputView `json:"output,omitempty"`
}

// OutputView is a batch's S3 output prefix as the API shows it.
type OutputView struct {
	S3 struct {
		URI string `json:"uri"`
	} `json:"s3"`
}

// NewView renders b at now; base is the endpoint's batches URL
// ("/api/v1/endpoints/{api_name}/batches", absolute in webhook bodies).
func NewView(b store.Batch, base string, now time.Time) View {
	p := ProgressOf(b, now)
	j := View{ID: b.ID, Status: b.Status, Source: b.Source, Concurrency: b.Concurrency, CreatedAt: b.CreatedAt,
		StartedAt: b.StartedAt, CompletedAt: b.CompletedAt, Rate: p.Rate, Error: b.Error}
	j.Counts.Total, j.Counts.Done, j.Counts.Failed, j.Counts.Left = b.Total, p.Done, p.Failed, p.Left
	if p.ETASeconds >= 0 {
		eta := p.ETASeconds
		j.ETASeconds = &eta
	}
	self := base + "/" + b.ID
	j.URLs = map[string]string{"get": self, "output": self + "/output.zip", "errors": self + "/errors",
		"cancel": self + "/cancel", "webhooks": self + "/webhooks"}
	if b.OutputURI != "" {
		delete(j.URLs, "output") // the outputs are in S3: output.zip answers 409
		j.Output = &OutputView{}
		j.Output.S3.URI = b.OutputURI
	}
	return j
}
