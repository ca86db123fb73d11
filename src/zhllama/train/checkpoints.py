"""What to do with an existing output folder: start, resume from the last complete checkpoint, or refuse."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ZhllamaError

log = logging.getLogger(__name__)

FINAL_DIR = "final"
STATE_FILE = "trainer_state.json"  # the Trainer writes it last: its presence marks a complete checkpoint
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class OutputPlan:
    resume_from: str | None  # checkpoint folder to continue from
    wipe: bool  # delete the folder first (--overwrite)


def checkpoints(out: Path) -> list[tuple[int, Path, bool]]:
    """``(step, folder, complete)`` for every checkpoint-N folder, oldest first."""
    found = []
    if out.is_dir():
        for p in out.iterdir():
            m = _CHECKPOINT.match(p.name)
            if m and p.is_dir():
                found.append((int(m.group(1)), p, (p / STATE_FILE).is_file()))
    return sorted(found)


def last_complete_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint that was written to the end (a partial one is skipped, with a warning)."""
    for step, path, complete in reversed(checkpoints(out)):
        if complete:
            return path
        log.warning("skipping %s: it has no %s (the run stopped while saving it)", path, STATE_FILE)
    return None


def plan_output_dir(out: Path, resume: bool, overwrite: bool) -> OutputPlan:
    from ..checks import check_output_path

    check_output_path(out, "folder", "output_dir")
    busy = out.is_dir() and any(out.iterdir())
    if overwrite:
        return OutputPlan(None, wipe=busy)
    last = last_complete_checkpoint(out)
    if resume:
        if last is None:
            if (out / FINAL_DIR).is_dir():
                raise ZhllamaError(f"{out} holds a finished run and no checkpoint to resume from",
                                   "choose another output_dir, or pass --overwrite to start over")
            if busy:
                raise ZhllamaError(f"--resume: no complete checkpoint in {out}", "pass --overwrite to start over")
            log.info("--resume: %s has no checkpoint yet; starting from the beginning", out)
            return OutputPlan(None, wipe=False)
        log.info("resuming from %s", last)
        return OutputPlan(str(last), wipe=False)
    if busy:
        what = "a finished run" if (out / FINAL_DIR).is_dir() else (
            f"checkpoints up to {last.name}" if last else "files")
        raise ZhllamaError(f"output folder already exists and holds {what}: {out}",
                           "pass --resume to continue from the last checkpoint, --overwrite to start over, "
                           "or choose another output_dir")
    return OutputPlan(None, wipe=False)
