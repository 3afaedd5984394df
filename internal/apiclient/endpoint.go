package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// EndpointClient returns an HTTP client for deployed endpoints that verifies
// their certificates with the PEM roots in caPEM (the platform's CA), or
// with the system's roots when caPEM is empty. It never skips verification.
func EndpointClient(caPEM []byte) (*http.Client, error) {
	if len(caPEM) == 0 {
		return &http.Client{}, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the CA file holds no PEM certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// Input is a /predict request body.
type Input struct {
	Body        []byte
	ContentType string
	// Filename names the input for file-input endpoints (?filename=); the
	// other input types ignore it.
	Filename string
}

// Media types of the inputs SniffInput tells apart.
const (
	NPYType  = "application/x-npy"
	JSONType = "application/json"
)

// SniffInput makes the /predict body for data read from a file called name
// ("" for stdin): PNG, JPEG and GIF are sent as images, .npy files as
// arrays, JSON (by extension or content) as JSON, anything else as a file
// with its name. An http(s) URL as name, with no data, asks an image
// endpoint to download it.
func SniffInput(name string, data []byte) Input {
	if data == nil && (strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://")) {
		b, _ := json.Marshal(map[string]string{"url": name})
		return Input{Body: b, ContentType: JSONType}
	}
	in := Input{Body: data, Filename: filepath.Base(name)}
	if name == "" || name == "-" {
		in.Filename = ""
	}
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		in.ContentType = "image/png"
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		in.ContentType = "image/jpeg"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		in.ContentType = "image/gif"
	case bytes.HasPrefix(data, []byte("\x93NUMPY")):
		in.ContentType = NPYType
	case strings.EqualFold(path.Ext(in.Filename), ".json"),
		path.Ext(in.Filename) == "" && looksLikeJSON(data):
		in.ContentType = JSONType
	default:
		in.ContentType = mime.TypeByExtension(path.Ext(in.Filename))
		if in.ContentType == "" {
			in.ContentType = http.DetectContentType(data)
		}
	}
	return in
}

func looksLikeJSON(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t)
}

// Output is a /predict answer.
type Output struct {
	ContentType string // the media type, without parameters
	// Filename is the name a file output gave (Content-Disposition, reduced
	// to its last path element); "" for the other outputs.
	Filename string
	Body     []byte
}

// Predict posts in to endpoint/predict with the endpoint token. An error
// answer is an *Error (with the Traceback when predict raised).
func Predict(ctx context.Context, hc *http.Client, endpoint, token string, in Input) (Output, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(endpoint), "/") + "/predict")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Output{}, fmt.Errorf("endpoint %q: want https://host[:port]", endpoint)
	}
	if in.Filename != "" {
		u.RawQuery = url.Values{"filename": {in.Filename}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(in.Body))
	if err != nil {
		return Output{}, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(token))
	req.Header.Set("User-Agent", "algocloud-cli")
	if in.ContentType != "" {
		req.Header.Set("Content-Type", in.ContentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Output{}, err // a *url.Error: it names the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return Output{}, readError(resp)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Output{}, fmt.Errorf("read the answer: %w", err)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return Output{ContentType: mt, Filename: dispositionFilename(resp.Header.Get("Content-Disposition")), Body: body}, nil
}

// dispositionFilename is the file name of a Content-Disposition header
// (filename* decoded), without any folder; "" when there is none.
func dispositionFilename(h string) string {
	if h == "" {
		return ""
	}
	_, params, err := mime.ParseMediaType(h)
	if err != nil {
		return ""
	}
	name := strings.ReplaceAll(params["filename"], `\`, "/")
	name = path.Base(name)
	if name == "." || name == "/" || name == ".." {
		return ""
	}
	return name
}
