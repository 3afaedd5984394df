package webhook

import (
	"fmt"

	"github.com/algocloud/algocloud/internal/sealed"
)

// secretLabel binds a sealed secret to its algorithm, so one endpoint's
// sealed secret cannot be opened as another's.
func secretLabel(algorithmID string) string { return "webhook secret " + algorithmID }

// SealSecret seals an endpoint's secret with the platform's credentials key
// (AES-256-GCM, the sealing of Git credentials): what the store keeps.
func SealSecret(key []byte, algorithmID, secret string) ([]byte, error) {
	box, err := sealed.Seal(key, secretLabel(algorithmID), []byte(secret))
	if err != nil {
		return nil, fmt.Errorf("seal webhook secret: %w", err)
	}
	return box, nil
}

// OpenSecret reverses SealSecret; a wrong key or another algorithm's sealed
// secret is an error.
func OpenSecret(key []byte, algorithmID string, box []byte) (string, error) {
	plain, err := sealed.Open(key, secretLabel(algorithmID), box)
	if err != nil {
		return "", fmt.Errorf("unseal webhook secret (the API and the worker need the same encryption key): %w", err)
	}
	return string(plain), nil
}
