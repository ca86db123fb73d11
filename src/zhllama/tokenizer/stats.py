"""How well tokenizers compress text: a table per tokenizer and text file.

A tokenizer is a SentencePiece ``.model`` file, a folder holding ``tokenizer.model`` (read with
SentencePiece, the reference the Hugging Face files are checked against), a byte-level BPE or any
other Hugging Face tokenizer folder (read with zhllama's loader, i.e. ``AutoTokenizer``), or a GGUF
file (its vocabulary tokenized by llama.cpp, with llama-cpp-python).  Each document is encoded on
its own, without BOS/EOS.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import option
from ..errors import ZhllamaError
from .backend import open_tokenizer
from .merge import HAN_CHAR


@dataclass(kw_only=True)
class TokenizerStatsConfig:
    """``zhllama tokenizer stats``: its options."""

    tokenizer: list[str] = option("a .model file, a tokenizer folder or a .gguf file (its vocabulary, read by "
                                  "llama.cpp); repeat to compare", metavar="T", repeat="append")
    text: list[str] = option(".txt/.jsonl/.json text files (.gz accepted)", metavar="FILE")
    text_field: str = option("JSON field holding the text", "text")
    json: bool = option("print JSON instead of a table", False)
    plot: str | None = option("also save a bar chart", None, metavar="PNG")


def tokenizer_label(path: str | Path) -> str:
    p = Path(path)
    return p.parent.name if p.name in ("tokenizer.model", "tokenizer.json") else p.name


@dataclass
class TextStats:
    tokenizer: str
    text: str
    vocab_size: int
    documents: int
    characters: int
    chinese_characters: int
    tokens: int
    chinese_chars_per_token: float
    tokens_per_char: float
    bytes_per_token: float
    unk_rate: float
    roundtrip_rate: float


def measure(tok, label: str, text_name: str, docs: list[str]) -> TextStats:
    ids = tok.encode_batch(docs)
    tokens = sum(len(x) for x in ids)
    unk = sum(x.count(tok.unk_id) for x in ids) if tok.unk_id is not None else 0
    exact = sum(tok.decode(x) == d for x, d in zip(ids, docs))
    chars = sum(len(d) for d in docs)
    zh = sum(len(HAN_CHAR.findall(d)) for d in docs)
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    per = max(tokens, 1)
    return TextStats(label, text_name, tok.vocab_size, len(docs), chars, zh, tokens, zh / per,
                     tokens / max(chars, 1), nbytes / per, unk / per, exact / max(len(docs), 1))


def read_docs(path: str | Path, text_field: str) -> list[str]:
    from ..text import iter_documents

    docs = list(iter_documents(path, text_field))
    if not docs:
        raise ZhllamaError(f"no text in {path}", "give a file with at least one non-blank document")
    return docs


def collect_stats(tokenizers: list[str], texts: list[str], text_field: str = "text", progress: bool = True) -> list[TextStats]:
    from tqdm import tqdm

    corpora = {t: read_docs(t, text_field) for t in texts}
    rows = []
    labels = [tokenizer_label(t) for t in tokenizers]
    if len(set(labels)) < len(labels):
        labels = [str(t) for t in tokenizers]
    with tqdm(total=len(tokenizers) * len(texts), desc="measuring", disable=None if progress else True) as bar:
        for path, label in zip(tokenizers, labels):
            tok = open_tokenizer(path)
            for text, docs in corpora.items():
                rows.append(measure(tok, label, Path(text).name, docs))
                bar.update(1)
    return rows


COLUMNS = [("tokenizer", "tokenizer", "{}"), ("text", "text", "{}"), ("vocab_size", "vocab", "{:,}"),
           ("chinese_chars_per_token", "zh chars/tok", "{:.3f}"), ("tokens_per_char", "tok/char", "{:.3f}"),
           ("bytes_per_token", "bytes/tok", "{:.2f}"), ("unk_rate", "unk rate", "{:.4%}"),
           ("roundtrip_rate", "round-trip", "{:.2%}")]


def format_table(rows: list[TextStats]) -> str:
    cells = [[head for _, head, _ in COLUMNS]]
    cells += [[fmt.format(getattr(r, key)) for key, _, fmt in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rows_json(rows: list[TextStats]) -> str:
    return json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2)


def check_plot_path(png: str | Path) -> Path:
    out = Path(png)
    if out.suffix.lower() != ".png":
        raise ZhllamaError(f"--plot {out}: expected a .png file name", "end the file name in .png")
    return out


def plot_stats(rows: list[TextStats], png: str | Path) -> Path:
    """Grouped bars of Chinese characters per token and bytes per token, per text and tokenizer."""
    from ..plots import pyplot, save_figure

    plt = pyplot()
    out = check_plot_path(png)
    toks = list(dict.fromkeys(r.tokenizer for r in rows))
    texts = list(dict.fromkeys(r.text for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(6 + 1.5 * len(texts) * len(toks) / 2, 4))
    width = 0.8 / len(toks)
    for ax, key, title in zip(axes, ("chinese_chars_per_token", "bytes_per_token"),
                              ("Chinese characters per token", "UTF-8 bytes per token")):
        for k, tok in enumerate(toks):
            vals = [next((r for r in rows if r.tokenizer == tok and r.text == t), None) for t in texts]
            ax.bar([i + k * width for i in range(len(texts))], [getattr(v, key) if v else 0 for v in vals], width, label=tok)
        ax.set_xticks([i + width * (len(toks) - 1) / 2 for i in range(len(texts))], texts, rotation=15)
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out, dpi=120)
