"""extract.py: the fence scanner's edge cases in strict and last mode, the flags, and the syntax checks
(Python against ast.parse, C++ and Java through tree-sitter).

Run: python -m pytest -q tests/test_extract.py
"""
import ast
import re
import warnings

import pytest

from extract import CodeBlock, SyntaxCheck, check_syntax, extract_code, find_code_blocks, remove_think

def both(response, **kw):
    """(strict, last) extraction of `response`."""
    return extract_code(response, mode="strict", **kw), extract_code(response, mode="last", **kw)


# -----------------------------------------------------------------------------
# Fence scanner: each documented edge case, exact strings in strict and last mode

CASES = [
    # (name, response, strict, last)
    ("one block with prose around",
     "Here is my solution.\n```python\ndef f(x):\n    return x + 1\n```\nIt adds one.\n",
     "def f(x):\n    return x + 1", "def f(x):\n    return x + 1"),
    ("no block", "The answer is x + 1.", "", ""),
    ("two blocks", "```python\nx = 1\n```\nor\n```python\nx = 2\n```", "", "x = 2"),
    ("body is stripped", "```python\n\n   x = 1   \n\n```", "x = 1", "x = 1"),
    ("invalid python", "```python\ndef f(:\n    pass\n```", "", "def f(:\n    pass"),
    ("fence with no tag", "```\nprint(1)\n```", "print(1)", "print(1)"),
    ("other tag, python code", "```text\nprint(1)\n```", "print(1)", "print(1)"),
    ("other tag, not python", "```text\n3 4\n7\n```", "", "3 4\n7"),
    ("tag case and trailing spaces", "```Python  \t\nx = 1\n```  ", "x = 1", "x = 1"),
    ("info string after the tag", "```python title=sol.py\nx = 1\n```", "x = 1", "x = 1"),
    ("CRLF line ends", "Code:\r\n```python\r\nx = 1\r\ny = 2\r\n```\r\nDone.\r\n",
     "x = 1\ny = 2", "x = 1\ny = 2"),
    ("unclosed fence", "```python\nx = 1\n", "", ""),
    ("unclosed fence after a closed one (truncated)", "```python\nx = 1\n```\nBetter:\n```python\ny = (",
     "x = 1", "x = 1"),
    ("closing fence glued to the code line closes (authors)", "```python\nx = 1```", "x = 1", "x = 1"),
    # The issue's cases: what real chat answers look like around the fences.
    ("closing fence then prose on its line", "```python\nx = 1\n``` That's it.", "x = 1", "x = 1"),
    ("closing fence then a full stop", "```python\nx = 1\n```.", "x = 1", "x = 1"),
    ("closing fence then </think>", "<think>\n```python\nx = 1\n```</think>\n\nDone.", "x = 1", "x = 1"),
    ("closing fence then the stop token's text", "```python\nx = 1\n```<|im_end|>", "x = 1", "x = 1"),
    ("opening fence after text on its line", "Text before ```python\ninline = True\n``` text after",
     "inline = True", "inline = True"),
    ("a stray inline fence in a think section keeps the pairing",
     "<think>\nLet me write:```python\nx=0\n```\n</think>\n\n```python\nx=1\n```", "", "x=1"),
    ("glued fences close one block and open the next", "```python\na = 1\n``````python\nb = 2\n```",
     "", "b = 2"),
    ("glued fences after prose", "Here:``````python\nx = 1\n```", "x = 1", "x = 1"),
    ("six backticks alone open at their last three", "``````\nx = 1\n```", "x = 1", "x = 1"),
    ("triple backticks in a string", '```python\ns = "```"\nprint(s)\n```',
     's = "```"\nprint(s)', 's = "```"\nprint(s)'),
    ("single backticks in a string", "```python\nprint('`a`', \"`\")\n```",
     "print('`a`', \"`\")", "print('`a`', \"`\")"),
    ("a line starting with ``` inside code ends the block",
     "```python\nmd = '''\n```\n'''\n```", "", "md = '''"),
    ("empty block", "```python\n```", "", ""),
    ("whitespace-only block", "```python\n  \n\t\n```", "", ""),
    ("inline triple backticks in prose are no fence", "Use ```x = 1``` here.\n```python\ny = 2\n```",
     "y = 2", "y = 2"),
    ("four-backtick fence holds a three-backtick one",
     "````markdown\n```python\nx = 1\n```\n````", "", "```python\nx = 1\n```"),
    ("four-backtick python fence", "````python\nx = 1\n````", "x = 1", "x = 1"),
    ("longer closing fence closes", "```python\nx = 1\n`````", "x = 1", "x = 1"),
    ("indented fence in a list item", "1. Code:\n   ```python\n   x = 1\n   if x:\n       y = 2\n   ```\n",
     "x = 1\nif x:\n    y = 2", "x = 1\nif x:\n    y = 2"),
    ("a tagged fence line closes (authors)", "```python\nx = 1\n```python\ny = 2\n```", "x = 1", "x = 1"),
    # The price of agreeing with the authors: ``` in a comment ends the block when the code before it parses.
    ("triple backticks in a comment end the block if the code before parses",
     "```python\nx = 1  # see ```\ny = (x +\n     1)\n```\nDone.", "x = 1  # see", "x = 1  # see"),
    ("triple backticks in a comment, code before does not parse",
     "```python\ny = (x +  # see ```\n     1)\n```\nDone.", "y = (x +  # see ```\n     1)",
     "y = (x +  # see ```\n     1)"),
    ("tilde fences are not fences", "~~~python\nx = 1\n~~~", "", ""),
    ("fences inside think count by default",
     "<think>\nMaybe\n```python\nx = 0\n```\n</think>\nFinal:\n```python\nx = 1\n```", "", "x = 1"),
]


