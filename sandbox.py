"""Sandboxed execution of untrusted, model-generated Python against unit tests.

Preference-pair curation (make_pairs.py: chosen passes every test, rejected fails one) and evaluation
(Avg@8 / pass@k, 2 s per test as in the authors' code) both run programs through here:

    from sandbox import CallTests, IOTests, Limits, run_program, run_programs
    r = run_program(code, CallTests("add", ["assert candidate(1, 2) == 3"]))
    r.verdict, r.pass_rate, [t.verdict for t in r.tests]
    results = run_programs([(code, tests), ...], workers=8, progress=True)   # in the order of the jobs

    python -m pytest -q tests/test_sandbox.py     # behaviour and containment tests (~15 s)
    python bench_sandbox.py                       # programs per second on HumanEval

How a program runs. The parent compiles it (a syntax error needs no sandbox) and starts one sandbox per
program, not per test. Its first process is a harness (_CHILD below, under `python -I -S`) that sets the
limits up and forks a worker. For call-based tests the worker runs the program's top level once, then
each test in the same namespace; for stdin/stdout tests it forks a copy per test with that test's input
as stdin. Each result goes to the parent as a line on a dedicated pipe (not stdout: prints cannot forge
results), and the parent keeps the clock. When a test overruns or its process dies (os._exit, a signal,
the output cap), the parent kills the sandbox and a fresh one runs the remaining tests, re-running the
program's top level. A failure in the top level itself (exception, endless loop) fails every test.

Threat model: code from a language model, not from an adversary who has read this file. It loops,
allocates, prints without end, forks, exits early, writes files, opens sockets, reads the environment,
kills processes. Each such program must end in a verdict within its limits, leave nothing behind and not
change another program's verdict. Out of scope: kernel exploits, side channels, and code that goes looking
for the result descriptor: call-based tests run inside the harness process, as in HumanEval and
LiveCodeBench, so os.write() on that descriptor can forge a call-based result (stdin/stdout results
cannot be forged: expected outputs never enter the sandbox). Hostile code needs a VM (gVisor, Firecracker).

Each measure and what it stops:
- own session, SIGKILLed at the end; per-test and total deadlines -> endless loops, stray subprocesses
- RLIMIT_AS = memory_mb -> a huge allocation raises MemoryError -> "memory_exceeded"
- stdout and stderr are memory files under RLIMIT_FSIZE -> endless output: the kernel stops the write at
  output_bytes (per stream and test) and SIGXFSZ kills the writer -> "output_exceeded"
- RLIMIT_CORE = 0, RLIMIT_CPU -> no core files; CPU of anything that escaped is bounded
- environment scrubbed, `python -I -S` -> no secrets from env vars, no PYTHON* variables, no site-packages
  (solutions get the standard library, which is all HumanEval and LiveCodeBench solutions need)
- network namespace -> only a loopback that is down: every connect fails, 127.0.0.1 included
- PID namespace, the harness as its init -> kill(-1) and kill(getppid()) reach nothing outside; whatever
  the program leaves running dies with init, setsid() or not
- mount namespace -> every mount read-only (mount_setattr, Linux >= 5.12) and a fresh tmpfs on /tmp as
  the work dir: no writes anywhere else (/tmp, /dev/shm, the repo); the work dir vanishes with it
- as root, a throwaway uid (random, >= 10^6) -> RLIMIT_NPROC applies (root ignores it), so a fork bomb
  stops at Limits.processes, counted per sandbox; nothing of other users is writable or killable. The
  stdlib may sit where that uid cannot enter (here /root/.pyenv, /root is mode 700): the harness opens
  the import directories while still root and imports through /proc/self/fd/N, which the kernel
  resolves from the open descriptor without checking the directories above it.
Namespaces are probed once, with a real run (containment() reports the result). A non-root user gets
them through an unprivileged user namespace where the kernel allows one; there is no uid drop, and the
process cap counts the namespace's own processes (Linux >= 5.14). Without namespaces (e.g. under Docker's
default seccomp profile) a program runs in a temporary directory the parent removes, can reach the
network and every world-writable directory, and a process that calls setsid() outlives the kill until
RLIMIT_CPU ends it; as root the throwaway uid still applies, otherwise there is no process cap.
"""

import ast
import functools
import marshal
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

VERDICTS = ("passed", "failed", "timeout", "runtime_error", "syntax_error", "memory_exceeded", "output_exceeded")
STARTUP_S = 10.0  # the sandbox must be up by then, or the machine is broken or badly overloaded
WORK_DIR_MB = 64  # size of the tmpfs work directory


