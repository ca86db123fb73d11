"""The training progress on a quiet terminal: one bar with the latest loss; the per-step records go to the log.

Under ``zhllama COMMAND`` (see :mod:`zhllama.logs`) this replaces the Trainer's own ProgressCallback,
which prints every logged dict (``{'loss': ...}``) and an evaluation bar between the lines.
"""

from __future__ import annotations

import json
import logging

from tqdm.auto import tqdm
from transformers import PrinterCallback, ProgressCallback, TrainerCallback

log = logging.getLogger("zhllama.train.steps")


class StepBar(TrainerCallback):
    def __init__(self, desc: str):
        self.desc = desc
        self.bar = None
        self.postfix: dict[str, str] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step",
                            dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        log.info("step %d: %s", state.global_step, json.dumps(logs, default=str))
        for key in ("loss", "eval_loss"):
            if key in logs:
                self.postfix[key] = f"{logs[key]:.4g}"
        if self.bar is not None and self.postfix:
            self.bar.set_postfix(self.postfix, refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def use_step_bar(trainer, desc: str) -> None:
    """Swap the Trainer's printing callbacks for :class:`StepBar`."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StepBar(desc))
