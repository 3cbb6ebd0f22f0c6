"""KV-cached sampling for RL rollouts and best-of-N: P prompts x G samples each, in one batch.

    out = generate(model, prompts=[ids_a, ids_b], num_samples=8, max_new_tokens=256,
                   temperature=0.6, top_p=0.95, top_k=20, stop_ids=tok.eos_ids, seed=0)
    out.tokens [P*G, max_new_tokens], out.lengths [P*G], out.logprobs [P*G, max_new_tokens], out.stopped [P*G]
    rows are prompt-major: row p*G + g is sample g of prompt p.

How it works (the gpt-fast recipe, extended to groups of samples):
  1. Prefill: the P prompts are packed back to back into one row (no padding at all, whatever their
     lengths) and run once with block-diagonal causal attention. Each prompt's keys and values are copied
     into the cache rows of its G samples ("fan out"), so a prompt is computed once, not G times.
     The lm_head runs only on the P last prompt positions, not on every prompt token.
  2. Decode: one token per row per step. The cache is preallocated to [B, kv_heads, max_len, head_dim]
     per layer and written at each row's own position (rows of different prompts sit at different
     positions); attention reads the whole cache under a mask `cache_pos <= pos`, so every step has the
     same shapes and the step can be compiled with CUDA graphs (`compile=True`, CUDA only).
  3. Sampling: temperature, then top-k, then top-p (HF's order), then an exponential race
     (argmax p / Exp(1) noise), which draws from p without a host sync; seeded through a torch.Generator.
     A row that emits any of `stop_ids` is finished: its later tokens are `pad_id` with log-prob 0 and its
     length stops growing. The loop checks "all finished" only every `sync_every` steps (a host sync).

`logprobs` are the log-probabilities of the sampled tokens under the distribution actually sampled from
(after temperature, top-k and top-p); greedy decoding (temperature 0) reports the model's plain
log-softmax. GRPO's old log-probs come from a training forward pass, not from here (see train_rl.py).
"""
from dataclasses import dataclass

import torch
import torch.nn as nn

from model import Qwen3, packed_positions_and_mask


