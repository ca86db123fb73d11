"""The docs stay true to the code.

* every ``zhllama ...`` command shown in README.md and docs/*.md (fenced code blocks, and inline
  code that starts with ``zhllama ``) parses with the current command line;
* every error message the docs quote (a ``zhllama: error: ...`` line in a code block or inline code)
  is one the source can raise;
* every relative link points to an existing file, and to an existing heading when it has an anchor.

Commands are read the way a reader would type them: ``\\`` continuations are joined, comments,
redirections, pipes, ``&&``, ``&``, environment assignments and launchers (``python -m``,
``torchrun ... -m``) are stripped, and synopsis notation is resolved: ``[--opt VALUE]`` is included,
``[FILE ...]`` and ``[prose]`` are dropped, ``a|b`` and ``{a,b}`` take the first choice, ``0..5``
its lower bound, and upper-case value placeholders get a sample value (``N`` -> 8).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from zhllama.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"", "bash", "sh", "shell", "console", "text"}
FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
ERROR_PREFIX = "zhllama: error: "

# Values for upper-case placeholders of typed options; any other placeholder (DIR, FILE, NAME) is
# a fine string value as it is.
PLACEHOLDER_VALUES = {"N": "8", "S": "256"}
SHELL_SEPARATORS = {"|", "||", "&&", ";", "&"}
REDIRECT = re.compile(r"^\d*(>>?|<|>&|&>)")


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int
    text: str
    inline: bool = False  # inline code in prose: may name a command without its required arguments

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


# --- reading Markdown --------------------------------------------------------------------------


def split_blocks(path: Path) -> tuple[list[Snippet], list[Snippet]]:
    """(code lines of shell-like fenced blocks, prose paragraphs), each with its first line number."""
    code, prose, para = [], [], []
    fence_lang = None
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line)
        if m:
            fence_lang = m.group(2).lower() if fence_lang is None else None
            para = flush(prose, para, path)
            continue
        if fence_lang is not None:
            if fence_lang in SHELL_LANGS:
                code.append(Snippet(path, no, line))
        elif line.strip():
            para.append((no, line))
        else:
            para = flush(prose, para, path)
    flush(prose, para, path)
    return code, prose


def flush(prose: list[Snippet], para: list[tuple[int, str]], path: Path) -> list:
    if para:
        prose.append(Snippet(path, para[0][0], "\n".join(text for _, text in para)))
    return []


def logical_lines(code: list[Snippet]) -> list[Snippet]:
    """Join ``\\`` continuations and indented synopsis options; drop here-document bodies."""
    out, pending, heredoc_end = [], None, None
    for s in code:
        if heredoc_end is not None:
            heredoc_end = None if s.text.strip() == heredoc_end else heredoc_end
            continue
        if pending is None and out and re.match(r"^\s+\[?-", s.text):  # a usage line wrapped by hand
            out[-1] = Snippet(out[-1].path, out[-1].line, out[-1].text + " " + s.text.strip())
            continue
        text = s.text if pending is None else pending.text + " " + s.text.strip()
        start = s if pending is None else pending
        if text.rstrip().endswith("\\"):
            pending = Snippet(start.path, start.line, text.rstrip()[:-1])
            continue
        pending = None
        m = re.search(r"<<-?\s*'?\"?(\w+)", text)
        heredoc_end = m.group(1) if m else None
        out.append(Snippet(start.path, start.line, text))
    return out


def inline_code(prose: list[Snippet]) -> list[Snippet]:
    spans = []
    for p in prose:
        for m in re.finditer(r"`([^`]+)`", p.text):
            text = " ".join(m.group(1).replace("\\|", "|").split())
            spans.append(Snippet(p.path, p.line + p.text[: m.start()].count("\n"), text, inline=True))
    return spans


# --- turning a shown command into argv -----------------------------------------------------------


def strip_comment(line: str) -> str:
    """Cut a shell comment: ``#`` at the start of a word, outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def zhllama_argv(words: list[str]) -> list[str] | None:
    """The arguments after ``zhllama`` in one shell command, or None when it does not run zhllama."""
    words = drop_redirections(words)
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):  # VAR=value prefixes
        words = words[1:]
    if words[:1] == ["zhllama"]:
        return words[1:]
    for i in range(len(words) - 1):  # python -m zhllama, torchrun ... -m zhllama
        if words[i] == "-m" and words[i + 1] == "zhllama":
            return words[i + 2 :]
    return None


