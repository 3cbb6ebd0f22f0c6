"""The plumbing train_rm.py, train_rl.py and sft.py share, as plain functions: the demo's tiny checkpoint,
device-dependent dtypes, the warm-up + cosine schedule, resume, the metrics log and checkpoint / --stop-at.
None of it is the method; it is here so that each trainer's `main` shows its algorithm.

Paths: every default path (runs/, data/) is relative to this directory (HERE), not to the working
directory, so a script finds the same files and writes the same outputs wherever it is launched from.
"""
import json
import math
import os

import torch

import distributed
from demo import write_tiny_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))


def tiny_demo_checkpoint(path: str, rank: int, head: str = "lm_head", seed: int = 0, **shape) -> str:
    """Rank 0 writes the demo's tiny random Qwen3 to `path` unless a checkpoint is already there (a resumed
    demo starts from the same one). Call `torch.distributed.barrier()` before any rank reads it."""
    if rank == 0 and not os.path.exists(os.path.join(path, "config.json")):
        write_tiny_checkpoint(path, head=head, seed=seed, **shape)
    return path


def tokenizer_dir(checkpoint: str) -> str | None:
    """The checkpoint directory if it holds tokenizer files, else None (load_tokenizer's bundled Qwen3 one)."""
    return checkpoint if os.path.exists(os.path.join(checkpoint, "tokenizer.json")) else None


def compute_dtype(device: torch.device, cpu_dtype=torch.float32):
    """bf16 on CUDA (rollout replicas, frozen reward models), `cpu_dtype` on a CPU."""
    return torch.bfloat16 if device.type == "cuda" else cpu_dtype


def warmup_cosine(warmup_steps: int, total_steps: int):
    """lr factor of optimizer step `step` (from 0): linear warm-up over warmup_steps, then cosine decay to 0."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return factor


class RunDir:
    """--out's layout: checkpoints/step_XXXXXXXX (resumable) and metrics.jsonl (one JSON line per step)."""

    def __init__(self, out: str, rank: int, log=print):
        os.makedirs(out, exist_ok=True)
        self.out, self.rank, self.log = out, rank, log
        self.checkpoints = os.path.join(out, "checkpoints")
        self.metrics = os.path.join(out, "metrics.jsonl")

    def resume(self, model, optimizer, scheduler, resume: bool) -> dict | None:
        """With `resume`, restore model, optimizer, scheduler and RNG from the newest complete checkpoint and
        return its extra state ({"step", ...}); else None. Either way the metrics log keeps only the steps
        before the resume point (a torn last line of a crash included: dropped)."""
        latest = distributed.latest_checkpoint(self.checkpoints) if resume else None
        extra = None
        if latest:
            extra = distributed.load_checkpoint(latest, model, optimizer)
            scheduler.load_state_dict(extra["scheduler"])
            self.log(f"resumed from {latest} at step {extra['step']}")
        if self.rank == 0:
            distributed.restart_metrics(self.metrics, extra["step"] if extra else 0)
        return extra

    def append_metrics(self, record: dict) -> None:
        """One JSON line in metrics.jsonl, written by rank 0."""
        if self.rank == 0:
            with open(self.metrics, "a") as f:
                f.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict]:
        with open(self.metrics) as f:
            return [json.loads(line) for line in f]

    def checkpoint(self, done: int, model, optimizer, scheduler, save_every: int, stop_at: int | None, keep: int,
                   **extra) -> bool:
        """After step `done` (from 1): a resumable checkpoint every `save_every` steps and at --stop-at.
        Returns True when the run should stop here (--stop-at), the process group already torn down."""
        if done % save_every == 0 or done == stop_at:
            path = distributed.save_checkpoint(self.checkpoints, done, model, optimizer,
                                               {"step": done, "scheduler": scheduler.state_dict(), **extra}, keep=keep)
            self.log(f"checkpoint: {path}")
        if done == stop_at:
            self.log(f"stopping after step {done} as asked (--stop-at); continue with --resume")
            distributed.teardown()
            return True
        return False


def clip_and_step(model, optimizer, grad_clip: float) -> float:
    """Clip the gradient norm (a global reduction over FSDP shards) and take an optimizer step -> the norm."""
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm.item()
