"""make_pairs.py: every mutation operator, seeded sampling, dedup, pair selection, and a run through the real
sandbox that reproduces the committed HumanEval lines."""
import json
import os

import pytest

import make_pairs as mp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mutated(code, operator, entry_point="f"):
    return [mp.apply_mutation(code, entry_point, m) for m in mp.mutation_sites(code, entry_point)
            if m.operator == operator]


def f(body, args="a, b"):
    return f"def f({args}):\n" + "".join(f"    {line}\n" for line in body.split("\n"))


@pytest.mark.parametrize("operator, source, expected", [
    ("compare", f("return a < b in c", "a, b, c"),
     [f("return a <= b in c", "a, b, c"), f("return a > b in c", "a, b, c"), f("return a < b not in c", "a, b, c")]),
    ("arithmetic", f("return a + b * 2"), [f("return a - b * 2"), f("return a + b // 2")]),
    ("arithmetic", f("a %= b\nreturn a"), [f("a //= b\nreturn a")]),
    ("boolean", f("return a and b or a"), [f("return (a and b) and a"), f("return (a or b) or a")]),
    ("range_bound", f("return range(1, a - 1)"),
     [f("return range(2, a - 1)"), f("return range(0, a - 1)"), f("return range(1, a)"), f("return range(1, a - 2)")]),
    ("index", f("return a[b] + a[1:-1] + a['k']"),
     [f("return a[b + 1] + a[1:-1] + a['k']"), f("return a[b - 1] + a[1:-1] + a['k']"),
      f("return a[b] + a[2:-1] + a['k']"), f("return a[b] + a[0:-1] + a['k']"),
      f("return a[b] + a[1:0] + a['k']"), f("return a[b] + a[1:-2] + a['k']")]),
    ("swap_branches", f("if a:\n    return 1\nelse:\n    return b if a else 2"),
     [f("if a:\n    return b if a else 2\nelse:\n    return 1"), f("if a:\n    return 1\nelse:\n    return 2 if a else b")]),
    ("negate_condition", f("while not a:\n    a = [x for x in b if x > 0]"),
     [f("while a:\n    a = [x for x in b if x > 0]"), f("while not a:\n    a = [x for x in b if not x > 0]")]),
    ("swap_arguments", f("return pow(a, b) - a"), [f("return a - pow(a, b)"), f("return pow(b, a) - a")]),
    ("drop_statement", f("a += 1\nreturn a"), [f("return a"), f("a += 1")]),
    ("drop_statement", f("for x in b:\n    a = x\nreturn a"),
     [f("return a"), f("for x in b:\n    a = x"), f("for x in b:\n    pass\nreturn a")]),
    ("return_value", f("return a + 1"), [f("return None"), f("return a"), f("return 0")]),
    ("return_value", f("return a", "a"), [f("return None", "a"), f("return 0", "a")]),
    ("constant", f("b = 3\nc = True\nd = 'x'\nreturn a - 1 + -1 + 2.5"),
     [f("b = 4\nc = True\nd = 'x'\nreturn a - 1 + -1 + 2.5"), f("b = 2\nc = True\nd = 'x'\nreturn a - 1 + -1 + 2.5"),
      f("b = 3\nc = False\nd = 'x'\nreturn a - 1 + -1 + 2.5"), f("b = 3\nc = True\nd = ''\nreturn a - 1 + -1 + 2.5"),
      f("b = 3\nc = True\nd = 'x'\nreturn a + -1 + 2.5"), f("b = 3\nc = True\nd = 'x'\nreturn a - 2 + -1 + 2.5"),
      f("b = 3\nc = True\nd = 'x'\nreturn a - 1 + 0 + 2.5"), f("b = 3\nc = True\nd = 'x'\nreturn a - 1 + -2 + 2.5")]),
    ("swap_name", f("return max(a).lower()"), [f("return max(a).upper()"), f("return min(a).lower()")]),
    ("loop_control", f("for x in a:\n    if x:\n        break\n    continue"),
     [f("for x in a:\n    if x:\n        break\n    break"), f("for x in a:\n    if x:\n        continue\n    continue")]),
])
def test_operator(operator, source, expected):
    assert mutated(source, operator) == expected


def test_only_the_entry_point_body_is_mutated_and_the_docstring_is_kept():
    code = ('import math\n\ndef helper(x):\n    return x + 1\n\n'
            'def f(a):\n    """Add 1 to a, e.g. f(1) == 2."""\n    return helper(a) # note\n')
    rendered = mp.render(__import__("ast").parse(code))
    assert rendered == ('import math\n\ndef helper(x):\n    return x + 1\n\n'
                        'def f(a):\n    """Add 1 to a, e.g. f(1) == 2."""\n    return helper(a)\n')
    outs = [mp.apply_mutation(rendered, "f", m) for m in mp.mutation_sites(rendered, "f")]
    assert outs and all(o.startswith('import math\n\ndef helper(x):\n    return x + 1\n\ndef f(a):\n    """Add 1') for o in outs)
    assert {o.split('"""\n')[1] for o in outs} == {"    return None\n", "    return a\n", "    return 0\n", ""}  # "": return dropped


