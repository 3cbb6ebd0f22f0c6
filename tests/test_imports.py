"""The top-level modules import each other without a cycle, counting imports inside functions too: each file
can be read knowing only the files below it."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_graph() -> dict[str, set[str]]:
    """Top-level module -> the top-level modules it imports anywhere in its source."""
    modules = {f[:-3] for f in os.listdir(ROOT) if f.endswith(".py")}
    graph = {}
    for name in modules:
        with open(os.path.join(ROOT, name + ".py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        graph[name] = (imported & modules) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_between_top_level_modules():
    graph = import_graph()
    assert {"model", "generate", "demo", "reward", "train_rl"} <= set(graph)
    assert "generate" in graph["demo"] and "model" in graph["generate"]
    assert "generate" not in graph["model"]
    assert find_cycle(graph) is None, find_cycle(graph)
