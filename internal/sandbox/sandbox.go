// Package sandbox is the one launcher through which algocloud runs
// author-controlled code: pip installs (and the build scripts of the packages
// they fetch), Test Code's Python workers and the live endpoint's Python
// workers. Nothing the author controls runs in the platform's processes, as
// its user, or where it can read the platform's data, keys or credentials.
//
// A sandboxed command runs under bubblewrap (bwrap) with new user, PID,
// mount, IPC, UTS, cgroup and network namespaces: it sees read-only system
// files (/usr and a few files of /etc), its own mounts (the code, the venv,
// the runner; writable only where a Mount says so), a private /tmp of bounded
// size, and a /proc with only its own processes. When the platform runs as
// root, bwrap itself is started as an unprivileged host user of the server's
// own (UIDBase + a hash of the group), so even what the user namespace maps
// is nobody the host trusts; otherwise the namespace maps the platform's own
// uid. bwrap sets no_new_privs, so setuid binaries gain nothing.
//
// Network is either loopback only (NetNone) or outbound through slirp4netns
// with the host's loopback disabled (NetOutbound): the internet for pip and
// model downloads, never the platform's own services on 127.0.0.1.
//
// Limits (memory, tasks, CPU) are a cgroup per group (v1 or v2, see
// cgroup.go) that every process of the group joins before its command
// starts: bwrap blocks on a pipe (--block-fd) until the launcher has moved it
// into the cgroup and set its rlimits (open files, file size, no core dumps).
// An out-of-memory kill is the kernel's, counted by the cgroup (OOMKills).
//
// docs/security.md gives the threat model and why this mechanism.
package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Mode says whether author code is sandboxed.
type Mode string

const (
	// ModeBwrap runs author code under bubblewrap (the default).
	ModeBwrap Mode = "bwrap"
	// ModeNone runs author code as the platform's own user, unconfined: only
	// where the operator asked for it (algocloud dev --sandbox=none), and said
	// so everywhere a result is shown.
	ModeNone Mode = "none"
)

// Network is what a sandbox may reach.
type Network string

const (
	// NetOutbound reaches the internet through slirp4netns; the host's
	// loopback (the platform's API, Temporal, other endpoints) is not reachable.
	NetOutbound Network = "outbound"
	// NetNone has only the sandbox's own loopback.
	NetNone Network = "none"
)

// UIDBase is the first host uid handed to sandboxes when the platform runs
// as root: a group's uid is UIDBase + fnv32(group) % uidSpan.
const UIDBase = 200000

const uidSpan = 100000

// Config is how one group of sandboxed processes (a server's install, test
// or live workers) runs. It travels in the inference server's config file.
type Config struct {
	// Mode is bwrap (default) or none.
	Mode Mode `json:"mode"`
	// Network is outbound (default) or none.
	Network Network `json:"network,omitempty"`
	// Group names the cgroup every process of this config joins (and derives
	// its uid): one per server and role, e.g. "<server>.live".
	Group string `json:"group"`
	// Limits bound the whole group.
	Limits Limits `json:"limits"`
	// StateDir is a folder the launcher may write its generated /etc files
	// to (the server's folder); default a temporary folder.
	StateDir string `json:"state_dir,omitempty"`
}

// Command is one program to run in the sandbox.
type Command struct {
	// Argv is the program and its arguments, as paths inside the sandbox
	// (mounts keep their host paths, so host paths work).
	Argv []string
	// Dir is the working folder (a path inside the sandbox).
	Dir string
	// Env is the whole environment besides PATH, HOME, TMPDIR and LANG,
	// which the launcher sets (Env may override them). The platform's own
	// environment is never passed on.
	Env []string
	// Mounts are the host folders and files the command sees, at the same
	// path; nothing else of the host's files but the system's is visible.
	Mounts []Mount
	// ExtraFiles become fd 3, 4, ... as with exec.Cmd.
	ExtraFiles []*os.File
	// Stdout and Stderr receive the command's output.
	Stdout, Stderr io.Writer
}

// Mount is a host path bound into the sandbox at the same path.
type Mount struct {
	Path     string
	Writable bool
}

