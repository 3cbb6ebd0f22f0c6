"""Execution-verified preference pairs (paper step 2): run every candidate program against its problem's tests
in the sandbox, then pair, per problem, a program that passes every test (chosen) with one that fails at
least one (rejected).

Input is a problems file and a candidates file (JSON Lines, see `load_problems` and `load_candidates`), or
policy rollouts (`--samples`, an `infer.py generate` file: the paper's curation, see `sample_candidates`), or,
by default, the bundled data set: the 164 HumanEval problems with candidates made by mutating each reference
solution (`mutants`). The paper's candidates are the policy's RL rollouts; mutants are the stand-in that needs
no model: one AST edit each (a swapped comparison or arithmetic operator, an off-by-one range bound or index,
swapped if/else branches, a negated condition, swapped call arguments or operands, a dropped statement, a wrong
return value, and/or swapped, a perturbed constant, min/max-style name swaps, break/continue; only inside the
entry-point function, never its docstring), a capped number per problem drawn with a
seeded RNG, round-robin over operators so that every kind of bug is represented. A mutant that still passes
every test is a correct program and becomes a chosen candidate.

Every bundled candidate, the reference included, is rendered by `ast.unparse` (comments dropped, formatting
normalised, docstring kept), so formatting says nothing about the label.

Reproducibility: seeds are fixed, files are written with sorted keys and hold no timings, tests that draw
random inputs are seeded (data.split_check), the total time limit never binds (a program's pass rate does not
depend on how many tests fit in a budget), and the 2 s per-test limit is on the CPU time of the program's
sandbox, not wall time, with a margin (see MARGIN): a test must end under 1 s of CPU or run past 4 s (a
timeout), and a candidate with a test in between is left out, so no label depends on timing noise. With a
wall clock, verdicts of slow negatives changed with the machine's load. In the bundled set every correct
program's slowest test takes under 0.1 s of CPU.

Outputs, in --out (deterministic: the same command gives byte-identical files):
    {name}_pairs_train.jsonl, {name}_pairs_heldout.jsonl   release schema (`question_content`, `code_pos`,
        `code_neg`) plus `problem_id`, `neg_pass_rate`, `neg_verdict`; read them with `data.load_pairs`
    {name}_candidates.jsonl   every deduplicated candidate with `problem_id`, `split`, `code`, `verdict`,
        `pass_rate`, `is_reference`: the pool that best-of-N evaluation reranks

Regenerate the committed HumanEval files (mostly mutants that loop to the 4 s CPU cut-off; 47 minutes with
--workers 6 on 2 cores at load average 19, several on a quiet machine; the files do not depend on either):
    python make_pairs.py --out data/
Your own problems and candidates:
    python make_pairs.py --problems problems.jsonl --candidates candidates.jsonl --name mine --out data/
Pairs from policy rollouts, the paper's curation (`infer.py generate` output; each response's code by strict
extraction, responses without one left out; then the same dedup, execution, caps and balanced pairing):
    python make_pairs.py --samples samples.jsonl --problems lcb.jsonl --out data/   # -> rollouts_pairs_*.jsonl
"""
import argparse
import ast
import copy
import io
import json
import os
import random
import tokenize
from collections import Counter, defaultdict
from dataclasses import dataclass

import data
from inputs import InputError, atomic_write, run_main

# ----------------------------------------------------------------------------------------------------------
# Mutation operators. Each takes a node, the entry-point function and the node's parent, and returns the
# replacements for that node, one mutant each: a new node, or [] to delete a statement. Operators never
# modify their input.

COMPARE_SWAPS = {ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt, ast.GtE], ast.Gt: [ast.GtE, ast.Lt],
                 ast.GtE: [ast.Gt, ast.LtE], ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq], ast.In: [ast.NotIn],
                 ast.NotIn: [ast.In], ast.Is: [ast.IsNot], ast.IsNot: [ast.Is]}