def drop_redirections(words: list[str]) -> list[str]:
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif REDIRECT.match(w):
            skip = REDIRECT.fullmatch(w) is not None  # `> file`: the target is the next word
        else:
            out.append(w)
    return out


def shell_commands(line: str) -> list[list[str]]:
    """The zhllama argument lists of a shell line (pipes, ``&&``, ``;``, ``&`` split it)."""
    try:
        words = shlex.split(strip_comment(line))
    except ValueError:  # unbalanced quotes: not a command a reader could run either
        return [["<unparsable shell line>"]] if re.search(r"(^|[\s;|&])zhllama\s", line) else []
    commands, current = [], []
    for w in [*words, ";"]:
        if w in SHELL_SEPARATORS:
            argv = zhllama_argv(current) if current else None
            if argv is not None:
                commands.append(argv)
            current = []
        else:
            current.append(w)
    return commands


def resolve_synopsis(argv: list[str]) -> list[str]:
    """Turn usage notation into one concrete command line (see the module docstring)."""
    words = [choose_first(w) for w in flatten(parse_groups(argv))]
    words = drop_repeat_markers(words)
    words = drop_generic_options(words)
    return [PLACEHOLDER_VALUES.get(w, w) for w in words]


def choose_first(word: str) -> str:
    word = re.sub(r"\{([^{},]+),[^{}]*\}", r"\1", word)  # {cmmlu,ceval} -> cmmlu
    word = re.sub(r"(?<=[^|])\|.*", "", word)  # auto|float16 -> auto
    return re.sub(r"^(\d+)\.\.\d+$", r"\1", word)  # 0..5 -> 0


def parse_groups(words: list[str]) -> list:
    """Nest ``[ ... ]`` groups: a list of words and sub-lists."""
    root: list = []
    stack = [root]
    for w in words:
        while w.startswith("[") and len(w) > 1:
            group: list = []
            stack[-1].append(group)
            stack.append(group)
            w = w[1:]
        closing = len(w) - len(w.rstrip("]")) if len(stack) > 1 else 0
        w = w[: len(w) - closing] if closing else w
        if w:
            stack[-1].append(w)
        for _ in range(min(closing, len(stack) - 1)):
            stack.pop()
    return root


def flatten(items: list) -> list[str]:
    """Keep an optional group that starts with an option; drop ``[FILE ...]`` and ``[prose]``."""
    out = []
    for item in items:
        if isinstance(item, list):
            inner = flatten(item)
            if inner and inner[0].startswith("-"):
                out += inner
        else:
            out.append(item)
    return out


def drop_repeat_markers(words: list[str]) -> list[str]:
    """``--add ...`` (repeat the option) is dropped whole; a trailing ``...`` after a value alone."""
    out: list[str] = []
    for w in words:
        if w == "...":
            if out and out[-1].startswith("-"):
                out.pop()
        else:
            out.append(w)
    return out


def drop_generic_options(words: list[str]) -> list[str]:
    """``--FLAG VALUE`` stands for any option: drop it and its value."""
    out, dropping = [], False
    for w in words:
        if re.fullmatch(r"--[A-Z][A-Z-]*", w):
            dropping = True
        elif dropping and not w.startswith("-"):
            continue
        else:
            dropping = False
            out.append(w)
    return out


# --- collecting what the docs show ---------------------------------------------------------------


def shown_commands() -> list[tuple[Snippet, list[str]]]:
    found = []
    for path in DOC_FILES:
        code, prose = split_blocks(path)
        candidates = logical_lines(code) + [s for s in inline_code(prose) if s.text.startswith("zhllama ")]
        for s in candidates:
            if "zhllama" in s.text:
                found += [(s, argv) for argv in shell_commands(s.text)]
    return found


def quoted_errors() -> list[Snippet]:
    found = []
    for path in DOC_FILES:
        code, prose = split_blocks(path)
        for s in code + inline_code(prose):
            text = s.text.strip()
            if text.startswith(ERROR_PREFIX) and text[len(ERROR_PREFIX) :].strip(" ."):  # not the bare format
                found.append(Snippet(s.path, s.line, text[len(ERROR_PREFIX) :]))
    return found


COMMANDS = shown_commands()
ERRORS = quoted_errors()


