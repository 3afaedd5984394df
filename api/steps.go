package api

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/store"
	"github.com/algocloud/algocloud/workflows"
)

// stepNames are the steps POST .../steps/{step} accepts, in wizard order.
var stepNames = []string{
	workflows.UpdateProvision, workflows.UpdateFetchCode, workflows.UpdateInstall,
	workflows.UpdateTest, workflows.UpdateComplete, workflows.UpdateStop, workflows.UpdateStart,
}

// maxRequirementsTxt mirrors the workflow's own limit, so a client hears 400
// here instead of a rejection there.
const maxRequirementsTxt = 64 << 10

// runStep runs one wizard step as the matching update and waits for it.
func (s *server) runStep(c *gin.Context) {
	a := deployment(c)
	step := c.Param("step")
	var (
		arg any
		e   *apiError
	)
	switch step {
	case workflows.UpdateProvision, workflows.UpdateStop, workflows.UpdateStart:
		var r workflows.Empty
		e = decodeJSON(c, &r, true)
		arg = r
	case workflows.UpdateTest:
		var r workflows.TestRequest
		e = decodeJSON(c, &r, true)
		arg = r
	case workflows.UpdateInstall:
		var r workflows.InstallRequest
		e = installRequest(c, &r)
		arg = r
	case workflows.UpdateFetchCode:
		s.fetchCode(c, a)
		return
	case workflows.UpdateComplete:
		if e := decodeJSON(c, &workflows.Empty{}, true); e != nil {
			writeError(c, e)
			return
		}
		s.complete(c, a)
		return
	default:
		// No such step exists for any deployment: the path names nothing
		// (404), unlike a real step refused in this state (409).
		writeError(c, (&apiError{Code: errcode.UnknownStep,
			Message: "unknown step " + strconv.Quote(step) + "; the deployment is at step " + a.Step}).
			with("step", a.Step).with("status", a.Status).with("valid_steps", stepNames))
		return
	}
	if e != nil {
		writeError(c, e)
		return
	}
	st, err := s.wf.Update(c.Request.Context(), a.ID, step, arg)
	if err != nil {
		s.stepFailure(c, a, err)
		return
	}
	s.stepDone(c, a, st)
}

// installRequest reads the optional Add More Dependencies body and checks
// every requirement line.
func installRequest(c *gin.Context, r *workflows.InstallRequest) *apiError {
	if e := decodeJSON(c, r, true); e != nil {
		return e
	}
	if r.RequirementsTxt == nil {
		return nil
	}
	if len(*r.RequirementsTxt) > maxRequirementsTxt {
		return errField(errcode.InvalidRequirements, "requirements_txt", "is over %d bytes", maxRequirementsTxt)
	}
	if _, err := spec.ParseRequirements(*r.RequirementsTxt); err != nil {
		return errValidation(errcode.InvalidRequirements, err)
	}
	return nil
}

// stepDone answers a step that finished: 200 with the deployment, or 422 when
// Test Code ran and the algorithm did not pass (workflows from before a failed
// test failed its update answer so).
func (s *server) stepDone(c *gin.Context, a store.Algorithm, st workflows.State) {
	if testFailed(c, a, st) {
		return
	}
	c.JSON(http.StatusOK, detailOf(a, &st))
}

// testFailed answers 422 test_failed, with the traceback and the test's
// details, when st holds a failed Test Code of this request's test step.
func testFailed(c *gin.Context, a store.Algorithm, st workflows.State) bool {
	t := st.Test
	if t == nil || t.OK || c.Param("step") != workflows.UpdateTest {
		return false
	}
	msg := t.Message
	if msg == "" {
		msg = "the test did not pass"
	}
	writeError(c, (&apiError{Code: errcode.TestFailed, Message: msg}).
		with("traceback", t.Traceback).with("test", t).
		with("step", st.Step).with("status", st.Status).with("deployment", detailOf(a, &st)))
	return true
}

// stepFailure answers an update's error: 409 for a rejected step, 422 for a
// failed one (with the state it left), else what workflowFailure says.
func (s *server) stepFailure(c *gin.Context, a store.Algorithm, err error) {
	var se *StepError
	if !errors.As(err, &se) {
		s.workflowFailure(c, "update deployment", err)
		return
	}
	if se.Kind == StepRejected {
		step, status := se.Step, se.Status
		if step == "" {
			step, status = a.Step, a.Status
		}
		writeError(c, (&apiError{Code: errcode.StepRejected, Message: se.Message}).
			with("step", step).with("status", status))
		return
	}
	e := (&apiError{Code: errcode.StepFailed, Message: se.Message}).
		with("failed_step", se.Step).with("step", a.Step).with("status", a.Status)
	// The failure's details name only the failed step; the state says where
	// the deployment stands now.
	if st, qerr := s.state(context.WithoutCancel(c.Request.Context()), a.ID); qerr == nil {
		// A failed Test Code is a failed step (its update fails, so the
		// Temporal UI shows it red); its answer keeps the traceback and the
		// test's details, which the state holds.
		if se.Step == workflows.UpdateTest && testFailed(c, a, st) {
			return
		}
		e.with("step", st.Step).with("status", st.Status).with("deployment", detailOf(a, &st))
	}
	writeError(c, e)
}

