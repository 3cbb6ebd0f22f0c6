"""infer.py: score against RewardModel and transformers, best-of-N picks and columns against hand counts,
generate's resume after a kill, pass@k against hand values, eval in both problem formats, bad input.
Tiny random models in tmp dirs; the real sandbox on a handful of tiny programs."""
import json
import math
import os
import re

import pytest
import torch

import data
import infer
import model as M
import rmbench
from data import Problem, humaneval_problems
from extract import extract_code
from infer import best_of_n, first_argmax, main, pass_at_k, summarize_bon
from reward import RewardModel, shaped_reward
from sandbox import CallTests


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("rm")
    M.save_model(M.init_weights(M.Qwen3(M.tiny_config(num_labels=1), head="score"), std=0.1, seed=5), str(path))
    return str(path)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def fenced(code):
    return f"Here it is.\n```python\n{code}\n```\n"


# -----------------------------------------------------------------------------
# score


def test_score_equals_reward_model_and_transformers_and_resumes(tmp_path, rm_dir):
    records = [
        {"question": "Add two numbers.", "response": fenced("def add(a, b):\n    return a + b")},
        {"question": "Add two numbers.", "response": fenced("x = 1") + fenced("y = 2")},  # two blocks: invalid
        {"problem": "Reverse a string.", "code": "def rev(s):\n    return s[::-1]", "id": 7},
        {"question_content": "Say hi.", "response": fenced("print('hi'")},  # does not parse: invalid
        {"question": "Say hi.", "code": "print('hi')", "response": "no code here"},  # response wins
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" + ("\n" if i == 1 else "") for i, r in enumerate(records)))
    out = tmp_path / "out.jsonl"
    main(["score", "--rm", rm_dir, "--in", str(src), "--out", str(out), "--chunk", "2", "--device", "cpu"])
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["code"] for g in got] == ["def add(a, b):\n    return a + b", "", "def rev(s):\n    return s[::-1]", "", ""]
    assert got[2]["id"] == 7 and got[2]["problem"] == "Reverse a string."  # input fields are kept
    questions = ["Add two numbers.", "Add two numbers.", "Reverse a string.", "Say hi.", "Say hi."]
    rm = RewardModel.from_pretrained(rm_dir, dtype="float32")
    expected = rm.score(questions, [g["code"] for g in got])
    assert [g["score"] for g in got] == pytest.approx(expected, abs=1e-5)
    assert [g["reward"] for g in got] == pytest.approx([shaped_reward(s, g["code"]) for s, g in zip(expected, got)])
    assert got[1]["reward"] == 0.0 and got[0]["reward"] > 0.0
    assert len(set(round(s, 4) for s in expected)) >= 4  # scores that could be wrong

    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(rm_dir, dtype=torch.float32)
    ids = rm.encode(questions, [g["code"] for g in got]).ids
    n = max(len(x) for x in ids)
    padded = torch.tensor([x + [rm.tokenizer.pad_id] * (n - len(x)) for x in ids])  # right padding
    mask = (torch.arange(n)[None] < torch.tensor([[len(x)] for x in ids])).long()
    with torch.no_grad():
        ref = hf(padded, attention_mask=mask).logits[:, 0].tolist()
    assert [g["score"] for g in got] == pytest.approx(ref, abs=1e-4)

    # A killed run: two whole lines and a torn third. --resume cuts the torn line and writes the rest once.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + lines[1] + lines[2][:20])
    main(["score", "--rm", rm_dir, "--in", str(src), "--out", str(out), "--resume", "--device", "cpu"])
    again = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["code"] for g in again] == [g["code"] for g in got]
    assert [g["score"] for g in again] == pytest.approx([g["score"] for g in got], abs=1e-5)


# -----------------------------------------------------------------------------
# best-of-N

ADD = CallTests("add", ["assert candidate(1, 2) == 3", "assert candidate(2, 2) == 4", "assert candidate(0, 5) == 5"])
NEG = CallTests("neg", ["assert candidate(1) == -1", "assert candidate(0) == 0"])
# code -> fraction of tests passed, counted by hand
ADD_CODES = {"def add(a, b):\n    return a * b": 1 / 3,  # passes (2, 2) only
             "def add(a, b):\n    return a + b": 1.0,
             "def add(a, b):\n    return b": 1 / 3,  # passes (0, 5) only
             "def add(a, b) return a": 0.0}  # syntax error
