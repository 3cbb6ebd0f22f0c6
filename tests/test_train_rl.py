"""train_rl.py: GRPO pieces against hand computations, 2 ranks = 1 rank for an update, learning on a toy
reward through the real loop, the exec and rm rewards, and resume = uninterrupted."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import model as M
from train_rl import aggregate, compute_rewards, group_advantages, kl_k3, parse_args, ppo_clip_loss

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# -----------------------------------------------------------------------------
# Pure pieces


def test_group_advantages_by_hand():
    R = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], [3.0, 1.0, 2.0, 2.0]], dtype=torch.float64)
    adv, zero = group_advantages(R)
    std0 = math.sqrt(((0.5**2) * 4) / 3)  # unbiased
    assert adv[0].tolist() == pytest.approx([0.5 / (std0 + 1e-6), -0.5 / (std0 + 1e-6)] * 1 + [-0.5 / (std0 + 1e-6), 0.5 / (std0 + 1e-6)])
    assert adv[1].tolist() == [0.0] * 4 and zero.tolist() == [False, True, False]
    std2 = math.sqrt((1 + 1 + 0 + 0) / 3)
    assert adv[2].tolist() == pytest.approx([1 / (std2 + 1e-6), -1 / (std2 + 1e-6), 0.0, 0.0])
    adv, _ = group_advantages(R, scale_by_std=False)  # Dr. GRPO
    assert adv[2].tolist() == [1.0, -1.0, 0.0, 0.0]


def test_ppo_clip_both_bounds_and_dual_clip():
    ratios = torch.tensor([0.5, 0.9, 1.1, 1.5, 0.5, 1.5, 5.0])
    adv = torch.tensor([1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    old = torch.zeros(7)
    loss, low, high = ppo_clip_loss(ratios.log(), old, adv, clip_low=0.2, clip_high=0.28, dual_clip=3.0)
    expected = [
        -0.5,  # A>0, ratio below 1-0.2: max(-0.5, -0.8) = -0.5 (unclipped: pessimistic)
        -0.9,  # inside the range
        -1.1,
        -1.28,  # A>0, ratio 1.5 above 1.28: clipped at 1.28
        0.8,  # A<0, ratio 0.5 below 0.8: max(0.5, 0.8) = 0.8 (clipped, no gradient)
        1.5,  # A<0, ratio 1.5: max(1.5, 1.28) = 1.5
        3.0,  # A<0, ratio 5: max(5, 1.28) = 5, dual clip bounds it at 3
    ]
    assert loss.tolist() == pytest.approx(expected, abs=1e-6)
    assert low.tolist() == [False, False, False, False, True, False, False]
    assert high.tolist() == [False, False, False, True, False, False, False]
    # the gradient is zero exactly where a clip is active
    logp = ratios.log().requires_grad_()
    loss, _, _ = ppo_clip_loss(logp, old, adv, 0.2, 0.28, 3.0)
    loss.sum().backward()
    assert [g == 0 for g in logp.grad.tolist()] == [False, False, False, True, True, False, True]


def test_token_mean_vs_seq_mean_by_hand():
    per_token = torch.tensor([1.0, 2.0, 3.0, 10.0])
    seq_ids = torch.tensor([0, 0, 0, 1])
    mask = torch.ones(4)
    assert aggregate(per_token, seq_ids, mask, "token-mean", 4).item() == pytest.approx(16 / 4)
    assert aggregate(per_token, seq_ids, mask, "seq-mean", 2).item() == pytest.approx((2.0 + 10.0) / 2)
    # a global count larger than the local one: this rank's share of a global mean
    assert aggregate(per_token, seq_ids, mask, "token-mean", 8).item() == pytest.approx(16 / 8)


def test_kl_k3_by_hand():
    logp, ref = torch.tensor([-1.0, -2.0, -0.5]), torch.tensor([-1.0, -1.0, -2.0])
    d = ref - logp
    assert kl_k3(logp, ref).tolist() == pytest.approx([math.exp(x) - x - 1 for x in d.tolist()])
    assert kl_k3(logp, ref)[0] == 0 and (kl_k3(logp, ref) >= 0).all()


# -----------------------------------------------------------------------------
# Rewards


def args_for(**kw):
    """train_rl's own defaults (so a new flag can't be missing here), with `kw` on top."""
    args = parse_args([])
    vars(args).update(kw)
    return args


def test_exec_reward_and_rm_reward_validity(tmp_path):
    from data import humaneval_problems
    from reward import RewardModel
    problem = [p for p in humaneval_problems("all") if p.problem_id == "HumanEval/0"][0]
    mutant = problem.reference.replace("distance < threshold", "distance > threshold")
    assert mutant != problem.reference
    fence = "```python\n{}\n```"
    responses = [fence.format(problem.reference), fence.format(mutant),
                 fence.format(problem.reference) + "\n" + fence.format("x = 1"),  # two blocks
                 fence.format("def f(:\n    pass")]  # broken syntax
    exec_out = compute_rewards([problem] * 4, responses, args_for(reward="exec"), None)
    assert [o["reward"] for o in exec_out] == [1.0, 0.0, 0.0, 0.0]
    assert exec_out[0]["pass_rate"] == 1.0 and 0.0 < exec_out[1]["pass_rate"] < 1.0

    M.save_model(M.init_weights(M.Qwen3(M.tiny_config(), head="score"), std=0.3, seed=2), str(tmp_path / "rm"))
    rm = RewardModel.from_pretrained(str(tmp_path / "rm"))
    rm_out = compute_rewards([problem] * 4, responses, args_for(reward="rm"), rm)
    assert [o["code"] for o in rm_out[:2]] == [problem.reference.strip(), mutant.strip()]  # the stripped block
    direct = rm.score([problem.question] * 2, [problem.reference.strip(), mutant.strip()])
    for o, s in zip(rm_out[:2], direct):
        assert o["score"] == pytest.approx(s, abs=1e-5)
        assert o["reward"] == pytest.approx(math.log1p(math.exp(s)), abs=1e-5)
    assert [o["reward"] for o in rm_out[2:]] == [0.0, 0.0] and [o["score"] for o in rm_out[2:]] == [None, None]
    assert [o["pass_rate"] for o in rm_out] == [o["pass_rate"] for o in exec_out]  # tests still run: a metric


# -----------------------------------------------------------------------------
# Runs of the real script (subprocesses)

DRIVER = """
import sys, train_rl
def even_tokens(problems, responses, response_ids):  # toy reward: share of even token ids
    return [sum(t % 2 == 0 for t in ids) / max(len(ids), 1) for ids in response_ids]