// completeResponse is Complete Deployment's answer.
type completeResponse struct {
	deploymentDetail
	// Token is the endpoint's bearer token, present only when this call made it.
	Token     string `json:"token,omitempty"`
	TokenNote string `json:"token_note"`
	// CAURL is where clients get the root that signs the endpoint's
	// certificate; absent when that certificate is publicly trusted (ACME):
	// clients then use the system's roots.
	CAURL string `json:"ca_url,omitempty"`
}

// complete is Complete Deployment. The first completion makes the endpoint
// token: its hash goes to the workflow and, once the step succeeded, to the
// store, and the plaintext is shown in this answer only. Storing the hash only
// after success means a failed first completion never leaves a hash whose
// token nobody saw; the next try makes a new one. Later completions pass the
// stored hash, so a token rotated with POST .../token takes effect then.
func (s *server) complete(c *gin.Context, a store.Algorithm) {
	ctx := c.Request.Context()
	hash, err := s.store.EndpointTokenHash(ctx, a.ID)
	if err != nil {
		s.fail(c, "read endpoint token hash", err)
		return
	}
	var token string
	if hash == "" {
		if token, hash, err = newEndpointToken(); err != nil {
			s.fail(c, "make endpoint token", err)
			return
		}
	}
	st, err := s.wf.Update(ctx, a.ID, workflows.UpdateComplete, workflows.CompleteRequest{TokenSHA256: hash})
	if err != nil {
		s.stepFailure(c, a, err)
		return
	}
	r := completeResponse{deploymentDetail: detailOf(a, &st), Token: token}
	if token != "" {
		if err := s.store.SetEndpointTokenHash(context.WithoutCancel(ctx), a.ID, hash); err != nil {
			// The endpoint already checks this token; answering it is the
			// only way its owner learns it.
			s.log.ErrorContext(ctx, "store endpoint token hash", "deployment", a.ID, "error", err)
		}
		r.HasEndpointToken = true
		r.TokenNote = "this is the endpoint's token; it is shown only now (only its hash is kept). Send it as Authorization: Bearer <token>; rotate it with POST /api/v1/deployments/" + a.ID + "/token"
	} else {
		r.TokenNote = "the endpoint keeps its existing token (shown when it was made); rotate it with POST /api/v1/deployments/" + a.ID + "/token"
	}
	if s.endpointCA {
		r.CAURL = "/api/ca.pem"
	}
	c.JSON(http.StatusOK, r)
}

// testOutput serves the file the last Test Code produced: from the blob
// store, or (tests from before it) from the path the worker wrote on a disk
// shared with the API.
func (s *server) testOutput(c *gin.Context) {
	a := deployment(c)
	st, err := s.state(c.Request.Context(), a.ID)
	if err != nil {
		s.workflowFailure(c, "query state", err)
		return
	}
	noOutput := &apiError{Code: errcode.NoTestOutput, Message: "no test output: run Test Code first"}
	if st.Test == nil || (st.Test.OutputKey == "" && st.Test.OutputFile == "") {
		writeError(c, noOutput)
		return
	}
	if st.Test.OutputKey != "" {
		s.testOutputBlob(c, st.Test.OutputKey, st.Test.ContentType, noOutput)
		return
	}
	f, err := os.Open(st.Test.OutputFile)
	if errors.Is(err, os.ErrNotExist) {
		writeError(c, noOutput.with("detail", "the output file of the last test is gone"))
		return
	}
	if err != nil {
		s.fail(c, "open test output", err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = errors.New("it is a folder")
	}
	if err != nil {
		s.fail(c, "stat test output "+st.Test.OutputFile, err)
		return
	}
	testOutputHeaders(c, st.Test.ContentType, filepath.Base(st.Test.OutputFile))
	http.ServeContent(c.Writer, c.Request, "", fi.ModTime(), f)
}

// testOutputBlob streams a test output from the blob store.
func (s *server) testOutputBlob(c *gin.Context, key, contentType string, noOutput *apiError) {
	if s.blobs == nil {
		writeError(c, noOutput.with("detail", "this server has no blob store to read the output from"))
		return
	}
	rc, err := s.blobs.Get(c.Request.Context(), key)
	if errors.Is(err, blobs.ErrNotFound) {
		writeError(c, noOutput.with("detail", "the output file of the last test is gone"))
		return
	}
	if err != nil {
		s.fail(c, "get test output", err)
		return
	}
	defer rc.Close()
	testOutputHeaders(c, contentType, path.Base(key))
	c.Status(http.StatusOK)
	if _, err := io.Copy(c.Writer, rc); err != nil {
		s.log.WarnContext(c.Request.Context(), "stream test output", "error", err)
	}
}

// testOutputHeaders set a test output's type and keep browsers from running it.
func testOutputHeaders(c *gin.Context, contentType, name string) {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h := c.Writer.Header()
	h.Set("Content-Type", contentType)
	// The algorithm chose these bytes: never let a browser run them here.
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": name}))
}
