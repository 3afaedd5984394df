package inference

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
)

// imageInput accepts an image as a raw body (image/png, image/jpeg, image/gif,
// application/octet-stream or no Content-Type: the format is sniffed), as the
// multipart/form-data field "image", or as application/json {"url": ...} or
// {"image_base64": ...}.
type imageInput struct {
	maxPixels int64
	fetch     *fetcher
	// pillowJPEG sends JPEGs to the Python workers encoded, for Pillow to
	// decode (decodeImageFor); false for ONNX, which decodes in Go.
	pillowJPEG bool
}

// imageJSON is the application/json request body for image inputs.
type imageJSON struct {
	URL         *string `json:"url"`
	ImageBase64 *string `json:"image_base64"`
}

func (c *imageInput) Want() Kind { return KindTensor }

func (c *imageInput) Decode(ctx context.Context, r *http.Request) (Value, error) {
	data, err := c.imageBytes(ctx, r)
	if err != nil {
		return Value{}, err
	}
	// The bytes are in: take a work slot before the decoded pixels take memory.
	if err := enterWork(ctx); err != nil {
		return Value{}, err
	}
	return decodeImageFor(data, c.maxPixels, c.pillowJPEG)
}

// imageBytes extracts the encoded image from whichever form the request uses.
func (c *imageInput) imageBytes(ctx context.Context, r *http.Request) ([]byte, error) {
	mt := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, apiErr(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "unreadable Content-Type %q", ct)
		}
	}
	switch mt {
	case "", "application/octet-stream", "image/png", "image/jpeg", "image/jpg", "image/gif":
		return readBody(r, "an image")
	case "multipart/form-data":
		p, err := readMultipartField(r, "image")
		return p.data, err
	case "application/json":
		return c.jsonImage(ctx, r.Body)
	}
	hint := "send the image as image/png, image/jpeg, image/gif, application/octet-stream, multipart/form-data (field \"image\") or application/json ({\"url\": ...} or {\"image_base64\": ...})"
	if strings.HasPrefix(mt, "image/") {
		return nil, apiErr(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "%s images are not supported: %s", mt, hint)
	}
	return nil, apiErr(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Type %s is not accepted: %s", mt, hint)
}

// readBody reads a whole request body, which http.MaxBytesReader bounds; what
// names the expected content in the empty-body error ("an image"). A
// Content-Length sizes the buffer at once (the handler has refused one over
// the limit), sparing io.ReadAll's copies as it grows.
func readBody(r *http.Request, what string) ([]byte, error) {
	hint := int64(0)
	if r.ContentLength > 0 && r.ContentLength < 1<<31 {
		hint = r.ContentLength
	}
	buf := bytes.NewBuffer(make([]byte, 0, hint+bytes.MinRead))
	_, err := buf.ReadFrom(r.Body)
	b := buf.Bytes()
	if err != nil {
		return nil, bodyError(err)
	}
	if len(b) == 0 {
		return nil, apiErr(http.StatusBadRequest, CodeEmptyBody, "the request body is empty: send %s", what)
	}
	return b, nil
}

// bodyError maps a failed body read to its API error.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return apiErr(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the request body exceeds %d bytes", mbe.Limit)
	}
	return apiErr(http.StatusBadRequest, CodeEmptyBody, "read the request body: %v", err)
}

// formPart is one multipart/form-data field's content.
type formPart struct {
	data        []byte
	filename    string // as the client sent it (unsanitized); "" when none
	contentType string // the part's Content-Type header
}

// readMultipartField streams the parts (nothing is buffered to disk) up to
// the named field and reads it; an absent or empty field is a 400.
func readMultipartField(r *http.Request, field string) (formPart, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return formPart{}, apiErr(http.StatusBadRequest, CodeInvalidMultipart, "malformed multipart body: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return formPart{}, apiErr(http.StatusBadRequest, CodeInvalidMultipart, "the multipart body has no field named %q", field)
		}
		if err != nil {
			return formPart{}, multipartError(err)
		}
		if part.FormName() != field {
			if _, err := io.Copy(io.Discard, part); err != nil {
				return formPart{}, multipartError(err)
			}
			continue
		}
		b, err := io.ReadAll(part)
		if err != nil {
			return formPart{}, multipartError(err)
		}
		if len(b) == 0 {
			return formPart{}, apiErr(http.StatusBadRequest, CodeEmptyBody, "the multipart field %q is empty", field)
		}
		fp := formPart{data: b, contentType: part.Header.Get("Content-Type")}
		if _, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition")); err == nil {
			fp.filename = params["filename"] // part.FileName() would drop all but the last path element silently
		}
		return fp, nil
	}
}

