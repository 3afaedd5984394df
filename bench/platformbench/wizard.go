package platformbench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/algocloud/algocloud/internal/apiclient"
)

// wfState is what the bench reads of a deployment's workflow state (the
// State of apiclient's answers): the step records' own durations and the
// live server's folder.
type wfState struct {
	History []struct {
		Step     string `json:"step"`
		Duration string `json:"duration"`
	} `json:"history"`
	Server struct {
		Workdir string `json:"workdir"`
	} `json:"server"`
}

// parseState decodes raw (an answer's State); a state that does not decode
// reads as empty, as the bench only reports from it.
func parseState(raw []byte) wfState {
	var st wfState
	_ = json.Unmarshal(raw, &st)
	return st
}

// lastStepDuration is the workflow's own duration of the newest record of
// step in the state's history (what the step's activities took inside the
// workflow).
func (st wfState) lastStepDuration(step string) time.Duration {
	for i := len(st.History) - 1; i >= 0; i-- {
		if st.History[i].Step == step {
			d, _ := time.ParseDuration(st.History[i].Duration)
			return d
		}
	}
	return 0
}

// Wizard steps after configure, in order, as the API names them.
var wizardSteps = []string{"provision", "fetch_code", "install_requirements", "test", "complete"}

// stepNamesAll are the timed phases of one wizard run, in report order.
var stepNamesAll = append(append([]string{"configure"}, wizardSteps...), "first_predict")

// wizardRun is one walk through the wizard and its timings.
type wizardRun struct {
	APIName  string
	ID       string
	Endpoint string
	Token    string
	Workdir  string // the server's folder (where live.json is)
	// API is each step's round trip through the REST API; InWF is the step's
	// own duration recorded by the workflow (its activities).
	API  map[string]time.Duration
	InWF map[string]time.Duration
	// CompleteToFirst runs from sending complete to the first 200 of /predict.
	CompleteToFirst time.Duration
	PredictTries    int
	Total           time.Duration // configure sent .. first 200 of /predict
	FailedStep      string
	Err             error
}

// wizard holds what every run shares.
type wizard struct {
	api      *apiclient.Client
	endpoint *http.Client // verifies endpoints with the platform's CA
	repo     string
	threads  int
	png      []byte
	pngW     int
	pngH     int
}

func (w *wizard) fail(r *wizardRun, step string, err error) wizardRun {
	r.FailedStep, r.Err = step, err
	return *r
}

// walk runs configure..complete then predicts until the endpoint answers.
func (w *wizard) walk(ctx context.Context, apiName string) wizardRun {
	r := wizardRun{APIName: apiName, API: map[string]time.Duration{}, InWF: map[string]time.Duration{}}
	t0 := time.Now()
	d, err := w.api.CreateDeployment(ctx, map[string]any{
		"name": "Bench " + apiName, "description": "algocloud-bench", "api_name": apiName,
		"input": "image", "output": "image", "threads": w.threads, "requirements": []string{},
	})
	r.API["configure"] = time.Since(t0)
	if err != nil {
		return w.fail(&r, "configure", err)
	}
	r.ID = d.ID
	var completeSent time.Time
	var done apiclient.Completion
	for _, step := range wizardSteps {
		ts := time.Now()
		switch step {
		case "fetch_code":
			d, err = w.api.FetchCodeFromGit(ctx, r.ID, w.repo, "main")
		case "complete":
			completeSent = ts
			done, err = w.api.Complete(ctx, r.ID)
			d = done.DeploymentDetail
		default:
			d, err = w.api.Step(ctx, r.ID, step, nil)
		}
		r.API[step] = time.Since(ts)
		if err != nil {
			return w.fail(&r, step, err)
		}
		r.InWF[step] = parseState(d.State).lastStepDuration(step)
	}
	r.Endpoint, r.Token = done.Endpoint, done.Token
	r.Workdir = parseState(done.State).Server.Workdir
	if r.Endpoint == "" || r.Token == "" {
		return w.fail(&r, "complete", fmt.Errorf("no endpoint or token in the answer to complete (status %q)", done.Status))
	}
	tp := time.Now()
	tries, err := w.firstAnswer(ctx, r.Endpoint, r.Token, 2*time.Minute)
	now := time.Now()
	r.API["first_predict"] = now.Sub(tp)
	r.PredictTries = tries
	r.CompleteToFirst = now.Sub(completeSent)
	r.Total = now.Sub(t0)
	if err != nil {
		return w.fail(&r, "first_predict", err)
	}
	return r
}

// firstAnswer posts the sample to /predict until it answers 200 with a mask
// of the sample's size, retrying at once (10 ms apart) on any other outcome.
func (w *wizard) firstAnswer(ctx context.Context, endpoint, token string, limit time.Duration) (tries int, err error) {
	deadline := time.Now().Add(limit)
	for {
		tries++
		err = w.predictOnce(ctx, endpoint, token)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return tries, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *wizard) predictOnce(ctx context.Context, endpoint, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/predict", bytes.NewReader(w.png))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := w.endpoint.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("predict answered %d: %s", res.StatusCode, trim(body))
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("predict answer is not a PNG: %w", err)
	}
	if cfg.Width != w.pngW || cfg.Height != w.pngH {
		return fmt.Errorf("predict answered a %dx%d mask for a %dx%d image", cfg.Width, cfg.Height, w.pngW, w.pngH)
	}
	return nil
}

// remove deletes a deployment through the API and returns how long it took.
func (w *wizard) remove(ctx context.Context, id string) (time.Duration, error) {
	t := time.Now()
	_, err := w.api.DeleteDeployment(ctx, id)
	return time.Since(t), err
}

// endpointClient verifies endpoints with the platform's CA, never skipping
// verification; a fresh transport per client keeps connection reuse honest.
func endpointClient(rootPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(rootPEM) {
		return nil, fmt.Errorf("no certificate in the CA root")
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 4,
	}}, nil
}

// samplePNG is a w×h gradient.
func samplePNG(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}

// gitRepo copies the example into dir and commits it on main.
func gitRepo(src, dir string) error {
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"-c", "user.email=bench@example.com", "-c", "user.name=bench", "commit", "-q", "-m", "algorithm"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}