ARITHMETIC_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
                    ast.Div: ast.FloorDiv, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.BitAnd: ast.BitOr,
                    ast.BitOr: ast.BitAnd, ast.BitXor: ast.BitOr, ast.LShift: ast.RShift, ast.RShift: ast.LShift}
NAME_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any", "lower": "upper", "upper": "lower",
              "islower": "isupper", "isupper": "islower", "startswith": "endswith", "endswith": "startswith",
              "find": "rfind", "rfind": "find"}


def shifted(expr: ast.expr, delta: int) -> ast.expr:
    """`expr + delta`, written the way a person would: 3 -> 4, n - 1 -> n, n -> n + 1."""
    if isinstance(expr, ast.Constant) and type(expr.value) is int:
        return ast.Constant(expr.value + delta)
    if (isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.USub) and isinstance(expr.operand, ast.Constant)
            and type(expr.operand.value) is int):
        return ast.Constant(-expr.operand.value + delta)
    base, k = expr, delta
    if (isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Add, ast.Sub)) and isinstance(expr.right, ast.Constant)
            and type(expr.right.value) is int):
        base, k = expr.left, delta + (expr.right.value if isinstance(expr.op, ast.Add) else -expr.right.value)
    if k == 0:
        return copy.deepcopy(base)
    return ast.BinOp(copy.deepcopy(base), ast.Add() if k > 0 else ast.Sub(), ast.Constant(abs(k)))


def _with(node, **fields):
    new = copy.deepcopy(node)
    for name, value in fields.items():
        setattr(new, name, value)
    return new


def op_compare(node, fn, parent):
    if not isinstance(node, ast.Compare):
        return []
    return [_with(node, ops=node.ops[:i] + [alt()] + node.ops[i + 1:])
            for i, op in enumerate(node.ops) for alt in COMPARE_SWAPS[type(op)]]


def op_arithmetic(node, fn, parent):
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in ARITHMETIC_SWAPS:
        return [_with(node, op=ARITHMETIC_SWAPS[type(node.op)]())]
    return []


def op_boolean(node, fn, parent):
    if isinstance(node, ast.BoolOp):
        return [_with(node, op=ast.Or() if isinstance(node.op, ast.And) else ast.And())]
    return []


def op_range_bound(node, fn, parent):
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"):
        return []
    return [_with(node, args=node.args[:i] + [shifted(a, d)] + node.args[i + 1:])
            for i, a in enumerate(node.args) if not isinstance(a, ast.Starred) for d in (1, -1)]


def op_index(node, fn, parent):
    if not isinstance(node, ast.Subscript):
        return []
    s = node.slice
    if isinstance(s, ast.Slice):
        return [_with(node, slice=_with(s, **{bound: shifted(getattr(s, bound), d)}))
                for bound in ("lower", "upper") if getattr(s, bound) is not None for d in (1, -1)]
    if isinstance(s, (ast.Tuple, ast.Starred)) or (isinstance(s, ast.Constant) and type(s.value) is not int):
        return []  # dict keys and multi-indices: an off-by-one there is not a plausible bug
    return [_with(node, slice=shifted(s, d)) for d in (1, -1)]


def op_swap_branches(node, fn, parent):
    if isinstance(node, ast.If) and node.orelse:
        return [_with(node, body=node.orelse, orelse=node.body)]
    if isinstance(node, ast.IfExp):
        return [_with(node, body=node.orelse, orelse=node.body)]
    return []


def _negated(test):
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return test.operand
    return ast.UnaryOp(ast.Not(), test)


def op_negate_condition(node, fn, parent):
    if isinstance(node, (ast.If, ast.While, ast.IfExp)):
        return [_with(node, test=_negated(node.test))]
    if isinstance(node, ast.comprehension):  # [x for x in xs if c] -> [x for x in xs if not c]
        return [_with(node, ifs=node.ifs[:i] + [_negated(c)] + node.ifs[i + 1:]) for i, c in enumerate(node.ifs)]
    return []


def op_swap_arguments(node, fn, parent):
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)):
        return [_with(node, left=node.right, right=node.left)]
    if isinstance(node, ast.Call) and len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args):
        return [_with(node, args=[node.args[1], node.args[0]] + node.args[2:])]
    return []


