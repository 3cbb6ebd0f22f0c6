"""A ten-second tour of the model code on a CPU: write a tiny random Qwen3 through the real checkpoint path,
load it back, render a chat prompt with the real Qwen3 tokenizer, and sample one GRPO-style group from it.

    python demo.py

The weights are random, so the sampled text is noise; what is real is the machinery every script runs on:
`save_model` / `load_model` (safetensors + config.json, the files transformers reads), the hand-written chat
format, and `generate` (one packed prefill fanned out to the group, a preallocated KV cache, top-k then top-p).

`write_tiny_checkpoint` builds the tiny random model the CPU demos start from when no checkpoint is given
(the real 151,936-token vocabulary, so the real tokenizer fits; a few MB at the default shape).
This file exists apart from model.py so that model.py imports nothing from generate.py (the demo needs
both; as model.py's `__main__` it also saw a second copy of model.py's classes, not the ones generate.py uses).
"""
import ast
import tempfile
import time

import torch

from data import humaneval_problems
from generate import generate
from model import Qwen3, init_weights, load_model, save_model, tiny_config
from tokenizer import load_tokenizer, render_prompt


def write_tiny_checkpoint(path: str, head: str = "lm_head", seed: int = 0, **shape) -> str:
    """A tiny random Qwen3 (`tiny_config(**shape)`, normal(0, 0.02) weights drawn from `seed`) saved to
    `path` as an HF checkpoint: a causal LM (`head="lm_head"`) or a reward model (`head="score"`)."""
    save_model(init_weights(Qwen3(tiny_config(**shape), head=head), seed=seed), path)
    return path


# -----------------------------------------------------------------------------
# The CPU pipeline's demo problems: sft.py's warm start answers them, train_rl.py's demo trains on them

DEMO_PROBLEMS = 16  # this many short HumanEval train problems (see demo_problems)


def without_docstrings(code: str) -> str:
    """The program with its docstrings removed (ast.unparse): the demo's answers stay short."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def demo_problems(n: int | None = DEMO_PROBLEMS) -> list:
    """The n HumanEval train problems with the shortest reference solutions (docstrings removed, counted in
    characters; ties by id), in task order; None or 0: all of them. The SFT demo and the RL demo share them."""
    problems = humaneval_problems("train")
    if not n:
        return problems
    short = sorted(problems, key=lambda p: (len(without_docstrings(p.reference)), p.problem_id))[:n]
    ids = {p.problem_id for p in short}
    return [p for p in problems if p.problem_id in ids]



def main():
    tokenizer = load_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(write_tiny_checkpoint(tmp), dtype=torch.float32)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"tiny random Qwen3 ({n_params / 1e6:.1f}M parameters) written to and read back from {tmp}")
    prompt = render_prompt("Write a Python function that reverses a string.", enable_thinking=False)
    ids = tokenizer.encode(prompt)
    t0 = time.perf_counter()
    out = generate(model, [ids], num_samples=4, max_new_tokens=32, temperature=0.6, top_p=0.95, top_k=20,
                   stop_ids=tokenizer.eos_ids, seed=0)  # out.tokens [4, 32], out.lengths [4]
    seconds = time.perf_counter() - t0
    print(f"prompt ({len(ids)} tokens):\n{prompt}")
    for i in range(4):
        n = int(out.lengths[i])
        print(f"sample {i} ({n} tokens, mean log-prob {out.logprobs[i, :n].mean():.2f}): "
              f"{tokenizer.decode(out.tokens[i, :n].tolist())!r}")
    print(f"{int(out.lengths.sum())} tokens in {seconds:.2f}s (random weights: the text is noise, the machinery is real)")


if __name__ == "__main__":
    main()
