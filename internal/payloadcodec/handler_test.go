package payloadcodec

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
)

const uiOrigin = "http://127.0.0.1:8233"

func startEndpoint(t *testing.T) (*httptest.Server, *Codec, string) {
	t.Helper()
	m := masterKey(t)
	c := newCodec(t, m)
	tok, err := OperatorToken(m)
	require.NoError(t, err)
	srv := httptest.NewServer(NewHandler(HandlerOptions{Codec: c, Token: tok, AllowedOrigins: []string{uiOrigin}}))
	t.Cleanup(srv.Close)
	return srv, c, tok
}

func post(t *testing.T, hc *http.Client, u string, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := hc.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, b
}

func encryptedBody(t *testing.T, c *Codec, v any) string {
	t.Helper()
	enc, err := c.Encode(plainPayloads(t, v))
	require.NoError(t, err)
	js, err := protojson.Marshal(&commonpb.Payloads{Payloads: enc})
	require.NoError(t, err)
	return string(js)
}

func errorField(t *testing.T, body []byte) (code, field string) {
	t.Helper()
	var e struct {
		Code   string `json:"code"`
		Fields []struct {
			Field string `json:"field"`
		} `json:"fields"`
	}
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	if len(e.Fields) > 0 {
		field = e.Fields[0].Field
	}
	return e.Code, field
}

func TestEndpointRefusesWithoutTheOperatorToken(t *testing.T) {
	srv, c, tok := startEndpoint(t)
	body := encryptedBody(t, c, "secret-marker")
	res, b := post(t, srv.Client(), srv.URL+"/codec/decode", body, nil)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	require.NotEmpty(t, res.Header.Get("WWW-Authenticate"))
	code, field := errorField(t, b)
	require.Equal(t, "unauthorized", code)
	require.Equal(t, "Authorization", field)
	require.NotContains(t, string(b), "secret-marker")

	for _, bad := range []string{"Bearer " + tok + "x", "Bearer acc_wrong", "Basic " + tok} {
		res, b = post(t, srv.Client(), srv.URL+"/codec/decode", body, map[string]string{"Authorization": bad})
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, res.StatusCode, bad)
		require.NotContains(t, string(b), "secret-marker")
	}
	res, _ = post(t, srv.Client(), srv.URL+"/codec/encode", `{"payloads":[]}`, map[string]string{"Authorization": "Bearer nope"})
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	// A wrong cookie is refused too.
	res, _ = post(t, srv.Client(), srv.URL+"/codec/decode", body, map[string]string{"Cookie": CookieName + "=acc_wrong"})
	require.Equal(t, http.StatusForbidden, res.StatusCode)
}

func TestEndpointDecodesForTheOperator(t *testing.T) {
	srv, c, tok := startEndpoint(t)
	res, b := post(t, srv.Client(), srv.URL+"/codec/decode", encryptedBody(t, c, "secret-marker"), map[string]string{"Authorization": "Bearer " + tok})
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
	var out commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(b, &out))
	var s string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(out.Payloads[0], &s))
	require.Equal(t, "secret-marker", s)

	// The SDK's remote codec (what the temporal CLI's --codec-endpoint and
	// --codec-auth use) round-trips through the endpoint.
	remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint: srv.URL + "/codec",
		ModifyRequest: func(r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+tok)
			r.Header.Set("X-Namespace", "default")
			return nil
		},
	})
	in := plainPayloads(t, "through the remote codec", 7)
	enc, err := remote.Encode(in)
	require.NoError(t, err)
	require.Equal(t, MetadataEncodingEncrypted, string(enc[0].Metadata[converter.MetadataEncoding]))
	local, err := c.Decode(enc)
	require.NoError(t, err)
	require.Equal(t, in[0].Data, local[0].Data)
	dec, err := remote.Decode(enc)
	require.NoError(t, err)
	require.Equal(t, in[1].Data, dec[1].Data)

	// Empty lists answer an empty list, which the UI indexes.
	res, b = post(t, srv.Client(), srv.URL+"/codec/decode", `{"payloads":[]}`, map[string]string{"Authorization": "Bearer " + tok})
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.JSONEq(t, `{"payloads":[]}`, string(b))
}

func TestEndpointBadInputIsA4xxNamingTheField(t *testing.T) {
	srv, _, tok := startEndpoint(t)
	auth := map[string]string{"Authorization": "Bearer " + tok}
	res, b := post(t, srv.Client(), srv.URL+"/codec/decode", `{"payloads": 3}`, auth)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	code, field := errorField(t, b)
	require.Equal(t, "invalid_payloads", code)
	require.Equal(t, "payloads", field)

	// Encrypted with a key the platform does not hold.
	other := newCodec(t, masterKey(t))
	res, b = post(t, srv.Client(), srv.URL+"/codec/decode", encryptedBody(t, other, "x"), auth)
	require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode)
	code, field = errorField(t, b)
	require.Equal(t, "undecodable_payload", code)
	require.Equal(t, "payloads", field)
	require.Contains(t, string(b), other.KeyID())

	res, _ = post(t, srv.Client(), srv.URL+"/codec/nothing", `{}`, auth)
	require.Equal(t, http.StatusNotFound, res.StatusCode)
	res, b = post(t, srv.Client(), srv.URL+"/codec/decode", `{"payloads":[{"data":"`+strings.Repeat("A", maxBody)+`"}]}`, auth)
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode, string(b[:min(len(b), 200)]))
}

func TestEndpointCORSForTheUIOnly(t *testing.T) {
	srv, _, _ := startEndpoint(t)
	pre := func(origin string) *http.Response {
		req, err := http.NewRequest(http.MethodOptions, srv.URL+"/codec/decode", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace")
		res, err := srv.Client().Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res
	}
	res := pre(uiOrigin)
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.Equal(t, uiOrigin, res.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "true", res.Header.Get("Access-Control-Allow-Credentials"))
	require.Contains(t, strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")), "x-namespace")
	res = pre("http://evil.example")
	require.Empty(t, res.Header.Get("Access-Control-Allow-Origin"))
}

func TestSignInCookieLetsTheBrowserUIDecode(t *testing.T) {
	srv, c, tok := startEndpoint(t)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	hc := &http.Client{Jar: jar}

	res, err := hc.Get(srv.URL + "/codec/")
	require.NoError(t, err)
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, string(page), `action="/codec/session"`)

	res, err = hc.PostForm(srv.URL+"/codec/session", url.Values{"token": {"acc_wrong"}})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	res, _ = post(t, hc, srv.URL+"/codec/decode", encryptedBody(t, c, "m"), map[string]string{"Origin": uiOrigin})
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)

	res, err = hc.PostForm(srv.URL+"/codec/session", url.Values{"token": {tok}})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var ck *http.Cookie
	for _, k := range res.Cookies() {
		if k.Name == CookieName {
			ck = k
		}
	}
	require.NotNil(t, ck)
	require.True(t, ck.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, ck.SameSite)
	require.Equal(t, "/codec", ck.Path)

	res, b := post(t, hc, srv.URL+"/codec/decode", encryptedBody(t, c, "via-cookie"), map[string]string{"Origin": uiOrigin})
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
	require.Equal(t, uiOrigin, res.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, string(b), "InZpYS1jb29raWUi", "the decoded \"via-cookie\" in base64")
}
