package bundlelayout

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// The sealed-object format of everything the platform publishes for an EC2
// instance (bundle.enc, cert.enc, and the code revisions its agent fetches):
// a random IV, AES-256-CTR ciphertext, then HMAC-SHA256(IV || ciphertext)
// (encrypt-then-MAC), under two keys derived per deployment. It lives here,
// beside the layout, so that the instance's agent (algocloud-infer, which
// links no cloud SDK) opens what the worker (the EC2 provider's BundleStore)
// seals with the same code.

// Seal sizes: AES-256 for the encryption, HMAC-SHA256 for the MAC.
const (
	IVSize  = aes.BlockSize
	MACSize = sha256.Size
)

// Keys are the two keys of one deployment's sealed objects.
type Keys struct {
	Enc [32]byte // AES-256-CTR
	MAC [32]byte // HMAC-SHA256 over IV and ciphertext
}

// DeriveKeys derives a deployment's keys from the platform's 32-byte
// encryption key (HMAC-SHA256 with distinct labels): the worker and the
// instance's user data agree on them without storing them anywhere.
func DeriveKeys(master []byte, deploymentID string) (Keys, error) {
	if len(master) != 32 {
		return Keys{}, fmt.Errorf("bundle keys: encryption key has %d bytes, want 32", len(master))
	}
	var k Keys
	for _, d := range []struct {
		label string
		out   *[32]byte
	}{{"enc", &k.Enc}, {"mac", &k.MAC}} {
		h := hmac.New(sha256.New, master)
		h.Write([]byte("algocloud bundle v1\x00" + d.label + "\x00" + deploymentID))
		copy(d.out[:], h.Sum(nil))
	}
	return k, nil
}

// Seal encrypts plaintext (see the format above). It is what `openssl enc
// -aes-256-ctr` and `openssl dgst -mac HMAC` read, so user data scripts open
// it with the tools every image has.
func Seal(k Keys, plaintext []byte) ([]byte, error) {
	block, err := aes.NewCipher(k.Enc[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, IVSize+len(plaintext), IVSize+len(plaintext)+MACSize)
	if _, err := rand.Read(out[:IVSize]); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	cipher.NewCTR(block, out[:IVSize]).XORKeyStream(out[IVSize:], plaintext)
	mac := hmac.New(sha256.New, k.MAC[:])
	mac.Write(out)
	return mac.Sum(out), nil
}

// ErrMAC means a sealed object was not sealed with these keys, or was changed.
var ErrMAC = errors.New("bundle: MAC mismatch (wrong keys or changed data)")

// Open reverses Seal; the MAC is checked before anything is decrypted.
func Open(k Keys, sealed []byte) ([]byte, error) {
	if len(sealed) < IVSize+MACSize {
		return nil, ErrMAC
	}
	body, sum := sealed[:len(sealed)-MACSize], sealed[len(sealed)-MACSize:]
	mac := hmac.New(sha256.New, k.MAC[:])
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sum) {
		return nil, ErrMAC
	}
	block, err := aes.NewCipher(k.Enc[:])
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(body)-IVSize)
	cipher.NewCTR(block, body[:IVSize]).XORKeyStream(plain, body[IVSize:])
	return plain, nil
}

// FormatKeys is the text of an instance's keys file (its agent's
// --bundle-keys-file): the encryption key and the MAC key in hex, one a line.
func FormatKeys(k Keys) string {
	return hex.EncodeToString(k.Enc[:]) + "\n" + hex.EncodeToString(k.MAC[:]) + "\n"
}

// ParseKeys reads FormatKeys' text.
func ParseKeys(text string) (Keys, error) {
	lines := strings.Fields(text)
	if len(lines) != 2 {
		return Keys{}, errors.New("bundle keys file: want two hex keys, one a line")
	}
	var k Keys
	for i, out := range []*[32]byte{&k.Enc, &k.MAC} {
		b, err := hex.DecodeString(lines[i])
		if err != nil || len(b) != 32 {
			return Keys{}, fmt.Errorf("bundle keys file: line %d is not 64 hex digits", i+1)
		}
		copy(out[:], b)
	}
	return k, nil
}

// Code revisions on the agent's path: the worker publishes each code
// revision an agent must fetch as a sealed tar.gz (code files only, no
// .git) at <artifacts>/<deployment-id>/CodeObject(name), content-addressed
// (name is the tar.gz's SHA-256, shortened), so a retried plan publishes
// the same object and the command names it.

// CodeObject is the object name, under the deployment's folder of the
// artifacts URL, of the sealed code revision name.
func CodeObject(name string) string { return "code/" + name + ".enc" }

// CertObject is the object name, under the deployment's folder, of the
// sealed certificate object (a tar.gz of version, cert.pem, key.pem).
const CertObject = "cert.enc"
