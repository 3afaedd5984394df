package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/activities/source"
	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/store"
	"github.com/algocloud/algocloud/workflows"

	"github.com/algocloud/algocloud/activities/actdef"
)

// Bounds of one fetch_code request besides its total size.
const (
	maxUploadParts = 1000
	maxTextField   = 4 << 10
	maxRelPath     = 255
	// maxGitAuth bounds the git_auth part of a multipart request (an RSA
	// key and a few known_hosts lines fit).
	maxGitAuth = 64 << 10
)

// gitSource is fetch_code's JSON body.
type gitSource struct {
	GitURL string `json:"git_url"`
	Ref    string `json:"ref"`
	// GitAuth authenticates to a private repository; it is sealed into the
	// blob store and only its reference reaches the workflow.
	GitAuth *source.GitCredentials `json:"git_auth,omitempty"`
}

// fetchCode is Code Repo Integration: a Git URL (JSON or form fields), or an
// uploaded archive, plus any extra files, put in the blob store for the worker.
func (s *server) fetchCode(c *gin.Context, a store.Algorithm) {
	var (
		req    workflows.FetchCodeRequest
		staged []string
		auth   *source.GitCredentials
	)
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if mt == "multipart/form-data" {
		var e *apiError
		req, auth, staged, e = s.stageUpload(c, a.ID)
		if e != nil {
			s.removeStaged(staged)
			writeError(c, e)
			return
		}
	} else {
		var g gitSource
		if e := decodeJSON(c, &g, false); e != nil {
			writeError(c, e)
			return
		}
		req.GitURL, req.Ref, auth = strings.TrimSpace(g.GitURL), strings.TrimSpace(g.Ref), g.GitAuth
	}
	e := checkSource(req)
	if e == nil {
		e = checkGitAuth(req, auth)
	}
	if e == nil && auth != nil {
		// Sealed and stored like an upload: removed when the step is over,
		// or by Delete; the workflow sees only the key.
		req.Credentials, e = s.sealGitAuth(c, a.ID, *auth)
		if req.Credentials != "" {
			staged = append(staged, req.Credentials)
		}
	}
	if e != nil {
		s.removeStaged(staged)
		writeError(c, e)
		return
	}
	if req.Edit != nil {
		if !s.editBase(c, a, req.Edit) {
			s.removeStaged(staged)
			return
		}
	}
	st, err := s.wf.Update(c.Request.Context(), a.ID, workflows.UpdateFetchCode, req)
	var se *StepError
	if err == nil || errors.As(err, &se) {
		// The step is over (done, failed or never admitted): the worker has
		// copied what it needed. Otherwise it may still run and read them
		// (Delete removes the deployment's blobs in the end).
		s.removeStaged(staged)
	}
	if err != nil {
		s.stepFailure(c, a, err)
		return
	}
	s.stepDone(c, a, st)
}

// editBase fills an edit's base from the state: the current revision, which
// must be the one the client edited (409 code_changed otherwise: someone
// else fetched or saved since, and saving would undo that). It answers the
// request itself when the edit cannot go on, and then returns false.
func (s *server) editBase(c *gin.Context, a store.Algorithm, e *actdef.CodeEdit) bool {
	st, err := s.state(c.Request.Context(), a.ID)
	if err != nil {
		s.workflowFailure(c, "query state", err)
		return false
	}
	if st.Code == nil {
		writeError(c, (&apiError{Code: errcode.NoCodeToEdit, Message: "no code to edit yet: fetch code first"}).
			with("step", st.Step).with("status", st.Status))
		return false
	}
	if e.Base.Revision != st.Code.Revision {
		writeError(c, (&apiError{Code: errcode.CodeChanged,
			Message: fmt.Sprintf("the code changed since you opened it: base_revision is %d, the current revision is %d; reload it and edit again", e.Base.Revision, st.Code.Revision)}).
			with("current_revision", st.Code.Revision).with("step", st.Step).with("status", st.Status))
		return false
	}
	e.Base = *st.Code
	return true
}

