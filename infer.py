"""Test-time use of the reward model: scoring, sampling, best-of-N reranking and execution-based evaluation.

    python infer.py                                        # best-of-N on the held-out HumanEval problems (below)
    python infer.py score --rm runs/rm/final --in responses.jsonl --out scored.jsonl
    python infer.py generate --policy Qwen/Qwen3-8B --n 8 --out samples.jsonl        # resumable
    python infer.py bon --samples samples.jsonl --n 8      # or --policy CKPT, or the bundled pools (default)
    python infer.py eval --samples samples.jsonl --k 1 8   # or --policy CKPT; --problems lcb.jsonl for stdin/stdout
    python infer.py rmeval --rm CKPT --data total_dataset.json   # RM-Bench (alias: rmbench); or a pairs file
    python infer.py <command> --help                       # every flag

How it maps to the paper (METHOD.md sections 3, 5 and 6):
- Best-of-N (section 5): extract each candidate's code with the strict rule, score it with the reward model,
  keep the argmax of the shaped reward (0 for no valid code, else softplus(score)), so a candidate without a
  single parsable block is never picked over one with. Ties go to the lowest candidate index.
- Evaluation (section 6): lenient extraction (the last fenced block), the sandbox, 2 s per test; Avg@n is
  the mean fraction of a problem's n samples that pass every test, pass@k the unbiased estimator of Chen
  et al. (2021), 1 - C(n-c, k) / C(n, k), computed as a product so it never overflows.

Choices the paper leaves open, made here:
- Candidates are judged twice with different extraction: the reward model sees the strict extraction (its
  training rule), the tests run the lenient one (the evaluation rule). Candidates that are code already
  (the bundled pools) are used as they are by both.
- Two execution picks, both judged on the hidden tests like the RM pick. The fair baseline (public-test
  pick) runs only the tests a selector can have, HumanEval's docstring examples (`>>>` lines, 70 of 164
  prompts) or LiveCodeBench's public tests, and keeps the best public pass rate (ties: lowest index; no
  public tests: candidate 0, a random pick). The hidden-test pick runs the tests that judge every pick, so
  it is correct whenever any candidate is: an oracle (= pass@N), shown for its latency. The paper's
  execution baseline (CURE) generates its tests, which costs more time still. Each selection is timed per
  problem in the same run; model loading and one warm-up call of each are not counted. (On a CPU that
  other work keeps busy, set OMP_NUM_THREADS=1: torch's spinning threads then slow scoring down many
  times; see `bench.py infer --threads`.)
- Bundled pools (the default): for each held-out HumanEval problem, the deduplicated candidates of
  data/humaneval_candidates.jsonl (the reference solution and AST mutants with recorded verdicts), in a
  shuffle seeded by (--seed, problem id), first min(N, pool size) of them: no repeats, so a few problems get
  fewer than N (the table says how many), and the pool for a smaller N is a prefix of the one for a larger.
- Accuracy columns count a program as correct when it passes every test; "tests" columns are the mean
  fraction of tests passed.
- RM-Bench (`rmeval`): RM-Bench's own scoring (rmbench.py, `rmbench_accuracy`); each response is scored
  verbatim with the RM's chat template and its right truncation (the max_len train_rm.py saved with it, else
  4096; RM-Bench's script truncates at 2048 from the left). Paper (METHOD.md section 6): CodeScaler-8B
  76.9 / 83.0 / 79.9 / 96.4 / 84.1 (code / chat / math / safety / overall).

Files. Problems: `humaneval` (bundled, --split heldout|train|all) or a JSONL/Parquet file in any form
`data.load_problems` reads: our own (`question` with call-based or stdin/stdout tests), LiveCodeBench rows,
TACO/APPS rows or verl rows (README, "Data formats").
`generate` writes one line per problem: problem_id, question, responses (N decoded samples, think section
included, the stop token cut), num_tokens, stopped, seed, settings (policy and sampling: a resumed run must
match them). Prompts are render_prompt(question), thinking on unless --no-thinking. `score` reads `question` (or `problem`, `question_content`) and `response` (code extracted strictly)
or `code` (used as it is; `response` wins when both are there), and writes each record back with `code`,
`score` (raw) and `reward` (shaped) added.
"""
import argparse
import hashlib
import json
import math
import os
import random
import sys
import time

from tqdm import tqdm

from data import Problem, load_problems, load_pairs, read_records, read_samples
from extract import extract_code
from inputs import InputError, InputNotFound, atomic_write, check_output, run_main
from reward import shaped_reward
from rmbench import RMBENCH_DOMAINS, is_rmbench_file, load_rmbench, rmbench_accuracy, score_rmbench
from sandbox import CallTests, FunctionTests, IOTests, Limits, run_program, run_programs

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_RM = os.path.join(HERE, "runs", "rm", "final")
DEFAULT_POOL = os.path.join(HERE, "data", "humaneval_candidates.jsonl")

