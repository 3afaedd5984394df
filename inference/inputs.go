package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// npyMediaType is the Content-Type of .npy bodies.
const npyMediaType = "application/x-npy"

// requestMediaType parses r's Content-Type; "" when there is none.
func requestMediaType(r *http.Request) (string, map[string]string, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", nil, apiErr(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "unreadable Content-Type %q", ct)
	}
	return mt, params, nil
}

// numpyInput accepts a .npy file as a raw body (application/x-npy,
// application/octet-stream or no Content-Type) or as the multipart/form-data
// field "array". predict receives the array.
type numpyInput struct{}

func (numpyInput) Want() Kind { return KindTensor }

func (numpyInput) Decode(_ context.Context, r *http.Request) (Value, error) {
	mt, _, err := requestMediaType(r)
	if err != nil {
		return Value{}, err
	}
	var data []byte
	switch mt {
	case "", npyMediaType, "application/npy", "application/octet-stream":
		if data, err = readBody(r, "a .npy file (numpy.save)"); err != nil {
			return Value{}, err
		}
	case "multipart/form-data":
		p, err := readMultipartField(r, "array")
		if err != nil {
			return Value{}, err
		}
		data = p.data
	default:
		return Value{}, apiErr(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			"Content-Type %s is not accepted: send a .npy file (numpy.save) as application/x-npy or application/octet-stream, or as the multipart/form-data field \"array\"", mt)
	}
	return decodeNPY(data)
}

func (numpyInput) EncodeRequest(v Value) (httpBody, error) {
	if v.Kind == KindBytes { // testing_input_data returned .npy bytes
		if _, err := decodeNPY(v.Data); err != nil {
			return httpBody{}, testInputError("the bytes testing_input_data returned are not a usable .npy file: %v", err)
		}
		return httpBody{ContentType: npyMediaType, Data: v.Data}, nil
	}
	b, err := encodeNPY(v)
	if err != nil {
		return httpBody{}, testInputError("testing_input_data must return a numpy array: %v", err)
	}
	return httpBody{ContentType: npyMediaType, Data: b}, nil
}

func (numpyInput) ErrorCodes() []string {
	return []string{CodeEmptyBody, CodeNotNPY, CodeBadNPYHeader, CodeNPYHeaderTooLarge, CodeUnsupportedDType,
		CodeBadNPYShape, CodeNPYSizeMismatch, CodeInvalidMultipart}
}

func (numpyInput) OpenAPIRequest() map[string]any {
	// How to send one is said in words: an Example Object without a value
	// fails validation (kin-openapi: "no value or externalValue field").
	binary := map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
	return map[string]any{
		"required": true,
		"description": "A .npy file (numpy.save; format 1.0, 2.0 or 3.0) as the raw body or the multipart field \"array\". " +
			"dtypes: " + npySupported + "; little- or big-endian (converted to little-endian), C or Fortran order (converted to C order). " +
			"predict receives the numpy array. curl --data-binary @x.npy -H 'Content-Type: application/x-npy' ...; " +
			"in Python: buf = io.BytesIO(); np.save(buf, x); requests.post(url, data=buf.getvalue(), headers=...).",
		"content": map[string]any{
			npyMediaType:               binary,
			"application/octet-stream": binary,
			"multipart/form-data": map[string]any{"schema": map[string]any{
				"type": "object", "required": []string{"array"},
				"properties": map[string]any{"array": map[string]any{"type": "string", "format": "binary", "description": "The .npy file."}},
			}},
		},
	}
}

// jsonInput accepts any JSON value (application/json, or no Content-Type);
// predict receives what json.loads makes of it.
type jsonInput struct{}

// maxJSONDepth keeps nesting within what Python's json.loads handles
// (its recursion limit is 1000); maxJSONDigits is Python's limit on the
// digits of an integer it converts (sys.get_int_max_str_digits).
const (
	maxJSONDepth  = 500
	maxJSONDigits = 4300
)

func (jsonInput) Want() Kind { return KindJSON }

func (jsonInput) Decode(_ context.Context, r *http.Request) (Value, error) {
	mt, _, err := requestMediaType(r)
	if err != nil {
		return Value{}, err
	}
	if mt != "" && mt != "application/json" && mt != "text/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return Value{}, apiErr(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			"Content-Type %s is not accepted: send a JSON value as application/json (curl: -H 'Content-Type: application/json')", mt)
	}
	raw, err := readBody(r, "a JSON value")
	if err != nil {
		return Value{}, err
	}
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	if err := checkJSON(raw); err != nil {
		return Value{}, err
	}
	return Value{Kind: KindJSON, Data: raw}, nil
}

