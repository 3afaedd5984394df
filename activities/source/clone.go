package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/algocloud/algocloud/internal/netpolicy"
)

// CloneOptions says what to clone where.
type CloneOptions struct {
	// URL of the repository: https://, http://, ssh://, user@host:path or
	// git://; a local path or file:// URL only with AllowLocal.
	URL string
	// Ref is a branch, a tag, a full or abbreviated (at least 4 hex digits)
	// commit SHA, or empty for the remote's default branch. A branch wins over
	// a tag of the same name, as in git clone --branch.
	Ref string
	// Dest is the folder the checkout ends up in.
	Dest string
	// AllowLocal permits local paths and file:// URLs (dev and tests only: it
	// lets a user read any repository on the platform's disk).
	AllowLocal bool
	// AllowPrivate permits network hosts on loopback, private, link-local
	// and every other non-public address (off by default: SSRF).
	AllowPrivate bool
	// Dialer, when set, connects to the remote instead of the one AllowPrivate
	// picks (tests give it a resolver on loopback and a narrower policy).
	// Every scheme connects through it; see urlpolicy.go.
	Dialer *netpolicy.Dialer
	// Auth, when set, authenticates to a private repository (see Auth).
	Auth *Auth
}

// Result describes a checkout.
type Result struct {
	// Commit is the full SHA checked out at Dest.
	Commit string
}

const remoteName = "origin"

var hexRef = regexp.MustCompile(`^[0-9a-fA-F]{4,40}$`)

// target is what a ref resolves to on the remote.
type target struct {
	name   plumbing.ReferenceName // branch or tag to clone; "" for HEAD or a SHA
	hash   plumbing.Hash          // the commit it points at; zero for a SHA ref
	prefix string                 // lower-case SHA (prefix) for a SHA ref
}

// Clone checks out opts.URL at opts.Ref into opts.Dest and returns the commit.
//
// It is idempotent: when Dest already holds a clone of the same URL at the
// commit Ref resolves to now, it returns at once; otherwise it clones into a
// temporary sibling of Dest and renames it into place (replacing an older
// checkout), so a crash mid-clone never leaves half a tree at Dest. The .git
// folder is kept.
//
// Errors wrap ErrForbiddenURL, ErrUnreachable or ErrRefNotFound where they
// apply, or the context's error when ctx ends first.
func Clone(ctx context.Context, opts CloneOptions) (Result, error) {
	if opts.Dest == "" {
		return Result{}, errors.New("clone: no destination folder")
	}
	dest, err := filepath.Abs(opts.Dest)
	if err != nil {
		return Result{}, fmt.Errorf("clone: %w", err)
	}
	dialer := dialerFor(opts)
	ep, err := checkURL(opts, dialer.Policy)
	if err != nil {
		return Result{}, fmt.Errorf("clone: %w", err)
	}
	g, release := newGuard(dialer)
	defer release()
	var via transport.ProxyOptions // the guard's ID, for go-git's network transports
	if ep.Protocol != "file" {
		via = g.proxyOptions()
	}
	shown := redact(opts.URL)
	auth, cleanup, err := opts.Auth.method(ep)
	if err != nil {
		return Result{}, fmt.Errorf("clone %s: %w", shown, err)
	}
	defer cleanup()

	refs, err := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{
		Name: remoteName, URLs: []string{opts.URL},
	}).ListContext(ctx, &git.ListOptions{PeelingOption: git.AppendPeeled, ProxyOptions: via, Auth: auth})
	if err != nil {
		return Result{}, fmt.Errorf("clone %s: %w", shown, g.forbidden(classifyList(ctx, authError(err, opts.Auth))))
	}
	tgt, err := resolveRef(refs, opts.Ref)
	if err != nil {
		return Result{}, fmt.Errorf("clone %s: %w", shown, err)
	}
	if commit, ok := existing(dest, opts.URL, tgt); ok {
		return Result{Commit: commit}, nil
	}

	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Result{}, fmt.Errorf("clone %s: %w", shown, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".clone-*")
	if err != nil {
		return Result{}, fmt.Errorf("clone %s: %w", shown, err)
	}
	defer os.RemoveAll(tmp) // gone after the rename below
	commit, err := cloneInto(ctx, tmp, opts.URL, tgt, via, auth, opts.Auth)
	if err != nil {
		return Result{}, fmt.Errorf("clone %s at %q: %w", shown, opts.Ref, g.forbidden(err))
	}
	if err := forgetCredentials(tmp, opts.URL); err != nil {
		return Result{}, fmt.Errorf("clone %s: %w", shown, err)
	}
	if err := replaceDir(tmp, dest); err != nil {
		return Result{}, fmt.Errorf("clone %s: move checkout into place: %w", shown, err)
	}
	return Result{Commit: commit}, nil
}

