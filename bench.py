"""Benchmarks of model.py and generate.py against HF transformers, measured in the same run on the same
random weights. Prints a table; nothing here is asserted (speed is measured, not tested).

    python bench.py                       # CPU: float32, a small Qwen3 shape that runs in a few minutes
    python bench.py --shape 0.6b          # on a GPU: bf16, Qwen3-0.6B's shape (random weights)

Rows:
  forward   a batch of B x T tokens, logits for every position; ours vs Qwen3ForCausalLM (SDPA attention)
  generate  one GRPO group: 1 prompt x G samples x N new tokens, temperature 0.6, top-p 0.95, top-k 20, no
            early stop; ours (one prefill fanned out, preallocated cache) vs transformers' generate
            (num_return_sequences=G)
  packed    a skewed length mix (lengths drawn from 32 to 1024): one packed row (block-diagonal causal)
            vs the same sequences right-padded to the longest; tokens/s counts real tokens only
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=SHAPES, default="small")
    parser.add_argument("--batch", type=int, default=8, help="forward: batch size")
    parser.add_argument("--seq-len", type=int, default=512, help="forward: tokens per sequence")
    parser.add_argument("--samples", type=int, default=8, help="generate: samples per prompt (G)")
    parser.add_argument("--prompt-len", type=int, default=128, help="generate: prompt tokens")
    parser.add_argument("--new-tokens", type=int, default=256, help="generate: new tokens per sample")
    parser.add_argument("--packed-seqs", type=int, default=16, help="packed: sequences in the mix")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="CUDA: compile our decode step (CUDA graphs)")
    args = parser.parse_args()

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

    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\nshape {args.shape}, {str(dtype).replace('torch.', '')}, {name}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"| {'benchmark':<32} | {'baseline':<22} | {'baseline tok/s':>14} | {'ours tok/s':>10} | "
          f"{'time ratio ours/baseline':>24} |")
    print(f"|{'-' * 34}|{'-' * 24}|{'-' * 16}|{'-' * 12}|{'-' * 26}|")
    for label, base, base_tps, our_tps, ratio in rows:
        print(f"| {label:<32} | {base:<22} | {base_tps:>14,.0f} | {our_tps:>10,.0f} | {ratio:>24.2f} |")


if __name__ == "__main__":
    main()
