"""GRPO for a code policy, rewarded by the reward model instead of unit tests (CodeScaler, METHOD.md sections 3-4).

    torchrun --standalone --nproc_per_node=2 train_rl.py        # the built-in demo on 2 CPU ranks
    torchrun --nproc_per_node=8 train_rl.py --policy Qwen/Qwen3-8B-Base --rm LARK-Lab/CodeScaler-8B \
        --data problems.jsonl --out runs/rl8b --prompts-per-step 128 --max-new-tokens 16384
    --reward exec is the RLVR baseline (1 if every unit test passes, else 0); --reward mix blends both.
The demo (no --policy) starts from sft.py's warm start (runs/sft/final) with train_rm.py's reward model
(runs/rm/final) on the 16 short HumanEval train problems the warm start was trained on (demo.demo_problems):
16 steps of all 16 prompts x 8 samples, 64 new tokens, one optimizer step per rollout at lr 2e-4 after 2
warm-up steps (about 5 min on 2 CPU ranks); its last line compares the mean of the first 3 steps with that of
the last 3 (valid-code rate, reward, unit-test pass rate).

Each step, top to bottom:
  1. sample   every rank takes its share of --prompts-per-step prompts and draws --group-size samples of
              each with the KV-cached sampler (generate.py) from a full replica of the policy;
  2. reward   strict extraction (extract.py); the reward model scores [problem, code] with its own
              tokenizer and chat format; shaped_reward makes it softplus(score), 0 for invalid code;
              the sandbox runs the tests where they exist (the reward for `exec`, a metric for `rm`);
  3. advantages  per group: (R - mean) / (std + 1e-6);
  4. update   --mini-batches optimizer steps of PPO-clip over the rollouts, in packed token-budget
              micro-batches; old log-probs from the training model: a no-grad forward for the rows of
              later mini-batches, the update's own forward (detached) for the first, which is on-policy.

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

As the authors ran it (METHOD.md section 4): prompts rendered with the policy's chat template and its
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
from dataclasses import dataclass, field, fields

import torch
from tqdm import tqdm

import distributed
from data import Problem, load_problems
from demo import DEMO_PROBLEMS, demo_problems
from extract import extract_code
from generate import free_rollout_caches, generate
from hub import local_dir
from inputs import InputError, check_output_dir, run_main
from logprobs import response_logprobs
from model import check_checkpoint, param_count, read_config
from reward import RewardModel, shaped_reward, token_budget_batches
from tokenizer import load_tokenizer
from trainer import HERE, RunDir, compute_dtype, tiny_demo_checkpoint, tokenizer_dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # models and data
    p.add_argument("--policy", default=None, help="causal LM (hub id or directory); default: the demo policy "
                   "warm-started by sft.py (runs/sft/final) if present, else a tiny random Qwen3")
    p.add_argument("--rm", default=None, help="reward model; default: runs/rm/final if present, else tiny random")
    p.add_argument("--data", default=None, help="problems JSONL (question, optional tests); default: HumanEval "
                   "train (demo: the 16 with the shortest solutions, the ones sft.py's demo answers)")
    p.add_argument("--out", default=os.path.join(HERE, "runs", "rl"),
                   help="output directory (metrics.jsonl, samples, checkpoints, final/); default: runs/rl beside "
                   "this script")
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
    p.add_argument("--rm-max-len", type=int, default=None, help="reward-model input tokens, right-truncated; default: "
                   "the max_len train_rm.py saved with the RM, else 4096 (paper: 4096)")
    p.add_argument("--exec-workers", type=int, default=2, help="sandbox processes per rank")
    # rollouts
    p.add_argument("--prompts-per-step", type=int, default=None, help="over all ranks (default 128; demo: all 16)")
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
    p.add_argument("--mini-batches", type=int, default=2, help="optimizer steps per rollout (paper: 2; demo: 1)")
    p.add_argument("--micro-batch-tokens", type=int, default=8192,
                   help="token budget of a packed micro-batch: activations grow with it (logits do not: they "
                   "are made a chunk of rows at a time, logprobs.token_logprobs); see `python bench.py memory`")
    p.add_argument("--lr", type=float, default=None, help="default 1e-6 (demo 2e-4)")
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
# Rollouts, and forward passes over them in the same number of micro-batches on every rank


@dataclass
class Rollouts:
    """This rank's samples of one step, one row per response: rows g*G ... g*G + G - 1 are the group of the
    g-th prompt. Step 1 fills the first fields, step 3 `adv` and `mask`, step 4 `old_logp` (and `ref_logp`).
    Fields nobody filled stay empty lists (a test builds rollouts from prompt, response, adv and mask only)."""
    prompt: list[list[int]]  # prompt token ids
    response: list[list[int]]  # response token ids, the stop token kept (the policy learns to emit it)
    problem: list[Problem] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)  # cut at --max-new-tokens
    sampler_logp: list[torch.Tensor] = field(default_factory=list)  # [len(response)] each: what the sampler drew with
    adv: list[float] = field(default_factory=list)  # the group advantage, on every token of the response
    mask: list[float] = field(default_factory=list)  # 1.0: trained on; 0.0: left out of the update
    old_logp: list[torch.Tensor | None] = field(default_factory=list)  # [len(response)] each: the policy before
    # the update; None on the rows of the first mini-batch, whose update forward is the old policy (update())
    ref_logp: list[torch.Tensor] = field(default_factory=list)  # [len(response)] each: the reference (--kl-coef)

    def __len__(self) -> int:
        return len(self.response)

    def rows(self, index: list[int]) -> "Rollouts":
        """The rollouts at `index`, every filled field."""
        return Rollouts(**{f.name: [getattr(self, f.name)[i] for i in index] if getattr(self, f.name) else []
                           for f in fields(self)})

    def micro_batches(self, max_tokens: int) -> list[list[int]]:
        """Row indices in packed token-budget micro-batches (prompt + response tokens)."""
        return token_budget_batches([len(p) + len(r) for p, r in zip(self.prompt, self.response)], max_tokens)


SPARE = Rollouts(prompt=[[0]], response=[[0]])  # a spare micro-batch: the same FSDP collectives, no contribution


@torch.no_grad()
def rollout_logprobs(model, rollouts: Rollouts, args, device) -> list[torch.Tensor]:
    """Per row, the log-probs [len(response)] of its response tokens under `model` (the old policy, or the
    reference), in packed micro-batches, the same number on every rank."""
    out = [None] * len(rollouts)
    for _, _, batch in distributed.lockstep(rollouts.micro_batches(args.micro_batch_tokens), device):
        chunk = rollouts.rows(batch) if batch is not None else SPARE
        logp, _, seq_ids = response_logprobs(model, chunk.prompt, chunk.response, args.temperature)
        for k, row in enumerate(batch or []):
            out[row] = logp[seq_ids == k]
    return out


def update(model, optimizer, rollouts: Rollouts, args, world: int, device) -> tuple[dict, list]:
    """One optimizer step of PPO-clip on this rank's share of a mini-batch. Gradients are scaled so that
    FSDP's average over ranks gives the token-mean (or seq-mean) over the whole global mini-batch.
    Rows whose old_logp is None are on-policy (the first mini-batch of a step: no optimizer step since the
    rollout): the old log-probs are this forward's own, detached, so the ratio is exactly 1 and a separate
    no-grad forward over them is saved. -> (metric sums, per row the old log-probs used, None if masked)"""
    trained = [i for i, m in enumerate(rollouts.mask) if m > 0]
    train = rollouts.rows(trained)
    old_used = [None] * len(rollouts)
    count = sum(len(r) for r in train.response) if args.loss_agg == "token-mean" else len(train)
    global_count = max(distributed.all_reduce_sum({"n": count}, device)["n"], 1.0)
    sums = {"tokens": 0.0, "clip_low": 0.0, "clip_high": 0.0, "kl_old": 0.0, "entropy": 0.0, "kl_ref": 0.0}
    for i, n, batch in distributed.lockstep(train.micro_batches(args.micro_batch_tokens), device):
        distributed.set_gradient_sync(model, i, n, every_micro_batch=args.grad_sync == "micro-batch")
        chunk = train.rows(batch) if batch is not None else SPARE
        logp, entropy, seq_ids = response_logprobs(model, chunk.prompt, chunk.response, args.temperature,
                                                   with_entropy="grad" if args.entropy_coef > 0 else True)
        if batch is None:  # a spare micro-batch: same collectives, no contribution
            (logp.sum() * 0.0).backward()
            continue
        if chunk.old_logp[0] is None:  # on-policy rows: the policy before this optimizer step is this one
            old = logp.detach()  # [N]
        else:
            old = torch.cat(chunk.old_logp)  # [N]
        for k, row in enumerate(batch):
            old_used[trained[row]] = old[seq_ids == k]
        adv = torch.tensor(chunk.adv, device=device)[seq_ids]  # [rows] -> [N]
        mask = torch.ones_like(logp)
        per_token, low, high = ppo_clip_loss(logp, old, adv, args.clip_low, args.clip_high, args.dual_clip)
        if args.kl_coef > 0:
            kl = kl_k3(logp, torch.cat(chunk.ref_logp))
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
    return {**sums, "grad_norm": 0.0 if skipped else grad_norm, "skipped": float(skipped)}, old_used


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
# Step 1 (sample) and step 2 (reward)


def step_problem_indices(step: int, n_problems: int, prompts_per_step: int, seed: int, rank: int, world: int):
    """Indices of the problems this rank samples at `step`: the step's window of a seeded shuffle of all
    problems (a new shuffle each epoch), every world-th one from this rank's position."""
    epoch, offset = divmod(step * prompts_per_step, n_problems)
    order = torch.randperm(n_problems, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return [order[(offset + k) % n_problems].item() for k in range(prompts_per_step)][rank::world]


def sample(replica, tokenizer, problems, prompts, indices: list[int], max_new: int, step: int, rank: int, args):
    """Step 1: G samples of each problem at `indices` from the refreshed replica -> (Rollouts, response texts
    for the reward: stop token cut, no special tokens, so "```<|im_end|>" never reaches extraction)."""
    out = generate(replica, [prompts[i] for i in indices], num_samples=args.group_size, max_new_tokens=max_new,
                   temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, stop_ids=tokenizer.eos_ids,
                   pad_id=tokenizer.pad_id, seed=args.seed * 1_000_003 + step * 1_009 + rank,
                   memory_budget=int(args.rollout_memory_gb * 2**30) if args.rollout_memory_gb else None)
    if next(replica.parameters()).device.type == "cuda" and not args.keep_rollout_cache:
        free_rollout_caches()  # the update needs that memory (bench.py memory)
        torch.cuda.empty_cache()
    response, truncated, texts = rollout_responses(out, tokenizer)
    rows = [indices[row // args.group_size] for row in range(len(response))]
    rollouts = Rollouts(prompt=[prompts[i] for i in rows], response=response, problem=[problems[i] for i in rows],
                        truncated=truncated,
                        sampler_logp=[out.raw_logprobs[row, : len(r)] for row, r in enumerate(response)])
    return rollouts, texts


def rollout_responses(out, tokenizer) -> tuple[list[list[int]], list[bool], list[str]]:
    """Sampler output -> per row: the response's token ids (the stop token kept: the policy is trained to
    emit it), whether it was cut at --max-new-tokens, and its text for the reward (stop token cut, no
    special tokens: "```<|im_end|>" must not reach extraction)."""
    lengths, stopped = out.lengths.tolist(), out.stopped.tolist()
    ids = [out.tokens[row, :n].tolist() for row, n in enumerate(lengths)]
    return ids, [not s for s in stopped], tokenizer.decode_responses(ids, stopped)


def compute_rewards(problems, responses, args, rm, reward_fn=None, response_ids=None) -> list[dict]:
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
        # without a forward pass. A sharded RM keeps the ranks in step however many each scores.
        scored = [i for i, c in enumerate(codes) if c or args.shaping == "none"]
        scores = rm.score([problems[i].question for i in scored], [codes[i] for i in scored])
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
# Setup: models and prompts


def demo_checkpoints(args, rank: int, need_rm: bool, log) -> None:
    """The demo (no --policy): the policy sft.py warm-started if it is there, else a tiny random one; and
    (no --rm) train_rm.py's reward model if it is there, else a tiny random one. Every default is beside
    this script (HERE), wherever it is launched from."""
    if args.policy is None:
        warm = os.path.join(HERE, "runs", "sft", "final")
        if os.path.exists(os.path.join(warm, "config.json")):
            args.policy = warm
            log(f"policy: the demo policy warm-started by sft.py, {warm}")
        else:
            log(f"no warm-started policy at {warm}: using a tiny RANDOM policy, which writes no code, so every "
                "reward will be 0 (run `torchrun --standalone --nproc_per_node=2 sft.py` first)")
            args.policy = tiny_demo_checkpoint(os.path.join(args.out, "init_policy"), rank, seed=args.seed)
    if need_rm and args.rm is None:
        default_rm = os.path.join(HERE, "runs", "rm", "final")
        if os.path.exists(os.path.join(default_rm, "config.json")):
            args.rm = default_rm
        else:
            log(f"no trained reward model at {default_rm}: using a tiny RANDOM one (run train_rm.py first)")
            args.rm = tiny_demo_checkpoint(os.path.join(args.out, "init_rm"), rank, head="score", seed=args.seed + 1)
    torch.distributed.barrier()


def load_reward_model(args, world: int, device) -> RewardModel:
    """The frozen reward model, FSDP-sharded when asked or when its weights exceed --rm-shard-above-gb."""
    rm_dtype = compute_dtype(device)
    rm_dir = local_dir(args.rm, allow_patterns=["*.json", "*.safetensors", "*.jinja"])
    rm_bytes = param_count(read_config(rm_dir)[0], "score") * rm_dtype.itemsize
    args.rm_sharded = args.rm_sharded or (world > 1 and rm_bytes > args.rm_shard_above_gb * 2**30)
    shard = (lambda model: distributed.shard(model, device)) if args.rm_sharded else None
    return RewardModel.from_pretrained(rm_dir, dtype=rm_dtype, device=device, max_len=args.rm_max_len, shard=shard)


def encode_prompts(problems, tokenizer, args, log):
    """Problems rendered with the policy's chat template and tokenized once; longer than --max-prompt-len: left out."""
    prompts = [tokenizer.encode(tokenizer.render_prompt(p.question, enable_thinking=not args.no_thinking))
               for p in problems]
    keep = [i for i, ids in enumerate(prompts) if len(ids) <= args.max_prompt_len]
    if len(keep) < len(problems):
        log(f"skipping {len(problems) - len(keep)} prompts longer than {args.max_prompt_len} tokens")
    if not keep:
        raise InputError(args.data or "humaneval",
                         f"every prompt is longer than --max-prompt-len {args.max_prompt_len}")
    return [problems[i] for i in keep], [prompts[i] for i in keep]


# -----------------------------------------------------------------------------
# Metrics and the summary


def step_metrics(step, rollouts, rewards, R, zero_spread, gap, sums, lr_used, times, args, device) -> dict:
    """One metrics.jsonl record, summed over ranks. R [P, G] rewards; gap [tokens] |sampler - trainer| log-prob;
    sums: the update's sums over mini-batches; times: (t0 sample, t1 reward, t2 update, t3 done)."""
    t0, t1, t2, t3 = times
    tested = [x["pass_rate"] for x in rewards if x["pass_rate"] is not None]
    lengths = [len(r) for r in rollouts.response]
    local = {"n": len(rollouts), "reward": float(R.sum()), "reward_sq": float((R**2).sum()),
             "zero_spread": float(zero_spread.sum()), "groups": float(R.shape[0]),
             "valid": sum(x["valid"] for x in rewards), "tested": len(tested), "pass": sum(x == 1.0 for x in tested),
             "len_sum": sum(lengths), "truncated": sum(rollouts.truncated),
             "prompt_tokens": sum(len(p) for p in rollouts.prompt), "gap_sum": gap.sum().item(),
             "gap_n": len(gap), **sums}
    g = distributed.all_reduce_sum(local, device)
    len_max = distributed.all_reduce_max(max(lengths), device)
    gap_max = max(distributed.all_gather_floats(gap.max().item() if len(gap) else 0.0, device))
    rollout_s = distributed.all_gather_floats(t1 - t0, device)  # a slow rank holds every other one
    n, trained_tokens = g["n"], max(g["tokens"], 1.0)
    mean = g["reward"] / n
    return {"step": step + 1, "reward_mean": mean, "reward_std": math.sqrt(max(g["reward_sq"] / n - mean**2, 0.0)),
            "zero_spread_frac": g["zero_spread"] / g["groups"], "valid_rate": g["valid"] / n,
            "test_pass_rate": g["pass"] / g["tested"] if g["tested"] else None,
            "response_len_mean": g["len_sum"] / n, "response_len_max": len_max, "truncation_rate": g["truncated"] / n,
            "clip_frac_low": g["clip_low"] / trained_tokens, "clip_frac_high": g["clip_high"] / trained_tokens,
            "approx_kl": g["kl_old"] / trained_tokens, "entropy": g["entropy"] / trained_tokens,
            "kl_ref": g["kl_ref"] / trained_tokens if args.kl_coef > 0 else None,
            "grad_norm": sums["grad_norm"] / max(args.mini_batches - sums["skipped"], 1),
            "skipped_updates": int(sums["skipped"]), "lr": lr_used,
            "logprob_gap_mean": g["gap_sum"] / max(g["gap_n"], 1), "logprob_gap_max": gap_max,
            "time_generate": t1 - t0, "time_generate_per_rank": rollout_s,
            "time_reward": t2 - t1, "time_update": t3 - t2,
            "rollout_tokens_per_s": g["len_sum"] / (t1 - t0),
            "update_tokens_per_s": (g["len_sum"] + g["prompt_tokens"]) * (args.mini_batches + 1) / (t3 - t2)}


def write_samples(path: str, step: int, rollouts: Rollouts, responses: list[str], rewards: list[dict], G: int):
    """The first group of this rank's step (response, extracted code, reward) for reading what the policy writes."""
    with open(path, "a") as f:
        for problem, text, x in list(zip(rollouts.problem, responses, rewards))[:G]:
            f.write(json.dumps({"step": step + 1, "problem_id": problem.problem_id, "response": text,
                                "code": x["code"], "reward": x["reward"], "score": x["score"],
                                "pass_rate": x["pass_rate"]}) + "\n")


def print_summary(rows: list[dict], final: str, metrics_path: str, out: str) -> None:
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
    print(f"policy: {final}\nmetrics: {metrics_path}\nsamples: {out}/samples_rank*.jsonl")
    # how far the run moved: the mean of the first k steps against the mean of the last k
    k = max(1, min(3, len(rows) // 2))
    first, last = rows[:k], rows[-k:]

    def change(key, fmt):
        a, b = (sum(r[key] for r in part) / k for part in (first, last))
        return f"{a:{fmt}} -> {b:{fmt}} ({b - a:+{fmt}})"

    tests = all(r["test_pass_rate"] is not None for r in rows)
    print(f"first {k} vs last {k} steps (means): valid-code rate {change('valid_rate', '.2f')}, reward "
          f"{change('reward_mean', '.3f')}" + (f", unit-test pass rate {change('test_pass_rate', '.2f')}" if tests else ""))


# -----------------------------------------------------------------------------


def given(argv, flag: str) -> bool:
    """Whether the command line sets `flag` (as argparse reads it, abbreviations included): a demo default
    may replace a flag's default, never a value the user gave."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument(flag, default=None)
    return probe.parse_known_args(sys.argv[1:] if argv is None else argv)[0].__dict__[flag.lstrip("-").replace("-", "_")] is not None


def main(argv=None, reward_fn=None):
    args = parse_args(argv)
    # Inputs, checked on every rank before the process group exists: a bad problems file or checkpoint stops
    # every rank here with one line (inputs.run_main), before any collective could wait on another.
    if args.policy is None and args.data is None:  # the demo: the short problems sft.py's demo answers
        problems = demo_problems()
    else:
        problems = load_problems(args.data or "humaneval", split="train")
    check_output_dir(args.out)
    if args.policy is not None:
        check_checkpoint(args.policy, head="lm_head")
    if args.rm is not None and reward_fn is None and args.reward in ("rm", "mix"):
        check_checkpoint(args.rm, head="score")
    rank, world, device = distributed.setup(timeout=args.collective_timeout_min * 60)
    demo = args.policy is None
    # The demo: every one of the 16 problems each step (a step's reward then compares like with like, not
    # whichever half of the problems it drew), one on-policy optimizer step per rollout at lr 2e-4 (5e-4 with
    # 2 mini-batches pushed the pass rate down; 1e-4 left it flat), 2 warm-up steps
    prompts_per_step = args.prompts_per_step or (DEMO_PROBLEMS if demo else 128)
    max_new = args.max_new_tokens or (64 if demo else 16384)
    steps = args.steps or (16 if demo else 250)
    lr = args.lr or (2e-4 if demo else 1e-6)
    if demo and not given(argv, "--warmup-steps"):
        args.warmup_steps = 2
    if demo and not given(argv, "--mini-batches"):
        args.mini_batches = 1
    log = tqdm.write if rank == 0 else (lambda *a, **k: None)
    if prompts_per_step % world:  # the same on every rank: all stop here
        raise InputError("--prompts-per-step", f"{prompts_per_step} must divide among {world} ranks")
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    run = RunDir(args.out, rank, log)

    # Models: the training policy (FSDP), its rollout replica, the frozen reward model, the reference.
    need_rm = reward_fn is None and args.reward in ("rm", "mix")
    demo_checkpoints(args, rank, need_rm, log)
    tokenizer = load_tokenizer(tokenizer_dir(args.policy))
    # Each rank reads only its shards of the FSDP models; the replica is filled by the refresh of step 1.
    model = distributed.load_sharded(args.policy, device, dtype, head="lm_head")
    model.set_activation_checkpointing(args.activation_checkpointing == "on" or
                                       (args.activation_checkpointing == "auto" and not demo))
    if args.grad_sync == "auto":
        args.grad_sync = "step" if demo else "micro-batch"
    replica = distributed.empty_replica(model, compute_dtype(device, dtype), device)
    rm = load_reward_model(args, world, device) if need_rm else None
    reference = None
    if args.kl_coef > 0:
        reference = distributed.load_sharded(args.policy, device, dtype, head="lm_head").requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=args.weight_decay, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_factor(s, args.warmup_steps))
    problems, prompts = encode_prompts(problems, tokenizer, args, log)
    log(f"{len(problems)} problems; policy {args.policy}; reward {args.reward}"
        f"{' (' + args.rm + ')' if rm else ''}; {world} rank(s) on {device}; {steps} steps of "
        f"{prompts_per_step} prompts x {args.group_size} samples")
    resumed = run.resume(model, optimizer, scheduler, args.resume)
    start = resumed["step"] if resumed else 0

    G = args.group_size
    bar = tqdm(range(start, steps), initial=start, total=steps, disable=rank != 0, desc="train_rl", dynamic_ncols=True)
    for step in bar:
        # 1. sample: this rank's prompts, G samples each, from the replica refreshed with the current weights
        t0 = time.perf_counter()
        distributed.refresh_replica(model, replica)
        indices = step_problem_indices(step, len(problems), prompts_per_step, args.seed, rank, world)
        rollouts, responses = sample(replica, tokenizer, problems, prompts, indices, max_new, step, rank, args)
        t1 = time.perf_counter()

        # 2. reward
        rewards = compute_rewards(rollouts.problem, responses, args, rm, reward_fn, rollouts.response)
        t2 = time.perf_counter()

        # 3. advantages per group
        R = torch.tensor([x["reward"] for x in rewards], dtype=torch.float64).view(len(indices), G)  # [P, G]
        adv, zero_spread = group_advantages(R, scale_by_std=not args.no_std)
        rollouts.adv = adv.view(-1).tolist()
        rollouts.mask = [0.0 if (args.mask_truncated and cut) or (args.skip_zero_spread and zero_spread[i // G])
                         else 1.0 for i, cut in enumerate(rollouts.truncated)]

        # 4. update: one optimizer step per mini-batch of groups. The old policy is the policy that sampled;
        # the first mini-batch's own forward is that policy, so only later mini-batches need their old
        # log-probs now, before any step (at the paper's 2 mini-batches: half the no-grad forward saved)
        groups = list(range(len(indices)))
        mini_batches = [[g * G + j for g in groups[k * len(groups) // args.mini_batches:
                                                   (k + 1) * len(groups) // args.mini_batches] for j in range(G)]
                        for k in range(args.mini_batches)]
        later = [row for rows in mini_batches[1:] for row in rows]
        rollouts.old_logp = [None] * len(rollouts)
        for row, logp in zip(later, rollout_logprobs(model, rollouts.rows(later), args, device)):
            rollouts.old_logp[row] = logp
        if reference is not None:
            rollouts.ref_logp = rollout_logprobs(reference, rollouts, args, device)
        sums = {}
        for rows in mini_batches:
            part, old_used = update(model, optimizer, rollouts.rows(rows), args, world, device)
            sums = {key: sums.get(key, 0.0) + v for key, v in part.items()}
            for row, old in zip(rows, old_used):
                rollouts.old_logp[row] = old
        # The sampler's log-probs (replica, bf16 on CUDA, decode kernels) against the trainer's (FSDP model,
        # float32 master weights, packed forward) for the same tokens: the rollout/trainer mismatch
        gap = torch.cat([(s.to(o) - o).abs() for s, o in zip(rollouts.sampler_logp, rollouts.old_logp)
                         if o is not None] or [torch.zeros(0)])
        lr_used = optimizer.param_groups[0]["lr"]
        scheduler.step()
        t3 = time.perf_counter()

        record = step_metrics(step, rollouts, rewards, R, zero_spread, gap, sums, lr_used, (t0, t1, t2, t3), args,
                              device)
        run.append_metrics(record)
        bar.set_postfix(reward=f"{record['reward_mean']:.3f}", valid=f"{record['valid_rate']:.2f}",
                        len=f"{record['response_len_mean']:.0f}")
        if (step + 1) % args.sample_every == 0 or step == start:
            write_samples(os.path.join(args.out, f"samples_rank{rank}.jsonl"), step, rollouts, responses, rewards, G)
        if run.checkpoint(step + 1, model, optimizer, scheduler, args.save_every, args.stop_at, args.keep):
            return
    bar.close()

    # Export the policy in the HF layout (Qwen3ForCausalLM) with its tokenizer.
    final = distributed.export_hf(model, tokenizer, os.path.join(args.out, "final"))
    if rank == 0:
        print_summary(run.read_metrics(), final, run.metrics, args.out)
    distributed.teardown()


if __name__ == "__main__":
    run_main(main)
