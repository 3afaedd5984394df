package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroup is one group's control groups: on cgroup v2 one folder with the
// memory, pids and cpu controllers; on v1 one folder per controller. Each is
// created below the platform's own cgroup (so a container's limits still
// hold above it), in a folder "algocloud".
type cgroup struct {
	v2   bool
	dirs map[string]string // controller -> folder (v2: "" -> folder)
}

const cgroupRoot = "/sys/fs/cgroup"

// newCgroup creates (or reuses) the group's cgroup and sets its limits.
func newCgroup(group string, lim Limits) (*cgroup, error) {
	own, err := ownCgroups()
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	if p, ok := own[""]; ok && isV2() {
		return newCgroupV2(p, group, lim)
	}
	return newCgroupV1(own, group, lim)
}

func isV2() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

// ownCgroups maps each controller (v1) or "" (v2) to this process's path.
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}

func newCgroupV1(own map[string]string, group string, lim Limits) (*cgroup, error) {
	cg := &cgroup{dirs: map[string]string{}}
	for _, ctrl := range []string{"memory", "pids", "cpu"} {
		base := filepath.Join(cgroupRoot, ctrl)
		if _, err := os.Stat(base); err != nil {
			if ctrl == "memory" {
				return nil, fmt.Errorf("no memory cgroup controller at %s: memory limits need one", base)
			}
			continue
		}
		dir := filepath.Join(base, own[ctrl], "algocloud", group)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup %s (the platform needs root, or a delegated cgroup, to limit author code): %w", dir, err)
		}
		cg.dirs[ctrl] = dir
	}
	var errs []error
	if d, ok := cg.dirs["memory"]; ok && lim.MemoryBytes > 0 {
		errs = append(errs, write(d, "memory.limit_in_bytes", strconv.FormatInt(lim.MemoryBytes, 10)))
		// No swap beyond the limit where the kernel accounts it.
		if _, err := os.Stat(filepath.Join(d, "memory.memsw.limit_in_bytes")); err == nil {
			_ = write(d, "memory.memsw.limit_in_bytes", strconv.FormatInt(lim.MemoryBytes, 10))
		}
		_ = write(d, "memory.swappiness", "0")
	}
	if d, ok := cg.dirs["pids"]; ok && lim.Pids > 0 {
		errs = append(errs, write(d, "pids.max", strconv.Itoa(lim.Pids)))
	}
	if d, ok := cg.dirs["cpu"]; ok && lim.CPUs > 0 {
		const period = 100000
		errs = append(errs, write(d, "cpu.cfs_period_us", strconv.Itoa(period)))
		errs = append(errs, write(d, "cpu.cfs_quota_us", strconv.Itoa(int(lim.CPUs*period))))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cg, nil
}

func newCgroupV2(own, group string, lim Limits) (*cgroup, error) {
	// Below our own cgroup when it is delegated to us (a systemd unit with
	// Delegate=yes), else below the root (the platform runs as root).
	base := filepath.Join(cgroupRoot, own)
	if own == "/" || !writable(filepath.Join(base, "cgroup.procs")) {
		base = cgroupRoot
	} else if err := leaveDelegatedRoot(base); err != nil {
		return nil, err
	}
	parent := filepath.Join(base, "algocloud")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup %s (the platform needs root, or a delegated cgroup, to limit author code): %w", parent, err)
	}
	// Controllers must be enabled on the way down; a cgroup with processes
	// cannot enable them for its children (the no-internal-process rule),
	// which is why the groups live in their own "algocloud" folder.
	for _, d := range []string{base, parent} {
		if d == cgroupRoot && base != cgroupRoot {
			continue
		}
		_ = write(d, "cgroup.subtree_control", "+memory +pids +cpu")
	}
	dir := filepath.Join(parent, group)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	cg := &cgroup{v2: true, dirs: map[string]string{"": dir}}
	var errs []error
	if lim.MemoryBytes > 0 {
		errs = append(errs, write(dir, "memory.max", strconv.FormatInt(lim.MemoryBytes, 10)))
		_ = write(dir, "memory.swap.max", "0")
	}
	if lim.Pids > 0 {
		errs = append(errs, write(dir, "pids.max", strconv.Itoa(lim.Pids)))
	}
	if lim.CPUs > 0 {
		errs = append(errs, write(dir, "cpu.max", fmt.Sprintf("%d 100000", int(lim.CPUs*100000))))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cg, nil
}

// leaveDelegatedRoot moves this process out of its own (delegated) cgroup
// into a leaf "supervisor" below it: cgroup v2 lets a cgroup hand its
// controllers to children only while it holds no processes itself (a
// systemd unit with Delegate=yes starts with its main process there).
func leaveDelegatedRoot(base string) error {
	b, err := os.ReadFile(filepath.Join(base, "cgroup.procs"))
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return err
	}
	leaf := filepath.Join(base, "supervisor")
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", leaf, err)
	}
	for _, pid := range strings.Fields(string(b)) {
		if err := write(leaf, "cgroup.procs", pid); err != nil {
			return fmt.Errorf("move the server into %s: %w", leaf, err)
		}
	}
	return nil
}

func writable(path string) bool {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func write(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("cgroup %s = %s: %w", file, value, err)
	}
	return nil
}

// add moves processes into the group.
func (cg *cgroup) add(pids ...int) error {
	for _, d := range cg.dirs {
		for _, pid := range pids {
			if err := write(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
				return err
			}
		}
	}
	return nil
}

// oomKills reads the kernel's count of OOM kills in the group.
func (cg *cgroup) oomKills() uint64 {
	file := "memory.events"
	d := cg.dirs[""]
	if !cg.v2 {
		file, d = "memory.oom_control", cg.dirs["memory"]
	}
	if d == "" {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(d, file))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// remove deletes the group's folders (only empty cgroups can go; one still
// in use stays, and the next launcher of the group reuses it).
func (cg *cgroup) remove() error {
	for _, d := range cg.dirs {
		_ = os.Remove(d)
	}
	return nil
}
