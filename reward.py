"""The reward model: a Qwen3 backbone and a bias-free linear `score` head read at the last real token.

    rm = RewardModel.from_pretrained("LARK-Lab/CodeScaler-8B", dtype="bfloat16", device="cuda")
    rm.score(problems, codes)              -> list[float]   raw scores s
    shaped_reward(s, code)                 -> float         0 for empty (invalid) code, else softplus(s)

Input (METHOD.md section 2): the two-turn chat [user: problem, assistant: extracted code] rendered in the
checkpoint's own chat format (`Tokenizer.render_reward_input`: Qwen3's by hand, any other template through
jinja2 as transformers renders it) with no generation prompt, right-truncated to `max_len` tokens (4096, or
the `reward_max_len` train_rm.py saves in config.json), scored at the last token that survives truncation.
Scores are pooled from real lengths, never from the pad id (Qwen3's pad token, <|endoftext|>, is also a real
token).

Batched scoring packs sequences into token-budget micro-batches (longest first, first fit), one packed row
each with block-diagonal causal attention, so no compute goes to padding; packed scores equal one-by-one
scores to float32 round-off.

Training objective (Bradley-Terry, as the paper): loss = -log sigmoid(r_chosen - r_rejected - margin),
plus an optional reward-centering term  coef * mean((r_chosen + r_rejected)^2)  that keeps scores near 0
(Eisenstein et al. 2023); both extras default to 0, the paper's setting.

Starting from a causal LM (e.g. Qwen/Qwen3-0.6B) the score head is new: it is drawn from
normal(0, 1/sqrt(hidden + 1)), the value-head initialisation of Ziegler et al. (2019), so initial scores
have about unit scale. A Qwen3ForSequenceClassification checkpoint (Skywork-Reward-V2-Qwen3-*,
LARK-Lab/CodeScaler-*) brings its own head.
"""
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import distributed
from hub import local_dir
from model import Qwen3, load_model, read_config
from tokenizer import Tokenizer, load_tokenizer

# -----------------------------------------------------------------------------
# Reward shaping and the pairwise loss


def shaped_reward(score: float, code: str, kind: str = "softplus") -> float:
    """The RL reward of a response whose extracted code is `code` and whose raw score is `score`.

    softplus (the method): 0 when the code is empty (no single parsable block), else softplus(score) > 0,
      so every valid program outranks every invalid one and the order among valid ones is kept.
    sigmoid: the same with sigmoid(score) in (0, 1).
    raw: the score itself for valid code, 0 for invalid: NOT validity-preserving (a valid program with a
      negative score ranks below an invalid one).
    none: the score itself for every response, the caller having scored invalid code as RM(q, ""): the
      authors' no-shaping ablation (and their early code's behaviour), where validity is left to the RM.
    """
    if kind not in SHAPINGS:
        raise ValueError(f"unknown shaping {kind!r}; choose from {sorted(SHAPINGS)}")
    return 0.0 if code == "" and kind != "none" else SHAPINGS[kind](score)


SHAPINGS = {
    "softplus": lambda s: F.softplus(torch.tensor(float(s))).item(),
    "sigmoid": lambda s: 1.0 / (1.0 + math.exp(-s)) if s >= 0 else math.exp(s) / (1.0 + math.exp(s)),
    "raw": float,
    "none": float,
}


def pairwise_loss(r_chosen, r_rejected, margin: float = 0.0, center_coef: float = 0.0, reduction="mean"):
    """r_chosen, r_rejected [P] -> (loss, metrics). Bradley-Terry: -logsigmoid(r_c - r_r - margin), plus
    center_coef * (r_c + r_r)^2 per pair. reduction "sum" lets the caller divide by a global pair count."""
    diff = r_chosen - r_rejected
    per_pair = -F.logsigmoid(diff - margin) + center_coef * (r_chosen + r_rejected) ** 2
    loss = per_pair.mean() if reduction == "mean" else per_pair.sum()
    return loss, pair_metrics(r_chosen, r_rejected)


def pair_metrics(r_chosen, r_rejected) -> dict:
    """Sums over the pairs (so they add up across micro-batches and ranks); divide by `pairs`."""
    r_chosen, r_rejected = r_chosen.detach().float(), r_rejected.detach().float()
    both = torch.cat([r_chosen, r_rejected])
    return {
        "pairs": float(len(r_chosen)),
        "correct": float((r_chosen > r_rejected).sum()),
        "margin": float((r_chosen - r_rejected).sum()),
        "chosen": float(r_chosen.sum()),
        "rejected": float(r_rejected.sum()),
        "reward_sq": float((both**2).sum()),  # with chosen + rejected gives the reward std
    }


def summarize(sums: dict) -> dict:
    """Summed pair metrics -> accuracy, mean margin, chosen/rejected means, reward std."""
    n = max(sums["pairs"], 1.0)
    mean = (sums["chosen"] + sums["rejected"]) / (2 * n)
    return {
        "accuracy": sums["correct"] / n,
        "margin": sums["margin"] / n,
        "chosen_reward": sums["chosen"] / n,
        "rejected_reward": sums["rejected"] / n,
        "reward_std": math.sqrt(max(sums["reward_sq"] / (2 * n) - mean**2, 0.0)),
    }


# -----------------------------------------------------------------------------
# Token-budget micro-batches and packed scoring