// checkSource wants exactly one code source.
func checkSource(r workflows.FetchCodeRequest) *apiError {
	switch {
	case r.Edit != nil && (r.GitURL != "" || r.Archive != nil):
		return errField(errcode.InvalidCodeSource, "base_revision", "an edit (base_revision) takes changed files only, no git_url or archive")
	case r.Edit != nil && len(r.Files) == 0:
		return errField(errcode.InvalidCodeSource, "files", "an edit (base_revision) needs at least one changed file")
	case r.Edit != nil:
		return nil
	case r.GitURL != "" && r.Archive != nil:
		return errField(errcode.InvalidCodeSource, "git_url", "give either git_url or an archive, not both")
	case r.GitURL == "" && r.Archive == nil:
		return errField(errcode.InvalidCodeSource, "git_url", "give git_url (and optionally ref), or upload an archive")
	case len(r.GitURL) > 2048:
		return errField(errcode.InvalidCodeSource, "git_url", "is over 2048 characters")
	case len(r.Ref) > 255:
		return errField(errcode.InvalidCodeSource, "ref", "is over 255 characters")
	}
	return nil
}

// checkGitAuth refuses a Git URL that carries a secret in its userinfo (it
// would be stored in the workflow's history and shown in events and the
// state; moving it into git_auth silently would hide that it was ever sent
// in the clear, so the client is told to send it separately) and checks
// git_auth against the URL. No message holds the URL or a secret.
func checkGitAuth(r workflows.FetchCodeRequest, auth *source.GitCredentials) *apiError {
	if r.GitURL != "" && source.UserinfoPassword(r.GitURL) {
		return errField(errcode.InvalidCodeSource, "git_url",
			"must not carry a user name, password or token (it would be stored and shown); give them in git_auth instead")
	}
	if auth == nil {
		return nil
	}
	switch {
	case r.GitURL == "":
		return errField(errcode.InvalidGitAuth, "git_auth", "goes with git_url, not with an uploaded archive")
	case len(auth.Username) > 255:
		return errField(errcode.InvalidGitAuth, "git_auth.username", "is over 255 characters")
	case len(auth.Password) > 8<<10:
		return errField(errcode.InvalidGitAuth, "git_auth.password", "is over 8 KiB")
	case len(auth.SSHPrivateKey) > 16<<10:
		return errField(errcode.InvalidGitAuth, "git_auth.ssh_private_key", "is over 16 KiB")
	case len(auth.KnownHosts) > 32<<10:
		return errField(errcode.InvalidGitAuth, "git_auth.known_hosts", "is over 32 KiB")
	}
	var ce *source.CredentialsError
	if err := auth.Auth().Check(r.GitURL); errors.As(err, &ce) {
		field := "git_auth." + ce.Field
		if ce.Field == "git_url" {
			field = "git_url"
		}
		return errField(errcode.InvalidGitAuth, field, "%s", ce.Msg)
	} else if err != nil {
		return errField(errcode.InvalidGitAuth, "git_auth", "invalid credentials")
	}
	return nil
}

// sealGitAuth seals the credentials into the blob store and returns their
// key, the reference the workflow carries.
func (s *server) sealGitAuth(c *gin.Context, deploymentID string, auth source.GitCredentials) (string, *apiError) {
	if s.blobs == nil || len(s.credKey) == 0 {
		return "", &apiError{Code: errcode.CredentialsUnavailable,
			Message: "this server has no blob store or encryption key to keep Git credentials in"}
	}
	ref, err := source.SealGitCredentials(c.Request.Context(), s.blobs, s.credKey, deploymentID, auth)
	if err != nil {
		s.log.ErrorContext(c.Request.Context(), "seal git credentials", "deployment", deploymentID, "error", err)
		return "", errInternal()
	}
	return ref, nil
}

