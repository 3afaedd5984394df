package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/link"
	"github.com/algocloud/algocloud/agent/protocol"
)

// The agent on a remote server (an EC2 instance, installed by its user
// data): the platform's folders are not on this machine, so a command's
// payload names its paths under commands.HomePlaceholder, which the agent
// replaces with its --home, and the code revision and certificate it needs
// as sealed objects (commands.Fetch) that the agent downloads from its
// deployment's folder of the bundle store (--bundle-url), MAC-checks and
// decrypts with the deployment's keys (--bundle-keys-file, from the user
// data, 0600 root, never mounted into a sandbox), and unpacks.

// remoteFlags are the agent mode's flags for a remote server.
type remoteFlags struct {
	home, bundleURL, keysFile, artifactsURL string
}

func addRemoteFlags(fs *flag.FlagSet) *remoteFlags {
	f := &remoteFlags{}
	fs.StringVar(&f.home, "home", "", "the server's home folder, which stands for "+commands.HomePlaceholder+" in commands (a remote server's agent)")
	fs.StringVar(&f.bundleURL, "bundle-url", "", "the deployment's folder of the bundle store, where commands' sealed objects are fetched from (a remote server's agent)")
	fs.StringVar(&f.keysFile, "bundle-keys-file", "", "file holding the deployment's bundle keys (two hex lines; keep it 0600) that open the fetched objects")
	fs.StringVar(&f.artifactsURL, "artifacts-url", "", "the bundle store's public artifacts, where content-addressed files a command names by SHA-256 (the ONNX Runtime library) are fetched from (a remote server's agent)")
	return f
}

// maxFetch bounds a fetched object (code and models included).
const maxFetch = 512 << 20

// remote is a remote agent's fetch settings; nil for a local agent.
type remote struct {
	home, bundleURL, artifactsURL string
	keys                          bundlelayout.Keys
	client                        *http.Client
}

// newRemote checks the flags: --home needs an absolute folder; --bundle-url
// and --bundle-keys-file come together. No flag: a local agent (nil).
func (f *remoteFlags) newRemote(agentDir string) (*remote, error) {
	if f.home == "" && f.bundleURL == "" && f.keysFile == "" && f.artifactsURL == "" {
		return nil, nil
	}
	if f.home == "" || !filepath.IsAbs(f.home) || filepath.Clean(f.home) != f.home {
		return nil, errors.New("agent: --home must be a clean absolute folder (with --bundle-url and --bundle-keys-file)")
	}
	if (f.bundleURL == "") != (f.keysFile == "") {
		return nil, errors.New("agent: --bundle-url and --bundle-keys-file come together")
	}
	r := &remote{home: f.home, bundleURL: strings.TrimRight(f.bundleURL, "/"), artifactsURL: strings.TrimRight(f.artifactsURL, "/"),
		client: &http.Client{Timeout: 10 * time.Minute}}
	if f.keysFile != "" {
		if agentDir != "" && !within(f.keysFile, agentDir) {
			// Anywhere else a sandbox might bind it.
			return nil, fmt.Errorf("agent: --bundle-keys-file %s must be inside the agent's folder %s", f.keysFile, agentDir)
		}
		b, err := os.ReadFile(f.keysFile)
		if err != nil {
			return nil, fmt.Errorf("agent: read the bundle keys: %w", err)
		}
		if r.keys, err = bundlelayout.ParseKeys(string(b)); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	return r, nil
}

// prepared wraps an author-code handler: on a remote server, the payload's
// HomePlaceholder becomes the home folder and its Fetch list is fetched
// before h runs. A local agent runs h as it is.
func (a *agentRuntime) prepared(h link.HandlerFunc) link.HandlerFunc {
	return func(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
		if a.remote == nil {
			return h(ctx, cmd, progress)
		}
		home, _ := json.Marshal(a.remote.home)
		cmd.Payload = bytes.ReplaceAll(cmd.Payload, []byte(commands.HomePlaceholder), home[1:len(home)-1])
		var p struct {
			Fetch []commands.Fetch `json:"fetch"`
		}
		if err := json.Unmarshal(cmd.Payload, &p); err != nil {
			return nil, fmt.Errorf("%s payload: %w", cmd.Kind, err)
		}
		for _, f := range p.Fetch {
			if err := a.fetch(ctx, f, progress); err != nil {
				return nil, fmt.Errorf("%s: %w", cmd.Kind, err)
			}
		}
		return h(ctx, cmd, progress)
	}
}

// fetchedMarker in an unpacked folder names the object it came from: a
// content-addressed one (code/...) found there is not fetched again.
const fetchedMarker = ".algocloud-fetched"

// fetch downloads, opens and unpacks one object (see commands.Fetch). The
// folder is replaced at once (unpacked beside it, then renamed), so a
// killed agent never leaves half a revision behind.
func (a *agentRuntime) fetch(ctx context.Context, f commands.Fetch, progress func(...string)) error {
	r := a.remote
	if f.SHA256 != "" {
		return a.fetchFile(ctx, f, progress)
	}
	if r.bundleURL == "" {
		return errors.New("fetch: this agent has no --bundle-url")
	}
	if err := a.checkFetch(f); err != nil {
		return err
	}
	immutable := strings.HasPrefix(f.Object, "code/")
	if immutable {
		if b, err := os.ReadFile(filepath.Join(f.Into, fetchedMarker)); err == nil && strings.TrimSpace(string(b)) == f.Object {
			return nil
		}
	}
	res, err := r.get(ctx, r.bundleURL, f.Object, "bundle store")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	sealed, err := io.ReadAll(io.LimitReader(res.Body, maxFetch+1))
	if err != nil {
		return fmt.Errorf("fetch %s: %w", f.Object, err)
	}
	if len(sealed) > maxFetch {
		return fmt.Errorf("fetch %s: over %d MiB", f.Object, maxFetch>>20)
	}
	plain, err := bundlelayout.Open(r.keys, sealed)
	if err != nil {
		// Not sealed for this deployment, or changed on the way: never unpacked.
		return fmt.Errorf("fetch %s: %w", f.Object, err)
	}
	tmp := f.Into + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("fetch %s: %w", f.Object, err)
	}
	if err := os.MkdirAll(filepath.Dir(f.Into), 0o755); err != nil {
		return fmt.Errorf("fetch %s: %w", f.Object, err)
	}
	if err := untarGz(plain, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("fetch %s: unpack: %w", f.Object, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, fetchedMarker), []byte(f.Object+"\n"), 0o644); err != nil {
		return fmt.Errorf("fetch %s: %w", f.Object, err)
	}
	if err := os.RemoveAll(f.Into); err != nil {
		return fmt.Errorf("fetch %s: %w", f.Object, err)
	}
	if err := os.Rename(tmp, f.Into); err != nil {
		return fmt.Errorf("fetch %s: %w", f.Object, err)
	}
	progress(fmt.Sprintf("fetched %s (%d KiB, MAC checked) into %s", f.Object, len(plain)>>10, f.Into))
	return nil
}

