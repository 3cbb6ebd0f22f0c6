"""KV-cached sampling for RL rollouts and best-of-N: P prompts x G samples each, through a fixed pool of rows.

    out = generate(model, prompts=[ids_a, ids_b], num_samples=8, max_new_tokens=256,
                   temperature=0.6, top_p=0.95, top_k=20, stop_ids=tok.eos_ids, seed=0)
    out.tokens [S, max_new_tokens], out.lengths [S], out.logprobs / out.raw_logprobs [S, max_new_tokens],
    out.stopped [S], S = P*G; samples are prompt-major: sample p*G + g is sample g of prompt p.

How it works (the gpt-fast recipe, extended to groups of samples and to more samples than rows):
  1. Rows. One KV cache of B rows is preallocated, B = every sample on CPU, or as many rows as fit a memory
     budget (`memory_budget` bytes; on CUDA by default a share of free memory; `cache_bytes_per_row`
     says what a row costs). The P*G samples wait in a queue and take rows as rows free up. On CUDA the
     cache is kept between calls (graphs replay at fixed addresses); `free_rollout_caches()` frees it.
  2. Prefill. The distinct prompts of the samples entering rows are packed back to back into one row
     (no padding) and run once with block-diagonal causal attention; each prompt's keys and values are
     copied into the cache rows of its samples ("fan out"), and the lm_head runs only on the last
     prompt positions. The first token of each sample is drawn from those logits.
  3. Decode. One token per row per step, written into the cache at the row's own position. Attention
     reads only the live part of the cache, positions [0, L) with L the longest live row rounded up to a
     bucket (powers of 2 and 1.5 x powers of 2), so a step's shapes take few values. `compile=True`
     (the default on CUDA) runs the step, sampling included, under torch.compile: the live length and
     batch are dynamic dimensions, so it compiles once or twice, not once per length; on CUDA with
     CUDA graphs (mode reduce-overhead), one graph per (rows, bucket) shape.
  4. Continuous batching (`continuous=True`, the default). Every `sync_every` steps the host reads which
     rows finished (the only host sync); a finished row takes the next queued sample (its prompt is
     prefilled into that row), so a batch is not held by its longest response. When the queue is empty
     and half the rows are idle, the live rows are moved to the front and the step runs on fewer rows.
     `continuous=False` is the static reference: the queue enters in chunks of B rows, and a chunk
     decodes until its longest sample ends (one chunk when every sample fits).
  5. Sampling: temperature, then top-k, then top-p (HF's order), then an exponential race (argmax of
     p / Exp(1) noise). The noise is a counter-based hash of (seed, prompt index, sample index, step,
     candidate), not a stateful generator, so a sample's tokens do not depend on which row it ran in,
     next to which other samples, or when: static, chunked and continuous runs give the same tokens.
     A sample that emits any of `stop_ids`, or reaches `max_new_tokens`, is finished; its later tokens
     are `pad_id` with log-prob 0.

Log-probs: `logprobs` are those of the sampled tokens under the distribution actually sampled from (after
temperature, top-k and top-p); `raw_logprobs` under log_softmax(logits / temperature) before top-k/top-p,
the quantity a trainer's forward pass recomputes (train_rl compares them to see bf16/kernel mismatch).
Greedy decoding (temperature 0) reports the model's plain log-softmax in both.

Equality across row layouts is exact in arithmetic; in floating point it holds where the kernels give a
row the same result whatever its batch (true of the CPU float32 kernels the tests run; on a GPU in bf16 a
near-tie can flip, as in any batched sampler).
"""
import math
from dataclasses import dataclass

import torch

from model import Qwen3, packed_positions_and_mask

# -----------------------------------------------------------------------------
# Sampling noise keyed per sample, not per row

MASK32 = 0xFFFFFFFF
# Odd constants spread consecutive counters over the hash's input. Both stay below 2^31: a compiled step
# multiplies them by an int32 loop index inside a Triton kernel, where a larger literal fails to compile.
GOLDEN = 0x1E3779B9
GOLDEN2 = 0x05EBCA6B


def mix32(x):
    """A 32-bit integer hash (a bijection with full avalanche), on Python ints or int64 tensors.
    The multiplier is below 2^27, so the product of a 32-bit value stays inside int64: no overflow."""
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & MASK32
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & MASK32
    return x ^ (x >> 16)