@pytest.mark.parametrize("name,response,strict,last", CASES, ids=[c[0] for c in CASES])
def test_edge_cases(name, response, strict, last):
    assert both(response) == (strict, last)


def test_find_code_blocks_fields():
    text = "Intro\n```Python\nx = 1\n```\n  ```\ny\n  ```\n````c++ main.cpp\nint x;\n````"
    assert find_code_blocks(text, "forgiving") == [
        CodeBlock("python", "x = 1\n", 6, 25), CodeBlock("", "y\n  ", 28, 39),
        CodeBlock("c++", "int x;\n", 40, 68)]
    # The authors' regex: "c++ main.cpp" is no \w tag, so the four-backtick fence opens nothing there.
    assert [(b.language, b.body) for b in find_code_blocks(text)] == [("python", "x = 1\n"), ("", "y\n  ")]
    with pytest.raises(ValueError):
        find_code_blocks(text, "markdown")


# -----------------------------------------------------------------------------
# The authors' regex as the oracle, on generated responses


def authors_blocks(text):
    """The authors' extraction, verbatim: re.findall on the raw response."""
    return re.findall(r"```(?:\w+)?\n(.*?)```", text, re.DOTALL)


def parses(code):
    try:
        ast.parse(code)
        return code != ""
    except (SyntaxError, ValueError):
        return False


def authors_strict(text):
    blocks = authors_blocks(text)
    return blocks[0].strip() if len(blocks) == 1 and parses(blocks[0].strip()) else ""


def authors_last(text):
    blocks = authors_blocks(text)
    return blocks[-1].strip() if blocks else ""


CODES = ["def add(a, b):\n    return a + b", "x = 1", "import sys\nprint(sys.stdin.read())",
         "def f(s):\n    return s.count('a')\n\nprint(f('banana'))", "def g(:\n    pass", "for i in range(3:",
         "class A:\n    def m(self):\n        return [i * i for i in range(3)]", "", "   ", "return x"]
PROSE = ["", "Here is the code:", "Sure! ", "Let me write:", "The answer", "Use `x` here.", "Note: ``` is a fence.",
         "1. Step one\n2. Step two", "Done.", "That's it.", "</think>", "<think>\nHmm.\n</think>\n\n"]
TAGS = ["python", "py", "python3", "", "Python", "text", "cpp"]
OPENERS = ["```{tag}\n", "```{tag}\n", "```{tag}\n", " ```{tag}\n", "\n```{tag}\n", "``````{tag}\n"]
CLOSERS = ["```", "\n```", "\n```\n", "\n``` That's it.", "\n```.", "\n```</think>", "```\n\n", "\n````",
           ""]  # "" leaves the block unclosed


