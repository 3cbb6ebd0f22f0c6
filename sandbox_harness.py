"""The processes behind sandbox.py; read that module's docstring first (threat model, layers, fallbacks).

This file runs as a fork server, `python -I -S sandbox_harness.py`, started once per parent process with
a socket on fd 0. For each program the parent sends two pipe descriptors; the server forks a *test
process* (trusted: it runs the tests, never the program) that does:

    job = read(job pipe)                  # the program's bytecode and the limits, no tests
    fork -> sandbox init (S1)             # new PID, mount, network, IPC namespaces; cgroup; hidden filesystem
              fork -> worker (S2)         # throwaway uid, rlimits; runs the program, answers calls
    tests = read(job pipe)                # only now: the sandbox was forked without them in memory
    run the tests; `candidate` is a stub: call arguments go to S2 as plain data, the return value comes back
    report each verdict to the parent; kill the sandbox

The test process and the worker speak one JSON line per message (`encode` / `DECODER`): only None, bool,
int, float, complex, str, bytes and list, tuple, dict, set, frozenset of those (exact types) can cross, so
no object of the program's making ever exists in the test process. The parent and the test process are
both trusted and speak marshal.
"""
import ctypes
import json
import marshal
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
from _json import encode_basestring_ascii

LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x20000, 0x8000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}.get(os.uname().machine)  # no libc wrapper
MAX_DEPTH = 100          # nesting of a value that crosses the boundary
MEMORY_EXIT = 86         # exit status of a stdin/stdout run that ran out of memory
IDLE_S, IDLE_CPU_S = 1.0, 0.001  # the sandbox is idle after 1 s of wall time in which it used < 1 ms of CPU


def libc_call(name, *args):
    if getattr(LIBC, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}{args!r}: {os.strerror(errno)}")


# -----------------------------------------------------------------------------
# Plain data across the boundary: JSON with tags for what JSON lacks

def encode(value, depth=0) -> str:
    """JSON text for a plain value; TypeError for anything else (subclasses included)."""
    t = type(value)
    if value is None:
        return "null"
    if t is bool:
        return "true" if value else "false"
    if t is int:  # hex for big ints: decimal conversion is quadratic and capped at 4300 digits
        return str(value) if -(1 << 53) < value < (1 << 53) else '{"i":"%x"}' % value
    if t is float:
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(r := repr(value), r)
    if t is str:
        return encode_basestring_ascii(value)
    if depth >= MAX_DEPTH:
        raise ValueError(f"the value is nested more than {MAX_DEPTH} deep")
    d = depth + 1
    if t is list:
        return "[" + ",".join([encode(v, d) for v in value]) + "]"
    if t is tuple:
        return '{"t":[' + ",".join([encode(v, d) for v in value]) + "]}"
    if t is dict:
        return '{"d":[' + ",".join(["[" + encode(k, d) + "," + encode(v, d) + "]" for k, v in value.items()]) + "]}"
    if t is set or t is frozenset:
        return '{"%s":[' % ("set" if t is set else "fs") + ",".join([encode(v, d) for v in value]) + "]}"
    if t is bytes:
        return '{"b":"%s"}' % value.hex()
    if t is complex:
        return '{"c":[' + encode(value.real) + "," + encode(value.imag) + "]}"
    raise TypeError(f"a value of type {t.__name__} cannot cross the sandbox boundary")


def _tagged(pairs):
    if len(pairs) != 1:
        raise ValueError("not a tagged value")
    (tag, v), = pairs
    if tag == "t" and type(v) is list:
        return tuple(v)
    if tag == "d" and type(v) is list and all(type(kv) is list and len(kv) == 2 for kv in v):
        return dict(v)
    if tag == "set" and type(v) is list:
        return set(v)
    if tag == "fs" and type(v) is list:
        return frozenset(v)
    if tag == "b" and type(v) is str:
        return bytes.fromhex(v)
    if tag == "i" and type(v) is str:
        return int(v, 16)
    if tag == "c" and type(v) is list and len(v) == 2 and all(type(x) in (int, float) for x in v):
        return complex(*v)
    raise ValueError(f"unknown tag {tag!r}")


DECODER = json.JSONDecoder(object_pairs_hook=_tagged)  # json builds only plain objects; the hook adds the tags


def decode(line: bytes):
    return DECODER.decode(line.decode("ascii"))


# -----------------------------------------------------------------------------
# Framing

