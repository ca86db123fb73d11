"""Reading the chosen letter out of a chat model's free-form answer (``eval mc --generate``).

Rules, first match wins:

1. the answer starts with the letter: ``B``, ``B.``, ``(B)``, ``【B】``, ``B。因为...``;
2. an answer phrase names it: ``答案是B``, ``答案：B``, ``正确答案为（B）``, ``应选B``, ``选择B``,
   ``选项B``; a negated phrase (``答案不是A``) does not count;
3. ``B选项正确`` / ``B项正确`` / ``B正确`` / ``B是正确的``;
4. exactly one option's text occurs in the answer (``土地`` for ``B. 土地``), longest options
   first so that an option containing another wins;
5. the first letter A-D standing alone (not inside a Latin word such as ``DNA``);
6. otherwise no answer (counted as wrong).
"""

from __future__ import annotations

import re

from .mc_data import LETTERS

_NOT_WORD_AFTER = r"(?![A-Za-z])"
_LEADING = re.compile(r"^\s*[\(（\[【]?\s*([ABCD])" + _NOT_WORD_AFTER)
_PHRASE = re.compile(r"(?:答案|选项|应选|选择|选)(?:应该|应)?(?:是|为)?\s*[:：]?\s*[\(（\[【]?\s*([ABCD])" + _NOT_WORD_AFTER)
_NEGATED = re.compile(r"(?:不是|不选|并非|非)\s*[\(（\[【]?\s*$")
_CORRECT = re.compile(r"(?<![A-Za-z])([ABCD])\s*(?:选?项)?\s*(?:是)?(?:正确|对)")
_STANDALONE = re.compile(r"(?<![A-Za-z])([ABCD])" + _NOT_WORD_AFTER)


def extract_choice(text: str, options: tuple[str, ...] | list[str] = ()) -> str | None:
    """The letter A-D a generated answer chooses, or None (see the module docstring for the rules)."""
    m = _LEADING.match(text)
    if m:
        return m.group(1)
    for m in _PHRASE.finditer(text):
        if not _NEGATED.search(text[: m.start(1)]):
            return m.group(1)
    m = _CORRECT.search(text)
    if m:
        return m.group(1)
    letter = _single_option_mentioned(text, options)
    if letter:
        return letter
    m = _STANDALONE.search(text)
    return m.group(1) if m else None


def _single_option_mentioned(text: str, options) -> str | None:
    found: list[str] = []
    rest = text
    for letter, option in sorted(zip(LETTERS, options), key=lambda lo: -len(lo[1])):
        if option and option in rest:
            found.append(letter)
            rest = rest.replace(option, " ")
    return found[0] if len(found) == 1 else None