# -----------------------------------------------------------------------------
# JSONL that survives being killed


def read_finished(path: str) -> list[dict]:
    """The complete records of an output file a killed run may have left. Records are written whole, one
    write per line, so only the last line can be torn: text after the last newline is cut off the file
    (with a note on stderr) and its record counts as not done. A bad line before it is an error."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        raw = f.read()
    keep = raw.rfind(b"\n") + 1
    if keep < len(raw):
        with open(path, "r+b") as f:
            f.truncate(keep)
        print(f"{path}: dropped a truncated last line ({len(raw) - keep} bytes) left by an interrupted run",
              file=sys.stderr)
    return [rec for _, rec in read_records(path)]


def write_records(f, records: list[dict]) -> None:
    f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))  # one write, then flush
    f.flush()


# -----------------------------------------------------------------------------
# Problems


def tests_of(problems_by_id: dict[str, Problem], pid: str, source: str) -> CallTests | FunctionTests | IOTests:
    problem = problems_by_id.get(pid)
    if problem is None or problem.tests is None:
        why = "is not among the problems of" if problem is None else "has no tests in"
        raise InputError(source, f"problem {pid!r} {why} {source}: it cannot be evaluated (pass --problems FILE with "
                         "its tests, or --no-exec to select without executing)")
    return problem.tests


def limits_for(problems: list[Problem], timeout_s: float) -> Limits:
    """Per-test timeout as given; the whole-program limit grows with the longest test list."""
    most = max(len(p.tests.tests if isinstance(p.tests, CallTests) else p.tests.inputs) for p in problems)
    return Limits(test_timeout_s=timeout_s, total_timeout_s=max(30.0, timeout_s * most + 10.0))


# -----------------------------------------------------------------------------
# score


def score_input(rec: dict, where: str) -> tuple[str, str]:
    """(question, code) of one `score` input record; `response` is extracted strictly, `code` used as is."""
    question = next((rec[k] for k in ("question", "problem", "question_content") if k in rec), None)
    if not isinstance(question, str):
        raise InputError(where, "missing field 'question' (or 'problem', 'question_content'), a string")
    if isinstance(rec.get("response"), str):
        return question, extract_code(rec["response"], mode="strict")
    if isinstance(rec.get("code"), str):
        return question, rec["code"]
    raise InputError(where, "missing field 'response' or 'code' (a string)")


def check_score_input(in_path: str, allow_empty: bool = False) -> int:
    """The number of records of a `score` input; any bad record, or none at all (unless allow_empty), is an
    InputError."""
    total = 0
    for n, rec in read_records(in_path):
        score_input(rec, f"{in_path}:{n}")
        total += 1
    if total == 0 and not allow_empty:
        raise InputError(in_path, "no records (an empty file; --allow-empty writes an empty output)")
    return total


def score_file(rm, in_path: str, out_path: str, chunk: int = 512, max_tokens: int = 16384,
               shaping: str = "softplus", resume: bool = False, allow_empty: bool = False) -> int:
    """Stream `in_path` through the reward model, `chunk` records at a time; returns records written.
    The whole input is checked first (an error names its line), so a bad input never touches `out_path`.
    A fresh run writes a temporary file beside `out_path` and renames it when done: a killed run leaves the
    previous output as it was. --resume appends to `out_path` instead, one write per chunk, flushed, so a
    killed run leaves whole lines (and at most one torn last line, which the next --resume cuts off)."""
    total = check_score_input(in_path, allow_empty)  # pass 1: every record valid, before anything is written
    done = len(read_finished(out_path)) if resume else 0
    written = 0
    with (open(out_path, "a", encoding="utf-8") if resume else atomic_write(out_path)) as out, \
            tqdm(total=total, initial=done, desc="score", unit="rec") as bar:
        batch = []

        def flush():
            nonlocal written
            scores = rm.score([q for q, _, _ in batch], [c for _, c, _ in batch], max_tokens=max_tokens)
            write_records(out, [{**rec, "code": c, "score": s, "reward": shaped_reward(s, c, shaping)}
                                for (_, c, rec), s in zip(batch, scores)])
            written += len(batch)
            bar.update(len(batch))
            batch.clear()

        for index, (n, rec) in enumerate(read_records(in_path)):  # pass 2: score
            if index < done:
                continue
            batch.append((*score_input(rec, f"{in_path}:{n}"), rec))
            if len(batch) == chunk:
                flush()
        if batch:
            flush()
    return written


# -----------------------------------------------------------------------------
# generate


def problem_seed(seed: int, problem_id: str) -> int:
    """Each problem's samples depend only on (seed, problem id): a resumed run writes what an uninterrupted one would."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{problem_id}".encode()).digest()[:8], "little") >> 1