// checkJSON accepts what both Go and Python's json module read the same way:
// valid UTF-8 JSON text, nested at most maxJSONDepth deep, without integers
// longer than maxJSONDigits or floats beyond float64 (json.loads makes them inf).
func checkJSON(raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return apiErr(http.StatusBadRequest, CodeEmptyBody, "the request body is empty: send a JSON value")
	}
	if !utf8.Valid(raw) {
		return apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not valid UTF-8")
	}
	if !json.Valid(raw) {
		err := json.Unmarshal(raw, new(any))
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not valid JSON: %v (at byte %d)", se, se.Offset)
		}
		return apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not valid JSON: %v", err)
	}
	depth, inString, escaped := 0, false, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > maxJSONDepth {
				return apiErr(http.StatusBadRequest, CodeInvalidJSON, "the JSON is nested deeper than %d levels", maxJSONDepth)
			}
		case c == ']' || c == '}':
			depth--
		case c == '-' || c >= '0' && c <= '9':
			j := i
			for j < len(raw) && strings.IndexByte("+-.eE0123456789", raw[j]) >= 0 {
				j++
			}
			if err := checkJSONNumber(string(raw[i:j])); err != nil {
				return err
			}
			i = j - 1
		}
	}
	return nil
}

// checkJSONNumber refuses the numbers Python's json.loads would not turn into
// the value they mean: integers beyond its digit limit, floats beyond float64.
func checkJSONNumber(tok string) error {
	if !strings.ContainsAny(tok, ".eE") {
		if len(strings.TrimPrefix(tok, "-")) > maxJSONDigits {
			return apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body holds an integer longer than %d digits", maxJSONDigits)
		}
		return nil
	}
	if f, err := strconv.ParseFloat(tok, 64); err != nil && math.IsInf(f, 0) {
		return apiErr(http.StatusBadRequest, CodeInvalidJSON, "the number %.40s is too large for a float", tok)
	}
	return nil
}

func (jsonInput) EncodeRequest(v Value) (httpBody, error) {
	if v.Kind != KindJSON || !json.Valid(v.Data) {
		return httpBody{}, testInputError("testing_input_data must return a JSON-serialisable value, got a %s value", v.Kind)
	}
	return httpBody{ContentType: "application/json", Data: v.Data}, nil
}

func (jsonInput) ErrorCodes() []string { return []string{CodeEmptyBody, CodeInvalidJSON} }

func (jsonInput) OpenAPIRequest() map[string]any {
	return map[string]any{
		"required":    true,
		"description": "Any JSON value (object, array, string, number, true, false or null); predict receives it as json.loads returns it.",
		"content": map[string]any{
			"application/json": map[string]any{
				"schema": map[string]any{},
				"examples": map[string]any{
					"object": map[string]any{"value": map[string]any{"text": "hello world", "threshold": 0.5}},
					"array":  map[string]any{"value": []any{1, 2, 3}},
				},
			},
		},
	}
}

// fileInput accepts a file: the multipart/form-data field "file" (its
// filename is the name), or the raw body with the name from ?filename= or a
// Content-Disposition header. predict receives an object with .name, .data
// and .content_type.
type fileInput struct{}

func (fileInput) Want() Kind { return KindFile }

func (fileInput) Decode(_ context.Context, r *http.Request) (Value, error) {
	mt, _, err := requestMediaType(r)
	if err != nil {
		return Value{}, err
	}
	var p formPart
	if mt == "multipart/form-data" {
		if p, err = readMultipartField(r, "file"); err != nil {
			return Value{}, err
		}
		if p.filename == "" {
			return Value{}, apiErr(http.StatusBadRequest, CodeMissingFilename,
				"the multipart field \"file\" has no filename: send it as a file (curl: -F file=@path)")
		}
	} else {
		if p.data, err = readBody(r, "a file"); err != nil {
			return Value{}, err
		}
		p.contentType = r.Header.Get("Content-Type")
		if q := r.URL.Query(); q.Has("filename") {
			p.filename = q.Get("filename")
		} else if cd := r.Header.Get("Content-Disposition"); cd != "" {
			if _, params, err := mime.ParseMediaType(cd); err == nil {
				p.filename = params["filename"]
			}
		}
		if p.filename == "" {
			return Value{}, apiErr(http.StatusBadRequest, CodeMissingFilename,
				"the file has no name: add ?filename=NAME to the URL, send a Content-Disposition: attachment; filename=\"NAME\" header, or use the multipart/form-data field \"file\"")
		}
	}
	name := sanitizeFileName(p.filename)
	if name == "" {
		return Value{}, apiErr(http.StatusBadRequest, CodeBadFilename, "the file name %q has no usable characters", truncate([]byte(p.filename), 100))
	}
	return Value{Kind: KindFile, Name: name, ContentType: fileContentType(name, p.contentType, p.data), Data: p.data}, nil
}

