// Package testhostile is the hostile algorithm the sandbox tests deploy: an
// aai_main.py whose predict, and a package whose build backend (run by pip
// during the install), try to read the platform's keys, databases and other
// servers' code, write outside their folder, see, kill or ptrace the
// platform's processes, reach its services on loopback, gain privileges,
// exhaust memory, fork without end and fill the disk. Only loopback
// addresses are ever targets. For tests only.
package testhostile

import (
	"archive/tar"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed probe.py
var probePy string

// Targets are what the attempts aim at.
type Targets struct {
	// Read are files the algorithm must not read (the CA key, another
	// server's aai_main.py, the databases, the endpoint's TLS key).
	Read []string `json:"read"`
	// Write are paths outside its folder it must not create: a write may
	// land in the sandbox's private /tmp when the path lies under the
	// host's /tmp, so the test checks the host (NoFileExists), not the
	// attempt's result.
	Write []string `json:"write"`
	// Connect are loopback ports of the platform's services.
	Connect []int `json:"connect"`
	// Kill are the platform's pids (kill, ptrace, read /proc/<pid>/environ).
	Kill []int `json:"kill"`
	// EnvMarkers are strings of the platform's environment that must not
	// appear in the algorithm's.
	EnvMarkers []string `json:"env_markers"`
}

// Breaches returns the attempts of a result that were not blocked (writes
// are the host's to check).
func Breaches(results map[string]string) []string {
	var out []string
	for name, r := range results {
		if !strings.HasPrefix(r, "blocked") && !strings.HasPrefix(r, "host checks:") {
			out = append(out, name+": "+r)
		}
	}
	sort.Strings(out)
	return out
}

// Algorithm is an aai_main.py (JSON in, JSON out) whose predict takes
// {"do": "probe"|"oom"|"fork"|"fill", ...}: probe runs every attempt at
// targets and returns the results ({"init", "predict"} and, when the Sdist
// package is installed, "install": what its build backend got); oom allocates "mib" MiB; fork forks
// without end; fill writes until the disk refuses (cwd, /tmp, $HOME).
// testing_input_data asks for a probe, so Test Code runs the attempts too.
func Algorithm(t Targets) string {
	tj, _ := json.Marshal(t)
	return probePy + fmt.Sprintf(`

TARGETS = json.loads(%q)

class HostileAlgorithm:
    def __init__(self):
        self.at_init = attempts(TARGETS)

    def predict(self, data):
        do = data.get("do", "probe")
        if do == "probe":
            out = {"init": self.at_init, "predict": attempts(TARGETS)}
            try:  # what the package's build backend got during the install
                import hostile_result
                out["install"] = hostile_result.RESULTS
            except ImportError:
                pass
            return out
        if do == "oom":
            x = bytearray(int(data.get("mib", 4096)) * 1024 * 1024)
            for i in range(0, len(x), 4096):
                x[i] = 1
            return {"allocated": len(x)}
        if do == "fork":
            return {"forked": fork_bomb()}
        if do == "fill":
            return {"wrote_mib": fill_disk([os.getcwd(), "/tmp", os.environ.get("HOME", "/tmp")])}
        return {"ok": True}

    def testing_input_data(self):
        return {"do": "probe"}
`, string(tj))
}

// Sdist writes hostile-<version>.tar.gz into dir: a source distribution
// whose in-tree build backend (pyproject.toml, no build requirements, so pip
// builds it offline) runs every attempt while pip builds the wheel, and
// stores the results in the module it builds: after the install,
// `import hostile_result; hostile_result.RESULTS`.
func Sdist(dir, version string, t Targets) (string, error) {
	tj, _ := json.Marshal(t)
	base := "hostile-" + version
	backend := probePy + fmt.Sprintf(`

import base64, hashlib, zipfile

TARGETS = json.loads(%[1]q)

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    results = attempts(TARGETS)
    results["fill the disk from the build"] = "blocked: wrote %%d MiB" %% fill_disk([os.getcwd(), "/tmp"]) if os.environ.get("HOSTILE_FILL") else "blocked: skipped"
    name = "hostile-%[2]s-py3-none-any.whl"
    files = {
        "hostile_result.py": "RESULTS = %%r\n" %% (results,),
        "hostile-%[2]s.dist-info/METADATA": "Metadata-Version: 2.1\nName: hostile\nVersion: %[2]s\n",
        "hostile-%[2]s.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hostile\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for path, text in files.items():
            data = text.encode()
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%%s,sha256=%%s,%%d" %% (path, digest, len(data)))
        record.append("hostile-%[2]s.dist-info/RECORD,,")
        z.writestr("hostile-%[2]s.dist-info/RECORD", "\n".join(record) + "\n")
    return name
`, string(tj), version)
	files := map[string]string{
		base + "/pyproject.toml":     "[build-system]\nrequires = []\nbuild-backend = \"hostile_backend\"\nbackend-path = [\".\"]\n",
		base + "/hostile_backend.py": backend,
		base + "/PKG-INFO":           "Metadata-Version: 2.1\nName: hostile\nVersion: " + version + "\n",
	}
	path := filepath.Join(dir, base+".tar.gz")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			return "", err
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return path, f.Close()
}
