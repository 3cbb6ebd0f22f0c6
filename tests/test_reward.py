"""reward.py: the loss against hand computations, shaping, packed scoring against one-by-one and HF."""
import math

import pytest
import torch

import model as M
from reward import (RewardModel, pairwise_loss, packed_last_token_scores, shaped_reward, summarize,
                    token_budget_batches, pair_metrics)
from tokenizer import load_tokenizer, render_reward_input


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def rm(tokenizer):
    cfg = M.tiny_config(num_labels=1)
    model = M.init_weights(M.Qwen3(cfg, head="score"), std=0.1, seed=11)
    return RewardModel(model, tokenizer, max_len=64)


# -----------------------------------------------------------------------------
# Loss


def test_bradley_terry_loss_and_gradient_by_hand():
    rc = torch.tensor([1.0, -0.5, 2.0], requires_grad=True)
    rr = torch.tensor([0.0, 0.5, 2.5], requires_grad=True)
    loss, metrics = pairwise_loss(rc, rr)
    d = [1.0, -1.0, -0.5]
    expected = sum(math.log(1 + math.exp(-x)) for x in d) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    # d/d r_c of -log sigmoid(r_c - r_r) = -(1 - sigmoid(d)) = -sigmoid(-d); mean over 3 pairs
    grad = [-1 / (1 + math.exp(x)) / 3 for x in d]
    assert rc.grad.tolist() == pytest.approx(grad, abs=1e-6)
    assert rr.grad.tolist() == pytest.approx([-g for g in grad], abs=1e-6)
    assert metrics["correct"] == 1.0 and metrics["margin"] == pytest.approx(-0.5)


def test_margin_and_centering_terms():
    rc = torch.tensor([1.0, 0.2], requires_grad=True)
    rr = torch.tensor([0.5, 0.4], requires_grad=True)
    loss, _ = pairwise_loss(rc, rr, margin=0.3, center_coef=0.1, reduction="sum")
    d = [0.5 - 0.3, -0.2 - 0.3]
    s = [1.5, 0.6]
    expected = sum(math.log(1 + math.exp(-x)) for x in d) + 0.1 * sum(x * x for x in s)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    grad_c = [-1 / (1 + math.exp(x)) + 0.2 * y for x, y in zip(d, s)]
    grad_r = [1 / (1 + math.exp(x)) + 0.2 * y for x, y in zip(d, s)]
    assert rc.grad.tolist() == pytest.approx(grad_c, abs=1e-6)
    assert rr.grad.tolist() == pytest.approx(grad_r, abs=1e-6)


def test_metrics_summary():
    sums = pair_metrics(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0]))
    out = summarize(sums)
    assert out["accuracy"] == 0.5 and out["margin"] == 0.0
    assert out["chosen_reward"] == 1.0 and out["rejected_reward"] == 1.0
    assert out["reward_std"] == pytest.approx(math.sqrt(0.5))  # values 2, 0, 1, 1 around mean 1


def test_shaped_reward():
    assert shaped_reward(3.0, "") == 0.0 and shaped_reward(-50.0, "") == 0.0
    assert shaped_reward(0.0, "x=1") == pytest.approx(math.log(2))
    assert shaped_reward(-3.0, "x=1") == pytest.approx(math.log1p(math.exp(-3.0)))
    assert shaped_reward(-30.0, "x=1") > 0.0  # valid always beats invalid
    assert shaped_reward(0.5, "x=1", "sigmoid") == pytest.approx(1 / (1 + math.exp(-0.5)))
    assert shaped_reward(-800.0, "x=1", "sigmoid") == 0.0  # no overflow
    assert shaped_reward(-2.0, "x=1", "raw") == -2.0 and shaped_reward(-2.0, "", "raw") == 0.0
    with pytest.raises(ValueError, match="unknown shaping"):
        shaped_reward(1.0, "x", "tanh")


# -----------------------------------------------------------------------------
# Packing


def test_token_budget_batches():
    lens = [5, 9, 3, 12, 4, 4]
    batches = token_budget_batches(lens, max_tokens=12)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(sum(lens[i] for i in b) <= 12 for b in batches)
    assert batches[0] == [3]  # fills the budget alone
    assert token_budget_batches([20, 1], 10) == [[0], [1]]  # longer than the budget: its own batch


