package payloadcodec

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// TokenPrefix starts every operator token, so one is recognised in a paste.
const TokenPrefix = "acc_"

// CookieName is the cookie the sign-in page sets, which the Temporal UI sends
// with its codec calls (its codec setting includeCredentials).
const CookieName = "algocloud_codec"

// maxBody bounds a codec request: the UI sends one event's payloads at a
// time, each under Temporal's 2 MB payload limit.
const maxBody = 16 << 20

// OperatorToken is the codec endpoint's credential, derived from the
// platform's key: whoever holds the key can print it (`algocloud
// codec-token`), nobody else can. It is stable for a key, so rotating the
// key rotates the token.
func OperatorToken(master []byte) (string, error) {
	if len(master) != MasterKeySize {
		return "", fmt.Errorf("codec token: encryption key has %d bytes, want %d", len(master), MasterKeySize)
	}
	b, err := hkdf.Key(sha256.New, master, nil, tokenInfo, 32)
	if err != nil {
		return "", fmt.Errorf("codec token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// HandlerOptions configure the codec endpoint.
type HandlerOptions struct {
	// Codec encodes and decodes.
	Codec *Codec
	// Token is the operator token (OperatorToken); requests must present it
	// as "Authorization: Bearer <token>" (the temporal CLI's --codec-auth)
	// or in the cookie the sign-in page sets. Empty refuses everything.
	Token string
	// AllowedOrigins are the origins of Temporal UIs allowed to call the
	// endpoint from a browser (CORS with credentials); others get no CORS
	// headers, so their pages cannot read answers.
	AllowedOrigins []string
	// Prefix is the path the endpoint is served under; default "/codec".
	// The Temporal UI and CLI are given <base URL><Prefix> and post to
	// <Prefix>/encode and <Prefix>/decode.
	Prefix string
	Logger *slog.Logger
}

// Handler serves the remote codec protocol of the Temporal UI and CLI: POST
// <prefix>/encode and <prefix>/decode with {"payloads": [...]} (protobuf
// JSON) and an X-Namespace header, answering the same shape. GET <prefix>/
// is a sign-in page that stores the operator token in a cookie for the
// browser UI. Every codec call needs the operator token.
type Handler struct {
	o       HandlerOptions
	tokHash [32]byte
	mux     *http.ServeMux
}

// NewHandler returns the codec endpoint for o.
func NewHandler(o HandlerOptions) *Handler {
	if o.Prefix == "" {
		o.Prefix = "/codec"
	}
	o.Prefix = strings.TrimSuffix(o.Prefix, "/")
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &Handler{o: o, tokHash: sha256.Sum256([]byte(o.Token)), mux: http.NewServeMux()}
	for _, op := range []string{"encode", "decode"} {
		h.mux.HandleFunc("OPTIONS "+o.Prefix+"/"+op, h.preflight)
		h.mux.HandleFunc("POST "+o.Prefix+"/"+op, h.codec(op))
	}
	h.mux.HandleFunc("GET "+o.Prefix+"/{$}", h.signInPage)
	h.mux.HandleFunc("POST "+o.Prefix+"/session", h.signIn)
	h.mux.HandleFunc(o.Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such codec path: POST "+o.Prefix+"/encode or "+o.Prefix+"/decode", "")
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// cors answers an allowed origin with credentials, so the Temporal UI (on
// its own port) may call and read; other origins get nothing.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || !slices.Contains(h.o.AllowedOrigins, origin) {
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	w.Header().Set("Access-Control-Allow-Credentials", "true")
	w.Header().Add("Vary", "Origin")
}

func (h *Handler) preflight(w http.ResponseWriter, r *http.Request) {
	h.cors(w, r)
	w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	w.Header().Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization, Authorization-Extras")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// authorized checks the bearer token or the cookie in constant time; it
// answers 401 (no credential) or 403 (a wrong one) itself.
func (h *Handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	var presented string
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, _ := strings.Cut(a, " ")
		if strings.EqualFold(scheme, "Bearer") {
			presented = strings.TrimSpace(tok)
		}
	} else if c, err := r.Cookie(CookieName); err == nil {
		presented = c.Value
	}
	if presented == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="algocloud-codec"`)
		writeJSONError(w, http.StatusUnauthorized, "unauthorized",
			"the codec endpoint needs the operator token (algocloud codec-token): Authorization: Bearer <token>, or sign in at "+h.o.Prefix+"/", "Authorization")
		return false
	}
	got := sha256.Sum256([]byte(presented))
	if h.o.Token == "" || subtle.ConstantTimeCompare(got[:], h.tokHash[:]) != 1 {
		writeJSONError(w, http.StatusForbidden, "forbidden", "the token is not this platform's operator token (algocloud codec-token prints it from the platform's key)", "Authorization")
		return false
	}
	return true
}

func (h *Handler) codec(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.cors(w, r)
		if !h.authorized(w, r) {
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeJSONError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body is over the limit of %d bytes", maxBody), "")
			return
		}
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "bad_body", "read the request body: "+err.Error(), "")
			return
		}
		var in commonpb.Payloads
		if err := protojson.Unmarshal(body, &in); err != nil {
			writeJSONError(w, http.StatusBadRequest, "invalid_payloads", `body must be {"payloads": [{"metadata": {...}, "data": "<base64>"}]}: `+err.Error(), "payloads")
			return
		}
		var out []*commonpb.Payload
		if op == "encode" {
			out, err = h.o.Codec.Encode(in.Payloads)
		} else {
			out, err = h.o.Codec.Decode(in.Payloads)
		}
		if err != nil {
			// Errors name a payload index and key ID, never content.
			writeJSONError(w, http.StatusUnprocessableEntity, "undecodable_payload", err.Error(), "payloads")
			return
		}
		js, err := protojson.Marshal(&commonpb.Payloads{Payloads: out})
		if err != nil {
			h.o.Logger.Error("codec endpoint: marshal answer", "error", err)
			writeJSONError(w, http.StatusInternalServerError, "internal", "internal error; it has been logged", "")
			return
		}
		if len(out) == 0 {
			js = []byte(`{"payloads":[]}`) // the UI indexes the list; protojson drops an empty one
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(js)
	}
}

var signInTmpl = template.Must(template.New("signin").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>algocloud codec sign-in</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>Decode payloads in the Temporal UI</h1>
{{if .Message}}<p><strong>{{.Message}}</strong></p>{{end}}
<p>Workflow payloads are encrypted. Paste the operator token (<code>algocloud codec-token</code> prints it from the
platform's key) to let this browser's Temporal UI decode them through this endpoint. The token is kept in an
HttpOnly cookie for this site only.</p>
<form method="post" action="{{.Action}}">
<input type="password" name="token" autocomplete="off" size="50" aria-label="operator token">
<button type="submit">Sign in</button>
</form></body></html>
`))

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	h.page(w, http.StatusOK, "")
}

func (h *Handler) page(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = signInTmpl.Execute(w, map[string]string{"Action": h.o.Prefix + "/session", "Message": msg})
}

// signIn checks the pasted token and keeps it in a cookie the UI's codec
// calls carry (same site: the UI and the API differ only by port).
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	tok := strings.TrimSpace(r.PostFormValue("token"))
	got := sha256.Sum256([]byte(tok))
	if tok == "" || h.o.Token == "" || subtle.ConstantTimeCompare(got[:], h.tokHash[:]) != 1 {
		h.page(w, http.StatusForbidden, "That is not this platform's operator token.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: tok, Path: h.o.Prefix, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600,
	})
	h.page(w, http.StatusOK, "Signed in: the Temporal UI in this browser now decodes payloads (for 12 hours).")
}

// writeJSONError answers {"code", "message"} and, when field is set,
// "fields": [{"field", "message"}] like the REST API's errors.
func writeJSONError(w http.ResponseWriter, status int, code, msg, field string) {
	body := map[string]any{"code": code, "message": msg}
	if field != "" {
		body["fields"] = []map[string]string{{"field": field, "message": msg}}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