def random_response(rng):
    """Prose and fenced blocks in the shapes chat and thinking models emit, glued in random ways."""
    parts = []
    for _ in range(rng.randint(0, 3)):
        parts.append(rng.choice(PROSE) + rng.choice(["", "\n", "\n\n", " "]))
        if rng.random() < 0.85:
            parts.append(rng.choice(OPENERS).format(tag=rng.choice(TAGS)) + rng.choice(CODES) + rng.choice(CLOSERS))
        if rng.random() < 0.2:
            parts.insert(0, "<think>\n" + rng.choice(PROSE) + "\n</think>\n\n")
    return "".join(parts)


def test_agrees_with_authors_regex_wherever_it_extracts_parsable_code():
    import random
    rng = random.Random(0)
    responses = [random_response(rng) for _ in range(3000)]
    checked = {"strict": 0, "last": 0}
    for r in responses:
        strict = authors_strict(r)
        if strict:
            assert extract_code(r, "strict") == strict, r
            checked["strict"] += 1
        elif len(authors_blocks(r)) > 1:
            assert extract_code(r, "strict") == "", r  # multi-block stays invalid
        last = authors_last(r)
        if parses(last):
            assert extract_code(r, "last") == last, r
            checked["last"] += 1
    # The generator must exercise both modes, or the property says nothing.
    assert checked["strict"] > 500 and checked["last"] > 1000, checked


def test_agrees_with_authors_regex_on_ordinary_responses():
    responses = [c[1] for c in CASES[:8]] + [
        "<think>\nok\n</think>\n\n```python\nimport sys\nprint(sys.stdin.read())\n```\n",
        "```python\nfor i in range(3):\n    print(i)\n```\n\n```\n0\n1\n2\n```\n",
        "```py\nx = (\n```\n",
    ]
    for r in responses:
        assert extract_code(r) == authors_strict(r), r


# -----------------------------------------------------------------------------
# Flags

MIXED = "```python\nprint(sum(map(int, input().split())))\n```\nFor input `1 2` it prints:\n```text\n3\n```"


def test_count_all_blocks():
    code = "print(sum(map(int, input().split())))"
    assert both(MIXED) == ("", "3")  # the authors' rule: the text block counts and is the last block
    assert both(MIXED, count_all_blocks=False) == (code, code)
    # Untagged blocks always count; aliases count as the target language.
    untagged = "```\nx = 1\n```\n```py\ny = 2\n```"
    assert both(untagged, count_all_blocks=False) == ("", "y = 2")
    assert both("```python3\nx = 1\n```\n```cpp\nint x;\n```", count_all_blocks=False) == ("x = 1", "x = 1")
    # Only a block of another language: nothing to extract when filtering.
    assert both("```cpp\nint x;\n```", count_all_blocks=False) == ("", "")
    assert both("```cpp\nint x;\n```", language="c++", count_all_blocks=False) == ("int x;", "int x;")
    assert both("```cc\nint x;\n```\n```java\nclass A {}\n```", language="cpp",
                count_all_blocks=False) == ("int x;", "int x;")


def test_ignore_think():
    closed = "<think>\nMaybe\n```python\nx = 0\n```\n</think>\nFinal:\n```python\nx = 1\n```"
    assert both(closed) == ("", "x = 1")
    assert both(closed, ignore_think=True) == ("x = 1", "x = 1")
    # Qwen3 with thinking: the template opened <think>, the response only closes it.
    mid = "Try:\n```python\nx = 0\n```\nNo, better:\n</think>\n\n```python\nx = 1\n```"
    assert both(mid) == ("", "x = 1")
    assert both(mid, ignore_think=True) == ("x = 1", "x = 1")
    # Unclosed <think> (truncated while thinking): everything after it is dropped.
    unclosed = "```python\nx = 1\n```\n<think>\nAlso:\n```python\nx = 2\n```"
    assert both(unclosed) == ("", "x = 2")
    assert both(unclosed, ignore_think=True) == ("x = 1", "x = 1")
    # A response that is all thought has no answer.
    assert both("<think>\n```python\nx = 1\n```\n", ignore_think=True) == ("", "")


def test_remove_think():
    assert remove_think("a<think>b</think>c<think>d</think>e") == "ace"
    assert remove_think("thinking</think>answer") == "answer"
    assert remove_think("a<think>b") == "a"
    assert remove_think("<think>b</think>c</think>d") == "c</think>d"  # a stray close after a pair stays
    assert remove_think("no tags") == "no tags"