# -----------------------------------------------------------------------------
# Public API

@dataclass
class Limits:
    test_timeout_s: float = 2.0     # per test (the authors' evaluation uses 2 s per test)
    total_timeout_s: float = 30.0   # whole program, all tests
    memory_mb: int = 1024           # address-space limit of the child
    output_bytes: int = 1 << 20     # cap on stdout and on stderr, per test
    processes: int = 64             # RLIMIT_NPROC (threads count) for the throwaway uid; only when root


@dataclass
class CallTests:                    # HumanEval style: `check(candidate)`-like tests
    entry_point: str                # name of the function the program defines
    tests: list[str]                # snippets run with `candidate` bound; a test passes when it raises nothing
    preamble: str = ""              # run once after the program, in its namespace (imports, helpers)


@dataclass
class IOTests:                      # stdin/stdout tests (LiveCodeBench style)
    inputs: list[str]
    outputs: list[str]


@dataclass
class TestResult:
    verdict: str                    # one of VERDICTS except syntax_error
    time_s: float
    detail: str = ""                # exception type and message, or the first differing line


@dataclass
class ProgramResult:
    verdict: str                    # "passed" iff every test passed; "syntax_error" (then tests == []); else
    tests: list[TestResult]         # the verdict of the first test that did not pass
    wall_s: float
    detail: str = ""                # the syntax error's message

    @property
    def pass_rate(self) -> float:
        if not self.tests:
            return 1.0 if self.verdict == "passed" else 0.0
        return sum(t.verdict == "passed" for t in self.tests) / len(self.tests)


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


def containment() -> dict[str, bool]:
    """What this machine allows, detected once: Linux namespaces (network, PID, mount) and the uid drop."""
    return {"namespaces": bool(_namespace_cmd()), "throwaway_uid": os.geteuid() == 0}


def run_program(code: str, tests: CallTests | IOTests, limits: Limits = Limits()) -> ProgramResult:
    """Run `code` against every test in a fresh sandbox; see the module docstring."""
    if isinstance(tests, IOTests) and len(tests.inputs) != len(tests.outputs):
        raise ValueError("IOTests needs one output per input")
    start = time.monotonic()
    try:  # compiling runs none of the program (extract.py's ast.parse does as much); the sandbox gets bytecode
        compiled = compile(code, "<solution>", "exec", dont_inherit=True)
    except Exception as e:  # SyntaxError, or ValueError for null bytes, RecursionError for deep nesting
        return ProgramResult("syntax_error", [], time.monotonic() - start, f"{type(e).__name__}: {e}")
    t_end = start + limits.total_timeout_s
    n = len(tests.inputs if isinstance(tests, IOTests) else tests.tests)
    results: list[TestResult] = []
    while True:  # each session covers at least one more test
        results += _session(compiled, tests, len(results), limits, t_end, _namespace_cmd())
        if len(results) >= n:
            break
        if time.monotonic() >= t_end:
            results += [TestResult("timeout", 0.0, "not run: total time limit") for _ in range(n - len(results))]
            break
    first_bad = next((t for t in results if t.verdict != "passed"), None)
    return ProgramResult(first_bad.verdict if first_bad else "passed", results, time.monotonic() - start)


