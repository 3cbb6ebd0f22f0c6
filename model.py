"""Qwen3 in plain PyTorch, with Hugging Face checkpoint I/O.

The decoder every part of this project runs: the reward model (Qwen3 + a scalar `score` head), the GRPO
policy (Qwen3 + `lm_head`) and the best-of-N sampler. One block, per METHOD.md section 7:

    x = x + o_proj(attn(rope(q_norm(q_proj(rms(x)))), rope(k_norm(k_proj(rms(x)))), v_proj(rms(x))))
    x = x + down_proj(silu(gate_proj(rms(x))) * up_proj(rms(x)))

RMSNorm in float32, per-head RMSNorm on q and k before rotate-half RoPE, grouped-query attention through
`scaled_dot_product_attention`, no biases, `head_dim` read from the config, tied or untied embeddings.

Three ways to call the same weights:
  - model(ids)                      ids [B, T], causal, right padding allowed    -> logits [B, T, V]
  - model(ids, seq_lens=[...])      ids [1, N], several sequences packed in one row; positions restart at
                                    0 for each and attention stays inside each (block-diagonal causal)
  - model(ids, cache=..., ...)      KV-cached decoding, used by generate.py

Training memory: `model(..., head_at=, targets=)` returns log-probs and entropy of chosen tokens through
logprobs.token_logprobs, never holding [tokens, vocab] logits; `set_activation_checkpointing` recomputes
each block in backward; on CUDA packed rows attend through a flex-attention BlockMask built from the
sequence boundaries (no N x N mask).

Checkpoints: `load_model(name_or_path)` reads an HF directory or hub id (single file or sharded,
`Qwen3ForCausalLM` or `Qwen3ForSequenceClassification`), building on the meta device and materialising
once, so an 8B model is never held twice (with `shard=`, each rank reads only its FSDP shards).
`save_model` writes what transformers and vLLM read. A demo that writes, loads and samples: `python demo.py`.
"""
import json
import os
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from hub import local_dir
from inputs import InputError, InputKeyError, InputNotFound, check_file, read_json
from logprobs import token_logprobs

# -----------------------------------------------------------------------------
# Config


@dataclass
class Qwen3Config:
    vocab_size: int = 151936
    hidden_size: int = 1024
    intermediate_size: int = 3072
    num_hidden_layers: int = 28
    num_attention_heads: int = 16
    num_key_value_heads: int = 8
    head_dim: int = 128
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1e6
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 40960
    num_labels: int = 1  # rows of the `score` head (reward models use 1)
    pad_token_id: int | None = None
    torch_dtype: str = "float32"  # the dtype the checkpoint is stored in

    @classmethod
    def from_hf(cls, hf: dict) -> "Qwen3Config":
        """Fill from an HF config.json dict (transformers 4.x `rope_theta` or 5.x `rope_parameters`)."""
        rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            raise ValueError(f"config.json: rope type {rope_type!r} is not supported (only the default RoPE)")
        if hf.get("use_sliding_window"):
            raise ValueError("config.json: use_sliding_window=true is not supported (Qwen3 does not use it)")
        if hf.get("attention_bias"):
            raise ValueError("config.json: attention_bias=true is not supported (Qwen3 has no biases)")
        known = {f.name for f in fields(cls)} - {"rope_theta", "torch_dtype"}
        cfg = cls(**{k: hf[k] for k in known if k in hf and hf[k] is not None})
        cfg.rope_theta = float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))  # HF's default
        cfg.torch_dtype = str(hf.get("torch_dtype") or hf.get("dtype") or "float32")
        if hf.get("num_key_value_heads") is None:
            cfg.num_key_value_heads = cfg.num_attention_heads
        if "head_dim" not in hf:
            cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads
        if "tie_word_embeddings" not in hf:
            cfg.tie_word_embeddings = False  # transformers' default for Qwen3Config
        if cfg.num_attention_heads % cfg.num_key_value_heads:
            raise ValueError(f"config.json: {cfg.num_attention_heads} heads is not a multiple of "
                             f"{cfg.num_key_value_heads} KV heads")
        return cfg

    def to_hf(self, architecture: str) -> dict:
        """The config.json that transformers (4.x and 5.x) and vLLM read."""
        hf = {k: getattr(self, k) for k in (
            "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "tie_word_embeddings",
            "max_position_embeddings", "pad_token_id", "torch_dtype")}
        hf.update(architectures=[architecture], model_type="qwen3", hidden_act="silu", attention_bias=False,
                  attention_dropout=0.0, use_sliding_window=False, rope_scaling=None, dtype=self.torch_dtype,
                  rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta})
        if architecture == "Qwen3ForSequenceClassification":
            hf["num_labels"] = self.num_labels
            hf["id2label"] = {str(i): f"LABEL_{i}" for i in range(self.num_labels)}
            hf["label2id"] = {f"LABEL_{i}": i for i in range(self.num_labels)}
        return hf