def generate_samples(model, tokenizer, problems: list[Problem], out_path: str, policy: str = "", n: int = 8,
                     temperature: float = 0.6, top_p: float = 0.95, top_k: int = 0, max_new_tokens: int = 16384,
                     seed: int = 0, thinking: bool = True, max_problems: int | None = None) -> int:
    """Append one line per problem not yet in `out_path` (n responses each, flushed per problem); returns
    the number of problems written. Stops after `max_problems` new problems when given. Each line records
    the settings (`policy` names the checkpoint); resuming a file written with other settings is an error."""
    from generate import generate

    settings = dict(policy=policy, n=n, temperature=temperature, top_p=top_p, top_k=top_k,
                    max_new_tokens=max_new_tokens, seed=seed, thinking=thinking)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    done = finished_problems(out_path, settings)
    todo = [problem for problem in problems if problem.problem_id not in done][:max_problems]
    with open(out_path, "a", encoding="utf-8") as f:
        for problem in tqdm(todo, desc=f"generate ({len(done)} done before)", unit="problem"):
            ids = tokenizer.encode(tokenizer.render_prompt(problem.question, enable_thinking=thinking))
            s = problem_seed(seed, problem.problem_id)
            out = generate(model, [ids], num_samples=n, max_new_tokens=max_new_tokens, temperature=temperature,
                           top_k=top_k, top_p=top_p, stop_ids=tokenizer.eos_ids, pad_id=tokenizer.pad_id, seed=s)
            lengths, stopped = out.lengths.tolist(), out.stopped.tolist()
            responses = tokenizer.decode_responses([out.tokens[i, : lengths[i]].tolist() for i in range(n)], stopped)
            write_records(f, [{"problem_id": problem.problem_id, "question": problem.question, "responses": responses,
                               "num_tokens": lengths, "stopped": stopped, "seed": s, "settings": settings}])
    return len(todo)


def finished_problems(out_path: str, settings: dict) -> set[str]:
    """The problem ids `out_path` already holds; an InputError if any was sampled with other settings (a
    resumed file must read as one run). Cheap: callers check it before loading the policy."""
    done = set()
    for rec in read_finished(out_path):
        old = rec.get("settings", {})
        for key in (k for k in settings if old.get(k) != settings[k]):
            raise InputError(out_path, f"problem {rec.get('problem_id')!r} was sampled with {key}={old.get(key)!r}, "
                             f"this run asks for {key}={settings[key]!r}: use another output file or the same settings")
        done.add(rec["problem_id"])
    return done


def sampling_settings(args) -> dict:
    """The settings generate_samples records with each problem, from infer.py's flags."""
    return dict(policy=args.policy, n=args.n, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                max_new_tokens=args.max_new_tokens, seed=args.seed, thinking=not args.no_thinking)


def check_before_sampling(args, out_path: str) -> None:
    """What a sampling run checks before it loads the policy: the checkpoint's files (headers only), then
    whether `out_path` holds problems sampled with other settings."""
    from model import check_checkpoint
    check_checkpoint(args.policy, head="lm_head")
    finished_problems(out_path, sampling_settings(args))


def load_policy(path: str, dtype: str, device: str):
    import hub
    from model import load_model
    from tokenizer import load_tokenizer
    ckpt = hub.local_dir(path, allow_patterns=["*.json", "*.safetensors", "*.jinja"])
    model = load_model(ckpt, dtype=dtype, device=device, head="lm_head")
    has_tokenizer = os.path.exists(os.path.join(ckpt, "tokenizer.json"))
    return model, load_tokenizer(ckpt if has_tokenizer else None)


