package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/algocloud/algocloud/activities/python"
	"github.com/algocloud/algocloud/activities/source"
	"github.com/algocloud/algocloud/inference/onnxrt"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"

	"github.com/algocloud/algocloud/activities/actdef"
)

// Names of the files an algorithm folder holds.
const (
	MainFile         = "aai_main.py"
	RequirementsFile = "aai_pip-requirements.txt"
)

// archiveLimits bound an uploaded archive (zip bombs).
var archiveLimits = source.Limits{MaxFiles: 10000, MaxTotalBytes: 2 << 30, MaxFileBytes: 1 << 30}

// FetchCode puts code revision in.Revision into the server: a go-git checkout,
// an extracted upload or a copy of the revision an edit starts from, plus
// extra files (an edit's changed files) (uploads come from the blob store,
// or from UploadDir for histories from before it). Without aai_main.py it writes the
// generated skeleton for the deployment's type (environment onnx: without
// aai_onnx.json, one naming the folder's .onnx model; see onnx.go).
// It stores the revision's listing (CodeInfo.FilesKey) for the API to show.
// Re-running it for the same revision replaces the half-made folder, so it
// is idempotent.
func (a *Activities) FetchCode(ctx context.Context, in actdef.FetchCodeInput) (actdef.CodeInfo, error) {
	dir := filepath.Join(in.Server.Workdir, "code", strconv.Itoa(in.Revision))
	if err := os.RemoveAll(dir); err != nil {
		return actdef.CodeInfo{}, fmt.Errorf("clear code folder: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return actdef.CodeInfo{}, fmt.Errorf("code folder: %w", err)
	}
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "fetching code" })()
	info := actdef.CodeInfo{Revision: in.Revision, Dir: dir}
	src := in.Source
	switch {
	case src.GitURL != "":
		// Histories from before git_auth may hold a URL with a password:
		// events and the state show it without.
		shown := source.Redact(src.GitURL)
		var auth *source.Auth
		with := ""
		if src.Credentials != "" {
			var err error
			if auth, err = a.gitCredentials(ctx, in.DeploymentID, src.Credentials); err != nil {
				return actdef.CodeInfo{}, err
			}
			with = " with " + auth.String()
		}
		a.event(ctx, in.DeploymentID, "fetch_code", "cloning %s (ref %q)%s", shown, src.Ref, with)
		res, err := source.Clone(ctx, source.CloneOptions{
			URL: src.GitURL, Ref: src.Ref, Dest: dir,
			AllowLocal: a.AllowLocalGit, AllowPrivate: a.AllowPrivateGit, Auth: auth,
		})
		if err != nil {
			return actdef.CodeInfo{}, a.sourceError(err)
		}
		info.Source, info.GitURL, info.Ref, info.Commit = "git", shown, src.Ref, res.Commit
		info.WithCredentials = auth != nil
		a.event(ctx, in.DeploymentID, "fetch_code", "checked out commit %s", res.Commit)
	case src.Archive != nil:
		p, done, err := a.stagedUpload(ctx, in.DeploymentID, *src.Archive)
		if err != nil {
			return actdef.CodeInfo{}, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			done()
			return actdef.CodeInfo{}, err
		}
		err = source.Extract(p, dir, archiveLimits)
		done()
		if err != nil {
			os.RemoveAll(dir)
			return actdef.CodeInfo{}, a.sourceError(err)
		}
		info.Source = "upload"
		a.event(ctx, in.DeploymentID, "fetch_code", "extracted upload %s", src.Archive.Name)
	case src.Edit != nil:
		base, err := editBase(in.Server.Workdir, src.Edit)
		if err != nil {
			return actdef.CodeInfo{}, err
		}
		if err := copyCode(base, dir); err != nil {
			os.RemoveAll(dir)
			return actdef.CodeInfo{}, fmt.Errorf("copy code revision %d: %w", src.Edit.Base.Revision, err)
		}
		b := src.Edit.Base
		info.Source, info.BaseRevision = "edit", b.Revision
		info.GitURL, info.Ref, info.Commit, info.Files = b.GitURL, b.Ref, b.Commit, b.Files
		a.event(ctx, in.DeploymentID, "fetch_code", "copied code revision %d (every file kept) to edit it", b.Revision)
	default:
		return actdef.CodeInfo{}, nonRetryable(actdef.BadInputErrorType, errors.New("no code source: give git_url, an archive or an edit"))
	}
	for _, f := range src.Files {
		p, done, err := a.stagedUpload(ctx, in.DeploymentID, f)
		if err != nil {
			return actdef.CodeInfo{}, err
		}
		err = addFile(dir, f.Name, p)
		done()
		if err != nil {
			return actdef.CodeInfo{}, a.sourceError(err)
		}
		if src.Edit != nil {
			info.Edited = append(info.Edited, f.Name)
			a.event(ctx, in.DeploymentID, "fetch_code", "saved edited file %s", f.Name)
			continue
		}
		info.Files = append(info.Files, f.Name)
		a.event(ctx, in.DeploymentID, "fetch_code", "added file %s", f.Name)
	}
	if e := src.Edit; e != nil && e.Base.GeneratedMain {
		// Still the generated file unless this edit changed it.
		main := MainFile
		if in.Spec.Environment == spec.EnvONNX {
			main = onnxrt.ConfigFile
		}
		info.GeneratedMain = !slices.Contains(info.Edited, main)
	}
	if in.Spec.Environment == spec.EnvONNX {
		if err := a.onnxSkeleton(ctx, in, dir, &info); err != nil {
			return actdef.CodeInfo{}, err
		}
	} else if _, err := os.Stat(filepath.Join(dir, MainFile)); errors.Is(err, os.ErrNotExist) {
		skel, err := templates.Skeleton(in.Spec.Input, in.Spec.Output)
		if err != nil {
			return actdef.CodeInfo{}, nonRetryable(actdef.BadInputErrorType, err)
		}
		if err := os.WriteFile(filepath.Join(dir, MainFile), []byte(skel), 0o644); err != nil {
			return actdef.CodeInfo{}, err
		}
		info.GeneratedMain = true
		a.event(ctx, in.DeploymentID, "fetch_code", "no %s in the code: wrote the generated %s->%s skeleton; edit it and fetch again", MainFile, in.Spec.Input, in.Spec.Output)
	}
	reqPath := filepath.Join(dir, RequirementsFile)
	if _, err := os.Stat(reqPath); err == nil {
		reqs, err := python.ReadRequirementsFile(reqPath)
		if err != nil {
			return actdef.CodeInfo{}, nonRetryable(actdef.BadInputErrorType, fmt.Errorf("%s: %w", RequirementsFile, err))
		}
		info.Requirements = reqs
	}
	key, err := a.putCodeFiles(ctx, in.DeploymentID, dir, in.Revision)
	if err != nil {
		return actdef.CodeInfo{}, err
	}
	info.FilesKey = key
	return info, nil
}