# -----------------------------------------------------------------------------
# Layers


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x32 = x.float() if x.element_size() < 4 else x  # normalise in (at least) float32, as HF does
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """positions [..., T] -> cos, sin [..., T, head_dim], computed in float32 from the positions themselves
    (no table, so no maximum length and nothing to materialise after building on the meta device)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float) / head_dim)
    freqs = positions[..., None].float() * inv_freq  # [..., T, head_dim/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [..., T, head_dim]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x, cos, sin):
    """x [B, heads, T, D]; cos, sin [B, T, D]. Rotate-half RoPE (the two halves of D are the pairs)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def attend(q, k, v, mask):
    """q [B, H, Tq, D], k, v [B, KV, Tk, D] -> [B, H, Tq, D]. `mask` is one of:
      None            plain causal (Tq == Tk)
      bool tensor     [B|1, 1, Tq, Tk], True = may attend (decoding, dense packed fallback)
      SequenceSpans   packed sequences, each attended alone with causal SDPA (CPU: no N x N mask)
      BlockMask       packed sequences through flex attention (CUDA)"""
    if isinstance(mask, SequenceSpans):
        return torch.cat([F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], is_causal=True,
                                                         enable_gqa=True) for a, b in mask], dim=2)
    if mask is not None and not isinstance(mask, torch.Tensor):
        return flex_attention_fn()(q, k, v, block_mask=mask, enable_gqa=True)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=True)


class Attention(nn.Module):
    def __init__(self, cfg: Qwen3Config, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, cfg.hidden_size, bias=False)
        self.q_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, mask, cache=None, positions=None):
        B, T, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(B, T, self.n_heads, self.head_dim)).transpose(1, 2)  # [B, H, T, D]
        k = self.k_norm(self.k_proj(x).view(B, T, self.n_kv, self.head_dim)).transpose(1, 2)  # [B, KV, T, D]
        v = self.v_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)  # [B, KV, T, D]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:  # store this call's k, v; in decode mode attend over the whole cache instead
            k, v = cache.write(self.layer_idx, k, v, positions)
        y = attend(q, k, v, mask)  # [B, H, T, D]
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg: Qwen3Config):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: Qwen3Config, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, layer_idx)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)
        self.checkpointing = False  # set by Qwen3.set_activation_checkpointing

    def forward(self, x, cos, sin, mask, cache=None, positions=None):
        if self.checkpointing and cache is None and torch.is_grad_enabled():
            # keep only this block's input; backward runs the block again. Inside forward, so under FSDP2 the
            # block's pre-backward all-gather has already run when the recomputation needs the weights.
            return checkpoint(self.block_forward, x, cos, sin, mask, use_reentrant=False)
        return self.block_forward(x, cos, sin, mask, cache, positions)

    def block_forward(self, x, cos, sin, mask, cache=None, positions=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, positions)
        return x + self.mlp(self.post_attention_layernorm(x))


class Qwen3Model(nn.Module):
    """The backbone (HF key prefix `model.`): embeddings, blocks, final norm."""

    def __init__(self, cfg: Qwen3Config):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, input_ids, positions, mask, cache=None):
        """input_ids, positions [B, T] -> final hidden states [B, T, hidden]."""
        x = self.embed_tokens(input_ids)  # [B, T, hidden]
        cos, sin = rope_cos_sin(positions, self.cfg.head_dim, self.cfg.rope_theta, x.dtype)  # [B, T, D]
        for layer in self.layers:
            x = layer(x, cos, sin, mask, cache, positions)
        return self.norm(x)


