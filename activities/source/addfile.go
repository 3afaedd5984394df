package source

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// AddFile writes r to name under dest (an extra file such as a trained model),
// atomically: a temporary file next to the target, renamed into place, so a
// failed upload leaves no partial file and a retry replaces the file whole.
//
// name is a relative path with "/" (or "\") separators; parent folders are
// created inside dest. Absolute names, "..", symlinks on the way and hidden
// components (".git/hooks/x", ".env") are ErrUnsafePath. More than maxBytes
// (DefaultLimits.MaxFileBytes when maxBytes <= 0) is ErrTooLarge.
func AddFile(dest, name string, r io.Reader, maxBytes int64) error {
	if maxBytes <= 0 {
		maxBytes = DefaultLimits.MaxFileBytes
	}
	rel, err := cleanName(name)
	if err != nil {
		return fmt.Errorf("add file: %w", err)
	}
	if rel == "" || strings.HasSuffix(strings.ReplaceAll(name, `\`, "/"), "/") {
		return fmt.Errorf("add file: %w: %q is not a file name", ErrUnsafePath, name)
	}
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if strings.HasPrefix(part, ".") {
			return fmt.Errorf("add file: %w: %q has a hidden component", ErrUnsafePath, name)
		}
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("add file: %w", err)
	}
	path, err := SafeJoin(dest, rel)
	if err != nil {
		return fmt.Errorf("add file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("add file %s: %w", rel, err)
	}
	if _, err := writeFileAtomic(path, r, maxBytes, 0o644); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return fmt.Errorf("add file %s: %w: over %d bytes", rel, ErrTooLarge, maxBytes)
		}
		return fmt.Errorf("add file %s: %w", rel, err)
	}
	return nil
}
