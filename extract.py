r"""Syntax-aware code extraction from model responses (CodeScaler, arXiv 2602.17684; METHOD.md section 3).

The paper's rule, used for rewards during RL (mode="strict"):
    find the markdown fenced code blocks; if there is not exactly one, the code is ""; otherwise strip the
    block's body and check its syntax (the authors use Python's `ast.parse`); code that does not parse is "".
The evaluation rule (mode="last"): the body of the last block, stripped, with no count and no syntax check.
The reward model then scores `softplus(RM(q, code))`, or 0 when the code is "" (see reward.py).

Finding blocks: the authors' rule first, a forgiving scan only where it finds no parsable code.
  1. The authors' rule, exactly: `re.finditer(r"```(\w*)\n(.*?)```", text, re.DOTALL)`, their regex
     `(?:\w+)?` written as `\w*` (the same matches). An opening fence is three backticks, an optional word
     tag and a newline, anywhere in a line ("Text before ```python\n" opens a block); the body runs to the
     next three backticks, wherever they are ("``` That's it.", "```.", "```</think>" close it); the scan
     goes on after them, so a stray inline fence ("Let me write:```python" inside a think section) opens a
     block of its own instead of shifting the pairing of later fences, and glued fences ("``````python")
     open at their last three backticks. Whenever this rule gives code that parses, that code is returned:
     on such responses we agree with the authors exactly (tests/test_extract.py checks it against the
     regex itself on thousands of generated responses).
  2. The forgiving scan, used only when rule 1 gives no parsable code: no block or an unparsable one (in
     strict mode, two or more blocks by rule 1 give "" without a second look: a multi-block answer stays
     one). Each difference gives the code the response evidently meant:
     * CRLF line ends work (both rules see "\n": the regex finds no block at all in a CRLF response).
     * Tags are any info string without backticks ("c++", "Python  ", "python title=sol.py"); the tag is
       its first word, lowercased. The authors' regex does not open such a fence and may then pair the
       closing fence with the next one, extracting the prose in between.
     * A fence of N > 3 backticks is closed only by N or more (markdown: a ````markdown block may hold
       ``` lines); the authors' regex closes it at the first three.
     * Backticks inside the code: when the body up to the first ``` (a string or comment holding ```,
       or `x = 1```) does not parse but the body up to the first line holding only backticks does, the
       block ends at that line (`s = "```"` stays in the code). The price of agreeing with the authors:
       when the code before such backticks parses (`x = 1  # see ```...`), the block ends there.
     * An indented fence (a block inside a list item): when the body does not parse as written, the
       opening fence's indentation is removed from every body line and it is tried again.
  Lenient mode returns the first parsable candidate (rule 1's last block, then rule 2's), else the first
  non-empty one. An unclosed fence (a truncated response) is never a block. Tilde fences are not fences.
  An empty block (or one of only whitespace) gives "" in strict mode: empty code is invalid.

Flags of `extract_code`:
- count_all_blocks=True (the authors' behaviour): every block counts toward "exactly one", whatever its tag.
  False: only blocks tagged with the target language (or an alias: py/python3, c++/cc/cxx) or untagged
  count, and only such a block is extracted, in either mode.
- ignore_think=False (the authors' behaviour): fences inside a <think>...</think> section count too.
  True: think sections are removed first (`remove_think`): each <think>...</think>; an unclosed <think> up to
  the end (an unfinished thought is no answer); and, when the response opens mid-thought (Qwen3's template
  already wrote <think>, so the response has a </think> with no <think> before it), everything up to that
  first </think>.

Responses must reach this module as text with the stop token cut off and no special tokens
(`Tokenizer.decode_responses`): a `<|im_end|>` left after the closing fence is harmless to rule 1 but is
text that no rule should have to know about.

Syntax checks (`check_syntax`): Python's verdict is `ast.parse`'s, as the authors did. That is the parser
only: `return` or `break` outside a function/loop, `nonlocal x` at module level, `await` outside async, `*a = 1`
and duplicate arguments are compiler errors, so they pass. The verdict follows the running interpreter's
grammar (3.12 accepts `type X = int`, 3.11 does not). ast.parse never executes the code; warnings (invalid
escapes) are silenced so `-W error` cannot turn them into a verdict; any exception (SyntaxError,
RecursionError, MemoryError, ValueError from NUL bytes or lone surrogates) means invalid. The location comes
from the SyntaxError, else from tree-sitter. C++ and Java use tree-sitter: any ERROR or MISSING node means
invalid, and it gives the location. Each tree-sitter Parser is built once per process, lazily (py-tree-sitter
holds the GIL while parsing, so threads take turns; a free-threaded build would want one per thread).
"""
import ast
import functools
import importlib
import re
import warnings
from dataclasses import dataclass

