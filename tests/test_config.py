import argparse
from dataclasses import dataclass, field

import pytest

from zhllama.config import add_dataclass_args, apply_cli_overrides, from_dict, load_yaml
from zhllama.errors import ZhllamaError


@dataclass
class Lora:
    rank: int = 8
    targets: list[str] = field(default_factory=lambda: ["q_proj"])


@dataclass
class Recipe:
    model: str
    learning_rate: float = 1e-4
    full: bool = False
    lora: Lora = field(default_factory=Lora)


def test_nested_recipe_is_typed():
    r = from_dict(Recipe, {"model": "m", "learning_rate": "2e-4", "lora": {"rank": 16, "targets": "v_proj"}})
    assert r.learning_rate == 2e-4 and r.lora.rank == 16 and r.lora.targets == ["v_proj"]


def test_unknown_key_names_nearest_valid_key():
    with pytest.raises(ZhllamaError) as e:
        from_dict(Recipe, {"model": "m", "learning_rat": 1})
    assert "learning_rat" in str(e.value) and "learning_rate" in str(e.value)


def test_wrong_types_and_missing_keys_are_named():
    with pytest.raises(ZhllamaError, match=r"config.lora.rank: expected a whole number"):
        from_dict(Recipe, {"model": "m", "lora": {"rank": 1.5}})
    with pytest.raises(ZhllamaError, match="missing required key 'model'"):
        from_dict(Recipe, {})
    with pytest.raises(ZhllamaError, match="expected true or false"):
        from_dict(Recipe, {"model": "m", "full": "maybe"})


