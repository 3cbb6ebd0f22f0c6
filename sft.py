"""Supervised fine-tuning of a causal LM on (problem -> response) chat records: a warm start before RL.

    torchrun --standalone --nproc_per_node=2 sft.py        # the demo: warm-start the tiny policy (CPU, 2 ranks)
    torchrun --nproc_per_node=8 sft.py --model Qwen/Qwen3-8B-Base --data sft.jsonl --out runs/sft8b --lr 1e-5

The paper starts RL from the base model (Qwen3-8B-Base) and needs no SFT. This script exists because a
tiny random policy never writes a fenced code block, so on a CPU the RL demo would have nothing to learn
from; it is also the usual first step for users who warm-start a base model before RL.

The algorithm, top to bottom:
  1. Records {question, response} from a JSONL file (the demo: the 16 HumanEval train problems with the
     shortest reference solutions, --demo-problems, answered the way chat models answer, see `demo_records`;
     short answers are ones a 64-wide model can learn in minutes, and train_rl's demo trains on the same
     problems). Prompt = the policy tokenizer's chat prompt for the
     question (as train_rl renders it); target = the response's tokens and the stop token <|im_end|>, so
     the model learns to stop. Pairs longer than --max-len lose the end of the response.
  2. Each optimizer step takes --global-batch records (a seeded shuffle per epoch, remainder dropped);
     rank r takes records r, r+K, r+2K, ... of it.
  3. A rank packs its records into --micro-batch-tokens micro-batches (one packed row each, attention
     within a record only) and accumulates the summed negative log-likelihood of the target tokens,
     divided by the global batch's target-token count: the loss is the token mean over the global batch,
     whatever the packing and the number of ranks. Prompt tokens carry no loss.
  4. AdamW, linear warm-up then cosine decay to 0, gradient clipping.
The demo's length (48 epochs at lr 1e-2, response-token loss about 0.25) is chosen to stop short of
memorising: its policy writes a valid single block in about a third of its samples at T 0.6 (50 epochs:
95%, 45 epochs: 12%), so GRPO's groups differ in reward and have something to learn from.
Outputs under --out: metrics.jsonl, checkpoints/step_* (--resume), final/ (an HF Qwen3ForCausalLM with the
tokenizer files, which train_rl.py --policy and infer.py --policy load).
"""
import argparse
import os
import time

import torch
from tqdm import tqdm

import distributed
from data import read_records
from demo import DEMO_PROBLEMS, demo_problems, without_docstrings
from inputs import InputError, check_output_dir, run_main
from logprobs import response_logprobs
from model import check_checkpoint
from reward import token_budget_batches
from tokenizer import load_tokenizer
from trainer import HERE, RunDir, clip_and_step, tiny_demo_checkpoint, tokenizer_dir, warmup_cosine


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # model and data
    p.add_argument("--model", default=None,
                   help="causal LM (hub id or directory); default: the tiny random demo policy written to OUT/init")
    p.add_argument("--data", default=None,
                   help="JSONL of {question, response}; default: HumanEval train answered in chat style (the demo)")
    p.add_argument("--demo-problems", type=int, default=DEMO_PROBLEMS,
                   help=f"demo (no --data): answer only the N train problems with the shortest reference solutions "
                   f"(default {DEMO_PROBLEMS}; 0 = all 129); train_rl's demo trains on the same ones")
    p.add_argument("--out", default=os.path.join(HERE, "runs", "sft"), help="output directory")
    p.add_argument("--max-len", type=int, default=4096, help="prompt + response tokens; longer responses are cut")
    p.add_argument("--no-thinking", action="store_true",
                   help="render prompts with enable_thinking=False (must match train_rl's setting)")
    # optimisation
    p.add_argument("--epochs", type=float, default=None, help="passes over the data (default 2; demo 48: the "
                   "policy then writes a valid block in some of its samples, not all, so GRPO has spread to learn from)")
    p.add_argument("--global-batch", type=int, default=None, help="records per optimizer step, over all ranks "
                   "(default 16; demo 8)")
    p.add_argument("--micro-batch-tokens", type=int, default=8192, help="token budget of a packed micro-batch")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-5; demo 1e-2: a tiny "
                   "random model needs large steps)")
    p.add_argument("--warmup", type=float, default=0.05, help="warm-up, as a fraction of the steps")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    p.add_argument("--grad-clip", type=float, default=1.0, help="gradient-norm clip")
    p.add_argument("--seed", type=int, default=0, help="seed of the init (demo), the shuffle and the RNG")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="master weights")
    p.add_argument("--activation-checkpointing", choices=["auto", "on", "off"], default="auto",
                   help="recompute each block in backward; auto: on for a real checkpoint, off for the demo")
    p.add_argument("--grad-sync", choices=["auto", "micro-batch", "step"], default="auto",
                   help="FSDP reduce-scatter after every micro-batch (gradients stay sharded) or once per step; "
                   "auto: micro-batch for a real checkpoint, step for the demo")
    # checkpoints
    p.add_argument("--save-every", type=int, default=100, help="steps between checkpoints")
    p.add_argument("--keep", type=int, default=2, help="checkpoints kept")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint under OUT")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this step (checkpointed); for tests")
    return p.parse_args(argv)


