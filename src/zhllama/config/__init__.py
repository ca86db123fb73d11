"""Typed configuration: one dataclass per stage is at once its CLI options, recipe section and Python argument.

Stages define their own dataclasses (``zhllama.model.init.InitConfig``, ``zhllama.train.config.TrainConfig``,
...), each field declared with :func:`option` (help text, default, and how it appears on the command
line); this module holds the shared machinery:

* :func:`from_dict` builds a dataclass from a mapping, recursing into nested dataclasses, checking
  types, and rejecting unknown keys with the nearest valid key as a hint;
* :func:`load_yaml` reads a YAML file into a dataclass;
* :func:`add_dataclass_args` generates a stage's argparse options from its dataclass and
  :func:`from_args` builds the dataclass back from the parsed namespace; with ``overrides=True``
  every field is an optional ``--flag`` whose value replaces a recipe's (:func:`apply_cli_overrides`);
* :func:`section_of` is a stage's schema as a pipeline recipe section (minus the fields the pipeline
  fills in), and :func:`build` makes the stage's config from a section in one step.

The schemas, by command (a pipeline recipe section reuses the settings part of its stage's)::

    tokenizer train|merge|stats  tokenizer.train.TokenizerTrainConfig, tokenizer.merge.TokenizerMergeConfig,
                                 tokenizer.stats.TokenizerStatsConfig
    model init|resize            model.init.InitConfig (ModelShape = recipe base:),
                                 model.resize.ResizeConfig (ResizeSettings = recipe resize:)
    train pt|sft, merge          train.config.TrainConfig (recipe pt:/sft:), MergeConfig (MergeSettings = merge:)
    train rm|dpo|ppo|orpo        align.TRAINERS[name].schema (align/rm.py ... orpo.py; recipe rm:/dpo:/ppo:/orpo:)
    chat, generate               infer.config.ChatConfig, GenerateConfig (EngineConfig + infer.sampling.SamplingParams)
    serve, webui                 serve.config.ServeConfig, WebuiConfig
    eval ppl|mc|compare|...      eval.registry.EVAL_TASKS[name].schema (eval.config.PplConfig, McConfig, ...)
    export gguf                  export.config.GgufConfig (GgufSettings = recipe export:)

Why argparse and not jsonargparse or tyro: ``zhllama --help`` must stay instant, and the stage
modules import torch lazily, which a generator over plain dataclasses keeps; errors keep the
project's one-line ``zhllama: error:`` shape (argparse is only the parser here; validation raises
``ZhllamaError``); and it adds no dependency.  What those libraries would add (options from
dataclass fields, help from field docs, nested sections) is the hundred lines below.

The package's two modules: :mod:`.schema` (mappings and YAML into dataclasses, ranges, recipe
sections, :func:`build`) and :mod:`.cli_args` (a schema as argparse options and back); their public
names are importable from here.
"""

from .cli_args import add_dataclass_args, apply_cli_overrides, flag_name, from_args
from .schema import (INHERIT, build, check_ranges, from_dict, given, load_yaml, option, range_text, read_yaml,
                     section_of, to_dict, unknown_key_error)

__all__ = ["INHERIT", "add_dataclass_args", "apply_cli_overrides", "build", "check_ranges", "flag_name",
           "from_args", "from_dict", "given", "load_yaml", "option", "range_text", "read_yaml", "section_of",
           "to_dict", "unknown_key_error"]