train_rl.main(sys.argv[1:], reward_fn=even_tokens)
"""

UPDATE_DRIVER = """
import sys, torch, distributed, logprobs, train_rl
import model as M
from model import load_model
from distributed import full_state_dict
memory_saving = sys.argv[3:] == ["memory-saving"]
args = train_rl.parse_args(["--dtype", "float64", "--micro-batch-tokens", "40",
                            "--grad-sync", "micro-batch" if memory_saving else "step"])
rank, world, device = distributed.setup()
if memory_saving:  # each rank reads only its shards, blocks recomputed, logits in chunks of 4, reduce-scatter
    # after every micro-batch
    model = distributed.load_sharded(sys.argv[1], device, torch.float64)
    model.set_activation_checkpointing(True)
    logprobs.LOGPROB_CHUNK_ROWS = 4
else:
    model = load_model(sys.argv[1], dtype=torch.float64)
    distributed.shard(model, device)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
g = torch.Generator().manual_seed(0)
rows = [(torch.randint(0, 1000, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g).tolist(),
         torch.randint(0, 1000, (int(torch.randint(1, 7, (1,), generator=g)),), generator=g).tolist(),
         float(torch.randn(1, generator=g))) for _ in range(12)]
rollouts = train_rl.Rollouts(prompt=[p for p, _, _ in rows], response=[r for _, r, _ in rows],
                             adv=[a for _, _, a in rows], mask=[1.0] * len(rows))