func multipartError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return bodyError(err)
	}
	return apiErr(http.StatusBadRequest, CodeInvalidMultipart, "malformed multipart body: %v", err)
}

func (c *imageInput) jsonImage(ctx context.Context, body io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, bodyError(err)
	}
	if len(raw) == 0 {
		return nil, apiErr(http.StatusBadRequest, CodeEmptyBody, "the request body is empty: send {\"url\": ...} or {\"image_base64\": ...}")
	}
	var req imageJSON
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not a JSON object: %v", err)
	}
	switch {
	case req.URL != nil && req.ImageBase64 != nil:
		return nil, apiErr(http.StatusBadRequest, CodeInvalidJSON, "give either \"url\" or \"image_base64\", not both")
	case req.URL != nil:
		return c.fetch.fetch(ctx, *req.URL)
	case req.ImageBase64 != nil:
		return decodeBase64(*req.ImageBase64)
	}
	return nil, apiErr(http.StatusBadRequest, CodeInvalidJSON, "the JSON body needs \"url\" (an http(s) URL of an image) or \"image_base64\"")
}

// decodeBase64 accepts standard or URL-safe base64, padded or not, with
// whitespace and an optional data: URI prefix.
func decodeBase64(s string) ([]byte, error) {
	if strings.HasPrefix(s, "data:") {
		if i := strings.Index(s, ","); i >= 0 {
			s = s[i+1:]
		}
	}
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return nil, apiErr(http.StatusBadRequest, CodeEmptyBody, "image_base64 is empty")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, apiErr(http.StatusBadRequest, CodeBadBase64, "image_base64 is not valid base64")
}

func (c *imageInput) EncodeRequest(v Value) (httpBody, error) {
	if v.Kind == KindBytes { // testing_input_data returned encoded image bytes
		if _, err := decodeImage(v.Data, c.maxPixels); err != nil {
			return httpBody{}, testInputError("the bytes testing_input_data returned are not a usable image: %v", err)
		}
		return httpBody{ContentType: http.DetectContentType(v.Data), Data: v.Data}, nil
	}
	b, err := encodeTensorPNG(v)
	if err != nil {
		return httpBody{}, testInputError("testing_input_data must return an image array: %v", err)
	}
	return httpBody{ContentType: "image/png", Data: b}, nil
}

// testInputError is the error for a value testing_input_data returned that
// the input type cannot carry.
func testInputError(format string, args ...any) *APIError {
	e := apiErr(http.StatusInternalServerError, CodeTestInputFailed, "encoding testing_input_data's value failed: "+format, args...)
	e.Stage = StageTestInputOutput
	return e
}

func (c *imageInput) ErrorCodes() []string {
	return []string{CodeEmptyBody, CodeNotAnImage, CodeCorruptImage, CodeInvalidJSON, CodeBadBase64, CodeInvalidMultipart,
		CodeBadURL, CodeURLForbidden, CodeURLFetchFailed}
}

func (c *imageInput) OpenAPIRequest() map[string]any {
	binary := map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
	return map[string]any{
		"required":    true,
		"description": "The input image (PNG, JPEG or GIF), as raw bytes, a multipart field \"image\", a URL the server downloads, or base64.",
		"content": map[string]any{
			"image/png":                binary,
			"image/jpeg":               binary,
			"application/octet-stream": binary,
			"multipart/form-data": map[string]any{"schema": map[string]any{
				"type": "object", "required": []string{"image"},
				"properties": map[string]any{"image": map[string]any{"type": "string", "format": "binary"}},
			}},
			"application/json": map[string]any{
				"schema": map[string]any{"oneOf": []any{
					map[string]any{"type": "object", "required": []string{"url"},
						"properties": map[string]any{"url": map[string]any{"type": "string", "format": "uri", "description": "An http(s) URL of the image; private addresses are refused."}}},
					map[string]any{"type": "object", "required": []string{"image_base64"},
						"properties": map[string]any{"image_base64": map[string]any{"type": "string", "format": "byte", "description": "The image file, base64-encoded."}}},
				}},
				"examples": map[string]any{
					"url":    map[string]any{"value": map[string]any{"url": "https://example.com/image.png"}},
					"base64": map[string]any{"value": map[string]any{"image_base64": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP438AAAAQBAYDFKhhdAAAAAElFTkSuQmCC"}},
				},
			},
		},
	}
}