// readGitAuth reads a multipart git_auth part: the same JSON object as the
// JSON body's git_auth.
func readGitAuth(part *multipart.Part, limit int64) (*source.GitCredentials, *apiError) {
	b, err := io.ReadAll(io.LimitReader(part, maxGitAuth+1))
	if err != nil {
		return nil, bodyError(err, limit)
	}
	if len(b) > maxGitAuth {
		return nil, errField(errcode.InvalidGitAuth, "git_auth", "is over %d bytes", maxGitAuth)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var g source.GitCredentials
	if err := dec.Decode(&g); err != nil {
		// The decoder's message can quote the input: never echo it.
		return nil, errField(errcode.InvalidGitAuth, "git_auth",
			"must be a JSON object with username and password, or ssh_private_key and known_hosts")
	}
	return &g, nil
}

// stageUpload streams a multipart fetch_code request to the blob store. Parts:
// "archive" (one .zip or .tar.gz file), "files" (any number; each part's
// filename is its relative path in the code folder, e.g. models/net.onnx), and
// the text fields "git_url", "ref", "git_auth" (a JSON object) and
// "base_revision" (an edit: the files replace those of that revision, which
// must be the current one, and every other file is kept). Every staged file lands at the key
// uploads/<deployment>/<random>/<sanitised name>: the client's name never
// reaches a key or a disk path. It returns the staged key prefixes, to remove
// afterwards.
func (s *server) stageUpload(c *gin.Context, deploymentID string) (workflows.FetchCodeRequest, *source.GitCredentials, []string, *apiError) {
	req, auth := workflows.FetchCodeRequest{}, (*source.GitCredentials)(nil)
	if s.blobs == nil {
		return req, nil, nil, &apiError{Code: errcode.UploadsUnavailable,
			Message: "this server has no blob store for uploads; fetch code from Git instead"}
	}
	if c.Request.ContentLength > s.maxUpload {
		return req, nil, nil, errTooLarge(s.maxUpload)
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.maxUpload)
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return req, nil, nil, errorf(errcode.InvalidMultipart, "malformed multipart body: %v", err)
	}
	var staged []string
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return req, auth, staged, nil
		}
		if err != nil {
			return req, auth, staged, bodyError(err, s.maxUpload)
		}
		if n >= maxUploadParts {
			return req, auth, staged, errorf(errcode.InvalidMultipart, "more than %d parts", maxUploadParts)
		}
		field := part.FormName()
		switch field {
		case "git_url", "ref":
			v, e := readTextField(part, field, s.maxUpload)
			if e != nil {
				return req, auth, staged, e
			}
			if field == "git_url" {
				req.GitURL = v
			} else {
				req.Ref = v
			}
		case "git_auth":
			if auth != nil {
				return req, auth, staged, errField(errcode.InvalidGitAuth, "git_auth", "give git_auth once")
			}
			var e *apiError
			if auth, e = readGitAuth(part, s.maxUpload); e != nil {
				return req, auth, staged, e
			}
		case "base_revision":
			v, e := readTextField(part, field, s.maxUpload)
			if e != nil {
				return req, auth, staged, e
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return req, auth, staged, errField(errcode.InvalidCodeSource, field, "must be the revision number being edited (1 or more)")
			}
			req.Edit = &actdef.CodeEdit{Base: actdef.CodeInfo{Revision: n}}
		case "archive":
			if req.Archive != nil {
				return req, auth, staged, errField(errcode.InvalidCodeSource, "archive", "upload one archive only")
			}
			name, ok := rawFilename(part)
			if !ok {
				return req, auth, staged, errField(errcode.InvalidCodeSource, "archive", "must be a file part (with a filename)")
			}
			br := bufio.NewReader(part)
			if !isArchive(br) {
				return req, auth, staged, errField(errcode.InvalidArchive, "archive", "%s is not a .zip or .tar.gz archive", safeDiskName(name))
			}
			dir, key, err := s.stageFile(c, deploymentID, name, br)
			if dir != "" {
				staged = append(staged, dir)
			}
			if err != nil {
				return req, auth, staged, s.stageError(c, err)
			}
			req.Archive = &actdef.UploadedFile{Key: key, Name: safeDiskName(filepath.Base(name))}
		case "files":
			name, ok := rawFilename(part)
			if !ok {
				return req, auth, staged, errField(errcode.InvalidFileName, "files", "every files part must be a file, with its relative path as filename")
			}
			if err := validRelPath(name); err != nil {
				return req, auth, staged, errField(errcode.InvalidFileName, "files", "%q: %v", name, err)
			}
			dir, key, err := s.stageFile(c, deploymentID, name, part)
			if dir != "" {
				staged = append(staged, dir)
			}
			if err != nil {
				return req, auth, staged, s.stageError(c, err)
			}
			req.Files = append(req.Files, actdef.UploadedFile{Key: key, Name: name})
		default:
			return req, auth, staged, errField(errcode.UnknownField, field, "unknown form field; expected archive, files, git_url, ref, git_auth or base_revision")
		}
	}
}

