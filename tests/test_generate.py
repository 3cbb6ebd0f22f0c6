"""generate.py: cached decoding against uncached forwards, group fan-out, sampling, transformers' greedy,
raw log-probs, static = chunked = continuous batching, and a compiled step that compiles once."""
import pytest
import torch

import generate as GEN
import model as M
from generate import bucket_length, cache_bytes_per_row, generate, sample

VOCAB = 512


@pytest.fixture(scope="module")
def model():
    return M.init_weights(M.Qwen3(M.tiny_config(vocab_size=VOCAB, tie_word_embeddings=False)), std=0.15, seed=7)


def prompt(n, seed):
    return torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def full_forward_logprobs(model, prompt_ids, new_ids):
    """Uncached: run prompt + generated tokens in one forward; log-softmax at each generated position."""
    ids = torch.tensor(prompt_ids + new_ids)[None]
    with torch.no_grad():
        logp = torch.log_softmax(model(ids)[0].float(), -1)  # [T, V]
    n = len(prompt_ids)
    return logp[n - 1 : n - 1 + len(new_ids)]  # [len(new), V]


def test_cached_decoding_equals_uncached_forward_step_by_step(model):
    # temperature 1, no top-k/top-p: the sampling log-probs are the model's own log-softmax, so every
    # step of every row (2 prompts of different lengths x 3 samples) can be checked against a full forward
    prompts = [prompt(5, 0), prompt(11, 1)]
    out = generate(model, prompts, num_samples=3, max_new_tokens=12, temperature=1.0, seed=0)
    assert out.tokens.shape == (6, 12) and out.lengths.tolist() == [12] * 6
    assert len({tuple(r) for r in out.tokens.tolist()}) == 6  # samples of a group differ
    for row in range(6):
        new = out.tokens[row].tolist()
        ref = full_forward_logprobs(model, prompts[row // 3], new)
        picked = ref.gather(-1, out.tokens[row][:, None])[:, 0]
        torch.testing.assert_close(out.logprobs[row], picked, atol=1e-4, rtol=0)


def test_group_fanned_out_from_one_prefill_equals_separate_runs(model):
    prompts = [prompt(4, 2), prompt(9, 3), prompt(6, 4)]
    together = generate(model, prompts, num_samples=2, max_new_tokens=10, temperature=0)
    for p, ids in enumerate(prompts):
        alone = generate(model, [ids], num_samples=1, max_new_tokens=10, temperature=0)
        for g in range(2):
            assert together.tokens[p * 2 + g].tolist() == alone.tokens[0].tolist()
            torch.testing.assert_close(together.logprobs[p * 2 + g], alone.logprobs[0], atol=1e-5, rtol=0)


def test_greedy_equals_transformers_generate(model, tmp_path):
    transformers = pytest.importorskip("transformers")
    M.save_model(model, str(tmp_path))
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()
    for seed, n in [(5, 7), (6, 15)]:
        ids = prompt(n, seed)
        ref = hf.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False, eos_token_id=None,
                          pad_token_id=0, attention_mask=torch.ones(1, n, dtype=torch.long))[0, n:]
        ours = generate(model, [ids], max_new_tokens=24, temperature=0)
        assert ours.tokens[0].tolist() == ref.tolist()


def test_stop_ids_freeze_finished_rows(model):
    prompts = [prompt(6, 8)]
    free = generate(model, prompts, num_samples=4, max_new_tokens=16, temperature=1.0, seed=3)
    stop = free.tokens[0, 3].item()  # a token row 0 emits at step 3 (it may emit it earlier too)
    out = generate(model, prompts, num_samples=4, max_new_tokens=16, temperature=1.0, seed=3, stop_ids=[stop],
                   pad_id=-1)
    for row in range(4):
        toks = free.tokens[row].tolist()
        n = toks.index(stop) + 1 if stop in toks else 16
        assert out.lengths[row] == n and bool(out.stopped[row]) == (stop in toks)
        assert out.tokens[row, :n].tolist() == toks[:n]  # same draws up to the stop
        assert (out.tokens[row, n:] == -1).all() and (out.logprobs[row, n:] == 0).all()
    assert out.stopped[0] and out.lengths[0] <= 4


def test_seeded_and_reproducible(model):
    prompts = [prompt(5, 9), prompt(3, 10)]
    kw = dict(num_samples=3, max_new_tokens=8, temperature=0.6, top_k=20, top_p=0.95)
    a, b = generate(model, prompts, seed=1, **kw), generate(model, prompts, seed=1, **kw)
    c = generate(model, prompts, seed=2, **kw)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logprobs, b.logprobs)
    assert not torch.equal(a.tokens, c.tokens)


