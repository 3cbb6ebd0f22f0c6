"""make_pairs.py: dedup, pair selection, and a run through the real sandbox that reproduces the committed
HumanEval lines (the mutation engine is tested in tests/test_mutate.py)."""
import json
import os
import re

import pytest

import make_pairs as mp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_deduplicate_keeps_the_first_of_each_problems_equal_programs():
    base = "def f(a):\n    return a + 1\n"
    kept, dropped = mp.deduplicate([{"problem_id": "p", "code": base, "n": 1},
                                    {"problem_id": "q", "code": base, "n": 2},
                                    {"problem_id": "p", "code": "def f(a):\n    return a+1 # x\n", "n": 3}])
    assert [c["n"] for c in kept] == [1, 2] and dropped == {"p": 1}


# ----------------------------------------------------------------------------------------------------------
# Pairs

def cand(pid, code, verdict, pass_rate):
    return {"problem_id": pid, "code": code, "verdict": verdict, "pass_rate": pass_rate}


FIXTURE = [cand("p1", "good0", "passed", 1.0), cand("p1", "bad0", "failed", 0.5), cand("p1", "good1", "passed", 1.0),
           cand("p1", "bad1", "timeout", 0.0), cand("p1", "bad2", "syntax_error", 0.0),
           cand("p2", "only_bad", "runtime_error", 0.25), cand("p3", "only_good", "passed", 1.0)]
QUESTIONS = {"p1": "Q1", "p2": "Q2", "p3": "Q3"}


def test_pairs_without_a_cap_are_all_chosen_x_rejected():
    pairs = mp.build_pairs(QUESTIONS, FIXTURE, 100, seed=0)
    assert {(p["code_pos"], p["code_neg"]) for p in pairs} == {(g, b) for g in ("good0", "good1")
                                                               for b in ("bad0", "bad1", "bad2")}
    assert len(pairs) == 6 and {p["problem_id"] for p in pairs} == {"p1"}  # p2, p3 have no pair
    bad0 = next(p for p in pairs if p["code_neg"] == "bad0")
    assert bad0 == {"question_content": "Q1", "code_pos": bad0["code_pos"], "code_neg": "bad0",
                    "problem_id": "p1", "neg_pass_rate": 0.5, "neg_verdict": "failed"}


def test_capped_pairs_spread_over_both_sides_and_are_seeded():
    pairs = mp.build_pairs(QUESTIONS, FIXTURE, 4, seed=0)
    picked = [(p["code_pos"], p["code_neg"]) for p in pairs]
    assert len(set(picked)) == 4
    assert sorted(c for c, _ in picked) == ["good0", "good0", "good1", "good1"]
    assert {r for _, r in picked} == {"bad0", "bad1", "bad2"}  # then the least-used pair first
    assert picked == [(p["code_pos"], p["code_neg"]) for p in mp.build_pairs(QUESTIONS, FIXTURE, 4, seed=0)]
    assert picked == [("good0", "bad1"), ("good1", "bad0"), ("good1", "bad2"), ("good0", "bad0")]
    assert mp.select_pairs(1, 20, 5, __import__("random").Random(0)) == [(0, j) for j in (10, 18, 16, 14, 0)]


# ----------------------------------------------------------------------------------------------------------
# The committed data is regenerable

def test_bundled_run_on_three_problems_reproduces_the_committed_lines():
    pytest.importorskip("sandbox")
    import data
    wanted = ["HumanEval/0", "HumanEval/2", "HumanEval/12"]  # train, heldout, train with runtime errors
    problems = [p for p in data.humaneval_problems() if p.problem_id in wanted]
    candidates = mp.bundled_candidates(problems, mutants_per_problem=24, seed=0)  # the command's defaults
    scored, dropped, pairs = mp.make_pairs(problems, candidates, max_pairs_per_problem=16, seed=0, workers=2,
                                           test_timeout_s=2.0, progress=False)
    line = lambda r: json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n"  # noqa: E731, as write_jsonl

    def committed(name):
        with open(os.path.join(ROOT, "data", name), encoding="utf-8") as f:
            return [l for l in f if json.loads(l)["problem_id"] in wanted]

    assert [line(c) for c in scored] == committed("humaneval_candidates.jsonl")
    assert [line(p) for p in pairs if p["problem_id"] != "HumanEval/2"] == committed("humaneval_pairs_train.jsonl")
    assert [line(p) for p in pairs if p["problem_id"] == "HumanEval/2"] == committed("humaneval_pairs_heldout.jsonl")
    assert sum(p["problem_id"] == "HumanEval/0" for p in pairs) == 16 and not dropped
    assert {c["verdict"] for c in scored} >= {"passed", "failed", "runtime_error"}
    assert all(c["verdict"] == "passed" for c in scored if c["is_reference"])


# ----------------------------------------------------------------------------------------------------------
# Execution