// resolveRef finds ref among the remote's advertised references.
func resolveRef(refs []*plumbing.Reference, ref string) (target, error) {
	byName := make(map[plumbing.ReferenceName]*plumbing.Reference, len(refs))
	for _, r := range refs {
		byName[r.Name()] = r
	}
	if len(refs) == 0 {
		return target{}, fmt.Errorf("%w: the repository is empty", ErrRefNotFound)
	}
	hashOf := func(name plumbing.ReferenceName) (plumbing.Hash, bool) {
		if p, ok := byName[name+"^{}"]; ok { // annotated tag: the commit it names
			return p.Hash(), true
		}
		r, ok := byName[name]
		for i := 0; ok && r.Type() == plumbing.SymbolicReference && i < 5; i++ {
			r, ok = byName[r.Target()]
		}
		if !ok {
			return plumbing.ZeroHash, false
		}
		return r.Hash(), true
	}
	if ref == "" {
		h, ok := hashOf(plumbing.HEAD)
		if !ok {
			return target{}, fmt.Errorf("%w: the repository has no default branch", ErrRefNotFound)
		}
		return target{hash: h}, nil
	}
	candidates := []plumbing.ReferenceName{
		plumbing.NewBranchReferenceName(ref), plumbing.NewTagReferenceName(ref),
	}
	if strings.HasPrefix(ref, "refs/heads/") || strings.HasPrefix(ref, "refs/tags/") {
		candidates = []plumbing.ReferenceName{plumbing.ReferenceName(ref)}
	}
	for _, name := range candidates {
		if h, ok := hashOf(name); ok {
			return target{name: name, hash: h}, nil
		}
	}
	if hexRef.MatchString(ref) {
		return target{prefix: strings.ToLower(ref)}, nil
	}
	return target{}, fmt.Errorf("%w: no branch, tag or commit %q", ErrRefNotFound, ref)
}

// existing returns Dest's commit when Dest is a clone of url already at tgt.
func existing(dest, url string, tgt target) (string, bool) {
	repo, err := git.PlainOpen(dest)
	if err != nil {
		return "", false
	}
	remote, err := repo.Remote(remoteName)
	if err != nil || len(remote.Config().URLs) == 0 || remote.Config().URLs[0] != withoutCredentials(url) {
		return "", false
	}
	head, err := repo.Head()
	if err != nil {
		return "", false
	}
	h := head.Hash()
	if tgt.prefix != "" {
		return h.String(), strings.HasPrefix(h.String(), tgt.prefix)
	}
	return h.String(), h == tgt.hash
}

// forgetCredentials rewrites the clone's remote URL without the user and
// password an http(s) URL may carry, so no token stays in .git/config.
func forgetCredentials(dir, url string) error {
	clean := withoutCredentials(url)
	if clean == url {
		return nil
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return err
	}
	cfg, err := repo.Config()
	if err != nil {
		return err
	}
	if r, ok := cfg.Remotes[remoteName]; ok {
		r.URLs = []string{clean}
	}
	return repo.SetConfig(cfg)
}

// withoutCredentials drops the userinfo of an http(s) URL.
func withoutCredentials(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil || u.User == nil || (u.Scheme != "http" && u.Scheme != "https") {
		return raw
	}
	u.User = nil
	return u.String()
}