# -----------------------------------------------------------------------------
# Metrics and best-of-N


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k), as the product
    1 - prod_{i=n-c+1..n} (1 - k/i), which needs no big binomials."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def first_argmax(values: list[float]) -> int:
    """Index of the largest value; ties go to the lowest index."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def pool_candidates(pool_path: str, problems: list[Problem], n: int, seed: int) -> dict[str, list[str]]:
    """Up to n distinct codes per problem from a candidates file (see the module docstring)."""
    pools: dict[str, list[str]] = {}
    for line, rec in read_records(pool_path):
        if not isinstance(rec.get("problem_id"), str) or not isinstance(rec.get("code"), str):
            raise InputError(f"{pool_path}:{line}", "missing field 'problem_id' or 'code' (strings)")
        pools.setdefault(rec["problem_id"], []).append(rec["code"])
    drawn = {}
    for problem in problems:
        if problem.problem_id not in pools:
            raise InputError(pool_path, f"no candidates for problem {problem.problem_id!r}")
        codes = list(pools[problem.problem_id])
        random.Random(f"{seed}:{problem.problem_id}").shuffle(codes)
        drawn[problem.problem_id] = codes[:n]
    return drawn


def public_pick(programs: list[str], public_tests, workers: int, limits: Limits) -> dict:
    """The fair execution baseline: run only the tests a selector may have (HumanEval's docstring
    examples, LiveCodeBench's public tests) and keep the best public pass rate, ties to the lowest index.
    It is given the public tests alone, so it cannot see the hidden ones. Without public tests it keeps
    candidate 0, which is a random pick (pools are shuffled, samples are i.i.d.)."""
    if public_tests is None:
        return {"public_pick": 0, "public_s": 0.0, "public_rates": None}
    start = time.perf_counter()
    results = run_programs([(p, public_tests) for p in programs], workers=workers, limits=limits)
    rates = [r.pass_rate for r in results]
    return {"public_pick": first_argmax(rates), "public_s": time.perf_counter() - start, "public_rates": rates}


def best_of_n(problems: list[Problem], candidates: dict[str, list[str]], score_fn, are_responses: bool,
              execute: bool = True, workers: int = 2, limits: Limits = Limits(), progress: bool = True) -> list[dict]:
    """Per problem: the reward-model pick (score_fn(questions, codes) -> raw scores, e.g. rm.score) and,
    with `execute`, the public-test pick (`public_pick`), the hidden-test pick (the oracle) and every
    candidate's verdict on the hidden tests; each selection timed on its own."""
    rows = []
    for problem in tqdm(problems, desc="best-of-N", unit="problem", disable=not progress):
        texts = candidates[problem.problem_id]
        start = time.perf_counter()
        codes = [extract_code(x, mode="strict") for x in texts] if are_responses else texts
        scores = score_fn([problem.question] * len(codes), codes)
        rewards = [shaped_reward(s, c) for s, c in zip(scores, codes)]
        row = {"problem_id": problem.problem_id, "n": len(texts), "rm_pick": first_argmax(rewards),
               "rm_s": time.perf_counter() - start, "scores": scores, "rewards": rewards}
        row["rm_pick_code"] = codes[row["rm_pick"]]
        if execute:
            programs = [extract_code(x, mode="last") for x in texts] if are_responses else texts
            row.update(public_pick(programs, problem.public_tests, workers, limits))
            start = time.perf_counter()  # the oracle: the hidden tests, which judge every pick
            results = run_programs([(p, problem.tests) for p in programs], workers=workers, limits=limits)
            rates = [r.pass_rate for r in results]
            row.update(exec_pick=first_argmax(rates), exec_s=time.perf_counter() - start, pass_rates=rates,
                       correct=[r.verdict == "passed" for r in results], verdicts=[r.verdict for r in results])
        rows.append(row)
    return rows


def summarize_bon(rows: list[dict]) -> dict:
    """Accuracy (all tests pass) and mean test pass rate of each way to pick, over problems; times."""
    def mean(xs):
        return sum(xs) / len(xs)

    out = {"problems": len(rows), "rm_s": sum(r["rm_s"] for r in rows)}
    if "correct" in rows[0]:
        picks = {
            "random pick (Avg@N)": ([mean(r["correct"]) for r in rows], [mean(r["pass_rates"]) for r in rows]),
            "reward-model pick": ([r["correct"][r["rm_pick"]] for r in rows], [r["pass_rates"][r["rm_pick"]] for r in rows]),
            "public-test pick": ([r["correct"][r["public_pick"]] for r in rows],
                                 [r["pass_rates"][r["public_pick"]] for r in rows]),
            "hidden-test pick (oracle, pass@N)": ([r["correct"][r["exec_pick"]] for r in rows],
                                                  [r["pass_rates"][r["exec_pick"]] for r in rows]),
        }
        out["methods"] = {k: {"accuracy": mean(a), "tests": mean(p)} for k, (a, p) in picks.items()}
        out["exec_s"] = sum(r["exec_s"] for r in rows)
        out["public_s"] = sum(r["public_s"] for r in rows)
        out["with_public_tests"] = sum(r["public_rates"] is not None for r in rows)
        out["time_ratio"] = out["exec_s"] / max(out["rm_s"], 1e-12)
    return out


def print_table(header: list[str], rows: list[list]) -> None:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


def report_bon(rows: list[dict], summary: dict, n: int) -> None:
    sizes = [r["n"] for r in rows]
    n = min(n, max(sizes))  # a `generate` file with fewer samples than --n: N is what it has
    pool = f"N={n}" + (f" (pools of {min(sizes)}-{max(sizes)}: fewer than N where a pool is smaller)"
                       if min(sizes) < n else "")
    if "methods" not in summary:
        print(f"\nbest-of-N picks for {len(rows)} problems, {pool}; reward model {summary['rm_s']:.2f} s")
        return
    print_table(["problem", "N", "correct", "RM pick: #, tests", "public pick", "hidden pick", "RM ms",
                 "public ms", "hidden ms"],
                [[r["problem_id"], r["n"], sum(r["correct"]),
                  f"#{r['rm_pick']} {r['pass_rates'][r['rm_pick']]:.2f}",
                  f"#{r['public_pick']} {r['pass_rates'][r['public_pick']]:.2f}" if r["public_rates"] else "-",
                  f"#{r['exec_pick']} {r['pass_rates'][r['exec_pick']]:.2f}",
                  f"{1e3 * r['rm_s']:.0f}", f"{1e3 * r['public_s']:.0f}", f"{1e3 * r['exec_s']:.0f}"] for r in rows])
    P = len(rows)
    print(f"\nbest-of-N on {P} problems, {pool}; each pick judged on the hidden tests")
    times = {"reward-model pick": summary["rm_s"], "public-test pick": summary["public_s"],
             "hidden-test pick (oracle, pass@N)": summary["exec_s"]}
    print_table(["method", "solved", "tests passed", "selection time", "per problem"],
                [[k, f"{100 * m['accuracy']:.1f}%", f"{100 * m['tests']:.1f}%",
                  f"{times[k]:.2f} s" if k in times else "-", f"{1e3 * times[k] / P:.0f} ms" if k in times else "-"]
                 for k, m in summary["methods"].items()])
    print(f"public-test pick: the tests a selector may have (HumanEval: the prompt's >>> examples), found for "
          f"{summary['with_public_tests']} of {P} problems; without any it keeps candidate 0 (a random pick).")
    print(f"hidden-test pick: runs the tests that judge every pick, so it is an upper bound (= pass@N), not a "
          f"baseline; shown for its latency ({summary['time_ratio']:.1f}x the reward model's time).")


# -----------------------------------------------------------------------------
# eval


def evaluate_samples(samples: list[dict], problems_by_id: dict[str, Problem], source: str, ks: list[int],
                     workers: int = 2, timeout_s: float = 2.0) -> dict:
    """Lenient extraction, the sandbox; per problem n, c and verdicts; overall Avg@n and pass@k."""
    tests = [tests_of(problems_by_id, s["problem_id"], source) for s in samples]  # every error before any run
    for s in samples:
        if max(ks) > len(s["responses"]):
            raise InputError(source, f"problem {s['problem_id']!r} has {len(s['responses'])} samples, "
                             f"fewer than --k {max(ks)}")
    limits = limits_for([problems_by_id[s["problem_id"]] for s in samples], timeout_s)
    jobs = [(extract_code(r, mode="last"), t) for s, t in zip(samples, tests) for r in s["responses"]]
    results, per_problem = iter(run_programs(jobs, workers=workers, limits=limits, progress=True)), []
    for s in samples:
        res = [next(results) for _ in s["responses"]]
        c = sum(r.verdict == "passed" for r in res)
        per_problem.append({"problem_id": s["problem_id"], "n": len(res), "correct": c,
                         "pass_at_k": {str(k): pass_at_k(len(res), c, k) for k in ks},
                         "pass_rates": [r.pass_rate for r in res], "verdicts": [r.verdict for r in res]})
    P = len(per_problem)
    return {"problems": P, "avg": sum(p["correct"] / p["n"] for p in per_problem) / P,
            "pass_at_k": {str(k): sum(p["pass_at_k"][str(k)] for p in per_problem) / P for k in ks},
            "tests": sum(sum(p["pass_rates"]) / p["n"] for p in per_problem) / P, "per_problem": per_problem}


# -----------------------------------------------------------------------------
# Reward-model evaluation: RM-Bench, and pairwise accuracy on pairs files

def pair_accuracy(pairs: list, score_fn) -> dict:
    """Pairwise accuracy (chosen scores strictly higher, as RM-Bench counts) and the mean margin
    score(chosen) - score(rejected) over a pairs file; texts are scored verbatim."""
    scores = score_fn([p.question for p in pairs for _ in range(2)], [x for p in pairs for x in (p.chosen, p.rejected)])
    margins = [scores[2 * k] - scores[2 * k + 1] for k in range(len(pairs))]
    return {"pairs": len(pairs), "accuracy": sum(m > 0 for m in margins) / len(pairs),
            "mean_margin": sum(margins) / len(pairs), "margins": margins}


def report_rmbench(acc: dict) -> None:
    domains = acc["domains"]
    print("RM-Bench accuracy per domain (3x3: rows chosen style, columns rejected style; concise, detailed, markdown)")
    for d, r in domains.items():
        print(f"  {d} ({r['items']} items): " + " | ".join(" ".join(f"{100 * x:5.1f}" for x in row) for row in r["matrix"]))
    order = [d for d in ("code", "chat", "math", "safety", "all") if d in domains]  # the paper's column order
    print_table(["", *order, "overall"],
                [[k, *[f"{100 * domains[d][k]:.1f}" for d in order], f"{100 * acc[k]:.1f}"]
                 for k in ("hard", "normal", "easy", "accuracy")])
    if acc["unscored_items"]:
        print(f"{acc['unscored_items']} items have a domain outside {RMBENCH_DOMAINS} and are not scored (as in RM-Bench)")
    if set(domains) != set(RMBENCH_DOMAINS) and "all" not in domains:
        print(f"note: domains {sorted(set(RMBENCH_DOMAINS) - set(domains))} are missing: overall averages the rest")


# -----------------------------------------------------------------------------
# CLI


def load_rm(path: str, dtype: str, device: str):
    from reward import RewardModel
    if not os.path.isdir(os.path.expanduser(path)) and (path == DEFAULT_RM or path.startswith((".", "/", "~"))):
        hint = " Train one first: python train_rm.py (a few minutes on a CPU)." if path == DEFAULT_RM else ""
        raise InputNotFound(path, f"no reward model at {path}.{hint}")
    rm = RewardModel.from_pretrained(path, dtype=dtype, device=device)
    if rm.model.cfg.hidden_size < 512:
        print(f"note: {path} is a tiny reward model (hidden size {rm.model.cfg.hidden_size}), trained briefly "
              "on AST mutants of the HumanEval train problems: expect its pick to be near the random pick. "
              "Every column is real, and a real reward model (--rm LARK-Lab/CodeScaler-8B) drops in.")
    return rm


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, help):
        return sub.add_parser(name, help=help, description=help)

    def model_flags(c):
        c.add_argument("--device", default=None, help="default: cuda if available, else cpu")
        c.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")

    def problem_flags(c):
        c.add_argument("--problems", default="humaneval", help="'humaneval' or a problems file: ours, LiveCodeBench, "
                       "TACO/APPS or verl rows (see data.load_problems)")
        c.add_argument("--split", default="heldout", choices=["heldout", "train", "all"],
                       help="HumanEval problems to sample or draw pools for (a --samples file is used whole)")

    def sampling_flags(c, n):
        # Defaults are the paper's evaluation settings (METHOD.md section 6): n = 8, 16384 new tokens,
        # temperature 0.6, top-p 0.95, no top-k, the chat template's default (thinking not switched off).
        # On a CPU with a tiny policy pass a small --max-new-tokens (tests use 16-64).
        c.add_argument("--policy", default=None, help="policy checkpoint (directory or hub id) to sample from")
        c.add_argument("--n", type=int, default=n, help=f"samples (candidates) per problem (default {n})")
        c.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (paper: 0.6)")
        c.add_argument("--top-p", type=float, default=0.95, help="nucleus mass (paper: 0.95)")
        c.add_argument("--top-k", type=int, default=0, help="top-k cut-off, 0 = none (paper's evaluation: none)")
        c.add_argument("--max-new-tokens", type=int, default=16384,
                       help="tokens per response (paper: 16384; shrink it for a tiny policy on a CPU)")
        c.add_argument("--no-thinking", action="store_true",
                       help="pass enable_thinking=False to the chat template (Qwen3: an empty think block); "
                       "default: the template's default, as the authors ran it")
        c.add_argument("--seed", type=int, default=0, help="seed of the sampling and of the pool draw (per problem: seed and problem id)")

    c = command("score", "score (problem, response|code) JSONL records with the reward model")
    c.add_argument("--rm", default=DEFAULT_RM, help="reward model directory or hub id")
    c.add_argument("--in", dest="inp", required=True, help="input JSONL")
    c.add_argument("--out", required=True, help="output JSONL (the input records with code, score, reward added)")
    c.add_argument("--chunk", type=int, default=512, help="records scored and written at a time")
    c.add_argument("--max-tokens", type=int, default=16384, help="token budget of one packed scoring batch")
    c.add_argument("--shaping", default="softplus", choices=["softplus", "sigmoid", "raw", "none"],
                   help="the `reward` field: softplus(score), 0 for invalid code (the method); see reward.shaped_reward")
    c.add_argument("--resume", action="store_true", help="keep the whole lines of --out and go on after them")
    c.add_argument("--allow-empty", action="store_true",
                   help="an input without records writes an empty --out (default: an error, exit code 2)")
    model_flags(c)

    c = command("generate", "sample N responses per problem from a policy (resumable)")
    problem_flags(c)
    sampling_flags(c, 8)
    c.add_argument("--out", required=True, help="output JSONL, one line per problem; problems in it are skipped")
    c.add_argument("--max-problems", type=int, default=None, help="stop after this many new problems")
    model_flags(c)

    c = command("bon", "best-of-N selection with the reward model, against public-test execution and the "
                "hidden-test oracle (default command)")
    problem_flags(c)
    sampling_flags(c, 16)
    c.add_argument("--rm", default=DEFAULT_RM, help="reward model directory or hub id (default: train_rm.py's output)")
    c.add_argument("--samples", default=None, help="a `generate` file to take candidates from")
    c.add_argument("--samples-out", default=os.path.join(HERE, "runs", "infer", "bon_samples.jsonl"),
                   help="where --policy's samples go (resumable)")
    c.add_argument("--pool", default=DEFAULT_POOL, help="candidate codes (problem_id, code) when there is no --samples or --policy")
    c.add_argument("--no-exec", action="store_true", help="only select: no tests run, no pass-rate columns")
    c.add_argument("--max-problems", type=int, default=None,
                   help="bundled pools only: this many problems, those with public tests first (a quick look)")
    c.add_argument("--workers", type=int, default=os.cpu_count(), help="sandboxes at a time")
    c.add_argument("--timeout", type=float, default=2.0, help="seconds per test")
    c.add_argument("--out", default=os.path.join(HERE, "runs", "infer", "bon.json"), help="JSON summary")
    model_flags(c)

    c = sub.add_parser("rmeval", aliases=["rmbench"], help="reward-model accuracy on RM-Bench or a pairs file",
                       description="RM-Bench's hard/normal/easy accuracies per domain (a RM-Bench file), or "
                       "pairwise accuracy and margin (a pairs file in the release or TRL schema)")
    c.add_argument("--rm", default=DEFAULT_RM, help="reward model directory or hub id (not needed for an RM-Bench "
                   "results file that has score_chosen/score_rejected)")
    c.add_argument("--data", required=True, help="RM-Bench JSON (total_dataset.json or a domain file), or pairs "
                   "(file, directory or hub id, see data.load_pairs)")
    c.add_argument("--split", default=None, help="pairs only: the split of a directory or hub id (e.g. heldout)")
    c.add_argument("--rescore", action="store_true", help="score an RM-Bench results file again with --rm")
    c.add_argument("--max-tokens", type=int, default=16384, help="token budget of one packed scoring batch")
    c.add_argument("--out", default=os.path.join(HERE, "runs", "infer", "rmeval.json"), help="JSON summary")
    model_flags(c)

    c = command("eval", "Avg@n and pass@k of a policy or a `generate` file, by execution")
    problem_flags(c)
    sampling_flags(c, 8)
    c.add_argument("--samples", default=None, help="a `generate` file (else --policy is sampled into --samples-out)")
    c.add_argument("--samples-out", default=os.path.join(HERE, "runs", "infer", "eval_samples.jsonl"),
                   help="where --policy's samples go (resumable)")
    c.add_argument("--k", type=int, nargs="+", default=[1], help="pass@k for each k (k <= samples per problem)")
    c.add_argument("--workers", type=int, default=os.cpu_count(), help="sandboxes at a time")
    c.add_argument("--timeout", type=float, default=2.0, help="seconds per test")
    c.add_argument("--out", default=os.path.join(HERE, "runs", "infer", "eval.json"), help="JSON summary")
    model_flags(c)
    args = p.parse_args(argv)
    if args.device is None:
        import torch
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    return args