def test_sampling_follows_temperature_top_k_top_p():
    logits = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -1.0]])
    temperature, top_k, top_p = 0.8, 4, 0.8
    # by hand: softmax(logits / T) over the top 4, then the smallest prefix reaching 0.8 mass, renormalised
    p = torch.softmax(logits[0, :4] / temperature, -1)
    keep = (p.cumsum(0) - p) < top_p
    expected = torch.zeros(6)
    expected[:4] = torch.where(keep, p, 0) / p[keep].sum()
    assert keep.tolist() == [True, True, True, False]  # the case exercises both cuts
    n = 200_000
    tokens, logprobs, _ = sample(logits.expand(n, 6), temperature, top_k, top_p, torch.arange(n))
    freq = torch.bincount(tokens, minlength=6).float() / n
    torch.testing.assert_close(freq, expected, atol=5e-3, rtol=0)
    torch.testing.assert_close(logprobs, expected[tokens].log(), atol=1e-5, rtol=0)


def test_noise_is_positive_so_a_token_of_probability_zero_is_never_drawn():
    # every 24-bit value, including the largest (which rounded to uniform 1.0, noise 0, and let a
    # masked token win as 0 / 0 = nan); then a batch where that happens: top-p keeps 1 token of 3
    k = torch.arange(2**24, dtype=torch.int64)
    uniform = (((k.float() + 0.5) * 2.0**-24).clamp_(max=1.0 - 2.0**-24))
    assert 0.0 < uniform.min() and uniform.max() < 1.0
    noise = GEN.exponential_noise(torch.arange(4096), 3)
    assert (noise > 0).all() and torch.isfinite(noise).all()
    def unmix32(x):  # mix32's inverse: x ^ (x >> 16) is its own, the multiplier's is mod 2^32
        inverse = pow(0x45D9F3B, -1, 2**32)
        for step in (lambda v: v ^ (v >> 16), lambda v: (v * inverse) & GEN.MASK32) * 2:
            x = step(x)
        return x ^ (x >> 16)

    # the key whose column 1 has all 32 bits set: a masked token's noise was 0 there
    key = (unmix32(GEN.MASK32) - GEN.GOLDEN) & GEN.MASK32
    assert GEN.mix32((key + GEN.GOLDEN) & GEN.MASK32) == GEN.MASK32
    tokens, logprobs, _ = sample(torch.tensor([[5.0, 0.0, -1.0]]), 1.0, 0, 0.5, torch.tensor([key]))
    assert tokens.item() == 0 and logprobs.item() == 0.0  # top-p 0.5 keeps token 0 only


def test_top_p_without_top_k_looks_for_the_nucleus_among_the_top_tokens_first(monkeypatch):
    # the paper's evaluation setting (top-p 0.95, no top-k): a peaked row's nucleus lies among the top
    # NUCLEUS_CANDIDATES tokens, so the vocabulary need not be sorted; a flat row's does not, and the whole
    # batch then sorts everything. Either way the samples are those of the full sort.
    g = torch.Generator().manual_seed(0)
    V, n, T = 5000, 4096, 0.6
    peaked, flat = torch.randn(V, generator=g) * 4.0, torch.randn(V, generator=g) * 0.1
    for rows, candidates in ((peaked.expand(n, V), GEN.NUCLEUS_CANDIDATES), (torch.stack([peaked, flat]), V)):
        scaled = rows / T
        values, index = GEN.nucleus_candidates(scaled, torch.logsumexp(scaled, -1), 0.95)
        assert values.shape == (len(rows), candidates)
        keys = torch.arange(len(rows))
        fast = sample(rows, T, 0, 0.95, keys)
        monkeypatch.setattr(GEN, "NUCLEUS_CANDIDATES", V)  # force the full sort
        full = sample(rows, T, 0, 0.95, keys)
        monkeypatch.undo()
        assert torch.equal(fast[0], full[0])
        torch.testing.assert_close(fast[1], full[1], atol=1e-6, rtol=0)
        torch.testing.assert_close(fast[2], full[2], atol=0, rtol=0)