def test_cpu_time_limit_turns_endless_loops_into_timeouts():
    pytest.importorskip("sandbox")
    import data
    import sandbox
    tests = sandbox.CallTests("f", ["assert candidate(1) == 2", "assert candidate(2) == 3"])
    problem = data.Problem("p", "Q", tests, entry_point="f", split="train")
    loops = "def f(x):\n    while x == 2:\n        pass\n    return x + 1\n"
    swallows = ("def f(x):\n    while x == 2:\n        try:\n            while True:\n                pass\n"
                "        except BaseException:\n            pass\n    return x + 1\n")
    candidates = [{"problem_id": "p", "code": c} for c in ("def f(x):\n    return x + 1\n", loops, swallows)]
    scored = mp.execute([problem], candidates, workers=2, test_timeout_s=0.2, progress=False)
    assert [(c["verdict"], c["pass_rate"]) for c in scored] == [("passed", 1.0), ("timeout", 0.5), ("timeout", 0.5)]


def test_command_on_own_problems_and_candidates(tmp_path):
    """Call-based and stdin/stdout problems from files, a duplicate, a syntax error; the files it writes."""
    pytest.importorskip("sandbox")
    import subprocess
    import sys
    problems = [{"problem_id": "add", "question": "Add.", "entry_point": "add", "split": "train",
                 "tests": ["assert candidate(1, 2) == 3", "assert candidate(0, 0) == 0"]},
                {"problem_id": "echo", "question": "Echo.", "split": "heldout", "inputs": ["a\n", "b\n"],
                 "outputs": ["a\n", "b\n"]}]
    candidates = [{"problem_id": "add", "code": "def add(a, b):\n    return a + b\n"},
                  {"problem_id": "add", "code": "def add(a, b):  # same\n    return a+b\n"},
                  {"problem_id": "add", "code": "def add(a, b):\n    return a * b\n"},
                  {"problem_id": "add", "code": "def add(a, b)\n    return a + b\n"},
                  {"problem_id": "echo", "code": "print(input())\n"},
                  {"problem_id": "echo", "code": "print('a')\n"}]
    for name, records in (("problems.jsonl", problems), ("candidates.jsonl", candidates)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    out = subprocess.run([sys.executable, "make_pairs.py", "--problems", str(tmp_path / "problems.jsonl"),
                          "--candidates", str(tmp_path / "candidates.jsonl"), "--out", str(tmp_path / "out"),
                          "--name", "t"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"duplicates dropped +1 +0 +1\n", out.stdout) and re.search(r"pairs +2 +1 +3\n", out.stdout)

    def read(name):
        return [json.loads(l) for l in open(tmp_path / "out" / name)]
    scored = read("t_candidates.jsonl")
    assert [(c["problem_id"], c["verdict"], c["pass_rate"]) for c in scored] == [
        ("add", "passed", 1.0), ("add", "failed", 0.5), ("add", "syntax_error", 0.0),
        ("echo", "passed", 1.0), ("echo", "failed", 0.5)]
    assert sorted((p["code_neg"], p["neg_verdict"]) for p in read("t_pairs_train.jsonl")) == [
        ("def add(a, b)\n    return a + b\n", "syntax_error"), ("def add(a, b):\n    return a * b\n", "failed")]
    assert [(p["question_content"], p["neg_pass_rate"]) for p in read("t_pairs_heldout.jsonl")] == [("Echo.", 0.5)]


def test_pairs_from_policy_rollouts_on_livecodebench_rows(tmp_path):
    """`--samples`: a `generate` file on the LiveCodeBench fixture (stdin and functional problems); a
    duplicate (comments aside) is dropped, a response without a code block is left out, every passing
    response is paired with every failing one of its problem, in the release schema."""
    pytest.importorskip("sandbox")
    import subprocess
    import sys

    def fenced(code):
        return f"Thinking done.\n```python\n{code}```\n"
    add = "a, b = map(int, input().split())\nprint(a + b)\n"
    samples = [
        {"problem_id": "abc000_a", "question": "Q1", "responses": [
            fenced(add), fenced(add.replace("\n", "  # sum\n", 1)), fenced("print(3)\n"), "No idea, sorry."]},
        {"problem_id": "9001", "question": "Q2", "responses": [
            fenced("class Solution:\n    def maxPairSum(self, nums):\n        return 2 * max(nums)\n"),
            fenced("class Solution:\n    def maxPairSum(self, nums):\n        a, b = sorted(nums)[-2:]\n        return a + b\n")]}]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    out = subprocess.run([sys.executable, "make_pairs.py", "--samples", str(tmp_path / "samples.jsonl"), "--problems",
                          os.path.join(ROOT, "tests", "fixtures", "livecodebench.jsonl"), "--out", str(tmp_path / "out")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "5 candidates from 2 problems' rollouts; 1 responses without a single parsable code block left out" in out.stdout
    assert re.search(r"duplicates dropped +1 +1\n", out.stdout)  # both fixture problems hash to train
    pairs = [json.loads(line) for line in open(tmp_path / "out" / "rollouts_pairs_train.jsonl")]
    assert [(p["problem_id"], p["question_content"], p["code_pos"], p["code_neg"], p["neg_pass_rate"]) for p in pairs] == [
        ("abc000_a", "Q1", add, "print(3)\n", 0.3333),
        ("9001", "Q2", samples[1]["responses"][1].split("```python\n")[1].split("```")[0],
         samples[1]["responses"][0].split("```python\n")[1].split("```")[0], 0.3333)]
    scored = [json.loads(line) for line in open(tmp_path / "out" / "rollouts_candidates.jsonl")]
    assert [c["verdict"] for c in scored] == ["passed", "failed", "failed", "passed"]
