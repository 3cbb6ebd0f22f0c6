"""model.py against HF transformers (the reference), on tiny random Qwen3s written through safetensors."""
import json
import os
import subprocess
import sys

import pytest
import torch

import model as M
from logprobs import token_logprobs

transformers = pytest.importorskip("transformers")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 512


def hf_config(**overrides):
    cfg = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, head_dim=24, tie_word_embeddings=True,
               rope_theta=1e6, rms_norm_eps=1e-6, pad_token_id=0)
    cfg.update(overrides)
    return transformers.Qwen3Config(**cfg)


def randomize(module, seed=0, std=0.15):
    """HF's init (std 0.02) gives near-constant outputs; larger weights and non-unit norms make
    mistakes visible. Norm weights are drawn around 1 so a missing or misplaced norm changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1 + 0.3 * noise if name.endswith("norm.weight") else std * noise)
    return module


def save_hf(tmp_path, name="ckpt", cls="Qwen3ForCausalLM", max_shard_size=None, seed=0, **cfg):
    hf = randomize(getattr(transformers, cls)(hf_config(**cfg)), seed).eval()
    path = str(tmp_path / name)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    hf.save_pretrained(path, **kwargs)
    return hf, path


# -----------------------------------------------------------------------------
# Parity with transformers


@pytest.mark.parametrize("tied,heads,kv_heads", [(True, 4, 4), (False, 4, 2), (True, 8, 2), (False, 8, 8)])
def test_causal_lm_logits_match_transformers(tmp_path, tied, heads, kv_heads):
    # GQA ratios 1, 2, 4; head_dim 24 != hidden 64 / heads
    hf, path = save_hf(tmp_path, tie_word_embeddings=tied, num_attention_heads=heads,
                       num_key_value_heads=kv_heads)
    model = M.load_model(path, dtype=torch.float32)
    assert model.cfg.tie_word_embeddings == tied
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    ids = torch.randint(0, VOCAB, (3, 29), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, ref = model(ids), hf(ids).logits
    assert ours.shape == (3, 29, VOCAB)
    assert ref.abs().max() > 1.0  # the comparison is not between near-zero tensors
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_sequence_classification_scores_match_transformers(tmp_path):
    hf, path = save_hf(tmp_path, cls="Qwen3ForSequenceClassification", num_labels=1, tie_word_embeddings=False)
    model = M.load_model(path, dtype=torch.float32)  # head picked from config.json's architectures
    assert model.head_name == "score" and not hasattr(model, "lm_head")
    ids = torch.randint(1, VOCAB, (2, 21), generator=torch.Generator().manual_seed(2))
    ids[1, 15:] = 0  # right padding: HF pools at the last non-pad token
    with torch.no_grad():
        ref = hf(ids).logits  # [2, 1]
        ours = model(ids)  # [2, 21, 1] per-token scores
    torch.testing.assert_close(torch.stack([ours[0, 20], ours[1, 14]]), ref, atol=1e-4, rtol=0)


def test_sharded_checkpoint_loads(tmp_path):
    hf, path = save_hf(tmp_path, tie_word_embeddings=False, max_shard_size="100KB")
    assert os.path.exists(os.path.join(path, "model.safetensors.index.json"))
    assert len([f for f in os.listdir(path) if f.endswith(".safetensors")]) > 2
    model = M.load_model(path, dtype=torch.float32)
    ids = torch.randint(0, VOCAB, (2, 13))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), hf(ids).logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("tied,shard_bytes", [(True, 5 * 2**30), (False, 60_000)])
def test_round_trip_we_save_transformers_loads(tmp_path, tied, shard_bytes):
    model = M.init_weights(M.Qwen3(M.tiny_config(vocab_size=VOCAB, tie_word_embeddings=tied)), std=0.15)
    out = str(tmp_path / "ours")
    M.save_model(model, out, max_shard_bytes=shard_bytes)
    files = os.listdir(out)
    assert ("model.safetensors.index.json" in files) == (shard_bytes < 2**20)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.randint(0, VOCAB, (2, 19))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), hf(ids).logits, atol=1e-4, rtol=0)
    # tied weights are written once
    from safetensors import safe_open
    keys = set()
    for f in files:
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(out, f), "pt") as sf:
                keys |= set(sf.keys())
    assert ("lm_head.weight" in keys) == (not tied)
    # and our loader reads back exactly what it wrote
    again = M.load_model(out)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_round_trip_score_head_and_bf16(tmp_path):
    model = M.init_weights(M.Qwen3(M.tiny_config(vocab_size=VOCAB, pad_token_id=0), head="score"), std=0.15)
    out = str(tmp_path / "rm")
    M.save_model(model, out, dtype=torch.bfloat16)
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["architectures"] == ["Qwen3ForSequenceClassification"] and cfg["num_labels"] == 1
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(out, dtype=torch.float32).eval()
    ours = M.load_model(out, dtype=torch.float32)
    assert M.load_model(out).model.norm.weight.dtype == torch.bfloat16  # dtype=None keeps the stored dtype
    ids = torch.randint(1, VOCAB, (2, 11))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids)[:, -1], hf(ids).logits, atol=1e-4, rtol=0)


# -----------------------------------------------------------------------------
# Packed forward


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("attention", ["spans", "dense", "flex"])
def test_packed_forward_equals_each_sequence_alone(monkeypatch, attention):
    monkeypatch.setattr(M, "PACKED_ATTENTION", attention)
    model = M.init_weights(M.Qwen3(M.tiny_config(vocab_size=VOCAB, num_attention_heads=8)), std=0.15, seed=3)
    lens = [7, 1, 23, 12]
    seqs = [torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(n)) for n in lens]
    with torch.no_grad():
        packed = model(torch.cat(seqs)[None], seq_lens=lens)[0]  # [N, V]
        alone = torch.cat([model(s[None])[0] for s in seqs])
        padded_row = model(torch.cat(seqs + [torch.zeros(5, dtype=torch.long)])[None], seq_lens=lens)[0]
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(padded_row[: sum(lens)], alone, atol=1e-5, rtol=0)  # trailing pad is inert


def test_packed_positions_restart_per_sequence(monkeypatch):
    monkeypatch.setattr(M, "PACKED_ATTENTION", "dense")
    positions, mask = M.packed_positions_and_mask([3, 2], torch.device("cpu"), total=6)
    assert positions.tolist() == [[0, 1, 2, 0, 1, 0]]
    expected = torch.tensor([[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0],
                             [0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(mask[0, 0], expected)


@pytest.mark.parametrize("lens,total,block", [([7, 1, 23, 12], 43, 8), ([40], 40, 16), ([5, 9, 3, 30, 2], 52, 4),
                                             ([130, 3, 126], 259, 128)])
def test_block_mask_from_boundaries_equals_create_block_mask(lens, total, block):
    # the same visited and "full" blocks as torch's own builder (which evaluates an N x N mask eagerly)
    from torch.nn.attention.flex_attention import create_block_mask
    segments = torch.tensor(lens + ([total - sum(lens)] if total > sum(lens) else []))
    seq_id = torch.repeat_interleave(torch.arange(len(segments)), segments)
    ours = M.packed_block_mask(seq_id, total, block=block)
    ref = create_block_mask(lambda b, h, q, kv: (seq_id[q] == seq_id[kv]) & (q >= kv), None, None, total, total,
                            device="cpu", BLOCK_SIZE=block)
    assert torch.equal(ours.to_dense(), ref.to_dense())
    for kind in ("kv", "full_kv"):
        counts, indices = getattr(ours, f"{kind}_num_blocks")[0, 0], getattr(ours, f"{kind}_indices")[0, 0]
        ref_counts, ref_indices = getattr(ref, f"{kind}_num_blocks")[0, 0], getattr(ref, f"{kind}_indices")[0, 0]
        assert torch.equal(counts, ref_counts), kind
        for row, n in enumerate(counts.tolist()):
            assert sorted(indices[row, :n].tolist()) == sorted(ref_indices[row, :n].tolist()), (kind, row)
    assert int(ours.full_kv_num_blocks.sum()) > 0 or max(lens) < 2 * block  # the full-block path is exercised


# -----------------------------------------------------------------------------
# Memory: chunked log-probs, activation checkpointing


def test_chunked_logprobs_equal_full_log_softmax_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 16, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(101, 16, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 101, (37,), generator=g)
    w_logp, w_ent = torch.randn(37, generator=g, dtype=torch.float64), torch.randn(37, generator=g, dtype=torch.float64)

    def unchunked():
        logp_all = torch.log_softmax(hidden @ weight.t() / 0.7, dim=-1)  # [N, V]
        return logp_all.gather(-1, targets[:, None])[:, 0], -(logp_all.exp() * logp_all).sum(-1)

    for chunk_rows in (5, 37, 1000):  # several chunks with a short last one, exactly one, more rows than N
        for with_entropy in (True, False):
            logp, entropy = token_logprobs(hidden, weight, targets, 0.7, with_entropy, chunk_rows=chunk_rows)
            ref_logp, ref_entropy = unchunked()
            torch.testing.assert_close(logp, ref_logp, atol=1e-10, rtol=0)
            loss = (logp * w_logp).sum() + ((entropy * w_ent).sum() if with_entropy else 0)
            ref_loss = (ref_logp * w_logp).sum() + ((ref_entropy * w_ent).sum() if with_entropy else 0)
            grads = torch.autograd.grad(loss, [hidden, weight])
            ref_grads = torch.autograd.grad(ref_loss, [hidden, weight])
            for ours, ref in zip(grads, ref_grads):
                torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
            if with_entropy:
                torch.testing.assert_close(entropy, ref_entropy, atol=1e-10, rtol=0)
            else:
                assert entropy is None


def test_model_targets_path_equals_logits_path():
    model = M.init_weights(M.Qwen3(M.tiny_config(vocab_size=VOCAB)), std=0.15, seed=4).double()
    ids, head_at = torch.randint(0, VOCAB, (1, 20)), torch.tensor([3, 4, 5, 11, 12, 18])
    targets = ids[0, head_at + 1]
    logp, _ = model(ids, seq_lens=[9, 11], head_at=head_at, targets=targets, temperature=0.6)
    ref = torch.log_softmax(model(ids, seq_lens=[9, 11], head_at=head_at) / 0.6, -1).gather(-1, targets[:, None])[:, 0]
    torch.testing.assert_close(logp, ref, atol=1e-10, rtol=0)


def test_activation_checkpointing_gives_the_same_gradients():
    model = M.init_weights(M.Qwen3(M.tiny_config(vocab_size=VOCAB, num_hidden_layers=3)), std=0.15, seed=5).double()
    ids = torch.randint(0, VOCAB, (1, 30), generator=torch.Generator().manual_seed(1))

    def grads():
        model.zero_grad()
        logp, entropy = model(ids, seq_lens=[12, 18], head_at=torch.arange(29), targets=ids[0, 1:], with_entropy=True)
        (logp.sum() + 0.1 * entropy.sum()).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    calls = []
    model.model.layers[1].self_attn.q_proj.register_forward_hook(lambda *_: calls.append(1))
    plain = grads()
    assert len(calls) == 1
    model.set_activation_checkpointing(True)
    recomputed = grads()
    assert len(calls) == 3  # the block ran again in backward
    for name, g in plain.items():
        torch.testing.assert_close(recomputed[name], g, atol=1e-12, rtol=0, msg=name)
    assert max(g.abs().max() for g in plain.values()) > 1e-3
    with torch.no_grad():  # decoding and no-grad forwards never checkpoint (nothing to recompute for)
        model(ids)


# -----------------------------------------------------------------------------
# Loading: hub ids through a local cache, and the errors


def test_load_from_hub_id_through_offline_cache(tmp_path):
    hf, path = save_hf(tmp_path)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--tiny-org--tiny-qwen3"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in os.listdir(path):
        os.link(os.path.join(path, f), snap / f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    ids = torch.randint(0, VOCAB, (1, 9), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = hf(ids).logits[0, -1].tolist()
    code = ("import sys, torch, model; m = model.load_model('tiny-org/tiny-qwen3', dtype=torch.float32); "
            f"print(m(torch.tensor([{ids[0].tolist()}]))[0, -1].tolist())")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache"), "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    torch.testing.assert_close(torch.tensor(eval(out.stdout)), torch.tensor(expected), atol=1e-4, rtol=0)


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no/such/dir"):
        M.load_model("./no/such/dir")
    hf, path = save_hf(tmp_path, tie_word_embeddings=False, max_shard_size="100KB")
    shard = json.load(open(os.path.join(path, "model.safetensors.index.json")))["weight_map"]["lm_head.weight"]
    os.remove(os.path.join(path, shard))
    with pytest.raises(FileNotFoundError, match=shard):
        M.load_model(path)

    hf, path = save_hf(tmp_path, name="bad_shape")
    from safetensors.torch import load_file, save_file
    file = os.path.join(path, "model.safetensors")
    state = load_file(file)
    state["model.layers.1.mlp.up_proj.weight"] = torch.zeros(95, 64)
    save_file(state, file)
    with pytest.raises(ValueError, match=r"model\.layers\.1\.mlp\.up_proj\.weight has shape \[95, 64\] .* \[96, 64\]"):
        M.load_model(path)
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, file)
    with pytest.raises(KeyError, match=r"missing keys \['model\.layers\.1\.mlp\.up_proj\.weight'\]"):
        M.load_model(path)
    state["model.layers.1.mlp.up_proj.weight"] = torch.zeros(96, 64)
    state["model.layers.1.mlp.extra.weight"] = torch.zeros(3)
    save_file(state, file)
    with pytest.raises(KeyError, match=r"unexpected key 'model\.layers\.1\.mlp\.extra\.weight'"):
        M.load_model(path)
    # a causal LM asked for as a reward model lacks the score head
    hf, path = save_hf(tmp_path, name="causal")
    with pytest.raises(KeyError, match="score.weight"):
        M.load_model(path, head="score")

