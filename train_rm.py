"""Train a code reward model with the pairwise Bradley-Terry loss (CodeScaler, METHOD.md sections 1-2).

    torchrun --standalone --nproc_per_node=2 train_rm.py            # the built-in demo (CPU: 2 gloo ranks)
    torchrun --nproc_per_node=8 train_rm.py --model Skywork/Skywork-Reward-V2-Qwen3-8B \
        --data pairs_train.jsonl --eval-data pairs_heldout.jsonl --out runs/rm8b --lr 2e-6
    multi-node: torchrun's usual --nnodes/--node-rank/--rdzv-endpoint flags; `python train_rm.py` is 1 rank.

The algorithm, top to bottom:
  1. Pairs (question, chosen code, rejected code) from data.load_pairs; each side rendered as
     [user: question, assistant: code] with the Qwen3 chat format and right-truncated to --max-len.
  2. Each optimizer step takes a global batch of --global-batch pairs (a seeded shuffle per epoch; the
     remainder of an epoch is dropped); rank r takes pairs r, r+K, r+2K, ... of it.
  3. A rank packs its pairs into micro-batches of at most --micro-batch-tokens tokens (both sides of a
     pair in the same micro-batch), one packed row each, and accumulates gradients of
         sum over its pairs of -log sigmoid(r_chosen - r_rejected - margin) + c * (r_chosen + r_rejected)^2
     scaled by K / global_batch, so FSDP's gradient average over ranks is the mean over the global batch,
     however the pairs fall into micro-batches. Ranks with fewer micro-batches run empty ones (weight 0)
     so that every rank makes the same FSDP collectives.
  4. AdamW, linear warm-up then cosine decay to 0, gradient clipping.
  5. Held-out pairwise accuracy and margin before training (the starting model), every --eval-every
     steps and at the end.

Outputs under --out: metrics.jsonl (every step and eval), checkpoints/step_* (resumable: model,
optimizer, scheduler, RNG, data position; --resume picks the newest complete one), and final/, an HF
Qwen3ForSequenceClassification checkpoint (num_labels 1, pad_token_id, tokenizer files) that
transformers and reward.RewardModel load.

Choices the paper leaves open (learning rate, batch size, epochs are not public): defaults follow common
reward-model practice (lr 2e-6 for a pretrained RM, 1 epoch, warm-up 3% of steps); the demo's tiny random
model uses lr 1e-3 (it starts from nothing) and 1.5 epochs, to finish in a few minutes on 2 CPU ranks.
"""
import argparse
import json
import os
import time

import torch
from tqdm import tqdm

import distributed
from data import load_pairs
from inputs import InputError, atomic_write, check_output_dir, run_main
from model import check_checkpoint
from reward import (MAX_LEN_KEY, RewardModel, pair_metrics, packed_last_token_scores, pairwise_loss, summarize,
                    token_budget_batches)
from trainer import HERE, RunDir, clip_and_step, tiny_demo_checkpoint, warmup_cosine

