"""``zhllama eval ppl``: the command, on a Hugging Face model folder (:mod:`.ppl`) or a GGUF file (:mod:`.llamacpp`)."""

from __future__ import annotations

from ..errors import ZhllamaError
from .config import PplConfig
from .ppl import check_window, perplexity, read_texts
from .task import EvalTask


def ppl_command(cfg) -> int:
    """``zhllama eval ppl``: score ``cfg.text`` (a :class:`~zhllama.eval.config.PplConfig`), print and write the JSON."""
    import json
    import sys

    from ..io import write_json_atomic
    from ..model.rope import apply_rope_scaling, scaled_context

    m = cfg.load
    check_window(cfg.context, cfg.stride)
    texts = read_texts(cfg.text, cfg.text_field)
    if str(m.model).endswith(".gguf"):  # a zhllama export gguf file, run by llama.cpp
        from .llamacpp import gguf_perplexity

        if m.lora:
            raise ZhllamaError("--lora cannot be applied to a GGUF file", "merge the adapter, then export again")
        if cfg.rope_scaling:
            raise ZhllamaError("--rope-scaling is not applied to a GGUF file", "the GGUF file carries the scaling "
                               "the model was exported with")
        scores = gguf_perplexity(m.model, texts, cfg.context, cfg.stride, progress=sys.stderr.isatty())
    else:
        model, tokenizer = m.load_model()
        if cfg.rope_scaling:
            apply_rope_scaling(model, cfg.rope_scaling)
        context = scaled_context(model.config) if cfg.context is None else cfg.context
        stride = max(1, context // 2) if cfg.stride is None else cfg.stride
        scores = perplexity(model, tokenizer, texts, context, stride, progress=sys.stderr.isatty())
    result = {"model": str(m.model), "lora": m.lora, "text": str(cfg.text), **scores}
    if cfg.rope_scaling:
        result["rope_scaling"] = str(cfg.rope_scaling)
    if cfg.out:
        write_json_atomic(cfg.out, result)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


TASK = EvalTask("ppl", PplConfig, ppl_command, help="sliding-window perplexity, bits per character and per byte",
                description="Perplexity of a text with a sliding window that scores every token once (windows of "
                            "--context tokens every --stride tokens), plus bits per character and bits per UTF-8 "
                            "byte, which compare models with different tokenizers. Prints JSON.")
