"""mutate.py: every mutation operator on a hand-written site, the entry point's body as the only target,
seeded round-robin sampling of distinct mutants, and the dedup key."""
import ast

import pytest

import mutate


def mutated(code, operator, entry_point="f"):
    return [mutate.apply_mutation(code, entry_point, m) for m in mutate.mutation_sites(code, entry_point)
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
     [f("if a:\n    return b if a else 2\nelse:\n    return 1"),
      f("if a:\n    return 1\nelse:\n    return 2 if a else b")]),
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
     [f("for x in a:\n    if x:\n        break\n    break"),
      f("for x in a:\n    if x:\n        continue\n    continue")]),
])
def test_operator(operator, source, expected):
    assert mutated(source, operator) == expected


def test_only_the_entry_point_body_is_mutated_and_the_docstring_is_kept():
    code = ('import math\n\ndef helper(x):\n    return x + 1\n\n'
            'def f(a):\n    """Add 1 to a, e.g. f(1) == 2."""\n    return helper(a) # note\n')
    rendered = mutate.render(ast.parse(code))
    assert rendered == ('import math\n\ndef helper(x):\n    return x + 1\n\n'
                        'def f(a):\n    """Add 1 to a, e.g. f(1) == 2."""\n    return helper(a)\n')
    outs = [mutate.apply_mutation(rendered, "f", m) for m in mutate.mutation_sites(rendered, "f")]
    head = 'import math\n\ndef helper(x):\n    return x + 1\n\ndef f(a):\n    """Add 1 to a, e.g. f(1) == 2."""\n'
    assert outs and all(o.startswith(head) for o in outs)
    assert {o[len(head):] for o in outs} == {"    return None\n", "    return a\n", "    return 0\n", ""}  # "": dropped


def test_mutants_are_distinct_deterministic_and_spread_over_operators():
    code = mutate.render(ast.parse(
        "def f(xs, k):\n    total = 0\n    for i in range(len(xs) - 1):\n        if xs[i] < k and xs[i + 1] != 0:\n"
        "            total += xs[i] * 2\n    return max(total, 0) if total else -1\n"))
    a, b = mutate.mutants(code, "f", 10, "0/p"), mutate.mutants(code, "f", 10, "0/p")
    assert a == b and len(a) == 10
    assert len({mutate.dedup_key(c) for _, c in a} | {mutate.dedup_key(code)}) == 11
    assert len({m.operator for m, _ in a}) == 10  # round-robin: the first 10 come from 10 different operators
    assert mutate.mutants(code, "f", 10, "1/p") != a
    everything = mutate.mutants(code, "f", 1000, "0/p")
    assert len(everything) < len(mutate.mutation_sites(code, "f"))  # equal mutants (e.g. index vs constant) kept once


def test_dedup_key_ignores_whitespace_and_comments_only():
    base = "def f(a):\n    return a + 1\n"
    assert mutate.dedup_key(base) == mutate.dedup_key("# hi\ndef f( a ):\n\n    return (a+1)  # one more\n")
    assert mutate.dedup_key(base) != mutate.dedup_key("def f(a):\n    return a + 2\n")
    broken = "def f(a):\n    return a +\n"
    assert mutate.dedup_key(broken) == mutate.dedup_key("def f(a):   # x\n\n    return a +   \n")
    assert mutate.dedup_key(broken) != mutate.dedup_key("def f(b):\n    return a +\n")
