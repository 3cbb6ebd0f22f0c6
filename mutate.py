"""AST mutation of reference solutions: the bug generator behind the bundled preference pairs.

The paper's rejected programs are a policy's failing RL rollouts; with no model to sample from, make_pairs.py
stands in for them with single-edit mutants of each HumanEval reference solution. One mutation is one operator
applied at one AST node of the entry-point function's body (its docstring is never touched):

    compare           a < b -> a <= b or a > b; == <-> !=, in <-> not in, is <-> is not
    arithmetic        + <-> -, * <-> //, / and % -> //, ** -> *, & <-> |, ^ -> |, << <-> >>
    boolean           and <-> or
    range_bound       either bound of range(...) moved by one: range(1, n - 1) -> range(2, ...), range(1, n)
    index             a[i] -> a[i + 1] or a[i - 1]; each slice bound moved by one
    swap_branches     the two branches of an if/else statement or of a conditional expression
    negate_condition  `not` added to (or removed from) an if/while test, a ternary, a comprehension filter
    swap_arguments    the first two arguments of a call; the operands of -, /, //, %, **
    drop_statement    one statement removed (a block left empty gets `pass`)
    return_value      return x -> return None, return <the first parameter>, return 0
    constant          an int moved by one (n - 1 as a whole: n, n - 2), a bool flipped, a string emptied
    swap_name         min <-> max, any <-> all, lower <-> upper, startswith <-> endswith, find <-> rfind
    loop_control      break <-> continue

`mutants(code, entry_point, n, seed)` draws up to n distinct mutants, round-robin over the operators so that
every kind of bug is represented, each operator's sites shuffled by a seeded RNG: the same call gives the
same mutants on any machine. Every program is written out by `render` (ast.unparse), so a mutant differs from
its reference only in the edit, never in formatting. `dedup_key` says when two programs are the same up to
whitespace and comments. Whether a mutant is a bug is decided by running it (make_pairs.py), not here: a
mutant that still passes every test is a correct program.

    python -c "import mutate; print(mutate.mutants('def f(a):\\n    return a + 1\\n', 'f', 3, 0))"
"""
import ast
import copy
import io
import random
import tokenize
from collections import defaultdict
from dataclasses import dataclass

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