def test_other_languages_in_strict_mode():
    cpp = "```cpp\n#include <cstdio>\nint main() { printf(\"%d\", 1); }\n```"
    assert extract_code(cpp, language="cpp") == "#include <cstdio>\nint main() { printf(\"%d\", 1); }"
    assert extract_code(cpp) == ""  # checked as Python by default
    assert extract_code("```cpp\nint main() { return 0 }\n```", language="cpp") == ""
    java = "```java\nclass A { int f() { return 1; } }\n```"
    assert extract_code(java, language="java") == "class A { int f() { return 1; } }"
    assert extract_code("```java\nclass A { int f() { return 1 } }\n```", language="java") == ""


def test_bad_arguments():
    with pytest.raises(ValueError):
        extract_code("x", mode="first")
    with pytest.raises(ValueError):
        check_syntax("x", language="rust")


# -----------------------------------------------------------------------------
# Python: the verdict is ast.parse's

# (snippet, verdict on every Python >= 3.11, or None where the grammar changed between versions)
PYTHON = [
    ("x = 1", True),
    ("", True),
    ("# only a comment", True),
    ("def f(a, b=2, *args, c, **kw):\n    return a", True),
    ("print(f'{x!r:>10} {y=}')", True),
    ("if (n := len(a)) > 10:\n    print(n)", True),
    ("match cmd:\n    case [x, y, *rest]:\n        pass\n    case {'k': v} | Point(x=0):\n        pass\n"
     "    case _:\n        pass", True),
    ("match = 1\ncase = 2", True),  # soft keywords
    ("async def f():\n    async with a as b:\n        await g()", True),
    ("class A(B, metaclass=M):\n    x: int = 0\n    @property\n    def y(self): ...", True),
    ("try:\n    pass\nexcept* ValueError:\n    pass", True),
    ("lambda: (yield)", True),
    ("x = '\\d'", True),  # invalid escape: a warning, not an error
    ("x = 1\r\ny = 2\r\n", True),
    ("x = 1\ry = 2", True),
    ('s = "```"', True),
    # Compiler errors, not parser errors: ast.parse accepts them.
    ("return 1", True),
    ("break", True),
    ("yield x", True),
    ("await x", True),
    ("nonlocal x", True),
    ("def f(x, x): pass", True),
    ("*a = 1", True),
    ("f(a=1, a=2)", True),
    ("from __future__ import braces", True),
    # Parser errors.
    ('print "x"', False),
    ("exec 'code'", False),
    ("def f(:\n    pass", False),
    ("foo(1,\n2", False),
    ("x = [1, 2", False),
    ("print(1))", False),
    ("if x:\npass", False),
    ("  x = 1", False),
    ("x = 1\n  y = 2", False),
    ("if True:\n\tx = 1\n        y = 2", False),  # TabError
    ("class A\n    pass", False),
    ("else:\n    pass", False),
    ("x := 1", False),
    ("f(x for x in y, 1)", False),
    ("f(**x, *y)", False),
    ("1 = x", False),
    ("del f()", False),
    ("True = 1", False),
    ("x = 'unterminated", False),
    ('"""never closed', False),
    ("f'{'", False),
    ("0777", False),
    ("a = b ?? c", False),
    ("import", False),
    ("x = 1\0", False),  # NUL byte: SyntaxError or ValueError depending on the version
    ("x = '\ud800'", False),  # lone surrogate: UnicodeEncodeError
    ("(" * 100000, False),  # too many nested parentheses
    ("-" * 100000 + "1", False),  # MemoryError / RecursionError in the parser
    ("a." * 100000 + "b", False),  # RecursionError while building the AST
    # Grammar that changed: 3.12 allows nested quotes in f-strings and type statements.
    ('f"{"a"}"', None),
    ("type X = int", None),
    ("def f[T](x: T) -> T: return x", None),
]


def ast_parses(code):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
        return True
    except Exception:
        return False


@pytest.mark.parametrize("code,expected", PYTHON, ids=[repr(c[:30]) for c, _ in PYTHON])
def test_python_verdict_is_ast_parse(code, expected):
    result = check_syntax(code)
    assert result.ok == ast_parses(code)
    if expected is not None:
        assert result.ok == expected
    if result.ok:
        assert (result.line, result.column, result.message) == (None, None, "")
    else:
        assert result.message