def sample_policy(args, problems: list[Problem], out_path: str) -> list[dict]:
    check_before_sampling(args, out_path)
    model, tokenizer = load_policy(args.policy, args.dtype, args.device)
    generate_samples(model, tokenizer, problems, out_path, policy=args.policy, n=args.n, temperature=args.temperature,
                     top_p=args.top_p, top_k=args.top_k, max_new_tokens=args.max_new_tokens, seed=args.seed,
                     thinking=not args.no_thinking)
    wanted = {problem.problem_id for problem in problems}
    return [s for s in read_samples(out_path) if s["problem_id"] in wanted]


def write_json(path: str, obj) -> None:
    with atomic_write(path) as f:  # a run that fails while writing leaves the previous summary whole
        json.dump(obj, f, indent=1)
    print(f"summary written to {path}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv or ["bon"])  # no arguments: the default best-of-N run
    run_main(run, args, prog=f"infer.py {args.command}")  # bad input: one line, exit code 2


def run(args):
    check_output(args.out)  # the inputs are checked before any model is loaded, the output before anything runs
    if args.command == "score":
        check_score_input(args.inp, args.allow_empty)
        rm = load_rm(args.rm, args.dtype, args.device)
        n = score_file(rm, args.inp, args.out, args.chunk, args.max_tokens, args.shaping, args.resume, args.allow_empty)
        print(f"{n} records scored into {args.out}")
    elif args.command == "generate":
        if args.policy is None:
            raise InputError("--policy", "generate needs a policy checkpoint")
        problems = load_problems(args.problems, args.split)
        check_before_sampling(args, args.out)
        model, tokenizer = load_policy(args.policy, args.dtype, args.device)
        n = generate_samples(model, tokenizer, problems, args.out, args.policy, n=args.n,
                             temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                             max_new_tokens=args.max_new_tokens, seed=args.seed, thinking=not args.no_thinking,
                             max_problems=args.max_problems)
        print(f"{n} problems sampled into {args.out}")
    elif args.command == "bon":
        problems = load_problems(args.problems, args.split)
        if args.samples or args.policy:
            samples = read_samples(args.samples) if args.samples else sample_policy(args, problems, args.samples_out)
            by_id = {t.problem_id: t for t in load_problems(args.problems, "all")}
            candidates = {s["problem_id"]: s["responses"][: args.n] for s in samples}
            problems = [Problem(s["problem_id"], s["question"], None if args.no_exec else
                          tests_of(by_id, s["problem_id"], args.problems),
                             public_tests=by_id[s["problem_id"]].public_tests if s["problem_id"] in by_id else None)
                     for s in samples]
        else:
            if args.max_problems is not None:
                problems = sorted(problems, key=lambda problem: problem.public_tests is None)[: args.max_problems]
            candidates = pool_candidates(args.pool, problems, args.n, args.seed)
        rm = load_rm(args.rm, args.dtype, args.device)
        limits = None if args.no_exec else limits_for(problems, args.timeout)
        rm.score([problems[0].question], [""])  # warm-up, not timed
        if not args.no_exec:
            run_program("pass", problems[0].tests, limits)
        rows = best_of_n(problems, candidates, rm.score, are_responses=bool(args.samples or args.policy),
                         execute=not args.no_exec, workers=args.workers, limits=limits or Limits())
        summary = summarize_bon(rows)
        report_bon(rows, summary, args.n)
        write_json(args.out, {"config": vars(args), "summary": summary, "per_problem": rows})
    elif args.command in ("rmeval", "rmbench"):
        if is_rmbench_file(args.data):
            items = load_rmbench(args.data)
            if args.rescore or any(it.score_chosen is None for it in items):
                rm = load_rm(args.rm, args.dtype, args.device)
                score_rmbench(items, lambda p, r: rm.score(p, r, max_tokens=args.max_tokens))
            acc = rmbench_accuracy(items)
            report_rmbench(acc)
            scores = [{"id": it.item_id, "domain": it.domain, "score_chosen": it.score_chosen,
                       "score_rejected": it.score_rejected} for it in items]
            write_json(args.out, {"config": vars(args), "rmbench": acc, "scores": scores})
        else:
            pairs = load_pairs(args.data, args.split)
            rm = load_rm(args.rm, args.dtype, args.device)
            result = pair_accuracy(pairs, lambda q, c: rm.score(q, c, max_tokens=args.max_tokens))
            print_table(["pairs", "accuracy", "mean margin"],
                        [[result["pairs"], f"{100 * result['accuracy']:.1f}%", f"{result['mean_margin']:.3f}"]])
            write_json(args.out, {"config": vars(args), "pairs": result})
    elif args.command == "eval":
        if bool(args.samples) == bool(args.policy):
            raise InputError("--samples/--policy", "eval needs exactly one of them")
        by_id = {t.problem_id: t for t in load_problems(args.problems, "all")}
        samples = read_samples(args.samples) if args.samples else sample_policy(
            args, load_problems(args.problems, args.split), args.samples_out)
        summary = evaluate_samples(samples, by_id, args.problems, args.k, args.workers, args.timeout)
        n = sorted({p["n"] for p in summary["per_problem"]})
        print_table(["problems", "samples each", "Avg@n"] + [f"pass@{k}" for k in args.k] + ["tests passed"],
                    [[summary["problems"], n[0] if len(n) == 1 else f"{n[0]}-{n[-1]}", f"{100 * summary['avg']:.1f}%"]
                     + [f"{100 * summary['pass_at_k'][str(k)]:.1f}%" for k in args.k] + [f"{100 * summary['tests']:.1f}%"]])
        write_json(args.out, {"config": vars(args), "summary": summary})


if __name__ == "__main__":
    main()
