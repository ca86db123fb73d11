"""Evaluation: perplexity (``ppl``), C-Eval/CMMLU multiple choice (``mc``), side-by-side review (``compare``)."""