def unique_ids(snippets: list[Snippet]) -> list[str]:
    ids, seen = [], {}
    for s in snippets:
        seen[s.where] = seen.get(s.where, 0) + 1
        ids.append(s.where if seen[s.where] == 1 else f"{s.where}#{seen[s.where]}")
    return ids


# --- (a) commands parse --------------------------------------------------------------------------


def all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found, todo = [], [parser]
    while todo:
        current = todo.pop()
        found.append(current)
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += list(action.choices.values())
    return found


def cli_parser(require_arguments: bool) -> argparse.ArgumentParser:
    """The real CLI, with abbreviated options refused so that the docs spell every flag in full.

    Without ``require_arguments`` nothing is required: inline code such as `zhllama eval ppl`
    names a command, and only its sub-command and the options it shows are checked.
    """
    p = build_parser()
    for sub in all_parsers(p):
        sub.allow_abbrev = False
        for action in sub._actions:
            if not require_arguments and action.required:
                action.required = False
                if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                    action.nargs = "?"
    return p


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return cli_parser(require_arguments=True)


@pytest.fixture(scope="module")
def naming_parser() -> argparse.ArgumentParser:
    return cli_parser(require_arguments=False)


def parse_problem(parser: argparse.ArgumentParser, argv: list[str], runnable: bool = True) -> str | None:
    """None when ``argv`` parses (to a runnable sub-command if ``runnable``; --help counts), else the error."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:
            return None if e.code == 0 else err.getvalue().strip().splitlines()[-1]
    return None if getattr(args, "func", None) or not runnable else "no sub-command to run"


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 60, [s.where for s, _ in COMMANDS]
    pages = {s.path.name for s, _ in COMMANDS}
    assert {"README.md", "pipeline.md", "tokenizer.md", "train.md", "infer.md", "serve.md", "eval.md", "export.md"} <= pages


@pytest.mark.parametrize("snippet,argv", COMMANDS, ids=unique_ids([s for s, _ in COMMANDS]))
def test_shown_command_parses(parser, naming_parser, snippet, argv):
    resolved = resolve_synopsis(argv)
    if snippet.inline:
        problem = parse_problem(naming_parser, resolved, runnable=False)
    else:
        problem = parse_problem(parser, resolved)
    assert problem is None, f"{snippet.where}: `{snippet.text.strip()}` -> zhllama {shlex.join(resolved)}: {problem}"


def test_a_wrong_flag_is_caught(parser):
    """The check above would catch a doc that shows a flag the CLI does not have."""
    [argv] = shell_commands("zhllama tokenizer train --corpus zh.txt --vocab-sise 8000 --out zh-sp  # typo")
    assert "unrecognized arguments: --vocab-sise" in parse_problem(parser, resolve_synopsis(argv))
    assert parse_problem(parser, ["train", "pt", "--lora-r", "8"]) is not None  # abbreviations refused


@pytest.mark.parametrize(
    "line,expected",
    [
        ("OMP_NUM_THREADS=1 zhllama chat --model m > out.txt 2>/dev/null", ["chat", "--model", "m"]),
        ("printf 'a\\n#b' | zhllama chat --model m  # comment", ["chat", "--model", "m"]),
        ("zhllama serve --model m & curl http://x", ["serve", "--model", "m"]),
        ("torchrun --nproc_per_node 8 -m zhllama train pt --config r.yaml", ["train", "pt", "--config", "r.yaml"]),
        (
            "zhllama tokenizer stats --tokenizer T [--tokenizer T ...] --text FILE [...] [--json] [--plot PNG]",
            ["tokenizer", "stats", "--tokenizer", "T", "--tokenizer", "T", "--text", "FILE", "--json", "--plot", "PNG"],
        ),
        (
            "zhllama merge --base BASE --lora A [--lora A ...] --out D [--dtype auto|float16] [--overwrite]",
            ["merge", "--base", "BASE", "--lora", "A", "--lora", "A", "--out", "D", "--dtype", "auto", "--overwrite"],
        ),
        (
            "zhllama eval mc --task {cmmlu,ceval} [--shots 0..5] [--generate [--max-new-tokens 32]] [sampling options]",
            ["eval", "mc", "--task", "cmmlu", "--shots", "0", "--generate", "--max-new-tokens", "32"],
        ),
        ("zhllama train pt|sft [--config RECIPE.yaml] [--FLAG VALUE ...]", ["train", "pt", "--config", "RECIPE.yaml"]),
        ("zhllama tokenizer merge --base BASE --add SP [--add ...] --max-pieces N", ["tokenizer", "merge", "--base", "BASE", "--add", "SP", "--max-pieces", "8"]),
    ],
)
def test_reading_a_shown_command(line, expected):
    [argv] = shell_commands(line)
    assert resolve_synopsis(argv) == expected


# --- (b) quoted errors exist in the source -------------------------------------------------------


def string_templates() -> list[re.Pattern]:
    """Every string literal under src/ as a regex: formatted values (and ``{}``/``%s``) match anything.

    Implicitly concatenated literals are one node in the AST, so a message split over source lines
    is matched whole.  Templates with under 8 literal characters would match almost anything.
    """
    templates = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                values = node.values
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                values = [node]
            else:
                continue
            pieces = [piece for v in values for piece in literal_pieces(v)]  # None = a formatted value
            if sum(len(p.strip()) for p in pieces if p) >= 8:
                templates.append(re.compile("".join("(.+?)" if p is None else re.escape(p) for p in pieces), re.S))
    return templates


def literal_pieces(value: ast.expr) -> list[str | None]:
    if not isinstance(value, ast.Constant):
        return [None]
    parts = re.split(r"\{[^{}]*\}|%[sdr]", value.value)
    return [piece for i, part in enumerate(parts) for piece in ([None, part] if i else [part])]


@pytest.fixture(scope="module")
def templates() -> list[re.Pattern]:
    return string_templates()


def test_the_docs_quote_errors():
    assert len(ERRORS) >= 3, [s.where for s in ERRORS]


def raised_by_source(text: str, templates: list[re.Pattern]) -> bool:
    """Whether ``text`` is a message the source can format, alone or as ``message (hint)``."""

    def known(part: str) -> bool:
        return any(t.fullmatch(part) for t in templates)

    if known(text):
        return True
    splits = [i for i in range(len(text)) if text.startswith(" (", i)] if text.endswith(")") else []
    return any(known(text[:i]) and known(text[i + 2 : -1]) for i in splits)


@pytest.mark.parametrize("quote", ERRORS, ids=unique_ids(ERRORS))
def test_quoted_error_exists_in_source(templates, quote):
    assert raised_by_source(quote.text, templates), (
        f"{quote.where}: the docs quote an error that nothing under src/ raises: {quote.text!r}"
    )


def test_an_invented_error_is_caught(templates):
    assert raised_by_source("pt.yaml: unknown key 'lora_rnak' (did you mean 'lora_rank'?)", templates)
    assert not raised_by_source("pt.yaml: unknown key 'lora_rnak' (did you mean 'lora_rank'? or not)", templates)
    assert not raised_by_source("output folder exists and holds checkpoints up to checkpoint-3: runs/pt", templates)
    assert not raised_by_source("the tokenizer is not a proper extension of the model's tokenizer: id 3", templates)


# --- (c) links resolve ---------------------------------------------------------------------------


def github_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors, seen = set(), {}
    _, prose = split_blocks(path)
    for p in prose:
        for line in p.text.splitlines():
            m = re.match(r"^#{1,6}\s+(.*)$", line)
            if m:
                slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
                n = seen.get(slug, 0)
                seen[slug] = n + 1
                anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def relative_links() -> list[tuple[Snippet, str]]:
    links = []
    for path in DOC_FILES:
        _, prose = split_blocks(path)
        for p in prose:
            text = re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), p.text)  # not links inside code
            for m in re.finditer(r"\]\(([^)\s]+)\)", text):
                target = m.group(1)
                if not re.match(r"^[a-z]+:", target):
                    links.append((Snippet(path, p.line + text[: m.start()].count("\n"), target), target))
    return links


LINKS = relative_links()


def test_the_docs_link_pages():
    assert len(LINKS) >= 30


@pytest.mark.parametrize("snippet,target", LINKS, ids=unique_ids([s for s, _ in LINKS]))
def test_relative_link_resolves(snippet, target):
    file_part, _, anchor = target.partition("#")
    dest = (snippet.path.parent / file_part).resolve() if file_part else snippet.path
    assert dest.exists(), f"{snippet.where}: link to a missing file: {target}"
    if anchor and dest.suffix == ".md":
        assert anchor in github_anchors(dest), f"{snippet.where}: no heading '#{anchor}' in {rel}"