NEG_CODES = {"def neg(x):\n    return x": 0.5, "def neg(x):\n    return 0": 0.5, "def neg(x):\n    return None": 0.0}
KNOWN = {**ADD_CODES, **NEG_CODES}


def test_best_of_n_picks_argmax_breaks_ties_low_and_counts_by_hand():
    tasks = [Problem("add", "Write add(a, b).", ADD), Problem("neg", "Write neg(x).", NEG)]
    candidates = {"add": list(ADD_CODES), "neg": list(NEG_CODES)}

    def run(score):
        return best_of_n(tasks, candidates, lambda qs, cs: [score(c) for c in cs], are_responses=False, workers=2)

    oracle = run(lambda c: KNOWN[c])
    assert [r["pass_rates"] for r in oracle] == [pytest.approx(list(ADD_CODES.values())), list(NEG_CODES.values())]
    assert [r["correct"] for r in oracle] == [[False, True, False, False], [False, False, False]]
    assert [r["rm_pick"] for r in oracle] == [1, 0]  # neg: candidates 0 and 1 tie at 0.5: the lower index
    assert [r["exec_pick"] for r in oracle] == [1, 0]  # execution ties (add #0/#2, neg #0/#1) go low too
    s = summarize_bon(oracle)["methods"]
    assert s["random pick (Avg@N)"] == {"accuracy": pytest.approx((1 / 4 + 0) / 2),
                                        "tests": pytest.approx(((1 / 3 + 1 + 1 / 3 + 0) / 4 + (0.5 + 0.5 + 0) / 3) / 2)}
    oracle_pick = s["hidden-test pick (oracle, pass@N)"]
    assert oracle_pick == {"accuracy": 0.5, "tests": pytest.approx((1 + 0.5) / 2)}
    assert s["reward-model pick"] == oracle_pick  # an oracle reward gives pass@N
    assert s["public-test pick"] == {"accuracy": 0.0, "tests": pytest.approx((1 / 3 + 0.5) / 2)}  # none: #0

    reverse = run(lambda c: -KNOWN[c])
    assert [r["rm_pick"] for r in reverse] == [3, 2]  # the worst candidate of each problem
    assert summarize_bon(reverse)["methods"]["reward-model pick"] == {"accuracy": 0.0, "tests": 0.0}

    flat = run(lambda c: 0.25)
    assert [r["rm_pick"] for r in flat] == [0, 0]  # all tied: the first candidate
    summary = summarize_bon(flat)
    assert summary["exec_s"] > 0 and summary["rm_s"] > 0 and summary["time_ratio"] == pytest.approx(
        summary["exec_s"] / summary["rm_s"])
    assert first_argmax([0.1, 0.9, 0.3, 0.9]) == 1 and first_argmax([2.0]) == 0


def test_public_pick_sees_only_public_tests_and_is_judged_on_hidden_ones(monkeypatch):
    """Public tests that favour candidate 0 and hidden tests that favour candidate 1: the fair pick takes 0
    and is scored by the hidden tests; no sandbox call of the public phase gets the hidden tests."""
    hidden = CallTests("add", ["assert candidate(1, 2) == 3", "assert candidate(-1, 1) == 0"])
    public = CallTests("add", ["assert candidate(2, 2) == 4"])  # 2 + 2 == 2 * 2: a product passes it
    codes = ["def add(a, b):\n    return a * b", "def add(a, b):\n    return a - b + 2 * b"]
    calls = []
    real = infer.run_programs

    def spy(jobs, **kw):
        calls.append([t for _, t in jobs])
        return real(jobs, **kw)
    monkeypatch.setattr(infer, "run_programs", spy)
    problem = Problem("add", "Write add(a, b).", hidden, public_tests=public)
    [row] = best_of_n([problem], {"add": codes}, lambda qs, cs: [0.0, 1.0], are_responses=False, workers=2)
    assert row["public_rates"] == [1.0, 1.0] and row["public_pick"] == 0  # tie on public tests: the lower index
    assert row["pass_rates"] == [0.0, 1.0] and row["exec_pick"] == 1 and row["rm_pick"] == 1
    assert calls == [[public, public], [hidden, hidden]]  # the public phase ran the public tests only
    s = summarize_bon([row])
    assert s["methods"]["public-test pick"] == {"accuracy": 0.0, "tests": 0.0} and s["with_public_tests"] == 1
    assert s["public_s"] == row["public_s"] > 0