func addFile(dir, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open staged file: %w", err)
	}
	defer f.Close()
	return source.AddFile(dir, name, f, 4<<30)
}

// uploaded resolves a legacy staged upload path, refusing anything outside UploadDir.
func (a *Activities) uploaded(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", nonRetryable(actdef.BadInputErrorType, err)
	}
	root, _ := filepath.Abs(a.UploadDir)
	if a.UploadDir == "" || !strings.HasPrefix(abs, root+string(filepath.Separator)) {
		return "", nonRetryable(actdef.BadInputErrorType, fmt.Errorf("upload %q is outside the upload folder", p))
	}
	if _, err := os.Stat(abs); err != nil {
		return "", nonRetryable(actdef.BadInputErrorType, fmt.Errorf("upload missing: %w", err))
	}
	return abs, nil
}

// sourceError makes permanent source failures non-retryable; unreachable
// repositories retry a few times (the workflow's policy bounds them).
func (a *Activities) sourceError(err error) error {
	switch {
	case errors.Is(err, source.ErrRefNotFound), errors.Is(err, source.ErrForbiddenURL), errors.Is(err, source.ErrBadArchive),
		errors.Is(err, source.ErrUnsafePath), errors.Is(err, source.ErrTooLarge), errors.Is(err, source.ErrBadCredentials):
		return nonRetryable(actdef.SourceFailedErrorType, err)
	default:
		return fmt.Errorf("fetch code: %w", err)
	}
}
