package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/algocloud/algocloud/activities/source"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/sealed"

	"github.com/algocloud/algocloud/activities/actdef"
)

// gitCredentials loads and unseals the credentials ref names; only this
// deployment's references are read.
func (a *Activities) gitCredentials(ctx context.Context, deploymentID, ref string) (*source.Auth, error) {
	if err := blobs.CheckKey(ref); err != nil || !strings.HasPrefix(ref, source.CredentialsPrefix+"/"+deploymentID+"/") {
		return nil, nonRetryable(actdef.BadInputErrorType, fmt.Errorf("credentials reference %q is not this deployment's", ref))
	}
	if a.Blobs == nil || len(a.CredentialsKey) == 0 {
		return nil, errors.New("git credentials given, but this worker has no blob store or encryption key to read them")
	}
	rc, err := a.Blobs.Get(ctx, ref)
	if errors.Is(err, blobs.ErrNotFound) {
		return nil, nonRetryable(actdef.BadInputErrorType, errors.New("the git credentials are gone (the step ended or the deployment was deleted): give them again"))
	}
	if err != nil {
		return nil, fmt.Errorf("read sealed git credentials: %w", err)
	}
	defer rc.Close()
	box, err := io.ReadAll(io.LimitReader(rc, source.MaxSealedCredentials))
	if err != nil {
		return nil, fmt.Errorf("read sealed git credentials: %w", err)
	}
	plain, err := sealed.Open(a.CredentialsKey, source.CredentialsLabel(deploymentID), box)
	if err != nil {
		// The API and this worker use different keys: set the same
		// ALGOCLOUD_ENCRYPTION_KEY for both.
		return nil, nonRetryable(actdef.BadInputErrorType, fmt.Errorf("unseal git credentials (the API and the worker need the same encryption key): %w", err))
	}
	var c source.GitCredentials
	err = json.Unmarshal(plain, &c)
	clear(plain)
	if err != nil {
		return nil, nonRetryable(actdef.BadInputErrorType, errors.New("decode unsealed git credentials: not JSON"))
	}
	return c.Auth(), nil
}
