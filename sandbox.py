"""Sandboxed execution of untrusted, model-generated Python against unit tests, with verdicts decided
outside the untrusted process.

Preference-pair curation (make_pairs.py), the RLVR baseline's reward (train_rl.py --reward exec) and every
evaluation number (infer.py) come from here:

    from sandbox import CallTests, FunctionTests, IOTests, Limits, run_program, run_programs
    r = run_program(code, CallTests("add", ["assert candidate(1, 2) == 3"]))
    r.verdict, r.pass_rate, [t.verdict for t in r.tests]
    results = run_programs([(code, tests), ...], workers=8, progress=True)   # in the order of the jobs

    python -m pytest -q tests/test_sandbox.py tests/test_reward_hacks.py   # containment; the hack corpus
    SANDBOX_TEST_BUSY=2 python -m pytest -q tests/test_sandbox.py         # the same beside 2 busy processes
    python bench.py sandbox                                                # overhead vs `python -I -S -c pass`

Three kinds of tests share one call path. CallTests: HumanEval-style snippets that call `candidate`, with a
preamble (imports, helpers) run before them. FunctionTests: LiveCodeBench/TACO functional tests, JSON
arguments and expected return values for `fn_name` (a `class Solution` method if the program has one),
compared after turning tuples into lists. IOTests: stdin/stdout, compared with LiveCodeBench's rule.

How a program runs (sandbox_harness.py has the processes). A fork server, started once per process,
forks a *test process* per program; that process forks the *sandbox* (init S1 and worker S2) before it
has read a single test, then reads the tests and runs them itself. In the tests `candidate` is a stub: it
sends the call's arguments to S2 as plain data, S2 calls the program's function and sends the return
value back. Only None, bool, int, float, complex, str, bytes and list, tuple, dict, set, frozenset of
those cross (exact types, nesting <= 100, Limits.value_bytes), as JSON decoded by `json` (no eval, no
pickle); anything else fails the test. An exception raised by the program comes back as its type name and
message (a builtin exception class is rebuilt, so a test's `except ValueError` still works). For
stdin/stdout tests S2 forks a run per input and sends back the output; the test process compares. A test
that times out or kills the sandbox ends the session; a fresh sandbox runs the remaining tests, after the
program's top level again. A failure in the top level itself (exception, endless loop) fails every test.

Time. Limits.test_timeout_s is CPU time of everything in the sandbox during the test (the cgroup's
counter), so a busy machine or a neighbour that spins cannot turn a pass into a timeout. Past wall_factor
times the limit of wall clock a test also ends once the sandbox has used no CPU for a second (a program
that sleeps or blocks), never while it computes, however starved. With confirm_timeouts a program's first
timed-out test is rerun in a fresh sandbox and the rerun decides (later ones are taken as they are: a
rerun of every looping test would double the cost of every program that loops). total_timeout_s (wall)
bounds the whole program.

Threat model: code from a language model under optimisation pressure. Besides honest mistakes (loops,
huge allocations, endless output, forks, crashes, early exits) an RL policy finds reward hacks: objects
whose __eq__ is always True, subclasses of str/int/tuple with such an __eq__, monkeypatched builtins
(exec, abs, AssertionError) or sys.modules, test sources or expected answers found in memory (gc, frames)
or on disk (the problems file, the data set in site-packages), forged lines on the result channel, exits
that skip the tests. tests/test_reward_hacks.py runs each against all 164 HumanEval problems: none passes
a problem. What each layer stops:
- tests, their sources and expected answers live only in the test process; the sandbox is forked before
  they are read -> nothing to find with gc, frames or /proc/self/mem; patching builtins or sys.modules
  changes only the program's own interpreter
- plain data across a pipe, decoded by the test process -> no object of the program's making is ever
  compared, so no __eq__/__hash__/__bool__ of its choosing runs in a test
- request/response with sequence numbers; a reply sent before its request, a second "ready" or any line
  that is not the expected message ends the session with runtime_error; a load failure always fails every
  test -> forged lines on any descriptor cannot pass anything; stdout is never read for call-based tests
- the test process is not dumpable (PR_SET_DUMPABLE 0) and runs as root outside the sandbox's namespaces
  -> the program cannot ptrace it, read its memory or signal it
- PID namespace, S1 as its init, PDEATHSIG -> kill(-1), kill(getppid()), setsid() reach nothing outside;
  everything left running dies with S1, and S1 is reaped before the verdict (no zombies)
- mount namespace with a tmpfs root (pivot_root, the host tree detached): the Python standard library and
  shared-library directories read-only, site-packages covered, /dev/null, zero, random, urandom, and a
  64 MiB tmpfs /tmp as the work dir -> no repository, data/, problems file, home directory, /var, /proc
  or host socket is visible, and nothing outside /tmp is writable; the work dir vanishes with it
- network namespace -> only a loopback that is down: every connect fails; abstract unix sockets are
  per network namespace too
- IPC namespace -> SysV shared memory, semaphores and message queues die with the sandbox and are not
  shared between sandboxes
- a cgroup per sandbox (v2 where our cgroup delegates memory and pids, else v1 memory/pids/cpuacct):
  memory.max = memory_mb counts heap, SysV shm, memfd and tmpfs pages of all its processes ->
  "memory_exceeded"; pids.max = processes -> a fork bomb gets EAGAIN; the CPU counter times each test
- RLIMIT_AS = memory_mb per process -> a huge allocation raises MemoryError -> "memory_exceeded"
- stdout and stderr are memory files under RLIMIT_FSIZE -> endless output: the kernel stops the write at
  output_bytes (per stream and test) and SIGXFSZ kills the writer -> "output_exceeded"
- RLIMIT_CORE = 0, RLIMIT_CPU (whole program), RLIMIT_NOFILE = 256, no_new_privs -> no core files; CPU of
  anything that escaped is bounded; memfds are bounded without a cgroup
- environment scrubbed, `python -I -S` -> no secrets from env vars, no PYTHON* variables, no site-packages
- as root, a throwaway uid (random, >= 10^6) -> RLIMIT_NPROC counts only this sandbox; nothing of other
  users is writable or killable
Out of scope: kernel exploits and side channels (timing, /sys counters); hostile code needs a VM (gVisor,
Firecracker). The tests are trusted: test code (and a CallTests preamble) runs in the test process.

Fallbacks, probed once (containment() reports them). A non-root user gets the namespaces through an
unprivileged user namespace where the kernel allows one (no uid drop; RLIMIT_NPROC counts the user's own
processes per user namespace, Linux >= 5.14). Without a cgroup (none delegated, e.g. a rootless container
without cgroup v2 delegation: run under `systemd-run --user --scope -p Delegate=yes`, or point
$SANDBOX_CGROUP at a delegated v2 group), per-test CPU is read from /proc for S1's process tree (a
process that leaves that tree is not counted), memory is bounded per process by RLIMIT_AS only (SysV shm
still dies with the IPC namespace; memfds are capped by RLIMIT_FSIZE x RLIMIT_NOFILE) and processes by
RLIMIT_NPROC. Without namespaces (e.g. Docker's default seccomp profile) the program runs in a temporary
directory and sees the host filesystem and network: it can read a problems file or the HumanEval data set
and answer from it, so verdicts there are not hack-proof; as root the throwaway uid still applies.
"""

