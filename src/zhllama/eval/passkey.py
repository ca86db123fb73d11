"""``zhllama eval passkey``: can the model find a number hidden in a long filler text?

The passkey-retrieval test (Mohtashami & Jaggi, 2023; used for position interpolation and YaRN):
a prompt of ``length`` tokens is filler sentences with one line ``密码是NNNNN。记住它。`` placed at
``depth`` (0 = the start of the filler, 1 = its end), ending with the question ``密码是多少？密码是``.
The model answers greedily; a trial passes when the answer starts with the key.  Accuracy by length × depth shows whether the model really uses its long context: a model
that attends only to recent tokens finds the key at depth 1 and misses it further back.

Prompts are built from text (so they tokenize as training text does) and hold at most ``length``
tokens, as close to it as the filler allows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import ZhllamaError
from ..rope_scaling import RopeScaling
from ..templates import encode_plain_text
from .config import PasskeyConfig
from .task import EvalTask

INTRO = "记住文中的密码。"
FILLER = "草是绿的。天是蓝的。太阳是黄的。我们走吧。来了又去。"
KEY_LINE = "密码是{key}。记住它。"
QUESTION = "密码是多少？密码是"


@dataclass
class PasskeyResult:
    lengths: list[int]
    depths: list[float]
    trials: int
    accuracy: list[list[float]]  # [depth][length]
    prompt_tokens: list[int]  # the longest prompt built for each length

    def to_json(self) -> dict:
        return {"lengths": self.lengths, "depths": self.depths, "trials": self.trials, "accuracy": self.accuracy,
                "prompt_tokens": self.prompt_tokens, "mean": self.mean()}

    def mean(self) -> float:
        cells = [a for row in self.accuracy for a in row]
        return sum(cells) / len(cells)

    def column_means(self) -> list[float]:
        return [sum(row[j] for row in self.accuracy) / len(self.depths) for j in range(len(self.lengths))]


def passkey_text(n_filler_chars: int, depth: float, key: str) -> str:
    """The prompt text: intro, ``n_filler_chars`` of filler with the key line at ``depth`` (at a sentence end)."""
    filler = (FILLER * (n_filler_chars // len(FILLER) + 1))[:n_filler_chars]
    cut = round(depth * len(filler))
    cut = filler.rfind("。", 0, cut) + 1 if cut < len(filler) else cut  # 0 when no sentence ends before it
    return INTRO + filler[:cut] + KEY_LINE.format(key=key) + filler[cut:] + QUESTION


def passkey_prompt(tokenizer, length: int, depth: float, key: str) -> list[int]:
    """BOS + the ids of the longest :func:`passkey_text` that fits ``length`` tokens."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []

    def ids(chars: int) -> list[int]:
        return bos + encode_plain_text(tokenizer, passkey_text(chars, depth, key))

    shortest = ids(0)
    if len(shortest) > length:
        raise ZhllamaError(f"--lengths {length} is too short for a passkey prompt", f"use at least {len(shortest)} tokens")
    # a filler character is at least 1/8 token with any tokenizer that fits
    return ids(most_filler_that_fits(lambda chars: len(ids(chars)), length, 8 * length))


def most_filler_that_fits(n_tokens, length: int, high: int) -> int:
    """The most filler characters (0..``high``) for which ``n_tokens(chars)`` is still at most ``length``
    (a binary search: tokens grow with characters)."""
    low = 0
    while low < high:
        mid = (low + high + 1) // 2
        if n_tokens(mid) <= length:
            low = mid
        else:
            high = mid - 1
    return low


def random_key(rng: random.Random, digits: int) -> str:
    return str(rng.randrange(10 ** (digits - 1), 10 ** digits))


def check_depths(depths: list[float]) -> None:
    bad = [d for d in depths if not 0.0 <= d <= 1.0]
    if bad:
        raise ZhllamaError(f"--depths {bad[0]:g} is not between 0 and 1", "0 = the start of the text, 1 = its end")


def check_lengths(lengths: list[int], context: int, answer_tokens: int, where: str = "the model") -> None:
    """Refuse a length whose prompt plus answer does not fit ``context`` tokens."""
    for n in lengths:
        if n + answer_tokens > context:
            raise ZhllamaError(f"--lengths {n} is beyond what {where} can take: {context} tokens of context, "
                               f"{answer_tokens} of them for the answer",
                               f"use lengths up to {context - answer_tokens}, or extend the context with "
                               "--rope-scaling KIND:FACTOR")


def answer_tokens(tokenizer, digits: int) -> int:
    """Tokens to generate: the key's (a few spare for tokenizers that merge digits), at least 2."""
    return max(2, len(encode_plain_text(tokenizer, "9" * digits)) + 1)


