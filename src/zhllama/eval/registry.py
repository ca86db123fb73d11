"""The evaluations, one entry each (:class:`~zhllama.eval.task.EvalTask`): ``zhllama eval NAME`` reads this table.

Adding a benchmark: a module with its schema, its run function and a ``TASK`` entry, and its line here.
"""

from __future__ import annotations

from . import compare, mc, passkey, ppl_task, report, reward
from .task import EvalTask

EVAL_TASKS: dict[str, EvalTask] = {t.name: t for t in (
    ppl_task.TASK,
    mc.TASK,
    compare.TASK,
    passkey.TASK,
    reward.TASK,
    report.TASK,
)}