import atexit
import functools
import itertools
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from sandbox_harness import compare_outputs, read_frame, write_frame  # noqa: F401 (compare_outputs is API)

VERDICTS = ("passed", "failed", "timeout", "runtime_error", "syntax_error", "memory_exceeded", "output_exceeded")
STARTUP_S = 10.0  # slack for starting a session: the machine is broken or badly overloaded past it
WORK_DIR_MB = 64  # size of the tmpfs work directory


# -----------------------------------------------------------------------------
# Public API

@dataclass
class Limits:
    test_timeout_s: float = 2.0     # CPU seconds of the whole sandbox per test (the authors use 2 s, wall)
    total_timeout_s: float = 30.0   # wall clock, whole program, all tests
    memory_mb: int = 1024           # address space per process, and the cgroup's memory (shm, memfd included)
    output_bytes: int = 1 << 20     # cap on stdout and on stderr, per test
    processes: int = 64             # processes and threads of the sandbox (cgroup pids.max, RLIMIT_NPROC)
    wall_factor: float = 5.0        # past test_timeout_s * wall_factor of wall clock, a test ends once idle
    confirm_timeouts: bool = False  # rerun a program's first timed-out test afresh; the rerun decides
    value_bytes: int = 1 << 24      # cap on one encoded return value (or stdin/stdout reply)


