package ec2

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
)

// The code bundle store.
//
// The worker publishes what an instance serves to S3: the inference server
// binary at <prefix>/algocloud-infer (the same for every deployment; no
// secret in it), for environment onnx the ONNX Runtime library at
// <prefix>/onnxruntime/<sha256>/libonnxruntime.so.1 (content-addressed, so a
// bundle always names the exact library it was tested with), and each
// deployment's bundle at <prefix>/<deployment-id>/
// bundle.enc: a tar.gz of live.json, the code, the requirements and the
// endpoint's certificate and private key, encrypted (SealBundle) under keys
// derived from the platform's encryption key and the deployment ID
// (DeriveBundleKeys); after a renewal also cert.enc, the certificate and key
// alone, sealed the same way, which instances pick up in place (SealCert). The instance's user data carries that deployment's two
// keys and nothing else can open the bundle, so the objects may be fetched
// without credentials (a bucket policy allowing s3:GetObject on the prefix,
// or a CDN in front) while no one but the instance, and those who may read
// its user data, can read the key or the code.

// The seal (keys, format) is bundlelayout's, shared with the instance's
// agent; these names keep the provider's API.

// BundleKeys are the two keys of one deployment's bundle.
type BundleKeys = bundlelayout.Keys

// DeriveBundleKeys derives a deployment's bundle keys from the platform's
// 32-byte encryption key (bundlelayout.DeriveKeys).
func DeriveBundleKeys(master []byte, deploymentID string) (BundleKeys, error) {
	return bundlelayout.DeriveKeys(master, deploymentID)
}

// SealBundle encrypts plaintext (bundlelayout.Seal): a random IV,
// AES-256-CTR ciphertext, then HMAC-SHA256(IV || ciphertext).
func SealBundle(k BundleKeys, plaintext []byte) ([]byte, error) {
	return bundlelayout.Seal(k, plaintext)
}

// ErrBundleMAC means a bundle was not sealed with these keys, or was changed.
var ErrBundleMAC = bundlelayout.ErrMAC

// OpenBundle reverses SealBundle.
func OpenBundle(k BundleKeys, sealed []byte) ([]byte, error) { return bundlelayout.Open(k, sealed) }

// BundleStoreOptions configure a BundleStore.
type BundleStoreOptions struct {
	// Bucket and Prefix locate the objects; Prefix defaults to "algocloud".
	Bucket, Prefix string
	// Region is the bucket's region; Endpoint overrides S3's (tests: moto,
	// which is then addressed path-style).
	Region, Endpoint string
	// Credentials overrides the standard AWS chain.
	Credentials aws.CredentialsProvider
	// EncryptionKey is the platform's 32-byte key the bundle keys derive from.
	EncryptionKey []byte
	// PublicURL is the base URL instances fetch the prefix from; default
	// https://<bucket>.s3.<region>.amazonaws.com/<prefix>, or
	// <endpoint>/<bucket>/<prefix> with Endpoint.
	PublicURL string
}

// BundleStore publishes the inference binary, the ONNX Runtime library and
// deployment bundles to S3. Its methods may be called concurrently.
type BundleStore struct {
	client *s3.Client
	opts   BundleStoreOptions

	mu   sync.Mutex
	sums map[string]fileSum // path -> SHA-256 of the file as last read
}

// fileSum is a file's SHA-256 as of its size and modification time.
type fileSum struct {
	size int64
	mod  time.Time
	sum  string
}

// NewBundleStore loads the AWS configuration; it makes no API call.
func NewBundleStore(ctx context.Context, o BundleStoreOptions) (*BundleStore, error) {
	if o.Bucket == "" {
		return nil, errors.New("bundle store: no bucket")
	}
	if o.Region == "" {
		return nil, errors.New("bundle store: no region")
	}
	if len(o.EncryptionKey) != 32 {
		return nil, fmt.Errorf("bundle store: encryption key has %d bytes, want 32", len(o.EncryptionKey))
	}
	o.Prefix = strings.Trim(o.Prefix, "/")
	if o.Prefix == "" {
		o.Prefix = "algocloud"
	}
	if o.PublicURL == "" {
		if o.Endpoint != "" {
			o.PublicURL = strings.TrimRight(o.Endpoint, "/") + "/" + o.Bucket + "/" + o.Prefix
		} else {
			o.PublicURL = "https://" + o.Bucket + ".s3." + o.Region + ".amazonaws.com/" + o.Prefix
		}
	}
	load := []func(*config.LoadOptions) error{config.WithRegion(o.Region), config.WithRetryMaxAttempts(5)}
	if o.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("bundle store: load AWS config: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			so.UsePathStyle = true
		}
	})
	return &BundleStore{client: client, opts: o, sums: map[string]fileSum{}}, nil
}