# The demo's tiny random reward model (a few minutes of training on 2 CPU ranks).
DEMO_SHAPE = dict(hidden_size=128, intermediate_size=256, num_attention_heads=4, num_key_value_heads=2, head_dim=32)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # model and data
    p.add_argument("--model", default=None, help="reward model or causal LM: hub id or directory "
                   "(default: a tiny random Qwen3 written to OUT/init, for the demo)")
    p.add_argument("--tokenizer", default=None, help="default: the checkpoint's own, else the bundled Qwen3 one")
    p.add_argument("--data", default=os.path.join(HERE, "data/humaneval_pairs_train.jsonl"),
                   help="training pairs: JSONL/parquet file, directory or hub dataset id")
    p.add_argument("--eval-data", default=os.path.join(HERE, "data/humaneval_pairs_heldout.jsonl"),
                   help="held-out pairs ('' to skip evaluation)")
    p.add_argument("--out", default=os.path.join(HERE, "runs", "rm"),
                   help="output directory (default: runs/rm beside this script, where train_rl.py and infer.py look)")
    p.add_argument("--max-len", type=int, default=4096, help="tokens per reward-model input (right-truncated); "
                   "saved in final/config.json, where RewardModel.from_pretrained and infer.py read it back")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="master weights and optimizer state (on CUDA the compute runs in bf16 regardless); "
                   "float64 makes runs that batch differently agree to round-off, for checking parity")
    # optimisation
    p.add_argument("--global-batch", type=int, default=32, help="pairs per optimizer step, over all ranks")
    p.add_argument("--micro-batch-tokens", type=int, default=8192, help="token budget of one packed micro-batch")
    p.add_argument("--epochs", type=float, default=None, help="default 1 (demo: 1.5)")
    p.add_argument("--max-steps", type=int, default=None, help="cap on optimizer steps")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-6; demo: 1e-3)")
    p.add_argument("--warmup", type=float, default=0.03, help="warm-up steps, as a fraction of all steps")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    p.add_argument("--grad-clip", type=float, default=1.0, help="gradient-norm clip")
    p.add_argument("--margin", type=float, default=0.0, help="Bradley-Terry margin (0 = the paper's loss)")
    p.add_argument("--center-coef", type=float, default=0.0, help="reward-centering coefficient (0 = off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo init, the shuffle and the RNG")
    p.add_argument("--activation-checkpointing", choices=["auto", "on", "off"], default="auto",
                   help="recompute each block in backward (about +33%% block compute, activations kept: one "
                   "[tokens, hidden] per block); auto: on for a real checkpoint, off for the demo")
    p.add_argument("--grad-sync", choices=["auto", "micro-batch", "step"], default="auto",
                   help="when FSDP reduce-scatters gradients: after every micro-batch (they stay sharded) or once "
                   "per step (full float32 gradients kept between micro-batches, 30 GB at 8B, one reduce-scatter "
                   "fewer per micro-batch); auto: micro-batch for a real checkpoint, step for the demo")
    # evaluation, checkpoints
    p.add_argument("--eval-every", type=int, default=50, help="steps between held-out evaluations")
    p.add_argument("--save-every", type=int, default=100, help="steps between resumable checkpoints")
    p.add_argument("--keep", type=int, default=2, help="resumable checkpoints kept")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    p.add_argument("--stop-at", type=int, default=None,
                   help="stop after this step as if interrupted (a checkpoint is written); for testing resume")
    p.add_argument("--export-dtype", choices=["float32", "bfloat16"], default=None,
                   help="dtype of final/ (default: bfloat16 on CUDA, float32 on CPU)")
    return p.parse_args(argv)


# -----------------------------------------------------------------------------
# Setup: the model and the tokenized pairs


def load_reward_model(args, rank: int, device) -> RewardModel:
    """--model, or the demo's tiny random Qwen3 with a score head (written through the real checkpoint path)."""
    if args.model is None:
        args.model = tiny_demo_checkpoint(os.path.join(args.out, "init"), rank, head="score", seed=args.seed,
                                          **DEMO_SHAPE)
        torch.distributed.barrier()
    return RewardModel.from_pretrained(args.model, dtype=getattr(torch, args.dtype), device=device,
                                       tokenizer=args.tokenizer, max_len=args.max_len)


def tokenize_pairs(rm: RewardModel, pairs) -> tuple[list[tuple[list[int], list[int]]], int]:
    """Pairs -> [(chosen ids, rejected ids)] rendered as the RM reads them, and how many inputs were truncated."""
    chosen = rm.encode([p.question for p in pairs], [p.chosen for p in pairs])
    rejected = rm.encode([p.question for p in pairs], [p.rejected for p in pairs])
    return list(zip(chosen.ids, rejected.ids)), chosen.truncated + rejected.truncated


# -----------------------------------------------------------------------------
# Micro-batches that keep every rank in step

EMPTY_PAIR = ([0], [0])  # a spare micro-batch's input: the same FSDP collectives as the other ranks, weight 0


def pair_microbatches(pairs: list[tuple[list[int], list[int]]], max_tokens: int) -> list[list[int]]:
    """Indices of pairs grouped so each group's chosen + rejected tokens fit the budget."""
    return token_budget_batches([len(c) + len(r) for c, r in pairs], max_tokens)