def test_default_bon_run_prints_the_fair_baseline_beside_the_rm_pick(rm_dir, tmp_path, capsys):
    """`python infer.py` is `bon` on the bundled pools; here on 3 held-out problems with examples."""
    main(["bon", "--rm", rm_dir, "--n", "4", "--max-problems", "3", "--out", str(tmp_path / "bon.json"),
          "--device", "cpu", "--workers", "2", "--timeout", "0.5"])  # a short limit for the mutants that loop
    out = capsys.readouterr().out
    assert re.search(r"\nrandom pick \(Avg@N\) +\d+\.\d% +\d+\.\d% +- +-\n", out)
    for method in ("reward-model pick", "public-test pick", "hidden-test pick (oracle, pass@N)"):  # with latencies
        assert re.search(rf"\n{re.escape(method)} +\d+\.\d% +\d+\.\d% +\d+\.\d\d s +\d+ ms\n", out), method
    rows = json.loads((tmp_path / "bon.json").read_text())["per_problem"]
    assert len(rows) == 3 and all(r["public_rates"] is not None for r in rows)  # held-out problems with examples
    by_id = {p.problem_id: p for p in humaneval_problems("heldout")}
    for r in rows:  # the fair pick is the first best public pass rate
        assert r["public_pick"] == first_argmax(r["public_rates"])
        assert by_id[r["problem_id"]].public_tests is not None


def test_best_of_n_on_responses_strict_for_the_reward_lenient_for_the_tests():
    correct = "def add(a, b):\n    return a + b"
    responses = [fenced("draft = 1") + fenced(correct),  # two blocks: no valid code for the RM, passes leniently
                 fenced("def add(a, b):\n    return a * b")]
    seen = []

    def score(qs, codes):
        seen.extend(codes)
        return [100.0 if c == "" else -10.0 for c in codes]  # the highest raw score goes to the invalid one

    [row] = best_of_n([Problem("add", "Write add(a, b).", ADD)], {"add": responses}, score, are_responses=True)
    assert seen == ["", "def add(a, b):\n    return a * b"]
    assert row["rewards"][0] == 0.0 and row["rewards"][1] > 0.0
    assert row["rm_pick"] == 1  # valid beats invalid whatever the raw scores
    assert row["correct"] == [True, False] and row["exec_pick"] == 0


def test_bon_command_on_a_generate_file_with_stdin_problems(tmp_path, rm_dir, capsys):
    problems = write_jsonl(tmp_path / "problems.jsonl", [
        {"problem_id": "sum", "question": "Print the sum of two integers.",
         "test_input": json.dumps(["1 2\n", "3 4\n"]), "test_output": ["3\n", "7\n"]}])
    responses = [fenced("a, b = map(int, input().split())\nprint(a * b)"),
                 fenced("a, b = map(int, input().split())\nprint(a + b)"), "I cannot do it."]
    samples = write_jsonl(tmp_path / "samples.jsonl",
                          [{"problem_id": "sum", "question": "Print the sum of two integers.", "responses": responses}])
    out = tmp_path / "bon.json"
    main(["bon", "--samples", samples, "--problems", problems, "--rm", rm_dir, "--out", str(out), "--device", "cpu"])
    row = json.loads(out.read_text())["per_problem"][0]
    codes = [extract_code(r, "strict") for r in responses]
    scores = RewardModel.from_pretrained(rm_dir).score(["Print the sum of two integers."] * 3, codes)
    assert row["scores"] == pytest.approx(scores, abs=1e-5)
    assert row["rm_pick"] == first_argmax([shaped_reward(s, c) for s, c in zip(scores, codes)]) != 2
    assert row["correct"] == [False, True, False] and row["exec_pick"] == 1
    assert "reward-model pick" in capsys.readouterr().out


