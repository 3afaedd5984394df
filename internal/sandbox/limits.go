package sandbox

import (
	"fmt"
	"math"
	"strings"
)

// Limits bound a group of sandboxed processes. Zero fields take defaults.
type Limits struct {
	// Label names where the limits come from ("t3.small"), in errors.
	Label string `json:"label,omitempty"`
	// MemoryBytes bounds the group's memory (RSS, page cache and its /tmp);
	// past it the kernel kills a process of the group.
	MemoryBytes int64 `json:"memory_bytes"`
	// CPUs is the CPU time the group gets per second of wall time.
	CPUs float64 `json:"cpus"`
	// Pids bounds the group's tasks (processes and threads): a fork bomb
	// stops there.
	Pids int `json:"pids"`
	// NoFile is each process's open-file limit (default 4096).
	NoFile uint64 `json:"nofile,omitempty"`
	// FileSizeBytes is the largest file a process may write.
	FileSizeBytes int64 `json:"file_size_bytes,omitempty"`
	// TmpBytes is the size of the private /tmp (default a quarter of
	// MemoryBytes, at most 1 GiB); it is in memory, so it counts against
	// MemoryBytes too.
	TmpBytes int64 `json:"tmp_bytes,omitempty"`
	// DiskBytes bounds what a command writes to its writable mounts (the
	// venv during an install); checked every second, the command is killed
	// past it.
	DiskBytes int64 `json:"disk_bytes,omitempty"`
}

const gib = 1 << 30

// instance is what an EC2 instance type offers.
type instance struct {
	vcpus  float64
	memGiB float64
}

// instances are the instance types spec.InstanceTypes offers.
var instances = map[string]instance{
	"t2.micro": {1, 1}, "t2.small": {1, 2}, "t3.small": {2, 2}, "t3.medium": {2, 4}, "t3.large": {2, 8},
	"c5.large": {2, 4}, "c5.xlarge": {4, 8}, "c5.2xlarge": {8, 16}, "m5.large": {2, 8}, "m5.xlarge": {4, 16},
	"g4dn.xlarge": {4, 16}, "g4dn.2xlarge": {8, 32}, "g5.xlarge": {4, 16}, "g5.2xlarge": {8, 32}, "p3.2xlarge": {8, 61},
}

// ForInstanceType returns the limits of an instance type, scaled by scale
// (1 = the instance's own; algocloud dev --sandbox-scale changes it so a
// small dev machine can host big types, or a test can use tiny ones). An
// unknown type is an error naming it.
func ForInstanceType(name string, scale float64) (Limits, error) {
	in, ok := instances[name]
	if !ok {
		return Limits{}, fmt.Errorf("no sandbox limits for instance type %q", name)
	}
	if scale <= 0 {
		scale = 1
	}
	mem := int64(in.memGiB * gib * scale)
	return Limits{
		Label:         name,
		MemoryBytes:   mem,
		CPUs:          math.Max(0.1, in.vcpus*scale),
		Pids:          int(math.Max(64, 512*in.vcpus*math.Min(scale, 1))),
		NoFile:        4096,
		FileSizeBytes: 8 * gib,
		DiskBytes:     8 * gib, // the instances' root volume
	}, nil
}

// InstanceTypes are the types ForInstanceType knows.
func InstanceTypes() []string {
	out := make([]string, 0, len(instances))
	for k := range instances {
		out = append(out, k)
	}
	return out
}

func (l Limits) noFile() uint64 {
	if l.NoFile == 0 {
		return 4096
	}
	return l.NoFile
}

func (l Limits) tmpBytes() int64 {
	if l.TmpBytes > 0 {
		return l.TmpBytes
	}
	t := int64(gib)
	if l.MemoryBytes > 0 && l.MemoryBytes/4 < t {
		t = l.MemoryBytes / 4
	}
	if t < 16<<20 {
		t = 16 << 20
	}
	return t
}

// Describe says the memory limit as people read it: "2 GiB, the t3.small limit".
func (l Limits) Describe() string {
	s := FormatBytes(l.MemoryBytes)
	if l.Label != "" {
		s += ", the " + l.Label + " limit"
	}
	return s
}

// FormatBytes writes n in GiB or MiB.
func FormatBytes(n int64) string {
	if n >= gib {
		return trimFloat(float64(n)/gib) + " GiB"
	}
	return trimFloat(float64(n)/(1<<20)) + " MiB"
}

func trimFloat(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%d", int64(f))
	}
	s := fmt.Sprintf("%.1f", f)
	return strings.TrimSuffix(s, ".0")
}