def run_programs(jobs: list[tuple[str, CallTests | IOTests]], workers: int = 1, limits: Limits = Limits(),
                 progress: bool = False) -> list[ProgramResult]:
    """run_program over many (code, tests) jobs, `workers` sandboxes at a time, results in job order.
    Threads are enough: each only waits on its sandbox."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_program, code, tests, limits) for code, tests in jobs]
        if progress:
            from tqdm import tqdm
            for _ in tqdm(as_completed(futures), total=len(futures), desc="sandbox"):
                pass
        return [f.result() for f in futures]


# -----------------------------------------------------------------------------
# The harness that runs inside the sandbox, with its job (a dict) in `job`. It answers with one
# repr()'d tuple per line on job["result_fd"]: ("start",) ("ready",) ("test", i, verdict, time_s, detail,
# stdout) ("load_error", verdict, detail) ("error", msg) and, last, ("exit", status). job["code"] is the
# program's bytecode: the parent compiled it.

_CHILD = r'''
import os, resource, sys, time
import _signal as signal  # the C module: `import signal` costs 3 ms (it imports enum)

MEMORY_EXIT = 86  # exit status of a stdin/stdout test that ran out of memory

def report(*msg):
    if os.getpid() != REPORTER:  # a copy forked by the program does not speak for the harness
        os._exit(0)
    data = repr(msg).encode() + b"\n"  # repr() of a str never contains a raw newline
    while data:
        data = data[os.write(RESULT_FD, data):]

def describe(e):
    try:
        message = str(e)
    except BaseException:  # str() of the program's own exception may fail
        message = ""
    return f"{type(e).__name__}: {message}"[:300] if message else type(e).__name__

def reach_stdlib_through_fds():  # see the module docstring: the throwaway uid may not enter them
    dirs = {p: f"/proc/self/fd/{os.open(p, os.O_RDONLY | os.O_DIRECTORY)}" for p in sys.path if os.path.isdir(p)}
    def moved(path):
        for old in sorted(dirs, key=len, reverse=True):
            if path == old or path.startswith(old + "/"):
                return dirs[old] + path[len(old):]
        return path
    sys.path[:] = list(dirs.values())
    for module in list(sys.modules.values()):  # packages already imported (encodings, ctypes)
        if isinstance(getattr(module, "__path__", None), list):
            module.__path__[:] = [moved(p) for p in module.__path__]

def enter_sandbox(job):
    """Still privileged: lock the filesystem down, set the limits, become the throwaway uid."""
    uid = job["uid"]
    if job["namespaces"]:  # our own mount namespace: nothing here is seen outside
        import ctypes, struct
        libc = ctypes.CDLL(None, use_errno=True)
        attr = struct.pack("QQQQ", 1, 0, 0, 0)  # struct mount_attr {attr_set = MOUNT_ATTR_RDONLY}
        # mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, ...): syscall 442 on every architecture
        if libc.syscall(442, -100, b"/", 0x8000, attr, len(attr)) != 0:
            raise OSError(ctypes.get_errno(), "mount_setattr: every mount read-only (needs Linux >= 5.12)")
        opts = f"size={job['work_mb']}m,mode=0700" + (f",uid={uid},gid={uid}" if uid is not None else "")
        if libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 2 | 4, opts.encode()) != 0:  # MS_NOSUID | MS_NODEV
            raise OSError(ctypes.get_errno(), "mount a tmpfs on /tmp")
        os.chdir("/tmp")
    elif uid is not None:
        os.chown(".", uid, uid)  # the parent's temporary directory
    resource.setrlimit(resource.RLIMIT_AS, (job["memory_mb"] << 20,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_s"], job["cpu_s"] + 1))
    if uid is not None or job["namespaces"]:  # a fresh uid or user namespace counts only this sandbox
        resource.setrlimit(resource.RLIMIT_NPROC, (job["processes"],) * 2)
    if uid is not None:
        reach_stdlib_through_fds()
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

def cap_output(out, err, limit):
    os.dup2(out, 1)
    os.dup2(err, 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit + 1,) * 2)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # python ignores it; the default kills the process

def run_call_tests(job):
    cap_output(os.memfd_create("out"), os.memfd_create("err"), job["output_bytes"])
    report("start")
    namespace = {"__name__": "solution"}
    try:
        exec(job["code"], namespace)
        exec(job["preamble"], namespace)
        if job["entry_point"] not in namespace:
            raise NameError(f"the program does not define {job['entry_point']!r}")
        candidate = namespace[job["entry_point"]]
    except BaseException as e:
        return report("load_error", "memory_exceeded" if isinstance(e, MemoryError) else "runtime_error", describe(e))
    report("ready")
    for i in range(job["first"], len(job["tests"])):
        for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):  # the cap is per test: empty the files
            try:
                stream.flush()
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
            except BaseException:  # the program closed or replaced them
                pass
        start = time.perf_counter()
        try:
            namespace["candidate"] = candidate
            exec(job["tests"][i], namespace)
            verdict, detail = "passed", ""
        except BaseException as e:
            verdict = "failed" if isinstance(e, AssertionError) else \
                "memory_exceeded" if isinstance(e, MemoryError) else "runtime_error"
            detail = describe(e)
        report("test", i, verdict, time.perf_counter() - start, detail, "")

def run_as_main(code):
    """Body of a forked stdin/stdout test: run the program as __main__, exit the way python would."""
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

def run_io_tests(job):
    report("start")
    report("ready")
    limit = job["output_bytes"]
    for i in range(job["first"], len(job["tests"])):
        stdin = os.memfd_create("stdin")
        os.write(stdin, job["tests"][i].encode())
        os.lseek(stdin, 0, os.SEEK_SET)
        out, err = os.memfd_create("out"), os.memfd_create("err")
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.dup2(stdin, 0)
            os.close(RESULT_FD)
            cap_output(out, err, limit)
            run_as_main(job["code"])
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        elapsed = time.perf_counter() - start
        stdout = os.pread(out, limit + 1, 0)
        last_err = (os.pread(err, limit, 0).decode(errors="replace").strip().splitlines() or [""])[-1][:300]
        for fd in (stdin, out, err):
            os.close(fd)
        if status == -signal.SIGXFSZ or len(stdout) > limit:
            verdict, detail = "output_exceeded", f"more than {limit} bytes of output"
        elif status:
            verdict = "memory_exceeded" if status == MEMORY_EXIT else "runtime_error"
            detail = last_err or f"exit status {status}"
        else:  # the parent compares: expected outputs never enter the sandbox
            verdict, detail = None, ""
        report("test", i, verdict, elapsed, detail, "" if verdict else stdout.decode(errors="replace"))

RESULT_FD, REPORTER = job["result_fd"], os.getpid()
try:
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    enter_sandbox(job)
except BaseException as e:
    report("error", describe(e))
    sys.exit(1)
worker = os.fork()
if worker == 0:
    REPORTER = os.getpid()
    status = 0
    try:
        (run_io_tests if job["io"] else run_call_tests)(job)
    except BaseException:
        status = 1
    os._exit(status)  # not sys.exit: threads the program left behind must not keep it alive
while True:  # as init of the PID namespace, also reap whatever the program orphaned
    pid, status = os.wait()
    if pid == worker:
        break
report("exit", os.waitstatus_to_exitcode(status))
'''


# The sandbox's python reads the harness, compiled here once (saves ~2 ms a start), and the job from stdin.
_HARNESS = compile(_CHILD, "<sandbox harness>", "exec")
_BOOT = ("import marshal, os\nchunks = []\nwhile chunk := os.read(0, 1 << 20):\n    chunks.append(chunk)\n"
         "harness, job = marshal.loads(b''.join(chunks))\nexec(harness)\n")


# -----------------------------------------------------------------------------
# Parent side: start a sandbox, read its results against the clock, kill it

@functools.cache
def _namespace_cmd() -> tuple[str, ...]:
    """The `unshare` prefix that gives a program new network, PID and mount namespaces, or () if this
    machine does not allow them. Root uses them directly; other users through a user namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    cmd = (unshare, "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc")
    if os.geteuid() != 0:
        cmd = (unshare, "--user", "--map-root-user") + cmd[1:]
    try:  # a real run: the kernel may refuse a namespace, mount_setattr (Linux < 5.12) or the uid
        _session(compile("def f(): pass", "", "exec"), CallTests("f", ["pass"]), 0, Limits(), time.monotonic() + 10, cmd)
        return cmd
    except RuntimeError:
        return ()


