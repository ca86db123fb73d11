"""``McBenchmark``: one multiple-choice benchmark's public folder layout and subjects, an entry of
:data:`zhllama.eval.mc_benchmarks.MC_BENCHMARKS` (``zhllama eval mc --task NAME``).

Every benchmark is a folder of one CSV file per subject and split (``DIR/{split}/{file}``) with a
question, four options A-D and (where the split is published with them) the answer letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ZhllamaError


@dataclass(frozen=True)
class McBenchmark:
    """``title``: the name reports print; ``splits``: the first is evaluated by default; ``layout``: the folder layout as errors state it;
    ``columns``: field (question, A-D, answer, id) -> CSV column ("": none); ``extra_columns``: further
    columns of the published header; ``subjects``: file key -> (Chinese name, categories);
    ``split_in_file_name``: files are ``{key}_{split}.csv`` (else ``{key}.csv``); ``unanswered_splits``:
    published without answers; ``writes_submission``: the leaderboard's submission.json is written."""

    name: str
    title: str  # as reports name it, e.g. C-Eval
    splits: tuple[str, ...]
    layout: str
    columns: dict[str, str]
    subjects: dict[str, tuple[str, tuple[str, ...]]]
    categories: tuple[str, ...]
    extra_columns: tuple[str, ...] = ()
    split_in_file_name: bool = False
    unanswered_splits: tuple[str, ...] = ()
    writes_submission: bool = False

    def file_name(self, key: str, split: str) -> str:
        return f"{key}_{split}.csv" if self.split_in_file_name else f"{key}.csv"

    def subject_key(self, path: Path, split: str) -> str:
        """The subject key of a file of ``split``, its name checked."""
        if not self.split_in_file_name:
            return path.stem
        suffix = f"_{split}"
        if not path.stem.endswith(suffix):
            raise ZhllamaError(f"{path}: {self.name} file names end in '{suffix}.csv'",
                               f"e.g. {self.file_name(next(iter(self.subjects)), split)}")
        return path.stem[: -len(suffix)]

    def answers_required(self, split: str) -> bool:
        return split not in self.unanswered_splits

    def header(self, split: str) -> str:
        """The published CSV header of ``split`` (an unnamed index column shows as an empty name)."""
        fields = ["id", "question", "A", "B", "C", "D"] + (["answer"] if self.answers_required(split) else [])
        return ",".join([self.columns[f] for f in fields] + list(self.extra_columns))