def op_drop_statement(node, fn, parent):
    if isinstance(node, ast.stmt) and not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Pass)):
        return [[]]
    return []


def op_return_value(node, fn, parent):
    if not (isinstance(node, ast.Return) and node.value is not None):
        return []
    wrong = [ast.Constant(None), ast.Constant(0)]
    if fn.args.args:
        wrong.insert(1, ast.Name(fn.args.args[0].arg, ast.Load()))
    return [_with(node, value=w) for w in wrong if ast.dump(w) != ast.dump(node.value)]


def _is_int(node):
    return isinstance(node, ast.Constant) and type(node.value) is int


def op_constant(node, fn, parent):
    # n - 1 and -1 are perturbed as a whole (n, n - 2; 0, -2), never into n - 0 or -0
    if (isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) and _is_int(node.right)) or \
            (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and _is_int(node.operand)):
        return [shifted(node, 1), shifted(node, -1)]
    if not isinstance(node, ast.Constant) or isinstance(parent, ast.UnaryOp) or \
            (isinstance(parent, ast.BinOp) and isinstance(parent.op, (ast.Add, ast.Sub)) and parent.right is node):
        return []
    v = node.value
    if isinstance(v, bool):
        return [ast.Constant(not v)]
    if isinstance(v, int):
        return [ast.Constant(v + 1), ast.Constant(v - 1)]
    if isinstance(v, str) and v:
        return [ast.Constant("")]
    return []


def op_swap_name(node, fn, parent):
    if isinstance(node, ast.Name) and node.id in NAME_SWAPS:
        return [_with(node, id=NAME_SWAPS[node.id])]
    if isinstance(node, ast.Attribute) and node.attr in NAME_SWAPS:
        return [_with(node, attr=NAME_SWAPS[node.attr])]
    return []


def op_loop_control(node, fn, parent):
    if isinstance(node, ast.Break):
        return [ast.Continue()]
    if isinstance(node, ast.Continue):
        return [ast.Break()]
    return []


OPERATORS = {"compare": op_compare, "arithmetic": op_arithmetic, "boolean": op_boolean,
             "range_bound": op_range_bound, "index": op_index, "swap_branches": op_swap_branches,
             "negate_condition": op_negate_condition, "swap_arguments": op_swap_arguments,
             "drop_statement": op_drop_statement, "return_value": op_return_value, "constant": op_constant,
             "swap_name": op_swap_name, "loop_control": op_loop_control}

# ----------------------------------------------------------------------------------------------------------
# Sites and mutants


@dataclass(frozen=True)
class Mutation:
    operator: str
    node_index: int  # position of the mutated node in ast.walk(module) order
    choice: int  # which of the operator's replacements


def render(tree: ast.AST) -> str:
    """The one way every bundled candidate is written out."""
    return ast.unparse(tree) + "\n"


def _entry_function(tree: ast.Module, entry_point: str) -> ast.FunctionDef:
    fns = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == entry_point]
    if not fns:
        raise ValueError(f"no top-level function {entry_point!r}")
    return fns[-1]


def _mutable_nodes(tree: ast.Module, entry_point: str):
    """The entry-point function and (index, node, parent) for every node of its body, docstring excluded:
    the part the policy writes. Indices count ast.walk(tree) order."""
    fn = _entry_function(tree, entry_point)
    body = fn.body[1:] if ast.get_docstring(fn) is not None else fn.body
    inside = {id(n) for stmt in body for n in ast.walk(stmt)}
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    return fn, [(i, n, parents[id(n)]) for i, n in enumerate(ast.walk(tree)) if id(n) in inside]


def mutation_sites(code: str, entry_point: str) -> list[Mutation]:
    """Every single-site mutation of `entry_point`'s body, in a fixed order."""
    fn, nodes = _mutable_nodes(ast.parse(code), entry_point)
    return [Mutation(name, i, k) for i, node, parent in nodes for name, op in OPERATORS.items()
            for k in range(len(op(node, fn, parent)))]