from tree_sitter import Language, Parser

# Tag (lowercased) -> language name understood by `check_syntax`.
LANGUAGE_OF_TAG = {"python": "python", "py": "python", "python3": "python",
                   "cpp": "cpp", "c++": "cpp", "cc": "cpp", "cxx": "cpp", "java": "java"}

# Rule 1, the authors' regex: re.findall(r"```(?:\w+)?\n(.*?)```", text, re.DOTALL), with named groups.
AUTHORS_BLOCK = re.compile(r"```(?P<tag>\w*)\n(?P<body>.*?)```", re.DOTALL)
# Rule 2's opening fence: a run of backticks, an info string without backticks, the end of the line.
_FORGIVING_OPEN = re.compile(r"(?P<fence>`{3,})(?P<info>[^`\n]*)\n")
_FENCE_ONLY_LINE = re.compile(r"^[ \t]*`{3,}[ \t]*$", re.MULTILINE)
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL)


@dataclass
class CodeBlock:
    language: str  # the tag, lowercased; "" when the fence has none
    body: str      # the text between the fences, not stripped ("\n" line ends, rule 2 may have dedented it)
    start: int     # text[start:end] runs from the opening fence's first backtick ...
    end: int       # ... to just after the closing fence's last backtick


@dataclass
class SyntaxCheck:
    ok: bool
    line: int | None    # 1-based position of the first error; None when ok or unknown
    column: int | None  # 1-based, in characters
    message: str        # "" when ok


# -----------------------------------------------------------------------------
# Finding blocks


def find_code_blocks(text: str, rule: str = "authors", language: str = "python") -> list[CodeBlock]:
    """All closed fenced blocks of `text` (LF line ends) by rule 1 ("authors") or rule 2 ("forgiving"),
    in order; `language` is the one rule 2's repairs try to make parse. See the module docstring."""
    if rule == "authors":
        return [CodeBlock(m["tag"].lower(), m["body"], m.start(), m.end()) for m in AUTHORS_BLOCK.finditer(text)]
    if rule != "forgiving":
        raise ValueError(f"rule must be 'authors' or 'forgiving', got {rule!r}")
    language, blocks, pos = _language(language), [], 0
    while (opening := _FORGIVING_OPEN.search(text, pos)) is not None:
        width = len(opening["fence"])
        body_start = opening.end()
        close = re.compile(f"`{{{width},}}").search(text, body_start)
        if close is None:
            break  # unclosed: a truncated response has no block there
        line_start = text.rfind("\n", 0, opening.start()) + 1
        indent = text[line_start:opening.start()]
        indent = len(indent) if indent.strip(" \t") == "" else 0  # only a fence alone on its line is indented
        body, end = _repair(text, body_start, close, width, indent, language)
        info = opening["info"].split()
        blocks.append(CodeBlock(info[0].lower() if info else "", body, opening.start(), end))
        pos = end
    return blocks


def _repair(text: str, body_start: int, close: re.Match, width: int, indent: int, language: str):
    """Rule 2's body of a block: the text up to `close`, unless it does not parse and a repair does
    (dedent by the fence's indentation; end at the first fence-only line instead). Returns (body, end).
    A closing run longer than the fence gives back its extra backticks, so glued fences (``````python)
    close one block and open the next, as under the authors' rule."""
    body = text[body_start:close.start()]
    candidates = [(body, close.start() + width)]
    line = _FENCE_ONLY_LINE.search(text, text.rfind("\n", 0, close.start()) + 1)
    if line is not None and line.start() > close.start():  # the first ``` sits inside a code line
        candidates.append((text[body_start:line.start()], line.end()))
    for candidate, end in candidates:
        for variant in (candidate, _dedent(candidate, indent)) if indent else (candidate,):
            if _parses(variant.strip(), language):
                return variant, end
    return body, close.start() + width


def _dedent(body: str, width: int) -> str:
    """Remove up to `width` leading spaces/tabs from each line (the opening fence's indentation)."""
    return "\n".join(line[min(width, len(line) - len(line.lstrip(" \t"))):] for line in body.split("\n"))


