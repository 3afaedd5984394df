package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/internal/blobs"

	"github.com/algocloud/algocloud/activities/actdef"
)

// maxListing bounds the code listing blob the API reads (its texts are
// bounded to 8 MiB by the worker; JSON escaping can grow them).
const maxListing = 64 << 20

// codeListing answers GET .../code: the current revision's files (path,
// size, whether it is text and its content is shown), without contents.
type codeListing struct {
	Revision      int                `json:"revision"`
	Source        string             `json:"source"`
	GeneratedMain bool               `json:"generated_main"`
	Files         []codeListingEntry `json:"files"`
	Truncated     bool               `json:"truncated,omitempty"`
}

// codeListingEntry is one file of a listing.
type codeListingEntry struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Text bool   `json:"text"`
	// Viewable: GET .../code/file?path= gives its text.
	Viewable bool `json:"viewable"`
}

// loadListing reads the current revision's listing from the blob store; it
// answers the request itself (404/409/503) when there is none to read.
func (s *server) loadListing(c *gin.Context) (actdef.CodeFiles, *actdef.CodeInfo, bool) {
	a := deployment(c)
	st, err := s.state(c.Request.Context(), a.ID)
	if err != nil {
		s.workflowFailure(c, "query state", err)
		return actdef.CodeFiles{}, nil, false
	}
	code := st.Code
	switch {
	case code == nil:
		writeError(c, (&apiError{Code: errcode.NoCode, Message: "no code yet: fetch code first"}).
			with("step", st.Step).with("status", st.Status))
		return actdef.CodeFiles{}, nil, false
	case code.FilesKey == "":
		writeError(c, (&apiError{Code: errcode.CodeNotKept,
			Message: fmt.Sprintf("code revision %d was fetched before the platform kept a copy of its files to show; fetch the code again to see and edit it here", code.Revision)}).
			with("revision", code.Revision))
		return actdef.CodeFiles{}, nil, false
	case s.blobs == nil:
		writeError(c, &apiError{Code: errcode.BlobsUnavailable,
			Message: "this server has no blob store to read the code's files from"})
		return actdef.CodeFiles{}, nil, false
	}
	rc, err := s.blobs.Get(c.Request.Context(), code.FilesKey)
	if errors.Is(err, blobs.ErrNotFound) {
		writeError(c, (&apiError{Code: errcode.CodeNotKept,
			Message: fmt.Sprintf("the copy of code revision %d's files is gone; fetch the code again to see and edit it here", code.Revision)}).
			with("revision", code.Revision))
		return actdef.CodeFiles{}, nil, false
	}
	if err != nil {
		s.fail(c, "get code listing", err)
		return actdef.CodeFiles{}, nil, false
	}
	defer rc.Close()
	var l actdef.CodeFiles
	if err := json.NewDecoder(io.LimitReader(rc, maxListing)).Decode(&l); err != nil {
		s.fail(c, "decode code listing "+code.FilesKey, err)
		return actdef.CodeFiles{}, nil, false
	}
	return l, code, true
}

// getCode lists the current code revision's files (GET .../code).
func (s *server) getCode(c *gin.Context) {
	l, code, ok := s.loadListing(c)
	if !ok {
		return
	}
	out := codeListing{Revision: code.Revision, Source: code.Source, GeneratedMain: code.GeneratedMain,
		Files: make([]codeListingEntry, 0, len(l.Files)), Truncated: l.Truncated}
	for _, f := range l.Files {
		out.Files = append(out.Files, codeListingEntry{Path: f.Path, Size: f.Size, Text: f.Text, Viewable: f.Content != nil})
	}
	c.JSON(http.StatusOK, out)
}

// getCodeFile serves one text file of the current code revision
// (GET .../code/file?path=aai_main.py) as text/plain; the revision is in
// X-Code-Revision, which an edit sends back as base_revision.
func (s *server) getCodeFile(c *gin.Context) {
	p := c.Query("path")
	if p == "" {
		writeError(c, errField(errcode.InvalidPath, "path", "name the file: ?path=aai_main.py"))
		return
	}
	if err := validRelPath(p); err != nil {
		writeError(c, errField(errcode.InvalidPath, "path", "%v", err))
		return
	}
	l, code, ok := s.loadListing(c)
	if !ok {
		return
	}
	for _, f := range l.Files {
		if f.Path != p {
			continue
		}
		if f.Content == nil {
			why := "it is not text"
			if f.Text {
				why = fmt.Sprintf("it is over %d bytes", actdef.MaxShownFile)
			}
			writeError(c, (&apiError{Code: errcode.FileNotViewable,
				Message: fmt.Sprintf("%s (%d bytes) is listed only: %s", p, f.Size, why)}).with("size", f.Size))
			return
		}
		h := c.Writer.Header()
		h.Set("X-Code-Revision", fmt.Sprint(code.Revision))
		h.Set("X-Content-Type-Options", "nosniff")
		c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(*f.Content))
		return
	}
	writeError(c, (&apiError{Code: errcode.FileNotFound,
		Message: fmt.Sprintf("code revision %d has no file %q", code.Revision, p)}).with("revision", code.Revision))
}
