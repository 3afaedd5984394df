package workflows

import (
	"encoding/hex"

	"go.temporal.io/sdk/workflow"
)

// validateRotateToken refuses a rotation while another step runs (the
// caller hears 409 and retries: a step such as Install may run for many
// minutes, longer than an API call should wait), after deletion, and for
// anything that is not a SHA-256 in hex.
func (d *deployment) validateRotateToken(r RotateTokenRequest) error {
	if err := d.ready(UpdateRotateToken); err != nil {
		return err
	}
	if b, err := hex.DecodeString(r.TokenSHA256); err != nil || len(b) != 32 || hex.EncodeToString(b) != r.TokenSHA256 {
		return d.reject("token_sha256 must be 64 lowercase hex digits")
	}
	return nil
}

// rotateToken stores the new token's hash and, when the endpoint is live,
// hands it to the running server (StartService with the serving build: the
// local provider rewrites the token file that the server re-reads at each
// request, re-attaching without a restart; a remote server gets a new
// bundle). The update returns only after that, so whoever sees the new token
// knows that the old one is refused. A stopped or draft deployment only
// stores it: Start and Complete pass it to the server they start. If pushing
// it fails, the previous hash stays (the endpoint keeps its token).
func (d *deployment) rotateToken(ctx workflow.Context, r RotateTokenRequest) (State, error) {
	err := d.run(ctx, UpdateRotateToken, func(ctx workflow.Context) (string, error) {
		if d.st.Status != StatusLive || d.st.Live == nil {
			d.st.TokenSHA256 = r.TokenSHA256
			return "endpoint token rotated; it takes effect when the endpoint starts", nil
		}
		old := d.st.TokenSHA256
		d.st.TokenSHA256 = r.TokenSHA256
		if _, err := d.startService(ctx, false); err != nil {
			d.st.TokenSHA256 = old
			return "", err
		}
		return "endpoint token rotated; the previous token is refused", nil
	})
	return d.st, err
}