def passkey_accuracy(engine, lengths: list[int], depths: list[float], trials: int = 5, digits: int = 5,
                     seed: int = 0, batch_size: int = 8) -> PasskeyResult:
    """Greedy passkey retrieval through ``engine`` (:class:`zhllama.infer.engine.Engine`)."""
    from ..infer.sampling import SamplingParams

    check_depths(depths)
    n_answer = answer_tokens(engine.tokenizer, digits)
    check_lengths(lengths, engine.context_length, n_answer)
    params = SamplingParams(max_new_tokens=n_answer, temperature=0)
    rng = random.Random(seed)
    cases = [(i, j, random_key(rng, digits)) for j in range(len(lengths)) for i in range(len(depths))
             for _ in range(trials)]
    prompts = [passkey_prompt(engine.tokenizer, lengths[j], depths[i], key) for i, j, key in cases]
    hits = [[0] * len(lengths) for _ in depths]
    for start in range(0, len(cases), batch_size):
        batch = cases[start:start + batch_size]
        outs = engine.generate(prompts[start:start + batch_size], params)
        for (i, j, key), out in zip(batch, outs):
            hits[i][j] += out.text.strip().startswith(key)
    longest = [max(len(p) for p, (_, j, _) in zip(prompts, cases) if j == col) for col in range(len(lengths))]
    return PasskeyResult(list(lengths), list(depths), trials, [[h / trials for h in row] for row in hits], longest)


def passkey_table(result: PasskeyResult) -> str:
    """Markdown: one row per depth, one column per length, accuracy in %; a mean row."""
    head = "| depth \\ length | " + " | ".join(str(n) for n in result.lengths) + " |\n"
    head += "|---|" + "---:|" * len(result.lengths) + "\n"
    rows = "".join(f"| {d:g} | " + " | ".join(f"{100 * a:.0f}%" for a in row) + " |\n"
                   for d, row in zip(result.depths, result.accuracy))
    mean = "| mean | " + " | ".join(f"{100 * a:.0f}%" for a in result.column_means()) + " |\n"
    return head + rows + mean


def passkey_heatmap(result: PasskeyResult, path, title: str) -> None:
    """Accuracy as a PNG heat map (depth down, length across), each cell labelled."""
    from ..plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(result.lengths), 1.2 + 0.5 * len(result.depths)))
    image = ax.imshow(result.accuracy, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(result.lengths)), [str(n) for n in result.lengths])
    ax.set_yticks(range(len(result.depths)), [f"{d:g}" for d in result.depths])
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("depth of the key")
    for i, row in enumerate(result.accuracy):
        for j, a in enumerate(row):
            ax.text(j, i, f"{100 * a:.0f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="accuracy")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def context_before_loading(model: str, lora: str | None, scaling: RopeScaling | None) -> int | None:
    """The context a local model folder will have after RoPE scaling, from config.json alone (None for a hub id)."""
    from pathlib import Path
    from types import SimpleNamespace

    from ..io import read_json
    from ..meta import read_meta
    from ..model.rope import rope_parameters, scaled_context

    path = Path(model) / "config.json"
    if not path.is_file():
        return None
    config = SimpleNamespace(**read_json(path, "the model's config.json is malformed"))
    for extra in [read_meta(lora).rope_scaling if lora else None, scaling]:
        if extra:
            config.rope_parameters = rope_parameters(config, extra)
    return scaled_context(config)


def evaluate_passkey(cfg) -> tuple[PasskeyResult, str]:
    """``zhllama eval passkey`` (cfg: :class:`zhllama.eval.config.PasskeyConfig`): result and table; writes
    ``passkey.json``, ``passkey.md`` and ``passkey.png`` into ``cfg.out``."""
    from pathlib import Path

    from ..infer.config import EngineConfig
    from ..io import write_json_atomic, write_text_atomic

    m = cfg.load
    check_depths(cfg.depths)
    context = context_before_loading(m.model, m.lora, cfg.rope_scaling)
    if context:
        check_lengths(cfg.lengths, context, cfg.digits + 1)  # the exact answer length is known after loading
    engine = EngineConfig(**m.load_options(), template="none", rope_scaling=cfg.rope_scaling).load()
    result = passkey_accuracy(engine, cfg.lengths, cfg.depths, cfg.trials, cfg.digits, cfg.seed, cfg.batch_size)
    table = passkey_table(result)
    out = Path(cfg.out)
    title = f"passkey: {m.model}" + (f" + {m.lora}" if m.lora else "") + (f", {cfg.rope_scaling}" if cfg.rope_scaling else "")
    rope = str(cfg.rope_scaling) if cfg.rope_scaling else None
    write_json_atomic(out / "passkey.json", {"model": str(m.model), "lora": m.lora, "rope_scaling": rope,
                                             "digits": cfg.digits, "seed": cfg.seed, **result.to_json()})
    write_text_atomic(out / "passkey.md", f"# {title}\n\n{table}")
    passkey_heatmap(result, out / "passkey.png", title)
    return result, table


def passkey_command(cfg) -> int:
    """``zhllama eval passkey``: run ``cfg`` (a :class:`~zhllama.eval.config.PasskeyConfig`), print the table."""
    result, table = evaluate_passkey(cfg)
    print(table, end="")
    print(f"mean accuracy {100 * result.mean():.1f}%; wrote {cfg.out}/passkey.json, passkey.md and passkey.png")
    return 0


TASK = EvalTask("passkey", PasskeyConfig, passkey_command,
                help="passkey retrieval: accuracy by prompt length and depth",
                description="Hide a random number at chosen depths of a Chinese filler text of chosen lengths and ask "
                            "the model for it (greedy). Prints accuracy by length x depth and writes OUT/passkey.json, "
                            "OUT/passkey.md and a heat map OUT/passkey.png: the standard check that a model uses its "
                            "long context (e.g. after train --rope-scaling, or with --rope-scaling at inference).")
