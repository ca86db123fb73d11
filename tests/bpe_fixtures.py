"""Tiny byte-level BPE tokenizers shaped like Llama-3's and Qwen2's, for tests (importable from any test folder).

Each is trained with the ``tokenizers`` library on the packaged text, with the real tokenizer's
pre-tokenizer (the same split regex, then byte-level), decoder, BOS handling and special tokens, so
code that works on them works on the real 128K/151K vocabularies (tested against those where
``../shared/data`` is present).
"""

from __future__ import annotations

import json
from pathlib import Path

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")

# Meta-Llama-3-8B-Instruct's chat_template (tokenizer_config.json), verbatim.
LLAMA3_INSTRUCT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
# Qwen2-7B-Instruct's chat_template, verbatim.
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}")

SHAPES = {
    "llama3": {"split": LLAMA3_SPLIT, "bos": "<|begin_of_text|>", "eos": "<|end_of_text|>", "pad": None,
               "special": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>"], "template": None},
    "qwen2": {"split": QWEN2_SPLIT, "bos": None, "eos": "<|endoftext|>", "pad": "<|endoftext|>",
              "special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "template": QWEN2_TEMPLATE},
}


def train_byte_level_bpe(lines, out_dir: Path, shape: str, vocab_size: int = 1000) -> Path:
    """Write ``tokenizer.json`` + ``tokenizer_config.json`` of a ``shape`` ("llama3" or "qwen2") tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    spec = SHAPES[shape]
    tok = Tokenizer(models.BPE(ignore_merges=shape == "llama3"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(spec["split"]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.add_special_tokens(spec["special"])
    bos = spec["bos"]
    if bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": spec["eos"],
              "pad_token": spec["pad"], "clean_up_tokenization_spaces": False, "model_max_length": 8192}
    if spec["template"]:
        config["chat_template"] = spec["template"]
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out_dir