def test_yaml_errors_name_file_and_line(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("model: m\nlora: [1,\n")
    with pytest.raises(ZhllamaError, match=r"r.yaml: line \d+"):
        load_yaml(p, Recipe)


def test_cli_flags_override_recipe():
    parser = argparse.ArgumentParser()
    add_dataclass_args(parser, Recipe)
    args = parser.parse_args(["--learning-rate", "3e-4", "--full"])
    r = apply_cli_overrides(Recipe(model="m"), args)
    assert r.learning_rate == 3e-4 and r.full is True and r.model == "m"


# --- stage options generated from a schema (add_dataclass_args(overrides=False) + from_args) ---
from typing import Literal  # noqa: E402

from zhllama.config import from_args, option  # noqa: E402


@dataclass(kw_only=True)
class Inner:
    temperature: float = option("0 = greedy", 0.7)
    stop: tuple[str, ...] = option("a stop string", factory=tuple, repeat="append")


@dataclass(kw_only=True)
class Stage:
    recipe: str = option("recipe file", positional=True)
    out: str = option("output folder")
    files: list[str] = option("input files", metavar="FILE")
    mode: Literal["fast", "slow"] = option("how", "fast")
    shuffle: bool = option("shuffle (--no-shuffle: keep the order)", True)
    verbose: bool = option("say more", False)
    limit: int | None = option("at most this many", None)
    inner: Inner = option("sampling", factory=lambda: Inner(temperature=0.2))


def stage_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stage")
    add_dataclass_args(parser, Stage, overrides=False)
    return parser


def test_stage_options_round_trip_into_the_dataclass():
    args = stage_parser().parse_args(["r.yaml", "--out", "o", "--files", "a", "b", "--mode", "slow", "--no-shuffle",
                                      "--verbose", "--limit", "3", "--temperature", "0", "--stop", "x", "--stop", "y"])
    cfg = from_args(Stage, args)
    assert cfg == Stage(recipe="r.yaml", out="o", files=["a", "b"], mode="slow", shuffle=False, verbose=True, limit=3,
                        inner=Inner(temperature=0.0, stop=("x", "y")))


def test_stage_option_defaults_come_from_the_schema_and_nested_default_instance():
    cfg = from_args(Stage, stage_parser().parse_args(["r.yaml", "--out", "o", "--files", "a"]))
    assert cfg.mode == "fast" and cfg.shuffle is True and cfg.verbose is False and cfg.limit is None
    assert cfg.inner == Inner(temperature=0.2)  # the outer field's default, not Inner's own 0.7


@pytest.mark.parametrize("argv", [["r.yaml", "--files", "a"], ["r.yaml", "--out", "o"], ["--out", "o", "--files", "a"],
                                  ["r.yaml", "--out", "o", "--files", "a", "--mode", "medium"],
                                  ["r.yaml", "--out", "o", "--files", "a", "--limit", "many"]])
def test_required_choices_and_types_are_enforced_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as e:
        stage_parser().parse_args(argv)
    assert e.value.code == 2 and "error:" in capsys.readouterr().err


def test_help_shows_help_text_defaults_choices_and_metavars():
    text = " ".join(stage_parser().format_help().split())
    for part in ("--files FILE [FILE ...] input files", "--mode {fast,slow} how (default: fast)", "--no-shuffle",
                 "--temperature TEMPERATURE 0 = greedy (default: 0.2)", "--stop STOP a stop string", "recipe recipe file"):
        assert part in text, part
    assert "(default: None)" not in text and "(default: False)" not in text


def test_every_stage_command_is_generated_from_its_schema():
    """Each field of a stage's schema is an option of its command (and a schema field is never hand-added)."""
    from zhllama.cli import build_parser
    from zhllama.config.cli_args import _options
    from zhllama.eval.config import CompareConfig, McConfig, PplConfig
    from zhllama.export.config import GgufConfig
    from zhllama.infer.config import ChatConfig, GenerateConfig
    from zhllama.model.init import InitConfig
    from zhllama.model.resize import ResizeConfig
    from zhllama.serve.config import ServeConfig, WebuiConfig
    from zhllama.tokenizer.merge import TokenizerMergeConfig
    from zhllama.tokenizer.stats import TokenizerStatsConfig
    from zhllama.tokenizer.train import TokenizerTrainConfig
    from zhllama.train.config import MergeConfig

    commands = {("tokenizer", "train"): TokenizerTrainConfig, ("tokenizer", "merge"): TokenizerMergeConfig,
                ("tokenizer", "stats"): TokenizerStatsConfig, ("model", "init"): InitConfig,
                ("model", "resize"): ResizeConfig, ("merge",): MergeConfig, ("chat",): ChatConfig,
                ("generate",): GenerateConfig, ("serve",): ServeConfig, ("webui",): WebuiConfig,
                ("eval", "ppl"): PplConfig, ("eval", "mc"): McConfig, ("eval", "compare"): CompareConfig,
                ("export", "gguf"): GgufConfig}
    for path, schema in commands.items():
        parser = build_parser()
        for name in path:
            parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        dests = {a.dest for a in parser._actions} - {"help"}
        assert dests == {o.dest for o in _options(schema)}, path


def test_sampling_defaults_live_in_one_place():
    from zhllama.cli import build_parser
    from zhllama.config import from_args as build
    from zhllama.infer.config import ChatConfig
    from zhllama.infer.sampling import SamplingParams
    from zhllama.serve.config import ServeConfig
    from zhllama.serve.schemas import ChatCompletionRequest

    defaults = SamplingParams()
    chat = build(ChatConfig, build_parser().parse_args(["chat", "--model", "m"]))
    assert chat.sampling == defaults
    request = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}])
    assert (request.temperature, request.top_p, request.top_k, request.repetition_penalty) == (
        defaults.temperature, defaults.top_p, defaults.top_k, defaults.repetition_penalty)
    serve = build(ServeConfig, build_parser().parse_args(["serve", "--model", "m"]))
    assert serve.api.max_tokens == defaults.max_new_tokens


def test_section_of_and_build_make_a_stage_config_from_a_recipe_section_in_one_step():
    from dataclasses import dataclass

    from zhllama.config import INHERIT, build, from_dict, option, section_of

    @dataclass
    class Stage:
        model: str | None = option("where", None)
        lr: float = option("rate", 0.1, positive=True)
        steps: int = option("steps", 10)

    Section = section_of(Stage, "Section", set_by_pipeline=("model",))
    Over = section_of(Stage, "Over", set_by_pipeline=("model",), inherit=True)
    section = from_dict(Section, {"lr": 0.5}, "r.yaml.stage")
    assert build(Stage, section, model="m") == Stage(model="m", lr=0.5, steps=10)
    over = from_dict(Over, {"steps": 10}, "r.yaml.stage.then")
    assert over.lr is INHERIT and build(Stage, Stage(lr=0.5, steps=3), over) == Stage(lr=0.5, steps=10)
    with pytest.raises(ZhllamaError, match=r"r.yaml.stage: 'model' is set by the pipeline"):
        from_dict(Section, {"model": "x"}, "r.yaml.stage")
    with pytest.raises(ZhllamaError, match=r"r.yaml.stage.lr 0.0 is out of range"):
        from_dict(Section, {"lr": 0}, "r.yaml.stage")