def read_exactly(fd, n):
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_frame(fd):  # trusted channel (parent <-> test process): length-prefixed marshal
    return marshal.loads(read_exactly(fd, struct.unpack("<Q", read_exactly(fd, 8))[0]))


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def write_frame(fd, obj):
    data = marshal.dumps(obj)
    write_all(fd, struct.pack("<Q", len(data)) + data)


def describe(e) -> str:
    try:
        message = str(e)
    except BaseException:  # str() of the program's own exception may fail
        message = ""
    return f"{type(e).__name__}: {message}"[:300] if message else type(e).__name__


# -----------------------------------------------------------------------------
# Inside the sandbox: init (S1) and worker (S2)

def build_root(job):
    """A tmpfs root holding only the Python standard library and shared libraries (read-only bind mounts,
    site-packages covered by empty mounts), /dev/null, zero, random and urandom, and a tmpfs /tmp as
    the work directory; pivot_root into it and detach the host's tree."""
    libc_call("mount", None, b"/", None, MS_REC | MS_PRIVATE, None)  # nothing propagates back to the host
    new = b"/tmp"  # any directory works as the mount point: this is our own mount namespace
    libc_call("mount", b"tmpfs", new, b"tmpfs", MS_NOSUID | MS_NODEV, b"size=1m,mode=755")
    for path in job["ro_dirs"]:
        target = b"/tmp" + path.encode()
        os.makedirs(target, exist_ok=True)
        libc_call("mount", path.encode(), target, None, MS_BIND | MS_REC, None)
        libc_call("mount", None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
    for path in job["hidden_dirs"]:  # site-packages: installed data sets (HumanEval's answers) live there
        libc_call("mount", b"tmpfs", b"/tmp" + path.encode(), b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, b"size=4k")
    for link, target in job["symlinks"]:  # /lib -> usr/lib on merged-/usr systems
        os.makedirs(os.path.dirname(b"/tmp" + link.encode()), exist_ok=True)
        os.symlink(target, b"/tmp" + link.encode())
    os.mkdir(b"/tmp/dev")
    for dev in (b"null", b"zero", b"random", b"urandom"):
        os.close(os.open(b"/tmp/dev/" + dev, os.O_CREAT | os.O_WRONLY, 0o666))
        libc_call("mount", b"/dev/" + dev, b"/tmp/dev/" + dev, None, MS_BIND, None)
    os.mkdir(b"/tmp/tmp")
    os.mkdir(b"/tmp/old")
    if SYS_PIVOT_ROOT is None:
        raise OSError(f"pivot_root: unknown syscall number on {os.uname().machine}")
    libc_call("syscall", SYS_PIVOT_ROOT, b"/tmp", b"/tmp/old")
    os.chdir(b"/")
    libc_call("umount2", b"/old", 2)  # MNT_DETACH: the host's tree is gone from this namespace
    os.rmdir(b"/old")
    uid = job["uid"]
    opts = f"size={job['work_mb']}m,mode=0700" + (f",uid={uid},gid={uid}" if uid is not None else "")
    libc_call("mount", b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, opts.encode())
    libc_call("mount", None, b"/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None)
    os.chdir(b"/tmp")


def root_layout() -> dict:
    """What the sandbox's root shows of the host, read-only: the standard library, the directories of
    the shared libraries this interpreter has loaded and the multiarch library directory (extension
    modules load more), time zones; site-packages and dist-packages under any of them are covered."""
    dirs = {os.path.dirname(os.__file__), f"/usr/lib/{getattr(sys.implementation, '_multiarch', '')}",
            "/usr/lib64", "/usr/share/zoneinfo"}
    with open("/proc/self/maps") as f:
        dirs |= {os.path.dirname(line.split(None, 5)[5].strip()) for line in f
                 if len(line.split(None, 5)) == 6 and ".so" in line.rsplit("/", 1)[-1]}
    dirs = sorted({os.path.realpath(d) for d in dirs if os.path.isdir(d) and d.startswith("/")})
    dirs = [d for d in dirs if not any(d.startswith(o + "/") for o in dirs)]  # nested ones come along
    hidden = []
    for d in dirs:
        for sub in ["", *[p for p in sorted(os.listdir(d)) if p.startswith("python")]]:
            for name in ("site-packages", "dist-packages"):
                path = os.path.join(d, sub, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    hidden.append(path)
    links = [(p, os.readlink(p)) for p in ("/lib", "/lib32", "/lib64", "/libx32") if os.path.islink(p)]
    return {"ro_dirs": dirs, "hidden_dirs": hidden, "symlinks": links}


def sandbox_init(job, go_fd, setup_fd, req_fd, rep_fd):
    """S1: set the sandbox up as root, fork the worker, reap until it exits; exit with its status
    (code, or 128 + signal). As init of the PID namespace its exit kills everything inside."""
    status = 1
    try:
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the test process died: so does the sandbox
        if os.read(go_fd, 1) != b"g":  # the test process moves us into the cgroup first
            os._exit(1)
        keep = sorted({setup_fd, req_fd, rep_fd})
        os.closerange(0, keep[0])
        for a, b in zip(keep, keep[1:] + [1 << 16]):
            os.closerange(a + 1, b)  # the fork server's socket, the job and result pipes: gone
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # so that no later descriptor lands on 0-2
            os.dup2(null, fd)
        os.close(null)
        if job["namespaces"]:
            libc_call("unshare", CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC)
            build_root(job)
        else:
            os.chdir(job["work_dir"])
            if job["uid"] is not None:
                os.chown(".", job["uid"], job["uid"])
        resource.setrlimit(resource.RLIMIT_AS, (job["memory_mb"] << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_s"], job["cpu_s"] + 1))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))  # bounds memfds where no cgroup counts them
        if job["uid"] is not None or job["namespaces"]:  # a uid of its own counts only this sandbox
            resource.setrlimit(resource.RLIMIT_NPROC, (job["processes"],) * 2)
    except BaseException as e:  # on a pipe of its own: the program, which can write rep_fd, never gets it
        write_all(setup_fd, describe(e).encode() or b"?")
        os._exit(1)
    write_all(setup_fd, b"ok")
    os.close(setup_fd)
    worker = os.fork()
    if worker == 0:
        try:
            if job["uid"] is not None:
                os.setgroups([])
                os.setgid(job["uid"])
                os.setuid(job["uid"])
            LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            status = (serve_io if job["io"] else serve_calls)(job, req_fd, rep_fd)
        except BaseException:
            status = 1
        os._exit(status)
    os.close(req_fd)
    os.close(rep_fd)
    while True:  # as init, also reap whatever the program orphaned
        pid, status = os.wait()
        if pid == worker:
            break
    code = os.waitstatus_to_exitcode(status)
    os._exit(code & 127 if code >= 0 else 128 + min(-code, 127))


def cap_output(out, err, limit):
    os.dup2(out, 1)
    os.dup2(err, 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit + 1,) * 2)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # python ignores it; the default kills the writer


def reply(fd, *msg):
    write_all(fd, (encode(list(msg)) + "\n").encode())


def requests(fd):
    """Yield decoded request lines until the test process closes the pipe."""
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        yield decode(line)


def resolve(namespace, name):
    """LiveCodeBench's rule: a method of `class Solution` when the program has one with that name,
    else the top-level function."""
    solution = namespace.get("Solution")
    if isinstance(solution, type) and hasattr(solution, name):
        return getattr(solution(), name)
    if name not in namespace:
        raise NameError(f"the program does not define {name!r}")
    return namespace[name]


def serve_calls(job, req_fd, rep_fd):
    """S2 for call-based tests: run the program's top level once, then answer each call request
    [seq, args, kwargs] with ["ok", seq, value], ["raise", seq, type, message] or ["bad", seq, why]."""
    out, err = os.memfd_create("out"), os.memfd_create("err")
    cap_output(out, err, job["output_bytes"])
    namespace = {"__name__": "solution"}
    try:
        exec(job["code"], namespace)
        fn = resolve(namespace, job["entry_point"])
    except BaseException as e:
        reply(rep_fd, "load_error", type(e).__name__, describe(e))
        return 0
    reply(rep_fd, "ready")
    for seq, args, kwargs in requests(req_fd):
        for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):  # the output cap is per call: empty the files
            try:
                stream.flush()
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
            except BaseException:  # the program closed or replaced them
                pass
        try:
            value = fn(*args, **kwargs)
        except BaseException as e:
            reply(rep_fd, "raise", seq, type(e).__name__, describe(e))
            continue
        try:
            text = encode(value)
        except BaseException as e:
            reply(rep_fd, "bad", seq, describe(e))
            continue
        write_all(rep_fd, ('["ok",%d,' % seq + text + "]\n").encode())
    return 0


def run_as_main(code):
    """Body of a forked stdin/stdout run: the program as __main__, exiting the way python would."""
    status = 0
    try:
        exec(code, {"__name__": "__main__"})
    except SystemExit as e:  # sys.exit(), sys.exit(3), sys.exit("message")
        status = e.code if isinstance(e.code, int) else int(e.code is not None)
    except MemoryError:
        status = MEMORY_EXIT
    except BaseException as e:
        os.write(2, describe(e).encode(errors="replace"))
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        status = status or 1
    os._exit(status & 255)


def serve_io(job, req_fd, rep_fd):
    """S2 for stdin/stdout tests: each request [seq, stdin] runs the program in a fresh fork and is
    answered with ["io", seq, exit status, stdout, last line of stderr]; the test process compares."""
    reply(rep_fd, "ready")
    limit = job["output_bytes"]
    for seq, stdin_text in requests(req_fd):
        stdin = os.memfd_create("stdin")
        write_all(stdin, stdin_text.encode())
        os.lseek(stdin, 0, os.SEEK_SET)
        out, err = os.memfd_create("out"), os.memfd_create("err")
        pid = os.fork()
        if pid == 0:
            os.dup2(stdin, 0)
            os.close(req_fd)
            os.close(rep_fd)
            cap_output(out, err, limit)
            run_as_main(job["code"])
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        stdout = os.pread(out, limit + 1, 0)
        last_err = (os.pread(err, limit, 0).decode(errors="replace").strip().splitlines() or [""])[-1][:300]
        for fd in (stdin, out, err):
            os.close(fd)
        reply(rep_fd, "io", seq, status, stdout.decode(errors="replace"), last_err)
    return 0


# -----------------------------------------------------------------------------
# The test process: trusted, runs the tests against a stub `candidate`

class SessionOver(BaseException):
    """The sandbox cannot answer any more (timeout, death, broken protocol); a BaseException so that a
    test's `except Exception` cannot swallow it. The verdict belongs to the running test."""
    def __init__(self, verdict, detail):
        super().__init__(f"{verdict}: {detail}")
        self.verdict, self.detail = verdict, detail


class Sandbox:
    """The test process's side of the pipes to the worker, with the CPU clock of the sandbox."""

    def __init__(self, job, s1_pid, req_fd, rep_fd):
        self.job, self.s1, self.req_fd, self.rep_fd = job, s1_pid, req_fd, rep_fd
        self.pidfd = os.pidfd_open(s1_pid)
        kind, path = job["cpu_counter"]
        self.cpu_fd = os.open(path, os.O_RDONLY) if kind != "proc" else None
        self.buf, self.seq, self.over = b"", 0, None
        self.test_cpu0 = self.test_wall0 = 0.0
        self.exit_code, self.eof = None, False

    def cpu_s(self) -> float:
        """CPU seconds used by everything in the sandbox so far (the cgroup's counter, else the
        processes reachable from S1 and their reaped children)."""
        kind = self.job["cpu_counter"][0]
        if kind == "proc":
            return self._proc_cpu_s(self.s1)
        text = os.pread(self.cpu_fd, 256, 0)  # a kept-open counter file: one syscall per reading
        return int(text) / 1e9 if kind == "v1" else int(text.split(None, 2)[1]) / 1e6

    def _proc_cpu_s(self, pid) -> float:
        tick = os.sysconf("SC_CLK_TCK")
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return total + sum(self._proc_cpu_s(int(c)) for c in f.read().split())
        except (OSError, ValueError):
            return 0.0

    def start_test(self):
        self.test_cpu0, self.test_wall0 = self.cpu_s(), time.monotonic()

    def test_cpu_s(self) -> float:
        return self.cpu_s() - self.test_cpu0

    def end(self, verdict, detail):
        self.over = SessionOver(verdict, detail)
        raise self.over

    def send(self, msg: str):
        """Send a request; anything the worker wrote before it was asked breaks the protocol (a program
        that pre-sends answers, or a second "ready")."""
        if not self.buf and not self.eof and select.select([self.rep_fd], [], [], 0)[0]:
            self.buf = os.read(self.rep_fd, 1 << 20)
            self.eof = not self.buf  # the worker closed its end: receive() waits for S1 to exit
        if self.buf:
            self.end("runtime_error", "wrote to the sandbox protocol out of turn")
        try:
            write_all(self.req_fd, (msg + "\n").encode())
        except OSError:  # the worker is gone; receive() finds out how
            pass

    def receive(self):
        """The worker's next message, decoded, while the test's budgets last: CPU time, and wall time
        spent idle. The wall-clock backstop (wall_factor x the CPU limit) ends a test only once the sandbox
        has used no CPU for IDLE_S: a program that sleeps or blocks, never one that a busy machine starves."""
        limit, wall_limit = self.job["test_cpu_s"], self.job["test_cpu_s"] * self.job["wall_factor"]
        last_cpu, idle_since = self.test_cpu_s(), time.monotonic()
        while b"\n" not in self.buf:
            used, now = self.test_cpu_s(), time.monotonic()
            if used > limit:
                self.end("timeout", f"over {limit:g} s of CPU time")
            if used - last_cpu > IDLE_CPU_S:
                last_cpu, idle_since = used, now
            if now - self.test_wall0 > wall_limit and now - idle_since > IDLE_S:
                self.end("timeout", f"over {wall_limit:g} s of wall time, idle")
            # wake up often enough to catch the CPU budget running out on every core at once
            timeout = max(0.002, min((limit - used) / self.job["cores"], 0.05))
            ready = select.select([self.pidfd] if self.eof else [self.rep_fd, self.pidfd], [], [], timeout)[0]
            if self.rep_fd in ready:
                chunk = os.read(self.rep_fd, 1 << 20)
                self.buf += chunk
                self.eof = not chunk  # closed: by a dying worker, or by a program that goes on running
                if len(self.buf) > self.job["reply_bytes"]:
                    self.end("runtime_error", f"a reply of more than {self.job['reply_bytes']} bytes")
            elif self.pidfd in ready:  # S1 exited: its worker is gone
                self.died()
        line, self.buf = self.buf.split(b"\n", 1)
        if self.test_cpu_s() > limit:  # finished, but over the limit: the CPU counter decides, not the poll
            self.end("timeout", f"over {limit:g} s of CPU time")
        try:
            return decode(line)
        except Exception:
            self.end("runtime_error", "broke the sandbox protocol")

    def died(self):
        """The worker is gone: its verdict from S1's exit status and the cgroup's OOM counter."""
        self.exit_code = os.waitstatus_to_exitcode(os.waitpid(self.s1, 0)[1])
        if self.exit_code < 0:  # S1 itself was killed (the OOM killer's pick)
            self.exit_code = 128 - self.exit_code
        self.end(*self.exit_verdict())

    def exit_verdict(self):
        code = self.exit_code
        if self.oom_kills() > 0:
            return "memory_exceeded", f"over {self.job['memory_mb']} MiB (cgroup)"
        if code == 128 + signal.SIGXFSZ:
            return "output_exceeded", f"more than {self.job['output_bytes']} bytes of output"
        if code == 128 + signal.SIGXCPU:
            return "timeout", "CPU time limit of the whole program"
        if code > 128:
            return "runtime_error", f"killed by signal {code - 128}"
        return "runtime_error", f"exited with status {code} during the test"

    def oom_kills(self) -> int:
        path = self.job["oom_counter"]
        if not path:
            return 0
        try:
            with open(path) as f:
                return next((int(line.split()[1]) for line in f if line.startswith("oom_kill ")), 0)
        except OSError:
            return 0

    def call(self, args, kwargs):
        if self.over:
            raise self.over
        self.seq += 1
        try:
            request = encode([self.seq, list(args), kwargs])
        except (TypeError, ValueError) as e:  # the test passes something that is not plain data
            raise TypeError(f"candidate() argument: {e}") from None
        self.send(request)
        msg = self.receive()
        if type(msg) is not list or len(msg) < 2 or msg[1] != self.seq:
            self.end("runtime_error", "broke the sandbox protocol")
        kind = msg[0]
        if kind == "ok" and len(msg) == 3:
            return msg[2]
        if kind == "raise" and len(msg) == 4 and type(msg[2]) is str and type(msg[3]) is str:
            raise candidate_exception(msg[2], msg[3])
        if kind == "bad" and len(msg) == 3 and type(msg[2]) is str:
            raise CandidateError(f"the return value cannot leave the sandbox: {msg[2]}"[:300])
        self.end("runtime_error", "broke the sandbox protocol")


class CandidateError(Exception):
    """The program raised an exception that is not a builtin one, or returned a value that cannot cross."""


def candidate_exception(name, message):
    """The program's exception, rebuilt in the test process: the builtin class of that name when there
    is one (so a test's `except ValueError` still works), else CandidateError. Only the message crosses."""
    import builtins
    cls = getattr(builtins, name, None)
    text = message.split(": ", 1)[1] if ": " in message else ""
    if isinstance(cls, type) and issubclass(cls, Exception) and cls is not CandidateError:
        try:
            return cls(text)
        except Exception:  # classes with other constructors (UnicodeDecodeError)
            pass
    return CandidateError(message)


def test_verdict(e: BaseException) -> str:
    if isinstance(e, AssertionError):
        return "failed"
    if isinstance(e, MemoryError):
        return "memory_exceeded"
    return "runtime_error"


def same_value(got, expected) -> bool:
    """LiveCodeBench's comparison for functional tests: tuples become lists (JSON has none), then ==."""
    def lists(v):
        if type(v) in (list, tuple):
            return [lists(x) for x in v]
        if type(v) is dict:
            return {k: lists(x) for k, x in v.items()}
        return v
    return lists(got) == expected


def compare_outputs(got: str, expected: str) -> tuple[bool, str]:
    """LiveCodeBench's rule for stdin/stdout tests: strip the whole text, split it on newlines and strip
    every line; the line counts must agree, and each line must be equal as text or else as a list of
    Decimal numbers (so "0.50" matches "0.5" and "1e2" matches "100", but there is no tolerance)."""
    got_lines = [line.strip() for line in got.strip().split("\n")]
    want_lines = [line.strip() for line in expected.strip().split("\n")]
    if len(got_lines) != len(want_lines):
        return False, f"expected {len(want_lines)} lines, got {len(got_lines)}"
    for k, (g, w) in enumerate(zip(got_lines, want_lines)):
        if g != w and not _same_numbers(g, w):
            return False, f"line {k + 1}: expected {w[:80]!r}, got {g[:80]!r}"
    return True, ""


def _same_numbers(a: str, b: str) -> bool:
    from decimal import Decimal
    try:
        return [Decimal(x) for x in a.split()] == [Decimal(x) for x in b.split()]
    except Exception:  # not numbers (or a signalling NaN)
        return False


def run_tests(sandbox: Sandbox, tests: dict, report):
    """Run tests[first:] against the sandbox; report(i, verdict, cpu_s, detail) for each, and stop after
    a test that ended the session (the parent starts a fresh sandbox for the rest)."""
    msg = sandbox_first_message(sandbox)
    kind, first, items = tests["kind"], tests["first"], tests["items"]
    if msg[0] == "load_error":
        verdict = "memory_exceeded" if msg[1] == "MemoryError" else "runtime_error"
        for i in range(first, len(items)):
            report(i, verdict, 0.0, msg[2] + " (while loading the program)")
        return
    if msg[0] == "over":
        for i in range(first, len(items)):
            report(i, msg[1], sandbox.test_cpu_s(), msg[2] + " (while loading the program)")
        return

    def candidate(*args, **kwargs):
        return sandbox.call(args, kwargs)

    namespace = {"__name__": "__test__"}
    if kind == "call":
        try:
            exec(tests["preamble"], namespace)
        except BaseException as e:
            for i in range(first, len(items)):
                report(i, "runtime_error", 0.0, f"the test preamble failed: {describe(e)}")
            return
    for i in range(first, len(items)):
        sandbox.start_test()
        detail = ""
        try:
            if kind == "call":
                namespace["candidate"] = namespace[tests["entry_point"]] = candidate
                exec(items[i], namespace)
                verdict = "passed"
            elif kind == "function":
                args, expected = items[i]
                got = candidate(*args)
                verdict = "passed" if same_value(got, expected) else "failed"
                detail = "" if verdict == "passed" else f"expected {expected!r:.100}, got {got!r:.100}"
            else:
                stdin, expected = items[i]
                sandbox.seq += 1
                sandbox.send(encode([sandbox.seq, stdin]))
                msg = sandbox.receive()
                if not (type(msg) is list and len(msg) == 5 and msg[:2] == ["io", sandbox.seq]
                        and type(msg[2]) is int and type(msg[3]) is str and type(msg[4]) is str):
                    sandbox.end("runtime_error", "broke the sandbox protocol")
                _, _, status, stdout, last_err = msg
                if status == -signal.SIGXFSZ or len(stdout.encode()) > sandbox.job["output_bytes"]:
                    verdict, detail = "output_exceeded", f"more than {sandbox.job['output_bytes']} bytes of output"
                elif status:
                    verdict = "memory_exceeded" if status == MEMORY_EXIT else "runtime_error"
                    detail = last_err or f"exit status {status}"
                else:  # the comparison happens here: expected outputs never enter the sandbox
                    ok, detail = compare_outputs(stdout, expected)
                    verdict = "passed" if ok else "failed"
        except SessionOver as e:
            verdict, detail = e.verdict, e.detail
        except BaseException as e:
            verdict, detail = test_verdict(e), describe(e)
        if sandbox.over:  # the test swallowed SessionOver: the session's verdict stands
            verdict, detail = sandbox.over.verdict, sandbox.over.detail
        report(i, verdict, sandbox.test_cpu_s(), detail)
        if sandbox.over:
            return


def sandbox_first_message(sandbox):
    """"ready", or ("load_error", type, message), ("over", verdict, detail): loading counts as a test."""
    sandbox.start_test()
    try:
        msg = sandbox.receive()
    except SessionOver as e:
        return ("over", e.verdict, e.detail)
    if msg == ["ready"]:
        return msg
    if type(msg) is list and len(msg) == 3 and msg[0] == "load_error" and all(type(x) is str for x in msg[1:]):
        return msg
    return ("over", "runtime_error", "broke the sandbox protocol")


def test_process(job_fd, result_fd):
    """One session: fork the sandbox from a process that holds no test, then run the tests."""
    LIBC.prctl(PR_SET_DUMPABLE, 0)  # not ptrace-able nor /proc/pid/mem-readable by a same-uid program
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    job = read_frame(job_fd) | ROOT_LAYOUT
    if job["namespaces"]:
        flags = CLONE_NEWPID | (CLONE_NEWUSER if os.geteuid() != 0 else 0)
        uid, gid = os.geteuid(), os.getegid()
        libc_call("unshare", flags)
        if flags & CLONE_NEWUSER:  # a non-root parent: be root of a user namespace mapped to our own uid
            for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    go_r, go_w = os.pipe()
    setup_r, setup_w = os.pipe()
    s1 = os.fork()
    if s1 == 0:
        os.close(go_w)
        sandbox_init(job, go_r, setup_w, req_r, rep_w)
    for fd in (req_r, rep_w, go_r, setup_w):
        os.close(fd)
    for procs in job["cgroup_procs"]:  # before the program runs a single instruction
        with open(procs, "w") as f:
            f.write(str(s1))
    os.write(go_w, b"g")
    os.close(go_w)
    setup = b"".join(iter(lambda: os.read(setup_r, 4096), b""))  # "ok", or why the set-up failed
    os.close(setup_r)
    if setup != b"ok":
        write_frame(result_fd, ("error", f"sandbox set-up failed: {setup.decode(errors='replace')}"))
        os._exit(0)
    sandbox = Sandbox(job, s1, req_w, rep_r)
    tests = read_frame(job_fd)  # the tests arrive only now: the sandbox holds no copy of them
    # the test process's own CPU (test code, decoding) is small; a test that loops by itself dies here
    cpu_s = int(len(tests["items"]) * 2 * job["test_cpu_s"]) + 60
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))

    def report(i, verdict, cpu_s, detail):
        write_frame(result_fd, ("test", i, verdict, cpu_s, detail))
    run_tests(sandbox, tests, report)
    if sandbox.exit_code is None:  # else died() reaped it
        os.kill(s1, signal.SIGKILL)  # init of its PID namespace: everything inside goes with it
        os.waitpid(s1, 0)
    write_frame(result_fd, ("done",))  # only now: the parent removes the cgroup, which must be empty


def main():
    """The fork server: one request per program on the socket at fd 0 (two descriptors: the job pipe
    to read and the result pipe to write), answered with the test process's pid."""
    global ROOT_LAYOUT
    ROOT_LAYOUT = root_layout()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps test processes: no zombies
    sock = socket.socket(fileno=0)
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(sock, 1, 2)
        except OSError:
            os._exit(0)
        if len(fds) != 2:  # the parent closed its end (or exited)
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            sock.close()
            null = os.open(os.devnull, os.O_RDONLY)  # fd 0 again, so no pipe of the session lands on it
            if null != 0:
                os.dup2(null, 0)
                os.close(null)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                test_process(*fds)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        sock.sendall(struct.pack("<q", pid))


if __name__ == "__main__":
    main()
