"""The multiple-choice benchmarks of ``zhllama eval mc --task NAME``, one entry each
(:class:`~zhllama.eval.mc_benchmark.McBenchmark`).

Adding a benchmark in the same CSV shape: its subject table and entry (as in :mod:`.subjects`), and its line here.
"""

from __future__ import annotations

from .mc_benchmark import McBenchmark
from .subjects import CEVAL, CMMLU

MC_BENCHMARKS: dict[str, McBenchmark] = {b.name: b for b in (
    CMMLU,
    CEVAL,
)}