// Launcher starts commands of one Config. Safe for concurrent use.
type Launcher struct {
	cfg     Config
	bwrap   string
	prlimit string
	slirp   string
	uid     int // host uid bwrap runs as; -1: the platform's own
	cg      *cgroup
	etcDir  string

	mu       sync.Mutex
	prepared map[string]bool // mount paths already owned by uid
}

// Available reports why this machine cannot run ModeBwrap sandboxes, or nil
// when it can: bwrap is installed and an unprivileged user namespace starts.
func Available() error {
	bw, err := exec.LookPath("bwrap")
	if err != nil {
		return errors.New("bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)")
	}
	args := []string{"--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--", "/bin/true"}
	cmd := exec.Command(bw, args...)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: UIDBase, Gid: UIDBase, Groups: []uint32{}}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("bubblewrap cannot create a sandbox here (user namespaces disabled?): %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// New checks that the machine can run cfg's sandboxes and prepares its
// cgroup. A ModeNone config gives a launcher that runs commands unconfined.
func New(cfg Config) (*Launcher, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeBwrap
	}
	if cfg.Network == "" {
		cfg.Network = NetOutbound
	}
	switch cfg.Mode {
	case ModeBwrap, ModeNone:
	default:
		return nil, fmt.Errorf("sandbox: mode %q: want bwrap or none", cfg.Mode)
	}
	switch cfg.Network {
	case NetOutbound, NetNone:
	default:
		return nil, fmt.Errorf("sandbox: network %q: want outbound or none", cfg.Network)
	}
	if cfg.Group == "" || strings.ContainsAny(cfg.Group, "/\x00") || cfg.Group == "." || cfg.Group == ".." {
		return nil, fmt.Errorf("sandbox: bad group name %q", cfg.Group)
	}
	l := &Launcher{cfg: cfg, uid: -1, prepared: map[string]bool{}}
	if cfg.Mode == ModeNone {
		return l, nil
	}
	var err error
	if l.prlimit, err = exec.LookPath("prlimit"); err != nil {
		return nil, errors.New("sandbox: prlimit (util-linux) is not installed")
	}
	if l.bwrap, err = exec.LookPath("bwrap"); err != nil {
		return nil, errors.New("sandbox: bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap), and author code runs only sandboxed unless the platform is started with --sandbox=none")
	}
	if cfg.Network == NetOutbound {
		if l.slirp, err = exec.LookPath("slirp4netns"); err != nil {
			return nil, errors.New("sandbox: slirp4netns is not installed (Debian: apt-get install slirp4netns); it gives sandboxes outbound network; install it or set the deployment's network to none")
		}
	}
	if os.Geteuid() == 0 {
		h := fnv.New32a()
		h.Write([]byte(cfg.Group))
		l.uid = UIDBase + int(h.Sum32()%uidSpan)
	}
	if l.cg, err = newCgroup(cfg.Group, cfg.Limits); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if err := l.writeEtc(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return l, nil
}

// Config is the launcher's configuration (defaults filled in).
func (l *Launcher) Config() Config { return l.cfg }

// UID is the host uid sandboxed processes run as, or -1 for the platform's own.
func (l *Launcher) UID() int { return l.uid }

// Close removes the group's cgroup once its processes are gone and the
// generated files.
func (l *Launcher) Close() error {
	var errs []error
	if l.cg != nil {
		errs = append(errs, l.cg.remove())
	}
	if l.etcDir != "" && l.cfg.StateDir == "" {
		errs = append(errs, os.RemoveAll(l.etcDir))
	}
	return errors.Join(errs...)
}

// OOMKills is how many processes of the group the kernel killed for memory
// so far (0 without a memory cgroup).
func (l *Launcher) OOMKills() uint64 {
	if l.cg == nil {
		return 0
	}
	return l.cg.oomKills()
}

// writeEtc writes the sandbox's own passwd, group, hosts and resolv.conf.
func (l *Launcher) writeEtc() error {
	dir := l.cfg.StateDir
	var err error
	if dir == "" {
		if dir, err = os.MkdirTemp("", "algocloud-sandbox-"); err != nil {
			return err
		}
	} else {
		dir = filepath.Join(dir, ".sandbox-etc")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	uid := l.uid
	if uid < 0 {
		uid = os.Getuid()
	}
	files := map[string]string{
		"passwd": fmt.Sprintf("root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nalgorithm:x:%d:%d:algorithm:/tmp:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", uid, uid),
		"group":  fmt.Sprintf("root:x:0:\nalgorithm:x:%d:\nnogroup:x:65534:\n", uid),
		"hosts":  "127.0.0.1 localhost\n::1 localhost\n",
	}
	if l.cfg.Network == NetOutbound {
		files["resolv.conf"] = "nameserver 10.0.2.3\n" // slirp4netns's DNS forwarder
	} else {
		files["resolv.conf"] = ""
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	l.etcDir = dir
	return nil
}

// systemEtc are the files of /etc that programs need and that hold nothing
// of the platform's (no shadow, no machine secrets).
var systemEtc = []string{
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
	"/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/localtime", "/etc/nsswitch.conf",
	"/etc/host.conf", "/etc/mime.types", "/etc/fonts", "/etc/gai.conf",
}

// devices are the device nodes a sandbox gets (GPUs when present).
var devices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
	"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia2", "/dev/nvidia3"}

// Cmd is a command ready to start in the sandbox. Its embedded exec.Cmd's
// Process and ProcessState are bwrap's: killing bwrap ends every process of
// the sandbox (--die-with-parent on its PID namespace's init).
type Cmd struct {
	*exec.Cmd
	l        *Launcher
	infoR    *os.File
	blockW   *os.File
	closeIn  []*os.File // the child's ends, closed after Start
	slirp    *exec.Cmd
	done     chan struct{}
	killed   string // why the launcher killed it
	writable []string
	killMu   sync.Mutex
	waitErr  error
}

// Command prepares c to run in the sandbox.
func (l *Launcher) Command(c Command) (*Cmd, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("sandbox: empty command")
	}
	if l.cfg.Mode == ModeNone {
		cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
		cmd.Dir = c.Dir
		cmd.Env = append(l.baseEnv(c), c.Env...)
		cmd.ExtraFiles = c.ExtraFiles
		cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		return &Cmd{Cmd: cmd, l: l, done: make(chan struct{})}, nil
	}
	for _, m := range c.Mounts {
		if err := l.prepareMount(m); err != nil {
			return nil, err
		}
	}
	infoR, infoW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	blockR, blockW, err := os.Pipe()
	if err != nil {
		infoR.Close()
		infoW.Close()
		return nil, err
	}
	infoFD := 3 + len(c.ExtraFiles)
	blockFD := infoFD + 1
	args := []string{
		"--unshare-all", "--die-with-parent", "--new-session",
		"--info-fd", strconv.Itoa(infoFD), "--block-fd", strconv.Itoa(blockFD),
		"--hostname", "algorithm",
		"--ro-bind", "/usr", "/usr",
	}
	for _, link := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if target, err := os.Readlink(link); err == nil {
			args = append(args, "--symlink", target, link)
		} else if fi, err := os.Stat(link); err == nil && fi.IsDir() {
			args = append(args, "--ro-bind", link, link)
		}
	}
	for _, p := range systemEtc {
		args = append(args, "--ro-bind-try", p, p)
	}
	for _, name := range []string{"passwd", "group", "hosts", "resolv.conf"} {
		args = append(args, "--ro-bind", filepath.Join(l.etcDir, name), "/etc/"+name)
	}
	args = append(args, "--proc", "/proc", "--tmpfs", "/dev")
	for _, d := range devices {
		args = append(args, "--dev-bind-try", d, d)
	}
	args = append(args, "--symlink", "/proc/self/fd", "/dev/fd",
		"--symlink", "/proc/self/fd/0", "/dev/stdin", "--symlink", "/proc/self/fd/1", "/dev/stdout",
		"--symlink", "/proc/self/fd/2", "/dev/stderr")
	shm := l.cfg.Limits.tmpBytes()
	args = append(args, "--size", strconv.FormatInt(shm/4, 10), "--tmpfs", "/dev/shm")
	args = append(args, "--size", strconv.FormatInt(shm, 10), "--tmpfs", "/tmp")
	args = append(args, "--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu")
	// Deeper mounts after their parents: sort by path.
	mounts := append([]Mount(nil), c.Mounts...)
	sort.Slice(mounts, func(i, j int) bool { return mounts[i].Path < mounts[j].Path })
	for _, m := range mounts {
		if m.Writable {
			args = append(args, "--bind", m.Path, m.Path)
		} else {
			args = append(args, "--ro-bind", m.Path, m.Path)
		}
	}
	// The root (bwrap's tmpfs, holding the folders it made for the mounts)
	// read-only: writes go to writable mounts and /tmp, nowhere else.
	args = append(args, "--remount-ro", "/")
	if c.Dir != "" {
		args = append(args, "--chdir", c.Dir)
	}
	args = append(args, "--clearenv")
	for _, kv := range append(l.baseEnv(c), c.Env...) {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			args = append(args, "--setenv", k, v)
		}
	}
	args = append(args, "--")
	args = append(args, c.Argv...)

	// prlimit(1) sets the per-process limits on itself and execs bwrap, so
	// they hold from the first instruction of the sandbox on (and need no
	// CAP_SYS_RESOURCE over the sandbox's user, which prlimit(2) on another
	// uid's process would).
	cmd := exec.Command(l.prlimit, append(append(rlimitArgs(l.cfg.Limits, l.uid >= 0), "--", l.bwrap), args...)...)
	cmd.ExtraFiles = append(append([]*os.File(nil), c.ExtraFiles...), infoW, blockR)
	cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if l.uid >= 0 {
		attr.Credential = &syscall.Credential{Uid: uint32(l.uid), Gid: uint32(l.uid), Groups: []uint32{}}
	}
	cmd.SysProcAttr = attr
	var writable []string
	for _, m := range mounts {
		if m.Writable {
			writable = append(writable, m.Path)
		}
	}
	return &Cmd{Cmd: cmd, l: l, infoR: infoR, blockW: blockW, closeIn: []*os.File{infoW, blockR}, writable: writable, done: make(chan struct{})}, nil
}

