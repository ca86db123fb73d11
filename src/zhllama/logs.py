"""A clean terminal: library logs, warnings and progress bars go to a log file.

Every ``zhllama COMMAND`` runs inside :func:`command_logging`.  While it runs, the loggers of
transformers, peft, datasets, accelerate, huggingface_hub and torch, Python's warnings and
zhllama's own INFO records are written to a log file; the libraries' progress bars ("Loading
weights", "Generating train split", ...) are turned off, except huggingface_hub's download bars.
zhllama's own tqdm bars, result lines and warnings stay on the terminal.  ``zhllama --verbose``
leaves the libraries as they are and shows zhllama's INFO records too.

The log is written under :func:`log_dir` (``$ZHLLAMA_LOG_DIR``, else ``~/.cache/zhllama/logs``)
while the command runs (an output folder may not exist yet, or be replaced when the command
finishes) and is appended to ``OUT/zhllama.log`` when the command finishes and has an output
folder (see :func:`claim_output_folder`); otherwise, and when the command fails, it stays there.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .errors import ZhllamaError

LOG_FILE = "zhllama.log"
LIBRARY_LOGGERS = ("transformers", "peft", "datasets", "accelerate", "huggingface_hub", "torch", "py.warnings")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class LogSession:
    path: Path  # the file being written (under log_dir() while the command runs)
    handler: logging.Handler
    output_folder: Path | None = None  # where the log ends up, when the command has one
    saved: dict = field(default_factory=dict)  # logger name -> (handlers, level, propagate) before
    bars_on: dict = field(default_factory=dict)  # library -> whether its progress bars were on before

    def take_over(self, name: str) -> None:
        """Route one library's records to the log file and turn its bars off (again after its import)."""
        if _session is not self:  # a late import hook firing after the command ended
            return
        if name in _LIBRARIES and name in sys.modules:
            _LIBRARIES[name].configure()  # let it add its own handler now, so that it is taken off here
        self.saved[name] = _route(name, self.handler)
        if name in _LIBRARIES and name in sys.modules:
            self.bars_on[name] = _LIBRARIES[name].switch_bars(False)

    def give_back(self) -> None:
        for name, state in self.saved.items():
            _unroute(name, state)
        for name, was_on in self.bars_on.items():
            if was_on:
                _LIBRARIES[name].switch_bars(True)


_session: LogSession | None = None