def token_budget_batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped so each group's lengths sum to at most `max_tokens`: longest first, first fit
    (a sequence longer than the budget gets a group of its own). Deterministic for equal inputs."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches, room = [], []
    for i in order:
        for b, left in enumerate(room):
            if lengths[i] <= left:
                batches[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            batches.append([i])
            room.append(max_tokens - lengths[i])
    return batches


def packed_last_token_scores(model: Qwen3, seqs: list[list[int]]):
    """One packed forward over `seqs` (lists of token ids); the head read at each sequence's last token.
    Returns [len(seqs)] float32 (gradients flow, so training uses it too)."""
    device = model.model.embed_tokens.weight.device
    lens = [len(s) for s in seqs]
    ids = torch.tensor([t for s in seqs for t in s], device=device)[None]  # [1, N]
    last = torch.tensor(lens, device=device).cumsum(0) - 1  # [S] index of each sequence's last token
    return model(ids, seq_lens=lens, head_at=last)[:, 0].float()  # [S]


DEFAULT_MAX_LEN = 4096  # the paper's reward-model input length
MAX_LEN_KEY = "reward_max_len"  # config.json key: the max_len a reward model was trained with (train_rm.py)


def saved_max_len(hf_config: dict) -> int:
    """The input length a checkpoint's config.json records (train_rm.py's export), else the default."""
    value = hf_config.get(MAX_LEN_KEY)
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_LEN


@dataclass
class Encoded:
    ids: list[list[int]]
    truncated: int  # how many inputs were longer than max_len and cut on the right


class RewardModel:
    """A Qwen3 with a `score` head, its tokenizer and the input rules. Not an nn.Module: training
    wraps `rm.model` (the Qwen3) with FSDP directly."""

    def __init__(self, model: Qwen3, tokenizer: Tokenizer, max_len: int = DEFAULT_MAX_LEN, sharded: bool = False):
        """sharded: `model` is FSDP-sharded over the process group, so every rank must run the same number
        of forwards (`score_tokens` pads a rank's batches with empty ones, distributed.lockstep)."""
        if model.head_name != "score" or model.cfg.num_labels != 1:
            raise ValueError("a reward model needs a score head with one label")
        self.model, self.tokenizer, self.max_len, self.sharded = model, tokenizer, max_len, sharded

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype=None, device=None, tokenizer: str | None = None,
                        max_len: int | None = None, shard=None) -> "RewardModel":
        """A Qwen3ForSequenceClassification checkpoint, or a causal LM given a new head (see the module
        docstring). The tokenizer is `tokenizer` if given, else the checkpoint's own, else the bundled one.
        max_len: if None, the `reward_max_len` train_rm.py saved in config.json, else 4096.
        shard: a function that shards the model on the meta device (model.load_model's `shard`; e.g.
        distributed.shard): each rank then reads only its shards, and scoring keeps the ranks in step."""
        ckpt = local_dir(name_or_path, allow_patterns=["*.json", "*.safetensors", "*.jinja"])
        cfg, hf = read_config(ckpt)
        is_reward_model = "Qwen3ForSequenceClassification" in hf.get("architectures", [])
        new_head_std = None if is_reward_model else 1.0 / math.sqrt(cfg.hidden_size + 1)
        model = load_model(ckpt, dtype=dtype, device=device, head="score", new_head_std=new_head_std, shard=shard)
        if tokenizer is None and os.path.exists(os.path.join(ckpt, "tokenizer.json")):
            tokenizer = ckpt
        if max_len is None:
            max_len = saved_max_len(hf)
        return cls(model, load_tokenizer(tokenizer), max_len, sharded=shard is not None)

    def encode(self, problems: list[str], codes: list[str]) -> Encoded:
        """[user: problem, assistant: code] -> token ids, right-truncated to max_len."""
        if len(problems) != len(codes):
            raise ValueError(f"{len(problems)} problems but {len(codes)} codes")
        full = self.tokenizer.encode_batch([self.tokenizer.render_reward_input(p, c) for p, c in zip(problems, codes)])
        return Encoded([ids[: self.max_len] for ids in full], sum(len(ids) > self.max_len for ids in full))

    @torch.no_grad()
    def score_tokens(self, seqs: list[list[int]], max_tokens: int = 16384) -> list[float]:
        """Raw scores of already-tokenized inputs, in their order, in packed token-budget micro-batches."""
        if any(len(s) == 0 for s in seqs):
            raise ValueError("cannot score an empty token sequence")
        self.model.eval()
        scores = [0.0] * len(seqs)
        batches = token_budget_batches([len(s) for s in seqs], max(max_tokens, self.max_len))
        if self.sharded:  # every rank the same number of forwards; a spare one scores a 1-token dummy
            device = self.model.model.embed_tokens.weight.device
            batches = [batch for _, _, batch in distributed.lockstep(batches, device)]
        for batch in batches:
            out = packed_last_token_scores(self.model, [seqs[i] for i in batch] if batch is not None else [[0]])
            for i, s in zip(batch or [], out.tolist()):
                scores[i] = s
        return scores

    def score(self, problems: list[str], codes: list[str], max_tokens: int = 16384) -> list[float]:
        return self.score_tokens(self.encode(problems, codes).ids, max_tokens)

