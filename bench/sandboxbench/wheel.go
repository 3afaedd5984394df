package sandboxbench

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeWheel writes benchtiny-0.1.0-py3-none-any.whl, a one-module wheel.
func writeWheel(dir string) error {
	f, err := os.Create(filepath.Join(dir, "benchtiny-0.1.0-py3-none-any.whl"))
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	files := map[string]string{
		"benchtiny.py":                       "VALUE = 42\n",
		"benchtiny-0.1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: benchtiny\nVersion: 0.1.0\n",
		"benchtiny-0.1.0.dist-info/WHEEL":    "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
	}
	var record strings.Builder
	for _, name := range []string{"benchtiny.py", "benchtiny-0.1.0.dist-info/METADATA", "benchtiny-0.1.0.dist-info/WHEEL"} {
		w, err := zw.Create(name)
		if err != nil {
			return err
		}
		data := []byte(files[name])
		if _, err := w.Write(data); err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", name, base64.RawURLEncoding.EncodeToString(sum[:]), len(data))
	}
	record.WriteString("benchtiny-0.1.0.dist-info/RECORD,,\n")
	w, err := zw.Create("benchtiny-0.1.0.dist-info/RECORD")
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(record.String())); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}