def score_pairs(model, pairs):
    """One packed forward over the pairs' chosen and rejected sequences -> (r_chosen [P], r_rejected [P])."""
    scores = packed_last_token_scores(model, [s for c, r in pairs for s in (c, r)])
    return scores[0::2], scores[1::2]


def empty_sums() -> dict:
    return {"pairs": 0.0, "correct": 0.0, "margin": 0.0, "chosen": 0.0, "rejected": 0.0, "reward_sq": 0.0}


@torch.no_grad()
def evaluate(model, pairs, args, rank, world, device) -> dict:
    """Held-out pairwise accuracy and margin over every rank's share of `pairs`."""
    model.eval()
    mine = pairs[rank::world]
    sums = empty_sums()
    for _, _, batch in distributed.lockstep(pair_microbatches(mine, args.micro_batch_tokens), device):
        rc, rr = score_pairs(model, [mine[j] for j in batch] if batch is not None else [EMPTY_PAIR])
        if batch is not None:
            sums = {k: sums[k] + v for k, v in pair_metrics(rc, rr).items()}
    model.train()
    return summarize(distributed.all_reduce_sum(sums, device))


def accumulate_gradients(model, mine, args, world, device) -> dict:
    """Step 3: this rank's pairs in packed micro-batches (the same count on every rank), gradients of the
    summed Bradley-Terry loss scaled by K / global_batch. Returns this rank's metric sums."""
    sums = {**empty_sums(), "loss": 0.0, "tokens": 0.0}
    for i, n, batch in distributed.lockstep(pair_microbatches(mine, args.micro_batch_tokens), device):
        distributed.set_gradient_sync(model, i, n, every_micro_batch=args.grad_sync == "micro-batch")
        pairs = [mine[j] for j in batch] if batch is not None else [EMPTY_PAIR]
        rc, rr = score_pairs(model, pairs)
        loss, metrics = pairwise_loss(rc, rr, args.margin, args.center_coef, reduction="sum")
        weight = world / args.global_batch if batch is not None else 0.0
        (loss * weight).backward()
        if batch is not None:
            sums = {k: sums[k] + metrics.get(k, 0.0) for k in sums}
            sums["loss"] += loss.item()
            sums["tokens"] += sum(len(c) + len(r) for c, r in pairs)
    return sums


def eval_record(step: int, result: dict) -> dict:
    return {"step": step, **{f"eval/{k}": v for k, v in result.items()}}


def save_max_len(final: str, max_len: int) -> None:
    """Record the input length the RM was trained with in final/config.json (`reward_max_len`), so that
    RewardModel.from_pretrained and infer.py read it back when the user does not pass one."""
    path = os.path.join(final, "config.json")
    with open(path) as f:
        config = json.load(f)
    config[MAX_LEN_KEY] = max_len
    with atomic_write(path) as f:
        json.dump(config, f, indent=2)


def print_summary(before, after, n_evals: int, final: str, metrics_path: str) -> None:
    print("\n" + "=" * 72)
    if before is not None:
        print(f"held-out pairwise accuracy: {before['accuracy']:.3f} before -> {after['accuracy']:.3f} after "
              f"({n_evals} pairs); mean margin {before['margin']:+.3f} -> {after['margin']:+.3f}")
    print(f"reward model: {final}")
    print(f"metrics: {metrics_path}")
    print(f"score with it:\n  python -c \"from reward import RewardModel; rm = RewardModel.from_pretrained('{final}'); "
          "print(rm.score(['Add two numbers.'], ['def add(a, b):\\n    return a + b']))\"")


