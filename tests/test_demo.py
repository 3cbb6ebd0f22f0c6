"""demo.py: the README's `python demo.py` runs, and the tiny checkpoint it writes loads back bit for bit."""
import os
import subprocess
import sys

import pytest
import torch

import model as M
from demo import write_tiny_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_runs_as_a_script():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "demo.py")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sample 3 (" in out.stdout and "tokens in" in out.stdout


@pytest.mark.parametrize("head, seed", [("lm_head", 0), ("score", 1)])
def test_tiny_checkpoint_loads_back_as_the_seeded_init(tmp_path, head, seed):
    path = write_tiny_checkpoint(str(tmp_path), head=head, seed=seed, hidden_size=32, head_dim=16)
    loaded = M.load_model(path, head=head, dtype=torch.float32)
    expected = M.init_weights(M.Qwen3(M.tiny_config(hidden_size=32, head_dim=16), head=head), seed=seed)
    assert loaded.cfg.hidden_size == 32 and loaded.cfg.vocab_size == 151936
    got, want = loaded.state_dict(), expected.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    other = M.init_weights(M.Qwen3(M.tiny_config(hidden_size=32, head_dim=16), head=head), seed=seed + 1)
    assert not torch.equal(got["model.embed_tokens.weight"], other.state_dict()["model.embed_tokens.weight"])