def _throwaway_uid() -> int | None:
    """A uid no account uses, so RLIMIT_NPROC counts only this sandbox's processes; None unless root.
    Inside a user namespace that maps few ids (rootless containers) fall back to nobody."""
    if os.geteuid() != 0:
        return None
    with open("/proc/self/uid_map") as f:
        mapped = int(f.readline().split()[2])
    return 1_000_000 + random.randrange(1 << 30) if mapped >= 1 << 31 else 65534


_MESSAGE_SHAPES = {"start": (), "ready": (), "exit": (int,), "error": (str,), "load_error": (str, str), "test": (int, (str, type(None)), float, str, str)}


def _parse(line: bytes) -> tuple | None:
    """A message from the sandbox, or None if the line is not one (call-based programs can write it)."""
    try:
        msg = ast.literal_eval(line.decode())
    except Exception:
        return None
    if not isinstance(msg, tuple) or not msg or msg[0] not in _MESSAGE_SHAPES:
        return None
    shape = _MESSAGE_SHAPES[msg[0]]
    if len(msg) != len(shape) + 1 or not all(isinstance(v, t) for v, t in zip(msg[1:], shape)):
        return None
    return msg


def _read_line(fd: int, buf: bytearray, deadline: float, max_len: int) -> bytes | None:
    """Next line from the result pipe; None at end of file; TimeoutError if the deadline passes first."""
    scanned = 0
    while (end := buf.find(b"\n", scanned)) < 0:
        if len(buf) > max_len:
            return b""  # not a message; the caller treats it as a protocol violation
        scanned = len(buf)
        timeout = deadline - time.monotonic()
        if timeout <= 0 or not select.select([fd], [], [], timeout)[0]:
            raise TimeoutError
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return None
        buf += chunk
    line = bytes(buf[:end])
    del buf[:end + 1]
    return line


