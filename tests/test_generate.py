"""generate.py: cached decoding against uncached forwards, group fan-out, sampling, transformers' greedy."""
import pytest
import torch

import model as M
from generate import generate, sample

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
