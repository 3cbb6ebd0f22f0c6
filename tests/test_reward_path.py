"""The RL reward path on responses as real models write them and as the sampler returns them.

tests/golden/responses.jsonl (built by tests/golden/build.py) holds 547 chat answers around HumanEval
reference solutions and failing mutants, in the shapes Qwen3 chat and thinking models emit. Each is
tokenized with the real Qwen3 tokenizer and ends with <|im_end|> exactly as generate() returns it (no stop
token where the response was cut at the token limit), then goes through train_rl's own path: sampler rows
-> rollout_responses -> compute_rewards. A correct answer must get reward 1 under --reward exec and a
wrong, invalid, unclosed or multi-block one 0; the reward model must see the extracted code only.

Run: HF_HUB_OFFLINE=1 python -m pytest -q tests/test_reward_path.py
"""
import json
import math
import os
import types

import pytest
import torch

import model as M
from data import humaneval_problems
from reward import RewardModel
from tokenizer import load_tokenizer
from train_rl import compute_rewards, optimizer_step, parse_args, ppo_clip_loss, rollout_responses, warmup_factor

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "responses.jsonl")


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def golden():
    with open(GOLDEN, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def problems():
    return {p.problem_id: p for p in humaneval_problems("all")}


def as_sampled(tok, records):
    """What generate() returns for these responses: tokens [B, T] padded with pad_id, lengths (the stop
    token counted), stopped. Rows that stopped end with <|im_end|>; truncated rows have no stop token."""
    im_end = tok.token_to_id("<|im_end|>")
    rows = [tok.encode(r["text"]) + ([] if r["truncated"] else [im_end]) for r in records]
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), tok.pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, :len(r)] = torch.tensor(r)
    return types.SimpleNamespace(tokens=tokens, lengths=torch.tensor([len(r) for r in rows]),
                                 stopped=torch.tensor([not r["truncated"] for r in records]))


def args_for(**kw):
    args = parse_args([])
    vars(args).update(kw)
    return args


def test_golden_corpus_is_large_and_varied(golden):
    assert len(golden) >= 300
    shapes = {r["shape"] for r in golden}
    for needed in ("fence then stop token", "thinking block without code", "CRLF line ends", "tag py", "no tag",
                   "prose on the closing fence line", "a draft block inside the thinking and a final block",
                   "unclosed block, stop token", "truncated inside the block", "truncated in the prose after the block"):
        assert needed in shapes, needed
    assert {r["kind"] for r in golden} == {"correct", "wrong", "invalid", "no single block"}


def test_sampled_rows_decode_to_the_response_without_the_stop_token(tok, golden):
    ids, truncated, texts = rollout_responses(as_sampled(tok, golden), tok)
    im_end = tok.token_to_id("<|im_end|>")
    for record, row, cut, text in zip(golden, ids, truncated, texts):
        assert cut == record["truncated"]
        assert (row[-1] == im_end) != record["truncated"]  # the policy trains on the stop token it emitted
        assert text == record["text"]  # ... but extraction never sees it


def test_exec_reward_on_the_golden_corpus(tok, golden, problems):
    _, _, texts = rollout_responses(as_sampled(tok, golden), tok)
    out = compute_rewards([problems[r["problem_id"]] for r in golden], texts, args_for(reward="exec"), None)
    wrong = [(r["problem_id"], r["shape"], r["kind"], o["reward"]) for r, o in zip(golden, out)
             if o["reward"] != r["expected_exec"] or o["code"] != r["expected_code"]]
    assert not wrong, wrong[:10]
    assert sum(o["reward"] for o in out) == sum(r["kind"] == "correct" for r in golden) == 164
    for r, o in zip(golden, out):
        assert o["valid"] == (r["expected_code"] != "")
        if r["kind"] == "wrong":
            assert o["pass_rate"] < 1.0


@pytest.fixture(scope="module")
def rm(tmp_path_factory):
    path = tmp_path_factory.mktemp("rm")
    M.save_model(M.init_weights(M.Qwen3(M.tiny_config(hidden_size=64, intermediate_size=128), head="score"),
                                std=0.3, seed=3), str(path))
    return RewardModel.from_pretrained(str(path))