# an old policy a little away from the current one, so that ratios differ from 1 and clip
shift = [0.3 * torch.randn(len(r), generator=g, dtype=torch.float64) for r in rollouts.response]
mine = list(range(len(rollouts)))[rank::world]
rollouts, shift = rollouts.rows(mine), [shift[i] for i in mine]
rollouts.old_logp = [logp + s for logp, s in zip(train_rl.rollout_logprobs(model, rollouts, args, device), shift)]
metrics, _ = train_rl.update(model, opt, rollouts, args, world, device)
replica = distributed.empty_replica(model, torch.bfloat16, device)
distributed.refresh_replica(model, replica)
state = full_state_dict(model)
if rank == 0:
    torch.save({"state": state, "replica": replica.state_dict(), **metrics}, sys.argv[2])
distributed.teardown()
"""


ON_POLICY_DRIVER = """
import sys, torch, distributed, train_rl
from model import load_model
args = train_rl.parse_args(["--dtype", "float64", "--micro-batch-tokens", "40", "--grad-sync", "step"])
rank, world, device = distributed.setup()
g = torch.Generator().manual_seed(0)
rows = [(torch.randint(0, 1000, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g).tolist(),
         torch.randint(0, 1000, (int(torch.randint(1, 7, (1,), generator=g)),), generator=g).tolist(),
         float(torch.randn(1, generator=g))) for _ in range(12)]
