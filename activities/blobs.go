package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/algocloud/algocloud/internal/blobs"

	"github.com/algocloud/algocloud/activities/source"

	"github.com/algocloud/algocloud/activities/actdef"
)

// DeleteBlobs removes a deployment's uploads, test outputs, code listings and
// sealed Git credentials from the blob
// store (Delete's last clean-up). Removing nothing succeeds: it is idempotent.
func (a *Activities) DeleteBlobs(ctx context.Context, deploymentID string) error {
	if a.Blobs == nil {
		return nil
	}
	// An S3 prefix of many test outputs takes a while to list and delete:
	// heartbeats tell a slow clean-up from a lost worker.
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "deleting blobs" })()
	for _, prefix := range []string{actdef.UploadsPrefix, actdef.TestsPrefix, source.CredentialsPrefix, actdef.CodePrefix} {
		if err := a.Blobs.Delete(ctx, prefix+"/"+deploymentID); err != nil {
			return fmt.Errorf("delete blobs: %w", err)
		}
	}
	return nil
}

// stagedUpload gives FetchCode a local file holding the upload: the blob
// copied into a private temporary folder (done removes it), or a legacy path
// under UploadDir.
func (a *Activities) stagedUpload(ctx context.Context, deploymentID string, f actdef.UploadedFile) (path string, done func(), err error) {
	done = func() {}
	if f.Key == "" {
		p, err := a.uploaded(f.Path)
		return p, done, err
	}
	if a.Blobs == nil {
		return "", done, errors.New("upload in the blob store, but this worker has none")
	}
	// Only this deployment's uploads: a request cannot name another's.
	if err := blobs.CheckKey(f.Key); err != nil || !strings.HasPrefix(f.Key, actdef.UploadsPrefix+"/"+deploymentID+"/") {
		return "", done, nonRetryable(actdef.BadInputErrorType, fmt.Errorf("upload key %q is not this deployment's", f.Key))
	}
	rc, err := a.Blobs.Get(ctx, f.Key)
	if errors.Is(err, blobs.ErrNotFound) {
		return "", done, nonRetryable(actdef.BadInputErrorType, fmt.Errorf("upload missing: %w", err))
	}
	if err != nil {
		return "", done, err
	}
	defer rc.Close()
	dir, err := os.MkdirTemp("", "algocloud-upload-*")
	if err != nil {
		return "", done, err
	}
	done = func() { _ = os.RemoveAll(dir) }
	path = filepath.Join(dir, "upload")
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = io.Copy(out, rc)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		done()
		return "", func() {}, fmt.Errorf("copy upload %s: %w", f.Key, err)
	}
	return path, done, nil
}

// putTestOutput stores Test Code's output for revision rev; it returns the key.
func (a *Activities) putTestOutput(ctx context.Context, deploymentID string, rev int, contentType string, b []byte) (string, error) {
	key := actdef.TestsPrefix + "/" + deploymentID + "/" + strconv.Itoa(rev) + "/output" + outputExt(contentType)
	if err := a.Blobs.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return "", err
	}
	return key, nil
}
