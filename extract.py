r"""Syntax-aware code extraction from model responses (CodeScaler, arXiv 2602.17684, section 3 of SPEC.md).

The paper's rule, used for rewards during RL (mode="strict"):
    find the markdown fenced code blocks; if there is not exactly one, the code is ""; otherwise strip the
    block's body and check its syntax (the authors use Python's `ast.parse`); code that does not parse is "".
The evaluation rule (mode="last"): the body of the last block, stripped, with no count and no syntax check.
The reward model then scores `softplus(RM(q, code))`, or 0 when the code is "" (see reward.py).

Fence scanner. The authors match `re.findall(r"```(?:\w+)?\n(.*?)```", text, re.DOTALL)`. We scan line by
line instead, markdown style, which gives the same blocks for ordinary responses and is linear in the input:
- An opening fence is a line (optionally indented) of three or more backticks and then an optional info
  string with no backtick in it; the language tag is the info string's first word, lowercased ("" when
  absent). The body runs to the first line that holds only backticks (at least as many as the opening
  fence) and spaces/tabs.
- Deviations from the authors' regex, each on purpose:
  * Fences must stand on their own lines, so backticks inside code (a Python string "```", or single
    backticks) do not end a block; the regex ends the block there and then fails the truncated code.
    A closing fence written at the end of a code line (`print(1)```) is therefore not a fence.
    The price: a line inside the code that starts with ``` (in a triple-quoted string) does end the block.
  * Tags such as "c++" and trailing spaces or extra words after the tag are allowed, and CRLF line ends work
    (the regex finds no block at all in a CRLF response); the body comes back with "\n" line ends.
  * Four-backtick (or longer) fences work as in markdown: shorter fences inside them are body text.
  * Indented fences (a block inside a list item) are allowed at any indentation; that indentation is
    removed from each body line, so an indented block of Python still parses.
  * A fence line that carries a tag never closes a block. An unclosed fence (a truncated response) is not a
    block, so it neither counts nor is extracted. Tilde fences (~~~) are not fences.
- An empty block (or one of only whitespace) gives "" in strict mode: empty code is invalid.

Flags of `extract_code`:
- count_all_blocks=True (the authors' behaviour): every block counts toward "exactly one", whatever its tag.
  False: only blocks tagged with the target language (or an alias: py/python3, c++/cc/cxx) or untagged
  count, and only such a block is extracted, in either mode.
- ignore_think=False (the authors' behaviour): fences inside a <think>...</think> section count too.
  True: think sections are removed first (`remove_think`): each <think>...</think>; an unclosed <think> up to
  the end (an unfinished thought is no answer); and, when the response opens mid-thought (Qwen3's template
  already wrote <think>, so the response has a </think> with no <think> before it), everything up to that
  first </think>.

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

_OPEN_FENCE = re.compile(r"(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`]*)")      # fullmatch on one line
_CLOSE_FENCE = re.compile(r"[ \t]*(?P<fence>`{3,})[ \t]*")                          # fullmatch on one line
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL)


@dataclass
class CodeBlock:
    language: str  # the tag, lowercased; "" when the fence has none
    body: str      # the lines between the fences, joined by "\n", fence indentation removed, not stripped
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

def _unindent(line: str, width: int) -> str:
    """Remove up to `width` leading spaces/tabs (the opening fence's indentation)."""
    n = len(line) - len(line.lstrip(" \t"))
    return line[min(n, width):]


def find_code_blocks(text: str) -> list[CodeBlock]:
    """All closed fenced blocks in `text`, in order (rules in the module docstring)."""
    blocks, opening, body_lines, pos = [], None, [], 0
    for line in text.split("\n"):
        line_end = len(line) + 1
        line = line.removesuffix("\r")  # CRLF line ends
        if opening is None:
            opening = _OPEN_FENCE.fullmatch(line)
            if opening:
                start, body_lines = pos + len(opening["indent"]), []
        else:
            closing = _CLOSE_FENCE.fullmatch(line)
            if closing and len(closing["fence"]) >= len(opening["fence"]):
                tag = opening["info"].split()[0].lower() if opening["info"].strip() else ""
                end = pos + closing.end("fence")
                blocks.append(CodeBlock(tag, "\n".join(body_lines), start, end))
                opening = None
            else:
                body_lines.append(_unindent(line, len(opening["indent"])))
        pos += line_end
    return blocks  # an opening left unclosed at the end is dropped


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
    if ignore_think:
        response = remove_think(response)
    blocks = find_code_blocks(response)
    if not count_all_blocks:
        blocks = [b for b in blocks if b.language == "" or LANGUAGE_OF_TAG.get(b.language) == language]
    if mode == "last":
        return blocks[-1].body.strip() if blocks else ""
    if len(blocks) != 1:
        return ""
    code = blocks[0].body.strip()
    if not code or not check_syntax(code, language).ok:  # empty code is invalid code
        return ""
    return code


# -----------------------------------------------------------------------------
# Syntax checks

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