# -----------------------------------------------------------------------------
# Data


OPENERS = ["Here is the code:", "Here is a solution.", "Sure! Here is the implementation:", "This works:"]
CLOSERS = ["", "", "This solves the task.", "It handles the edge cases."]


def demo_records(n: int | None = DEMO_PROBLEMS) -> list[dict]:
    """Each demo problem (`demo_problems`) answered as a chat model answers: a sentence, one fenced block with
    the reference solution (docstrings removed), sometimes a closing sentence. Deterministic."""
    records = []
    for i, p in enumerate(demo_problems(n)):
        closer = CLOSERS[i % len(CLOSERS)]
        response = f"{OPENERS[i % len(OPENERS)]}\n```python\n{without_docstrings(p.reference)}\n```"
        records.append({"question": p.question, "response": response + (f"\n{closer}" if closer else "")})
    return records


def load_records(path: str) -> list[dict]:
    records = []
    for n, rec in read_records(path):
        for field in ("question", "response"):
            if not isinstance(rec.get(field), str) or not rec[field]:
                raise InputError(f"{path}:{n}", f"missing or empty field '{field}' (a string)")
        records.append(rec)
    if not records:
        raise InputError(path, "no records (an empty file)")
    return records


def tokenize(records: list[dict], tokenizer, max_len: int, thinking: bool) -> list[dict]:
    """{question, response} -> {prompt ids, response ids ending in <|im_end|>}, cut to max_len."""
    stop = tokenizer.token_to_id("<|im_end|>")
    prompts = tokenizer.encode_batch([tokenizer.render_prompt(r["question"], enable_thinking=thinking) for r in records])
    responses = tokenizer.encode_batch([r["response"] for r in records])
    out = []
    for prompt, response in zip(prompts, responses):
        target = (response + [stop])[: max(max_len - len(prompt), 0)]
        if target:  # a prompt of max_len tokens or more leaves nothing to learn
            out.append({"prompt": prompt, "response": target})
    return out


# -----------------------------------------------------------------------------


def load_policy(args, rank: int, device):
    """--model, or the same tiny random demo policy train_rl's demo would start from; its tokenizer."""
    if args.model is None:
        args.model = tiny_demo_checkpoint(os.path.join(args.out, "init"), rank, seed=args.seed)
        torch.distributed.barrier()
    tokenizer = load_tokenizer(tokenizer_dir(args.model))
    return distributed.load_sharded(args.model, device, getattr(torch, args.dtype), head="lm_head"), tokenizer


def accumulate_gradients(model, mine: list[dict], args, world: int, device,
                         every_micro_batch: bool) -> tuple[float, int]:
    """Step 3: the summed NLL of this rank's target tokens in packed micro-batches (the same count on every
    rank), its gradient divided by the global batch's target-token count. -> (this rank's NLL, target tokens)"""
    targets = sum(len(d["response"]) for d in mine)
    global_targets = distributed.all_reduce_sum({"n": targets}, device)["n"]
    micro = token_budget_batches([len(d["prompt"]) + len(d["response"]) for d in mine], args.micro_batch_tokens)
    nll = 0.0
    for i, n, part in distributed.lockstep(micro, device):
        distributed.set_gradient_sync(model, i, n, every_micro_batch)
        chunk = [mine[j] for j in part] if part is not None else [{"prompt": [0], "response": [0]}]
        logp, _, _ = response_logprobs(model, [d["prompt"] for d in chunk], [d["response"] for d in chunk],
                                       temperature=1.0)  # [target tokens of the chunk]
        weight = world / global_targets if part is not None else 0.0  # FSDP averages over ranks
        (-logp.sum() * weight).backward()
        nll -= logp.sum().item() if part is not None else 0.0
    return nll, targets


