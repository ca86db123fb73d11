"""Evaluation: perplexity (``ppl``), C-Eval/CMMLU multiple choice (``mc``), side-by-side review (``compare``);
``choice`` is the one scorer of fixed answers, behind ``mc`` and the pipeline's task accuracy."""