// cloneInto clones url into dir at tgt and returns the commit checked out.
func cloneInto(ctx context.Context, dir, url string, tgt target, via transport.ProxyOptions, auth transport.AuthMethod, given *Auth) (string, error) {
	co := &git.CloneOptions{URL: url, RemoteName: remoteName, ProxyOptions: via, Auth: auth}
	switch {
	case tgt.name != "":
		co.ReferenceName = tgt.name
		co.SingleBranch = true
	case tgt.prefix != "":
		co.NoCheckout = true // all branches, so any reachable commit is found
	default:
		co.SingleBranch = true
	}
	repo, err := git.PlainCloneContext(ctx, dir, false, co)
	if err != nil {
		return "", classify(ctx, authError(err, given))
	}
	if tgt.prefix != "" {
		h, err := findCommit(repo, tgt.prefix)
		if err != nil {
			return "", err
		}
		wt, err := repo.Worktree()
		if err != nil {
			return "", err
		}
		if err := wt.Checkout(&git.CheckoutOptions{Hash: h, Force: true}); err != nil {
			return "", fmt.Errorf("check out %s: %w", h, err)
		}
	}
	head, err := repo.Head()
	if err != nil {
		return "", fmt.Errorf("read HEAD: %w", err)
	}
	return head.Hash().String(), nil
}

// findCommit finds the one commit whose SHA starts with prefix.
func findCommit(repo *git.Repository, prefix string) (plumbing.Hash, error) {
	if len(prefix) == 40 {
		h := plumbing.NewHash(prefix)
		if _, err := repo.CommitObject(h); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%w: commit %s", ErrRefNotFound, prefix)
		}
		return h, nil
	}
	iter, err := repo.CommitObjects()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("list commits: %w", err)
	}
	defer iter.Close()
	var found []plumbing.Hash
	err = iter.ForEach(func(c *object.Commit) error {
		if strings.HasPrefix(c.Hash.String(), prefix) {
			found = append(found, c.Hash)
		}
		return nil
	})
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("list commits: %w", err)
	}
	switch len(found) {
	case 0:
		return plumbing.ZeroHash, fmt.Errorf("%w: no branch, tag or commit %q", ErrRefNotFound, prefix)
	case 1:
		return found[0], nil
	default:
		return plumbing.ZeroHash, fmt.Errorf("%w: %q is ambiguous (%d commits), give more digits", ErrRefNotFound, prefix, len(found))
	}
}

// classify maps go-git and network errors onto this package's sentinels.
func classify(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, ErrForbiddenURL), errors.Is(err, ErrUnreachable), errors.Is(err, ErrRefNotFound),
		errors.Is(err, ErrBadCredentials):
		return err
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("%w: the repository is empty", ErrRefNotFound)
	case errors.Is(err, plumbing.ErrReferenceNotFound), errors.Is(err, git.ErrBranchNotFound):
		return fmt.Errorf("%w: %v", ErrRefNotFound, err)
	case errors.Is(err, transport.ErrRepositoryNotFound),
		errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod):
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return err
}

// authError turns a refusal of the credentials Clone was given into
// ErrBadCredentials, which retrying cannot fix: a rejected password or key,
// or an SSH host key known_hosts does not list. Without credentials a
// refusal stays ErrUnreachable (the repository may be private).
func authError(err error, a *Auth) error {
	if a == nil || err == nil {
		return err
	}
	msg := err.Error()
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(msg, "unable to authenticate"):
		return fmt.Errorf("%w: the repository refused the credentials (%s)", ErrBadCredentials, a)
	case strings.Contains(msg, "knownhosts:"):
		return fmt.Errorf("%w: the SSH server's host key does not match known_hosts (%v)", ErrBadCredentials, err)
	}
	return err
}

// classifyList is classify for listing the remote's refs, the first contact:
// go-git reports a failing local git-upload-pack or a dead ssh/git server with
// plain errors, and any failure there means the repository cannot be read.
func classifyList(ctx context.Context, err error) error {
	err = classify(ctx, err)
	if ctx.Err() != nil || errors.Is(err, ErrForbiddenURL) || errors.Is(err, ErrUnreachable) || errors.Is(err, ErrRefNotFound) ||
		errors.Is(err, ErrBadCredentials) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnreachable, err)
}

// replaceDir renames src over dest. An existing dest is first moved aside
// (and deleted afterwards), so dest is always either the old tree or the new.
func replaceDir(src, dest string) error {
	if _, err := os.Lstat(dest); errors.Is(err, os.ErrNotExist) {
		return os.Rename(src, dest)
	}
	old, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".old-*")
	if err != nil {
		return err
	}
	aside := filepath.Join(old, "tree")
	if err := os.Rename(dest, aside); err != nil {
		os.Remove(old)
		return err
	}
	if err := os.Rename(src, dest); err != nil {
		_ = os.Rename(aside, dest)
		os.RemoveAll(old)
		return err
	}
	return os.RemoveAll(old)
}