def print_summary(rows: list[dict], final: str, metrics_path: str) -> None:
    print("\n" + "=" * 72)
    print(f"response-token loss: {rows[0]['loss']:.3f} at step 1 -> {rows[-1]['loss']:.3f} at step {rows[-1]['step']}")
    print(f"policy: {final}\nmetrics: {metrics_path}")
    demo_warm_start = os.path.join(HERE, "runs", "sft", "final")  # what train_rl's no-argument run looks for
    if os.path.abspath(final) == demo_warm_start:
        print("next: torchrun --standalone --nproc_per_node=2 train_rl.py   (its demo starts from this policy)")
    else:
        print(f"next: torchrun --standalone --nproc_per_node=2 train_rl.py --policy {final} --data PROBLEMS.jsonl")


def main(argv=None):
    args = parse_args(argv)
    # Inputs, checked on every rank before the process group exists (see inputs.py): a bad records file or
    # checkpoint stops every rank here with one line.
    records = demo_records(args.demo_problems) if args.data is None else load_records(args.data)
    check_output_dir(args.out)
    if args.model is not None:
        check_checkpoint(args.model, head="lm_head")
    rank, world, device = distributed.setup()
    demo = args.model is None
    epochs = args.epochs if args.epochs is not None else (48 if demo else 2)
    lr = args.lr if args.lr is not None else (1e-2 if demo else 1e-5)
    args.global_batch = args.global_batch or (8 if demo else 16)
    torch.manual_seed(args.seed)
    log = tqdm.write if rank == 0 else (lambda *a, **k: None)

    # 1. the policy and the records, tokenized once
    model, tokenizer = load_policy(args, rank, device)
    data = tokenize(records, tokenizer, args.max_len, thinking=not args.no_thinking)
    steps_per_epoch = max(len(data) // args.global_batch, 1)
    total_steps = max(int(epochs * steps_per_epoch), 1)
    log(f"{len(data)} records ({sum(len(d['response']) for d in data)} target tokens); {world} rank(s) on {device}; "
        f"{total_steps} steps of {args.global_batch} records")
    model.set_activation_checkpointing(args.activation_checkpointing == "on" or
                                       (args.activation_checkpointing == "auto" and not demo))
    every_micro_batch = args.grad_sync == "micro-batch" or (args.grad_sync == "auto" and not demo)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=args.weight_decay, betas=(0.9, 0.95))
    lr_factor = warmup_cosine(max(1, int(args.warmup * total_steps)), total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    run = RunDir(args.out, rank, log)
    resumed = run.resume(model, optimizer, scheduler, args.resume)
    start = resumed["step"] if resumed else 0

    bar = tqdm(range(start, total_steps), initial=start, total=total_steps, disable=rank != 0, desc="sft",
               dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        # 2. this step's records, this rank's share
        epoch, offset = divmod(step, steps_per_epoch)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed * 100_003 + epoch))
        batch = order[offset * args.global_batch: (offset + 1) * args.global_batch].tolist()
        mine = [data[i] for i in batch[rank::world]]
        # 3. token-mean NLL over the global batch's target tokens, in packed micro-batches; 4. clip, step
        nll, targets = accumulate_gradients(model, mine, args, world, device, every_micro_batch)
        grad_norm = clip_and_step(model, optimizer, args.grad_clip)
        scheduler.step()
        sums = distributed.all_reduce_sum({"nll": nll, "tokens": targets}, device)
        record = {"step": step + 1, "loss": sums["nll"] / sums["tokens"], "lr": lr * lr_factor(step),
                  "grad_norm": grad_norm, "tokens_per_s": sums["tokens"] / (time.perf_counter() - t0)}
        run.append_metrics(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        if run.checkpoint(step + 1, model, optimizer, scheduler, args.save_every, args.stop_at, args.keep):
            return
    bar.close()

    final = distributed.export_hf(model, tokenizer, os.path.join(args.out, "final"))
    if rank == 0:
        print_summary(run.read_metrics(), final, run.metrics)
    distributed.teardown()


if __name__ == "__main__":
    run_main(main)