@dataclass
class CallTests:                    # HumanEval style: `check(candidate)`-like tests
    entry_point: str                # the function (or `class Solution` method) the program defines
    tests: list[str]                # snippets run with `candidate` bound; a test passes when it raises nothing
    preamble: str = ""              # run once before the tests, in their namespace (imports, helpers); trusted


@dataclass
class FunctionTests:                # LiveCodeBench / TACO functional tests
    fn_name: str                    # a method of `class Solution` if the program has one, else a function
    inputs: list[list]              # positional arguments of each call (JSON values)
    outputs: list                   # expected return values (JSON); a tuple returned counts as a list


@dataclass
class IOTests:                      # stdin/stdout tests (LiveCodeBench style)
    inputs: list[str]
    outputs: list[str]


@dataclass
class TestResult:
    verdict: str                    # one of VERDICTS except syntax_error
    time_s: float                   # CPU seconds the sandbox used in the test
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


def containment() -> dict[str, bool]:
    """What this machine allows, detected once: namespaces (PID, mount, network, IPC; a hidden host
    filesystem), a cgroup per sandbox (and which version), the throwaway uid."""
    layout = _cgroup_layout()
    return {"namespaces": _namespaces(), "cgroup": layout[0] if layout else None, "throwaway_uid": os.geteuid() == 0}


def _count(tests) -> int:
    return len(tests.tests if isinstance(tests, CallTests) else tests.inputs)


def run_program(code: str, tests: CallTests | FunctionTests | IOTests, limits: Limits = Limits()) -> ProgramResult:
    """Run `code` against every test; see the module docstring."""
    if isinstance(tests, (IOTests, FunctionTests)) and len(tests.inputs) != len(tests.outputs):
        raise ValueError(f"{type(tests).__name__} needs one output per input")
    start = time.monotonic()
    try:  # compiling runs none of the program (extract.py's ast.parse does as much); the sandbox gets bytecode
        compiled = compile(code, "<solution>", "exec", dont_inherit=True)
    except Exception as e:  # SyntaxError, or ValueError for null bytes, RecursionError for deep nesting
        return ProgramResult("syntax_error", [], time.monotonic() - start, f"{type(e).__name__}: {e}")
    t_end = start + limits.total_timeout_s
    n, results, confirmed = _count(tests), [], set()
    while len(results) < n:  # each session covers at least one more test
        if time.monotonic() >= t_end:
            results += [TestResult("timeout", 0.0, "not run: total time limit") for _ in range(n - len(results))]
            break
        session = _run_tests_in_one_sandbox(compiled, tests, len(results), limits, t_end, _namespaces())
        timeouts = [k for k, t in enumerate(session) if t.verdict == "timeout"]
        if limits.confirm_timeouts and timeouts and not confirmed:  # the program's first timeout only:
            confirmed.add(len(results) + timeouts[0])  # a fresh sandbox reruns it; one slow run is not enough
            session = session[:timeouts[0]]
        results += session
    first_bad = next((t for t in results if t.verdict != "passed"), None)
    return ProgramResult(first_bad.verdict if first_bad else "passed", results, time.monotonic() - start)


def run_programs(jobs: list[tuple[str, CallTests | FunctionTests | IOTests]], workers: int = 1,
                 limits: Limits = Limits(), progress: bool = False) -> list[ProgramResult]:
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
# The fork server (sandbox_harness.py): one per process, forks a test process per session

class _ForkServer:
    def __init__(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        harness = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_harness.py")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-X", "utf8", harness], stdin=theirs, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "TMPDIR": "/tmp"},  # nothing else
            start_new_session=True)
        theirs.close()
        self.sock, self.lock, self.owner = ours, threading.Lock(), os.getpid()
        atexit.register(self.close)

    def spawn(self, job_r: int, result_w: int) -> int:
        """A new test process reading job_r and writing result_w (both closed here); its pid."""
        with self.lock:
            socket.send_fds(self.sock, [b"x"], [job_r, result_w])
            pid = struct.unpack("<q", self.sock.recv(8, socket.MSG_WAITALL))[0]
        os.close(job_r)
        os.close(result_w)
        return pid

    def close(self):
        if self.owner == os.getpid():  # not in a forked copy: the server belongs to the parent
            self.sock.close()  # the server exits on end of file
            self.proc.wait()


_server_lock = threading.Lock()
_server: _ForkServer | None = None


