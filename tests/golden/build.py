"""Build tests/golden/responses.jsonl: chat answers in the shapes Qwen3 chat and thinking models emit, around
HumanEval reference solutions (correct) and their failing AST mutants (wrong), with what the RL reward must
be for each. tests/test_reward_path.py tokenizes every response with the real Qwen3 tokenizer, appends the
stop id where the sampler would have stopped, and runs it through train_rl's reward path.

    python tests/golden/build.py          # rewrites tests/golden/responses.jsonl (byte-identical for the same data)

Each record: problem_id, shape (what the response looks like), text (the response as the model wrote it,
before the stop token), truncated (cut at the token limit: no stop token follows), expected_code (what
strict extraction must return, "" when invalid), expected_exec (the --reward exec reward: 1 only for the
reference solution in a shape with exactly one parsable block).
"""
import ast
import json
import os
import random
import re

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
THOUGHT = ("Okay, let me think about this problem. I need to handle the edge cases: an empty input, "
           "a single element, and duplicates. A simple loop should be enough here.")


def indent(code: str, width: int) -> str:
    return "\n".join((" " * width + line) if line else line for line in code.split("\n"))


# Shapes that hold exactly one parsable block: the reward is the code's verdict (1 for the reference).
# Each is (name, function of code -> (text, truncated)).
ONE_BLOCK = [
    ("fence then stop token", lambda c: (f"Here is the code:\n```python\n{c}\n```", False)),
    ("prose after the block", lambda c: (f"```python\n{c}\n```\n\nThis function solves the task in one pass.", False)),
    ("prose on the closing fence line", lambda c: (f"Solution:\n```python\n{c}\n``` That's it.", False)),
    ("full stop glued to the closing fence", lambda c: (f"```python\n{c}\n```.", False)),
    ("tag py", lambda c: (f"Sure.\n\n```py\n{c}\n```\n", False)),
    ("tag python3", lambda c: (f"```python3\n{c}\n```\nDone.", False)),
    ("no tag", lambda c: (f"```\n{c}\n```", False)),
    ("thinking block without code", lambda c: (f"<think>\n{THOUGHT}\n</think>\n\nHere is my solution.\n```python\n{c}\n```", False)),
    ("empty thinking block", lambda c: (f"<think>\n\n</think>\n\n```python\n{c}\n```", False)),
    ("opening fence after text on its line", lambda c: (f"Sure! ```python\n{c}\n```\nHope this helps.", False)),
    ("CRLF line ends", lambda c: ("Code:\r\n```python\r\n" + c.replace("\n", "\r\n") + "\r\n```\r\n", False)),
    ("indented block in a list item", lambda c: (f"1. The function:\n   ```python\n{indent(c, 3)}\n   ```\n2. Done.", False)),
    ("truncated in the prose after the block",
     lambda c: (f"```python\n{c}\n```\n\nExplanation: the loop visits every element once, and the", True)),
]
# Shapes whose reward is 0 whatever the code: no block, more than one, unclosed, or cut inside the code.
NO_CODE = [
    ("a draft block inside the thinking and a final block",
     lambda c: (f"<think>\n{THOUGHT}\n```python\n{c}\n```\nLooks right.\n</think>\n\n```python\n{c}\n```", False)),
    ("solution and usage example blocks", lambda c: (f"```python\n{c}\n```\nUsage:\n```python\nprint(1)\n```", False)),
    ("unclosed block, stop token", lambda c: (f"Here:\n```python\n{c}\n", False)),
    ("truncated inside the block", lambda c: (f"```python\n{c[: len(c) // 2]}", True)),
    ("truncated inside the thinking", lambda c: (f"<think>\n{THOUGHT} Let me write:\n{c[: len(c) // 3]}", True)),
    ("code without fences", lambda c: (f"Here is the code:\n\n{c}\n", False)),
    ("glued fences, two blocks", lambda c: (f"```python\n{c}\n``````python\nprint(1)\n```", False)),
]


def authors_or(code: str, text: str) -> str:
    """What strict extraction must return for a one-block shape: the authors' regex result where it parses
    (an indented block then keeps its indentation after the first line), else `code` (the repaired block)."""
    blocks = re.findall(r"```(?:\w+)?\n(.*?)```", text.replace("\r\n", "\n"), re.DOTALL)
    if len(blocks) == 1:
        try:
            ast.parse(blocks[0].strip())
            return blocks[0].strip()
        except SyntaxError:
            pass
    return code


def broken(code: str) -> str:
    """The code with a syntax error a model makes: an unclosed bracket on its last line."""
    lines = code.rstrip().split("\n")
    lines[-1] = lines[-1] + " + ("
    return "\n".join(lines)


def main():
    candidates = [json.loads(line) for line in open(os.path.join(REPO, "data", "humaneval_candidates.jsonl"))]
    by_problem = {}
    for c in candidates:
        by_problem.setdefault(c["problem_id"], []).append(c)
    rng = random.Random(0)
    records = []
    for i, (pid, cands) in enumerate(sorted(by_problem.items(), key=lambda kv: int(kv[0].split("/")[1]))):
        reference = next(c["code"] for c in cands if c["is_reference"]).strip()
        wrong = [c["code"].strip() for c in cands if c["verdict"] == "failed"]
        name, shape = ONE_BLOCK[i % len(ONE_BLOCK)]
        text, truncated = shape(reference)
        records.append(dict(problem_id=pid, shape=name, kind="correct", text=text, truncated=truncated,
                            expected_code=authors_or(reference, text), expected_exec=1.0))
        name, shape = NO_CODE[i % len(NO_CODE)]
        text, truncated = shape(reference)
        records.append(dict(problem_id=pid, shape=name, kind="no single block", text=text, truncated=truncated,
                            expected_code="", expected_exec=0.0))
        if wrong:  # a failing mutant in a one-block shape: extracted, run, and it fails
            name, shape = ONE_BLOCK[(i * 7 + 3) % len(ONE_BLOCK)]
            code = rng.choice(wrong)
            text, truncated = shape(code)
            records.append(dict(problem_id=pid, shape=name, kind="wrong", text=text, truncated=truncated,
                                expected_code=authors_or(code, text), expected_exec=0.0))
        if i % 3 == 0:  # a syntax error in a one-block shape: invalid, never run
            name, shape = ONE_BLOCK[(i * 5 + 1) % len(ONE_BLOCK)]
            text, truncated = shape(broken(reference))
            records.append(dict(problem_id=pid, shape=name, kind="invalid", text=text, truncated=truncated,
                                expected_code="", expected_exec=0.0))
    with open(os.path.join(HERE, "responses.jsonl"), "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    kinds = {}
    for r in records:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    print(f"{len(records)} responses: {kinds}")


if __name__ == "__main__":
    main()