def test_mutants_are_distinct_deterministic_and_spread_over_operators():
    code = mp.render(__import__("ast").parse(
        "def f(xs, k):\n    total = 0\n    for i in range(len(xs) - 1):\n        if xs[i] < k and xs[i + 1] != 0:\n"
        "            total += xs[i] * 2\n    return max(total, 0) if total else -1\n"))
    a, b = mp.mutants(code, "f", 10, "0/p"), mp.mutants(code, "f", 10, "0/p")
    assert a == b and len(a) == 10
    assert len({mp.dedup_key(c) for _, c in a} | {mp.dedup_key(code)}) == 11
    assert len({m.operator for m, _ in a}) == 10  # round-robin: the first 10 come from 10 different operators
    assert mp.mutants(code, "f", 10, "1/p") != a
    everything = mp.mutants(code, "f", 1000, "0/p")
    assert len(everything) < len(mp.mutation_sites(code, "f"))  # equal mutants (e.g. index vs constant) kept once


def test_dedup_ignores_whitespace_and_comments_only():
    base = "def f(a):\n    return a + 1\n"
    assert mp.dedup_key(base) == mp.dedup_key("# hi\ndef f( a ):\n\n    return (a+1)  # one more\n")
    assert mp.dedup_key(base) != mp.dedup_key("def f(a):\n    return a + 2\n")
    broken = "def f(a):\n    return a +\n"
    assert mp.dedup_key(broken) == mp.dedup_key("def f(a):   # x\n\n    return a +   \n")
    assert mp.dedup_key(broken) != mp.dedup_key("def f(b):\n    return a +\n")
    kept, dropped = mp.deduplicate([{"problem_id": "p", "code": base, "n": 1}, {"problem_id": "q", "code": base, "n": 2},
                                    {"problem_id": "p", "code": "def f(a):\n    return a+1 # x\n", "n": 3}])
    assert [c["n"] for c in kept] == [1, 2] and dropped == {"p": 1}


# ----------------------------------------------------------------------------------------------------------
# Pairs

def cand(pid, code, verdict, pass_rate):
    return {"problem_id": pid, "code": code, "verdict": verdict, "pass_rate": pass_rate}


FIXTURE = [cand("p1", "good0", "passed", 1.0), cand("p1", "bad0", "failed", 0.5), cand("p1", "good1", "passed", 1.0),
           cand("p1", "bad1", "timeout", 0.0), cand("p1", "bad2", "syntax_error", 0.0),
           cand("p2", "only_bad", "runtime_error", 0.25), cand("p3", "only_good", "passed", 1.0)]
QUESTIONS = {"p1": "Q1", "p2": "Q2", "p3": "Q3"}


def test_pairs_without_a_cap_are_all_chosen_x_rejected():
    pairs = mp.build_pairs(QUESTIONS, FIXTURE, 100, seed=0)
    assert {(p["code_pos"], p["code_neg"]) for p in pairs} == {(g, b) for g in ("good0", "good1")
                                                               for b in ("bad0", "bad1", "bad2")}
    assert len(pairs) == 6 and {p["problem_id"] for p in pairs} == {"p1"}  # p2, p3 have no pair
    bad0 = next(p for p in pairs if p["code_neg"] == "bad0")
    assert bad0 == {"question_content": "Q1", "code_pos": bad0["code_pos"], "code_neg": "bad0",
                    "problem_id": "p1", "neg_pass_rate": 0.5, "neg_verdict": "failed"}


def test_capped_pairs_spread_over_both_sides_and_are_seeded():
    pairs = mp.build_pairs(QUESTIONS, FIXTURE, 4, seed=0)
    picked = [(p["code_pos"], p["code_neg"]) for p in pairs]
    assert len(set(picked)) == 4
    assert sorted(c for c, _ in picked) == ["good0", "good0", "good1", "good1"]
    assert {r for _, r in picked} == {"bad0", "bad1", "bad2"}  # then the least-used pair first
    assert picked == [(p["code_pos"], p["code_neg"]) for p in mp.build_pairs(QUESTIONS, FIXTURE, 4, seed=0)]
    assert picked == [("good0", "bad1"), ("good1", "bad0"), ("good1", "bad2"), ("good0", "bad0")]
    assert mp.select_pairs(1, 20, 5, __import__("random").Random(0)) == [(0, j) for j in (10, 18, 16, 14, 0)]
