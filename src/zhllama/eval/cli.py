"""``zhllama eval NAME``: one sub-command per evaluation of the registry (``eval/registry.py``), its options
generated from the task's schema."""

from __future__ import annotations

import argparse

from ..config import add_dataclass_args, from_args


def register(sub: argparse._SubParsersAction) -> None:
    from .registry import EVAL_TASKS

    p = sub.add_parser("eval", help="evaluate models: " + ", ".join(EVAL_TASKS),
                       description="Evaluate models: one ACTION per evaluation (`zhllama eval ACTION --help` "
                                   "tells more).")
    esub = p.add_subparsers(dest="eval_command", metavar="ACTION", required=True)
    for name, task in EVAL_TASKS.items():
        sp = esub.add_parser(name, help=task.help, description=task.description)
        add_dataclass_args(sp, task.schema, overrides=False)
        sp.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .registry import EVAL_TASKS

    task = EVAL_TASKS[args.eval_command]
    return task.run(from_args(task.schema, args))
