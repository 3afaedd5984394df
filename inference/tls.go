package inference

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certCheckInterval is how often, at most, a TLS handshake looks at the
// certificate files for a change.
const certCheckInterval = 2 * time.Second

// certReloader serves the certificate of Config.CertFile/KeyFile and picks up
// a new pair when the files change (a renewal writes them in place), without
// a restart: the first handshake after certCheckInterval stats both files and,
// when either changed (another file, size or modification time), loads the
// pair. A pair that does not load (half written, mismatched, corrupt) keeps
// the current certificate and logs an error; it is tried again when the files
// change again. Reload (SIGHUP in cmd/algocloud-infer) loads at once.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certStat  os.FileInfo // of the files last tried
	keyStat   os.FileInfo
	lastCheck time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) *certReloader {
	return &certReloader{certFile: certFile, keyFile: keyFile, log: log}
}

// load reads the pair once, at start: an error here stops the server.
func (c *certReloader) load() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ks, err := c.stat()
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	cert, err := loadPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	c.cert, c.certStat, c.keyStat, c.lastCheck = cert, cs, ks, time.Now()
	return nil
}

// Reload loads the pair now, whether or not the files look changed; on
// failure the current certificate stays and the error says why.
func (c *certReloader) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ks, err := c.stat()
	if err == nil {
		err = c.swap(cs, ks)
	}
	if err != nil {
		c.log.Error("TLS certificate reload failed; keeping the current certificate", "cert_file", c.certFile, "error", err)
	}
	return err
}

// getCertificate is tls.Config.GetCertificate.
func (c *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.lastCheck) >= certCheckInterval {
		c.lastCheck = time.Now()
		cs, ks, err := c.stat()
		switch {
		case err != nil:
			c.log.Error("TLS certificate files unreadable; keeping the current certificate", "cert_file", c.certFile, "error", err)
		case !sameFile(cs, c.certStat) || !sameFile(ks, c.keyStat):
			if err := c.swap(cs, ks); err != nil {
				c.log.Error("TLS certificate reload failed; keeping the current certificate", "cert_file", c.certFile, "error", err)
			}
		}
	}
	return c.cert, nil
}

// swap loads the pair whose files have the stats cs, ks; those stats are
// remembered even when it fails, so a bad pair is not retried (and logged)
// at every check, only once the files change again.
func (c *certReloader) swap(cs, ks os.FileInfo) error {
	c.certStat, c.keyStat = cs, ks
	cert, err := loadPair(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.cert = cert
	c.log.Info("TLS certificate loaded", "cert_file", c.certFile, "subject", cert.Leaf.Subject.String(),
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

func (c *certReloader) stat() (os.FileInfo, os.FileInfo, error) {
	cs, err := os.Stat(c.certFile)
	if err != nil {
		return nil, nil, err
	}
	ks, err := os.Stat(c.keyFile)
	if err != nil {
		return nil, nil, err
	}
	return cs, ks, nil
}

// loadPair loads and checks a certificate and key: they must match and the
// leaf must be valid now.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	if now := time.Now(); now.After(cert.Leaf.NotAfter) {
		return nil, errors.New("the certificate expired at " + cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// sameFile reports whether a and b describe the same unchanged file.
func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// tlsConfig is the server's TLS configuration, with the reloader's certificate.
func (c *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{GetCertificate: c.getCertificate, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
}

// ReloadCertificate loads the certificate and key files again at once (the
// server also notices changed files by itself within a few seconds). On
// failure the current certificate stays. A server without TLS has nothing
// to reload and returns nil.
func (s *Server) ReloadCertificate() error {
	if s.certs == nil {
		return nil
	}
	return s.certs.Reload()
}
