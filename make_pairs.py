"""Execution-verified preference pairs (paper step 2): run every candidate program against its problem's tests
in the sandbox, then pair, per problem, a program that passes every test (chosen) with one that fails at
least one (rejected).

Input is a problems file and a candidates file (JSON Lines, see `load_problems` and `load_candidates`), or
policy rollouts (`--samples`, an `infer.py generate` file: the paper's curation, see `sample_candidates`), or,
by default, the bundled data set: the 164 HumanEval problems with candidates made by mutating each reference
solution (`mutate.mutants`). The paper's candidates are the policy's RL rollouts; mutants are the stand-in that needs
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
import json
import os
import random
from collections import Counter, defaultdict

import data
from inputs import InputError, atomic_write, run_main
from mutate import dedup_key, mutants, render

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
