// Package blobs stores the files the API and the worker hand each other
// (uploaded code, Test Code's output) under slash-separated keys, so the two
// need not share a disk: a local folder (Dir, for one machine) or an S3 bucket
// (s3store.S3, private objects, in its own package so that the API links no
// AWS SDK).
package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNotFound is returned by Get for a key that holds no blob.
var ErrNotFound = errors.New("blob not found")

// Store keeps blobs under keys such as uploads/<deployment>/<random>/<name>.
type Store interface {
	// Put stores size bytes of r under key, replacing any blob there; size
	// is -1 when unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens the blob under key; ErrNotFound when there is none.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes every blob whose key starts with prefix followed by a
	// slash, or equals prefix; deleting nothing is not an error.
	Delete(ctx context.Context, prefix string) error
}

// CheckKey refuses keys that could leave the store's root: empty, absolute,
// with backslashes, control characters, or empty, "." or ".." segments.
func CheckKey(key string) error {
	switch {
	case key == "":
		return errors.New("blob key is empty")
	case len(key) > 900:
		return fmt.Errorf("blob key is over 900 bytes")
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("blob key %q is absolute", key)
	case strings.ContainsRune(key, '\\'):
		return fmt.Errorf("blob key %q has a backslash", key)
	case strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("blob key %q has control characters", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("blob key %q has an empty, . or .. segment", key)
		}
	}
	return nil
}
