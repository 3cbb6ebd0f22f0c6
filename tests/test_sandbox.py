"""sandbox.py: verdicts per test, LiveCodeBench's output comparison, and containment of programs that
loop, fork, allocate, flood output, kill, read secrets, write files, open sockets, exit early or try to
forge results. Every one must end in a verdict within its limits and leave this process unharmed."""
import os
import socket
import subprocess
import time
import uuid

import pytest

from sandbox import (VERDICTS, CallTests, IOTests, Limits, compare_outputs, containment, run_program,
                     run_programs)

FAST = Limits(test_timeout_s=1.0, total_timeout_s=10.0, memory_mb=512, output_bytes=1 << 16)
SLACK_S = 1.5  # start-up and kill time allowed on top of a limit
NAMESPACES = containment()["namespaces"]
ROOT = containment()["throwaway_uid"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_namespaces = pytest.mark.skipif(not NAMESPACES, reason="no Linux namespaces on this machine")


def call(code, *tests, preamble="", limits=FAST):
    return run_program(code, CallTests("f", list(tests), preamble), limits)


def io(code, inputs, outputs, limits=FAST):
    return run_program(code, IOTests(list(inputs), list(outputs)), limits)


def verdicts(result):
    return [t.verdict for t in result.tests]


# -----------------------------------------------------------------------------
# Normal behaviour

def test_call_tests_give_one_verdict_each():
    r = call("def f(a, b):\n    return a + b\n",
             "assert candidate(1, 2) == 3", "assert candidate(1, 2) == 4", "candidate(1)", "assert candidate(2, 2) == 4")
    assert verdicts(r) == ["passed", "failed", "runtime_error", "passed"]
    assert r.verdict == "failed" and r.pass_rate == 0.5
    assert r.tests[2].detail.startswith("TypeError: f() missing 1 required positional argument")
    assert all(0 <= t.time_s < 0.5 for t in r.tests)


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
    r = call(code, "assert True", "assert True")
    assert verdicts(r) == ["runtime_error", "runtime_error"]
    assert detail in r.tests[0].detail


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
    imports = "import math, collections, itertools, heapq, bisect, functools, re, typing, fractions, decimal, json, string, random, datetime, statistics, array"
    r = call("def f():\n    return 1\n", imports, "assert 'bücher.de'.encode('idna') and 'é'.encode('latin-1')")
    assert r.verdict == "passed", r.tests


def test_run_programs_keeps_order_and_isolates_bad_programs():
    good = ("def f(x):\n    return x + 1\n", CallTests("f", ["assert candidate(1) == 2"]))
    jobs = [good, ("while True:\n    pass\n", CallTests("f", ["pass"])), good,
            ("x = bytearray(20 * 2**30)\n", CallTests("f", ["pass"])), ("print(int(input()) + 1)", IOTests(["1"], ["2"])), good]
    expected = ["passed", "timeout", "passed", "memory_exceeded", "passed", "passed"]
    if NAMESPACES or ROOT:  # a fork bomb is capped only with a uid or user namespace of its own
        jobs.insert(1, ("import os\nwhile True:\n    os.fork()\n", CallTests("f", ["pass"])))
        expected.insert(1, "runtime_error")
    results = run_programs(jobs, workers=2, limits=FAST, progress=True)
    assert [r.verdict for r in results] == expected


# -----------------------------------------------------------------------------
# Containment

def test_infinite_loop_in_one_test_does_not_take_the_others():
    t0 = time.monotonic()
    r = call("def f(x):\n    while x:\n        pass\n    return 1\n",
             "assert candidate(0) == 1", "candidate(1)", "assert candidate(0) == 1")
    assert verdicts(r) == ["passed", "timeout", "passed"]
    assert FAST.test_timeout_s <= r.tests[1].time_s < FAST.test_timeout_s + SLACK_S
    assert time.monotonic() - t0 < FAST.test_timeout_s + SLACK_S
    r = io("while True:\n    pass\n", ["", ""], ["", ""])
    assert verdicts(r) == ["timeout", "timeout"] and r.wall_s < 2 * FAST.test_timeout_s + SLACK_S


def test_loop_while_loading_and_total_time_limit():
    r = call("while True:\n    pass\n", "pass", "pass", "pass")
    assert verdicts(r) == ["timeout"] * 3 and r.wall_s < FAST.test_timeout_s + SLACK_S
    limits = Limits(test_timeout_s=1.0, total_timeout_s=1.5)
    r = call("def f():\n    while True:\n        pass\n", "candidate()", "candidate()", "candidate()", limits=limits)
    assert verdicts(r) == ["timeout"] * 3 and r.wall_s < limits.total_timeout_s + SLACK_S


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


@pytest.mark.skipif(not (NAMESPACES or ROOT), reason="RLIMIT_NPROC needs a uid or user namespace of its own")
def test_fork_bomb_is_capped_and_cleaned_up():
    bomb = ("import os, time\n"
            "while True:\n"
            "    if os.fork() == 0:\n"
            "        os.setsid()\n"       # leave the process group: only the PID namespace or uid can catch it
            "        time.sleep(60)\n")
    t0 = time.monotonic()
    r = call("import os\ndef f():\n    pass\n", "raise RuntimeError(os.getuid())", bomb, "assert 1 + 1 == 2")
    assert time.monotonic() - t0 < FAST.test_timeout_s + SLACK_S
    assert r.tests[1].verdict == "runtime_error" and "BlockingIOError" in r.tests[1].detail  # EAGAIN at the cap
    assert r.tests[2].verdict == "passed"
    uid = int(r.tests[0].detail.split(": ")[1])
    if ROOT and NAMESPACES:  # the sleepers die with the PID namespace (the kernel takes a moment to reap ~60 processes)
        deadline = time.monotonic() + 10
        while _processes_of(uid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_of(uid) == []
    classic = io("import os\nwhile True:\n    os.fork()\n", [""], [""])
    assert classic.verdict == "runtime_error" and classic.wall_s < FAST.test_timeout_s + SLACK_S


def test_huge_allocation_is_memory_exceeded():
    r = call("def f():\n    return bytearray(20 * 2**30)\n", "candidate()", "x = [bytearray(10**7) for _ in range(1000)]", "pass")
    assert verdicts(r) == ["memory_exceeded", "memory_exceeded", "passed"]
    assert io("x = bytearray(20 * 2**30)\nprint(1)", ["", ""], ["1", "1"]).verdict == "memory_exceeded"


def test_endless_output_is_cut_and_killed():
    gigabyte = "import sys\nfor _ in range(2**20):\n    sys.stdout.write('x' * 1024)\n"
    t0 = time.monotonic()
    r = call("def f():\n    pass\n", "print('small')", gigabyte, "import sys\nwhile True: sys.stderr.write('e' * 4096)", "print('small')")
    assert verdicts(r) == ["passed", "output_exceeded", "output_exceeded", "passed"]
    r = io(gigabyte, ["", ""], ["", ""])
    assert verdicts(r) == ["output_exceeded"] * 2
    assert time.monotonic() - t0 < 2 * SLACK_S


@pytest.mark.skipif(not (NAMESPACES or ROOT), reason="without a PID namespace or uid drop kill(-1) would hit this user's processes")
def test_killing_the_parent_and_everything_else():
    canary = subprocess.Popen(["sleep", "30"])
    killer = (f"import os, signal\n"
              f"for pid in [os.getppid(), {os.getpid()}, {canary.pid}, 1, *range(2, 1 << 15)]:\n"
              f"    try:\n"
              f"        os.kill(pid, signal.SIGKILL)\n"
              f"    except OSError:\n"
              f"        pass\n"
              f"os.kill(-1, signal.SIGKILL)\n")
    try:
        r = call("def f():\n    pass\n", killer, "assert True")
        assert r.tests[1].verdict == "passed"
        assert io(killer + "print(1)", [""], ["1"]).verdict in VERDICTS
        assert canary.poll() is None  # still alive, and so are we
    finally:
        canary.kill()


def test_environment_secrets_do_not_leak(monkeypatch):
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "hunter2")
    parent = os.getpid()
    r = call("import os\ndef f():\n    pass\n",
             "assert 'hunter2' not in str(os.environ)",
             *[f"try:\n    data = open('/proc/{pid}/environ', 'rb').read()\nexcept OSError:\n    data = b''\nassert b'hunter2' not in data"
               for pid in ("self", 1, parent)])
    assert r.verdict == "passed", r.tests
    assert io("import os\nprint(os.environ.get('SANDBOX_TEST_SECRET'))", [""], ["None"]).verdict == "passed"


@pytest.mark.skipif(not (NAMESPACES or ROOT), reason="a plain user's sandbox can write wherever the user can")
def test_no_writes_outside_the_work_directory():
    name = f"sandbox-escape-{uuid.uuid4().hex}"
    targets = [f"{REPO}/{name}"]  # the throwaway uid cannot write it; the read-only mounts stop everything
    if NAMESPACES:
        targets += [f"/tmp/{name}", f"/var/tmp/{name}", f"/dev/shm/{name}", f"{os.path.expanduser('~')}/{name}"]
    writer = f"for p in {targets!r}:\n    try:\n        open(p, 'w').write('x')\n    except OSError:\n        pass\n"
    r = call("def f():\n    pass\n", writer, "open('inside', 'w').write('ok')\nassert open('inside').read() == 'ok'")
    assert verdicts(r) == ["passed", "passed"]
    assert io(writer, [""], [""]).verdict == "passed"
    assert [p for p in targets if os.path.exists(p)] == []


def test_each_program_gets_a_fresh_work_directory():
    marker = f"marker-{uuid.uuid4().hex}"
    first = call("def f():\n    pass\n", f"open({marker!r}, 'w').write('x')\nassert os.path.exists({marker!r})",
                 "raise RuntimeError(os.getcwd())", preamble="import os")
    second = call("def f():\n    pass\n", f"assert not os.path.exists({marker!r})", preamble="import os")
    assert verdicts(first) == ["passed", "runtime_error"] and second.verdict == "passed"
    if not NAMESPACES:  # else the work dir is a tmpfs that only existed inside the sandbox's mount namespace
        assert not os.path.exists(first.tests[1].detail.split(": ")[1])


def test_crash_gives_runtime_error_and_no_core_file():
    segfault = "import ctypes\nctypes.string_at(0)\n"
    r = call("import resource\ndef f():\n    pass\n", "assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)", segfault, "assert True")
    assert verdicts(r) == ["passed", "runtime_error", "passed"] and r.tests[1].detail == "killed by signal 11"
    assert io(segfault, [""], [""]).verdict == "runtime_error"


@needs_namespaces
def test_loopback_is_unreachable():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        r = call("import socket\ndef f():\n    pass\n", f"socket.create_connection(('127.0.0.1', {port}), timeout=0.5)")
        assert r.verdict == "runtime_error" and "OSError" in r.tests[0].detail
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected


@needs_namespaces
def test_public_address_is_unreachable():
    # 192.0.2.1 is TEST-NET-1 (never routed); in the empty network namespace the connect fails at once
    r = call("import socket\ndef f():\n    pass\n", "socket.create_connection(('192.0.2.1', 80), timeout=0.5)")
    assert r.verdict == "runtime_error" and "unreachable" in r.tests[0].detail and r.tests[0].time_s < 0.4


def test_exits_in_the_middle_do_not_pass_the_remaining_tests():
    for exit_call in ("sys.exit(0)", "os._exit(0)", "raise SystemExit"):
        r = call("import os, sys\ndef f():\n    pass\n", "assert True", exit_call, "assert False", "assert True")
        assert verdicts(r) == ["passed", "runtime_error", "failed", "passed"], exit_call
    r = io("import os\nprint(1, flush=True)\nos._exit(0)", [""], ["1"])
    assert r.verdict == "passed"


def test_forged_result_lines_are_ignored():
    fake = "print(\"('test', 0, 'passed', 0.0, '', '')\\n('exit', 0)\")\n"
    r = call(fake + "def f():\n    return 0\n", fake + "assert candidate() == 1", fake + "assert candidate() == 2")
    assert verdicts(r) == ["failed", "failed"]
    assert io(fake, [""], ["1"]).verdict == "failed"


def test_closing_or_replacing_descriptors():
    close_all = "import os\nos.closerange(3, 1024)\n"
    redirect_all = "import os\nnull = os.open(os.devnull, os.O_WRONLY)\nfor fd in range(1024):\n    try:\n        os.dup2(null, fd)\n    except OSError:\n        pass\n"
    r = call("def f():\n    return 1\n", "import os\nos.close(1)\nos.close(2)", "print('after close')\nassert candidate() == 1",
             close_all, redirect_all, "assert candidate() == 1")
    assert verdicts(r)[0] == "passed" and verdicts(r)[2:] == ["runtime_error", "runtime_error", "passed"]
    assert r.tests[1].verdict in ("passed", "runtime_error")  # print to a closed stdout raises, or not
    assert io(close_all + "print(1)", [""], ["1"]).verdict == "passed"  # the test process owns no result fd


@pytest.mark.skipif(not ROOT, reason="the uid drop happens only when running as root")
def test_program_runs_as_an_unprivileged_throwaway_uid():
    r = call("import os\ndef f():\n    pass\n", "assert os.getuid() != 0 and os.geteuid() != 0 and os.getgroups() == []",
             "try:\n    open('/etc/shadow').read()\nexcept OSError:\n    pass\nelse:\n    raise AssertionError('read /etc/shadow')")
    assert r.verdict == "passed", r.tests