// baseEnv is the environment every sandboxed command gets.
func (l *Launcher) baseEnv(c Command) []string {
	path := "/usr/local/bin:/usr/bin:/bin"
	if len(c.Argv) > 0 && filepath.IsAbs(c.Argv[0]) {
		// A venv's python: its bin folder first, as activation would.
		path = filepath.Dir(c.Argv[0]) + ":" + path
	}
	env := []string{"PATH=" + path, "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8", "USER=algorithm"}
	if l.cfg.Mode == ModeNone {
		env[1] = "HOME=" + os.TempDir()
		env[2] = "TMPDIR=" + os.TempDir()
	}
	return env
}

// prepareMount makes a mount's source usable by the sandbox's uid: owned by
// it (so writes work and reads of the platform's 0600 files work), with every
// parent folder searchable (o+x only, never readable) so that bwrap, running
// as that uid, can reach it. Folders that hold the platform's secrets (the
// CA, the databases, other servers) are never mounts, so they stay out of
// reach whatever their parents' modes.
func (l *Launcher) prepareMount(m Mount) error {
	if !filepath.IsAbs(m.Path) {
		return fmt.Errorf("sandbox: mount %q is not an absolute path", m.Path)
	}
	if _, err := os.Lstat(m.Path); err != nil {
		return fmt.Errorf("sandbox: mount: %w", err)
	}
	if l.uid < 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.prepared[m.Path] {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(m.Path, &st); err != nil {
		return fmt.Errorf("sandbox: mount: %w", err)
	}
	if int(st.Uid) != l.uid {
		err := filepath.WalkDir(m.Path, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, l.uid, l.uid)
		})
		if err != nil {
			return fmt.Errorf("sandbox: give %s to the sandbox's user: %w", m.Path, err)
		}
	}
	for dir := filepath.Dir(m.Path); dir != "/"; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("sandbox: mount parent: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("sandbox: let the sandbox reach %s: %w", m.Path, err)
			}
		}
	}
	l.prepared[m.Path] = true
	return nil
}

