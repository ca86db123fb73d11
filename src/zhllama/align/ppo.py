"""``zhllama train ppo``: online RL against a reward model, run by TRL's RLOO trainer (TRL 1.x no longer
ships PPO): replies are sampled for the prompts of the preference files (their replies are not used)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import option
from ..errors import ZhllamaError
from .config import PreferenceConfig, beta_option
from .trainer import Trainer, require_trl


@dataclass(kw_only=True)
class PpoConfig(PreferenceConfig):
    beta: float = beta_option("KL penalty coefficient (the pull toward the starting model)")
    reward_model: str | None = option("reward model folder written by `zhllama train rm` (required)", None)
    num_generations: int = option("sampled replies per prompt (RLOO's leave-one-out baseline needs >= 2)", 4, low=2)
    max_new_tokens: int = option("longest sampled reply in tokens", 64, low=1)
    temperature: float = option("sampling temperature", 1.0, positive=True)

    def check(self) -> "PpoConfig":
        super().check()
        if not self.reward_model:
            raise ZhllamaError("'reward_model' is not set", "train one with `zhllama train rm` and pass --reward-model DIR")
        if self.batch_size * self.gradient_accumulation_steps % self.num_generations:
            raise ZhllamaError(f"batch_size x gradient_accumulation_steps ({self.batch_size * self.gradient_accumulation_steps}) "
                               f"is not a multiple of num_generations ({self.num_generations})",
                               "each batch holds whole groups of replies to one prompt; e.g. --batch-size 4 --num-generations 4")
        return self


def ppo_arguments(cfg: PpoConfig) -> tuple[type, dict]:
    return require_trl().RLOOConfig, {"beta": cfg.beta, "num_generations": cfg.num_generations,
                                      "max_completion_length": cfg.max_new_tokens, "temperature": cfg.temperature,
                                      "remove_unused_columns": False, "log_completions": False}


def build_ppo(cfg: PpoConfig, model, tok, args, data, peft, callbacks):
    from ..model.load import load_sequence_classifier
    from ..tokenizer.load import load_tokenizer

    reward = load_sequence_classifier(cfg.reward_model, model.dtype)
    reward_tok = load_tokenizer(cfg.reward_model)
    check_same_tokenizer(tok, reward_tok, cfg.reward_model)
    return require_trl().RLOOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data["train"],
                                     processing_class=tok, reward_processing_classes=reward_tok, peft_config=peft,
                                     callbacks=callbacks)


def check_same_tokenizer(tok, other, where: str) -> None:
    from ..model.load import check_tokenizer_extends_base

    if len(tok) != len(other):
        raise ZhllamaError(f"the reward model {where} has a {len(other):,}-token tokenizer, the policy {len(tok):,}",
                           "train the reward model from the same SFT model")
    check_tokenizer_extends_base(tok, other, "the policy's tokenizer", f"the reward model's ({where})")


TRAINER = Trainer(
    "ppo", PpoConfig, ppo_arguments, build_ppo,
    help="online RL with a reward model (TRL's RLOO trainer)",
    description="Online reinforcement learning from a reward model (--reward-model, from `zhllama train rm`): replies "
                "are sampled for the prompts of the preference files, scored, and the policy is updated with a KL "
                "penalty (--beta) toward the starting model. TRL 1.x removed its PPO trainer; this runs RLOO "
                "(REINFORCE leave-one-out: --num-generations replies per prompt, each baselined by the others' mean "
                "reward), which needs no value model.",
    data="prompts", reads_reward_model=True, metrics=("reward",))
