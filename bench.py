"""Benchmarks, each baseline measured in the same run on the same random weights. Prints tables; nothing
here is asserted (speed is measured, not tested).

    python bench.py model                 # CPU: float32, a small Qwen3 shape, a few minutes
    python bench.py model --shape 0.6b    # on a GPU: bf16, Qwen3-0.6B's shape (random weights)
    python bench.py rm                    # reward-model training and scoring, packed vs padded

`model` rows:
  forward   a batch of B x T tokens, logits for every position; ours vs Qwen3ForCausalLM (SDPA attention)
  generate  one GRPO group: 1 prompt x G samples x N new tokens, temperature 0.6, top-p 0.95, top-k 20, no
            early stop; ours (one prefill fanned out, preallocated cache) vs transformers' generate
            (num_return_sequences=G)
  packed    a skewed length mix (lengths drawn from 32 to 1024): one packed row (block-diagonal causal)
            vs the same sequences right-padded to the longest; tokens/s counts real tokens only

`rm` rows (the bundled HumanEval pairs, real tokenizer, the demo's tiny reward model shape by default):
  train     forward + backward of the Bradley-Terry loss over --pairs pairs: packed token-budget
            micro-batches (train_rm.py) vs right-padded micro-batches of the same pairs
  score     rm.score over every chosen and rejected program: packed (reward.py) vs right-padded batches
"""
import argparse
import statistics
import tempfile
import time

import torch

import model as M
from generate import generate

SHAPES = {  # name -> Qwen3Config overrides (real vocabulary everywhere: the lm_head is part of the cost)
    "small": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=4, head_dim=64, tie_word_embeddings=True),
    "0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                 num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, tie_word_embeddings=False),
}


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


def bench_model(args):
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


def print_table(title, rows, unit, device):
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n{title}; {name}, torch {torch.__version__}")
    print(f"| {'benchmark':<32} | {'baseline':<22} | {'baseline ' + unit:>14} | {'ours ' + unit:>12} | "
          f"{'time ratio ours/baseline':>24} |")
    print(f"|{'-' * 34}|{'-' * 24}|{'-' * 16}|{'-' * 14}|{'-' * 26}|")
    for label, base, base_rate, our_rate, ratio in rows:
        print(f"| {label:<32} | {base:<22} | {base_rate:>14,.1f} | {our_rate:>12,.1f} | {ratio:>24.2f} |")


def padded_last_token_scores(model, seqs, pad_id):
    """The baseline: right-pad to the longest, run [B, T], read the score at each sequence's last real token."""
    device = model.model.embed_tokens.weight.device
    T = max(len(s) for s in seqs)
    ids = torch.tensor([s + [pad_id] * (T - len(s)) for s in seqs], device=device)
    last = torch.tensor([len(s) - 1 for s in seqs], device=device)
    return model(ids)[torch.arange(len(seqs), device=device), last, 0].float()


def bench_rm(args):
    from data import load_pairs
    from reward import RewardModel, packed_last_token_scores, pairwise_loss, token_budget_batches
    from tokenizer import load_tokenizer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shape = SHAPES[args.shape] if args.shape != "small" else dict(hidden_size=128, intermediate_size=256,
                                                                   num_attention_heads=4, num_key_value_heads=2, head_dim=32)
    model = M.init_weights(M.Qwen3(M.tiny_config(**shape), head="score"), std=0.02).to(device, dtype)
    rm = RewardModel(model, load_tokenizer())
    pairs = load_pairs("data/humaneval_pairs_train.jsonl")[: args.pairs]
    chosen = rm.encode([p.question for p in pairs], [p.chosen for p in pairs]).ids
    rejected = rm.encode([p.question for p in pairs], [p.rejected for p in pairs]).ids
    pad = rm.tokenizer.pad_id
    n_tokens = sum(map(len, chosen)) + sum(map(len, rejected))
    rows = []

    def train(score_fn, budget):
        batches = token_budget_batches([len(c) + len(r) for c, r in zip(chosen, rejected)], budget)
        for b in batches:
            scores = score_fn([s for i in b for s in (chosen[i], rejected[i])])
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
    seqs = chosen + rejected
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["model", "rm"])
    parser.add_argument("--shape", choices=SHAPES, default="small")
    parser.add_argument("--repeats", type=int, default=3)
    # model
    parser.add_argument("--batch", type=int, default=8, help="forward: batch size")
    parser.add_argument("--seq-len", type=int, default=512, help="forward: tokens per sequence")
    parser.add_argument("--samples", type=int, default=8, help="generate: samples per prompt (G)")
    parser.add_argument("--prompt-len", type=int, default=128, help="generate: prompt tokens")
    parser.add_argument("--new-tokens", type=int, default=256, help="generate: new tokens per sample")
    parser.add_argument("--packed-seqs", type=int, default=16, help="packed: sequences in the mix")
    parser.add_argument("--compile", action="store_true", help="CUDA: compile our decode step (CUDA graphs)")
    # rm
    parser.add_argument("--pairs", type=int, default=64, help="rm: pairs from the bundled training set")
    parser.add_argument("--micro-batch-tokens", type=int, default=8192, help="rm: token budget of a micro-batch")
    args = parser.parse_args()
    torch.manual_seed(0)
    (bench_model if args.what == "model" else bench_rm)(args)


if __name__ == "__main__":
    main()
