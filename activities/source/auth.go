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

// CredentialsError is a Check failure: Field names the credential at fault
// (password, ssh_private_key, known_hosts, or git_url when they do not fit
// the URL). It wraps ErrBadCredentials.
type CredentialsError struct {
	Field string
	Msg   string
}

func (e *CredentialsError) Error() string { return ErrBadCredentials.Error() + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrBadCredentials) hold.
func (e *CredentialsError) Unwrap() error { return ErrBadCredentials }

func badField(field, format string, args ...any) error {
	return &CredentialsError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

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
		return badField("git_url", "the URL does not parse")
	}
	if a.IsSSH() {
		if a.Password != "" {
			return badField("password", "give a password or an SSH key, not both")
		}
		if ep.Protocol != "ssh" {
			return badField("git_url", "an SSH key needs an ssh URL (ssh://host/repo.git or git@host:repo.git), not %s", ep.Protocol)
		}
		if _, err := ssh.ParsePrivateKey(a.SSHPrivateKey); err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return badField("ssh_private_key", "the key is protected by a passphrase; use a deploy key without one")
			}
			return badField("ssh_private_key", "not a PEM or OpenSSH private key")
		}
		if n, err := knownHostsLines(a.KnownHosts); err != nil {
			return badField("known_hosts", "%v", err)
		} else if n == 0 {
			return badField("known_hosts", "known_hosts is required with an SSH key (the server's host key is checked against it; e.g. the output of ssh-keyscan)")
		}
		return nil
	}
	if len(a.KnownHosts) > 0 {
		return badField("known_hosts", "known_hosts goes with ssh_private_key")
	}
	if a.Password == "" {
		return badField("password", "give a password (or token) or an SSH key")
	}
	if ep.Protocol != "http" && ep.Protocol != "https" {
		return badField("git_url", "a password needs an https URL, not %s", ep.Protocol)
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
