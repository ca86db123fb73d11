"""The arms' generation speed (pipeline/showcase.py): timed through the end of text."""

from __future__ import annotations

from zhllama.infer.engine import Engine
from zhllama.infer.sampling import SamplingParams
from zhllama.pipeline.showcase import chars_per_second, generate_chars

PROMPT = "我们的"


def test_speed_is_timed_through_the_end_of_text(tiny_model_dir):
    from zhllama.model.load import load_model

    model, tok = load_model(tiny_model_dir, device="cpu")
    first = Engine(model, tok).generate([Engine(model, tok).text_prompt(PROMPT)],
                                        SamplingParams(max_new_tokens=1, temperature=0.0, repetition_penalty=1.0))[0]
    model.generation_config.eos_token_id = first.token_ids[0]  # the model now ends its text at once
    _, _, stopped = generate_chars(Engine(model, tok), PROMPT, 4)
    assert stopped == 1
    speed = chars_per_second(model, tok, [PROMPT], 4)
    assert 2 <= speed["tokens"] <= 8 * 4 and speed["seconds"] > 0