def apply_mutation(code: str, entry_point: str, m: Mutation) -> str:
    """`code` with mutation `m` applied, rendered by `render`."""
    tree = ast.parse(code)
    fn, nodes = _mutable_nodes(tree, entry_point)
    node, parent = next((n, p) for i, n, p in nodes if i == m.node_index)
    new = OPERATORS[m.operator](node, fn, parent)[m.choice]
    for field, value in ast.iter_fields(parent):
        if isinstance(value, list) and any(v is node for v in value):
            i = next(i for i, v in enumerate(value) if v is node)
            value[i:i + 1] = new if isinstance(new, list) else [new]
            if not value and field == "body":
                value.append(ast.Pass())
        elif value is node:
            setattr(parent, field, new)
    return render(tree)


def mutants(code: str, entry_point: str, n: int, seed: str | int) -> list[tuple[Mutation, str]]:
    """Up to `n` distinct mutants of `code` (none equal to it), drawn round-robin over operators, each
    operator's sites in an order shuffled by `random.Random(seed)` (use a per-problem seed string)."""
    rng = random.Random(seed)
    by_operator = defaultdict(list)
    for m in mutation_sites(code, entry_point):
        by_operator[m.operator].append(m)
    queues = []
    for name in OPERATORS:
        rng.shuffle(by_operator[name])
        queues.append(by_operator[name])
    seen, out = {dedup_key(code)}, []
    for rnd in range(max(map(len, queues), default=0)):
        for queue in queues:
            if rnd < len(queue) and len(out) < n:
                mutant = apply_mutation(code, entry_point, queue[rnd])
                if dedup_key(mutant) not in seen:
                    seen.add(dedup_key(mutant))
                    out.append((queue[rnd], mutant))
    return out


def dedup_key(code: str) -> str:
    """Equal for programs that differ only in whitespace and comments: the AST where the code parses, else
    the code with comments, trailing spaces and blank lines removed."""
    try:
        return ast.dump(ast.parse(code))
    except (SyntaxError, ValueError):
        pass
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type != tokenize.COMMENT]
        code = tokenize.untokenize(tokens)
    except (tokenize.TokenError, SyntaxError):
        pass  # untokenizable: compare lines as they are
    lines = [line.rstrip() for line in code.splitlines()]
    return "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#"))


# ----------------------------------------------------------------------------------------------------------
# Candidates, execution, pairs


def bundled_candidates(problems: list, mutants_per_problem: int, seed: int) -> list[dict]:
    """For each HumanEval problem: its reference, then its mutants, all rendered by `render`."""
    out = []
    for p in problems:
        reference = render(ast.parse(p.reference))
        out.append({"problem_id": p.problem_id, "code": reference, "is_reference": True})
        for _, code in mutants(reference, p.entry_point, mutants_per_problem, f"{seed}/{p.problem_id}"):
            out.append({"problem_id": p.problem_id, "code": code, "is_reference": False})
    return out


def deduplicate(candidates: list[dict]) -> tuple[list[dict], Counter]:
    """Keep the first of each problem's candidates with equal `dedup_key`; also count drops per problem."""
    seen, kept, dropped = set(), [], Counter()
    for c in candidates:
        key = (c["problem_id"], dedup_key(c["code"]))
        if key in seen:
            dropped[c["problem_id"]] += 1
        else:
            seen.add(key)
            kept.append(c)
    return kept, dropped


# The per-test limit is on CPU time: the sandbox counts the CPU of everything in the program's sandbox
# (its cgroup), which does not depend on the machine's load as wall time does (2-5x on this shared 2-core
# machine; the paper's 2 s is wall time). CPU time still varies by some percent (caches, SMT siblings), so a
# verdict near the limit is not left to chance: each test's CPU time must be clearly under the limit (at most
# limit / MARGIN: its verdict stands) or clearly over it (the sandbox ends it at limit * MARGIN: a timeout).
# A candidate with a test in between is ambiguous and left out of the outputs; the bundled HumanEval/75
# mutant whose tests take 1.2-1.9 s is one. A test also ends after WALL_FACTOR x the limit of wall time
# spent idle (a program that sleeps or blocks).
MARGIN = 2
WALL_FACTOR = 10