// get GETs base/object; an answer other than 200 is an error naming the
// store. The caller closes the body.
func (r *remote) get(ctx context.Context, base, object, store string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/"+object, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", object, err)
	}
	res, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", object, err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		return nil, fmt.Errorf("fetch %s: the %s answered %s", object, store, res.Status)
	}
	return res, nil
}

// checkFetch refuses a fetch whose object name could leave its store's
// folder, or whose target is not a clean path inside the home or touches
// the agent's folder.
func (a *agentRuntime) checkFetch(f commands.Fetch) error {
	if err := protocol.ValidID(strings.ReplaceAll(f.Object, "/", "_")); err != nil || strings.Contains(f.Object, "..") || strings.HasPrefix(f.Object, "/") {
		return fmt.Errorf("fetch: object name %q is not valid", f.Object)
	}
	home := a.remote.home
	if !filepath.IsAbs(f.Into) || filepath.Clean(f.Into) != f.Into || !within(f.Into, home) || f.Into == home {
		return fmt.Errorf("fetch: %q is not a clean path inside the home %s", f.Into, home)
	}
	if within(f.Into, a.dir) || within(a.dir, f.Into) {
		return fmt.Errorf("fetch: %s overlaps the agent's folder", f.Into)
	}
	return nil
}

// fetchFile downloads a public, content-addressed file (a Fetch with a
// SHA256: the ONNX Runtime library) from the artifacts URL to f.Into,
// checking its sum before it is put in place; one already there with that
// sum is kept.
func (a *agentRuntime) fetchFile(ctx context.Context, f commands.Fetch, progress func(...string)) error {
	r := a.remote
	if r.artifactsURL == "" {
		return errors.New("fetch: this agent has no --artifacts-url")
	}
	if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("fetch: sha256 %q is not 64 hex digits", f.SHA256)
	}
	if err := a.checkFetch(f); err != nil {
		return err
	}
	if sum, err := bundlelayout.FileSHA256(f.Into); err == nil && sum == f.SHA256 {
		return nil
	}
	res, err := r.get(ctx, r.artifactsURL, f.Object, "artifacts store")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if err := os.MkdirAll(filepath.Dir(f.Into), 0o755); err != nil {
		return fmt.Errorf("fetch %s: %w", f.Object, err)
	}
	tmp := f.Into + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", f.Object, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(res.Body, maxFetch+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > maxFetch {
		err = fmt.Errorf("over %d MiB", maxFetch>>20)
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		// Changed on the way or in the store: never put in place.
		err = errors.New("SHA-256 mismatch")
	}
	if err == nil {
		err = os.Rename(tmp, f.Into)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("fetch %s: %w", f.Object, err)
	}
	progress(fmt.Sprintf("fetched %s (%d KiB, SHA-256 checked) to %s", f.Object, n>>10, f.Into))
	return nil
}

// untarGz unpacks regular files and folders of a tar.gz into dir (made
// 0755): no links, no device, nothing outside dir. A member's mode keeps
// only its permission bits, without set-id bits.
func untarGz(data []byte, dir string) error {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if name == "." || filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("member %q is outside the folder", h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(h.Mode)&0o777)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, io.LimitReader(tr, maxFetch))
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("member %q is not a file or folder", h.Name)
		}
	}
}