class Qwen3(nn.Module):
    """Qwen3 backbone + a linear head: `lm_head` [V, hidden] (Qwen3ForCausalLM) or `score`
    [num_labels, hidden] (Qwen3ForSequenceClassification). Parameter names are HF's, so state dicts
    load and save without renaming."""

    def __init__(self, cfg: Qwen3Config, head: str = "lm_head"):
        super().__init__()
        if head not in ("lm_head", "score"):
            raise ValueError(f"head must be 'lm_head' or 'score', not {head!r}")
        self.cfg, self.head_name = cfg, head
        self.model = Qwen3Model(cfg)
        if head == "lm_head":
            self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        else:
            self.score = nn.Linear(cfg.hidden_size, cfg.num_labels, bias=False)
        self.tie_weights()

    @property
    def head(self) -> nn.Linear:
        return getattr(self, self.head_name)

    @property
    def architecture(self) -> str:
        return "Qwen3ForCausalLM" if self.head_name == "lm_head" else "Qwen3ForSequenceClassification"

    def tie_weights(self):
        if self.head_name == "lm_head" and self.cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def hidden_states(self, input_ids, seq_lens=None, positions=None, mask=None, cache=None):
        """Final hidden states [B, T, hidden]. With `seq_lens`, input_ids [1, N] holds the sequences packed
        back to back (sum(seq_lens) == N) and attention is block-diagonal causal."""
        if seq_lens is not None:
            assert input_ids.shape[0] == 1 and positions is None and mask is None
            positions, mask = packed_positions_and_mask(seq_lens, input_ids.device, input_ids.shape[1])
        elif positions is None:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        return self.model(input_ids, positions, mask, cache)

    def set_activation_checkpointing(self, enabled: bool = True):
        """Recompute each block in backward instead of keeping its activations: the forward of a training
        micro-batch then keeps one [T, hidden] input per block (plus one block's activations during its
        backward) at the cost of a second forward pass of the blocks (about +33% of their compute)."""
        for block in self.model.layers:
            block.checkpointing = enabled
        return self

    def forward(self, input_ids, seq_lens=None, positions=None, mask=None, cache=None, head_at=None,
                targets=None, temperature: float = 1.0, with_entropy: bool = False):
        """input_ids [B, T] -> logits [B, T, V] (scores [B, T, num_labels] for the score head).
        head_at: flat indices into the B*T positions; the head runs only there -> [len(head_at), V].
        targets [len(head_at)] (with head_at): instead of logits, the log-probs of the targets under
        logits / temperature and the entropy (None unless with_entropy), through `token_logprobs`, which
        never holds more than a chunk of rows of logits -> (logp [n], entropy [n] or None).
        (Under FSDP call the model, not `hidden_states`: the root's parameters are gathered in forward.)"""
        hidden = self.hidden_states(input_ids, seq_lens, positions, mask, cache)
        if head_at is not None:
            hidden = hidden.flatten(0, 1)[head_at]  # [len(head_at), H]
        if targets is not None:
            return token_logprobs(hidden, self.head.weight, targets, temperature, with_entropy)
        return self.head(hidden)


# -----------------------------------------------------------------------------
# Packed sequences: positions restart per sequence, attention stays inside each one


def flex_attention_fn():
    """flex_attention, compiled once (eager flex attention is a slow reference implementation)."""
    global _flex_attention
    if _flex_attention is None:
        from torch.nn.attention.flex_attention import flex_attention
        # default compile: a second packed length marks the length dynamic, so new lengths do not recompile
        _flex_attention = torch.compile(flex_attention) if torch.cuda.is_available() else flex_attention
    return _flex_attention


class SequenceSpans(tuple):
    """(start, end) token spans of the sequences of a packed row."""


_flex_attention = None
# How packed rows attend: "auto" = flex on CUDA, spans elsewhere; "flex", "spans" or "dense" (an SDPA mask,
# the fallback where flex attention is missing) force one.
PACKED_ATTENTION = os.environ.get("PACKED_ATTENTION", "auto")