// info is what bwrap writes to --info-fd.
type info struct {
	ChildPID int `json:"child-pid"`
}

// Start starts the command: bwrap sets up the namespaces and waits; the
// launcher moves it into the group's cgroup, sets its rlimits and, for
// NetOutbound, connects slirp4netns; then the command runs.
func (c *Cmd) Start() error {
	if c.l.cfg.Mode == ModeNone {
		if err := c.Cmd.Start(); err != nil {
			return err
		}
		go c.reap()
		return nil
	}
	err := c.Cmd.Start()
	for _, f := range c.closeIn {
		f.Close()
	}
	if err != nil {
		c.infoR.Close()
		c.blockW.Close()
		return fmt.Errorf("sandbox: start bwrap: %w", err)
	}
	fail := func(err error) error {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		c.blockW.Close()
		_ = c.Cmd.Wait()
		close(c.done)
		return err
	}
	inf, err := readInfo(c.infoR, 10*time.Second)
	c.infoR.Close()
	if err != nil {
		return fail(fmt.Errorf("sandbox: bwrap did not start: %w", err))
	}
	if c.l.cg != nil {
		if err := c.l.cg.add(c.Process.Pid, inf.ChildPID); err != nil {
			return fail(fmt.Errorf("sandbox: join cgroup: %w", err))
		}
	}
	if c.l.cfg.Network == NetOutbound {
		if c.slirp, err = startSlirp(c.l.slirp, inf.ChildPID); err != nil {
			return fail(fmt.Errorf("sandbox: outbound network: %w", err))
		}
	}
	if _, err := c.blockW.Write([]byte{1}); err != nil {
		return fail(fmt.Errorf("sandbox: release: %w", err))
	}
	c.blockW.Close()
	c.watchDisk()
	go c.reap()
	return nil
}

