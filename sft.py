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
import ast
import json
import math
import os
import sys
import time

import torch
from tqdm import tqdm

import distributed
from data import humaneval_problems, read_records
from model import Qwen3, init_weights, save_model, tiny_config
from reward import token_budget_batches
from tokenizer import load_tokenizer
from train_rl import lockstep, response_logprobs

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_PROBLEMS = 16  # the demo's problems: this many short HumanEval train problems (see demo_problems)


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


def without_docstrings(code: str) -> str:
    """The program with its docstrings removed (ast.unparse): the demo's answers stay short."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


OPENERS = ["Here is the code:", "Here is a solution.", "Sure! Here is the implementation:", "This works:"]
CLOSERS = ["", "", "This solves the task.", "It handles the edge cases."]


def demo_problems(n: int | None = DEMO_PROBLEMS) -> list:
    """The n HumanEval train problems with the shortest reference solutions (docstrings removed, counted in
    characters; ties by id), in task order; None or 0: all of them. The SFT demo and the RL demo share them."""
    problems = humaneval_problems("train")
    if not n:
        return problems
    short = sorted(problems, key=lambda p: (len(without_docstrings(p.reference)), p.problem_id))[:n]
    ids = {p.problem_id for p in short}
    return [p for p in problems if p.problem_id in ids]


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
                raise ValueError(f"{path}:{n}: missing or empty field '{field}' (a string)")
        records.append(rec)
    if not records:
        raise ValueError(f"{path}: no records")
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


def main(argv=None):
    args = parse_args(argv)
    rank, world, device = distributed.setup()
    demo = args.model is None
    epochs = args.epochs if args.epochs is not None else (48 if demo else 2)
    lr = args.lr if args.lr is not None else (1e-2 if demo else 1e-5)
    args.global_batch = args.global_batch or (8 if demo else 16)
    torch.manual_seed(args.seed)
    log = tqdm.write if rank == 0 else (lambda *a, **k: None)

    if demo:  # the same tiny random policy train_rl's demo would start from
        args.model = os.path.join(args.out, "init")
        if rank == 0 and not os.path.exists(os.path.join(args.model, "config.json")):
            save_model(init_weights(Qwen3(tiny_config()), seed=args.seed), args.model)
        torch.distributed.barrier()
    tokenizer = load_tokenizer(args.model if os.path.exists(os.path.join(args.model, "tokenizer.json")) else None)
    try:
        records = demo_records(args.demo_problems) if args.data is None else load_records(args.data)
    except (ValueError, FileNotFoundError) as e:
        if rank == 0:
            print(f"sft.py: error: {e}", file=sys.stderr)
        distributed.teardown()
        sys.exit(2)
    data = tokenize(records, tokenizer, args.max_len, thinking=not args.no_thinking)
    steps_per_epoch = max(len(data) // args.global_batch, 1)
    total_steps = max(int(epochs * steps_per_epoch), 1)
    warmup_steps = max(1, int(args.warmup * total_steps))
    log(f"{len(data)} records ({sum(len(d['response']) for d in data)} target tokens); {world} rank(s) on {device}; "
        f"{total_steps} steps of {args.global_batch} records")

    model = distributed.load_sharded(args.model, device, getattr(torch, args.dtype), head="lm_head")
    model.set_activation_checkpointing(args.activation_checkpointing == "on" or
                                       (args.activation_checkpointing == "auto" and not demo))
    every_micro_batch = args.grad_sync == "micro-batch" or (args.grad_sync == "auto" and not demo)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=args.weight_decay, betas=(0.9, 0.95))

    def lr_factor(step):  # linear warm-up, cosine decay to 0; step counts from 0
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    os.makedirs(args.out, exist_ok=True)
    ckpt_root, metrics_path = os.path.join(args.out, "checkpoints"), os.path.join(args.out, "metrics.jsonl")
    start = 0
    latest = distributed.latest_checkpoint(ckpt_root) if args.resume else None
    if latest:
        extra = distributed.load_checkpoint(latest, model, optimizer)
        scheduler.load_state_dict(extra["scheduler"])
        start = extra["step"]
        log(f"resumed from {latest} at step {start}")
    if rank == 0:
        distributed.restart_metrics(metrics_path, start if latest else 0)

    bar = tqdm(range(start, total_steps), initial=start, total=total_steps, disable=rank != 0, desc="sft",
               dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        # 2. this step's records, this rank's share
        epoch, offset = divmod(step, steps_per_epoch)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed * 100_003 + epoch))
        batch = order[offset * args.global_batch: (offset + 1) * args.global_batch].tolist()
        mine = [data[i] for i in batch[rank::world]]
        # 3. token-mean NLL over the global batch's target tokens, in packed micro-batches
        targets = sum(len(d["response"]) for d in mine)
        global_targets = distributed.all_reduce_sum({"n": targets}, device)["n"]
        micro = token_budget_batches([len(d["prompt"]) + len(d["response"]) for d in mine], args.micro_batch_tokens)
        nll = 0.0
        for i, n, part in lockstep(micro, device):
            distributed.set_gradient_sync(model, i, n, every_micro_batch)
            chunk = [mine[j] for j in part] if part is not None else [{"prompt": [0], "response": [0]}]
            logp, _, _ = response_logprobs(model, chunk, temperature=1.0)  # [target tokens of the chunk]
            weight = world / global_targets if part is not None else 0.0  # FSDP averages over ranks
            (-logp.sum() * weight).backward()
            nll -= logp.sum().item() if part is not None else 0.0
        # 4. clip, step
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        sums = distributed.all_reduce_sum({"nll": nll, "tokens": targets}, device)
        record = {"step": step + 1, "loss": sums["nll"] / sums["tokens"], "lr": lr * lr_factor(step),
                  "grad_norm": grad_norm.item(), "tokens_per_s": sums["tokens"] / (time.perf_counter() - t0)}
        if rank == 0:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        done = step + 1
        if done % args.save_every == 0 or done == args.stop_at:
            distributed.save_checkpoint(ckpt_root, done, model, optimizer,
                                        {"step": done, "scheduler": scheduler.state_dict()}, keep=args.keep)
        if done == args.stop_at:
            log(f"stopping after step {done} as asked (--stop-at); continue with --resume")
            distributed.teardown()
            return
    bar.close()

    final = distributed.export_hf(model, tokenizer, os.path.join(args.out, "final"))
    if rank == 0:
        rows = [json.loads(line) for line in open(metrics_path)]
        print("\n" + "=" * 72)
        print(f"response-token loss: {rows[0]['loss']:.3f} at step 1 -> {rows[-1]['loss']:.3f} at step {rows[-1]['step']}")
        print(f"policy: {final}\nmetrics: {metrics_path}")
        print(f"next: torchrun --standalone --nproc_per_node=2 train_rl.py   (starts from {final} when it exists)")
    distributed.teardown()


if __name__ == "__main__":
    main()
