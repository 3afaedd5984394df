package compute

import "context"

// BundlePublisher stores what a remote server serves (*ec2.BundleStore is
// one). Both methods are idempotent.
type BundlePublisher interface {
	// Publish stores (sealed) the deployment's bundle, a tar.gz.
	Publish(ctx context.Context, deploymentID string, tarGz []byte) error
	// PublishObject stores tarGz sealed (the bundle's seal) as object
	// (bundlelayout.CodeObject) in the deployment's folder, where the
	// server's agent fetches it.
	PublishObject(ctx context.Context, deploymentID, object string, tarGz []byte) error
	// Delete removes the deployment's bundle and objects; absent is not an
	// error.
	Delete(ctx context.Context, deploymentID string) error
	// PublishONNXRuntime stores the ONNX Runtime library at path (once per
	// content) where the server's fetch finds it by its SHA-256, which it
	// returns (hex).
	PublishONNXRuntime(ctx context.Context, path string) (string, error)
}

// CertPickupProvider is a remote compute provider whose servers can take a
// renewed certificate in place (*ec2.Provider is one).
type CertPickupProvider interface {
	// CertPickup reports whether the server picks up a published
	// certificate object by itself.
	CertPickup(ctx context.Context, s Server) (bool, error)
	// ServedCertificate is the leaf (DER) the server's endpoint presents
	// on a new TLS connection.
	ServedCertificate(ctx context.Context, s Server) ([]byte, error)
}

// CertPublisher publishes a deployment's certificate and key on their own
// (*ec2.BundleStore is one), for servers that pick them up in place.
type CertPublisher interface {
	// PublishCert stores (sealed) the certificate and key with version,
	// which must grow with every publication.
	PublishCert(ctx context.Context, deploymentID string, certPEM, keyPEM []byte, version int64) error
}