def log_dir() -> Path:
    """Where logs are written while a command runs, and kept for commands without an output folder."""
    if os.environ.get("ZHLLAMA_LOG_DIR"):
        return Path(os.environ["ZHLLAMA_LOG_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "zhllama" / "logs"


def _writable_log_dir() -> Path:
    """log_dir(), or a folder in the temp dir where the home folder is read-only."""
    for folder in (log_dir(), Path(tempfile.gettempdir()) / "zhllama-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        except OSError:
            continue
    raise ZhllamaError(f"cannot create a log folder: {log_dir()}", "set ZHLLAMA_LOG_DIR to a writable folder")


def quiet_terminal() -> bool:
    """True inside a ``zhllama`` command run without ``--verbose`` (library output goes to the log)."""
    return _session is not None


def claim_output_folder(path: str | Path | None) -> None:
    """Name the folder that receives this command's ``zhllama.log``; the first folder named wins."""
    if _session is not None and _session.output_folder is None and path:
        _session.output_folder = Path(path)


@contextmanager
def command_logging(command: str, output_folder: str | Path | None = None,
                    verbose: bool = False) -> Iterator[LogSession | None]:
    """Run a command with library output in a log file (or, ``verbose``, on the terminal as usual)."""
    global _session
    own = logging.getLogger("zhllama")
    if verbose:
        with _attached(own, _stderr_handler(logging.INFO, logging.Formatter("%(name)s: %(message)s"))):
            yield None
        return
    path = _writable_log_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{command or 'zhllama'}-{os.getpid()}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    session = _session = LogSession(path, handler)
    claim_output_folder(output_folder)
    finder = _AfterImport({name: (lambda n=name: session.take_over(n)) for name in _LIBRARIES})
    sys.meta_path.insert(0, finder)
    finished = False
    try:
        with _attached(own, handler), _attached(own, _stderr_handler(logging.WARNING, _OneLine())):
            for name in LIBRARY_LOGGERS:
                session.take_over(name)
            logging.captureWarnings(True)
            try:
                yield session
                finished = True
            finally:
                logging.captureWarnings(False)
                session.give_back()
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        handler.close()
        _session = None
        # A command that failed may have refused an existing folder that is not its own: leave that alone.
        session.path = _file_into_output_folder(path, session.output_folder if finished else None)


# ---- loggers ----

def _stderr_handler(level: int, formatter: logging.Formatter) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(formatter)
    return handler


class _OneLine(logging.Formatter):
    """``zhllama: warning: ...`` on the terminal; a traceback, if any, is in the log file only."""

    def format(self, record: logging.LogRecord) -> str:
        return f"zhllama: {record.levelname.lower()}: {record.getMessage()}"


@contextmanager
def _attached(logger: logging.Logger, handler: logging.Handler) -> Iterator[None]:
    """``handler`` on ``logger`` for the block, with the logger passing INFO records on."""
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if not old_level else min(old_level, logging.INFO))
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _route(name: str, handler: logging.Handler) -> tuple:
    """Send one library's records (INFO and up; torch: WARNING) only to ``handler``; return the old state."""
    logger = logging.getLogger(name)
    state = ([h for h in logger.handlers if h is not handler], logger.level, logger.propagate)
    logger.handlers = [handler]
    logger.setLevel(logging.WARNING if name == "torch" else logging.INFO)
    logger.propagate = False
    return state


def _unroute(name: str, state: tuple) -> None:
    logger = logging.getLogger(name)
    logger.handlers, level, logger.propagate = list(state[0]), state[1], state[2]
    logger.setLevel(level)


# ---- libraries that set up their own stderr handler and progress bars when imported ----

@dataclass(frozen=True)
class _Library:
    logging_module: str  # importing it and calling its get_logger() adds the library's stderr handler
    bars: str | None = None  # the module with its progress-bar switches

    def configure(self) -> None:
        importlib.import_module(self.logging_module).get_logger()

    def switch_bars(self, on: bool) -> bool:
        """Turn the library's progress bars on or off; return whether they were on."""
        if self.bars is None:
            return False
        switches = importlib.import_module(self.bars)
        was_on = switches.is_progress_bar_enabled()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an environment variable that pins them wins; fine
            (switches.enable_progress_bar if on else switches.disable_progress_bar)()
        return was_on


# huggingface_hub's bars stay: they are download progress, minutes long for a real model.
_LIBRARIES = {
    "transformers": _Library("transformers.utils.logging", bars="transformers.utils.logging"),
    "datasets": _Library("datasets.utils.logging", bars="datasets"),
    "huggingface_hub": _Library("huggingface_hub.utils.logging"),
}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``actions[name]()`` right after package ``name`` is first imported.

    Commands import their libraries lazily, and transformers, datasets and huggingface_hub add
    their stderr handler and set up their progress bars when imported, after the command started.
    (A spec found only to test availability, as transformers does, is never executed: the action
    waits for the spec that is.)
    """

    def __init__(self, actions: dict[str, Callable[[], None]]):
        self.actions = dict(actions)
        self._finding: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.actions or fullname in self._finding:
            return None
        self._finding.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)  # what the other finders answer
        finally:
            self._finding.discard(fullname)
        if spec is not None and spec.loader is not None:
            _run_after_exec(spec.loader, lambda: self.actions.pop(fullname, lambda: None)())
        return spec


def _run_after_exec(loader, action: Callable[[], None]) -> None:
    def exec_module(module):
        del loader.exec_module  # back to the loader's own method
        loader.exec_module(module)
        action()

    loader.exec_module = exec_module


# ---- the file ----

def _file_into_output_folder(path: Path, folder: Path | None) -> Path:
    """Append the command's log to ``folder/zhllama.log`` when that folder exists; return where the log is."""
    if folder is None or not folder.is_dir() or not path.exists():
        return path
    target = folder / LOG_FILE
    with open(target, "ab") as out:
        out.write(path.read_bytes())
    path.unlink()
    return target
