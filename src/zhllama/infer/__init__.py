"""Inference: the generation engine (``engine.Engine``), ``zhllama chat`` and ``zhllama generate``."""
