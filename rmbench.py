"""RM-Bench (Liu et al. 2024, THU-KEG/RM-Bench): its data files and its own accuracy, for `infer.py rmeval`.

Each item has one prompt and three chosen and three rejected responses, one per style (concise, detailed
plain text, detailed markdown). RM-Bench's score is a 3x3 matrix per domain (`rmbench_matrix`): entry
[i][j] is how often the chosen response in style i outscores the rejected one in style j; "hard" is the
mean above the diagonal (a plainer chosen against a fancier rejected), "normal" the diagonal, "easy" below.
The files are read here rather than in data.py because nothing else in the project uses this format.
"""
import json
from dataclasses import dataclass

from data import read_records
from inputs import InputError, read_text

@dataclass
class RMBenchItem:
    item_id: str
    prompt: str
    chosen: list[str]  # 3 styles: concise, detailed plain text, detailed markdown
    rejected: list[str]  # the same 3 styles
    domain: str  # chat, code, math, safety-refuse or safety-response ("" when the file has no domains)
    score_chosen: list[float] | None = None  # scores already computed (an RM-Bench results file)
    score_rejected: list[float] | None = None


def load_rmbench(path: str) -> list[RMBenchItem]:
    """RM-Bench's data (THU-KEG/RM-Bench `total_dataset.json` or a per-domain file): a JSON array, or JSON
    Lines, of {"id", "prompt", "chosen": [3 str], "rejected": [3 str], "domain"}. A results file written
    by RM-Bench's scripts also has `score_chosen`/`score_rejected` (3 numbers each); they are kept, so its
    accuracies can be recomputed without a model. Errors name the file, the 1-based item and the field."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            records = list(enumerate(json.loads(text), start=1))
        except json.JSONDecodeError as e:
            raise InputError(path, f"malformed JSON ({e})") from None
    else:
        records = list(read_records(path))
    items = []
    for n, rec in records:
        where = f"{path}:{n}"
        if not isinstance(rec, dict):
            raise InputError(where, f"expected a JSON object, got {type(rec).__name__}")
        if not isinstance(rec.get("prompt"), str):
            raise InputError(where, f"missing field 'prompt' (a string)")
        for name in ("chosen", "rejected"):
            value = rec.get(name)
            if not (isinstance(value, list) and len(value) == 3 and all(isinstance(x, str) for x in value)):
                raise InputError(where, f"field {name!r} must be a list of 3 strings (one per style)")
        scores = []
        for name in ("score_chosen", "score_rejected"):
            value = rec.get(name)
            if value is not None and not (isinstance(value, list) and len(value) == 3 and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)):
                raise InputError(where, f"field {name!r} must be a list of 3 numbers")
            scores.append(None if value is None else [float(x) for x in value])
        domain = rec.get("domain", "")
        if not isinstance(domain, str):
            raise InputError(where, f"field 'domain' must be a string")
        items.append(RMBenchItem(str(rec.get("id", n)), rec["prompt"], rec["chosen"], rec["rejected"], domain, *scores))
    if not items:
        raise InputError(path, "no items")
    return items


RMBENCH_DOMAINS = ("chat", "math", "code", "safety")  # RM-Bench's; safety-refuse and safety-response are safety


def rmbench_matrix(items: list) -> list[list[float]]:
    """RM-Bench's 3x3 accuracy matrix of one domain: entry [i][j] is the fraction of items whose chosen
    response in style i scores strictly higher than the rejected response in style j (a tie is wrong).
    Styles: 0 concise, 1 detailed plain, 2 detailed markdown."""
    counts = [[0] * 3 for _ in range(3)]
    for it in items:
        for i in range(3):
            for j in range(3):
                counts[i][j] += it.score_chosen[i] > it.score_rejected[j]
    return [[c / len(items) for c in row] for row in counts]


def rmbench_accuracy(items: list) -> dict:
    """RM-Bench's accuracies, computed as its own scoring code does: per domain, hard = mean of the three
    entries above the diagonal (chosen plainer than rejected), normal = mean of the diagonal, easy = mean of
    the three below it, and the domain's accuracy = mean(hard, normal, easy); then hard, normal, easy and the
    total are unweighted means over the domains (so total = mean of the domain accuracies = mean of hard,
    normal, easy). A file without `domain` fields is one domain, "all", as RM-Bench scores a per-domain file.
    Deviation: a domain with no items is left out of the means (RM-Bench's code fails on one)."""
    if any(it.score_chosen is None or it.score_rejected is None for it in items):
        raise ValueError("every item needs score_chosen and score_rejected")
    if all(not it.domain for it in items):
        groups = {"all": items}
    else:
        groups = {d: [it for it in items if it.domain.startswith(d)] for d in RMBENCH_DOMAINS}
        groups = {d: g for d, g in groups.items() if g}
    out = {"domains": {}}
    for domain, group in groups.items():
        m = rmbench_matrix(group)
        hard = (m[0][1] + m[0][2] + m[1][2]) / 3
        normal = (m[0][0] + m[1][1] + m[2][2]) / 3
        easy = (m[1][0] + m[2][0] + m[2][1]) / 3
        out["domains"][domain] = {"items": len(group), "matrix": m, "hard": hard, "normal": normal, "easy": easy,
                                  "accuracy": (hard + normal + easy) / 3}
    per = out["domains"].values()
    for key in ("hard", "normal", "easy", "accuracy"):
        out[key] = sum(d[key] for d in per) / len(per)
    out["unscored_items"] = len(items) - sum(d["items"] for d in per)  # domains RM-Bench does not score
    return out


def score_rmbench(items: list, score_fn) -> None:
    """Fill score_chosen/score_rejected with score_fn(prompts, responses) (e.g. rm.score); responses are
    scored verbatim (they are prose and code, not extracted code)."""
    prompts = [it.prompt for it in items for _ in range(6)]
    responses = [r for it in items for r in it.chosen + it.rejected]
    scores = score_fn(prompts, responses)
    for k, it in enumerate(items):
        it.score_chosen, it.score_rejected = scores[6 * k: 6 * k + 3], scores[6 * k + 3: 6 * k + 6]


def is_rmbench_file(path: str) -> bool:
    """RM-Bench's layout (chosen/rejected are lists of 3 strings) rather than a pairs file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:  # a bad byte: the loader names its line
            head = f.read(1 << 16).lstrip()
    except (IsADirectoryError, FileNotFoundError):
        return False
    if head.startswith("["):
        return True
    first = head.split("\n", 1)[0]
    try:
        rec = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(rec, dict) and isinstance(rec.get("chosen"), list) and len(rec["chosen"]) == 3 \
        and all(isinstance(x, str) for x in rec["chosen"])