def _session(code, tests: CallTests | IOTests, first: int, limits: Limits, t_end: float,
             prefix: tuple[str, ...]) -> list[TestResult]:
    """Run tests[first:] in one fresh sandbox started under `prefix`. The results cover tests first,
    first+1, ... and at least one of them (all of them if the program failed while loading)."""
    io = isinstance(tests, IOTests)
    items = tests.inputs if io else tests.tests
    work_dir = None if prefix else tempfile.mkdtemp(prefix="sandbox-")
    read_fd, write_fd = os.pipe()
    job = dict(code=code, io=io, tests=list(items), entry_point=getattr(tests, "entry_point", ""),
               preamble=getattr(tests, "preamble", ""), first=first, result_fd=write_fd, uid=_throwaway_uid(),
               namespaces=bool(prefix), memory_mb=limits.memory_mb, output_bytes=limits.output_bytes,
               processes=limits.processes, cpu_s=int(limits.total_timeout_s) + 1, work_mb=WORK_DIR_MB)
    home = work_dir or "/tmp"
    with tempfile.TemporaryFile() as job_file:
        job_file.write(marshal.dumps((_HARNESS, job)))
        job_file.seek(0)
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-I", "-S", "-X", "utf8", "-c", _BOOT], stdin=job_file,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_fd,), cwd=work_dir or "/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home, "TMPDIR": home},
            start_new_session=True)
    os.close(write_fd)

    results: list[TestResult] = []
    remaining = len(items) - first
    buf, started, ready, exit_status, ended = bytearray(), False, False, None, None
    t_last = time.monotonic()
    deadline = t_last + STARTUP_S
    try:
        while exit_status is None and ended is None:
            try:
                line = _read_line(read_fd, buf, min(deadline, t_end), 8 * limits.output_bytes + 4096)
            except TimeoutError:
                if time.monotonic() >= t_end:
                    ended = ("timeout", "total time limit")
                elif not started:
                    raise RuntimeError(f"sandbox did not start within {STARTUP_S:g} s") from None
                else:
                    ended = ("timeout", f"over {limits.test_timeout_s:g} s")
                break
            if line is None:  # end of file: everything in the sandbox exited
                break
            msg = _parse(line)
            kind = msg[0] if msg else None
            if kind == "error" and not started:
                raise RuntimeError(f"sandbox set-up failed: {msg[1]}")
            elif kind == "start":
                started = True
            elif kind == "ready" and started:
                ready = True
            elif kind == "load_error" and started and not ready and msg[1] in VERDICTS:
                return [TestResult(msg[1], 0.0, msg[2]) for _ in range(remaining)]
            elif kind == "test" and ready and msg[1] == first + len(results) < len(items) and \
                    (msg[2] in VERDICTS or msg[2] is None and io):
                _, i, verdict, time_s, detail, stdout = msg
                if verdict is None:
                    ok, detail = compare_outputs(stdout, tests.outputs[i])
                    verdict = "passed" if ok else "failed"
                results.append(TestResult(verdict, time_s, detail))
            elif kind == "exit":
                exit_status = msg[1]
            else:
                ended = ("runtime_error", "broke the result protocol")
            t_last = time.monotonic()
            deadline = t_last + limits.test_timeout_s
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        os.close(read_fd)
        if work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)

    if not started and ended is None:
        raise RuntimeError(f"the sandbox exited before starting (status {proc.returncode})")
    if len(results) < remaining:
        verdict, detail = ended or _exit_verdict(exit_status, limits)
        elapsed = time.monotonic() - t_last
        if not ready:  # the program failed while loading: no test can pass
            return [TestResult(verdict, elapsed, f"{detail} (while loading the program)") for _ in range(remaining)]
        results.append(TestResult(verdict, elapsed, detail))
    return results


def _exit_verdict(status: int | None, limits: Limits) -> tuple[str, str]:
    """Verdict for a test whose process died before reporting, from the worker's exit status."""
    if status is None:
        return "runtime_error", "the sandbox died"
    if status == -signal.SIGXFSZ:
        return "output_exceeded", f"more than {limits.output_bytes} bytes of output"
    if status == -signal.SIGXCPU:
        return "timeout", "CPU time limit"
    if status < 0:
        return "runtime_error", f"killed by signal {-status}"
    return "runtime_error", f"exited with status {status} during the test"
