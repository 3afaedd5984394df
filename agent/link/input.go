package link

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/algocloud/algocloud/agent/protocol"
)

// DownloadInput reads the input object of the command whose handler ctx was
// given to (GET protocol.InputPath under the command's current lease; a
// batch chunk's packed items), retrying while the platform cannot be
// reached, until it is read, refused or ctx ends. A refusal wraps the
// protocol's error (ErrStaleLease after a grace, ErrForbidden,
// ErrUnknownCommand).
func DownloadInput(ctx context.Context) ([]byte, error) {
	u, ok := ctx.Value(uploaderKey{}).(*uploader)
	if !ok {
		return nil, ErrNoUploader
	}
	l := u.l
	backoff := l.cfg.MinBackoff
	var staleSince time.Time
	for {
		b, err := l.getInput(ctx, u.e.cmd.ID, u.e.lease())
		switch {
		case err == nil:
			return b, nil
		case ctx.Err() != nil:
			return nil, fmt.Errorf("download input: %w", ctx.Err())
		case errors.Is(err, protocol.ErrStaleLease):
			if staleSince.IsZero() {
				staleSince = time.Now()
			} else if time.Since(staleSince) > staleGrace {
				return nil, fmt.Errorf("download input: %w", err)
			}
		case errors.Is(err, protocol.ErrForbidden), errors.Is(err, protocol.ErrUnknownCommand), errors.Is(err, errRefused):
			return nil, fmt.Errorf("download input: %w", err)
		}
		l.log.Warn("agent: input not downloaded; retrying", "command", u.e.cmd.ID, "error", err, "in", backoff)
		sleep(ctx, jitter(backoff))
		backoff = min(backoff*2, l.cfg.MaxBackoff)
	}
}

// CheckCommand asks the platform whether the command whose handler ctx was
// given to still runs (GET protocol.InputPath?check=1): nil when it does or
// when the platform cannot be reached now, protocol.ErrCommandDone (wrapped)
// when the platform ended it (a canceled batch chunk), another refusal
// wrapped as DownloadInput's. A handler polls it to stop promptly.
func CheckCommand(ctx context.Context) error {
	u, ok := ctx.Value(uploaderKey{}).(*uploader)
	if !ok {
		return ErrNoUploader
	}
	_, err := u.l.getInputPath(ctx, u.e.cmd.ID, u.e.lease(), "?check=1")
	if err == nil || errors.Is(err, protocol.ErrCommandDone) || errors.Is(err, protocol.ErrForbidden) || errors.Is(err, protocol.ErrUnknownCommand) {
		return err
	}
	return nil // unreachable, or a lease being moved: not a reason to stop
}

// getInput makes one download.
func (l *Link) getInput(ctx context.Context, commandID, lease string) ([]byte, error) {
	return l.getInputPath(ctx, commandID, lease, "")
}

func (l *Link) getInputPath(ctx context.Context, commandID, lease, query string) ([]byte, error) {
	ref, err := url.Parse(protocol.InputPath(l.cfg.Server, commandID) + query)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base.ResolveReference(ref).String(), nil)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	cred := l.cred
	l.mu.Unlock()
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set(protocol.VersionHeader, protocol.Version)
	req.Header.Set(protocol.LeaseHeader, lease)
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, protocol.MaxInput+1))
		if err != nil {
			return nil, err
		}
		if len(b) > protocol.MaxInput {
			return nil, fmt.Errorf("%w: the input is over %d bytes", errRefused, protocol.MaxInput)
		}
		return b, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, protocol.MaxBody))
	if resp.StatusCode == http.StatusUnauthorized && l.cfg.CredentialFile != "" {
		l.reloadCredential(cred)
	}
	perr := refusal(req.Method, req.URL.Path, resp.Status, body)
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusUnauthorized && !errors.Is(perr, protocol.ErrStaleLease) &&
		!errors.Is(perr, protocol.ErrForbidden) && !errors.Is(perr, protocol.ErrUnknownCommand) {
		return nil, fmt.Errorf("%w: %w", errRefused, perr)
	}
	return nil, perr
}
