"""Bad input: one clear line, exit code 2, nothing already written lost. Shared by every command.

- `InputError(where, message)`: a problem with a file the user gave. `where` is the file, or FILE:LINE for a
  JSONL line or a Parquet row (`at(path, line)`); `message` names the field and what was expected. Its str is
  the one line a user sees, `FILE:LINE: field 'question' must be a string, got list`. It is a ValueError (and
  `InputNotFound` a FileNotFoundError, `InputKeyError` a KeyError) so code that caught the builtin still does.
- `read_jsonl(path)`: (1-based line, record dict) for each non-blank line; bytes that are not UTF-8, JSON
  that does not parse, a line that is not an object, a directory or a missing file: InputError.
- `atomic_write(path)`: write to a temporary name in the same directory, rename over `path` only when the
  block finishes; an error inside the block leaves `path` as it was.
- `run_main(main)`: what `python script.py` runs. It calls main(argv), and on InputError prints
  `script.py: error: <the line>` to stderr (rank 0's only under torchrun) and exits 2, with no traceback.

Under torchrun every rank reads the same files and so fails the same way: the scripts validate their inputs
before `init_process_group` wherever they can (data files, checkpoint headers), and an error found later
(a tokenizer file) happens on every rank at the same point. Each rank leaves the process group without a
barrier. Rank 0 prints the line and exits 2 at once; the other ranks wait up to RANK0_GRACE_S first, because
torchrun kills every worker as soon as one exits: rank 0's line must come first. torchrun then reports rank
0's exit code 2 as the root cause and the others as killed by its SIGTERM, prints its own ChildFailedError
and exits 1; it does that for any non-zero exit of a worker, which only exiting 0 would avoid (telling a
pipeline that the run succeeded), so we don't. Should rank 0 not fail (an input only some ranks see), the
other ranks print their line after the wait, prefixed by their rank, and exit 2.
"""
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager


class InputError(ValueError):
    """A problem with a user's file: `where` (FILE or FILE:LINE) and what is wrong with it."""

    def __init__(self, where: str, message: str):
        super().__init__(where, message)
        self.where, self.message = str(where), message

    def __str__(self):
        return f"{self.where}: {self.message}"


class InputNotFound(InputError, FileNotFoundError):
    """A file or directory that is not there (or is not what was expected: a directory for a file)."""


class InputKeyError(InputError, KeyError):
    """A key a checkpoint or a tokenizer should have and lacks (or has and should not)."""


def at(path: str, line: int | None = None) -> str:
    """The `where` of an InputError: FILE, or FILE:LINE."""
    return str(path) if line is None else f"{path}:{line}"


def check_file(path: str) -> None:
    """`path` must be an existing regular file (not a directory)."""
    if os.path.isdir(path):
        raise InputNotFound(path, "is a directory, expected a file")
    if not os.path.exists(path):
        raise InputNotFound(path, "no such file")


def check_output(path: str) -> None:
    """An output file's name must not be a directory, and its parent must not be a file."""
    if os.path.isdir(path):
        raise InputNotFound(path, "is a directory, expected a file to write")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise InputNotFound(parent, "is a file, expected a directory to write into")


def check_output_dir(path: str) -> None:
    """An output directory's name must not be a file (its parents are made later)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputNotFound(path, "is a file, expected the output directory")
    check_output(os.path.join(path, "metrics.jsonl"))


def read_jsonl(path: str):
    """Yield (1-based line number, record dict) for every non-blank line of a JSON Lines file."""
    check_file(path)
    with open(path, "rb") as f:  # bytes: a decoding error then names its line
        for n, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(at(path, n), f"not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(at(path, n), f"malformed JSON ({e.msg} at column {e.pos + 1})") from None
            if not isinstance(rec, dict):
                raise InputError(at(path, n), f"expected a JSON object, got {type(rec).__name__}")
            yield n, rec


def read_text(path: str) -> str:
    """A whole UTF-8 file; a directory, a missing file or bytes that are not UTF-8 name the file (and line)."""
    check_file(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise InputError(at(path, line), f"not UTF-8 text (byte {raw[e.start]:#04x})") from None


def read_json(path: str):
    """A JSON file (config.json, tokenizer_config.json, an index): errors name the file and the line."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(at(path, e.lineno), f"not valid JSON ({e.msg}, column {e.colno})") from None


@contextmanager
def atomic_write(path: str, mode: str = "w"):
    """Open a temporary file beside `path` for writing; on success it replaces `path` (os.replace is atomic
    on one filesystem), on any error it is deleted and `path` is untouched. Parent directories are made."""
    path = os.fspath(path)
    check_output(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with open(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def is_rank0() -> bool:
    """Rank 0, or not under torchrun (torchrun sets RANK before the script starts)."""
    return os.environ.get("RANK", "0") == "0"


RANK0_GRACE_S = 10.0  # how long ranks other than 0 wait, on bad input, for rank 0 to print and exit


def run_main(main, argv=None, prog: str | None = None):
    """Run main(argv); bad input ends in one line on stderr (rank 0's under torchrun) and exit code 2."""
    prog = prog or os.path.basename(sys.argv[0] if argv is None else main.__module__ + ".py")
    try:
        return main(argv)
    except InputError as e:
        line = f"{prog}: error: {e}"
        _leave_process_group()
        if not is_rank0():  # torchrun ends the job when a worker exits: rank 0's line must come first
            time.sleep(RANK0_GRACE_S)
            line = f"rank {os.environ['RANK']}: {line}"
        print(line, file=sys.stderr, flush=True)
        stop = SystemExit(line)  # str: the line, for callers in the same process (tests)
        stop.code = 2  # what the interpreter exits with; it prints nothing more for an int code
        raise stop from None


def _leave_process_group():
    """Leave without a barrier: the other ranks hit the same error, and a barrier could wait forever on one
    that did not."""
    if "torch.distributed" not in sys.modules:
        return
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