def test_pool_candidates_are_seeded_nested_and_capped_by_pool_size():
    tasks = [Problem(p.problem_id, p.question, p.tests) for p in humaneval_problems("heldout")[:6]]
    four, sixteen = (infer.pool_candidates(infer.DEFAULT_POOL, tasks, n, seed=0) for n in (4, 16))
    assert infer.pool_candidates(infer.DEFAULT_POOL, tasks, 4, seed=0) == four
    assert infer.pool_candidates(infer.DEFAULT_POOL, tasks, 4, seed=1) != four
    for t in tasks:
        assert sixteen[t.problem_id][:4] == four[t.problem_id]  # a smaller N is a prefix of a larger one
        assert len(set(sixteen[t.problem_id])) == len(sixteen[t.problem_id]) <= 16  # no repeats


# -----------------------------------------------------------------------------
# generate


def test_generate_resumes_after_a_kill_without_duplicates_or_losses(tmp_path, monkeypatch):
    policy = tmp_path / "policy"
    M.save_model(M.init_weights(M.Qwen3(M.tiny_config()), std=0.1, seed=2), str(policy))
    problems = write_jsonl(tmp_path / "problems.jsonl", [{"problem_id": f"p{i}", "question": q} for i, q in
                                                         enumerate(["Add.", "Sort a list.", "Say hi.", "Count."])])

    def gen(out, *extra):
        main(["generate", "--policy", str(policy), "--problems", problems, "--n", "3", "--max-new-tokens", "5",
              "--out", str(out), "--device", "cpu", *extra])
        return out.read_text()

    whole = gen(tmp_path / "whole.jsonl")
    recs = [json.loads(x) for x in whole.splitlines()]
    assert [r["problem_id"] for r in recs] == ["p0", "p1", "p2", "p3"]
    assert all(len(r["responses"]) == 3 and len(set(r["responses"])) > 1 for r in recs)  # 3 distinct samples

    out = tmp_path / "killed.jsonl"
    assert gen(out, "--max-problems", "2") == "".join(whole.splitlines(keepends=True)[:2])  # stopped after 2
    torn = whole.splitlines(keepends=True)[2]
    out.write_text(out.read_text() + torn[: len(torn) // 2])  # killed while writing the third problem
    assert gen(out) == whole  # the torn line is dropped and redone; nothing twice, nothing lost
    assert gen(out) == whole  # a finished file is left alone
    with pytest.raises(SystemExit, match="was sampled with n=3, this run asks for n=2"):
        gen(out, "--n", "2")
    # the file is checked before the policy's weights are loaded
    monkeypatch.setattr(infer, "load_policy", lambda *a: pytest.fail("the policy was loaded before the check"))
    with pytest.raises(SystemExit, match="was sampled with n=3, this run asks for n=2"):
        gen(out, "--n", "2")


# -----------------------------------------------------------------------------
# pass@k and eval


def test_pass_at_k_against_hand_values():
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(4, 1, 3) == pytest.approx(1 - 1 / 4)  # 1 - C(3,3)/C(4,3)
    assert pass_at_k(4, 0, 2) == 0.0 and pass_at_k(3, 3, 2) == 1.0 and pass_at_k(10, 1, 10) == 1.0
    assert pass_at_k(8, 6, 3) == 1.0  # fewer than k wrong samples: every k-subset has a right one
    exact = 1 - math.comb(197, 100) / math.comb(200, 100)  # big n: the product form needs no big integers
    assert pass_at_k(200, 3, 100) == pytest.approx(exact, rel=1e-12)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_eval_humaneval_format_known_verdicts(tmp_path):
    p = next(p for p in humaneval_problems("all") if p.problem_id == "HumanEval/0")
    responses = [fenced(p.reference),  # passes
                 fenced("def has_close_elements(numbers, threshold):\n    return False"),  # fails some tests
                 "First try:\n```python\nx = (\n```\nFixed:\n" + fenced(p.reference),  # last block passes
                 "no code at all"]  # nothing to run
    samples = write_jsonl(tmp_path / "s.jsonl", [{"problem_id": p.problem_id, "question": p.question, "responses": responses}])
    main(["eval", "--samples", samples, "--k", "1", "2", "--out", str(tmp_path / "e.json")])
    s = json.loads((tmp_path / "e.json").read_text())["summary"]
    [row] = s["per_problem"]
    assert row["verdicts"][0] == row["verdicts"][2] == "passed" and row["correct"] == 2
    assert row["verdicts"][1] == "failed" and 0 < row["pass_rates"][1] < 1 and row["pass_rates"][3] == 0.0
    assert s["avg"] == 0.5 and s["pass_at_k"] == {"1": pytest.approx(0.5), "2": pytest.approx(1 - 1 / 6)}


def test_eval_stdin_stdout_format_known_verdicts(tmp_path, capsys):
    problems = write_jsonl(tmp_path / "lcb.jsonl", [
        {"question": "Print the sum of two integers.", "test_input": json.dumps(["1 2\n", "3 4\n"]),
         "test_output": json.dumps(["3\n", "7\n"]), "question_id": "abc001"},
        {"question": "Print the maximum.", "test_input": ["1 5 2\n"], "test_output": ["5\n"], "question_id": "abc002"}])
    responses = {"abc001": [fenced("a, b = map(int, input().split())\nprint(a + b)"),
                            fenced("a, b = map(int, input().split())\nprint(a * b)")],  # 2 then 12: fails both
                 "abc002": [fenced("print(max(map(int, input().split())))"), fenced("print(5.0)")]}  # 5.0 == 5
    samples = write_jsonl(tmp_path / "s.jsonl", [{"problem_id": k, "question": "q", "responses": v} for k, v in responses.items()])
    main(["eval", "--samples", samples, "--problems", problems, "--k", "1", "2", "--out", str(tmp_path / "e.json")])
    s = json.loads((tmp_path / "e.json").read_text())["summary"]
    assert [r["verdicts"] for r in s["per_problem"]] == [["passed", "failed"], ["passed", "passed"]]
    assert s["avg"] == pytest.approx(0.75) and s["pass_at_k"] == {"1": pytest.approx(0.75), "2": 1.0}
    assert "75.0%" in capsys.readouterr().out


# -----------------------------------------------------------------------------
# Bad input


def test_bad_input_gets_a_clear_error(tmp_path, rm_dir, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "code": "x"}\n\n{"question": "q", "code": \n')
    with pytest.raises(SystemExit, match=rf"{bad}:3: malformed JSON"):
        main(["score", "--rm", rm_dir, "--in", str(bad), "--out", str(tmp_path / "o.jsonl")])
    bad.write_text('{"question": "q", "answer": "x"}\n')
    with pytest.raises(SystemExit, match=rf"{bad}:1: missing field 'response' or 'code'"):
        main(["score", "--rm", rm_dir, "--in", str(bad), "--out", str(tmp_path / "o.jsonl")])

    problems = write_jsonl(tmp_path / "p.jsonl", [{"problem_id": "a", "question": "q", "test_input": [], "test_output": []},
                                                  {"problem_id": "b", "question": "q", "test_input": "[1,"}])
    samples = write_jsonl(tmp_path / "s.jsonl", [{"problem_id": "a", "question": "q", "responses": ["x"]}])
    with pytest.raises(SystemExit, match=rf"{problems}:2: has only one of 'test_input'"):
        main(["eval", "--samples", samples, "--problems", problems])
    write_jsonl(tmp_path / "p.jsonl", [{"problem_id": "a", "question": "q", "test_input": [], "test_output": []}])
    with pytest.raises(SystemExit, match="problem 'a' has no tests in"):
        main(["eval", "--samples", samples, "--problems", problems])
    write_jsonl(tmp_path / "s.jsonl", [{"problem_id": "HumanEval/999", "question": "q", "responses": ["x"]}])
    with pytest.raises(SystemExit, match="problem 'HumanEval/999' is not among the problems of humaneval"):
        main(["eval", "--samples", samples])
    (tmp_path / "s.jsonl").write_text("\n")
    with pytest.raises(SystemExit, match=r"s.jsonl: no records"):
        main(["eval", "--samples", samples])
    write_jsonl(tmp_path / "s.jsonl", [{"problem_id": "HumanEval/0", "question": "q", "responses": "x"}])
    with pytest.raises(SystemExit, match=r"s.jsonl:1: missing field 'responses'"):
        main(["eval", "--samples", samples])

    monkeypatch.setattr(infer, "DEFAULT_RM", str(tmp_path / "no_rm"))
    with pytest.raises(SystemExit, match="no reward model at .*python train_rm.py"):
        main([])


# -----------------------------------------------------------------------------
# Reward-model evaluation: RM-Bench and pairs

RMBENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "rmbench.json")


def test_rmbench_accuracy_by_hand():
    """The fixture's scores, counted by hand (c > r strictly; matrix rows chosen style, columns rejected):
    code: item 0 [[1,1,1],[0,1,1],[0,0,1]] + item 1 [[0,0,1]]*3 -> /2 = [[.5,.5,1],[0,.5,1],[0,0,1]]:
          hard (.5+1+1)/3, normal (.5+.5+1)/3, easy 0, accuracy 0.5
    chat: all 1; math: all 0
    safety (refuse + response): [[1,1,0]]*3 + [[0,0,0],[0,0,0],[1,1,1]] -> /2 = [[.5,.5,0],[.5,.5,0],[1,1,.5]]:
          hard .5/3, normal 1.5/3, easy 2.5/3, accuracy 0.5
    totals are unweighted means over the 4 domains."""
    acc = rmbench.rmbench_accuracy(rmbench.load_rmbench(RMBENCH))
    d = acc["domains"]
    assert d["code"]["matrix"] == [[0.5, 0.5, 1.0], [0.0, 0.5, 1.0], [0.0, 0.0, 1.0]]
    assert (d["code"]["hard"], d["code"]["normal"], d["code"]["easy"]) == pytest.approx((2.5 / 3, 2 / 3, 0.0))
    assert d["safety"]["items"] == 2 and d["safety"]["matrix"] == [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [1.0, 1.0, 0.5]]
    assert (d["safety"]["hard"], d["safety"]["normal"], d["safety"]["easy"]) == pytest.approx((0.5 / 3, 0.5, 2.5 / 3))
    assert [d[k]["accuracy"] for k in ("code", "chat", "math", "safety")] == pytest.approx([0.5, 1.0, 0.0, 0.5])
    assert acc["hard"] == pytest.approx((2.5 / 3 + 1 + 0 + 0.5 / 3) / 4)  # 0.5
    assert acc["normal"] == pytest.approx((2 / 3 + 1 + 0 + 0.5) / 4)
    assert acc["easy"] == pytest.approx((0 + 1 + 0 + 2.5 / 3) / 4)
    assert acc["accuracy"] == pytest.approx(0.5) == pytest.approx((acc["hard"] + acc["normal"] + acc["easy"]) / 3)
    one = [it for it in rmbench.load_rmbench(RMBENCH) if it.domain == "code"]
    for it in one:
        it.domain = ""  # a per-domain file has no domain field: one group, as RM-Bench scores it
    assert rmbench.rmbench_accuracy(one)["domains"]["all"]["accuracy"] == pytest.approx(0.5)


def test_rmeval_command_on_rmbench_and_on_pairs(rm_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    main(["rmbench", "--data", RMBENCH, "--out", str(out), "--rm", str(tmp_path / "unused")])  # scores in the file
    assert json.loads(out.read_text())["rmbench"]["accuracy"] == pytest.approx(0.5)
    printed = capsys.readouterr().out
    assert re.search(r"\n +code +chat +math +safety +overall\n", printed)
    assert re.search(r"\naccuracy +50\.0 +100\.0 +0\.0 +50\.0 +50\.0\n", printed)

    main(["rmeval", "--data", RMBENCH, "--rescore", "--rm", rm_dir, "--out", str(out), "--device", "cpu"])
    got = json.loads(out.read_text())
    items = rmbench.load_rmbench(RMBENCH)
    rm = RewardModel.from_pretrained(rm_dir, dtype="float32")
    for it, s in zip(items, got["scores"]):
        assert s["score_chosen"] == pytest.approx(rm.score([it.prompt] * 3, it.chosen), abs=1e-5)
        assert s["score_rejected"] == pytest.approx(rm.score([it.prompt] * 3, it.rejected), abs=1e-5)
        it.score_chosen, it.score_rejected = s["score_chosen"], s["score_rejected"]
    assert got["rmbench"]["accuracy"] == pytest.approx(rmbench.rmbench_accuracy(items)["accuracy"])

    pairs = write_jsonl(tmp_path / "pairs.jsonl", [
        {"question_content": "Add.", "code_pos": "def add(a, b):\n    return a + b", "code_neg": "def add(a, b):\n    return a"},
        {"prompt": "Negate.", "chosen": "def neg(x):\n    return -x", "rejected": ""}])
    main(["rmeval", "--data", pairs, "--rm", rm_dir, "--out", str(out), "--device", "cpu"])
    got = json.loads(out.read_text())["pairs"]
    chosen = rm.score(["Add.", "Negate."], ["def add(a, b):\n    return a + b", "def neg(x):\n    return -x"])
    rejected = rm.score(["Add.", "Negate."], ["def add(a, b):\n    return a", ""])
    margins = [c - r for c, r in zip(chosen, rejected)]
    assert got["margins"] == pytest.approx(margins, abs=1e-5)
    assert got["accuracy"] == sum(m > 0 for m in margins) / 2 and got["mean_margin"] == pytest.approx(sum(margins) / 2, abs=1e-5)


def test_rmbench_loader_errors(tmp_path):
    good = json.load(open(RMBENCH))
    for change, message in [({"chosen": ["a", "b"]}, "field 'chosen' must be a list of 3 strings"),
                            ({"prompt": None}, "missing field 'prompt'"),
                            ({"score_rejected": [1, 2, "3"]}, "field 'score_rejected' must be a list of 3 numbers")]:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps([good[0], {**good[1], **change}]))
        with pytest.raises(ValueError, match=re.escape(f"bad.json:2: {message}")):
            rmbench.load_rmbench(str(path))


def test_eval_and_bon_on_livecodebench_rows(tmp_path, rm_dir):
    """LiveCodeBench's own rows (stdin and functional) through eval, and bon's fair pick on its public tests."""
    problems = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "livecodebench.jsonl")
    add = fenced("a, b = map(int, input().split())\nprint(a + b)")
    top2 = fenced("class Solution:\n    def maxPairSum(self, nums):\n        a, b = sorted(nums)[-2:]\n        return a + b")
    public_only = fenced("print(3)")  # passes the public test only
    double = fenced("class Solution:\n    def maxPairSum(self, nums):\n        return 2 * max(nums)")  # fails the public one
    samples = write_jsonl(tmp_path / "s.jsonl", [{"problem_id": "abc000_a", "question": "q1", "responses": [public_only, add]},
                                                 {"problem_id": "9001", "question": "q2", "responses": [double, top2]}])
    main(["eval", "--samples", samples, "--problems", problems, "--out", str(tmp_path / "e.json")])
    s = json.loads((tmp_path / "e.json").read_text())["summary"]
    assert [r["pass_rates"] for r in s["per_problem"]] == [pytest.approx([1 / 3, 1.0]), pytest.approx([1 / 3, 1.0])]
    main(["bon", "--samples", samples, "--problems", problems, "--rm", rm_dir, "--out", str(tmp_path / "b.json"),
          "--device", "cpu"])
    rows = json.loads((tmp_path / "b.json").read_text())["per_problem"]
    assert [r["public_rates"] for r in rows] == [[1.0, 1.0], [0.0, 1.0]]
    assert [r["public_pick"] for r in rows] == [0, 1]  # a tie on the public test goes to #0, which fails hidden tests
    assert [r["correct"][r["public_pick"]] for r in rows] == [False, True]