def packed_positions_and_mask(seq_lens, device, total: int | None = None):
    """seq_lens (list of ints or a 1-D tensor) -> positions [1, N] and the block-diagonal causal mask.

    Tokens past sum(seq_lens) (padding up to `total`) form one more segment so they attend only to each
    other and never leak into a real sequence. The mask comes in the form `attend` runs fastest here:
    on CUDA a flex-attention BlockMask (skips whole blocks, memory O(N)); on CPU the spans themselves
    (causal SDPA per sequence: sum(L^2) work instead of N^2); "dense" a bool [1, 1, N, N] for plain SDPA.
    """
    lens = torch.as_tensor(seq_lens, dtype=torch.long).cpu()
    n_real = int(lens.sum())
    total = n_real if total is None else total
    if total < n_real:
        raise ValueError(f"seq_lens sum to {n_real} but the packed row has only {total} tokens")
    if total > n_real:
        lens = torch.cat([lens, lens.new_tensor([total - n_real])])
    ends = torch.cumsum(lens, 0)
    seq_id = torch.repeat_interleave(torch.arange(len(lens)), lens).to(device)  # [N]
    starts = (ends - lens).to(device)  # [S]
    positions = torch.arange(total, device=device) - starts[seq_id]  # [N]
    kind = PACKED_ATTENTION if PACKED_ATTENTION != "auto" else ("flex" if device.type == "cuda" else "spans")
    if kind == "flex":
        mask = packed_block_mask(seq_id, total)
    elif kind == "spans":
        mask = SequenceSpans(zip((ends - lens).tolist(), ends.tolist()))
    else:
        causal = torch.ones(total, total, dtype=torch.bool, device=device).tril_()
        mask = ((seq_id[:, None] == seq_id[None, :]) & causal)[None, None]  # [1, 1, N, N]
    return positions[None], mask