def _fork_server() -> _ForkServer:
    global _server
    with _server_lock:
        # a forked copy of this process (a data-loader worker) must not share the parent's socket
        if _server is None or _server.owner != os.getpid() or _server.proc.poll() is not None:
            _server = _ForkServer()
        return _server


# -----------------------------------------------------------------------------
# Cgroups: a memory, pids and CPU-accounting group per sandbox where this machine lets us make one

@functools.cache
def _cgroup_layout() -> tuple[str, dict[str, str]] | None:
    """("v2", {"dir": base}) when our cgroup v2 (or $SANDBOX_CGROUP) delegates memory and pids to its
    children, ("v1", {controller: base}) when writable v1 memory, pids and cpuacct hierarchies are
    mounted, else None. Each candidate is probed by making and removing a group."""
    try:
        with open("/proc/self/cgroup") as f:
            own = [line.rstrip("\n").split(":", 2) for line in f]
        with open("/proc/self/mounts") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return None
    v2_mount = next((m[1] for m in mounts if m[2] == "cgroup2"), None)
    v2_path = next((p for h, c, p in own if h == "0" and c == ""), None)
    candidates = []
    if v2_mount and (os.environ.get("SANDBOX_CGROUP") or v2_path):
        base = os.environ.get("SANDBOX_CGROUP") or v2_mount + v2_path.rstrip("/")
        try:
            with open(os.path.join(base, "cgroup.subtree_control")) as f:
                if {"memory", "pids"} <= set(f.read().split()):
                    candidates.append(("v2", {"dir": base}))
        except OSError:
            pass
    v1 = {}
    for controller in ("memory", "pids", "cpuacct"):
        mount = next((m[1] for m in mounts if m[2] == "cgroup" and controller in m[3].split(",")), None)
        path = next((p for h, c, p in own if controller in c.split(",")), None)
        if mount and path:
            v1[controller] = mount + path.rstrip("/")
    if len(v1) == 3:
        candidates.append(("v1", v1))
    for version, bases in candidates:
        probe = [os.path.join(b, f"sandbox-probe-{os.getpid()}") for b in bases.values()]
        try:
            for p in probe:
                os.mkdir(p)
            return version, bases
        except OSError:
            pass
        finally:
            for p in probe:
                try:
                    os.rmdir(p)
                except OSError:
                    pass
    return None


_cgroup_ids = itertools.count()


class _Cgroup:
    """One sandbox's group: limits written before the sandbox joins it, everything in it killed and the
    group removed at the end."""

    def __init__(self, limits: Limits):
        self.version, bases = _cgroup_layout()
        name = f"sandbox-{os.getpid()}-{next(_cgroup_ids)}"
        self.dirs = {c: os.path.join(b, name) for c, b in bases.items()}
        for d in self.dirs.values():
            os.mkdir(d)
        memory = str(limits.memory_mb << 20)
        if self.version == "v2":
            d = self.dirs["dir"]
            self._write(d, "memory.max", memory)
            self._write(d, "memory.swap.max", "0", optional=True)
            self._write(d, "pids.max", str(limits.processes))
            self.procs = [os.path.join(d, "cgroup.procs")]
            self.cpu_counter = ("v2", os.path.join(d, "cpu.stat"))
            self.oom_counter = os.path.join(d, "memory.events")
        else:
            self._write(self.dirs["memory"], "memory.limit_in_bytes", memory)
            self._write(self.dirs["memory"], "memory.memsw.limit_in_bytes", memory, optional=True)
            self._write(self.dirs["pids"], "pids.max", str(limits.processes))
            self.procs = [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]
            self.cpu_counter = ("v1", os.path.join(self.dirs["cpuacct"], "cpuacct.usage"))
            self.oom_counter = os.path.join(self.dirs["memory"], "memory.oom_control")

    @staticmethod
    def _write(d, name, value, optional=False):
        try:
            with open(os.path.join(d, name), "w") as f:
                f.write(value)
        except OSError:
            if not optional:
                raise

    def remove(self):
        """Kill whatever is left inside (nothing, with a PID namespace) and remove the group."""
        if self.version == "v2":
            self._write(self.dirs["dir"], "cgroup.kill", "1", optional=True)
        deadline = time.monotonic() + STARTUP_S
        for d in self.dirs.values():
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        for pid in f.read().split():
                            os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
                time.sleep(0.001)


