"""Latency per problem of best-of-N selection: the reward model against execution, N = 4, 8, 16, measured in
the same run on the bundled pools of the held-out HumanEval problems (SPEC.md section 5: the paper reports
reward-model selection at about a tenth of the latency of selection by generated tests).

    python bench_infer.py                                   # CPU: the tiny RM of runs/rm/final (or its shape)
    python bench_infer.py --shape 0.6b --device cuda        # a GPU, bf16, Qwen3-0.6B's shape
    python bench_infer.py --shape 8b --device cuda          # Qwen3-8B's shape (the paper's CodeScaler-8B)

What is timed per problem, exactly as `infer.py bon` does it:
  reward model  tokenize the N (problem, code) inputs, one packed scoring call, shaped reward, argmax
  execution     run every candidate against the problem's own tests in the sandbox, --workers sandboxes at
                a time (2 s per test, so a looping candidate costs its timeouts), argmax of the pass rates
Only shapes matter for latency: --shape other than `trained` uses random weights built in memory.
Model loading and one warm-up call of each are not timed. Each time is the minimum over --repeat rounds
for each problem (other work on a shared machine only ever adds time), the two methods interleaved per
problem. Execution here runs the hidden tests (upper-bound accuracy); CURE-style selection would first
have to generate its tests, so the ratio below is a lower bound on the paper's.
"""
import argparse
import os
import statistics
import time

import torch

import infer
import model as M
from reward import RewardModel
from sandbox import run_program
from tokenizer import load_tokenizer

SHAPES = {  # name -> Qwen3Config overrides; the score head has one row, so the vocabulary costs nothing
    "tiny": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=32),  # train_rm.py's demo shape
    "0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                 num_key_value_heads=8, head_dim=128),
    "8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, tie_word_embeddings=False),
}


def random_reward_model(shape: str, dtype, device) -> RewardModel:
    cfg = M.tiny_config(num_labels=1, **SHAPES[shape])
    with torch.device("meta"):
        model = M.Qwen3(cfg, head="score").to(dtype)
    model.to_empty(device=device)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith("norm.weight") else p.normal_(0.0, 0.02)
    return RewardModel(model.eval(), load_tokenizer())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="trained", choices=["trained", *SHAPES],
                   help="'trained': runs/rm/final if it exists, else a random model of its shape (tiny)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--ns", type=int, nargs="+", default=[4, 8, 16], help="candidates per problem")
    p.add_argument("--problems", type=int, default=None, help="first this many held-out problems (default all 35)")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="sandboxes at a time")
    p.add_argument("--repeat", type=int, default=2, help="rounds; each problem's best round counts")
    p.add_argument("--packed-attention", default=M.PACKED_ATTENTION, choices=["auto", "flex", "spans", "dense"],
                   help="how packed rows attend (model.py); on CUDA 'auto' is flex attention compiled for "
                   "static shapes, which compiles again for every new packed length, so try 'spans' too")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's). On a shared machine use 1: with every core "
                   "busy elsewhere, 2 OpenMP threads spin-wait and scoring runs 30x slower (measured here)")
    args = p.parse_args()
    M.PACKED_ATTENTION = args.packed_attention
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))

    if args.shape == "trained" and os.path.isdir(infer.DEFAULT_RM):
        rm, what = RewardModel.from_pretrained(infer.DEFAULT_RM, dtype=dtype, device=args.device), infer.DEFAULT_RM
    else:
        shape = "tiny" if args.shape == "trained" else args.shape
        rm, what = random_reward_model(shape, dtype, args.device), f"random {shape}-shaped"
    n_params = sum(p.numel() for p in rm.model.parameters())
    tasks = infer.load_problems("humaneval", "heldout")[: args.problems]
    limits = infer.limits_for(tasks, 2.0)
    rm.score([tasks[0].question] * 4, [tasks[0].question] * 4)  # warm-ups, not timed
    run_program("pass", tasks[0].tests, limits)

    table = []
    for n in args.ns:
        candidates = infer.pool_candidates(infer.DEFAULT_POOL, tasks, n, seed=0)
        best_rm, best_exec = [float("inf")] * len(tasks), [float("inf")] * len(tasks)
        start = time.perf_counter()
        for _ in range(args.repeat):
            rows = infer.best_of_n(tasks, candidates, rm.score, are_responses=False, workers=args.workers,
                                   limits=limits, progress=False)
            best_rm = [min(a, r["rm_s"]) for a, r in zip(best_rm, rows)]
            best_exec = [min(a, r["exec_s"]) for a, r in zip(best_exec, rows)]
        rm_ms, exec_ms = 1e3 * sum(best_rm) / len(tasks), 1e3 * sum(best_exec) / len(tasks)
        sizes = [len(c) for c in candidates.values()]
        table.append([n, f"{sum(sizes) / len(sizes):.1f}", f"{rm_ms:.1f}", f"{1e3 * statistics.median(best_rm):.1f}",
                      f"{exec_ms:.1f}", f"{1e3 * statistics.median(best_exec):.1f}", f"{exec_ms / rm_ms:.1f}x",
                      f"{time.perf_counter() - start:.0f} s"])
        print(f"N={n} done", flush=True)

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {os.cpu_count()} cores"
    print(f"\nbest-of-N selection latency per problem, {len(tasks)} held-out HumanEval problems, {device}")
    print(f"reward model: {what}, {n_params / 1e6:.1f}M parameters, {dtype}, {args.device}, "
          f"{torch.get_num_threads()} torch threads; "
          f"packed attention {args.packed_attention}; sandbox: {args.workers} workers; best of {args.repeat} rounds per problem")
    infer.print_table(["N", "mean pool", "RM ms (mean)", "(median)", "execution ms (mean)", "(median)",
                       "exec / RM (means)", "bench time"], table)
    print("execution's mean is dominated by the few problems where a candidate loops into the 2 s test timeout")


if __name__ == "__main__":
    main()
