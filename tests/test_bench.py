"""bench.py gpu in its reduced CPU form: every row runs end to end, so the GPU script cannot rot, and the
checks that are exact on a CPU in float32 (parity with transformers, flex packed = alone) hold."""
import re

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