// stageFile puts r in the blob store under a new random prefix of the
// deployment's uploads; it returns the prefix (to remove) and the key.
func (s *server) stageFile(c *gin.Context, deploymentID, clientName string, r io.Reader) (dir, key string, err error) {
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", "", fmt.Errorf("read random bytes: %w", err)
	}
	dir = path.Join(actdef.UploadsPrefix, deploymentID, hex.EncodeToString(rnd[:]))
	key = path.Join(dir, safeDiskName(filepath.Base(clientName)))
	if err := blobs.CheckKey(key); err != nil {
		return "", "", fmt.Errorf("upload key: %w", err)
	}
	src := &readErrors{r: r}
	err = s.blobs.Put(c.Request.Context(), key, src, -1)
	if src.err != nil {
		return dir, key, &bodyReadError{src.err}
	}
	if err != nil {
		return dir, key, fmt.Errorf("put staged file: %w", err)
	}
	return dir, key, nil
}

// readErrors remembers the error its reader gave, so a copy's failure can be
// told apart: the client's body or our disk.
type readErrors struct {
	r   io.Reader
	err error
}

func (r *readErrors) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
	}
	return n, err
}

// bodyReadError is a failure reading the request body while staging.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read upload: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// stageError explains a failed staging: the body's fault is 4xx, the store's 500.
func (s *server) stageError(c *gin.Context, err error) *apiError {
	var body *bodyReadError
	if errors.As(err, &body) {
		return bodyError(body.err, s.maxUpload)
	}
	s.log.ErrorContext(c.Request.Context(), "stage upload", "error", err)
	return errInternal()
}

// bodyError explains an error reading the multipart body.
func bodyError(err error, limit int64) *apiError {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errTooLarge(limit)
	}
	return errorf(errcode.InvalidMultipart, "malformed multipart body: %v", err)
}

// readTextField reads a small form value.
func readTextField(part *multipart.Part, field string, limit int64) (string, *apiError) {
	b, err := io.ReadAll(io.LimitReader(part, maxTextField+1))
	if err != nil {
		return "", bodyError(err, limit)
	}
	if len(b) > maxTextField {
		return "", errField(errcode.InvalidCodeSource, field, "is over %d bytes", maxTextField)
	}
	return strings.TrimSpace(string(b)), nil
}

// rawFilename is a part's filename as the client sent it. Part.FileName
// strips folders; fetch_code needs them (models/net.onnx), and checks them itself.
func rawFilename(p *multipart.Part) (string, bool) {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return "", false
	}
	name, ok := params["filename"]
	return name, ok && name != ""
}

// isArchive sniffs a zip or gzip signature without consuming it.
func isArchive(br *bufio.Reader) bool {
	head, _ := br.Peek(4)
	return bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")) ||
		bytes.HasPrefix(head, []byte{0x1f, 0x8b})
}

// validRelPath accepts a slash-separated relative path that stays inside the
// code folder and does not write into its .git.
func validRelPath(name string) error {
	switch {
	case len(name) > maxRelPath:
		return fmt.Errorf("is over %d bytes", maxRelPath)
	case strings.ContainsRune(name, '\\'):
		return errors.New("use / to separate folders")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("has control characters")
	case strings.HasPrefix(name, "/"), len(name) >= 2 && name[1] == ':':
		return errors.New("must be a relative path")
	}
	for _, seg := range strings.Split(name, "/") {
		switch {
		case seg == "":
			return errors.New("has an empty path segment")
		case seg == "." || seg == "..":
			return errors.New("must not contain . or .. segments")
		case strings.EqualFold(seg, ".git"):
			return errors.New("must not write into .git")
		}
	}
	return nil
}

// safeDiskName keeps a file name's letters, digits, dots, dashes and
// underscores, for logs and for the staged copy's name.
func safeDiskName(name string) string {
	var b strings.Builder
	for _, r := range name {
		if b.Len() >= 100 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.TrimLeft(b.String(), ".")
	if out == "" {
		return "upload"
	}
	return out
}

// removeStaged deletes staged uploads from the blob store. It runs after the
// request may have ended, so it does not use the request's context.
func (s *server) removeStaged(prefixes []string) {
	if len(prefixes) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range prefixes {
		if err := s.blobs.Delete(ctx, p); err != nil {
			s.log.Warn("remove staged upload", "key", p, "error", err)
		}
	}
}
