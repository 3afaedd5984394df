# The hostile algorithm's attempts on the platform (internal/testhostile).
# Each attempt either raises (blocked) or returns what it got (a breach).
import ctypes, json, os, signal, socket

def _read(path):
    with open(path, "rb") as f:
        return f.read(64)

def _write(path):
    with open(path, "w") as f:
        f.write("owned")
    return path

def _connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.close()
    return port

def _kill(pid):
    os.kill(pid, signal.SIGKILL)
    return pid

def _ptrace(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), "ptrace")
    return pid

def _processes():
    mine = os.getpid()
    others = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                cmd = open("/proc/%s/cmdline" % p, "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(w in cmd for w in ("algocloud", "temporal", "postgres", "go-build")):
                others.append(cmd[:60])
    if others:
        return others
    raise PermissionError("no platform process visible")

def _setuid():
    os.setuid(0)
    return os.getuid()

def _nnp():
    for line in open("/proc/self/status"):
        if line.startswith("NoNewPrivs:") and line.split()[1] == "1":
            raise PermissionError("no_new_privs is set")
    return "no_new_privs off"

def attempts(targets):
    """Runs every attempt of targets; returns name -> "blocked: ..." or "BREACH: ..."."""
    plan = []
    for p in targets.get("read", []):
        plan.append(("read " + p, _read, p))
    for p in targets.get("write", []):
        plan.append(("write " + p, _write, p))
    for port in targets.get("connect", []):
        plan.append(("connect 127.0.0.1:%d" % port, _connect, port))
    for pid in targets.get("kill", []):
        plan.append(("kill %d" % pid, _kill, pid))
        plan.append(("ptrace %d" % pid, _ptrace, pid))
        plan.append(("environ of %d" % pid, _read, "/proc/%d/environ" % pid))
    plan.append(("list platform processes", lambda _: _processes(), None))
    plan.append(("setuid 0", lambda _: _setuid(), None))
    plan.append(("gain privileges (no_new_privs unset)", lambda _: _nnp(), None))
    out = {}
    for name, f, arg in plan:
        try:
            r = f(arg)
            # A write may land in the sandbox's own private /tmp (when the
            # target lies under the host's /tmp): whether it reached the
            # host is for the host to check (Targets.Write).
            out[name] = ("host checks: wrote %r" if name.startswith("write ") else "BREACH: %r") % (r,)
        except BaseException as e:
            out[name] = "blocked: %s" % type(e).__name__
    for k in targets.get("env_markers", []):
        if k in json.dumps(dict(os.environ)):
            out["environment holds " + k] = "BREACH"
    return out

def fill_disk(where):
    """Writes 1 MiB blocks into each folder of where until it fails; returns MiB written."""
    total = 0
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for d in where:
        i = 0
        try:
            while total < 64 * 1024:  # 64 GiB: far past any limit
                with open(os.path.join(d, "fill-%d" % i), "wb") as f:
                    for _ in range(256):
                        f.write(b"x" * (1 << 20))
                        total += 1
                i += 1
        except OSError:
            pass
    return total

def fork_bomb():
    n = 0
    try:
        while n < 100000:
            if os.fork() == 0:
                import time
                time.sleep(20)
                os._exit(0)
            n += 1
    except OSError as e:
        return n
    return n
