package acme

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	legoacme "github.com/go-acme/lego/v4/acme"
	"github.com/stretchr/testify/require"
)

func TestRefused(t *testing.T) {
	names := []string{"seg.algocloud.test"}
	problem := func(typ string, subs ...legoacme.SubProblem) error {
		// As lego returns it: wrapped on the way up.
		return fmt.Errorf("outer: %w", &legoacme.ProblemDetails{Type: typ, Detail: "because", HTTPStatus: 400, SubProblems: subs})
	}
	for _, tc := range []struct {
		err  error
		want string // "" means not refused
	}{
		{problem(problemNS + "rejectedIdentifier"), problemNS + "rejectedIdentifier"},
		{problem(problemNS + "caa"), problemNS + "caa"},
		{problem(problemNS + "malformed"), problemNS + "malformed"},
		{problem(problemNS+"compound", legoacme.SubProblem{Type: problemNS + "rejectedIdentifier",
			Identifier: legoacme.Identifier{Value: "x.test"}}), problemNS + "rejectedIdentifier"},
		{problem(problemNS + "rateLimited"), ""},
		{problem(problemNS + "serverInternal"), ""},
		{problem(problemNS + "badNonce"), ""},
		{errors.New("connection refused"), ""},
	} {
		err := refused(names, tc.err)
		var re *RefusedError
		if tc.want == "" {
			require.False(t, errors.As(err, &re), "%v", tc.err)
			require.Equal(t, tc.err, err)
			continue
		}
		require.ErrorAs(t, err, &re, "%v", tc.err)
		require.Equal(t, tc.want, re.Type)
		require.Equal(t, names, re.Names)
		var pd *legoacme.ProblemDetails
		require.ErrorAs(t, err, &pd, "lego's problem stays reachable")
	}
}

func TestHTTPTokensHandler(t *testing.T) {
	h := &HTTPTokens{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b := make([]byte, 256)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode, string(b[:n])
	}
	code, _ := get(ChallengePath + "tok")
	require.Equal(t, http.StatusNotFound, code)

	require.NoError(t, h.Present("seg.algocloud.test", "tok", "tok.thumbprint"))
	code, body := get(ChallengePath + "tok")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "tok.thumbprint", body)
	code, _ = get("/other/tok")
	require.Equal(t, http.StatusNotFound, code)

	require.NoError(t, h.CleanUp("seg.algocloud.test", "tok", "tok.thumbprint"))
	code, _ = get(ChallengePath + "tok")
	require.Equal(t, http.StatusNotFound, code)
}