def sample_key(seed: int, prompt: int, sample: int) -> int:
    """The noise key of sample `sample` of prompt `prompt`: a hash of (seed, prompt, sample)."""
    h = mix32(seed & MASK32)
    for part in (seed >> 32, prompt, sample):
        h = mix32(h ^ (part & MASK32))
    return h


def step_keys(keys, t):
    """keys [B] (sample keys), t [B] (tokens the sample has so far) -> [B] keys of this draw."""
    return mix32((keys + t * GOLDEN2) & MASK32)


def exponential_noise(keys, n: int):
    """keys [B] int64 -> Exp(1) draws [B, n] float32, a pure function of (key, column)."""
    column = torch.arange(n, device=keys.device)
    bits = mix32((keys[:, None] + column * GOLDEN) & MASK32)  # [B, n]
    # 24 random bits, (k + 0.5) / 2^24. Not exact: float32 holds 24 significant bits, so k + 0.5 rounds for
    # k >= 2^23, and k = 2^24 - 1 gives exactly 1.0, noise 0, and then a token top-k/top-p gave probability 0
    # wins the race as 0 / 0 = nan (argmax takes nan): once in 2^24 columns, about one row-step in 100 at
    # top-p over the whole vocabulary. Hence the clamp to the largest float32 below 1.
    uniform = (((bits >> 8).float() + 0.5) * 2.0**-24).clamp_(max=1.0 - 2.0**-24)
    return -torch.log(uniform)


NUCLEUS_CANDIDATES = 1024  # top-p without top-k first looks for its nucleus among this many tokens


def nucleus_candidates(logits, log_norm, top_p: float):
    """logits [B, V] (already / temperature), log_norm [B] -> the logits sorted descending and their token ids,
    [B, c]: only the first NUCLEUS_CANDIDATES when those hold top_p of the mass in every row, so the nucleus
    lies among them; else all V. Sorting 151,936 logits per row at every step was most of a CPU decode step
    at the paper's evaluation setting (top-p 0.95, no top-k). The check reads a value on the host, so a
    compiled step always sorts the whole vocabulary; the result is the same either way (tokens past the
    nucleus get probability 0 and their noise columns are never read)."""
    if logits.shape[-1] > NUCLEUS_CANDIDATES and not torch.compiler.is_compiling():
        values, index = logits.topk(NUCLEUS_CANDIDATES, dim=-1)
        if bool((torch.exp(values - log_norm[:, None]).sum(-1) >= top_p).all()):
            return values, index
    return logits.sort(dim=-1, descending=True)