out = {}
for variant in ("separate pass", "own forward"):
    model = load_model(sys.argv[1], dtype=torch.float64)
    distributed.shard(model, device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rollouts = train_rl.Rollouts(prompt=[p for p, _, _ in rows], response=[r for _, r, _ in rows],
                                 adv=[a for _, _, a in rows], mask=[1.0] * 11 + [0.0])
    if variant == "separate pass":
        rollouts.old_logp = train_rl.rollout_logprobs(model, rollouts, args, device)
        out["pass"] = rollouts.old_logp
    else:
        rollouts.old_logp = [None] * len(rollouts)
    metrics, old_used = train_rl.update(model, opt, rollouts, args, world, device)
    out[variant] = {"state": distributed.full_state_dict(model), "old_used": old_used, **metrics}
torch.save(out, sys.argv[2])
distributed.teardown()
"""


def launch(script, args, nproc=1, cwd=None):
    # the cores shared among the ranks: a one-process run takes them all
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc)), "PYTHONPATH": ROOT}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                              f"--nproc_per_node={nproc}"]
    proc = subprocess.run(cmd + [script] + args, env=env, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_rl")
    M.save_model(M.init_weights(M.Qwen3(M.tiny_config(hidden_size=64, intermediate_size=128)), seed=5), str(root / "policy"))
    problems = [{"problem_id": f"toy/{i}", "question": q} for i, q in enumerate(
        ["Say something.", "Write any Python.", "Count to three.", "Name a colour."])]
    (root / "problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    (root / "driver.py").write_text(DRIVER)
    (root / "update_driver.py").write_text(UPDATE_DRIVER)
    (root / "on_policy_driver.py").write_text(ON_POLICY_DRIVER)
    return root


def toy_args(workdir, *extra):
    return ["--policy", str(workdir / "policy"), "--data", str(workdir / "problems.jsonl"), "--prompts-per-step", "4",
            "--group-size", "8", "--max-new-tokens", "6", "--temperature", "1.0", "--top-k", "20", "--top-p", "1.0",
            "--lr", "2e-3", "--warmup-steps", "1", "--mini-batches", "1", "--sample-every", "100", *extra]


def metrics(out):
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]


def test_one_update_on_two_ranks_equals_one_rank(workdir):
    # 1 rank: the whole model loaded, then sharded; log-probs in one chunk; activations kept.
    # 2 ranks: each reads only its shards, log-probs 4 rows at a time, blocks recomputed in backward,
    # gradients reduce-scattered after every micro-batch (1 rank: once per step).
    launch(str(workdir / "update_driver.py"), [str(workdir / "policy"), str(workdir / "one.pt")])
    launch(str(workdir / "update_driver.py"), [str(workdir / "policy"), str(workdir / "two.pt"), "memory-saving"],
           nproc=2)
    one, two = torch.load(workdir / "one.pt"), torch.load(workdir / "two.pt")
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-9) and one["grad_norm"] > 0
    assert one["clip_low"] + one["clip_high"] > 0  # the clipped branches took part
    before = M.load_model(str(workdir / "policy"), dtype=torch.float64).state_dict()
    for key, value in one["state"].items():
        torch.testing.assert_close(two["state"][key], value, atol=1e-5, rtol=0)
        # the replica refreshed parameter by parameter holds the new weights, cast to bf16
        assert torch.equal(two["replica"][key], value.to(torch.bfloat16)), key
    assert max((one["state"][k] - before[k]).abs().max() for k in before) > 1e-4  # the step moved the weights


def test_first_mini_batch_takes_its_old_logprobs_from_its_own_forward(workdir):
    # rows with old_logp None (the first mini-batch of a step) use the update forward's own log-probs:
    # the same step as a separate no-grad pass would give, one forward fewer
    launch(str(workdir / "on_policy_driver.py"), [str(workdir / "policy"), str(workdir / "on_policy.pt")])
    out = torch.load(workdir / "on_policy.pt")
    separate, own = out["separate pass"], out["own forward"]
    assert own["grad_norm"] == pytest.approx(separate["grad_norm"], rel=1e-12) and own["grad_norm"] > 0
    assert own["kl_old"] == 0.0 and own["clip_low"] + own["clip_high"] == 0  # ratio exactly 1
    for key, value in separate["state"].items():
        torch.testing.assert_close(own["state"][key], value, atol=1e-12, rtol=0)
    assert own["old_used"][-1] is None  # the masked row was not forwarded
    for used, ref in zip(own["old_used"][:-1], out["pass"][:-1]):
        torch.testing.assert_close(used, ref, atol=1e-12, rtol=0)


@pytest.fixture(scope="module")
def toy_run(workdir):
    """10 GRPO steps on the toy reward, uninterrupted: the learning test and the resume test's reference."""
    out = workdir / "toy"
    # the reward is the share of even token ids in a response: a random policy gets about 0.5
    launch(str(workdir / "driver.py"), toy_args(workdir, "--out", str(out), "--steps", "10"))
    return out


def test_grpo_learns_a_toy_reward_through_the_real_loop(toy_run):
    out = toy_run
    rewards = [r["reward_mean"] for r in metrics(out)]
    assert len(rewards) == 10
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert first < 0.7 and last > first + 0.25, rewards
    # the sampler's log-probs (replica, KV-cached decode) match the trainer's (FSDP model, packed forward) in
    # float32; a gap here would mean the rollout engine and the trainer disagree about the policy
    assert all(0.0 <= r["logprob_gap_mean"] <= r["logprob_gap_max"] < 1e-3 for r in metrics(out))
    assert all(len(r["time_generate_per_rank"]) == 1 and r["skipped_updates"] == 0 for r in metrics(out))
    assert os.path.exists(out / "final" / "model.safetensors")


def test_resume_gives_the_same_next_step(workdir, toy_run):
    # the same 10-step run, stopped after step 2 and resumed for step 3 (the lr schedule depends on the step
    # only, so steps 1-3 of the uninterrupted run are the reference)
    cut = workdir / "cut"
    launch(str(workdir / "driver.py"), toy_args(workdir, "--out", str(cut), "--steps", "10", "--stop-at", "2"))
    assert len(metrics(cut)) == 2
    launch(str(workdir / "driver.py"), toy_args(workdir, "--out", str(cut), "--steps", "10", "--resume",
                                                "--stop-at", "3"))
    a, b = metrics(toy_run), metrics(cut)
    assert [r["step"] for r in b] == [1, 2, 3]
    for key, value in a[2].items():
        if not key.startswith("time") and not key.endswith("per_s"):
            assert b[2][key] == pytest.approx(value, abs=1e-6), key
