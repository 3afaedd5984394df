package activities

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/algocloud/algocloud/activities/actdef"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/inference/inferapi"
)

// The agent of a remote server (EC2; AgentSettings.Remote): the worker's
// folders are not there, so the commands name their paths under the
// server's home (commands.HomePlaceholder, which the agent fills in), and
// what the agent needs from the platform travels sealed through the bundle
// store, named in the command (commands.Fetch), never in it: each code
// revision (published once, content-addressed) and, for a serve, the
// endpoint's certificate and key (the certificate object renewals publish).
// The agent MAC-checks and decrypts both with the deployment's bundle keys
// from its user data.

// remoteHome is the server's home in commands.
const remoteHome = commands.HomePlaceholder

// publishCode publishes the code folder dir as a sealed, content-addressed
// revision of the deployment (a retried plan publishes the same object) and
// returns what the agent fetches, unpacked into <home>/code/<name>.
func (a *Activities) publishCode(ctx context.Context, deploymentID, dir string) (commands.Fetch, error) {
	if a.Bundles == nil {
		return commands.Fetch{}, nonRetryable(actdef.BadInputErrorType, errors.New("a remote server's agent needs the bundle store (--bundle-bucket)"))
	}
	tgz, err := codeTarGz(dir)
	if err != nil {
		return commands.Fetch{}, err
	}
	sum := sha256.Sum256(tgz)
	name := hex.EncodeToString(sum[:16])
	object := bundlelayout.CodeObject(name)
	if err := a.Bundles.PublishObject(ctx, deploymentID, object, tgz); err != nil {
		return commands.Fetch{}, fmt.Errorf("publish the code revision: %w", err)
	}
	a.event(ctx, deploymentID, "agent", "code revision %s published for the server's agent (%d KiB, encrypted)", name, len(tgz)>>10)
	return commands.Fetch{Object: object, Into: remoteHome + "/code/" + name}, nil
}

// remoteServe points a live config at the server's home (code, the
// certificate the agent fetches, the token file) and returns what the
// agent fetches first: the code revision and the certificate object,
// published now (sealed; its version the time, so it only grows).
func (a *Activities) remoteServe(ctx context.Context, in actdef.AgentServeInput, cfg *inferapi.Config) ([]commands.Fetch, error) {
	code, err := a.publishCode(ctx, in.DeploymentID, in.Code.Dir)
	if err != nil {
		return nil, err
	}
	pub, ok := a.Bundles.(compute.CertPublisher)
	if !ok {
		return nil, nonRetryable(actdef.BadInputErrorType, errors.New("the bundle store cannot publish certificates"))
	}
	certPEM, err := os.ReadFile(in.Cert.CertFile)
	if err != nil {
		return nil, fmt.Errorf("serve: certificate: %w", err)
	}
	keyPEM, err := a.readKey(in.Cert.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("serve: certificate key: %w", err)
	}
	if err := pub.PublishCert(ctx, in.DeploymentID, certPEM, keyPEM, time.Now().UnixMilli()); err != nil {
		return nil, fmt.Errorf("serve: publish the certificate: %w", err)
	}
	cfg.CodeDir = code.Into
	cfg.CertFile, cfg.KeyFile = remoteHome+"/tls/cert.pem", remoteHome+"/tls/key.pem"
	cfg.TokenFile = remoteHome + "/" + liveTokenFile
	ort, err := a.remoteONNX(ctx, in.DeploymentID, in.Spec.Environment, "complete", cfg)
	if err != nil {
		return nil, err
	}
	return append([]commands.Fetch{code, {Object: bundlelayout.CertObject, Into: remoteHome + "/tls"}}, ort...), nil
}

// remoteONNX points cfg's ONNX Runtime library at the server's copy: the
// worker's path means nothing there. For environment onnx it publishes
// the worker's library (the one the worker's path publishes for fetch.sh:
// public, content-addressed, uploaded once) and returns its fetch, which
// the agent checks against the SHA-256 before it puts it at
// <home>/bundlelayout.ONNXRuntimePath; nothing for python.
func (a *Activities) remoteONNX(ctx context.Context, deploymentID, env, step string, cfg *inferapi.Config) ([]commands.Fetch, error) {
	cfg.ONNXRuntimeLib = ""
	sum, err := a.publishONNXRuntimeFor(ctx, deploymentID, env, step)
	if err != nil || sum == "" {
		return nil, err
	}
	cfg.ONNXRuntimeLib = remoteHome + "/" + bundlelayout.ONNXRuntimePath
	return []commands.Fetch{{Object: bundlelayout.ONNXRuntimeObject(sum), Into: cfg.ONNXRuntimeLib, SHA256: sum}}, nil
}

// codeTarGz is a code folder as a deterministic tar.gz (sorted, no times,
// no .git, regular files only), so the same revision gives the same bytes.
func codeTarGz(dir string) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir(), !d.Type().IsRegular():
			return nil // folders come with their files; links are never extracted
		}
		if buf.Len() > maxBundle {
			return nonRetryable(actdef.BadInputErrorType, fmt.Errorf("the code is over %d MiB", maxBundle>>20))
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pack the code: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
