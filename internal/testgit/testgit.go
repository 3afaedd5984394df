// Package testgit runs real private Git servers on 127.0.0.1 for tests: git's
// own smart HTTP server (git http-backend) behind HTTP basic auth, and an SSH
// server (golang.org/x/crypto/ssh) that runs git-upload-pack for one
// authorised key. Tests use them to check that fetching code with
// credentials works and that the secrets go nowhere else.
package testgit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HTTPBackend is git's smart HTTP server.
const HTTPBackend = "/usr/lib/git-core/git-http-backend"

// HTTPServer serves the repositories under a folder over HTTP to one user.
type HTTPServer struct {
	// URL is the server's base URL; a repository is URL + "/" + its folder name.
	URL string
	// FailNext makes the next requests answer 503, as a flaky host would.
	FailNext atomic.Int32
	// Requests and Refused count the requests seen and those refused for
	// missing or wrong credentials.
	Requests, Refused atomic.Int32
}

// ServeHTTP starts git http-backend for the repositories under root,
// answering 401 unless a request carries user and password.
func ServeHTTP(t testing.TB, root, user, password string) *HTTPServer {
	t.Helper()
	if _, err := os.Stat(HTTPBackend); err != nil {
		t.Skip("git http-backend not installed")
	}
	s := &HTTPServer{}
	backend := &cgi.Handler{
		Path:   HTTPBackend,
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
		Stderr: io.Discard,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			s.Refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if s.FailNext.Load() > 0 {
			s.FailNext.Add(-1)
			http.Error(w, "try again later", http.StatusServiceUnavailable)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Key is an ed25519 SSH key pair.
type Key struct {
	// PEM is the private key in OpenSSH format, as ssh-keygen writes it.
	PEM    []byte
	Signer ssh.Signer
}

// NewKey makes an ed25519 key pair.
func NewKey(t testing.TB) Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	return Key{PEM: pem.EncodeToMemory(block), Signer: signer}
}

// SSHServer serves the repositories under a folder over SSH.
type SSHServer struct {
	// Addr is host:port; a repository is ssh://git@Addr/<folder name>.
	Addr string
	// HostKey is the key the server proves itself with.
	HostKey Key
	// Refused counts connections whose client key was not authorised.
	Refused atomic.Int32
}

// URL is the ssh:// URL of the repository folder name under the root.
func (s *SSHServer) URL(name string) string { return "ssh://git@" + s.Addr + "/" + name }

// KnownHosts is the known_hosts line for this server's host key.
func (s *SSHServer) KnownHosts() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey.Signer.PublicKey()) + "\n"
}

// KnownHostsFor is a known_hosts line naming this server's address with
// another host key: what an impostor's check meets.
func (s *SSHServer) KnownHostsFor(k Key) string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, k.Signer.PublicKey()) + "\n"
}

// ServeSSH starts an SSH server on 127.0.0.1 that lets in only authorised's
// key and runs git-upload-pack (read only) on repositories under root.
func ServeSSH(t testing.TB, root string, authorised ssh.PublicKey) *SSHServer {
	t.Helper()
	s := &SSHServer{HostKey: NewKey(t)}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), authorised.Marshal()) {
				return nil, nil
			}
			s.Refused.Add(1)
			return nil, errors.New("key not authorised")
		},
	}
	cfg.AddHostKey(s.HostKey.Signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s.Addr = ln.Addr().String()
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveSSHConn(c, cfg, root)
			}()
		}
	}()
	return s
}

func serveSSHConn(c net.Conn, cfg *ssh.ServerConfig, root string) {
	defer c.Close()
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSession(ch, creqs, root)
	}
}

// serveSession runs the one command a git client asks for:
// git-upload-pack '<path>'.
func serveSession(ch ssh.Channel, reqs <-chan *ssh.Request, root string) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			_ = req.Reply(req.Type == "env", nil)
			continue
		}
		var p struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			_ = req.Reply(false, nil)
			return
		}
		prog, arg, _ := strings.Cut(p.Command, " ")
		name := strings.Trim(strings.Trim(arg, "'"), "/")
		if prog != "git-upload-pack" || name == "" || strings.Contains(name, "..") {
			_ = req.Reply(false, nil)
			return
		}
		_ = req.Reply(true, nil)
		cmd := exec.Command("git-upload-pack", filepath.Join(root, name))
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		in, err := cmd.StdinPipe()
		status := uint32(0)
		if err == nil {
			err = cmd.Start()
		}
		if err == nil {
			go func() { _, _ = io.Copy(in, ch); in.Close() }()
			err = cmd.Wait()
		}
		if err != nil {
			status = 1
		}
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}
