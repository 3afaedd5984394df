package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/algocloud/algocloud/internal/apiclient"
	"github.com/algocloud/algocloud/spec"
)

// deployConfigFile is the file beside aai_main.py that describes the
// deployment: the wizard's first pages as a spec.Spec.
const deployConfigFile = "algocloud.json"

// errTestFailed ends deploy when Test Code ran and the algorithm failed.
//
//lint:ignore ST1005 it starts with the wizard step's name as the author sees it, capitalised
var errTestFailed = errors.New("Test Code failed: fix the algorithm and run algocloud deploy again")

// deploy walks the wizard for the algorithm in a folder.
func deploy(args []string) error {
	fs := flag.NewFlagSet("deploy", flag.ExitOnError)
	var o apiOptions
	o.flags(fs)
	var src gitSource
	fs.StringVar(&src.url, "git", "", "fetch the code from this Git URL (https or ssh) instead of uploading DIR; DIR still holds algocloud.json")
	fs.StringVar(&src.ref, "ref", "", "branch, tag or commit with --git (default: the default branch)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: algocloud deploy [--api URL] [--git URL [--ref REF]] DIR

Deploys the algorithm in DIR (aai_main.py, aai_pip-requirements.txt, models...;
with "environment": "onnx", a .onnx model and aai_onnx.json)
as DIR/algocloud.json describes it (name, api_name, input, output, threads,
requirements...): creates the deployment, or reuses yours with that api_name,
then provisions it, uploads DIR as a zip (without .git and __pycache__),
installs the requirements, runs Test Code and completes it. It prints the
endpoint and, the first time, its token.

With --git the platform fetches the code from the repository instead. For a
private one, credentials come from the environment only (never from
algocloud.json or the URL): ALGOCLOUD_GIT_PASSWORD (a password or access
token; ALGOCLOUD_GIT_USERNAME optional) for an https URL, or
ALGOCLOUD_GIT_SSH_KEY_FILE (a deploy key without passphrase) and
ALGOCLOUD_GIT_KNOWN_HOSTS_FILE (the server's known_hosts lines) for an ssh URL.

`)
		fs.PrintDefaults()
	}
	rest := parseInterspersed(fs, args)
	if len(rest) != 1 {
		fs.Usage()
		return errors.New("deploy takes one folder")
	}
	dir := rest[0]
	sp, err := readDeployConfig(dir)
	if err != nil {
		return err
	}
	if src.url != "" {
		if src.auth, err = gitAuthFromEnv(); err != nil {
			return err
		}
	} else if src.ref != "" {
		return errors.New("--ref goes with --git")
	}
	if sp.Environment == spec.EnvONNX && src.url == "" {
		if _, err := os.Stat(filepath.Join(dir, "aai_onnx.json")); err != nil {
			fmt.Fprintf(os.Stderr, "note: %s has no aai_onnx.json; the platform will write the generated %s configuration naming its .onnx model\n", dir, spec.Pair{In: sp.Input, Out: sp.Output})
		}
	} else if _, err := os.Stat(filepath.Join(dir, "aai_main.py")); err != nil && src.url == "" {
		fmt.Fprintf(os.Stderr, "note: %s has no aai_main.py; the platform will add the generated skeleton for %s\n", dir, spec.Pair{In: sp.Input, Out: sp.Output})
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()

	d, err := createOrReuse(ctx, c, sp)
	if err != nil {
		return err
	}
	p := &progress{out: os.Stderr, tty: isTerminal(os.Stderr), c: c, id: d.ID, git: src}
	if p.after, err = c.LastEventID(ctx, d.ID); err != nil {
		return err
	}
	err = p.steps(ctx, dir, d)
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted; a step already sent keeps running on the platform: algocloud logs -f %s follows it", d.ID)
	}
	return err
}

// readDeployConfig reads and validates DIR/algocloud.json.
func readDeployConfig(dir string) (spec.Spec, error) {
	file := filepath.Join(dir, deployConfigFile)
	b, err := os.ReadFile(file)
	if err != nil {
		return spec.Spec{}, fmt.Errorf("read the deployment's description: %w (see examples/segmentation/algocloud.json)", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var sp spec.Spec
	if err := dec.Decode(&sp); err != nil {
		return sp, fmt.Errorf("%s: %w", file, err)
	}
	sp = sp.WithDefaults()
	if err := sp.Validate(); err != nil {
		return sp, fmt.Errorf("%s: %w", file, err)
	}
	return sp, nil
}

// createOrReuse creates the deployment, or takes the caller's deployment
// with the same API name and brings its configuration up to date.
func createOrReuse(ctx context.Context, c *apiclient.Client, sp spec.Spec) (apiclient.DeploymentDetail, error) {
	list, err := c.ListDeployments(ctx)
	if err != nil {
		return apiclient.DeploymentDetail{}, err
	}
	for _, d := range list {
		if d.APIName != sp.APIName {
			continue
		}
		detail, err := c.GetDeployment(ctx, d.ID)
		if err != nil {
			return detail, err
		}
		fmt.Fprintf(os.Stderr, "Reusing deployment %s (%s, step %s, %s)\n", d.ID, d.APIName, detail.Step, detail.Status)
		var cur spec.Spec
		if json.Unmarshal(detail.Spec, &cur) == nil && reflect.DeepEqual(cur.WithDefaults(), sp) {
			return detail, nil
		}
		fmt.Fprintf(os.Stderr, "Updating its configuration from %s\n", deployConfigFile)
		return c.UpdateSpec(ctx, d.ID, sp)
	}
	d, err := c.CreateDeployment(ctx, sp)
	if err != nil {
		if apiclient.ErrorCode(err) == "api_name_taken" {
			return d, fmt.Errorf("api_name %q belongs to another user's deployment: choose another in %s", sp.APIName, deployConfigFile)
		}
		return d, err
	}
	fmt.Fprintf(os.Stderr, "Created deployment %s (%s)\n", d.ID, d.APIName)
	return d, nil
}

// progress runs the wizard's steps and shows what the platform reports
// while each runs: new events (polled) and, on a terminal, a spinner.
type progress struct {
	out   io.Writer
	tty   bool
	c     *apiclient.Client
	id    string
	after int64 // the last event shown
	git   gitSource
}

// gitSource is deploy's --git, --ref and the credentials from the environment.
type gitSource struct {
	url, ref string
	auth     *apiclient.GitAuth
}

// gitAuthFromEnv reads a private repository's credentials from the
// environment: they never belong in algocloud.json (committed with the
// code) or on the command line (seen in ps and shell history).
func gitAuthFromEnv() (*apiclient.GitAuth, error) {
	a := apiclient.GitAuth{Username: os.Getenv("ALGOCLOUD_GIT_USERNAME"), Password: os.Getenv("ALGOCLOUD_GIT_PASSWORD")}
	if f := os.Getenv("ALGOCLOUD_GIT_SSH_KEY_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("ALGOCLOUD_GIT_SSH_KEY_FILE: %w", err)
		}
		a.SSHPrivateKey = string(b)
		kf := os.Getenv("ALGOCLOUD_GIT_KNOWN_HOSTS_FILE")
		if kf == "" {
			return nil, errors.New("ALGOCLOUD_GIT_SSH_KEY_FILE needs ALGOCLOUD_GIT_KNOWN_HOSTS_FILE: the server's host key is checked against it (ssh-keyscan HOST > known_hosts)")
		}
		if b, err = os.ReadFile(kf); err != nil {
			return nil, fmt.Errorf("ALGOCLOUD_GIT_KNOWN_HOSTS_FILE: %w", err)
		}
		a.KnownHosts = string(b)
	}
	if a.Password == "" && a.SSHPrivateKey == "" {
		return nil, nil // a public repository
	}
	return &a, nil
}

// steps runs provision (unless done), fetch_code, install_requirements, test
// and complete, then prints the endpoint.
func (p *progress) steps(ctx context.Context, dir string, d apiclient.DeploymentDetail) error {
	if d.StepDone("provision") {
		fmt.Fprintln(p.out, p.mark(true)+" provision (already provisioned)")
	} else if err := p.run(ctx, "provision", func(ctx context.Context) error {
		_, err := p.c.Step(ctx, p.id, "provision", nil)
		return err
	}); err != nil {
		return err
	}

	if p.git.url != "" {
		if err := p.fetchGit(ctx); err != nil {
			return err
		}
	} else if err := p.upload(ctx, dir); err != nil {
		return err
	}
	return p.rest(ctx)
}

// fetchGit runs fetch_code from --git.
func (p *progress) fetchGit(ctx context.Context) error {
	what := "fetch_code (git)"
	if p.git.auth != nil {
		what = "fetch_code (git, with credentials)"
	}
	return p.run(ctx, what, func(ctx context.Context) error {
		var err error
		if p.git.auth != nil {
			_, err = p.c.FetchCodeFromPrivateGit(ctx, p.id, p.git.url, p.git.ref, *p.git.auth)
		} else {
			_, err = p.c.FetchCodeFromGit(ctx, p.id, p.git.url, p.git.ref)
		}
		return err
	})
}

// upload runs fetch_code with DIR as a zip.
func (p *progress) upload(ctx context.Context, dir string) error {
	zipFile, err := os.CreateTemp("", "algocloud-code-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(zipFile.Name())
	defer zipFile.Close()
	st, err := apiclient.ZipDir(dir, zipFile)
	if err != nil {
		return err
	}
	for _, s := range st.Skipped {
		fmt.Fprintf(p.out, "note: left out %s (not a regular file)\n", s)
	}
	if _, err := zipFile.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := p.run(ctx, fmt.Sprintf("fetch_code (%d files, %s)", st.Files, size(st.Bytes)), func(ctx context.Context) error {
		_, err := p.c.FetchCodeUpload(ctx, p.id, apiclient.Upload{Name: archiveName(dir), Body: zipFile})
		return err
	}); err != nil {
		return err
	}
	return nil
}

// rest runs install_requirements, test and complete.
func (p *progress) rest(ctx context.Context) error {
	if err := p.run(ctx, "install_requirements", func(ctx context.Context) error {
		_, err := p.c.InstallRequirements(ctx, p.id, nil)
		return err
	}); err != nil {
		return err
	}
	var testErr *apiclient.Error
	if err := p.run(ctx, "test", func(ctx context.Context) error {
		_, err := p.c.Step(ctx, p.id, "test", nil)
		return err
	}); errors.As(err, &testErr) && testErr.Code == "test_failed" {
		fmt.Fprintf(p.out, "\nTest Code failed: %s\n", testErr.Message)
		if testErr.Traceback != "" {
			fmt.Fprintf(p.out, "\n%s\n", strings.TrimRight(testErr.Traceback, "\n"))
		}
		return errTestFailed
	} else if err != nil {
		return err
	}
	var done apiclient.Completion
	if err := p.run(ctx, "complete", func(ctx context.Context) error {
		var err error
		done, err = p.c.Complete(ctx, p.id)
		return err
	}); err != nil {
		return err
	}
	p.report(done)
	return nil
}

// report prints the endpoint on stdout: what a script keeps.
func (p *progress) report(done apiclient.Completion) {
	fmt.Printf("\nDeployed %s (%s)\n  endpoint  %s\n", done.Name, done.APIName, done.Endpoint)
	if done.Token != "" {
		fmt.Printf("  token     %s\n            shown only now: keep it (rotate with POST /api/v1/deployments/%s/token)\n", done.Token, done.ID)
	} else {
		fmt.Printf("  token     unchanged (shown when it was made)\n")
	}
	ca := ""
	if done.CAURL != "" {
		ca = p.c.Resolve(done.CAURL)
		fmt.Printf("  CA root   %s\n", ca)
	}
	fmt.Printf("\nCall it:\n  export ALGOCLOUD_ENDPOINT_TOKEN=%s\n", tokenOr(done.Token))
	caFlag := ""
	if ca != "" {
		fmt.Printf("  curl -sS --fail -o algocloud-ca.pem %s\n", ca)
		caFlag = " --ca algocloud-ca.pem"
	}
	fmt.Printf("  algocloud predict --endpoint %s%s INPUT -o OUTPUT\n", done.Endpoint, caFlag)
	fmt.Printf("Generated clients (Python, curl, jQuery, OpenAPI): GET %s/api/v1/deployments/%s/clients\n", p.c.BaseURL(), done.ID)
}

// archiveName names the upload after the folder ("seg.zip"; "code.zip" for /).
func archiveName(dir string) string {
	name := "code"
	if abs, err := filepath.Abs(dir); err == nil && filepath.Base(abs) != string(filepath.Separator) {
		name = filepath.Base(abs)
	}
	return name + ".zip"
}

func tokenOr(t string) string {
	if t == "" {
		return "ep_..."
	}
	return t
}

// run runs one step, showing its events while it runs.
func (p *progress) run(ctx context.Context, step string, fn func(context.Context) error) error {
	start := time.Now()
	if !p.tty {
		fmt.Fprintf(p.out, "==> %s\n", step)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.watch(ctx, step, start, stop)
	}()
	err := fn(ctx)
	close(stop)
	wg.Wait()
	p.poll(ctx) // what the step logged just before it answered
	p.clearLine()
	if p.tty {
		fmt.Fprintf(p.out, "%s %s (%s)\n", p.mark(err == nil), step, elapsed(start))
	} else if err == nil {
		fmt.Fprintf(p.out, "    done in %s\n", elapsed(start))
	} else {
		fmt.Fprintf(p.out, "    failed after %s\n", elapsed(start))
	}
	return err
}

// watch polls the events every half second and redraws the spinner.
func (p *progress) watch(ctx context.Context, step string, start time.Time, stop <-chan struct{}) {
	frames := []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if i%5 == 0 {
			p.poll(ctx)
		}
		if p.tty {
			p.clearLine()
			fmt.Fprintf(p.out, "%c %s %s", frames[i%len(frames)], step, elapsed(start))
		}
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// poll prints the events after the last one shown. Failures are ignored:
// the step's own answer says what matters.
func (p *progress) poll(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	page, err := p.c.Events(pctx, p.id, p.after, 1000)
	if err != nil || len(page.Events) == 0 {
		return
	}
	p.clearLine()
	for _, ev := range page.Events {
		printEvent(p.out, "    ", ev)
	}
	p.after = page.NextAfter
}

// clearLine erases the spinner line on a terminal.
func (p *progress) clearLine() {
	if p.tty {
		fmt.Fprint(p.out, "\r\033[K")
	}
}

func (p *progress) mark(ok bool) string {
	switch {
	case !p.tty:
		return "-"
	case ok:
		return "✓"
	}
	return "✗"
}

func elapsed(start time.Time) string {
	d := time.Since(start)
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