# -----------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    # Inputs, checked on every rank before the process group exists: a malformed pairs file or checkpoint
    # stops every rank here with one line (inputs.run_main), before any collective could wait on another.
    train_pairs = load_pairs(args.data)
    eval_pairs = load_pairs(args.eval_data) if args.eval_data else []  # '' skips evaluation; an empty file is an error
    if len(train_pairs) < args.global_batch:
        raise InputError(args.data, f"{len(train_pairs)} pairs, fewer than one global batch of {args.global_batch} "
                         "(--global-batch)")
    check_output_dir(args.out)
    if args.model is not None:
        check_checkpoint(args.model, head="score")
    rank, world, device = distributed.setup()
    demo = args.model is None
    epochs = args.epochs if args.epochs is not None else (1.5 if demo else 1.0)
    lr = args.lr if args.lr is not None else (1e-3 if demo else 2e-6)
    torch.manual_seed(args.seed)
    log = tqdm.write if rank == 0 else (lambda *a, **k: None)

    # 1. the model and the pairs, tokenized once
    rm = load_reward_model(args, rank, device)
    model, tokenizer = rm.model, rm.tokenizer
    train, truncated = tokenize_pairs(rm, train_pairs)
    evals, eval_truncated = tokenize_pairs(rm, eval_pairs) if eval_pairs else ([], 0)
    steps_per_epoch = len(train) // args.global_batch
    total_steps = int(epochs * steps_per_epoch)
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)
    log(f"{len(train)} training pairs ({truncated} inputs truncated to {args.max_len} tokens), {len(evals)} held-out "
        f"pairs ({eval_truncated} truncated); {world} rank(s) on {device}; {total_steps} steps of "
        f"{args.global_batch} pairs")

    # Activation checkpointing, FSDP2, AdamW, warm-up + cosine.
    model.set_activation_checkpointing(args.activation_checkpointing == "on" or
                                       (args.activation_checkpointing == "auto" and not demo))
    if args.grad_sync == "auto":
        args.grad_sync = "step" if demo else "micro-batch"
    distributed.shard(model, device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=args.weight_decay, betas=(0.9, 0.95))
    lr_factor = warmup_cosine(max(1, int(args.warmup * total_steps)), total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    run = RunDir(args.out, rank, log)
    resumed = run.resume(model, optimizer, scheduler, args.resume)
    start_step, before = (resumed["step"], resumed["eval_before"]) if resumed else (0, None)

    # 5. (first) the starting model on the held-out pairs
    if before is None and evals:
        before = evaluate(model, evals, args, rank, world, device)
        run.append_metrics(eval_record(0, before))
        log(f"held-out before training: accuracy {before['accuracy']:.3f}, margin {before['margin']:+.3f}")

    bar = tqdm(range(start_step, total_steps), initial=start_step, total=total_steps, disable=rank != 0,
               desc="train_rm", dynamic_ncols=True)
    after = before
    for step in bar:
        t0 = time.perf_counter()
        # 2. this step's global batch and this rank's share of it
        epoch, offset = divmod(step, steps_per_epoch)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed * 100_003 + epoch))
        batch = order[offset * args.global_batch : (offset + 1) * args.global_batch].tolist()
        mine = [train[i] for i in batch[rank::world]]
        # 3. packed micro-batches, gradients accumulated; 4. clip, step
        sums = accumulate_gradients(model, mine, args, world, device)
        grad_norm = clip_and_step(model, optimizer, args.grad_clip)
        scheduler.step()
        sums = distributed.all_reduce_sum(sums, device)
        dt = time.perf_counter() - t0
        record = {"step": step + 1, "loss": sums["loss"] / sums["pairs"], **summarize(sums),
                  "lr": lr * lr_factor(step), "grad_norm": grad_norm,
                  "tokens_per_s": sums["tokens"] / dt, "pairs_per_s": sums["pairs"] / dt}
        run.append_metrics(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}",
                        tok_s=f"{record['tokens_per_s']:.0f}")
        # 5. evaluate, checkpoint
        done = step + 1
        if evals and (done % args.eval_every == 0 or done == total_steps):
            after = evaluate(model, evals, args, rank, world, device)
            run.append_metrics(eval_record(done, after))
            log(f"step {done}: held-out accuracy {after['accuracy']:.3f}, margin {after['margin']:+.3f}")
        if run.checkpoint(done, model, optimizer, scheduler, args.save_every, args.stop_at, args.keep,
                          eval_before=before):
            return
    bar.close()

    # Export: an HF Qwen3ForSequenceClassification checkpoint with the tokenizer files and its max_len.
    final = distributed.export_hf(model, tokenizer, os.path.join(args.out, "final"),
                                  getattr(torch, args.export_dtype) if args.export_dtype else None)
    if rank == 0:
        save_max_len(final, rm.max_len)
        print_summary(before, after, len(evals), final, run.metrics)
    distributed.teardown()


if __name__ == "__main__":
    run_main(main)
