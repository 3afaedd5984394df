package source

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	neturl "net/url"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// ErrBadCredentials: the credentials are malformed or do not fit the URL
// (a key for an https URL, a key without known hosts); the message never
// holds the secret.
var ErrBadCredentials = errors.New("bad git credentials")

// Auth is how Clone proves itself to a private repository: a password or
// token over http(s), or an SSH deploy key whose server must present a host
// key listed in KnownHosts. Its String and LogValue never show the secrets,
// so an Auth that reaches a log or an error stays safe.
type Auth struct {
	// Username for http(s) basic auth (empty: "git", which token hosts
	// accept), or the SSH user when the URL names none (empty: "git").
	Username string
	// Password is the http(s) password or access token.
	Password string
	// SSHPrivateKey is an unencrypted PEM or OpenSSH private key.
	SSHPrivateKey []byte
	// KnownHosts holds known_hosts lines; the SSH server's host key must
	// match one of them. Required with SSHPrivateKey.
	KnownHosts []byte
}

// String says which kind of credential this is, never its value.
func (a *Auth) String() string {
	switch {
	case a == nil:
		return "no credentials"
	case len(a.SSHPrivateKey) > 0:
		return "SSH key (redacted)"
	default:
		return "password (redacted)"
	}
}

// GoString keeps %#v from printing the fields.
func (a *Auth) GoString() string { return a.String() }

// LogValue keeps slog from printing the fields.
func (a *Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// IsSSH reports whether a is an SSH key.
func (a *Auth) IsSSH() bool { return a != nil && len(a.SSHPrivateKey) > 0 }

// Check validates a against the repository URL: an SSH key needs an ssh
// URL, parses, and comes with at least one known_hosts line; a password
// needs an http(s) URL. Its errors wrap ErrBadCredentials and name the
// field at fault, never its value.
func (a *Auth) Check(rawURL string) error {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return fmt.Errorf("%w: the URL does not parse", ErrBadCredentials)
	}
	if a.IsSSH() {
		if a.Password != "" {
			return fmt.Errorf("%w: give a password or an SSH key, not both", ErrBadCredentials)
		}
		if ep.Protocol != "ssh" {
			return fmt.Errorf("%w: an SSH key needs an ssh URL (ssh://host/repo.git or git@host:repo.git), not %s", ErrBadCredentials, ep.Protocol)
		}
		if _, err := ssh.ParsePrivateKey(a.SSHPrivateKey); err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return fmt.Errorf("%w: ssh_private_key is protected by a passphrase; use a deploy key without one", ErrBadCredentials)
			}
			return fmt.Errorf("%w: ssh_private_key is not a PEM or OpenSSH private key", ErrBadCredentials)
		}
		if n, err := knownHostsLines(a.KnownHosts); err != nil {
			return fmt.Errorf("%w: known_hosts: %v", ErrBadCredentials, err)
		} else if n == 0 {
			return fmt.Errorf("%w: known_hosts is required with an SSH key (the server's host key is checked against it; e.g. the output of ssh-keyscan)", ErrBadCredentials)
		}
		return nil
	}
	if len(a.KnownHosts) > 0 {
		return fmt.Errorf("%w: known_hosts goes with ssh_private_key", ErrBadCredentials)
	}
	if a.Password == "" {
		return fmt.Errorf("%w: give a password (or token) or an SSH key", ErrBadCredentials)
	}
	if ep.Protocol != "http" && ep.Protocol != "https" {
		return fmt.Errorf("%w: a password needs an https URL, not %s", ErrBadCredentials, ep.Protocol)
	}
	return nil
}

// knownHostsLines counts the host key lines of a known_hosts file.
func knownHostsLines(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		_, _, _, _, rest, err := ssh.ParseKnownHosts(b)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, errors.New("not in known_hosts format (host key-type base64-key per line)")
		}
		n++
		b = rest
	}
	return n, nil
}

// UserinfoPassword reports whether a URL carries a secret in its userinfo:
// any user part of an http(s) URL (a token may stand there alone), or a
// password in an ssh:// URL. "git@host:path" and ssh://git@host/ carry none.
func UserinfoPassword(rawURL string) bool {
	u, err := neturl.Parse(rawURL)
	if err != nil || u.User == nil {
		return false
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return true
	}
	_, ok := u.User.Password()
	return ok
}

// method turns a into go-git's auth for ep, plus a clean-up that removes
// the temporary known_hosts file.
func (a *Auth) method(ep *transport.Endpoint) (transport.AuthMethod, func(), error) {
	noop := func() {}
	if a == nil {
		return nil, noop, nil
	}
	if err := a.Check(ep.String()); err != nil {
		return nil, noop, err
	}
	if !a.IsSSH() {
		user := a.Username
		if user == "" {
			user = "git"
		}
		return &githttp.BasicAuth{Username: user, Password: a.Password}, noop, nil
	}
	user := ep.User
	if user == "" {
		user = a.Username
	}
	if user == "" {
		user = gitssh.DefaultUsername
	}
	keys, err := gitssh.NewPublicKeys(user, a.SSHPrivateKey, "")
	if err != nil {
		return nil, noop, fmt.Errorf("%w: ssh_private_key does not parse", ErrBadCredentials)
	}
	// go-git and x/crypto read known hosts from files only: a private
	// temporary one, removed once the clone is over.
	dir, err := os.MkdirTemp("", "algocloud-known-hosts-*")
	if err != nil {
		return nil, noop, fmt.Errorf("known_hosts file: %w", err)
	}
	done := func() { _ = os.RemoveAll(dir) }
	file := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(file, a.KnownHosts, 0o600); err != nil {
		done()
		return nil, noop, fmt.Errorf("known_hosts file: %w", err)
	}
	db, err := gitssh.NewKnownHostsDb(file)
	if err != nil {
		done()
		return nil, noop, fmt.Errorf("%w: known_hosts: %v", ErrBadCredentials, err)
	}
	// Never InsecureIgnoreHostKey: an unknown or changed host key fails the
	// handshake, and the algorithms offered are those known_hosts lists, so
	// the server cannot pick a key type the file does not pin.
	keys.HostKeyCallback = db.HostKeyCallback()
	keys.HostKeyAlgorithms = db.HostKeyAlgorithms(hostWithPort(ep))
	return keys, done, nil
}

// hostWithPort is the address known_hosts entries are matched against.
func hostWithPort(ep *transport.Endpoint) string {
	port := ep.Port
	if port == 0 {
		port = 22
	}
	return fmt.Sprintf("%s:%d", ep.Host, port)
}

// Redact shows a repository URL without its secrets, for events, errors and
// the state: an http(s) URL loses its userinfo, another URL's password
// becomes "xxxxx".
func Redact(rawURL string) string { return redact(withoutCredentials(rawURL)) }