def execute(problems: list, candidates: list[dict], workers: int, test_timeout_s: float,
            progress: bool = True) -> list[dict]:
    """Run each candidate against its problem's tests; returns the candidate records of the output file,
    where an ambiguous candidate (a test that ended between limit / MARGIN and limit * MARGIN of CPU time)
    also has `ambiguous_cpu_s`: make_pairs leaves those out.
    The total time limit never binds: every test gets its full time, so a program that loops on some tests
    cannot have its later tests cut at a point that depends on timing."""
    import sandbox
    by_id = {p.problem_id: p for p in problems}
    limits = sandbox.Limits(test_timeout_s=test_timeout_s * MARGIN, wall_factor=WALL_FACTOR / MARGIN,
                            total_timeout_s=1e6)  # never binds
    jobs = [(c["code"], by_id[c["problem_id"]].tests) for c in candidates]
    results = sandbox.run_programs(jobs, workers=workers, limits=limits, progress=progress)

    records = []
    for c, r in zip(candidates, results):
        records.append({"problem_id": c["problem_id"], "split": by_id[c["problem_id"]].split, "code": c["code"],
                        "verdict": r.verdict, "pass_rate": round(r.pass_rate, 4),
                        "is_reference": c.get("is_reference", False)})
        slow = [t.time_s for t in r.tests if t.verdict != "timeout" and t.time_s > test_timeout_s / MARGIN]
        if slow:
            records[-1]["ambiguous_cpu_s"] = max(slow)
    return records


def select_pairs(n_chosen: int, n_rejected: int, cap: int, rng: random.Random) -> list[tuple[int, int]]:
    """Up to `cap` distinct (chosen, rejected) index pairs spread over both sides: each pick is the pair
    whose programs have been used least so far, ties broken by a shuffled order."""
    grid = [(i, j) for i in range(n_chosen) for j in range(n_rejected)]
    rng.shuffle(grid)
    used_c, used_r, picked = Counter(), Counter(), []
    for _ in range(min(cap, len(grid))):
        best = min((p for p in grid if p not in picked), key=lambda p: used_c[p[0]] + used_r[p[1]])
        picked.append(best)
        used_c[best[0]] += 1
        used_r[best[1]] += 1
    return picked


def build_pairs(questions: dict[str, str], scored: list[dict], max_pairs_per_problem: int, seed: int) -> list[dict]:
    """Pairs in the release schema (plus `problem_id`, `neg_pass_rate`, `neg_verdict`), problems in the order
    of `questions`, each problem's pairs chosen by `select_pairs` with a per-problem seeded RNG."""
    by_problem = defaultdict(list)
    for c in scored:
        by_problem[c["problem_id"]].append(c)
    pairs = []
    for pid, question in questions.items():
        chosen = [c for c in by_problem[pid] if c["verdict"] == "passed"]
        rejected = [c for c in by_problem[pid] if c["verdict"] != "passed"]
        for i, j in select_pairs(len(chosen), len(rejected), max_pairs_per_problem, random.Random(f"{seed}/{pid}")):
            pairs.append({"question_content": question, "code_pos": chosen[i]["code"], "code_neg": rejected[j]["code"],
                          "problem_id": pid, "neg_pass_rate": rejected[j]["pass_rate"],
                          "neg_verdict": rejected[j]["verdict"]})
    return pairs