def test_python_verdict_ignores_warning_filters():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as under `python -W error`
        assert check_syntax("x = '\\d'\ny = 'a' is 'a'").ok


@pytest.mark.parametrize("code,line,column", [
    ("x = [1, 2", 1, 5),              # '[' was never closed
    ("def f():\nreturn 1", 2, 1),     # expected an indented block
    ("x = 1\n  y = 2", 2, 2),         # unexpected indent (where CPython points)
    ("print(1))", 1, 9),              # unmatched ')'
    ("é = ]", 1, 5),                  # columns count characters, not UTF-8 bytes
    ("x = 1\ny = 2\0", 2, 6),         # NUL: located directly
])
def test_python_error_location(code, line, column):
    result = check_syntax(code)
    assert (result.ok, result.line, result.column) == (False, line, column)


def test_python_location_when_ast_gives_none():
    assert check_syntax("-" * 100000 + "1").line is None  # tree-sitter accepts it: no location to give
    result = check_syntax("x = '\ud800'")
    assert not result.ok and result.message.startswith("UnicodeEncodeError")


# -----------------------------------------------------------------------------
# C++ and Java: the verdict is tree-sitter's

CPP = [
    ("#include <bits/stdc++.h>\nusing namespace std;\nint main() {\n    int n; cin >> n;\n"
     "    vector<long long> a(n);\n    for (auto &x : a) cin >> x;\n"
     "    cout << accumulate(a.begin(), a.end(), 0LL) << endl;\n    return 0;\n}", True),
    ("template <typename T>\nT best(const vector<T>& v) { return *max_element(v.begin(), v.end()); }", True),
    ("auto f = [](int x) { return x * 2; };\nstruct P { int x, y; };", True),
    ("int main() { return 0 }", False),
    ("int main( {", False),
    ("int main() {\n    return 0;\n", False),
    ("def f():\n    return 1", False),
    ("int x = = 1;", False),
]

JAVA = [
    ("import java.util.*;\npublic class Main {\n    public static void main(String[] args) {\n"
     "        Scanner sc = new Scanner(System.in);\n        List<Integer> a = new ArrayList<>();\n"
     "        a.forEach(x -> System.out.println(x));\n    }\n}", True),
    ("class A<T extends Comparable<T>> { T max(T a, T b) { return a.compareTo(b) > 0 ? a : b; } }", True),
    ("class A { void f() { int x = 1 } }", False),
    ("public class Main {\n    void f() {}\n", False),
    ("def f(): pass", False),
]


@pytest.mark.parametrize("code,ok", CPP, ids=[f"cpp{i}" for i in range(len(CPP))])
def test_cpp(code, ok):
    assert check_syntax(code, "cpp").ok == ok
    assert check_syntax(code, "c++").ok == ok


@pytest.mark.parametrize("code,ok", JAVA, ids=[f"java{i}" for i in range(len(JAVA))])
def test_java(code, ok):
    assert check_syntax(code, "java").ok == ok


def test_tree_sitter_error_location():
    assert check_syntax("int main() { return 0 }", "cpp") == SyntaxCheck(False, 1, 22, "missing ';'")
    java = "class A {\n  void f() { int x = 1 }\n}"
    assert check_syntax(java, "java") == SyntaxCheck(False, 2, 23, "missing ';'")
    result = check_syntax("// é\nint x = é;;\nint y = ;", "cpp")  # columns count characters
    assert (result.ok, result.line, result.column) == (False, 3, 7)


@pytest.mark.parametrize("language", ["python", "cpp", "java"])
@pytest.mark.parametrize("code", ["(" * 100000, "{" * 100000, "[" * 50000 + "]" * 50000])
def test_deep_nesting_is_invalid_not_a_crash(language, code):
    assert not check_syntax(code, language).ok


def test_deep_nesting_in_a_response():
    assert both("```python\n" + "(" * 100000 + "\n```") == ("", "(" * 100000)


def test_many_fences_scan_in_linear_time():
    # The authors' rule pairs them into 25,000 blocks of "x"; strict mode stops there, last takes the last.
    assert both("```python\nx\n" * 50000) == ("", "x")
    # Unparsable blocks send every block through rule 2's repairs: still one parse per candidate.
    assert both("```\n(\n" * 50000) == ("", "(")


def test_checking_never_runs_the_code():
    assert check_syntax("import os\nos._exit(3)").ok  # we are still here

