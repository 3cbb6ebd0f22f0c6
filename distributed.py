"""What train_rm.py, train_rl.py and sft.py share: process-group set-up, FSDP2 wrapping, collectives that keep
ranks in step (`lockstep`: the same number of micro-batches on every rank), resumable DCP checkpoints, and the
full-state-dict export.

- Backend from the device: NCCL on CUDA, gloo on CPU. Run without torchrun, a script is a 1-rank group
  (same code path, so a 1-rank and a K-rank run can be compared number for number).
- FSDP2 (`fully_shard`) on each transformer block, then on the root module, which holds the embedding,
  the final norm and the head (a tied embedding and lm_head stay in one unit). On CUDA, bf16 parameters in
  compute with float32 gradient reduction; on CPU everything stays float32.
- Checkpoints: `save_checkpoint` writes model and optimizer with torch.distributed.checkpoint into
  `step_XXXXXXXX.tmp`, each rank's extra state (scheduler, RNG, data position) beside it, and only then
  renames the directory to `step_XXXXXXXX`: a crash mid-write leaves a `.tmp` that is never loaded.
"""
import json
import os
import random
import re
import shutil
import sys
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
                                                     set_state_dict)
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard


def setup(timeout: timedelta | float = timedelta(minutes=30)) -> tuple[int, int, torch.device]:
    """Join (or create) the process group. Returns rank, world size and this rank's device.

    timeout (a timedelta or seconds): how long a collective waits for the slowest rank before the job is
    killed. It must exceed the longest phase one rank can spend alone, e.g. a 16K-token rollout that
    other ranks finished early."""
    if "RANK" not in os.environ:  # plain `python script.py`: a group of one
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        if not isinstance(timeout, timedelta):
            timeout = timedelta(seconds=timeout)
        dist.init_process_group(backend, timeout=timeout)
    return dist.get_rank(), dist.get_world_size(), device


