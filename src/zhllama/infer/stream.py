"""From generated token ids to safe text deltas.

A Chinese character that is not a piece of the vocabulary is generated as 3 byte-fallback tokens
(``<0xE4>`` ``<0xBD>`` ``<0xA0>``); decoding after the first or second of them gives U+FFFD.  A
delta is therefore only released once the decoded text no longer ends in an incomplete character.

Only a short window of ids is decoded each step (the ids of the previous delta + the new ones) and
the delta is the difference of the two decodings, so the cost per token does not grow with the
length of the output.  Decoding a window rather than single tokens keeps SentencePiece's rule that
only the very first ``▁`` of a text loses its space: both decodings lose it alike.

Stop strings are held back too: text that could be the start of a stop string is not released
until the next tokens show it is not; a completed stop string ends the request and is cut.
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"


class TextStream:
    """The text of one request, released in safe pieces as its token ids arrive."""

    def __init__(self, tokenizer, stop: tuple[str, ...] = ()):
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.ids: list[int] = []
        self.text = ""  # decoded text of ids[:read], complete characters only
        self.sent = 0  # characters of self.text already released
        self.prefix = 0  # window start: ids of the previous release
        self.read = 0  # ids decoded into self.text
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        """Add a generated id; return the text that may be released now ('' while a character is incomplete)."""
        self.ids.append(int(token_id))
        before = self._decode(self.ids[self.prefix:self.read])
        after = self._decode(self.ids[self.prefix:])
        if after.endswith(REPLACEMENT):
            return ""  # an incomplete multi-byte character: wait for its remaining bytes
        self.text += after[len(before):]
        self.prefix, self.read = self.read, len(self.ids)
        return self._release()

    def _release(self) -> str:
        cut = self._find_stop()
        if cut is not None:
            self.stopped = True
            self.text = self.text[:cut]
            return self._take(cut)
        return self._take(len(self.text) - self._held_back())

    def _find_stop(self) -> int | None:
        """Position of the earliest complete stop string in the unreleased text."""
        hits = []
        for s in self.stop:
            pos = self.text.find(s, max(0, self.sent - len(s) + 1))
            if pos >= 0:
                hits.append(pos)
        return min(hits) if hits else None

    def _held_back(self) -> int:
        """Length of the longest tail of the unreleased text that starts a stop string."""
        tail = self.text[self.sent:]
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(tail)), longest, -1):
                if tail.endswith(s[:n]):
                    longest = n
                    break
        return longest

    def _take(self, end: int) -> str:
        end = max(end, self.sent)
        delta = self.text[self.sent:end]
        self.sent = end
        return delta

    def finish(self) -> str:
        """Release what is left when the request ends (EOS or length).

        Held-back text that turned out not to be a stop string is released; the bytes of a
        character cut off by the length limit are dropped rather than shown as U+FFFD.
        """
        if self.stopped:
            return ""
        return self._take(len(self.text))