def test_raw_logprobs_are_the_full_softmax_at_temperature_before_top_k_top_p(model):
    prompts = [prompt(6, 11), prompt(10, 12)]
    T = 0.7
    out = generate(model, prompts, num_samples=2, max_new_tokens=10, temperature=T, top_k=5, top_p=0.8, seed=4)
    for row in range(4):
        new = out.tokens[row].tolist()
        ids = torch.tensor(prompts[row // 2] + new)[None]
        with torch.no_grad():
            logits = model(ids)[0].float()[len(prompts[row // 2]) - 1 : -1]  # [10, V], predicting each new token
        expected = torch.log_softmax(logits / T, -1).gather(-1, out.tokens[row][:, None])[:, 0]
        torch.testing.assert_close(out.raw_logprobs[row], expected, atol=1e-4, rtol=0)
        # top-k/top-p renormalise over fewer tokens: the sampled distribution gives each kept token more mass
        assert (out.logprobs[row] >= out.raw_logprobs[row] - 1e-5).all()
    assert (out.logprobs > out.raw_logprobs + 1e-3).any()


def skewed_stops(model, prompts, **kw):
    """Stop ids that some samples emit early and others never: tokens sample 0 draws at step 2 and the
    last sample at step 4 in a run without stops."""
    free = generate(model, prompts, **kw)
    return [free.tokens[0, 2].item(), free.tokens[-1, 4].item()]


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_static_chunked_and_continuous_batching_give_the_same_samples(model, temperature):
    prompts = [prompt(5, 20), prompt(12, 21), prompt(3, 22), prompt(8, 23)]
    G, n = 3, 14
    kw = dict(num_samples=G, max_new_tokens=n, temperature=temperature, top_k=40, top_p=0.9, seed=6, pad_id=-1)
    kw["stop_ids"] = skewed_stops(model, prompts, **kw)
    row_bytes = cache_bytes_per_row(model.cfg, bucket_length(12 + n), torch.float32)
    static = generate(model, prompts, continuous=False, **kw)  # every sample in one batch
    assert 0 < int(static.stopped.sum()) < 12  # the case has early stops and full-length samples
    for rows in (5, 2):  # 5 rows do not divide 12 samples
        for continuous in (False, True):
            out = generate(model, prompts, memory_budget=rows * row_bytes, continuous=continuous, sync_every=3, **kw)
            assert torch.equal(out.tokens, static.tokens), (rows, continuous)
            assert torch.equal(out.lengths, static.lengths) and torch.equal(out.stopped, static.stopped)
            torch.testing.assert_close(out.logprobs, static.logprobs, atol=1e-5, rtol=0)
            torch.testing.assert_close(out.raw_logprobs, static.raw_logprobs, atol=1e-5, rtol=0)


def test_a_sample_depends_on_its_prompt_and_sample_index_not_on_the_batch(model):
    prompts = [prompt(7, 30), prompt(4, 31)]
    kw = dict(max_new_tokens=9, temperature=1.0, top_k=20, seed=8)
    both = generate(model, prompts, num_samples=4, **kw)
    first_alone = generate(model, prompts[:1], num_samples=2, **kw)  # samples 0 and 1 of prompt 0
    assert torch.equal(both.tokens[:2], first_alone.tokens)
    assert not torch.equal(both.tokens[0], both.tokens[1])


def test_memory_budget_sets_the_rows_and_rejects_a_budget_below_one_row(model):
    row = cache_bytes_per_row(model.cfg, 16, torch.float32)
    kv = 2 * 2 * 2 * 32 * 17 * 4  # k and v x layers x KV heads x head_dim x (16 + 1 spare) positions x float32
    assert row == kv + 16 * VOCAB  # and the sampler's 4 float32 copies of the logits
    with pytest.raises(ValueError, match="holds no row"):
        generate(model, [prompt(4, 0)], max_new_tokens=8, memory_budget=row // 2)


def test_bucket_lengths_are_few_and_cover():
    assert [bucket_length(n) for n in (1, 16, 17, 24, 25, 33, 48, 49, 1000, 16384 + 4096)] == \
        [16, 16, 24, 24, 32, 48, 48, 64, 1024, 24576]
    assert len({bucket_length(n) for n in range(1, 32769)}) == 23


def test_compiled_step_compiles_once_across_lengths_rows_and_calls(model):
    """torch.compile (inductor, CPU: no CUDA graphs) over a run that crosses 4 cache buckets and shrinks its
    rows, then a second call with another row count: one graph, and the tokens of the eager step."""
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    GEN._compiled_steps.clear()
    prompts = [prompt(5, 40), prompt(9, 41), prompt(13, 42)]
    kw = dict(num_samples=3, max_new_tokens=40, temperature=0.8, top_k=20, top_p=0.9, seed=1, sync_every=4)
    kw["stop_ids"] = skewed_stops(model, prompts, **kw)
    eager = generate(model, prompts, compile=False, **kw)
    counters.clear()
    compiled = generate(model, prompts, compile=True, **kw)  # buckets 16 to 64, 9 rows shrinking to 2
    budget = 4 * cache_bytes_per_row(model.cfg, 64, torch.float32)
    chunked = generate(model, prompts, compile=True, memory_budget=budget, **kw)  # 4 rows
    assert counters["stats"]["unique_graphs"] == 1
    assert torch.equal(compiled.tokens, eager.tokens) and torch.equal(chunked.tokens, eager.tokens)
    torch.testing.assert_close(compiled.logprobs, eager.logprobs, atol=1e-4, rtol=0)