class KVCache(nn.Module):
    """Per-layer key/value buffers [B, kv_heads, max_len, head_dim], written in place at tensor positions.

    Buffers of a module have fixed addresses, which CUDA graphs need. Two write modes:
      - prefill: `set_prefill(rows, pos, src)` maps packed token src[i] to cache (rows[i], pos[i]);
        attention then runs over the packed prompt itself;
      - decode: a [B, 1] step writes row b at positions[b] and attends over the whole cache.
    """

    def __init__(self, model: Qwen3, batch: int, max_len: int, dtype, device):
        super().__init__()
        cfg = model.cfg
        shape = (batch, cfg.num_key_value_heads, max_len, cfg.head_dim)
        for i in range(cfg.num_hidden_layers):
            self.register_buffer(f"k{i}", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
            self.register_buffer(f"v{i}", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("rows", torch.arange(batch, device=device), persistent=False)
        self.prefill_index = None  # (rows, pos, src) during prefill

    def set_prefill(self, rows, pos, src):
        self.prefill_index = (rows, pos, src)

    def write(self, layer: int, k, v, positions):
        k_cache, v_cache = getattr(self, f"k{layer}"), getattr(self, f"v{layer}")
        if self.prefill_index is not None:  # k, v [1, KV, N, D] of the packed prompts
            rows, pos, src = self.prefill_index
            k_cache[rows, :, pos] = k[0, :, src].transpose(0, 1)  # [M, KV, D]
            v_cache[rows, :, pos] = v[0, :, src].transpose(0, 1)
            return k, v
        pos = positions[:, 0]  # k, v [B, KV, 1, D], one new token per row
        k_cache[self.rows, :, pos] = k[:, :, 0]
        v_cache[self.rows, :, pos] = v[:, :, 0]
        return k_cache, v_cache  # [B, KV, max_len, D]


@dataclass
class GenerationOutput:
    tokens: torch.Tensor  # [B, max_new_tokens] long, pad_id after a row stops
    lengths: torch.Tensor  # [B] long, generated tokens per row, the stop token included
    logprobs: torch.Tensor  # [B, max_new_tokens] float32, 0 past a row's length
    stopped: torch.Tensor  # [B] bool, the row ended on a stop id (False: cut at max_new_tokens)


def sample(logits, temperature: float, top_k: int, top_p: float, generator):
    """logits [B, V] float32 -> token [B], log-prob [B] of that token under the distribution sampled from."""
    if temperature == 0:
        token = logits.argmax(-1)
        return token, torch.log_softmax(logits, -1).gather(-1, token[:, None])[:, 0]
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        values, index = logits.topk(top_k, dim=-1)  # [B, k], sorted descending
    elif top_p < 1.0:
        values, index = logits.sort(dim=-1, descending=True)  # [B, V]
    else:  # plain sampling: no need to sort the vocabulary
        values, index = logits, None
    probs = torch.softmax(values, dim=-1)
    if top_p < 1.0:  # keep the smallest prefix whose mass reaches top_p (the top token always stays)
        mass_before = probs.cumsum(-1) - probs
        probs = probs.masked_fill(mass_before >= top_p, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    noise = torch.empty_like(probs).exponential_(generator=generator)
    choice = (probs / noise).argmax(-1, keepdim=True)  # [B, 1], distributed as probs
    token = choice[:, 0] if index is None else index.gather(-1, choice)[:, 0]
    return token, probs.gather(-1, choice)[:, 0].log()


def head_logits(model: Qwen3, hidden):
    """hidden [B, H] -> logits [B, V] float32, for the few rows that need them."""
    if hidden.device.type == "cpu":
        # A few rows times the whole vocabulary is a memory-bound shape that CPU BLAS runs about 1.5x
        # faster as W @ h.T than as h @ W.T (measured on the 2-core CI machine: 25 vs 40 ms for 8 rows
        # x 151936 x 512); it is most of the time of a decode step of a small model.
        return (model.head.weight @ hidden.T).T.float()
    return model.head(hidden).float()


def decode_step(model: Qwen3, cache: KVCache, token, pos):
    """token, pos [B] -> next-token logits [B, V] (float32). Same shapes every step."""
    max_len = cache.k0.shape[2]
    mask = (torch.arange(max_len, device=pos.device) <= pos[:, None])[:, None, None, :]  # [B, 1, 1, max_len]
    hidden = model.hidden_states(token[:, None], positions=pos[:, None], mask=mask, cache=cache)  # [B, 1, H]
    return head_logits(model, hidden[:, 0])


_compiled_decode_step = None


@torch.no_grad()
def generate(model: Qwen3, prompts: list[list[int]], num_samples: int = 1, max_new_tokens: int = 256,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, stop_ids=(), pad_id: int = 0,
             seed: int = 0, compile: bool = False, sync_every: int = 8) -> GenerationOutput:
    global _compiled_decode_step
    device = model.model.embed_tokens.weight.device
    dtype = model.model.embed_tokens.weight.dtype
    P, G = len(prompts), num_samples
    B = P * G
    lens = [len(p) for p in prompts]
    if min(lens) == 0:
        raise ValueError("every prompt needs at least one token")
    max_len = max(lens) + max_new_tokens
    cache = KVCache(model, B, max_len, dtype, device)
    generator = torch.Generator(device=device).manual_seed(seed)

    # 1. Prefill all prompts packed in one row; fan each prompt's k, v out to its G cache rows.
    ids = torch.tensor([t for p in prompts for t in p], device=device)[None]  # [1, N]
    positions, mask = packed_positions_and_mask(lens, device)
    starts = torch.tensor([0] + lens[:-1], device=device).cumsum(0)  # [P]
    rows, pos, src = [], [], []
    for p, n in enumerate(lens):
        for g in range(G):
            rows.append(torch.full((n,), p * G + g))
            pos.append(torch.arange(n))
            src.append(torch.arange(n) + int(starts[p]))
    cache.set_prefill(*(torch.cat(x).to(device) for x in (rows, pos, src)))
    hidden = model.hidden_states(ids, positions=positions, mask=mask, cache=cache)  # [1, N, H]
    cache.prefill_index = None
    last = hidden[0, starts + torch.tensor(lens, device=device) - 1]  # [P, H]
    logits = head_logits(model, last).repeat_interleave(G, dim=0)  # [B, V]

    # 2. Decode.
    step = decode_step
    if compile and device.type == "cuda":
        if _compiled_decode_step is None:
            _compiled_decode_step = torch.compile(decode_step, mode="reduce-overhead", fullgraph=True)
        step = _compiled_decode_step
    stop = torch.tensor(list(stop_ids) or [-1], device=device)
    tokens = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(B, max_new_tokens, device=device)
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    stopped = torch.zeros(B, dtype=torch.bool, device=device)
    pos = torch.tensor(lens, device=device).repeat_interleave(G)  # [B], position of the next token
    for t in range(max_new_tokens):
        token, logprob = sample(logits, temperature, top_k, top_p, generator)
        tokens[:, t] = token.masked_fill(stopped, pad_id)
        logprobs[:, t] = logprob.masked_fill(stopped, 0.0)
        lengths += (~stopped).long()
        stopped |= torch.isin(token, stop) & ~stopped
        if t == max_new_tokens - 1 or ((t + 1) % sync_every == 0 and bool(stopped.all())):
            break
        logits = step(model, cache, token, pos)
        pos = pos + 1
    return GenerationOutput(tokens, lengths, logprobs, stopped)