def make_pairs(problems: list, candidates: list[dict], max_pairs_per_problem: int, seed: int, workers: int,
               test_timeout_s: float, progress: bool = True) -> tuple[list[dict], Counter, list[dict]]:
    """Deduplicate, execute and pair: returns (scored candidates, duplicates dropped per problem, pairs).
    Candidates whose verdict is too close to the time limit to be reproducible are left out (printed)."""
    candidates, dropped = deduplicate(candidates)
    scored = execute(problems, candidates, workers, test_timeout_s, progress)
    for c in scored:
        if "ambiguous_cpu_s" in c:
            print(f"left out: a candidate of {c['problem_id']} ({c['verdict']}, pass rate {c['pass_rate']}) with a "
                  f"test that ended after {c['ambiguous_cpu_s']:.2f} s of CPU, too near the {test_timeout_s:g} s limit")
    scored = [c for c in scored if "ambiguous_cpu_s" not in c]
    pairs = build_pairs({p.problem_id: p.question for p in problems}, scored, max_pairs_per_problem, seed)
    return scored, dropped, pairs


# ----------------------------------------------------------------------------------------------------------
# Files


def load_problems(path: str) -> list:
    """Problems with tests (see `data.load_problems` for the format); a problem without tests is an error."""
    problems = data.load_problems(path)
    untested = [p.problem_id for p in problems if p.tests is None]
    if untested:
        raise InputError(path, f"problems without tests cannot give verified pairs: {', '.join(untested[:5])}")
    return problems


def load_candidates(path: str) -> list[dict]:
    """Candidates JSONL: `problem_id`, `code`, optional `is_reference`."""
    out = []
    for n, r in data.read_records(path):
        if not isinstance(r.get("code"), str) or "problem_id" not in r:
            raise InputError(f"{path}:{n}", "needs a string field 'code' and a field 'problem_id'")
        if isinstance(r["problem_id"], bool) or not isinstance(r["problem_id"], (str, int)):
            raise InputError(f"{path}:{n}", f"field 'problem_id' must be a string or an integer, "
                                            f"got {type(r['problem_id']).__name__}")
        if not isinstance(r.get("is_reference", False), bool):
            raise InputError(f"{path}:{n}", f"field 'is_reference' must be true or false, got {r['is_reference']!r}")
        out.append({"problem_id": str(r["problem_id"]), "code": r["code"], "is_reference": bool(r.get("is_reference"))})
    if not out:
        raise InputError(path, "no candidates (an empty file)")
    return out


def sample_candidates(samples: list[dict], problems: list, source: str = "samples") -> tuple[list, list[dict], int]:
    """Candidates from policy rollouts (an `infer.py generate` file), the paper's curation: every response
    of a problem becomes a candidate, its code taken by strict extraction (one fenced block that parses:
    the rule the reward model is trained and used with). A response without such code is left out (the
    shaped reward already scores it 0; a pair teaches nothing the shaping does not) and counted.
    Returns the sampled problems (question as the policy saw it, from the samples file), the candidates,
    and the number of responses left out."""
    import dataclasses
    from extract import extract_code
    by_id = {p.problem_id: p for p in problems}
    unknown = [s["problem_id"] for s in samples if s["problem_id"] not in by_id]
    if unknown:
        raise InputError(source, f"samples for problems that are not among the problems: {unknown[:5]}")
    sampled, candidates, no_code = [], [], 0
    for s in samples:
        sampled.append(dataclasses.replace(by_id[s["problem_id"]], question=s["question"]))
        for response in s["responses"]:
            code = extract_code(response, mode="strict")
            if code:
                candidates.append({"problem_id": s["problem_id"], "code": code + "\n", "is_reference": False})
            else:
                no_code += 1
    return sampled, candidates, no_code