def test_reward_model_sees_the_extracted_code_only(tok, golden, problems, rm):
    records = golden[::9]  # 61 responses of every kind
    _, _, texts = rollout_responses(as_sampled(tok, records), tok)
    questions = [problems[r["problem_id"]].question for r in records]
    out = compute_rewards([problems[r["problem_id"]] for r in records], texts, args_for(reward="rm"), rm)
    valid = [i for i, r in enumerate(records) if r["expected_code"]]
    assert 0 < len(valid) < len(records)
    direct = rm.score([questions[i] for i in valid], [records[i]["expected_code"] for i in valid])
    for i, s in zip(valid, direct):
        assert out[i]["score"] == pytest.approx(s, abs=1e-5)
        assert out[i]["reward"] == pytest.approx(math.log1p(math.exp(s)), abs=1e-5)
    for i in set(range(len(records))) - set(valid):
        assert out[i]["score"] is None and out[i]["reward"] == 0.0

    # --shaping none: every response is scored, an invalid one as RM(q, ""), and the reward is the raw score
    none = compute_rewards([problems[r["problem_id"]] for r in records], texts,
                           args_for(reward="rm", shaping="none"), rm)
    direct = rm.score(questions, [r["expected_code"] for r in records])  # expected_code is "" when invalid
    assert [o["reward"] for o in none] == pytest.approx(direct, abs=1e-5)
    assert all(o["score"] is not None for o in none)


def test_extract_last_ablation(problems, tok):
    p = problems["HumanEval/0"]
    two = f"<think>\ndraft\n```python\nx = 1\n```\n</think>\n\n```python\n{p.reference.strip()}\n```"
    strict = compute_rewards([p], [two], args_for(reward="exec"), None)[0]
    last = compute_rewards([p], [two], args_for(reward="exec", extract="last"), None)[0]
    assert (strict["reward"], strict["code"]) == (0.0, "")
    assert (last["reward"], last["code"]) == (1.0, p.reference.strip())


# -----------------------------------------------------------------------------
# The authors' GRPO settings


def test_warmup_follows_verl():
    # verl's get_constant_schedule_with_warmup: min(1, step / warmup); the first step runs at lr 0
    assert [warmup_factor(s, 10) for s in range(12)] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0]
    assert warmup_factor(0, 0) == 0.0 and warmup_factor(1, 0) == 1.0
    assert parse_args([]).warmup_steps == 10


def test_log_ratio_is_clamped_before_exp():
    logp = torch.tensor([100.0, -100.0, 0.5], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(3, dtype=torch.float64)
    adv = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    loss, low, high = ppo_clip_loss(logp, old, adv, 0.2, 0.28, 3.0)
    assert torch.isfinite(loss).all()
    # ratio e^20 on a negative advantage: the dual clip bounds it at 3 |A|; e^-20 on a positive one: -ratio
    assert loss[0].item() == 3.0 and loss[1].item() == pytest.approx(-math.exp(-20), rel=1e-12)
    loss.sum().backward()
    assert torch.isfinite(logp.grad).all() and logp.grad[0] == 0 and logp.grad[1] == 0  # clamped: no gradient


def test_a_non_finite_gradient_skips_the_step():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    (layer(torch.ones(1, 4)).sum() * float("nan")).backward()
    norm, skipped = optimizer_step(layer, opt, grad_clip=1.0)
    assert skipped and math.isnan(norm)
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items()) and not opt.state
    assert all(p.grad is None for p in layer.parameters())
    layer(torch.ones(1, 4)).sum().backward()
    norm, skipped = optimizer_step(layer, opt, grad_clip=1.0)
    assert not skipped and norm > 0 and not torch.equal(before["weight"], layer.weight)


def test_defaults_are_the_papers():
    a = parse_args([])
    assert (a.temperature, a.top_p, a.top_k, a.group_size) == (0.6, 0.95, 20, 8)
    assert (a.clip_low, a.clip_high, a.dual_clip, a.loss_agg) == (0.2, 0.28, 3.0, "token-mean")
    assert (a.extract, a.shaping, a.reward, a.no_thinking) == ("strict", "softplus", "rm", False)
    from infer import parse_args as infer_args
    e = infer_args(["eval", "--policy", "x"])
    assert (e.n, e.max_new_tokens, e.temperature, e.top_p, e.top_k, e.no_thinking) == (8, 16384, 0.6, 0.95, 0, False)