def teardown():
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(model: torch.nn.Module, device: torch.device):
    """FSDP2: one unit per block, then the root (embedding, final norm, head)."""
    mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
          if device.type == "cuda" else MixedPrecisionPolicy())
    for block in model.model.layers:
        fully_shard(block, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    return model


def load_sharded(name_or_path: str, device: torch.device, dtype, head: str = "lm_head", new_head_std=None):
    """An HF checkpoint straight into FSDP2 shards: built on the meta device, sharded there, then each rank
    allocates and reads (safetensors slices) only its own rows of every parameter. No rank ever holds the
    whole model; start-up memory is this rank's 1/K of the weights."""
    from model import load_model
    return load_model(name_or_path, dtype=dtype, device=device, head=head, new_head_std=new_head_std,
                      shard=lambda model: shard(model, device))


def empty_replica(model, dtype, device: torch.device):
    """A plain (unsharded) model of `model`'s shape in `dtype`, its memory allocated but not filled:
    `refresh_replica` writes the weights (so start-up reads the checkpoint once, for the sharded model)."""
    from model import Qwen3
    with torch.device("meta"):
        replica = Qwen3(model.cfg, model.head_name).to(dtype)
    replica.to_empty(device=device)
    replica.tie_weights()
    return replica.eval().requires_grad_(False)


@torch.no_grad()
def refresh_replica(model, replica):
    """Copy the FSDP model's weights into the replica one parameter at a time: each rank casts its shard
    to the replica's dtype (bf16 on CUDA), all-gathers that one parameter, copies it in and frees it. Peak
    beyond the replica: one full parameter in the replica's dtype (the embedding, 1.2 GB at 8B in bf16),
    never a full float32 state dict. A collective: every rank calls it."""
    targets = dict(replica.named_parameters())  # tied weights once, under the same names as the model's
    for name, param in model.named_parameters():
        dst = targets[name]
        full = param.to(dst.dtype).full_tensor() if hasattr(param, "full_tensor") else param
        dst.copy_(full)
        del full


def set_gradient_sync(model, micro_batch: int, n_micro: int, every_micro_batch: bool):
    """Before each micro-batch's backward: whether FSDP2 reduce-scatters its gradients now.
    every_micro_batch: after each backward, into the float32 gradient shards; no unsharded gradient outlives
      a unit's backward (peak: one unit's), for one more reduce-scatter per micro-batch.
    otherwise: once, after the last micro-batch; the full unsharded gradients (float32: 30 GB at 8B) are kept
      in between. Cheaper in communication, for models whose gradients fit (the CPU demos)."""
    model.set_requires_gradient_sync(every_micro_batch or micro_batch == n_micro - 1)


def all_reduce_sum(values: dict, device) -> dict:
    """Sum a dict of floats over ranks (one collective)."""
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def all_reduce_max(value: int, device) -> int:
    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def lockstep(batches: list, device):
    """Yield (index, count, batch or None) the same number of times on every rank (the most micro-batches
    any rank has), None for a rank's spare ones: a rank with fewer micro-batches runs empty ones, so that the
    FSDP collectives inside each forward/backward match across ranks. One collective to agree on the count."""
    n = all_reduce_max(len(batches), device)
    for i in range(n):
        yield i, n, (batches[i] if i < len(batches) else None)


def all_gather_floats(value: float, device) -> list[float]:
    """One float from every rank, in rank order (per-rank timings, maxima)."""
    out = [torch.zeros(1, dtype=torch.float64, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(out, torch.tensor([value], dtype=torch.float64, device=device))
    return [t.item() for t in out]


def full_state_dict(model, all_ranks: bool = False) -> dict:
    """The whole model's state dict: on rank 0's CPU (empty elsewhere), or with all_ranks on every rank's
    device (to refresh a replica). A collective: every rank calls it."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=not all_ranks))


def export_hf(model, tokenizer, out_dir: str, dtype=None):
    """Gather the FSDP model and write it on rank 0 as an HF checkpoint with the tokenizer files beside it
    (bf16 on CUDA, float32 on CPU unless `dtype` says otherwise). A collective: every rank calls it."""
    from model import save_model
    state = full_state_dict(model)
    if dist.get_rank() == 0:
        model.cfg.pad_token_id = tokenizer.pad_id
        dtype = dtype or (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
        save_model(model, out_dir, state_dict=state, dtype=dtype)
        tokenizer.save(out_dir)
    return out_dir


# -----------------------------------------------------------------------------
# Resumable checkpoints

STEP_DIR = re.compile(r"^step_(\d{8})$")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(ckpt_root: str, step: int, model, optimizer, extra: dict, keep: int = 2):
    """Model + optimizer through DCP (each rank writes its shards), `extra` per rank with torch.save; the
    directory becomes visible under its final name only once every rank has finished writing."""
    rank = dist.get_rank()
    final = os.path.join(ckpt_root, f"step_{step:08d}")
    tmp = final + ".tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    dist.barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=tmp)
    torch.save({**extra, "rng": rng_state()}, os.path.join(tmp, f"extra_rank{rank}.pt"))
    dist.barrier()
    if rank == 0:
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)  # atomic: the checkpoint exists complete or not at all
        for old in sorted(d for d in os.listdir(ckpt_root) if STEP_DIR.match(d))[:-keep]:
            shutil.rmtree(os.path.join(ckpt_root, old), ignore_errors=True)
    dist.barrier()
    return final


def latest_checkpoint(ckpt_root: str) -> str | None:
    """The newest complete checkpoint directory (`.tmp` leftovers of a crash are ignored)."""
    if not os.path.isdir(ckpt_root):
        return None
    done = sorted(d for d in os.listdir(ckpt_root) if STEP_DIR.match(d))
    return os.path.join(ckpt_root, done[-1]) if done else None


def load_checkpoint(path: str, model, optimizer) -> dict:
    """Restore model, optimizer and RNG in place; returns this rank's `extra` dict."""
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=path)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    extra = torch.load(os.path.join(path, f"extra_rank{dist.get_rank()}.pt"), weights_only=False)
    set_rng_state(extra.pop("rng"))
    return extra


def restart_metrics(path: str, resume_step: int) -> None:
    """Rank 0, at start: keep the metrics.jsonl records of steps <= resume_step (0: none) and drop the rest,
    including a torn last line left by a crash, so a resumed run appends where the checkpoint left off."""
    kept = []
    if resume_step > 0 and os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    if json.loads(line)["step"] <= resume_step:
                        kept.append(line)
                except (json.JSONDecodeError, KeyError, TypeError):
                    print(f"{path}: dropped a torn or malformed line left by an interrupted run", file=sys.stderr)
    with open(path, "w") as f:
        f.writelines(kept)