func (fileInput) EncodeRequest(v Value) (httpBody, error) {
	if v.Kind != KindFile && v.Kind != KindBytes {
		return httpBody{}, testInputError("testing_input_data must return a file: (name, bytes), got a %s value", v.Kind)
	}
	if len(v.Data) == 0 {
		return httpBody{}, testInputError("testing_input_data returned an empty file")
	}
	ct := fileContentType(v.Name, v.ContentType, v.Data)
	name := sanitizeFileName(v.Name)
	if name == "" {
		name = "input" + extensionFor(ct)
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": "file", "filename": name}))
	h.Set("Content-Type", ct)
	pw, err := mw.CreatePart(h)
	if err != nil {
		return httpBody{}, err
	}
	if _, err := pw.Write(v.Data); err != nil {
		return httpBody{}, err
	}
	if err := mw.Close(); err != nil {
		return httpBody{}, err
	}
	return httpBody{ContentType: mw.FormDataContentType(), Data: b.Bytes()}, nil
}

func (fileInput) ErrorCodes() []string {
	return []string{CodeEmptyBody, CodeMissingFilename, CodeBadFilename, CodeInvalidMultipart}
}

func (fileInput) OpenAPIRequest() map[string]any {
	raw := map[string]any{
		"schema": map[string]any{"type": "string", "format": "binary"},
		"examples": map[string]any{"csv": map[string]any{
			"summary": "A raw body; the name comes from ?filename=data.csv or Content-Disposition: attachment; filename=\"data.csv\"",
			"value":   "a,b\n1,2\n",
		}},
	}
	return map[string]any{
		"required": true,
		"description": "A file with its name: the multipart/form-data field \"file\" (curl -F file=@data.csv), or the raw body " +
			"(any Content-Type) named by the query parameter filename or a Content-Disposition header. The name is reduced to its " +
			"last path element without control characters. predict receives an object with .name (str), .data (bytes) and .content_type (str).",
		"content": map[string]any{
			"multipart/form-data": map[string]any{
				"schema": map[string]any{
					"type": "object", "required": []string{"file"},
					"properties": map[string]any{"file": map[string]any{"type": "string", "format": "binary", "description": "The file; its filename is required."}},
				},
				"encoding": map[string]any{"file": map[string]any{"contentType": "*/*"}},
			},
			"application/octet-stream": raw,
			"*/*":                      raw,
		},
	}
}

// sanitizeFileName reduces a client's file name to something safe to join to
// a folder and to show: the last element of a / or \ path, without control
// or format characters (bidi overrides...), with characters Windows forbids
// replaced by _, at most 255 bytes (the extension kept). "" when nothing usable is left.
func sanitizeFileName(s string) string {
	s = strings.ToValidUTF8(s, "_")
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return -1
		case strings.ContainsRune(`:*?"<>|`, r):
			return '_'
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if s == "." || s == ".." {
		return ""
	}
	const maxLen = 255
	if len(s) > maxLen {
		ext := path.Ext(s)
		if len(ext) > 32 {
			ext = ""
		}
		stem := s[:maxLen-len(ext)]
		for !utf8.ValidString(stem) { // do not cut a character in half
			stem = stem[:len(stem)-1]
		}
		s = stem + ext
	}
	return s
}

// fileTypes are the content types of common data files, checked before the
// system's MIME tables (which differ between machines).
var fileTypes = map[string]string{
	".csv": "text/csv", ".tsv": "text/tab-separated-values", ".txt": "text/plain; charset=utf-8",
	".json": "application/json", ".jsonl": "application/x-ndjson", ".ndjson": "application/x-ndjson",
	".npy": npyMediaType, ".npz": "application/zip", ".zip": "application/zip", ".gz": "application/gzip",
	".tar": "application/x-tar", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff", ".bmp": "image/bmp", ".svg": "image/svg+xml",
	".pdf": "application/pdf", ".xml": "application/xml", ".html": "text/html; charset=utf-8", ".md": "text/markdown",
	".wav": "audio/wav", ".mp3": "audio/mpeg", ".mp4": "video/mp4", ".onnx": "application/octet-stream",
}

// fileContentType is a file's content type: the declared one unless it is
// missing or application/octet-stream, else the one its extension implies,
// else sniffed from its first bytes.
func fileContentType(name, declared string, data []byte) string {
	if declared != "" {
		if mt, params, err := mime.ParseMediaType(declared); err == nil &&
			mt != "application/octet-stream" && mt != "application/x-www-form-urlencoded" && !strings.HasPrefix(mt, "multipart/") {
			if ct := mime.FormatMediaType(mt, params); ct != "" {
				return ct
			}
		}
	}
	if ext := strings.ToLower(path.Ext(name)); ext != "" {
		if t, ok := fileTypes[ext]; ok {
			return t
		}
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
	}
	return http.DetectContentType(data)
}

// extensionFor is the extension to name a file of content type ct.
func extensionFor(ct string) string {
	mt, _, _ := mime.ParseMediaType(ct)
	switch mt {
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "image/gif":
		return ".gif"
	case "image/webp":
		return ".webp"
	case "image/bmp":
		return ".bmp"
	case "application/pdf":
		return ".pdf"
	case "application/zip":
		return ".zip"
	case "application/x-gzip", "application/gzip":
		return ".gz"
	case "text/plain":
		return ".txt"
	case "text/html":
		return ".html"
	case "text/xml", "application/xml":
		return ".xml"
	case "application/json":
		return ".json"
	}
	return ".bin"
}

// contentDisposition is the attachment header for a (sanitized) file name.
func contentDisposition(name string) string {
	if cd := mime.FormatMediaType("attachment", map[string]string{"filename": name}); cd != "" {
		return cd
	}
	return "attachment"
}