def test_packed_scores_equal_one_by_one(rm, tokenizer):
    problems = ["Add two numbers.", "Reverse a string " * 30, "x", "Sort a list.", "FizzBuzz"]
    codes = ["def add(a, b):\n    return a + b", "def rev(s):\n    return s[::-1]", "", "sorted", "print(1)"]
    enc = rm.encode(problems, codes)
    full = [len(tokenizer.encode(render_reward_input(p, c))) for p, c in zip(problems, codes)]
    assert full[1] > rm.max_len and enc.truncated == 1  # one input is cut on the right
    assert [len(x) for x in enc.ids] == [min(n, rm.max_len) for n in full]
    alone = [packed_last_token_scores(rm.model, [ids]).item() for ids in enc.ids]
    with torch.no_grad():  # plain unpacked forward, score read at the last token
        plain = [rm.model(torch.tensor([ids]))[0, -1, 0].item() for ids in enc.ids]
    assert alone == pytest.approx(plain, abs=1e-5)
    for budget in (64, 100, 1000):  # 64 = max_len: the truncated input fills a micro-batch alone
        assert rm.score_tokens(enc.ids, max_tokens=budget) == pytest.approx(alone, abs=1e-5)
    assert rm.score(problems, codes) == pytest.approx(alone, abs=1e-5)
    assert len(set(round(s, 4) for s in alone)) == 5  # the scores are not all the same number


def test_scores_match_transformers_sequence_classification(rm, tmp_path):
    transformers = pytest.importorskip("transformers")
    M.save_model(rm.model, str(tmp_path))
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path), dtype=torch.float32)
    problems, codes = ["Add two numbers.", "Say hi."], ["def add(a, b): return a + b", "print('hi')"]
    enc = rm.encode(problems, codes)
    n = max(len(x) for x in enc.ids)
    pad = rm.tokenizer.pad_id
    ids = torch.tensor([x + [pad] * (n - len(x)) for x in enc.ids])  # right padding with <|endoftext|>
    with torch.no_grad():
        ref = hf(ids, attention_mask=(torch.arange(n)[None] < torch.tensor([[len(x)] for x in enc.ids])).long())
    assert rm.score(problems, codes) == pytest.approx(ref.logits[:, 0].tolist(), abs=1e-4)


def test_reward_model_from_causal_lm_and_from_reward_checkpoint(tmp_path, tokenizer):
    causal = M.init_weights(M.Qwen3(M.tiny_config(hidden_size=256, num_attention_heads=4, head_dim=64)), seed=1)
    M.save_model(causal, str(tmp_path / "lm"))
    rm = RewardModel.from_pretrained(str(tmp_path / "lm"))
    assert torch.equal(rm.model.model.norm.weight, causal.model.norm.weight)
    std = rm.model.score.weight.std().item()
    assert abs(std - 1 / math.sqrt(257)) < 0.2 / math.sqrt(257)  # the documented head init
    M.save_model(rm.model, str(tmp_path / "rm"))
    again = RewardModel.from_pretrained(str(tmp_path / "rm"))
    assert torch.equal(again.model.score.weight, rm.model.score.weight)
    assert again.score(["p"], ["c"]) == pytest.approx(rm.score(["p"], ["c"]), abs=1e-6)


# -----------------------------------------------------------------------------
# A sharded reward model, and the max_len a checkpoint records

SHARDED_DRIVER = """
import json, sys, torch, distributed
from reward import RewardModel
rank, world, device = distributed.setup()
rm = RewardModel.from_pretrained(sys.argv[1], dtype=torch.float64, max_len=48,
                                 shard=lambda model: distributed.shard(model, device))
questions = json.loads(sys.argv[2])
# rank 0 scores every input, in token budgets of 48 (several forwards); rank 1 none at all: it must still
# join every forward's all-gathers, or rank 0 would wait forever
mine = questions if rank == 0 else []
scores = rm.score(mine, ["def f():\\n    return " + str(i) for i in range(len(mine))], max_tokens=48)
if rank == 0:
    json.dump(scores, open(sys.argv[3], "w"))
distributed.teardown()
"""


def test_sharded_reward_model_scores_like_the_whole_one_with_ranks_out_of_step(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from reward import MAX_LEN_KEY, saved_max_len
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    M.save_model(M.init_weights(M.Qwen3(M.tiny_config(hidden_size=64, intermediate_size=128), head="score"),
                                std=0.3, seed=4), str(tmp_path / "rm"))
    (tmp_path / "driver.py").write_text(SHARDED_DRIVER)
    questions = [f"Return {i}." + " Please." * i for i in range(7)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(tmp_path / "driver.py"), str(tmp_path / "rm"), json.dumps(questions),
                           str(tmp_path / "scores.json")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    whole = RewardModel.from_pretrained(str(tmp_path / "rm"), dtype=torch.float64, max_len=48)
    expected = whole.score(questions, ["def f():\n    return " + str(i) for i in range(7)])
    assert json.load(open(tmp_path / "scores.json")) == pytest.approx(expected, abs=1e-9)
    # the checkpoint records no max_len: the default; one train_rm.py saved is read back
    assert RewardModel.from_pretrained(str(tmp_path / "rm")).max_len == saved_max_len({}) == 4096
    config = json.load(open(tmp_path / "rm" / "config.json"))
    json.dump({**config, MAX_LEN_KEY: 777}, open(tmp_path / "rm" / "config.json", "w"))
    assert RewardModel.from_pretrained(str(tmp_path / "rm")).max_len == 777
    assert RewardModel.from_pretrained(str(tmp_path / "rm"), max_len=100).max_len == 100
