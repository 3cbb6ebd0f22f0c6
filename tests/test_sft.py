"""sft.py: the response-token loss, resume = uninterrupted, and the point of it: a warm-started tiny policy
that GRPO then improves with the execution reward, and whose responses the reward model rewards.

Run: HF_HUB_OFFLINE=1 python -m pytest -q tests/test_sft.py
"""
import json
import os
import subprocess
import sys

import pytest
import torch

import model as M
from data import humaneval_problems
from sft import DEMO_PROBLEMS, demo_problems, demo_records, tokenize, without_docstrings
from tokenizer import load_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBLEMS = ["HumanEval/53"]  # add(x, y): a one-line solution, so the test stays fast
WRONG = {"HumanEval/53": ("x + y", "x - y")}


def run(script, *args):
    # one process: every core (the CPU's LM head over 151,936 tokens is most of these runs' time)
    env = {**os.environ, "OMP_NUM_THREADS": str(os.cpu_count() or 1), "PYTHONPATH": ROOT}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script), *args], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def metrics(out):
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A problem with its tests, and SFT records that answer it with its reference and with a failing
    mutant equally often: a warm start that passes about half the time, with room to improve."""
    root = tmp_path_factory.mktemp("sft")
    by_id = {p.problem_id: p for p in humaneval_problems("all")}
    problems, records = [], []
    for pid in PROBLEMS:
        p = by_id[pid]
        problems.append({"problem_id": pid, "question": p.question, "entry_point": p.tests.entry_point,
                         "tests": p.tests.tests, "preamble": p.tests.preamble})
        good = without_docstrings(p.reference)
        bad = good.replace(*WRONG[pid])
        assert bad != good
        for code in (good, bad):
            records.append({"question": p.question, "response": f"Here is the code:\n```python\n{code}\n```"})
    (root / "problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    (root / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    M.save_model(M.init_weights(M.Qwen3(M.tiny_config()), seed=0), str(root / "init"))
    return root


def sft_args(toy, out, *extra):
    return ["--model", str(toy / "init"), "--data", str(toy / "sft.jsonl"), "--out", str(out), "--epochs", "80",
            "--global-batch", "2", "--lr", "2e-2", "--warmup", "0.05", *extra]


def test_demo_answers_the_train_problems_with_the_shortest_solutions():
    train = humaneval_problems("train")
    assert len(demo_records(0)) == len(train)
    chosen = demo_problems()
    assert len(chosen) == len(demo_records()) == DEMO_PROBLEMS and all(p.split == "train" for p in chosen)
    ids = {p.problem_id for p in chosen}
    longest_chosen = max(len(without_docstrings(p.reference)) for p in chosen)
    assert all(len(without_docstrings(p.reference)) >= longest_chosen for p in train if p.problem_id not in ids)
    assert [r["question"] for r in demo_records()] == [p.question for p in chosen]


def test_targets_are_the_response_and_the_stop_token():
    tok = load_tokenizer()
    records = demo_records(0)
    assert all("```python\n" in r["response"] and r["response"].count("```") == 2 for r in records)
    data = tokenize(records[:3], tok, max_len=4096, thinking=True)
    for r, d in zip(records, data):
        assert d["prompt"] == tok.encode(tok.render_prompt(r["question"]))
        assert d["response"] == tok.encode(r["response"]) + [tok.token_to_id("<|im_end|>")]
    cut = tokenize(records[:1], tok, max_len=len(data[0]["prompt"]) + 5, thinking=True)
    assert cut[0]["response"] == data[0]["response"][:5]


def test_sft_resume_equals_uninterrupted_and_lowers_the_loss(toy):
    full, cut = toy / "full", toy / "cut"
    run("sft.py", *sft_args(toy, full, "--epochs", "3", "--global-batch", "1", "--dtype", "float64"))
    run("sft.py", *sft_args(toy, cut, "--epochs", "3", "--global-batch", "1", "--dtype", "float64", "--stop-at", "3"))
    run("sft.py", *sft_args(toy, cut, "--epochs", "3", "--global-batch", "1", "--dtype", "float64", "--resume"))
    a, b = metrics(full), metrics(cut)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], abs=1e-9)
    assert a[-1]["loss"] < a[0]["loss"]
    exported = M.load_model(str(full / "final"), dtype=torch.float64)
    assert exported.head_name == "lm_head" and os.path.exists(full / "final" / "tokenizer.json")


def test_grpo_exec_improves_a_warm_started_policy(toy):
    run("sft.py", *sft_args(toy, toy / "warm"))
    assert metrics(toy / "warm")[-1]["loss"] < 0.1  # the records are learned, up to the 50/50 choice
    out = toy / "rl_exec"
    # step 1 runs at lr 0 (verl's warm-up), so steps 1-2 sample the warm start itself
    run("train_rl.py", "--policy", str(toy / "warm" / "final"), "--data", str(toy / "problems.jsonl"), "--out", str(out),
        "--reward", "exec", "--prompts-per-step", "1", "--group-size", "16", "--max-new-tokens", "40", "--steps", "5",
        "--lr", "2e-3", "--warmup-steps", "1", "--mini-batches", "1", "--exec-workers", "1")
    rates = [r["test_pass_rate"] for r in metrics(out)]
    assert metrics(out)[0]["valid_rate"] > 0.8  # the warm start writes one parsable block
    assert 0.15 < sum(rates[:2]) / 2 < 0.85, rates  # it passes about half the time ...
    assert sum(rates[-3:]) / 3 > sum(rates[:2]) / 2 + 0.2, rates  # ... and GRPO makes it pass more often


def test_reward_model_rewards_the_warm_started_policy(toy):
    if not os.path.exists(toy / "warm" / "final"):
        run("sft.py", *sft_args(toy, toy / "warm"))
    M.save_model(M.init_weights(M.Qwen3(M.tiny_config(), head="score"), std=0.3, seed=1), str(toy / "rm"))
    out = toy / "rl_rm"
    run("train_rl.py", "--policy", str(toy / "warm" / "final"), "--rm", str(toy / "rm"), "--data",
        str(toy / "problems.jsonl"), "--out", str(out), "--prompts-per-step", "1", "--group-size", "4",
        "--max-new-tokens", "48", "--steps", "1", "--exec-workers", "1")
    first = metrics(out)[0]
    assert first["valid_rate"] > 0.5 and first["reward_mean"] > 0.0
