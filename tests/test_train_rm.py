"""train_rm.py end to end on tiny models: 2 FSDP ranks = 1 rank, resume = uninterrupted, the export loads
in transformers, training learns, bad data stops before any step. Each run is a real subprocess."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import model as M
from data import load_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "data", "humaneval_pairs_train.jsonl")


def run(args, out, nproc=1, check=True):
    # the cores shared among the ranks: a one-process run takes them all
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc)), "PYTHONPATH": ROOT}
    if nproc == 1:
        cmd = [sys.executable, os.path.join(ROOT, "train_rm.py")]
        env.pop("RANK", None)
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               os.path.join(ROOT, "train_rm.py")]
    proc = subprocess.run(cmd + ["--out", str(out)] + args, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def losses(out):
    lines = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    return {r["step"]: r["loss"] for r in lines if "loss" in r}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny random reward model and 24 train / 8 held-out bundled pairs, shared by the tests."""
    root = tmp_path_factory.mktemp("train_rm")
    cfg = M.tiny_config(hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    M.save_model(M.init_weights(M.Qwen3(cfg, head="score"), seed=3), str(root / "init"))
    lines = open(TRAIN).read().splitlines()
    (root / "train.jsonl").write_text("\n".join(lines[:24]) + "\n")
    (root / "heldout.jsonl").write_text("\n".join(lines[24:32]) + "\n")
    return root


COMMON_MAX_LEN = 2048  # not the default (4096), so that the export must record it


def common(workdir, *extra):
    return ["--model", str(workdir / "init"), "--data", str(workdir / "train.jsonl"),
            "--eval-data", str(workdir / "heldout.jsonl"), "--global-batch", "6", "--max-steps", "4",
            "--max-len", str(COMMON_MAX_LEN),
            "--epochs", "2", "--lr", "3e-3", "--micro-batch-tokens", "3000", "--eval-every", "2",
            "--save-every", "100", "--dtype", "float64", *extra]


def test_two_ranks_resumed_equal_one_rank_uninterrupted(workdir):
    # float64 master weights: Adam divides by sqrt(v), which turns the float32 round-off of gradients that
    # nearly cancel (chosen and rejected share most tokens) into visible weight differences; in float64
    # the runs must agree to 1e-5 whatever the batching. (float32 losses agree too: see the demo runs.)
    # One run on 1 rank, uninterrupted, keeping activations and reducing gradients once per step; the other
    # on 2 ranks, stopped after step 2 and resumed, recomputing blocks in backward (activation
    # checkpointing) and reduce-scattering gradients after every micro-batch: the same numbers.
    one, two = workdir / "one", workdir / "two"
    run(common(workdir, "--activation-checkpointing", "off", "--grad-sync", "step"), one)
    memory_saving = ("--activation-checkpointing", "on", "--grad-sync", "micro-batch")
    run(common(workdir, *memory_saving, "--stop-at", "2"), two, nproc=2)
    assert sorted(losses(two)) == [1, 2] and os.path.isdir(two / "checkpoints" / "step_00000002")
    run(common(workdir, *memory_saving, "--resume"), two, nproc=2)

    reference = losses(one)
    assert sorted(reference) == [1, 2, 3, 4] and reference[4] < reference[1]  # it trains
    other = losses(two)
    assert sorted(other) == [1, 2, 3, 4]
    for step in reference:
        assert other[step] == pytest.approx(reference[step], abs=1e-5), step
    w1 = load_file(str(one / "final" / "model.safetensors"))
    w = load_file(str(two / "final" / "model.safetensors"))
    assert w.keys() == w1.keys()
    for key in w1:
        torch.testing.assert_close(w[key], w1[key], atol=1e-5, rtol=0)


def test_export_loads_in_transformers_with_the_same_scores(workdir):
    transformers = pytest.importorskip("transformers")
    final = workdir / "one" / "final"
    if not final.exists():
        run(common(workdir), workdir / "one")
    cfg = json.load(open(final / "config.json"))
    assert cfg["architectures"] == ["Qwen3ForSequenceClassification"] and cfg["num_labels"] == 1
    assert cfg["pad_token_id"] == 151643 and (final / "tokenizer.json").exists()
    from reward import RewardModel
    rm = RewardModel.from_pretrained(str(final))
    assert cfg["reward_max_len"] == rm.max_len == COMMON_MAX_LEN  # the length it was trained with, read back
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(str(final), dtype=torch.float32).eval()
    pairs = load_pairs(str(workdir / "heldout.jsonl"))[:3]
    enc = rm.encode([p.question for p in pairs], [p.chosen for p in pairs])
    with torch.no_grad():
        ref = [hf(torch.tensor([ids])).logits[0, 0].item() for ids in enc.ids]
    assert rm.score([p.question for p in pairs], [p.chosen for p in pairs]) == pytest.approx(ref, abs=1e-4)


def test_training_raises_training_accuracy(workdir):
    out = workdir / "learn"
    run(["--model", str(workdir / "init"), "--data", str(workdir / "train.jsonl"), "--eval-data", "",
         "--global-batch", "8", "--epochs", "8", "--lr", "3e-3", "--warmup", "0.1"], out)
    from reward import RewardModel
    pairs = load_pairs(str(workdir / "train.jsonl"))

    def accuracy_and_margin(path):
        rm = RewardModel.from_pretrained(str(path))
        chosen = rm.score([p.question for p in pairs], [p.chosen for p in pairs])
        rejected = rm.score([p.question for p in pairs], [p.rejected for p in pairs])
        margins = [c - r for c, r in zip(chosen, rejected)]
        return sum(m > 0 for m in margins) / len(pairs), sum(margins) / len(pairs)

    (acc0, margin0), (acc1, margin1) = accuracy_and_margin(workdir / "init"), accuracy_and_margin(out / "final")
    # the random start already orders some pairs by luck (0.71 here); training must go well past it
    assert acc1 >= 0.85 and acc1 >= acc0 + 0.1, (acc0, acc1)
    assert abs(margin0) < 0.1 and margin1 > 1.0, (margin0, margin1)


def test_bad_data_stops_before_any_step(workdir):
    bad = workdir / "bad.jsonl"
    lines = open(workdir / "train.jsonl").read().splitlines()
    record = json.loads(lines[2])
    del record["code_pos"]
    bad.write_text("\n".join(lines[:2] + [json.dumps(record)] + lines[3:]) + "\n")
    out = workdir / "bad_run"
    proc = run(["--model", str(workdir / "init"), "--data", str(bad), "--eval-data", ""], out, check=False)
    assert proc.returncode != 0
    assert "bad.jsonl:3: missing field 'code_pos'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / "metrics.jsonl").exists() or losses(out) == {}
