package link

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/algocloud/algocloud/agent/protocol"
)

// uploaderKey is the context key under which a running handler finds the
// uploader of its command (UploadArtifact).
type uploaderKey struct{}

// uploader uploads the artifacts of one running command.
type uploader struct {
	l *Link
	e *execution
}

// ErrNoUploader is UploadArtifact's error outside a handler's context.
var ErrNoUploader = errors.New("link: no command to upload an artifact for (UploadArtifact outside a handler)")

// UploadArtifact uploads data as the artifact name of the command whose
// handler ctx was given to (PUT protocol.ArtifactPath under the command's
// current lease), retrying while the platform cannot be reached, until it is
// stored, refused or ctx ends. A handler uploads before it returns the
// result that names the artifact, so a result never names what the platform
// does not have. A refusal wraps the protocol's error (ErrStaleLease,
// ErrForbidden, ErrUnknownCommand); an oversized or misnamed artifact is
// refused here, before anything is sent.
//
// Why through the context and not a new Handler method: existing handlers
// keep their signature, and only the kinds that make files need it.
func UploadArtifact(ctx context.Context, name string, data []byte) error {
	u, ok := ctx.Value(uploaderKey{}).(*uploader)
	if !ok {
		return ErrNoUploader
	}
	if err := protocol.ValidArtifactName(name); err != nil {
		return fmt.Errorf("upload artifact %q: name %w", name, err)
	}
	if len(data) > protocol.MaxArtifact {
		return fmt.Errorf("upload artifact %q: %d bytes, over the %d-byte limit", name, len(data), protocol.MaxArtifact)
	}
	l := u.l
	backoff := l.cfg.MinBackoff
	var staleSince time.Time
	for {
		err := l.putArtifact(ctx, u.e.cmd.ID, u.e.lease(), name, data)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("upload artifact %q: %w", name, ctx.Err())
		case errors.Is(err, protocol.ErrStaleLease):
			// The platform may have handed the command out again while it
			// runs here; the next poll moves this execution to the new
			// lease (dispatch). Give that a while before giving up.
			if staleSince.IsZero() {
				staleSince = time.Now()
			} else if time.Since(staleSince) > staleGrace {
				return fmt.Errorf("upload artifact %q: %w", name, err)
			}
		case errors.Is(err, protocol.ErrForbidden), errors.Is(err, protocol.ErrUnknownCommand), errors.Is(err, errRefused):
			return fmt.Errorf("upload artifact %q: %w", name, err)
		}
		l.log.Warn("agent: artifact not uploaded; retrying", "command", u.e.cmd.ID, "artifact", name, "error", err, "in", backoff)
		sleep(ctx, jitter(backoff))
		backoff = min(backoff*2, l.cfg.MaxBackoff)
	}
}

// staleGrace is how long an upload refused for a stale lease is retried
// (under the lease the execution then has) before the handler is told.
const staleGrace = 2 * time.Minute

// errRefused marks a 4xx answer to an upload that a retry would not change.
var errRefused = errors.New("refused")

// putArtifact makes one upload.
func (l *Link) putArtifact(ctx context.Context, commandID, lease, name string, data []byte) error {
	ref, err := url.Parse(protocol.ArtifactPath(l.cfg.Server, commandID, name))
	if err != nil {
		return err
	}
	// Long enough for MaxArtifact over a slow link, short enough that a
	// stalled connection is noticed and retried.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, l.base.ResolveReference(ref).String(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	l.mu.Lock()
	cred := l.cred
	l.mu.Unlock()
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set(protocol.VersionHeader, protocol.Version)
	req.Header.Set(protocol.LeaseHeader, lease)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, protocol.MaxBody))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	if resp.StatusCode == http.StatusUnauthorized && l.cfg.CredentialFile != "" {
		l.reloadCredential(cred)
	}
	perr := refusal(req.Method, req.URL.Path, resp.Status, body)
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusUnauthorized && !errors.Is(perr, protocol.ErrStaleLease) &&
		!errors.Is(perr, protocol.ErrForbidden) && !errors.Is(perr, protocol.ErrUnknownCommand) {
		return fmt.Errorf("%w: %w", errRefused, perr)
	}
	return perr
}