// watchDisk kills the command when its writable mounts grow past
// Limits.DiskBytes (measured every second: RLIMIT_FSIZE bounds how far one
// file can overshoot in between).
func (c *Cmd) watchDisk() {
	lim := c.l.cfg.Limits.DiskBytes
	if lim <= 0 || len(c.writable) == 0 {
		return
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-t.C:
			}
			var used int64
			for _, p := range c.writable {
				used += diskUsage(p)
			}
			if used > lim {
				c.killMu.Lock()
				c.killed = fmt.Sprintf("it wrote more than %s to its folders, the %s disk limit", FormatBytes(lim), c.l.cfg.Limits.Label)
				c.killMu.Unlock()
				c.Kill()
				return
			}
		}
	}()
}

// KilledFor says why the launcher killed the command ("" when it did not).
func (c *Cmd) KilledFor() string {
	c.killMu.Lock()
	defer c.killMu.Unlock()
	return c.killed
}

// diskUsage sums the sizes of the files below root.
func diskUsage(root string) int64 {
	var n int64
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// reap waits for the process (so Wait may be called any number of times and
// ProcessState is set) and stops slirp4netns after it.
func (c *Cmd) reap() {
	c.waitErr = c.Cmd.Wait()
	if c.slirp != nil {
		_ = c.slirp.Process.Kill()
		_ = c.slirp.Wait()
	}
	close(c.done)
}

// Wait waits for the command to exit (safe to call more than once).
func (c *Cmd) Wait() error {
	<-c.done
	return c.waitErr
}

// Kill ends the command and everything it started.
func (c *Cmd) Kill() {
	if c.Process != nil {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		_ = c.Process.Kill()
	}
}

func readInfo(r *os.File, timeout time.Duration) (info, error) {
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		// bwrap writes one JSON object and closes the fd.
		b, err := io.ReadAll(r)
		ch <- res{b, err}
	}()
	select {
	case x := <-ch:
		var inf info
		if x.err != nil {
			return inf, x.err
		}
		if err := json.Unmarshal(bytes.TrimSpace(x.b), &inf); err != nil || inf.ChildPID <= 0 {
			return inf, fmt.Errorf("no child pid in %q", x.b)
		}
		return inf, nil
	case <-time.After(timeout):
		return info{}, errors.New("timed out waiting for bwrap")
	}
}

// rlimitArgs are prlimit(1)'s options for the limits that are per process
// (inherited by everything the sandbox starts): open files, file size, no
// core dumps (a crashing model must not dump gigabytes of memory to disk).
// ownUID: the sandbox has a host uid of its own, so RLIMIT_NPROC (counted
// per uid) bounds its tasks even without a pids cgroup.
func rlimitArgs(lim Limits, ownUID bool) []string {
	args := []string{"--core=0", fmt.Sprintf("--nofile=%d", lim.noFile())}
	if ownUID && lim.Pids > 0 {
		args = append(args, fmt.Sprintf("--nproc=%d", lim.Pids))
	}
	if fs := lim.FileSizeBytes; fs > 0 {
		args = append(args, fmt.Sprintf("--fsize=%d", fs))
	}
	return args
}