def packed_block_mask(seq_id: torch.Tensor, total: int, block: int = 128):
    """The flex-attention BlockMask of a packed row (block-diagonal causal), built from the sequence
    boundaries in O((N / block)^2) memory, never an N x N mask (`create_block_mask` evaluates the mask at
    every (q, kv) pair unless compiled: 4 GiB of bools for a 64K-token row).

    seq_id [N]: the sequence of each token (non-decreasing, every sequence non-empty). A (q block, kv block)
    pair is visited when kv block <= q block and the two share a sequence; it is "full" (the mask is not
    evaluated inside it) when both blocks lie whole inside one sequence and the kv block is strictly earlier.
    """
    from torch.nn.attention.flex_attention import BlockMask

    n_blocks = -(-total // block)
    starts = torch.arange(n_blocks, device=seq_id.device) * block
    first = seq_id[starts]  # [n_blocks] sequence of each block's first token
    last = seq_id[(starts + block - 1).clamp(max=total - 1)]  # and of its last
    complete = starts + block <= total  # a short last block is never "full"
    q, kv = torch.arange(n_blocks, device=seq_id.device)[:, None], torch.arange(n_blocks, device=seq_id.device)[None]
    share = (first[None] <= last[:, None]) & (last[None] >= first[:, None])  # [nq, nkv] sequence ranges overlap
    visited = share & (kv <= q)
    one_sequence = (first == last) & complete
    full = visited & (kv < q) & one_sequence[:, None] & one_sequence[None] & (first[:, None] == first[None])
    partial = visited & ~full

    def as_indices(blocks):  # [nq, nkv] bool -> counts [1, 1, nq], indices [1, 1, nq, nkv] (listed ones first)
        counts = blocks.sum(-1, dtype=torch.int32)
        order = torch.argsort((~blocks).to(torch.int8), dim=-1, stable=True).to(torch.int32)
        return counts[None, None], order[None, None]

    def same_sequence_causal(b, h, q_idx, kv_idx):
        return (seq_id[q_idx] == seq_id[kv_idx]) & (q_idx >= kv_idx)

    return BlockMask.from_kv_blocks(*as_indices(partial), *as_indices(full), BLOCK_SIZE=block,
                                    mask_mod=same_sequence_causal, seq_lengths=(total, total))


# -----------------------------------------------------------------------------
# Checkpoint I/O (HF layout)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def checkpoint_files(ckpt_dir: str) -> list[str]:
    """The safetensors files of a checkpoint directory, single-file or sharded."""
    index = os.path.join(ckpt_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        index_json = read_json(index)
        weight_map = index_json.get("weight_map") if isinstance(index_json, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise InputError(index, "field 'weight_map' must map tensor names to shard file names")
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not os.path.isfile(os.path.join(ckpt_dir, s))]
        if missing:
            raise InputNotFound(index, f"names shards that are missing: {', '.join(missing)}")
        return [os.path.join(ckpt_dir, s) for s in shards]
    single = os.path.join(ckpt_dir, "model.safetensors")
    if not os.path.exists(single):
        raise InputNotFound(ckpt_dir, "no model.safetensors or model.safetensors.index.json")
    check_file(single)
    return [single]


CONFIG_SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "num_labels")


def read_config(ckpt_dir: str) -> tuple[Qwen3Config, dict]:
    """config.json as a Qwen3Config (and the raw dict); a missing, unparsable or non-Qwen3 config, or a
    size that is not a positive integer, is an InputError naming the file."""
    path = os.path.join(ckpt_dir, "config.json")
    if not os.path.exists(path):
        raise InputNotFound(ckpt_dir, "no config.json (not a checkpoint directory)")
    hf = read_json(path)
    if not isinstance(hf, dict):
        raise InputError(path, f"expected a JSON object, got {type(hf).__name__}")
    if hf.get("model_type", "qwen3") != "qwen3":
        raise InputError(path, f"model_type is {hf.get('model_type')!r}, expected 'qwen3'")
    for name in CONFIG_SIZES:
        value = hf.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise InputError(path, f"field {name!r} must be a positive integer, got {value!r}")
    try:
        cfg = Qwen3Config.from_hf(hf)
    except (ValueError, TypeError, AttributeError) as e:
        raise InputError(path, str(e).removeprefix("config.json: ")) from None
    if cfg.torch_dtype not in DTYPES and cfg.torch_dtype.removeprefix("torch.") not in DTYPES:
        raise InputError(path, f"field 'torch_dtype' must be one of {sorted(DTYPES)}, got {cfg.torch_dtype!r}")
    cfg.torch_dtype = cfg.torch_dtype.removeprefix("torch.")
    return cfg, hf


def load_model(name_or_path: str, dtype=None, device=None, head: str | None = None,
               new_head_std: float | None = None, shard=None) -> Qwen3:
    """Load an HF Qwen3 checkpoint (a directory or a hub id) into `Qwen3`.

    dtype: None keeps the checkpoint's stored dtype. head: None picks it from config.json's architectures
    (`score` for Qwen3ForSequenceClassification, else `lm_head`). A checkpoint without the requested head
    (a causal LM asked for as a reward model) is an error unless `new_head_std` is given: then the
    checkpoint's other head is ignored and the requested one drawn from normal(0, new_head_std).
    shard: applied to the model while it is still on the meta device (distributed.shard, FSDP2); each rank
    then allocates only its shards and reads only their rows from the files (distributed.load_sharded).
    """
    ckpt_dir = local_dir(name_or_path, allow_patterns=["*.json", "*.safetensors"])
    cfg, hf = read_config(ckpt_dir)
    if head is None:
        head = "score" if "Qwen3ForSequenceClassification" in hf.get("architectures", []) else "lm_head"
    dtype = DTYPES[cfg.torch_dtype] if dtype is None else (DTYPES[dtype] if isinstance(dtype, str) else dtype)
    device = torch.device(device or "cpu")
    with torch.device("meta"):
        model = Qwen3(cfg, head).to(dtype)  # no memory yet
    if shard is not None:
        shard(model)  # parameters become sharded DTensors, still on meta
    model.to_empty(device=device)  # allocated once (this rank's shards), in the final dtype, filled below
    if shard is None:
        model.tie_weights()  # to_empty gives each module its own tensor: share embed and lm_head again
    elif head == "lm_head" and cfg.tie_word_embeddings and model.lm_head.weight is not model.model.embed_tokens.weight:
        raise RuntimeError("this torch's FSDP untied embed_tokens and lm_head in to_empty")
    files = checkpoint_files(ckpt_dir)
    if new_head_std is not None and not checkpoint_has(files, f"{head}.weight"):
        other = "score.weight" if head == "lm_head" else "lm_head.weight"
        load_weights(model, files, ignore={other}, allow_missing={f"{head}.weight"})
        with torch.no_grad():  # drawn whole on the CPU (the same on every rank), then this rank's rows kept
            drawn = torch.empty(model.head.weight.shape, dtype=dtype).normal_(0.0, new_head_std)
            rows = local_rows(model.head.weight)
            local(model.head.weight).copy_(drawn[rows])
    else:
        load_weights(model, files)
    return model.eval()


def checkpoint_has(files: list[str], key: str) -> bool:
    return key in stored_shapes(files)


def stored_shapes(files: list[str]) -> dict[str, tuple[str, tuple]]:
    """{tensor name: (file, shape)} from the safetensors headers alone (no tensor is read). A file that is
    not safetensors, or is cut short (the header names bytes past its end), is an InputError naming it."""
    from safetensors import SafetensorError, safe_open
    shapes = {}
    for path in files:
        check_file(path)
        try:
            with safe_open(path, framework="pt") as f:
                for key in f.keys():
                    shapes[key] = (path, tuple(f.get_slice(key).get_shape()))
        except SafetensorError as e:
            raise InputError(path, f"not a complete safetensors file (truncated, empty or another format: {e})") from None
    return shapes


def check_keys(model: nn.Module, stored: dict, ignore=frozenset(), allow_missing=frozenset()) -> list[str]:
    """The keys of `stored` (see stored_shapes) to copy into `model`. Any unexpected or mis-shaped key, or
    a parameter the files lack, raises, naming the key, the file and both shapes."""
    params = dict(model.named_parameters())  # tied weights appear once, under their first name
    tied_lm_head = getattr(model, "head_name", None) == "lm_head" and model.cfg.tie_word_embeddings
    to_load = []
    for key, (path, shape) in stored.items():
        if key in ignore or (key == "lm_head.weight" and tied_lm_head):
            continue  # a tied model's file may carry a copy of the embedding as lm_head: HF ignores it
        if key not in params:
            raise InputKeyError(path, f"unexpected key {key!r} (not a parameter of {type(model).__name__})")
        if shape != tuple(params[key].shape):
            raise InputError(path, f"{key} has shape {list(shape)} in the checkpoint but "
                                   f"{list(params[key].shape)} in the model")
        to_load.append(key)
    missing = sorted(set(params) - set(to_load) - set(allow_missing))
    if missing:
        files = sorted({path for path, _ in stored.values()})
        raise InputKeyError(", ".join(files), f"missing keys {missing} (the model's shapes: "
                            f"{[list(params[k].shape) for k in missing]})")
    return to_load


def load_weights(model: nn.Module, files: list[str], ignore=frozenset(), allow_missing=frozenset()):
    """Copy every tensor of `files` into `model`'s parameters (cast to their dtype, on their device).
    Every file's header is checked first (check_keys): nothing is copied from a checkpoint that does not
    fit. Keys in `ignore` are skipped in the files, keys in `allow_missing` may be absent from them."""
    from safetensors import safe_open
    stored = stored_shapes(files)
    params = dict(model.named_parameters())
    by_file = {}
    for key in check_keys(model, stored, ignore, allow_missing):
        by_file.setdefault(stored[key][0], []).append(key)
    for path, keys in by_file.items():
        with safe_open(path, framework="pt") as f:
            for key in keys:
                with torch.no_grad():  # a sharded parameter reads only its own rows
                    rows = local_rows(params[key])
                    local(params[key]).copy_(f.get_slice(key)[rows])


def check_checkpoint(name_or_path: str, head: str = "lm_head") -> str:
    """Everything about a checkpoint that can be checked without reading its tensors: the directory,
    config.json, the safetensors files (complete, parsable) and their keys and shapes against the model
    the config describes. Returns the local directory. The training scripts call it before joining the
    process group, so that every rank stops on the same bad checkpoint before any collective.
    head "score": a causal LM is accepted (the head is drawn new, as RewardModel.from_pretrained does)."""
    ckpt_dir = local_dir(name_or_path, allow_patterns=["*.json", "*.safetensors", "*.jinja"])
    cfg, hf = read_config(ckpt_dir)
    stored = stored_shapes(checkpoint_files(ckpt_dir))
    new_head = head == "score" and "Qwen3ForSequenceClassification" not in hf.get("architectures", [])
    with torch.device("meta"):
        model = Qwen3(cfg, head)
    if new_head and "score.weight" not in stored:
        check_keys(model, stored, ignore={"lm_head.weight"}, allow_missing={"score.weight"})
    else:
        check_keys(model, stored)
    return ckpt_dir


def local(param: torch.Tensor) -> torch.Tensor:
    """This rank's part of a parameter: the local shard of an FSDP2 DTensor, else the tensor itself."""
    return param.to_local() if hasattr(param, "to_local") else param


def local_rows(param: torch.Tensor) -> slice:
    """The rows (dim 0) of the whole parameter that this rank holds. FSDP2 shards dim 0 as torch.chunk
    does: ceil(rows / ranks) rows each, the last ranks fewer or none."""
    if not hasattr(param, "to_local") or not param.dim():
        return slice(None)
    (placement,), mesh = param.placements, param.device_mesh
    if not placement.is_shard(0):
        raise ValueError(f"expected a parameter sharded on dim 0, got {placement}")
    per_rank = -(-param.shape[0] // mesh.size())
    start = min(mesh.get_local_rank() * per_rank, param.shape[0])
    return slice(start, start + param.to_local().shape[0])


def save_model(model: Qwen3, out_dir: str, state_dict: dict | None = None, dtype=None,
               max_shard_bytes: int = 5 * 2**30):
    """Write `model` as an HF checkpoint: config.json (right `architectures`, dtype), then
    model.safetensors, or numbered shards plus model.safetensors.index.json past `max_shard_bytes`.
    Tied weights are written once (no `lm_head.weight`). `state_dict` overrides the model's own tensors
    (e.g. a full state dict gathered from FSDP)."""
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    state = state_dict if state_dict is not None else model.state_dict()
    if model.head_name == "lm_head" and model.cfg.tie_word_embeddings:
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}
    dtype = dtype or next(iter(state.values())).dtype
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in state.items()}
    dtype_name = {v: k for k, v in DTYPES.items()}[dtype]

    shards, current, size = [], {}, 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[key], size = state[key], size + nbytes
    shards.append(current)
    metadata = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], os.path.join(out_dir, "model.safetensors"), metadata=metadata)
    else:
        weight_map = {}
        for i, shard in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, os.path.join(out_dir, name), metadata=metadata)
            weight_map.update({k: name for k in shard})
        total = sum(v.numel() * v.element_size() for v in state.values())
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    cfg = Qwen3Config(**{f.name: getattr(model.cfg, f.name) for f in fields(Qwen3Config)})
    cfg.torch_dtype = dtype_name
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg.to_hf(model.architecture), f, indent=2)


def init_weights(model: Qwen3, std: float = 0.02, seed: int = 0):
    """Random init for tests and demos: normal(0, std) matrices and embeddings, ones for norms."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def param_count(cfg: Qwen3Config, head: str = "lm_head") -> int:
    """Parameters of a Qwen3 of this config (tied weights once), counted on the meta device."""
    with torch.device("meta"):
        return sum(p.numel() for p in Qwen3(cfg, head).parameters())


def tiny_config(vocab_size: int = 151936, **overrides) -> Qwen3Config:
    """A few-MB Qwen3 for tests and the CPU demo, with the real vocabulary so the real tokenizer fits."""
    cfg = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, head_dim=32, tie_word_embeddings=True,
               pad_token_id=151643 if vocab_size > 151643 else None)  # Qwen3's <|endoftext|>
    cfg.update(overrides)
    return Qwen3Config(**cfg)