def write_jsonl(path: str, records: list[dict]):
    with atomic_write(path) as f:  # renamed into place when complete: a failed run keeps the old file
        for r in records:
            f.write(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n")


def summary_table(problems: list, scored: list[dict], dropped: Counter, pairs: list[dict]) -> str:
    splits = sorted({p.split for p in problems}, key=lambda s: (s != "train", s))
    split_of = {p.problem_id: p.split for p in problems}
    rows = {"problems": Counter(p.split for p in problems),
            "candidates": Counter(c["split"] for c in scored),
            "duplicates dropped": Counter({s: sum(v for k, v in dropped.items() if split_of[k] == s) for s in splits})}
    for verdict in sorted({c["verdict"] for c in scored}, key=lambda v: (v != "passed", v)):
        rows[f"  {verdict}"] = Counter(c["split"] for c in scored if c["verdict"] == verdict)
    rows["problems with pairs"] = Counter(split_of[pid] for pid in {p["problem_id"] for p in pairs})
    rows["pairs"] = Counter(split_of[p["problem_id"]] for p in pairs)
    lines = [f"{'':22}" + "".join(f"{s:>10}" for s in splits + ["total"])]
    for name, counts in rows.items():
        lines.append(f"{name:22}" + "".join(f"{counts[s]:>10}" for s in splits) + f"{sum(counts.values()):>10}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # input
    parser.add_argument("--problems", help="problems JSONL (default: the bundled HumanEval problems)")
    parser.add_argument("--candidates", help="candidates JSONL (default: HumanEval references and their mutants)")
    parser.add_argument("--samples", help="policy rollouts (an `infer.py generate` file) as candidates, with "
                        "--problems for their tests (default: HumanEval)")
    parser.add_argument("--mutants-per-problem", type=int, default=24, help="bundled run: mutants per problem")
    # pairs
    parser.add_argument("--max-pairs-per-problem", type=int, default=16, help="cap on pairs per problem")
    parser.add_argument("--seed", type=int, default=0, help="seed for mutant sampling and pair selection")
    # execution
    parser.add_argument("--workers", type=int, default=2, help="parallel sandbox processes")
    parser.add_argument("--test-timeout", type=float, default=2.0,
                        help="CPU seconds per test (the paper's 2 s, of wall time there); see MARGIN for how "
                             "verdicts near it are kept reproducible")
    # output
    parser.add_argument("--out", default="data", help="output directory")
    parser.add_argument("--name", default=None, help="output file prefix (default: rollouts with --samples, "
                        "else humaneval)")
    args = parser.parse_args(argv)
    if args.samples and args.candidates:
        parser.error("--samples and --candidates are two sources of candidates: give one")
    if not args.samples and bool(args.problems) != bool(args.candidates):
        parser.error("--problems and --candidates go together")
    args.name = args.name or ("rollouts" if args.samples else "humaneval")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(args.out, "is a file, expected the output directory")

    if args.samples:
        problems = load_problems(args.problems) if args.problems else data.humaneval_problems()
        problems, candidates, no_code = sample_candidates(data.read_samples(args.samples), problems, args.samples)
        print(f"{len(candidates)} candidates from {len(problems)} problems' rollouts; {no_code} responses without "
              "a single parsable code block left out")
    elif args.problems:
        problems, candidates = load_problems(args.problems), load_candidates(args.candidates)
    else:
        problems = data.humaneval_problems()
        candidates = bundled_candidates(problems, args.mutants_per_problem, args.seed)
    known = {p.problem_id for p in problems}
    unknown = sorted({c["problem_id"] for c in candidates} - known)
    if unknown:
        raise InputError(args.candidates, f"candidates for problems not in {args.problems}: {unknown[:5]}")

    scored, dropped, pairs = make_pairs(problems, candidates, args.max_pairs_per_problem, args.seed,
                                        args.workers, args.test_timeout)

    os.makedirs(args.out, exist_ok=True)
    split_of = {p.problem_id: p.split for p in problems}
    for split in sorted(set(split_of.values())):
        write_jsonl(os.path.join(args.out, f"{args.name}_pairs_{split}.jsonl"),
                    [p for p in pairs if split_of[p["problem_id"]] == split])
    write_jsonl(os.path.join(args.out, f"{args.name}_candidates.jsonl"), scored)
    print(summary_table(problems, scored, dropped, pairs))
    bad_refs = [c["problem_id"] for c in scored if c["is_reference"] and c["verdict"] != "passed"]
    if bad_refs:
        print(f"warning: references that fail their tests: {bad_refs}")


if __name__ == "__main__":
    run_main(main)
