"""The terminal chat: a multi-turn conversation with slash commands, replies streamed as they decode.

Replies go to stdout and everything else (the banner, command answers, the ``>>>`` prompt) to
stderr, so ``echo 你好 | zhllama chat --model DIR > replies.txt`` captures exactly the replies.
"""

from __future__ import annotations

import typing
from dataclasses import replace
from typing import TextIO

from ..errors import ZhllamaError
from .sampling import SamplingParams

HELP = """commands:
  /help                      this list
  /exit, /quit               leave (so does Ctrl-D)
  /clear                     forget the conversation so far
  /system TEXT               set the system prompt (and clear the conversation); /system alone shows it
  /temperature X             sampling temperature, 0 = greedy
  /top_p X  /top_k N         nucleus / top-k sampling (top_k 0 = off)
  /repetition_penalty X      1.0 = off
  /max_tokens N              most tokens per reply
  /seed N | /seed none       reproducible sampling
  /stop TEXT | /stop none    add a stop string / remove them all
  /guidance_scale X          classifier-free guidance, 1 = off
  /negative TEXT | /negative none   the CFG negative prompt (it takes the system prompt's place)
  /params                    show the current settings
anything else is sent to the model as your message."""

# /temperature 0.2 ... : every number field of SamplingParams, and max_tokens for max_new_tokens
NUMERIC = {name: kind for name, kind in typing.get_type_hints(SamplingParams).items() if kind in (int, float)}
NUMERIC["max_tokens"] = NUMERIC["max_new_tokens"]


class ChatSession:
    """The conversation and settings of one chat; ``reply`` streams the model's answer."""

    def __init__(self, engine, params: SamplingParams | None = None, system: str | None = None):
        self.engine = engine
        self.params = params or SamplingParams()
        self.system = system
        self.history: list[dict] = []

    def messages(self, user: str) -> list[dict]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history + [{"role": "user", "content": user}]

    def reply(self, user: str):
        """Yield the reply's text deltas; the turn joins the history once the reply is complete."""
        messages = self.messages(user)
        prompt = self.engine.chat_prompt(messages, self.params.max_new_tokens)
        negative = self.engine.negative_chat_prompt(messages, self.params)
        parts = []
        for _, delta, _ in self.engine.stream([prompt], self.params, negatives=[negative]):
            parts.append(delta)
            yield delta
        self.history += [{"role": "user", "content": user}, {"role": "assistant", "content": "".join(parts)}]

    def command(self, line: str) -> str | None:
        """Apply a slash command; return the text to show, or None for /exit."""
        name, _, arg = line[1:].partition(" ")
        name, arg = name.strip().lower(), arg.strip()
        if name in ("exit", "quit"):
            return None
        if name == "help":
            return HELP
        if name == "clear":
            self.history = []
            return "conversation cleared"
        if name == "system":
            if not arg:
                return f"system prompt: {self.system or '(template default)'}"
            self.system, self.history = arg, []
            return "system prompt set; conversation cleared"
        if name == "params":
            return self.describe()
        if name in NUMERIC:
            return self._set_number(name, arg)
        if name == "seed":
            return self._set(seed=None if arg.lower() in ("", "none") else self._parse(name, arg, int))
        if name == "stop":
            stop = () if arg.lower() in ("", "none") else self.params.stop + (arg.replace("\\n", "\n").replace("\\t", "\t"),)
            return self._set(stop=stop)
        if name == "negative":
            return self._set(negative_prompt=None if arg.lower() in ("", "none") else arg)
        return f"unknown command /{name} (type /help)"

    def _set_number(self, name: str, arg: str) -> str:
        field = "max_new_tokens" if name in ("max_tokens", "max_new_tokens") else name
        return self._set(**{field: self._parse(name, arg, NUMERIC[name])})

    @staticmethod
    def _parse(name: str, arg: str, kind):
        try:
            return kind(arg)
        except ValueError:
            raise ZhllamaError(f"/{name} needs a{'n integer' if kind is int else ' number'}, got '{arg}'",
                               f"e.g. /{name} {'128' if kind is int else '0.2'}") from None

    def _set(self, **changes) -> str:
        self.params = replace(self.params, **changes).validate()
        return self.describe()

    def describe(self) -> str:
        p = self.params
        return (f"temperature={p.temperature} top_p={p.top_p} top_k={p.top_k} "
                f"repetition_penalty={p.repetition_penalty} max_tokens={p.max_new_tokens} seed={p.seed} "
                f"stop={list(p.stop)} guidance_scale={p.guidance_scale} negative_prompt={p.negative_prompt!r} "
                f"template={self.engine.template.name}")


def run_chat(session: ChatSession, stdin: TextIO, stdout: TextIO, stderr: TextIO, interactive: bool) -> int:
    """Read messages and commands line by line until /exit or end of input."""
    if interactive:
        print(f"zhllama chat ({session.engine.template.name} template, context {session.engine.context_length} "
              f"tokens); /help for commands, /exit to leave", file=stderr)
    while True:
        if interactive:
            print(">>> ", end="", file=stderr, flush=True)
        line = stdin.readline()
        if not line:
            return 0
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.startswith("/"):
            try:
                answer = session.command(line)
            except ZhllamaError as e:
                answer = f"error: {e}"
            if answer is None:
                return 0
            print(answer, file=stderr, flush=True)
            continue
        _answer(session, line, stdout, stderr)


def _answer(session: ChatSession, line: str, stdout: TextIO, stderr: TextIO) -> None:
    try:
        for delta in session.reply(line):
            stdout.write(delta)
            stdout.flush()
    except ZhllamaError as e:
        print(f"error: {e}", file=stderr, flush=True)
        return
    except KeyboardInterrupt:  # Ctrl-C stops this reply, not the chat
        print("\n(interrupted)", file=stderr, flush=True)
    stdout.write("\n")
    stdout.flush()
