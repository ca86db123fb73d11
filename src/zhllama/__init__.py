"""zhllama: turn an English-centric LLaMA-family model into a Chinese one."""

__version__ = "0.1.0"
