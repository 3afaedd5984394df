package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startSlirp connects the sandbox whose namespaces' first process is pid to
// the internet with slirp4netns: a user-mode TCP/IP stack in a process of
// its own, outside the sandbox, that makes the sandbox's connections as
// ordinary sockets of the host. --disable-host-loopback refuses the
// sandbox's 10.0.2.2 (which would be the host's 127.0.0.1), so the
// platform's API, Temporal and other endpoints on loopback stay out of
// reach; --enable-sandbox and --enable-seccomp confine slirp4netns itself
// once it has opened the sandbox's tap device.
//
// slirp4netns runs as the platform's user: joining the sandbox's network
// namespace takes privileges over its user namespace, and opening the tap
// device /dev/net/tun, which is root's only on many hosts.
//
// It first waits until bwrap has set up the namespace's loopback: bwrap does
// that while the launcher already holds its pid, and slirp4netns brings lo
// up too; the two at once make bwrap fail ("loopback: Failed RTM_NEWADDR").
func startSlirp(bin string, pid int) (*exec.Cmd, error) {
	if err := waitLoopback(pid, 10*time.Second); err != nil {
		return nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	var out strings.Builder
	cmd := exec.Command(bin, "--configure", "--mtu=65520", "--disable-host-loopback",
		"--enable-sandbox", "--enable-seccomp", "--ready-fd=3", strconv.Itoa(pid), "tap0")
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		readyW.Close()
		return nil, err
	}
	readyW.Close()
	ready := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		_, err := readyR.Read(b)
		ready <- err
	}()
	select {
	case err := <-ready:
		if err == nil {
			return cmd, nil
		}
	case <-time.After(10 * time.Second):
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	msg := strings.TrimSpace(strings.ReplaceAll(out.String(), "WARNING: Support for seccomp is experimental", ""))
	if msg == "" {
		msg = "no output"
	}
	return nil, fmt.Errorf("slirp4netns did not come up: %s", msg)
}

// waitLoopback waits until the network namespace of pid has 127.0.0.1.
func waitLoopback(pid int, timeout time.Duration) error {
	path := fmt.Sprintf("/proc/%d/net/fib_trie", pid)
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), "127.0.0.1\n") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the sandbox's loopback did not come up (%s)", path)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
