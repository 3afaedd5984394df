package call

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// PlatformTokenPrefix starts every platform caller token, so logs and the
// endpoint can tell it from a user's ep_ token without knowing it.
const PlatformTokenPrefix = "ep_platform_"

// platformTokenLabel separates this derivation from every other use of the
// credentials key (Git credentials are sealed with the same key).
const platformTokenLabel = "algocloud platform caller v1\x00"

// PlatformToken is the bearer token the platform's own workflows (async
// predictions, batches) call deployment deploymentID's endpoint with:
// "ep_platform_" + hex(HMAC-SHA256(key, label + deploymentID)). It is derived,
// never stored: the worker computes it when it calls and when it writes the
// endpoint's config (as its SHA-256, inference.Config.PlatformTokenSHA256), so
// it never enters workflow history, the API or the database, and a user's
// token rotation does not touch it. key is the platform's credentials key.
func PlatformToken(key []byte, deploymentID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(platformTokenLabel + deploymentID))
	return PlatformTokenPrefix + hex.EncodeToString(m.Sum(nil))
}

// PlatformTokenSHA256 is the hex SHA-256 of PlatformToken(key, deploymentID):
// what the endpoint's config holds. Empty when key is empty (no credentials
// key configured: no platform caller).
func PlatformTokenSHA256(key []byte, deploymentID string) string {
	if len(key) == 0 {
		return ""
	}
	sum := sha256.Sum256([]byte(PlatformToken(key, deploymentID)))
	return hex.EncodeToString(sum[:])
}