# -----------------------------------------------------------------------------
# Parent side of one session

@functools.cache
def _namespaces() -> bool:
    """Whether sandboxes get their own namespaces here: probed once, with a real run (the kernel may
    refuse a namespace, a user namespace, a mount or pivot_root)."""
    try:
        results = _run_tests_in_one_sandbox(compile("def f():\n    return 1", "", "exec"),
                                            CallTests("f", ["assert candidate() == 1"]), 0, Limits(),
                                            time.monotonic() + STARTUP_S, True)
        return [t.verdict for t in results] == ["passed"]
    except (RuntimeError, OSError):
        return False


def _throwaway_uid() -> int | None:
    """A uid no account uses, so RLIMIT_NPROC counts only this sandbox's processes; None unless root.
    Inside a user namespace that maps few ids (rootless containers) fall back to nobody."""
    if os.geteuid() != 0:
        return None
    with open("/proc/self/uid_map") as f:
        mapped = int(f.readline().split()[2])
    return 1_000_000 + random.randrange(1 << 30) if mapped >= 1 << 31 else 65534


def _tests_message(tests, first: int) -> dict:
    if isinstance(tests, CallTests):
        return dict(kind="call", first=first, items=list(tests.tests), preamble=tests.preamble,
                    entry_point=tests.entry_point)
    if isinstance(tests, FunctionTests):
        return dict(kind="function", first=first, items=[(list(a), o) for a, o in zip(tests.inputs, tests.outputs)])
    return dict(kind="io", first=first, items=list(zip(tests.inputs, tests.outputs)))


def _run_tests_in_one_sandbox(code, tests, first: int, limits: Limits, t_end: float,
                              namespaces: bool) -> list[TestResult]:
    """Run tests[first:] in one fresh sandbox. The results cover tests first, first+1, ... and at least
    one of them (all of them if the program failed while loading)."""
    n = _count(tests)
    cgroup = _Cgroup(limits) if _cgroup_layout() else None
    work_dir = None if namespaces else tempfile.mkdtemp(prefix="sandbox-")
    uid = _throwaway_uid()
    job = dict(code=code, io=isinstance(tests, IOTests), entry_point=getattr(tests, "entry_point", None)
               or getattr(tests, "fn_name", ""), namespaces=namespaces, uid=uid, work_mb=WORK_DIR_MB,
               work_dir=work_dir, memory_mb=limits.memory_mb, cpu_s=int(limits.total_timeout_s) + 1,
               processes=limits.processes, output_bytes=limits.output_bytes, test_cpu_s=limits.test_timeout_s,
               wall_factor=limits.wall_factor, cores=os.cpu_count() or 1, reply_bytes=limits.value_bytes,
               cgroup_procs=cgroup.procs if cgroup else [],
               cpu_counter=cgroup.cpu_counter if cgroup else ("proc", ""),
               oom_counter=cgroup.oom_counter if cgroup else "")
    job_r, job_w = os.pipe()
    result_r, result_w = os.pipe()
    results: list[TestResult] = []
    pidfd = None
    try:
        pid = _fork_server().spawn(job_r, result_w)
        pidfd = os.pidfd_open(pid)
        try:
            write_frame(job_w, job)
            write_frame(job_w, _tests_message(tests, first))
        except BrokenPipeError:
            pass  # the test process died; reading its results says how
        os.close(job_w)
        job_w = None
        while True:  # the test process enforces each test's limits; here only the total limit applies
            timeout = t_end - time.monotonic()
            if timeout <= 0 or not select.select([result_r], [], [], timeout)[0]:
                results.append(TestResult("timeout", 0.0, "total time limit"))
                break
            try:
                msg = read_frame(result_r)
            except EOFError:  # killed by its own CPU limit (a test that loops by itself)
                results.append(TestResult("runtime_error", 0.0, "the test process died"))
                break
            if msg[0] == "error":
                raise RuntimeError(msg[1])
            if msg[0] == "done":
                break
            _, i, verdict, cpu_s, detail = msg
            results.append(TestResult(verdict, cpu_s, detail))
    finally:
        if pidfd is not None:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)  # its sandbox dies with it (PDEATHSIG)
            except ProcessLookupError:
                pass
            os.close(pidfd)
        for fd in (job_w, result_r):
            if fd is not None:
                os.close(fd)
        if cgroup:
            cgroup.remove()
        if work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    return results[:n - first]