// ArtifactsURL is the base URL the user data fetches from.
func (b *BundleStore) ArtifactsURL() string { return b.opts.PublicURL }

// Keys returns a deployment's bundle keys.
func (b *BundleStore) Keys(deploymentID string) (BundleKeys, error) {
	return DeriveBundleKeys(b.opts.EncryptionKey, deploymentID)
}

func (b *BundleStore) key(parts ...string) string {
	return b.opts.Prefix + "/" + strings.Join(parts, "/")
}

// BundleKey is the object key of a deployment's bundle.
func (b *BundleStore) BundleKey(deploymentID string) string {
	return b.key(deploymentID, "bundle.enc")
}

// Publish seals a deployment's bundle (a tar.gz) and uploads it, replacing
// the previous one. Publishing the same bundle twice is harmless.
func (b *BundleStore) Publish(ctx context.Context, deploymentID string, tarGz []byte) error {
	if !deploymentIDRe.MatchString(deploymentID) {
		return permanent("publish bundle: deployment id %q is not valid", deploymentID)
	}
	k, err := b.Keys(deploymentID)
	if err != nil {
		return err
	}
	sealed, err := SealBundle(k, tarGz)
	if err != nil {
		return err
	}
	_, err = b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(b.opts.Bucket),
		Key:         aws.String(b.BundleKey(deploymentID)),
		Body:        bytes.NewReader(sealed),
		ContentType: aws.String("application/octet-stream"),
	})
	if err != nil {
		return fmt.Errorf("publish bundle of %s to s3://%s/%s: %w", deploymentID, b.opts.Bucket, b.BundleKey(deploymentID), err)
	}
	return nil
}

// sha256Meta is the object metadata holding the binary's SHA-256.
const sha256Meta = "sha256"

// PublishBinary uploads the inference server binary at path unless the
// object already holds the same bytes (by SHA-256 in its metadata).
func (b *BundleStore) PublishBinary(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("publish inference binary: %w", err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	key := b.key("algocloud-infer")
	head, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.opts.Bucket), Key: aws.String(key)})
	if err == nil && head.Metadata[sha256Meta] == want {
		return nil
	}
	_, err = b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(b.opts.Bucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(data),
		ContentType: aws.String("application/octet-stream"),
		Metadata:    map[string]string{sha256Meta: want},
	})
	if err != nil {
		return fmt.Errorf("publish inference binary to s3://%s/%s: %w", b.opts.Bucket, key, err)
	}
	return nil
}

// ONNXRuntimeKey is the object key of the ONNX Runtime library with this
// SHA-256 (hex).
func (b *BundleStore) ONNXRuntimeKey(sum string) string {
	return b.key("onnxruntime", sum, "libonnxruntime.so.1")
}

// PublishONNXRuntime uploads the ONNX Runtime library at path (about 35 MB)
// under ONNXRuntimeKey of its SHA-256 unless that object already holds it,
// and returns the sum. The sum of an unchanged file (same size and
// modification time) is not computed again.
func (b *BundleStore) PublishONNXRuntime(ctx context.Context, path string) (string, error) {
	sum, err := b.fileSHA256(path)
	if err != nil {
		return "", fmt.Errorf("publish ONNX Runtime: %w", err)
	}
	key := b.ONNXRuntimeKey(sum)
	head, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.opts.Bucket), Key: aws.String(key)})
	if err == nil && head.Metadata[sha256Meta] == sum {
		return sum, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("publish ONNX Runtime: %w", err)
	}
	defer f.Close()
	_, err = b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(b.opts.Bucket),
		Key:         aws.String(key),
		Body:        f,
		ContentType: aws.String("application/octet-stream"),
		Metadata:    map[string]string{sha256Meta: sum},
	})
	if err != nil {
		return "", fmt.Errorf("publish ONNX Runtime to s3://%s/%s: %w", b.opts.Bucket, key, err)
	}
	return sum, nil
}

// fileSHA256 is the hex SHA-256 of the file at path, cached by its size and
// modification time.
func (b *BundleStore) fileSHA256(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	c, ok := b.sums[path]
	b.mu.Unlock()
	if ok && c.size == st.Size() && c.mod.Equal(st.ModTime()) {
		return c.sum, nil
	}
	sum, err := bundlelayout.FileSHA256(path)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	b.sums[path] = fileSum{size: st.Size(), mod: st.ModTime(), sum: sum}
	b.mu.Unlock()
	return sum, nil
}