def sample(logits, temperature: float, top_k: int, top_p: float, keys):
    """logits [B, V] float32, keys [B] (from step_keys) -> token [B], its log-prob under the distribution
    sampled from [B], and its raw log-prob under log_softmax(logits / temperature) [B]."""
    if temperature == 0:
        token = logits.argmax(-1)
        logprob = torch.log_softmax(logits, -1).gather(-1, token[:, None])[:, 0]
        return token, logprob, logprob
    logits = logits / temperature
    log_norm = torch.logsumexp(logits, -1)  # [B], for the raw log-prob
    if 0 < top_k < logits.shape[-1]:
        values, index = logits.topk(top_k, dim=-1)  # [B, k], sorted descending
        probs = torch.softmax(values, dim=-1)  # top-k renormalises before top-p (HF's order)
    else:
        if top_p < 1.0:
            values, index = nucleus_candidates(logits, log_norm, top_p)  # [B, c], sorted descending
        else:  # plain sampling: no need to sort the vocabulary
            values, index = logits, None
        probs = torch.exp(values - log_norm[:, None])  # under the whole vocabulary's softmax
    if top_p < 1.0:  # keep the smallest prefix whose mass reaches top_p (the top token always stays)
        mass_before = probs.cumsum(-1) - probs
        probs = probs.masked_fill(mass_before >= top_p, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    noise = exponential_noise(keys, probs.shape[-1])
    choice = (probs / noise).argmax(-1, keepdim=True)  # [B, 1], distributed as probs
    token = choice[:, 0] if index is None else index.gather(-1, choice)[:, 0]
    raw = logits.gather(-1, token[:, None])[:, 0] - log_norm
    return token, probs.gather(-1, choice)[:, 0].log(), raw


# -----------------------------------------------------------------------------
# KV cache


def bucket_length(n: int) -> int:
    """The smallest of 16, 24, 32, 48, 64, 96, ... (2^k and 1.5 x 2^k) that is >= n: attention never reads
    more than 1.5x the live cache, and 16 to 32K take only 23 lengths."""
    k = max(4, math.ceil(math.log2(max(n, 1))))
    return 3 * 2 ** (k - 2) if 3 * 2 ** (k - 2) >= n and k > 4 else 2**k


class KVCache:
    """Per-layer key/value buffers [rows, kv_heads, max_len + 1, head_dim], written in place at tensor
    positions. Two write modes:
      - prefill: `set_prefill(rows, pos, src)` maps packed token src[i] to cache (rows[i], pos[i]);
        attention then runs over the packed prompt itself;
      - decode: a [b, 1] step (b <= rows: the first b rows) writes row i at positions[i] and returns the
        live part of the cache, positions [0, L) with L = len(self.live) (set by the caller per step).

    Plain tensors, not module buffers: torch.compile gives module buffers static shapes, and the rows and
    length of a cache differ between calls. CUDA graphs still use them in place (static addresses)."""

    def __init__(self, model: Qwen3, rows: int, max_len: int, dtype, device):
        cfg = model.cfg
        # one spare position: a live slice [0, L) is never the whole buffer, which compile would specialize on
        shape = (rows, cfg.num_key_value_heads, max_len + 1, cfg.head_dim)
        self.k, self.v = [], []
        for _ in range(cfg.num_hidden_layers):
            for buffers in (self.k, self.v):
                buf = torch.zeros(shape, dtype=dtype, device=device)
                torch._dynamo.maybe_mark_dynamic(buf, 0)  # rows and length are dynamic dimensions
                torch._dynamo.maybe_mark_dynamic(buf, 2)
                if buf.device.type == "cuda":  # CUDA graphs read and write it in place, never copy it
                    torch._dynamo.mark_static_address(buf, guard=False)  # (no identity guard: no recompile)
                buffers.append(buf)
        self.device = torch.device(device)
        self.rows, self.capacity, self.dtype = rows, max_len, dtype
        self.prefill_index = None  # (rows, pos, src) during prefill
        self.live = None  # arange(L): decode attends over cache positions [0, L)
        self._aranges = {}

    def set_live_length(self, length: int):
        if length not in self._aranges:  # one tensor per bucket: fixed addresses, a dynamic dimension
            live = torch.arange(length, device=self.device)
            torch._dynamo.maybe_mark_dynamic(live, 0)
            self._aranges[length] = live
        self.live = self._aranges[length]

    def set_prefill(self, rows, pos, src):
        self.prefill_index = (rows, pos, src)

    def write(self, layer: int, k, v, positions):
        k_cache, v_cache = self.k[layer], self.v[layer]
        if self.prefill_index is not None:  # k, v [1, KV, N, D] of the packed prompts
            rows, pos, src = self.prefill_index
            k_cache[rows, :, pos] = k[0, :, src].transpose(0, 1)  # [M, KV, D]
            v_cache[rows, :, pos] = v[0, :, src].transpose(0, 1)
            return k, v
        pos = positions[:, 0]  # k, v [b, KV, 1, D], one new token per row
        b, live = pos.shape[0], self.live.shape[0]
        rows = torch.arange(b, device=pos.device)
        k_cache[rows, :, pos] = k[:, :, 0]
        v_cache[rows, :, pos] = v[:, :, 0]
        return k_cache[:b, :, :live], v_cache[:b, :, :live]  # [b, KV, L, D]

    def move_rows(self, src, length: int):
        """Copy rows `src` [n] (positions [0, length)) to rows [0, n): compaction of the live rows."""
        for buf in self.k + self.v:
            buf[: len(src), :, :length] = buf[src, :, :length]  # advanced indexing copies first: no aliasing


_kept_caches = {}  # CUDA: (device, dtype, layer shapes) -> the KVCache kept between calls


def rollout_cache(model: Qwen3, rows: int, max_len: int, dtype, device) -> KVCache:
    """A cache of at least `rows` rows and `max_len` positions. On CUDA the cache is kept between calls and
    reused when it is large enough: CUDA graphs replay at fixed addresses, and a new cache each call would
    re-record every graph. `free_rollout_caches()` gives that memory back (e.g. before a training phase
    that needs it; the next call allocates and records again)."""
    if torch.device(device).type != "cuda":
        return KVCache(model, rows, max_len, dtype, device)
    cfg = model.cfg
    key = (str(device), dtype, cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim)
    kept = _kept_caches.get(key)
    if kept is None or kept.rows < rows or kept.capacity < max_len:
        _kept_caches.pop(key, None)  # free the old one before allocating the new
        kept = _kept_caches[key] = KVCache(model, rows, max_len, dtype, device)
    return kept


def free_rollout_caches():
    _kept_caches.clear()


def cache_bytes_per_row(cfg, max_len: int, dtype) -> int:
    """Memory one row of the rollout costs: its keys and values over every layer, plus the float32
    [vocab] working set of the sampler (logits, scaled logits, probabilities, noise: about 4 copies)."""
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * (max_len + 1)  # as KVCache
    return kv * torch.empty((), dtype=dtype).element_size() + 4 * 4 * cfg.vocab_size


def default_memory_budget(device) -> int | None:
    """CUDA: 80% of what is free (the driver's free memory, PyTorch's cached but unused blocks and the
    kept rollout cache, which this call may reuse), the rest left for the prefill's activations.
    CPU: None, every sample gets a row."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    cached_unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    kept = sum(b.numel() * b.element_size() for c in _kept_caches.values() if c.device == device for b in c.k + c.v)
    return int(0.8 * (free + cached_unused + kept))


# -----------------------------------------------------------------------------
# One decode step (compiled on CUDA)


def head_logits(model: Qwen3, hidden):
    """hidden [B, H] -> logits [B, V] float32, for the few rows that need them."""
    if hidden.device.type == "cpu":
        # A few rows times the whole vocabulary is a memory-bound shape that CPU BLAS runs about 1.5x
        # faster as W @ h.T than as h @ W.T (measured on the 2-core CI machine: 25 vs 40 ms for 8 rows
        # x 151936 x 512); it is most of the time of a decode step of a small model.
        return (model.head.weight @ hidden.T).T.float()
    return model.head(hidden).float()


def decode_step(model: Qwen3, cache: KVCache, token, pos, keys, t, temperature: float, top_k: int, top_p: float):
    """token, pos (where token goes), keys (sample keys), t (tokens so far) [b] -> the next token, its
    log-prob and raw log-prob [b]. Attends over cache positions [0, len(cache.live))."""
    mask = (cache.live[None, :] <= pos[:, None])[:, None, None, :]  # [b, 1, 1, L]
    hidden = model.hidden_states(token[:, None], positions=pos[:, None], mask=mask, cache=cache)  # [b, 1, H]
    logits = head_logits(model, hidden[:, 0])  # [b, V]
    return sample(logits, temperature, top_k, top_p, step_keys(keys, t))


_compiled_steps = {}  # device type -> compiled decode_step


def compiled_decode_step(device_type: str):
    if device_type not in _compiled_steps:
        mode = "reduce-overhead" if device_type == "cuda" else None  # CUDA graphs only exist on CUDA
        _compiled_steps[device_type] = torch.compile(decode_step, mode=mode, fullgraph=True)
    return _compiled_steps[device_type]


# -----------------------------------------------------------------------------
# Rows: which sample each cache row holds, and where its tokens go


@dataclass
class GenerationOutput:
    tokens: torch.Tensor  # [S, max_new_tokens] long, pad_id after a sample stops
    lengths: torch.Tensor  # [S] long, generated tokens per sample, the stop token included
    logprobs: torch.Tensor  # [S, max_new_tokens] float32, under the sampled distribution; 0 past a length
    stopped: torch.Tensor  # [S] bool, the sample ended on a stop id (False: cut at max_new_tokens)
    raw_logprobs: torch.Tensor  # [S, max_new_tokens] float32, under log_softmax(logits / T); 0 past a length


class Rows:
    """Device state of the B cache rows and the output buffers of the S samples.

    Output buffers have one extra row and column: a finished or idle row writes there, so every step
    writes all rows with no branch and no host sync."""

    def __init__(self, rows: int, samples: int, max_new: int, stop_ids, pad_id: int, device):
        self.S, self.max_new = samples, max_new
        self.stop = torch.tensor(list(stop_ids) or [-1], device=device)
        z = lambda dtype: torch.zeros(rows, dtype=dtype, device=device)
        self.token, self.pos, self.t, self.key = z(torch.long), z(torch.long), z(torch.long), z(torch.long)
        self.sample = torch.full((rows,), samples, dtype=torch.long, device=device)  # S = no sample
        self.done = torch.ones(rows, dtype=torch.bool, device=device)
        self.mark_dynamic()
        self.out_tokens = torch.full((samples + 1, max_new + 1), pad_id, dtype=torch.long, device=device)
        self.out_logprobs = torch.zeros(samples + 1, max_new + 1, device=device)
        self.out_raw = torch.zeros(samples + 1, max_new + 1, device=device)
        self.out_lengths = torch.zeros(samples + 1, dtype=torch.long, device=device)
        self.out_stopped = torch.zeros(samples + 1, dtype=torch.bool, device=device)

    def record(self, rows, token, logprob, raw):
        """Store the tokens just drawn for `rows` [n] and advance those rows (finished rows write the spare)."""
        done = self.done[rows]
        s = torch.where(done, self.S, self.sample[rows])
        t = self.t[rows]
        col = torch.where(done, self.max_new, t)
        self.out_tokens[s, col] = token
        self.out_logprobs[s, col] = logprob
        self.out_raw[s, col] = raw
        is_stop = torch.isin(token, self.stop) & ~done
        t = t + (~done).long()
        self.out_lengths[s] = t
        self.out_stopped[s] = is_stop
        self.t[rows] = t
        self.token[rows] = token
        self.pos[rows] += (~done).long()  # where the token just drawn goes in the cache
        self.done[rows] = done | is_stop | (t >= self.max_new)

    def mark_dynamic(self):
        """The row count is a dynamic dimension of the compiled step: compaction does not recompile."""
        for name in ("token", "pos", "t", "key"):
            torch._dynamo.maybe_mark_dynamic(getattr(self, name), 0)

    def keep(self, index):
        """Reorder/shrink every per-row tensor to rows `index` (compaction)."""
        for name in ("token", "pos", "t", "key", "sample", "done"):
            setattr(self, name, getattr(self, name)[index])
        self.mark_dynamic()

    def output(self) -> GenerationOutput:
        S, N = self.S, self.max_new
        return GenerationOutput(self.out_tokens[:S, :N], self.out_lengths[:S], self.out_logprobs[:S, :N],
                                self.out_stopped[:S], self.out_raw[:S, :N])


def prompt_packs(lens: list[int], max_tokens: int) -> list[list[int]]:
    """Split prompt indices into consecutive packs of at most `max_tokens` tokens (a longer prompt alone)."""
    packs, size = [[]], 0
    for i, n in enumerate(lens):
        if packs[-1] and size + n > max_tokens:
            packs.append([])
            size = 0
        packs[-1].append(i)
        size += n
    return packs


def prefill(model: Qwen3, cache: KVCache, prompts: list[list[int]], rows: list[int], prompt_of_row: list[int],
            max_pack_tokens: int = 32768):
    """Run the distinct prompts of `prompt_of_row` once, packed, and fan each one's keys and values out to
    its cache rows. Returns the logits at each row's last prompt position [len(rows), V] float32."""
    device = cache.device
    distinct = sorted(set(prompt_of_row))
    rows_of = {p: [r for r, q in zip(rows, prompt_of_row) if q == p] for p in distinct}
    last_hidden = []
    for pack in prompt_packs([len(prompts[p]) for p in distinct], max_pack_tokens):
        pack = [distinct[i] for i in pack]
        lens = [len(prompts[p]) for p in pack]
        starts = [sum(lens[:j]) for j in range(len(pack))]
        ids = torch.tensor([tok for p in pack for tok in prompts[p]], device=device)[None]  # [1, N]
        positions, mask = packed_positions_and_mask(lens, device)
        fan = [(torch.full((n,), r), torch.arange(n), torch.arange(start, start + n))
               for p, n, start in zip(pack, lens, starts) for r in rows_of[p]]
        cache.set_prefill(*(torch.cat(x).to(device) for x in zip(*fan)))  # cache row, position, packed index
        hidden = model.hidden_states(ids, positions=positions, mask=mask, cache=cache)  # [1, N, H]
        cache.prefill_index = None
        last_hidden += [hidden[0, start + n - 1] for n, start in zip(lens, starts)]
    logits = head_logits(model, torch.stack(last_hidden))  # [distinct, V]
    where = {p: i for i, p in enumerate(distinct)}
    return logits[torch.tensor([where[p] for p in prompt_of_row], device=device)]  # [len(rows), V]


# -----------------------------------------------------------------------------
# The rollout loop


@torch.no_grad()
def generate(model: Qwen3, prompts: list[list[int]], num_samples: int = 1, max_new_tokens: int = 256,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, stop_ids=(), pad_id: int = 0,
             seed: int = 0, compile: bool | None = None, sync_every: int = 8, memory_budget: int | None = None,
             continuous: bool = True) -> GenerationOutput:
    """Sample `num_samples` continuations of each prompt; see the module docstring.

    compile: torch.compile the decode step (None: on CUDA only). memory_budget: bytes for the cache rows
    and the sampler's working set (None: 80% of free memory on CUDA, every sample on CPU). continuous:
    refill finished rows from the queue (False: static chunks). sync_every: steps between host checks."""
    device = model.model.embed_tokens.weight.device
    dtype = model.model.embed_tokens.weight.dtype
    P, G = len(prompts), num_samples
    S = P * G
    if min(len(p) for p in prompts) == 0:
        raise ValueError("every prompt needs at least one token")
    max_len = bucket_length(max(map(len, prompts)) + max_new_tokens)  # a bucket, so calls share shapes
    budget = default_memory_budget(device) if memory_budget is None else memory_budget
    B = S if budget is None else min(S, budget // cache_bytes_per_row(model.cfg, max_len, dtype))
    if B < 1:
        raise ValueError(f"a memory budget of {budget:,} bytes holds no row of "
                         f"{cache_bytes_per_row(model.cfg, max_len, dtype):,} bytes (max_len {max_len})")
    cache = rollout_cache(model, B, max_len, dtype, device)
    rows = Rows(B, S, max_new_tokens, stop_ids, pad_id, device)
    compile = device.type == "cuda" if compile is None else compile
    step = compiled_decode_step(device.type) if compile else decode_step
    queue = list(range(S))[::-1]  # pop() takes the next sample, prompt-major
    width = B  # rows the step runs on (fewer after compaction)
    longest = 0  # host-side bound on the largest position a live row feeds
    t_step = 0
    while True:
        if t_step % sync_every == 0:  # the only host sync: which rows finished, where the live ones are
            done, pos = torch.stack([rows.done[:width].long(), rows.pos[:width]]).tolist()
            free = [r for r in range(width) if done[r]]
            live = [r for r in range(width) if not done[r]]
            if queue and free and (continuous or not live):
                admitted = [(r, queue.pop()) for r in free[: len(queue)]]
                admit(model, cache, rows, prompts, G, admitted, seed, temperature, top_k, top_p)
                live += [r for r, _ in admitted]
                pos = {**dict(enumerate(pos)), **{r: len(prompts[s // G]) for r, s in admitted}}
            elif not queue and continuous and 2 <= len(live) <= width // 2:  # shrink to the live rows
                width = 1 << (len(live) - 1).bit_length()  # (not to 1 row: compile specializes on size 1)
                index = torch.tensor(live + free[: width - len(live)], device=device)
                cache.move_rows(index[: len(live)], bucket_length(max(pos[r] for r in live) + 1))
                rows.keep(index)
                live = list(range(len(live)))
                pos = {i: p for i, p in enumerate(rows.pos.tolist())}
            if not live:
                break
            longest = max(pos[r] for r in live)
        cache.set_live_length(min(max_len, bucket_length(longest + 1)))
        if compile and device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        token, logprob, raw = step(model, cache, rows.token, rows.pos, rows.key, rows.t, temperature, top_k, top_p)
        rows.record(torch.arange(width, device=device), token, logprob, raw)
        longest += 1
        t_step += 1
    return rows.output()


def admit(model, cache, rows: Rows, prompts, G: int, admitted: list[tuple[int, int]], seed: int,
          temperature: float, top_k: int, top_p: float):
    """Put samples into free rows: prefill their prompts into those rows and draw each one's first token."""
    device = cache.device
    slots = [r for r, _ in admitted]
    index = torch.tensor(slots, device=device)
    samples = torch.tensor([s for _, s in admitted], device=device)
    logits = prefill(model, cache, prompts, slots, [s // G for _, s in admitted])  # [n, V]
    rows.sample[index] = samples
    rows.key[index] = torch.tensor([sample_key(seed, s // G, s % G) for _, s in admitted], device=device)
    rows.t[index] = 0
    rows.done[index] = False
    rows.pos[index] = torch.tensor([len(prompts[s // G]) - 1 for _, s in admitted], device=device)  # record adds 1
    token, logprob, raw = sample(logits, temperature, top_k, top_p, step_keys(rows.key[index], rows.t[index]))
    rows.record(index, token, logprob, raw)