def remove_think(text: str) -> str:
    """Drop think sections: a leading part closed by </think> with no <think> before it (the chat
    template opened it), every <think>...</think>, and an unclosed <think> up to the end."""
    head, sep, tail = text.partition("</think>")
    if sep and "<think>" not in head:
        text = tail
    return _THINK.sub("", text)


def _language(name: str) -> str:
    if name.lower() not in LANGUAGE_OF_TAG:
        raise ValueError(f"unsupported language {name!r}; expected one of {sorted(LANGUAGE_OF_TAG)}")
    return LANGUAGE_OF_TAG[name.lower()]


def extract_code(response: str, mode: str = "strict", language: str = "python",
                 count_all_blocks: bool = True, ignore_think: bool = False) -> str:
    """The code of `response` by the strict (training) or last (evaluation) rule; "" on failure."""
    if mode not in ("strict", "last"):
        raise ValueError(f"mode must be 'strict' or 'last', got {mode!r}")
    language = _language(language)
    text = response.replace("\r\n", "\n")
    if ignore_think:
        text = remove_think(text)
    candidates = []
    for rule in ("authors", "forgiving"):  # rule 2 only where rule 1 finds no parsable code
        blocks = find_code_blocks(text, rule, language)
        if not count_all_blocks:
            blocks = [b for b in blocks if b.language == "" or LANGUAGE_OF_TAG.get(b.language) == language]
        if mode == "strict" and rule == "authors" and len(blocks) > 1:
            return ""  # a multi-block answer by the authors' count is never rescued by rule 2
        if mode == "last":
            code = blocks[-1].body.strip() if blocks else ""
        else:
            code = blocks[0].body.strip() if len(blocks) == 1 else ""
        if code and _parses(code, language):  # empty code is invalid code
            return code
        candidates.append(code)
    return "" if mode == "strict" else next((c for c in candidates if c), "")


# -----------------------------------------------------------------------------
# Syntax checks


def _parses(code: str, language: str) -> bool:
    """check_syntax(code).ok without computing an error location."""
    if language != "python":
        return check_syntax(code, language).ok
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
        return True
    except Exception:  # SyntaxError, RecursionError, MemoryError, ValueError: see check_syntax
        return False


@functools.cache
def _parser(language: str) -> Parser:
    grammar = importlib.import_module(f"tree_sitter_{language}")  # the grammar wheels; nothing downloaded
    return Parser(Language(grammar.language()))


def _first_error_node(root):
    """The first ERROR or MISSING node in document order, or None. Iterative (a cursor, no recursion),
    visiting only subtrees that contain an error, so deeply nested input is safe."""
    cursor = root.walk()
    while True:
        node = cursor.node
        if node.is_error or node.is_missing:
            return node
        if node.has_error and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return None


def _position(code: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of the character at `index`."""
    return code.count("\n", 0, index) + 1, index - code.rfind("\n", 0, index)


def _tree_sitter_check(code: str, language: str) -> SyntaxCheck:
    source = code.encode("utf-8", "surrogatepass")
    node = _first_error_node(_parser(language).parse(source).root_node)
    if node is None:
        return SyntaxCheck(True, None, None, "")
    index = len(source[:node.start_byte].decode("utf-8", "replace"))  # tree-sitter counts bytes
    if node.is_missing:
        message = f"missing {node.type!r}"
    else:
        near = source[node.start_byte:node.end_byte].decode("utf-8", "replace").split("\n")[0][:40]
        message = f"syntax error at {near!r}"
    return SyntaxCheck(False, *_position(code, index), message)


def _check_python(code: str) -> SyntaxCheck:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escape sequences: warnings, not errors
            ast.parse(code)
        return SyntaxCheck(True, None, None, "")
    except SyntaxError as e:  # includes IndentationError and TabError
        if e.lineno:
            return SyntaxCheck(False, e.lineno, e.offset or None, e.msg)
        message = e.msg  # NUL bytes (Python 3.11.4+) come without a position
    except Exception as e:  # RecursionError, MemoryError (nesting), ValueError (NUL, surrogates), ...
        message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    if "\0" in code:
        return SyntaxCheck(False, *_position(code, code.index("\0")), message)
    located = _tree_sitter_check(code, "python")  # where tree-sitter sees an error, if it does
    return SyntaxCheck(False, located.line, located.column, message)


def check_syntax(code: str, language: str = "python") -> SyntaxCheck:
    """Does `code` parse? Python: ast.parse decides; C++/Java: tree-sitter decides (module docstring)."""
    language = _language(language)
    return _check_python(code) if language == "python" else _tree_sitter_check(code, language)
