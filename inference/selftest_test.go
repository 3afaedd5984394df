package inference

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"github.com/algocloud/algocloud/inference/inferapi"
	"image"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/spec"
)

// exampleType reads an example's algocloud.json.
func exampleType(t *testing.T, dir string) (spec.IOType, spec.IOType) {
	b, err := os.ReadFile(filepath.Join(dir, "algocloud.json"))
	require.NoError(t, err)
	var m struct {
		Name          string
		APIName       string `json:"api_name"`
		Input, Output spec.IOType
	}
	require.NoError(t, json.Unmarshal(b, &m))
	require.NotEmpty(t, m.Name)
	require.True(t, spec.ValidAPIName(m.APIName), m.APIName)
	return m.Input, m.Output
}

func TestExamples(t *testing.T) {
	t.Run("segmentation", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join("..", "examples", "segmentation")
		in, out := exampleType(t, dir)
		ts := startServer(t, dir, in, out, func(c *Config) { c.Threads = 2 })
		ts.waitReady(t)
		res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
		require.NoError(t, err)
		require.True(t, res.OK, "%+v", res)
		require.Equal(t, "PNG 128x96 Gray", res.Summary)
		mask := decodePNG(t, res.Output).(*image.Gray)
		require.Equal(t, uint8(255), mask.GrayAt(64, 48).Y, "the disc's centre is foreground")
		require.Equal(t, uint8(0), mask.GrayAt(2, 2).Y, "the corner is background")
	})
	t.Run("measurements", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join("..", "examples", "measurements")
		in, out := exampleType(t, dir)
		ts := startServer(t, dir, in, out, nil)
		ts.waitReady(t)
		res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
		require.NoError(t, err)
		require.True(t, res.OK, "%+v", res)
		var m struct {
			Width, Height   int
			DominantChannel string    `json:"dominant_channel"`
			MeanRGB         []float64 `json:"mean_rgb"`
			Histogram       []int     `json:"brightness_histogram"`
		}
		require.NoError(t, json.Unmarshal(res.Output, &m))
		require.Equal(t, 64, m.Width)
		require.Equal(t, 48, m.Height)
		require.Equal(t, "red", m.DominantChannel)
		require.Equal(t, 200.0, m.MeanRGB[0])
		require.Len(t, m.Histogram, 8)
	})
	t.Run("polygons", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join("..", "examples", "polygons")
		in, out := exampleType(t, dir)
		require.Equal(t, spec.JSON, in)
		ts := startServer(t, dir, in, out, nil)
		ts.waitReady(t)
		res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
		require.NoError(t, err)
		require.True(t, res.OK, "%+v", res)
		require.JSONEq(t, `{"count": 2, "total_area": 14.0, "polygons": [
			{"vertices": 4, "area": 12.0, "perimeter": 14.0, "centroid": [2.0, 1.5], "bbox": [0.0, 0.0, 4.0, 3.0]},
			{"vertices": 3, "area": 2.0, "perimeter": 6.472136, "centroid": [1.0, 0.666667], "bbox": [0.0, 0.0, 2.0, 2.0]}]}`,
			string(res.Output))
	})
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	dir := filepath.Join("..", "examples", "measurements")
	ts := startServer(t, dir, spec.Image, spec.JSON, func(c *Config) {
		c.CertFile, c.KeyFile = certFile, keyFile
	})
	ts.URL = "https://" + ts.URL[len("http://"):]
	ts.Client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}}
	ts.waitReady(t)
	res, err := inferapi.SelfTest(t.Context(), ts.Client, ts.URL, testToken)
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res)

	resp, err := ts.Client.Get(ts.URL + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 2, resp.ProtoMajor, "HTTP/2 over TLS")
	var doc struct{ Servers []struct{ URL string } }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	require.Equal(t, ts.URL, doc.Servers[0].URL)

	_, err = (&http.Client{Timeout: time.Minute}).Get(ts.URL + "/healthz")
	require.Error(t, err, "a client that does not trust the certificate is refused")
}

// testCert writes a certificate for 127.0.0.1 and its key, and returns a
// pool that trusts it.
func testCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	ca := testenv.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.WriteLeaf(t, "algocloud test", certFile, keyFile)
	return certFile, keyFile, ca.Pool
}
