"""Bad input x every command: one line naming the file (and line and field), exit code 2, no traceback, and
a pre-existing output file byte-identical afterwards (inputs.py). Commands run in this process through
inputs.run_main, which is what `python script.py` runs; one plain `python` run and one torchrun run check the
real process boundaries, and one in-process train_rm run checks that --resume drops a torn metrics line."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

import infer
import make_pairs
import model as M
import sft
import train_rl
import train_rm
from inputs import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = os.path.join(ROOT, "data", "humaneval_pairs_train.jsonl")
SENTINEL = b'{"step": 1, "loss": 0.5}\n{"precious": "already written"}\n'

PROBLEM = {"problem_id": "p1", "question": "Write f.", "entry_point": "f", "tests": ["assert candidate(1) == 1"]}
PAIR = {"question_content": "q", "code_pos": "def f(): return 1", "code_neg": "def f(): return 2"}
SAMPLE = {"problem_id": "p1", "question": "Write f.", "responses": ["```python\ndef f(x): return x\n```"]}


def jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


def tiny_checkpoint(out_dir, head="lm_head"):
    cfg = M.tiny_config(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                        num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    M.save_model(M.init_weights(M.Qwen3(cfg, head=head)), str(out_dir))
    return str(out_dir)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good files, and a corpus of bad ones keyed by name: {name: (path, what the message must contain)}."""
    d = tmp_path_factory.mktemp("bad_input")
    f = {"problems": jsonl(d / "problems.jsonl", [PROBLEM]),
         "candidates": jsonl(d / "candidates.jsonl", [{"problem_id": "p1", "code": "def f(x): return x"}]),
         "samples": jsonl(d / "samples.jsonl", [SAMPLE]),
         "records": jsonl(d / "records.jsonl", [{"question": "q", "response": "r"}] * 4),
         "score_in": jsonl(d / "score_in.jsonl", [{"question": "q", "code": "def f(): pass"}]),
         "pairs": jsonl(d / "pairs.jsonl", [PAIR] * 4),
         "ckpt": tiny_checkpoint(d / "ckpt")}
    bad = {}

    def add(name, content, *must):
        path = d / f"{name}.jsonl"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        bad[name] = (str(path), [str(path), *must])

    # file-level problems every command's JSONL loader shares
    add("non_utf8", b'\n{"question": "caf\xe9"}\n', ":2:", "not UTF-8")
    add("malformed_json", '\n\n{"question": \n', ":3:", "malformed JSON")
    add("not_an_object", '[1, 2]\n', ":1:", "expected a JSON object")
    add("empty", "", "no ")
    os.makedirs(d / "a_folder.jsonl")
    bad["directory"] = (str(d / "a_folder.jsonl"), [str(d / "a_folder.jsonl"), "is a directory, expected a file"])
    bad["missing_file"] = (str(d / "no_such_file.jsonl"), [str(d / "no_such_file.jsonl"), "no such file"])
    # problems files (make_pairs --problems, train_rl --data, infer --problems)
    p = lambda **kw: json.dumps({**PROBLEM, **kw})  # noqa: E731
    add("question_list", p(question=["a list"]), ":1:", "field 'question' must be a string, got list")
    add("question_missing", json.dumps({"problem_id": "x"}), ":1:", "missing or empty field 'question'")
    add("preamble_list", p(preamble=["import os"]), ":1:", "field 'preamble' must be a string")
    add("preamble_null", p(preamble=None), ":1:", "field 'preamble' must be a string")
    add("split_int", p(split=1), ":1:", "field 'split' must be 'train' or 'heldout'")
    add("test_syntax", p(tests=["assert candidate(1) ==", "assert True"]), ":1:", "field 'tests[0]' is not valid Python")
    add("problem_id_list", p(problem_id=[1]), ":1:", "field 'problem_id' must be a string or an integer")
    # pairs files (train_rm --data/--eval-data, infer rmeval)
    add("pair_nan", json.dumps(PAIR) + "\n" + json.dumps({**PAIR, "neg_pass_rate": float("nan")}), ":2:",
        "field 'neg_pass_rate' must be a number in [0, 1]")
    add("pair_missing", json.dumps({k: v for k, v in PAIR.items() if k != "code_pos"}), ":1:",
        "missing field 'code_pos'")
    add("pair_type", json.dumps({**PAIR, "code_pos": 3}), ":1:", "field 'code_pos' has type int, expected a string")
    # other record kinds
    add("record_missing", json.dumps({"question": "q"}), ":1:", "field 'response'")
    add("score_missing", json.dumps({"question": "q"}), ":1:", "field 'response' or 'code'")
    add("sample_bad", json.dumps({"problem_id": "p1", "question": "q", "responses": "x"}), ":1:", "'responses'")
    add("candidate_bad", json.dumps({"problem_id": ["p1"], "code": "x"}), ":1:", "field 'problem_id'")
    f["bad"] = bad

    # checkpoints: each one thing wrong; {name: (directory, what the message must contain)}
    ckpts = {}

    def broken(name, *must, edit):
        target = d / f"ckpt_{name}"
        shutil.copytree(f["ckpt"], target)
        where = edit(target)
        ckpts[name] = (str(target), [str(where), *must])

    weights = lambda t: t / "model.safetensors"  # noqa: E731

    def truncate(t):
        raw = weights(t).read_bytes()
        weights(t).write_bytes(raw[: len(raw) // 2])
        return weights(t)

    def emptied(t):
        weights(t).write_bytes(b"")
        return weights(t)

    def not_safetensors(t):
        weights(t).write_bytes(b"PK\x03\x04 this is a zip, not safetensors" * 10)
        return weights(t)

    def garbage_config(t):
        (t / "config.json").write_text('{"hidden_size": 32,\n "vocab_size": oops}')
        return t / "config.json"

    def config_string_size(t):
        cfg = json.loads((t / "config.json").read_text())
        (t / "config.json").write_text(json.dumps({**cfg, "hidden_size": "32"}))
        return t / "config.json"

    def missing_key(t):
        state = {k: v for k, v in M.load_model(f["ckpt"]).state_dict().items() if k != "lm_head.weight"}
        state.pop("model.norm.weight")
        save_file(state, str(weights(t)))
        return weights(t)

    def wrong_shape(t):
        state = {k: v for k, v in M.load_model(f["ckpt"]).state_dict().items() if k != "lm_head.weight"}
        state["model.norm.weight"] = torch.ones(31)
        save_file(state, str(weights(t)))
        return weights(t)

    def weights_directory(t):
        weights(t).unlink()
        weights(t).mkdir()
        return weights(t)

    broken("truncated", "not a complete safetensors file", edit=truncate)
    broken("empty_weights", "not a complete safetensors file", edit=emptied)
    broken("not_safetensors", "not a complete safetensors file", edit=not_safetensors)
    broken("garbage_config", ":2", "not valid JSON", edit=garbage_config)
    broken("config_type", "field 'hidden_size' must be a positive integer", edit=config_string_size)
    broken("missing_key", "missing keys ['model.norm.weight']", "[32]", edit=missing_key)
    broken("wrong_shape", "model.norm.weight has shape [31]", "[32]", edit=wrong_shape)
    broken("weights_dir", "directory", edit=weights_directory)
    ckpts["no_such_dir"] = (str(d / "no_such_ckpt"), [str(d / "no_such_ckpt"), "no such file or directory"])
    ckpts["a_file"] = (f["pairs"], [f["pairs"], "not a directory"])
    f["ckpts"] = ckpts
    f["dir"] = d
    return f


def run_command(module, argv, capsys):
    """module.main(argv) as `python module.py` runs it: (exit code, stdout + stderr)."""
    env = dict(os.environ)  # distributed.setup sets RANK etc. when a command gets that far: put them back
    try:
        with pytest.raises(SystemExit) as stop:
            if module is infer:
                infer.main(argv)
            else:
                run_main(module.main, argv)
    finally:
        os.environ.clear()
        os.environ.update(env)
    captured = capsys.readouterr()
    return stop.value.code, captured.out + captured.err


def check(module, argv, must, protected, capsys):
    """Exit code 2, one error line holding every string of `must`, no traceback, outputs untouched."""
    for path in protected:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(SENTINEL)
    code, output = run_command(module, argv, capsys)
    errors = [line for line in output.splitlines() if ": error: " in line]
    assert code == 2, output
    assert len(errors) == 1, output
    assert all(s in errors[0] for s in must), (must, errors[0])
    assert "Traceback" not in output
    for path in protected:
        with open(path, "rb") as f:
            assert f.read() == SENTINEL, f"{path} was changed"


# ----------------------------------------------------------------------------------------------------------
# Data files x commands. Each command: how its argv takes the bad file, the outputs it must not touch, and
# which corpus entries apply (the file-level ones to all).

FILE_LEVEL = ["non_utf8", "malformed_json", "not_an_object", "empty", "directory", "missing_file"]
PROBLEM_CASES = ["question_list", "question_missing", "preamble_list", "preamble_null", "split_int", "test_syntax",
                 "problem_id_list"]
PAIR_CASES = ["pair_nan", "pair_missing", "pair_type"]


def out_dir_metrics(f, name):
    return os.path.join(f["dir"], f"out_{name}", "metrics.jsonl")


COMMANDS = {  # name: (module, argv(files, bad path, out path), output file, bad-input names)
    "train_rm --data": (train_rm, lambda f, bad, out: ["--data", bad, "--eval-data", "", "--out", os.path.dirname(out)],
                        out_dir_metrics, FILE_LEVEL + PAIR_CASES),
    "train_rm --eval-data": (train_rm, lambda f, bad, out: ["--data", PAIRS, "--eval-data", bad, "--out",
                                                            os.path.dirname(out)], out_dir_metrics, FILE_LEVEL + PAIR_CASES),
    "train_rl --data": (train_rl, lambda f, bad, out: ["--data", bad, "--out", os.path.dirname(out), "--reward", "exec"],
                        out_dir_metrics, FILE_LEVEL + PROBLEM_CASES),
    "sft --data": (sft, lambda f, bad, out: ["--data", bad, "--out", os.path.dirname(out)], out_dir_metrics,
                   FILE_LEVEL + ["record_missing"]),
    "make_pairs --problems": (make_pairs, lambda f, bad, out: ["--problems", bad, "--candidates", f["candidates"], "--out",
                                                               os.path.dirname(out), "--name", "x"],
                              lambda f, name: os.path.join(f["dir"], f"out_{name}", "x_candidates.jsonl"),
                              FILE_LEVEL + PROBLEM_CASES),
    "make_pairs --candidates": (make_pairs, lambda f, bad, out: ["--problems", f["problems"], "--candidates", bad, "--out",
                                                                 os.path.dirname(out), "--name", "x"],
                                lambda f, name: os.path.join(f["dir"], f"out_{name}", "x_candidates.jsonl"),
                                FILE_LEVEL + ["candidate_bad"]),
    "make_pairs --samples": (make_pairs, lambda f, bad, out: ["--samples", bad, "--problems", f["problems"], "--out",
                                                              os.path.dirname(out), "--name", "x"],
                             lambda f, name: os.path.join(f["dir"], f"out_{name}", "x_candidates.jsonl"),
                             FILE_LEVEL + ["sample_bad"]),
    "infer score --in": (infer, lambda f, bad, out: ["score", "--in", bad, "--out", out, "--rm", f["ckpt"]],
                         lambda f, name: os.path.join(f["dir"], f"out_{name}.jsonl"), FILE_LEVEL + ["score_missing"]),
    "infer generate --problems": (infer, lambda f, bad, out: ["generate", "--problems", bad, "--policy", f["ckpt"],
                                                              "--out", out],
                                  lambda f, name: os.path.join(f["dir"], f"out_{name}.jsonl"),
                                  FILE_LEVEL + PROBLEM_CASES),
    "infer bon --samples": (infer, lambda f, bad, out: ["bon", "--samples", bad, "--problems", f["problems"],
                                                        "--rm", f["ckpt"], "--out", out],
                            lambda f, name: os.path.join(f["dir"], f"out_{name}.json"), FILE_LEVEL + ["sample_bad"]),
    "infer bon --pool": (infer, lambda f, bad, out: ["bon", "--pool", bad, "--problems", f["problems"], "--split", "all",
                                                     "--rm", f["ckpt"], "--out", out],
                         lambda f, name: os.path.join(f["dir"], f"out_{name}.json"), FILE_LEVEL + ["candidate_bad"]),
    "infer eval --problems": (infer, lambda f, bad, out: ["eval", "--samples", f["samples"], "--problems", bad,
                                                          "--out", out],
                              lambda f, name: os.path.join(f["dir"], f"out_{name}.json"), FILE_LEVEL + PROBLEM_CASES),
    "infer eval --samples": (infer, lambda f, bad, out: ["eval", "--samples", bad, "--problems", f["problems"],
                                                         "--out", out],
                             lambda f, name: os.path.join(f["dir"], f"out_{name}.json"), FILE_LEVEL + ["sample_bad"]),
    "infer rmeval --data": (infer, lambda f, bad, out: ["rmeval", "--data", bad, "--rm", f["ckpt"], "--out", out],
                            lambda f, name: os.path.join(f["dir"], f"out_{name}.json"), FILE_LEVEL + PAIR_CASES),
}
DATA_CASES = [(command, bad) for command, (_, _, _, names) in COMMANDS.items() for bad in names]


@pytest.mark.parametrize("command,bad", DATA_CASES, ids=[f"{c}-{b}" for c, b in DATA_CASES])
def test_bad_data_file(files, capsys, command, bad):
    module, argv, output, _ = COMMANDS[command]
    path, must = files["bad"][bad]
    out = output(files, f"{command}-{bad}".replace(" ", "_"))
    if bad == "directory" and command in ("train_rm --data", "train_rm --eval-data", "infer rmeval --data"):
        must = [path, "no *.jsonl or *.parquet files"]  # pairs may come from a directory of files
    check(module, argv(files, path, out), must, [out], capsys)


# ----------------------------------------------------------------------------------------------------------
# Checkpoints x commands

CKPT_COMMANDS = {  # name: (module, argv(files, checkpoint, out path), output file)
    "train_rm --model": (train_rm, lambda f, c, out: ["--model", c, "--data", f["pairs"], "--global-batch", "2",
                                                      "--eval-data", "", "--out", os.path.dirname(out)], out_dir_metrics),
    "train_rl --policy": (train_rl, lambda f, c, out: ["--policy", c, "--data", f["problems"], "--reward", "exec",
                                                       "--out", os.path.dirname(out)], out_dir_metrics),
    "train_rl --rm": (train_rl, lambda f, c, out: ["--policy", f["ckpt"], "--rm", c, "--data", f["problems"],
                                                   "--out", os.path.dirname(out)], out_dir_metrics),
    "sft --model": (sft, lambda f, c, out: ["--model", c, "--data", f["records"], "--out", os.path.dirname(out)],
                    out_dir_metrics),
    "infer score --rm": (infer, lambda f, c, out: ["score", "--rm", c, "--in", f["score_in"], "--out", out],
                         lambda f, name: os.path.join(f["dir"], f"out_{name}.jsonl")),
    "infer generate --policy": (infer, lambda f, c, out: ["generate", "--policy", c, "--problems", f["problems"],
                                                          "--max-new-tokens", "2", "--out", out],
                                lambda f, name: os.path.join(f["dir"], f"out_{name}.jsonl")),
}
CKPT_CASES = ["truncated", "empty_weights", "not_safetensors", "garbage_config", "config_type", "missing_key",
              "wrong_shape", "weights_dir", "no_such_dir", "a_file"]
# every checkpoint case through one command, and every command through two cases: the loader is shared
CKPT_GRID = ([("train_rm --model", c) for c in CKPT_CASES] +
             [(cmd, c) for cmd in CKPT_COMMANDS if cmd != "train_rm --model" for c in ("truncated", "garbage_config")] +
             [("infer score --rm", "missing_key"), ("train_rl --policy", "no_such_dir")])


@pytest.mark.parametrize("command,case", CKPT_GRID, ids=[f"{c}-{k}" for c, k in CKPT_GRID])
def test_bad_checkpoint(files, capsys, command, case):
    module, argv, output = CKPT_COMMANDS[command]
    ckpt, must = files["ckpts"][case]
    out = output(files, f"{command}-{case}".replace(" ", "_"))
    check(module, argv(files, ckpt, out), must, [out], capsys)


# ----------------------------------------------------------------------------------------------------------
# One-off cases from the issue


def test_outputs_that_are_directories_and_bad_flags(files, capsys):
    d = files["dir"]
    os.makedirs(d / "out_is_dir.jsonl", exist_ok=True)
    check(infer, ["score", "--in", files["score_in"], "--out", str(d / "out_is_dir.jsonl"), "--rm", files["ckpt"]],
          [str(d / "out_is_dir.jsonl"), "is a directory"], [], capsys)
    check(make_pairs, ["--problems", files["problems"], "--candidates", files["candidates"], "--out", files["pairs"]],
          [files["pairs"], "expected the output directory"], [], capsys)
    unknown = jsonl(d / "unknown_candidates.jsonl", [{"problem_id": "nope", "code": "x"}])
    check(make_pairs, ["--problems", files["problems"], "--candidates", unknown, "--out", str(d / "out_mp")],
          [unknown, "'nope'"], [], capsys)
    check(infer, ["eval", "--problems", files["problems"], "--out", str(d / "out_eval.json")],
          ["--samples", "exactly one"], [str(d / "out_eval.json")], capsys)
    check(infer, ["eval", "--samples", files["samples"], "--problems", files["problems"], "--k", "4",
                  "--out", str(d / "out_eval.json")], [files["problems"], "fewer than --k 4"],
          [str(d / "out_eval.json")], capsys)


@pytest.mark.parametrize("module", [train_rm, train_rl, sft], ids=["train_rm", "train_rl", "sft"])
def test_out_that_is_a_file(files, capsys, tmp_path, module):
    out = tmp_path / "out_is_a_file"
    out.write_bytes(SENTINEL)
    argv = {train_rm: ["--data", files["pairs"], "--global-batch", "2"], train_rl: ["--data", files["problems"]],
            sft: ["--data", files["records"]]}[module]
    check(module, argv + ["--out", str(out)], [str(out), "expected the output directory"], [str(out)], capsys)


def test_empty_input_is_allowed_when_a_flag_says_so(files, capsys, tmp_path):
    empty, _ = files["bad"]["empty"]
    out = tmp_path / "scored.jsonl"
    out.write_bytes(SENTINEL)
    infer.main(["score", "--in", empty, "--out", str(out), "--rm", files["ckpt"], "--allow-empty"])
    assert out.read_bytes() == b""  # replaced, as asked, by the (empty) scores
    assert "0 records scored" in capsys.readouterr().out


def test_garbage_tokenizer_after_the_process_group_exists(files, capsys, tmp_path):
    """A tokenizer is read after init_process_group: the group is left, the error is still one line."""
    ckpt = shutil.copytree(files["ckpt"], tmp_path / "ckpt")
    (ckpt / "tokenizer.json").write_text("{not json")
    out = tmp_path / "run" / "metrics.jsonl"
    check(train_rm, ["--model", str(ckpt), "--data", files["pairs"], "--global-batch", "2", "--eval-data", "",
                     "--out", str(out.parent)], [str(ckpt / "tokenizer.json"), "not a readable tokenizer.json"],
          [str(out)], capsys)
    assert not torch.distributed.is_initialized()


def test_python_script_exit_code_and_one_line(files, tmp_path):
    """The real process boundary: `python infer.py score` with bad input, the old output intact."""
    bad, _ = files["bad"]["non_utf8"]
    out = tmp_path / "scored.jsonl"
    out.write_bytes(SENTINEL)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("RANK", None)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "infer.py"), "score", "--in", bad, "--out", str(out),
                           "--rm", files["ckpt"]], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"infer.py score: error: {bad}:2: not UTF-8 text (byte 0xe9 at column 18)"
    assert out.read_bytes() == SENTINEL