// Fetch downloads and opens a deployment's bundle (for checks and tests;
// instances fetch with their user data).
func (b *BundleStore) Fetch(ctx context.Context, deploymentID string) ([]byte, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.opts.Bucket), Key: aws.String(b.BundleKey(deploymentID))})
	if err != nil {
		return nil, fmt.Errorf("fetch bundle of %s: %w", deploymentID, err)
	}
	defer out.Body.Close()
	sealed, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, err
	}
	k, err := b.Keys(deploymentID)
	if err != nil {
		return nil, err
	}
	return OpenBundle(k, sealed)
}

// PublishObject seals tarGz with the deployment's keys and uploads it as
// object (bundlelayout.CodeObject: "code/<name>.enc") in the deployment's
// folder, where its server's agent fetches it (commands.Fetch).
func (b *BundleStore) PublishObject(ctx context.Context, deploymentID, object string, tarGz []byte) error {
	if !deploymentIDRe.MatchString(deploymentID) {
		return permanent("publish object: deployment id %q is not valid", deploymentID)
	}
	if !objectRe.MatchString(object) {
		return permanent("publish object: name %q is not valid", object)
	}
	k, err := b.Keys(deploymentID)
	if err != nil {
		return err
	}
	sealed, err := SealBundle(k, tarGz)
	if err != nil {
		return err
	}
	key := b.key(deploymentID, object)
	_, err = b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(b.opts.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(sealed), ContentType: aws.String("application/octet-stream"),
	})
	if err != nil {
		return fmt.Errorf("publish s3://%s/%s: %w", b.opts.Bucket, key, err)
	}
	return nil
}

var objectRe = regexp.MustCompile(`^code/[0-9a-f]{8,64}\.enc$`)

// Delete removes a deployment's bundle, its certificate object and its
// code revisions; those already gone are not an error (S3's DeleteObject
// of a missing key succeeds).
func (b *BundleStore) Delete(ctx context.Context, deploymentID string) error {
	if !deploymentIDRe.MatchString(deploymentID) {
		return permanent("delete bundle: deployment id %q is not valid", deploymentID)
	}
	keys := []string{b.CertKey(deploymentID), b.BundleKey(deploymentID)}
	pages := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: aws.String(b.opts.Bucket), Prefix: aws.String(b.key(deploymentID, "code") + "/")})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list the code revisions of %s: %w", deploymentID, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	for _, key := range keys {
		_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.opts.Bucket), Key: aws.String(key)})
		if err != nil && !isCode(err, "NoSuchKey", "NotFound") {
			return fmt.Errorf("delete s3://%s/%s: %w", b.opts.Bucket, key, err)
		}
	}
	return nil
}

// The certificate object: <prefix>/<deployment-id>/cert.enc, a tar.gz of
// version (decimal), cert.pem and key.pem sealed like the bundle
// (SealBundle, the deployment's keys). The instance's certfetch.sh
// (CertFetchScript) installs it when its version is newer than the one it
// installed last, so an older object (a replay) is never put back.

// CertKey is the object key of a deployment's certificate object.
func (b *BundleStore) CertKey(deploymentID string) string {
	return b.key(deploymentID, "cert.enc")
}

// SealCert makes the sealed certificate object of PublishCert.
func SealCert(k BundleKeys, certPEM, keyPEM []byte, version int64) ([]byte, error) {
	if version <= 0 {
		return nil, errors.New("seal certificate: version must be positive")
	}
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, errors.New("seal certificate: empty certificate or key")
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"version", 0o644, []byte(strconv.FormatInt(version, 10) + "\n")},
		{"cert.pem", 0o644, certPEM},
		{"key.pem", 0o600, keyPEM},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return SealBundle(k, buf.Bytes())
}

// PublishCert seals a deployment's certificate and key with version (which
// must grow with every renewal: the worker passes the publication time in
// milliseconds) and uploads it as CertKey, replacing the previous one.
func (b *BundleStore) PublishCert(ctx context.Context, deploymentID string, certPEM, keyPEM []byte, version int64) error {
	if !deploymentIDRe.MatchString(deploymentID) {
		return permanent("publish certificate: deployment id %q is not valid", deploymentID)
	}
	k, err := b.Keys(deploymentID)
	if err != nil {
		return err
	}
	sealed, err := SealCert(k, certPEM, keyPEM, version)
	if err != nil {
		return err
	}
	_, err = b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(b.opts.Bucket),
		Key:         aws.String(b.CertKey(deploymentID)),
		Body:        bytes.NewReader(sealed),
		ContentType: aws.String("application/octet-stream"),
	})
	if err != nil {
		return fmt.Errorf("publish certificate of %s to s3://%s/%s: %w", deploymentID, b.opts.Bucket, b.CertKey(deploymentID), err)
	}
	return nil
}

var (
	_ compute.BundlePublisher = (*BundleStore)(nil)
	_ compute.CertPublisher   = (*BundleStore)(nil)
)
