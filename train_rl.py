"""GRPO for a code policy, rewarded by the reward model instead of unit tests (CodeScaler, SPEC.md 3-4).

    torchrun --standalone --nproc_per_node=2 train_rl.py        # the built-in demo on 2 CPU ranks
    torchrun --nproc_per_node=8 train_rl.py --policy Qwen/Qwen3-8B-Base --rm LARK-Lab/CodeScaler-8B \
        --data problems.jsonl --out runs/rl8b --prompts-per-step 128 --max-new-tokens 16384
    --reward exec is the RLVR baseline (1 if every unit test passes, else 0); --reward mix blends both.
The demo (no --policy) starts from sft.py's warm start (runs/sft/final) with train_rm.py's reward model
(runs/rm/final) on the 16 short HumanEval train problems the warm start was trained on (sft.demo_problems):
16 steps of 8 prompts x 8 samples, 64 new tokens, lr 5e-4 after 2 warm-up steps; its last line compares
the mean of the first 3 steps with that of the last 3 (valid-code rate, reward, unit-test pass rate).

Each step, top to bottom:
  1. sample   every rank takes its share of --prompts-per-step prompts and draws --group-size samples of
              each with the KV-cached sampler (generate.py) from a full replica of the policy;
  2. reward   strict extraction (extract.py); the reward model scores [problem, code] with its own
              tokenizer and chat format; shaped_reward makes it softplus(score), 0 for invalid code;
              the sandbox runs the tests where they exist (the reward for `exec`, a metric for `rm`);
  3. advantages  per group: (R - mean) / (std + 1e-6);
  4. update   old log-probs from a forward pass of the training model, then --mini-batches optimizer
              steps of PPO-clip over the rollouts, in packed token-budget micro-batches.

Where this differs from textbook PPO/GRPO, and why:
  - No value function, no GAE: the group mean is the baseline (GRPO). The advantage is one number per
    response, on every token of it (outcome reward).
  - Asymmetric clip (0.2 low / 0.28 high, "clip-higher" from DAPO) lets rare tokens grow; dual clip
    (3.0) bounds the loss of negative-advantage tokens whose ratio has exploded.
  - Token-mean aggregation over the global mini-batch (DAPO/verl), not per-sequence means: long
    responses are not down-weighted. --loss-agg seq-mean gives the GRPO paper's form.
  - No KL penalty and no entropy bonus by default (the authors' run); --kl-coef adds the k3 estimator
    against a frozen reference, loaded only then. --no-std drops the std normalisation (Dr. GRPO).
  - Log-probs for the ratio are computed from logits / temperature (as verl does), the distribution the
    sampler drew from before top-k/top-p; the old log-probs come from the training model, not the sampler.
  - Rollouts use a plain (unsharded) replica of the policy on every rank, refreshed each step one
    parameter at a time (cast to bf16 on each shard, then all-gathered); generating through FSDP would
    all-gather every layer at every token. It costs one full bf16 copy of the weights per rank (16 GB at
    8B), which fits with the paper's sizes; a reward model above --rm-shard-above-gb is FSDP-sharded.
  - Learning rate: verl's constant schedule with warm-up, counted in RL steps (one scheduler step per
    rollout, however many mini-batches it has): lr x min(1, step / 10), so the first step runs at lr 0.
  - The log-ratio is clamped to [-20, 20] before exp (verl); an optimizer step whose gradient norm is not
    finite is skipped (the gradient dropped) and counted as `skipped_updates` in metrics.jsonl.
  - metrics.jsonl logs `logprob_gap_mean/max`, |sampler - trainer| log-prob of the sampled tokens under
    logits / temperature: ~1e-6 in float32 on a CPU, larger with bf16 rollouts or other kernels, which is
    how a mismatch between the rollout engine and the trainer shows.

As the authors ran it (SPEC.md section 4): prompts rendered with the policy's chat template and its
default arguments (thinking not switched off; --no-thinking passes enable_thinking=False); the reward model
scores [user: problem, assistant: extracted code] rendered with the RM checkpoint's own chat template
(Qwen3's written by hand, any other through jinja2, tokenizer.py); each response's text is decoded with the
stop token cut and no special tokens, so "```<|im_end|>" never reaches extraction. Ablations: --extract last
(the evaluation rule as the reward), --shaping none (raw scores, invalid code scored as RM(q, "")).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
from tqdm import tqdm

import distributed
from data import load_problems
from extract import extract_code
from generate import free_rollout_caches, generate
from hub import local_dir
from model import Qwen3, init_weights, param_count, read_config, save_model, tiny_config
from reward import RewardModel, packed_last_token_scores, shaped_reward, token_budget_batches
from tokenizer import load_tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # models and data
    p.add_argument("--policy", default=None, help="causal LM (hub id or directory); default: the demo policy "
                   "warm-started by sft.py (runs/sft/final) if present, else a tiny random Qwen3")
    p.add_argument("--rm", default=None, help="reward model; default: runs/rm/final if present, else tiny random")
    p.add_argument("--data", default=None, help="problems JSONL (question, optional tests); default: HumanEval "
                   "train (demo: the 16 with the shortest solutions, the ones sft.py's demo answers)")
    p.add_argument("--out", default="runs/rl", help="output directory (metrics.jsonl, samples, checkpoints, final/)")
    p.add_argument("--no-thinking", action="store_true",
                   help="pass enable_thinking=False to the chat template (Qwen3: an empty think block in the prompt); "
                   "default: the template's default, thinking not switched off, as the authors ran it")
    # reward
    p.add_argument("--reward", choices=["rm", "exec", "mix"], default="rm",
                   help="rm: the shaped reward-model score (the method); exec: 1 if every unit test passes, else 0 "
                   "(the RLVR baseline); mix: --rm-weight * rm + (1 - --rm-weight) * exec")
    p.add_argument("--rm-weight", type=float, default=0.5, help="mix: weight of the RM reward (exec gets the rest)")
    p.add_argument("--extract", choices=["strict", "last"], default="strict",
                   help="code extraction for the reward: strict (exactly one parsable block, the method) or last "
                   "(the last block, no checks: the evaluation rule, an ablation)")
    p.add_argument("--shaping", choices=["softplus", "sigmoid", "raw", "none"], default="softplus",
                   help="softplus(score), 0 for invalid code (the method); sigmoid: the same in (0, 1); raw: the score, "
                   "0 for invalid code; none: the raw score for every response, invalid ones scored as RM(q, \"\") "
                   "(the authors' no-shaping ablation)")
    p.add_argument("--rm-sharded", action="store_true", help="shard the reward model with FSDP (when it does not fit)")
    p.add_argument("--rm-max-len", type=int, default=4096, help="reward-model input tokens, right-truncated (paper: 4096)")
    p.add_argument("--exec-workers", type=int, default=2, help="sandbox processes per rank")
    # rollouts
    p.add_argument("--prompts-per-step", type=int, default=None, help="over all ranks (default 128; demo 8)")
    p.add_argument("--group-size", type=int, default=8, help="samples per prompt, one GRPO group (paper: 8)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default 16384 (demo 64)")
    p.add_argument("--max-prompt-len", type=int, default=4096, help="longer prompts are skipped")
    p.add_argument("--temperature", type=float, default=0.6, help="rollout temperature (paper: 0.6)")
    p.add_argument("--top-p", type=float, default=0.95, help="rollout nucleus mass (paper: 0.95)")
    p.add_argument("--top-k", type=int, default=20, help="rollout top-k, 0 = none (paper: 20)")
    p.add_argument("--keep-rollout-cache", action="store_true",
                   help="CUDA: keep the rollout KV cache (and its CUDA graphs) through the update instead of freeing "
                   "it after each rollout; saves re-capturing graphs, costs the cache's memory in the update")
    p.add_argument("--rollout-memory-gb", type=float, default=None,
                   help="KV-cache budget of a rollout: rows beyond it wait and take rows as samples finish "
                   "(continuous batching); default: most of the free memory on CUDA, every sample at once on CPU")
    # GRPO loss
    p.add_argument("--clip-low", type=float, default=0.2, help="PPO ratio clip below 1 (paper: 0.2)")
    p.add_argument("--clip-high", type=float, default=0.28, help="PPO ratio clip above 1, clip-higher (paper: 0.28)")
    p.add_argument("--dual-clip", type=float, default=3.0, help="dual-clip bound for negative advantages (paper: 3.0)")
    p.add_argument("--loss-agg", choices=["token-mean", "seq-mean"], default="token-mean",
                   help="token-mean over the global mini-batch (paper, verl) or the mean of per-sequence means")
    p.add_argument("--no-std", action="store_true", help="advantage R - mean, without / std (Dr. GRPO)")
    p.add_argument("--skip-zero-spread", action="store_true", help="leave groups with equal rewards out of the update")
    p.add_argument("--mask-truncated", action="store_true", help="no loss on responses cut at --max-new-tokens")
    p.add_argument("--kl-coef", type=float, default=0.0, help="k3 KL penalty against the initial policy (paper: 0, none)")
    p.add_argument("--entropy-coef", type=float, default=0.0, help="entropy bonus (paper: 0)")
    # optimisation
    p.add_argument("--steps", type=int, default=None, help="RL steps (default 250; demo 16)")
    p.add_argument("--mini-batches", type=int, default=2, help="optimizer steps per rollout")
    p.add_argument("--micro-batch-tokens", type=int, default=8192,
                   help="token budget of a packed micro-batch: activations grow with it (logits do not: they "
                   "are made a chunk of rows at a time, logprobs.token_logprobs); see `python bench.py memory`")
    p.add_argument("--lr", type=float, default=None, help="default 1e-6 (demo 5e-4)")
    p.add_argument("--warmup-steps", type=int, default=10,
                   help="RL steps of linear warm-up, verl's schedule: lr x min(1, step / N), step 0 at lr 0 (paper: 10; "
                   "the demo uses 2 unless this flag is given)")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (paper: 0.01)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="gradient-norm clip (paper: 1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompt order, the sampling and the demo init")
    p.add_argument("--collective-timeout-min", type=float, default=180.0,
                   help="minutes a collective waits for the slowest rank: must exceed the longest rollout one rank "
                   "can spend alone (16K-token responses on a slow rank take tens of minutes)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="master weights")
    p.add_argument("--activation-checkpointing", choices=["auto", "on", "off"], default="auto",
                   help="recompute each block in backward (about +33%% block compute, activations kept: one "
                   "[tokens, hidden] per block); auto: on for a real policy, off for the demo")
    p.add_argument("--rm-shard-above-gb", type=float, default=4.0,
                   help="shard the reward model with FSDP when its weights exceed this many GB (on >1 rank; "
                   "--rm-sharded always shards): frees memory for rollouts, costs all-gathers while scoring")
    p.add_argument("--grad-sync", choices=["auto", "micro-batch", "step"], default="auto",
                   help="when FSDP reduce-scatters gradients: after every micro-batch (they stay sharded) or once "
                   "per step (full float32 gradients kept between micro-batches, 33 GB at 8B, one reduce-scatter "
                   "fewer per micro-batch); auto: micro-batch for a real checkpoint, step for the demo")
    # logging, checkpoints
    p.add_argument("--sample-every", type=int, default=5, help="steps between writes to samples.jsonl")
    p.add_argument("--save-every", type=int, default=50, help="steps between checkpoints")
    p.add_argument("--keep", type=int, default=2, help="checkpoints kept")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint under --out")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this step (checkpointed); for tests")
    return p.parse_args(argv)


# -----------------------------------------------------------------------------
# GRPO pieces (pure functions, tested against hand computations)


def warmup_factor(step: int, warmup_steps: int) -> float:
    """verl's constant schedule with warm-up: lr x min(1, step / warmup_steps) at RL step `step` (from 0).
    The first step runs at lr 0 (Adam's moments still take its gradient), step 10 of 10 reaches the full lr."""
    return min(1.0, step / max(1, warmup_steps))


def group_advantages(rewards, eps: float = 1e-6, scale_by_std: bool = True):
    """rewards [P, G] -> advantages [P, G], zero_spread [P] (groups whose rewards are all equal).
    std is the unbiased sample std, as in the GRPO paper and verl."""
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(mean)
    adv = rewards - mean
    if scale_by_std:
        adv = adv / (std + eps)
    return adv, (rewards.max(dim=1).values == rewards.min(dim=1).values)


def ppo_clip_loss(logp, old_logp, adv, clip_low: float, clip_high: float, dual_clip: float):
    """Per-token PPO-clip loss with asymmetric bounds and dual clip. All [N] -> loss [N], and the masks of
    tokens where the lower / upper clip removed the gradient. The log-ratio is clamped to [-20, 20] before
    exp, as verl does, so one token whose probabilities moved by e^20 cannot make the loss inf or nan."""
    ratio = torch.exp((logp - old_logp).clamp(-20.0, 20.0))
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    loss = torch.where(adv < 0, torch.minimum(loss, -adv * dual_clip), loss)  # dual clip (negative adv only)
    clipped_low = (adv < 0) & (ratio < 1.0 - clip_low)
    clipped_high = (adv > 0) & (ratio > 1.0 + clip_high)
    return loss, clipped_low, clipped_high


def kl_k3(logp, ref_logp):
    """Schulman's k3 estimator of KL(policy || reference) per token: exp(d) - d - 1 with d = ref - logp."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def aggregate(per_token, seq_ids, mask, mode: str, global_count: float):
    """Sum the masked per-token loss as `mode` says, divided by the global number of tokens (token-mean)
    or of sequences (seq-mean, each sequence first averaged over its own tokens)."""
    per_token = per_token * mask
    if mode == "token-mean":
        return per_token.sum() / global_count
    n_seqs = int(seq_ids.max()) + 1
    seq_sum = torch.zeros(n_seqs, dtype=per_token.dtype, device=per_token.device).index_add_(0, seq_ids, per_token)
    seq_len = torch.zeros(n_seqs, dtype=per_token.dtype, device=per_token.device).index_add_(0, seq_ids, mask)
    return (seq_sum / seq_len.clamp(min=1)).sum() / global_count


# -----------------------------------------------------------------------------
# Forward passes over rollouts, in the same number of micro-batches on every rank


def lockstep(batches: list, device):
    """Yield (index, batch or None): every rank the same number of times, None for a rank's spare ones, so
    that the FSDP collectives inside each forward/backward match across ranks."""
    n = distributed.all_reduce_max(len(batches), device)
    for i in range(n):
        yield i, n, (batches[i] if i < len(batches) else None)


DUMMY = {"prompt": [0], "response": [0], "adv": 0.0, "old_logp": None, "ref_logp": None, "mask": 0.0}


def response_logprobs(model, rollouts: list[dict], temperature: float, with_entropy: bool = False):
    """One packed forward over prompt + response of each rollout; log-probs of the response tokens under
    logits / temperature, and their entropy. The head runs only where a response token is predicted, a
    chunk of rows at a time (logprobs.token_logprobs): no [N, vocab] logits, whatever the response length.
    Returns logp [N], entropy [N] or None, seq_ids [N] (rollout index of each token)."""
    device = next(model.parameters()).device
    ids, lens, head_at, targets, seq_ids, offset = [], [], [], [], [], 0
    for i, r in enumerate(rollouts):
        p, a = len(r["prompt"]), len(r["response"])
        ids += r["prompt"] + r["response"]
        lens.append(p + a)
        head_at += range(offset + p - 1, offset + p + a - 1)  # position j predicts token j + 1
        targets += r["response"]
        seq_ids += [i] * a
        offset += p + a
    logp, entropy = model(torch.tensor(ids, device=device)[None], seq_lens=lens,
                          head_at=torch.tensor(head_at, device=device), targets=torch.tensor(targets, device=device),
                          temperature=temperature, with_entropy=bool(with_entropy))  # [N], [N] or None
    if entropy is not None and with_entropy != "grad":  # a metric unless --entropy-coef > 0: out of the graph
        entropy = entropy.detach()
    return logp, entropy, torch.tensor(seq_ids, device=device)


@torch.no_grad()
def fill_logprobs(model, rollouts, key: str, args, device):
    """rollouts[i][key] = per-token log-probs under `model` (the old policy, or the reference)."""
    batches = token_budget_batches([len(r["prompt"]) + len(r["response"]) for r in rollouts], args.micro_batch_tokens)
    for _, _, batch in lockstep(batches, device):
        chunk = [rollouts[j] for j in batch] if batch is not None else [DUMMY]
        logp, _, seq_ids = response_logprobs(model, chunk, args.temperature)
        if batch is not None:
            for j, r in enumerate(chunk):
                r[key] = logp[seq_ids == j]


def update(model, optimizer, rollouts: list[dict], args, world: int, device) -> dict:
    """One optimizer step of PPO-clip on this rank's share of a mini-batch. Gradients are scaled so that
    FSDP's average over ranks gives the token-mean (or seq-mean) over the whole global mini-batch."""
    train = [r for r in rollouts if r["mask"] > 0]
    count = sum(len(r["response"]) for r in train) if args.loss_agg == "token-mean" else len(train)
    global_count = max(distributed.all_reduce_sum({"n": count}, device)["n"], 1.0)
    batches = token_budget_batches([len(r["prompt"]) + len(r["response"]) for r in train], args.micro_batch_tokens)
    sums = {"tokens": 0.0, "clip_low": 0.0, "clip_high": 0.0, "kl_old": 0.0, "entropy": 0.0, "kl_ref": 0.0}
    for i, n, batch in lockstep(batches, device):
        distributed.set_gradient_sync(model, i, n, every_micro_batch=args.grad_sync == "micro-batch")
        chunk = [train[j] for j in batch] if batch is not None else [DUMMY]
        logp, entropy, seq_ids = response_logprobs(model, chunk, args.temperature,
                                                   with_entropy="grad" if args.entropy_coef > 0 else True)
        if batch is None:  # a spare micro-batch: same collectives, no contribution
            (logp.sum() * 0.0).backward()
            continue
        old = torch.cat([r["old_logp"] for r in chunk])
        adv = torch.tensor([r["adv"] for r in chunk], device=device)[seq_ids]
        mask = torch.ones_like(logp)
        per_token, low, high = ppo_clip_loss(logp, old, adv, args.clip_low, args.clip_high, args.dual_clip)
        if args.kl_coef > 0:
            kl = kl_k3(logp, torch.cat([r["ref_logp"] for r in chunk]))
            per_token = per_token + args.kl_coef * kl
            sums["kl_ref"] += kl.detach().sum().item()
        if args.entropy_coef > 0:
            per_token = per_token - args.entropy_coef * entropy
        loss = aggregate(per_token, seq_ids, mask, args.loss_agg, global_count) * world
        loss.backward()
        sums["tokens"] += len(logp)
        sums["clip_low"] += low.sum().item()
        sums["clip_high"] += high.sum().item()
        sums["kl_old"] += kl_k3(logp.detach(), old).sum().item()
        sums["entropy"] += entropy.detach().sum().item()
    grad_norm, skipped = optimizer_step(model, optimizer, args.grad_clip)
    return {**sums, "grad_norm": 0.0 if skipped else grad_norm, "skipped": float(skipped)}


def optimizer_step(model, optimizer, grad_clip: float) -> tuple[float, bool]:
    """Clip the gradient to `grad_clip` and step, unless its norm is inf or nan: then the gradient is dropped
    and the weights and Adam's moments stay as they were (a poisoned moment would spoil every later step).
    The norm is a global reduction over FSDP shards, so every rank makes the same choice. -> (norm, skipped)"""
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
    skipped = not bool(torch.isfinite(grad_norm))
    if not skipped:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm.item(), skipped


# -----------------------------------------------------------------------------
# Rewards


def rollout_responses(out, tokenizer) -> tuple[list[list[int]], list[bool], list[str]]:
    """Sampler output -> per row: the response's token ids (the stop token kept: the policy is trained to
    emit it), whether it was cut at --max-new-tokens, and its text for the reward (stop token cut, no
    special tokens: "```<|im_end|>" must not reach extraction)."""
    lengths, stopped = out.lengths.tolist(), out.stopped.tolist()
    ids = [out.tokens[row, :n].tolist() for row, n in enumerate(lengths)]
    return ids, [not s for s in stopped], tokenizer.decode_responses(ids, stopped)


def rm_scores(rm, questions, codes, sharded: bool, device) -> list[float]:
    """Raw RM scores; a sharded RM runs the same number of micro-batches on every rank."""
    seqs = rm.encode(questions, codes).ids
    if not sharded:
        return rm.score_tokens(seqs) if seqs else []
    scores = [0.0] * len(seqs)
    with torch.no_grad():
        for _, _, batch in lockstep(token_budget_batches([len(s) for s in seqs], max(8192, rm.max_len)), device):
            out = packed_last_token_scores(rm.model, [seqs[j] for j in batch] if batch else [[0]])
            for j, s in zip(batch or [], out.tolist()):
                scores[j] = s
    return scores


def compute_rewards(problems, responses, args, rm, device, reward_fn=None, response_ids=None) -> list[dict]:
    """Per response (text with the stop token cut, `Tokenizer.decode_responses`): extracted code, validity,
    unit-test pass rate (None without tests), RM score (None where not scored), and the reward. The reward
    model sees [problem, extracted code] only, never the reasoning or prose around it.
    `reward_fn(problems, responses, response_ids) -> list[float]` replaces the reward (tests inject toy
    rewards through it; everything else stays the same)."""
    import sandbox
    codes = [extract_code(r, mode=args.extract) for r in responses]
    out = [{"code": c, "valid": c != "", "pass_rate": None, "score": None} for c in codes]
    jobs = [(i, p.tests) for i, p in enumerate(problems) if p.tests is not None]
    if jobs:  # run the tests: the reward for exec/mix, and a reward-hacking watch for rm
        results = sandbox.run_programs([(codes[i], t) for i, t in jobs if codes[i]], workers=args.exec_workers)
        valid_jobs = iter(results)
        for i, _ in jobs:
            out[i]["pass_rate"] = next(valid_jobs).pass_rate if codes[i] else 0.0
    if reward_fn is None and args.reward in ("rm", "mix"):
        # --shaping none scores every response, an invalid one as RM(q, ""); otherwise invalid code gets 0
        # without a forward pass
        scored = [i for i, c in enumerate(codes) if c or args.shaping == "none"]
        scores = rm_scores(rm, [problems[i].question for i in scored], [codes[i] for i in scored], args.rm_sharded, device)
        for i, s in zip(scored, scores):
            out[i]["score"] = s
    custom = reward_fn(problems, responses, response_ids) if reward_fn is not None else None
    for i, o in enumerate(out):
        if custom is not None:
            o["reward"] = float(custom[i])
            continue
        rm_reward = shaped_reward(o["score"], o["code"], args.shaping) if o["score"] is not None else 0.0
        if args.reward != "rm" and o["pass_rate"] is None:
            raise ValueError(f"--reward {args.reward} needs tests, and {problems[i].problem_id} has none")
        exec_reward = 1.0 if o["pass_rate"] == 1.0 else 0.0
        o["reward"] = {"rm": rm_reward, "exec": exec_reward,
                       "mix": args.rm_weight * rm_reward + (1 - args.rm_weight) * exec_reward}[args.reward]
    return out


# -----------------------------------------------------------------------------


def given(argv, flag: str) -> bool:
    """Whether the command line sets `flag` (as argparse reads it, abbreviations included): a demo default
    may replace a flag's default, never a value the user gave."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument(flag, default=None)
    return probe.parse_known_args(sys.argv[1:] if argv is None else argv)[0].__dict__[flag.lstrip("-").replace("-", "_")] is not None


def main(argv=None, reward_fn=None):
    args = parse_args(argv)
    rank, world, device = distributed.setup(timeout=args.collective_timeout_min * 60)
    demo = args.policy is None
    prompts_per_step = args.prompts_per_step or (8 if demo else 128)
    max_new = args.max_new_tokens or (64 if demo else 16384)
    steps = args.steps or (16 if demo else 250)
    lr = args.lr or (5e-4 if demo else 1e-6)
    if demo and not given(argv, "--warmup-steps"):
        args.warmup_steps = 2
    log = tqdm.write if rank == 0 else (lambda *a, **k: None)
    if prompts_per_step % world:
        raise ValueError(f"--prompts-per-step {prompts_per_step} must divide among {world} ranks")
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    # Models: the training policy (FSDP), its rollout replica, the frozen reward model, the reference.
    if demo:
        warm = os.path.join(HERE, "runs", "sft", "final")
        if os.path.exists(os.path.join(warm, "config.json")):
            args.policy = warm
            log(f"policy: the demo policy warm-started by sft.py, {warm}")
        else:
            args.policy = os.path.join(args.out, "init_policy")
            log(f"no warm-started policy at {warm}: using a tiny RANDOM policy, which writes no code, so every "
                "reward will be 0 (run `torchrun --standalone --nproc_per_node=2 sft.py` first)")
            if rank == 0 and not os.path.exists(os.path.join(args.policy, "config.json")):
                save_model(init_weights(Qwen3(tiny_config()), seed=args.seed), args.policy)
    need_rm = reward_fn is None and args.reward in ("rm", "mix")
    if need_rm and args.rm is None:
        default_rm = os.path.join(HERE, "runs/rm/final")
        if os.path.exists(os.path.join(default_rm, "config.json")):
            args.rm = default_rm
        else:
            args.rm = os.path.join(args.out, "init_rm")
            log(f"no trained reward model at {default_rm}: using a tiny RANDOM one (run train_rm.py first)")
            if rank == 0 and not os.path.exists(os.path.join(args.rm, "config.json")):
                save_model(init_weights(Qwen3(tiny_config(), head="score"), seed=args.seed + 1), args.rm)
    torch.distributed.barrier()
    tokenizer = load_tokenizer(args.policy if os.path.exists(os.path.join(args.policy, "tokenizer.json")) else None)
    # Each rank reads only its shards of the FSDP models; the replica is filled by the refresh of step 1.
    model = distributed.load_sharded(args.policy, device, dtype, head="lm_head")
    model.set_activation_checkpointing(args.activation_checkpointing == "on" or
                                       (args.activation_checkpointing == "auto" and not demo))
    if args.grad_sync == "auto":
        args.grad_sync = "step" if demo else "micro-batch"
    replica = distributed.empty_replica(model, torch.bfloat16 if device.type == "cuda" else dtype, device)
    rm_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if need_rm:
        rm_dir = local_dir(args.rm, allow_patterns=["*.json", "*.safetensors", "*.jinja"])
        rm_bytes = param_count(read_config(rm_dir)[0], "score") * rm_dtype.itemsize
        args.rm_sharded = args.rm_sharded or (world > 1 and rm_bytes > args.rm_shard_above_gb * 2**30)
    if need_rm and args.rm_sharded:
        rm_tokenizer = load_tokenizer(rm_dir if os.path.exists(os.path.join(rm_dir, "tokenizer.json")) else None)
        rm = RewardModel(distributed.load_sharded(rm_dir, device, rm_dtype, head="score").eval(), rm_tokenizer,
                         args.rm_max_len)
    else:
        rm = RewardModel.from_pretrained(args.rm, dtype=rm_dtype, device=device, max_len=args.rm_max_len) if need_rm else None
    reference = None
    if args.kl_coef > 0:
        reference = distributed.load_sharded(args.policy, device, dtype, head="lm_head").requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=args.weight_decay, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_factor(s, args.warmup_steps))

    # Problems: rendered and tokenized once.
    if demo and args.data is None:  # the short problems sft.py's demo answers: the warm start can write them
        from sft import demo_problems
        problems = demo_problems()
    else:
        problems = load_problems(args.data or "humaneval", split="train")
    prompts = [tokenizer.encode(tokenizer.render_prompt(p.question, enable_thinking=not args.no_thinking))
               for p in problems]
    keep = [i for i, ids in enumerate(prompts) if len(ids) <= args.max_prompt_len]
    if len(keep) < len(problems):
        log(f"skipping {len(problems) - len(keep)} prompts longer than {args.max_prompt_len} tokens")
    problems, prompts = [problems[i] for i in keep], [prompts[i] for i in keep]
    log(f"{len(problems)} problems; policy {args.policy}; reward {args.reward}"
        f"{' (' + args.rm + ')' if rm else ''}; {world} rank(s) on {device}; {steps} steps of "
        f"{prompts_per_step} prompts x {args.group_size} samples")

    ckpt_root, metrics_path = os.path.join(args.out, "checkpoints"), os.path.join(args.out, "metrics.jsonl")
    start = 0
    latest = distributed.latest_checkpoint(ckpt_root) if args.resume else None
    if latest:
        extra = distributed.load_checkpoint(latest, model, optimizer)
        scheduler.load_state_dict(extra["scheduler"])
        start = extra["step"]
        log(f"resumed from {latest} at step {start}")
    if rank == 0:
        kept = [l for l in open(metrics_path) if json.loads(l)["step"] <= start] if latest and os.path.exists(metrics_path) else []
        with open(metrics_path, "w") as f:
            f.writelines(kept)

    bar = tqdm(range(start, steps), initial=start, total=steps, disable=rank != 0, desc="train_rl", dynamic_ncols=True)
    for step in bar:
        # 1. sample: this rank's prompts, G samples each, from the replica refreshed with the current weights
        t0 = time.perf_counter()
        distributed.refresh_replica(model, replica)
        epoch, offset = divmod(step * prompts_per_step, len(problems))
        order = torch.randperm(len(problems), generator=torch.Generator().manual_seed(args.seed * 1_000_003 + epoch))
        chosen = [order[(offset + k) % len(problems)].item() for k in range(prompts_per_step)][rank::world]
        out = generate(replica, [prompts[i] for i in chosen], num_samples=args.group_size, max_new_tokens=max_new,
                       temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, stop_ids=tokenizer.eos_ids,
                       pad_id=tokenizer.pad_id, seed=args.seed * 1_000_003 + step * 1_009 + rank,
                       memory_budget=int(args.rollout_memory_gb * 2**30) if args.rollout_memory_gb else None)
        if device.type == "cuda" and not args.keep_rollout_cache:  # the update needs that memory (bench.py memory)
            free_rollout_caches()
            torch.cuda.empty_cache()
        G = args.group_size
        response_ids, truncated, responses = rollout_responses(out, tokenizer)
        rollouts = [{"problem": problems[chosen[row // G]], "prompt": prompts[chosen[row // G]],
                     "response": response_ids[row], "truncated": truncated[row],
                     "sampler_logp": out.raw_logprobs[row, : len(response_ids[row])]} for row in range(len(chosen) * G)]
        t1 = time.perf_counter()

        # 2. reward
        rewards = compute_rewards([r["problem"] for r in rollouts], responses, args, rm, device, reward_fn,
                                  [r["response"] for r in rollouts])
        t2 = time.perf_counter()

        # 3. advantages per group
        R = torch.tensor([x["reward"] for x in rewards], dtype=torch.float64).view(len(chosen), G)
        adv, zero_spread = group_advantages(R, scale_by_std=not args.no_std)
        for i, r in enumerate(rollouts):
            r.update(adv=adv.view(-1)[i].item(), mask=0.0 if (args.mask_truncated and r["truncated"]) or
                     (args.skip_zero_spread and zero_spread[i // G]) else 1.0)

        # 4. update: old (and reference) log-probs, then one optimizer step per mini-batch of groups
        fill_logprobs(model, rollouts, "old_logp", args, device)
        # The sampler's log-probs (replica, bf16 on CUDA, decode kernels) against the trainer's (FSDP model,
        # float32 master weights, packed forward) for the same tokens: the rollout/trainer mismatch
        gap = torch.cat([(r["sampler_logp"].to(r["old_logp"]) - r["old_logp"]).abs() for r in rollouts])
        if reference is not None:
            fill_logprobs(reference, rollouts, "ref_logp", args, device)
        sums = {}
        groups = list(range(len(chosen)))
        for k in range(args.mini_batches):
            share = groups[k * len(groups) // args.mini_batches : (k + 1) * len(groups) // args.mini_batches]
            part = update(model, optimizer, [rollouts[g * G + j] for g in share for j in range(G)], args, world, device)
            sums = {key: sums.get(key, 0.0) + v for key, v in part.items()}
        lr_used = optimizer.param_groups[0]["lr"]
        scheduler.step()
        t3 = time.perf_counter()

        # metrics, summed over ranks
        tested = [x["pass_rate"] for x in rewards if x["pass_rate"] is not None]
        lengths = [len(r["response"]) for r in rollouts]
        local = {"n": len(rollouts), "reward": float(R.sum()), "reward_sq": float((R**2).sum()),
                 "zero_spread": float(zero_spread.sum()), "groups": float(len(chosen)),
                 "valid": sum(x["valid"] for x in rewards), "tested": len(tested), "pass": sum(x == 1.0 for x in tested),
                 "len_sum": sum(lengths), "truncated": sum(r["truncated"] for r in rollouts),
                 "prompt_tokens": sum(len(r["prompt"]) for r in rollouts), "gap_sum": gap.sum().item(),
                 "gap_n": len(gap), **sums}
        g = distributed.all_reduce_sum(local, device)
        len_max = distributed.all_reduce_max(max(lengths), device)
        gap_max = max(distributed.all_gather_floats(gap.max().item() if len(gap) else 0.0, device))
        rollout_s = distributed.all_gather_floats(t1 - t0, device)  # a slow rank holds every other one
        n, tok = g["n"], max(g["tokens"], 1.0)
        mean = g["reward"] / n
        record = {"step": step + 1, "reward_mean": mean, "reward_std": math.sqrt(max(g["reward_sq"] / n - mean**2, 0.0)),
                  "zero_spread_frac": g["zero_spread"] / g["groups"], "valid_rate": g["valid"] / n,
                  "test_pass_rate": g["pass"] / g["tested"] if g["tested"] else None,
                  "response_len_mean": g["len_sum"] / n, "response_len_max": len_max, "truncation_rate": g["truncated"] / n,
                  "clip_frac_low": g["clip_low"] / tok, "clip_frac_high": g["clip_high"] / tok,
                  "approx_kl": g["kl_old"] / tok, "entropy": g["entropy"] / tok,
                  "kl_ref": g["kl_ref"] / tok if args.kl_coef > 0 else None,
                  "grad_norm": sums["grad_norm"] / max(args.mini_batches - sums["skipped"], 1),
                  "skipped_updates": int(sums["skipped"]), "lr": lr_used,
                  "logprob_gap_mean": g["gap_sum"] / max(g["gap_n"], 1), "logprob_gap_max": gap_max,
                  "time_generate": t1 - t0, "time_generate_per_rank": rollout_s,
                  "time_reward": t2 - t1, "time_update": t3 - t2,
                  "rollout_tokens_per_s": g["len_sum"] / (t1 - t0),
                  "update_tokens_per_s": (g["len_sum"] + g["prompt_tokens"]) * (args.mini_batches + 1) / (t3 - t2)}
        if rank == 0:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        bar.set_postfix(reward=f"{mean:.3f}", valid=f"{record['valid_rate']:.2f}", len=f"{record['response_len_mean']:.0f}")
        if (step + 1) % args.sample_every == 0 or step == start:
            with open(os.path.join(args.out, f"samples_rank{rank}.jsonl"), "a") as f:
                for r, text, x in list(zip(rollouts, responses, rewards))[:G]:
                    f.write(json.dumps({"step": step + 1, "problem_id": r["problem"].problem_id, "response": text,
                                        "code": x["code"], "reward": x["reward"], "score": x["score"],
                                        "pass_rate": x["pass_rate"]}) + "\n")
        done = step + 1
        if done % args.save_every == 0 or done == args.stop_at:
            distributed.save_checkpoint(ckpt_root, done, model, optimizer,
                                        {"step": done, "scheduler": scheduler.state_dict()}, keep=args.keep)
        if done == args.stop_at:
            log(f"stopping after step {done} as asked (--stop-at); continue with --resume")
            distributed.teardown()
            return
    bar.close()

    # Export the policy in the HF layout (Qwen3ForCausalLM) with its tokenizer.
    final = distributed.export_hf(model, tokenizer, os.path.join(args.out, "final"))
    if rank == 0:
        rows = [json.loads(l) for l in open(metrics_path)]
        print("\n" + "=" * 72)
        print(f"{'step':>5} {'reward':>8} {'0-spread':>8} {'valid':>6} {'tests':>6} {'len':>5} {'gen s':>6} "
              f"{'rew s':>6} {'upd s':>6} {'gen tok/s':>9} {'upd tok/s':>9}")
        for r in rows:
            tests = f"{r['test_pass_rate']:.2f}" if r["test_pass_rate"] is not None else "-"
            print(f"{r['step']:>5} {r['reward_mean']:>8.3f} {r['zero_spread_frac']:>8.2f} {r['valid_rate']:>6.2f} "
                  f"{tests:>6} {r['response_len_mean']:>5.0f} {r['time_generate']:>6.1f} {r['time_reward']:>6.1f} "
                  f"{r['time_update']:>6.1f} {r['rollout_tokens_per_s']:>9.0f} {r['update_tokens_per_s']:>9.0f}")
        if all(r["valid_rate"] == 0 for r in rows):
            print("no response held exactly one parsable code block, so every reward was 0 and every group had zero "
                  "spread: nothing to learn from (expected of a random tiny policy; a pretrained policy writes code). "
                  "tests/test_train_rl.py shows this loop learning a toy reward.")
        print(f"policy: {final}\nmetrics: {metrics_path}\nsamples: {args.out}/samples_rank*.jsonl")
        # how far the run moved: the mean of the first k steps against the mean of the last k
        k = max(1, min(3, len(rows) // 2))
        first, last = rows[:k], rows[-k:]

        def change(key, fmt):
            a, b = (sum(r[key] for r in part) / k for part in (first, last))
            return f"{a:{fmt}} -> {b:{fmt}} ({b - a:+{fmt}})"

        tests = all(r["test_pass_rate"] is not None for r in rows)
        print(f"first {k} vs last {k} steps (means): valid-code rate {change('valid_rate', '.2f')}, reward "
              f"{change('reward_mean', '.3f')}" + (f", unit-test pass rate {change('test_pass_rate', '.2f')}" if tests else ""))
    distributed.teardown()


if __name__ == "__main__":
    main()