def test_torchrun_rank0_prints_once_and_every_rank_exits(files, tmp_path):
    """Two ranks, an error found after init_process_group (the checkpoint's tokenizer): rank 0 alone prints the
    line and exits 2, no rank hangs. torchrun then reports the failed workers and exits 1 (it does so for any
    non-zero worker exit; see inputs.py)."""
    ckpt = shutil.copytree(files["ckpt"], tmp_path / "ckpt")
    (ckpt / "tokenizer.json").write_text("{not json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": ROOT}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           os.path.join(ROOT, "train_rm.py"), "--model", str(ckpt), "--data", files["pairs"],
                           "--global-batch", "2", "--eval-data", "", "--out", str(tmp_path / "run")],
                          env=env, capture_output=True, text=True, timeout=240)
    ours = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(ours) == 1, proc.stderr[-3000:]
    assert ours[0].startswith(f"train_rm.py: error: {ckpt / 'tokenizer.json'}: not a readable tokenizer.json")
    # torchrun: rank 0's exit code 2 is the root cause, rank 1 (waiting for rank 0, see inputs.py) is killed
    # by torchrun's SIGTERM, and the launcher exits 1
    root_cause = proc.stderr.split("Root Cause")[1]
    assert "rank      : 0" in root_cause and "exitcode  : 2" in root_cause, proc.stderr[-3000:]
    assert "exitcode  : -15" in proc.stderr.split("Root Cause")[0] and proc.returncode == 1, proc.stderr[-3000:]
    # one traceback, torchrun's own ChildFailedError; a worker's would be a second one
    assert proc.stderr.count("Traceback (most recent call last)") == 1 and "ChildFailedError" in proc.stderr


def test_resume_drops_a_torn_metrics_line(files, capsys, tmp_path):
    """train_rm --resume after a crash mid-write of metrics.jsonl: the torn line is dropped, with a note."""
    out = tmp_path / "run"
    model = str(tmp_path / "rm")
    # the real tokenizer's ids must fit the embedding: a tiny model with the full vocabulary
    cfg = M.tiny_config(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                        num_key_value_heads=1, head_dim=16)
    M.save_model(M.init_weights(M.Qwen3(cfg, head="score")), model)
    argv = ["--model", model, "--data", files["pairs"], "--eval-data", "", "--global-batch", "2", "--max-steps", "2",
            "--out", str(out), "--micro-batch-tokens", "4096"]
    env = dict(os.environ)
    try:
        run_main(train_rm.main, argv + ["--stop-at", "1"])
        metrics = out / "metrics.jsonl"
        whole = metrics.read_text()
        metrics.write_text(whole + '{"step": 2, "loss": 0.')  # killed while writing step 2
        run_main(train_rm.main, argv + ["--resume"])
    finally:
        os.environ.clear()
        os.environ.update(env)
    err = capsys.readouterr().err
    assert "dropped a torn or malformed line" in err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and whole.splitlines()[0] == json.dumps(rows[0])
