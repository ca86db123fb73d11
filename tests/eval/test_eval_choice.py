"""The one choice scorer (zhllama.eval.choice): eval mc's letter scoring and the pipeline's task
accuracy pick the same answer on the same prompt, and the two ways of scoring agree."""

from __future__ import annotations

import math

import pytest

from zhllama.eval.choice import best_choice, choice_scores, continuation_scores, next_token_scores, task_accuracy
from zhllama.eval.mc import McItem, LogitScorer
from zhllama.eval.mc_data import LETTERS, Question, Subject
from zhllama.eval.mc_prompt import prompt_text

from eval_fixtures import QUESTIONS


def items(scorer: LogitScorer) -> list[McItem]:
    subject = Subject("agronomy", "农学", ("Other",), [])
    out = []
    for i, (q, a, b, c, d, answer) in enumerate(QUESTIONS):
        it = McItem(subject, Question(str(i), q, (a, b, c, d), answer))
        it.ids = scorer.encoder.encode(prompt_text(subject.name, [], it.question))
        out.append(it)
    return out


@pytest.mark.parametrize("template", [None, "llama2-zh"])
def test_eval_mc_and_task_accuracy_scoring_pick_the_same_letter(varied_model, template):
    """mc's batched next-token path vs the continuation path task accuracy uses, on mc's own prompts."""
    model, tok = varied_model
    scorer = LogitScorer(model, tok, template, max_length=512)
    qs = items(scorer)
    answers = scorer.answer(qs)
    letters = [[t] for t in scorer.letter_ids]
    picks = []
    for it, ans in zip(qs, answers):
        cont = continuation_scores(model, it.ids, letters)
        assert LETTERS[best_choice(cont)] == ans["pred"]
        assert ans["scores"] == pytest.approx(cont, abs=1e-3)
        assert sum(math.exp(s) for s in ans["scores"]) <= 1.0  # log-probabilities of the letters
        picks.append(ans["pred"])
    assert len(set(picks)) > 1  # the model's answer depends on the question, so agreement means something


def test_continuation_score_is_the_chain_of_next_token_scores(varied_model):
    model, tok = varied_model
    prompt = [tok.bos_token_id] + tok("中国的首都是", add_special_tokens=False)["input_ids"]
    answer = tok("北京市", add_special_tokens=False)["input_ids"]
    assert len(answer) > 1
    chained = sum(next_token_scores(model, [prompt + answer[:i]], [[answer[i]]])[0][0] for i in range(len(answer)))
    assert continuation_scores(model, prompt, [answer])[0] == pytest.approx(chained, abs=1e-4)
    assert choice_scores(model, [prompt], [[answer]])[0][0] == pytest.approx(chained, abs=1e-4)


def test_task_accuracy_counts_each_task_against_its_output(varied_model):
    """The same question twice with the two answers as the expected output: exactly one is right."""
    model, tok = varied_model
    record = {"instruction": "判断下面这条评论的情感是正面还是负面。", "input": "这本书写得很好。", "choices": ["正面", "负面"]}
    records = [{**record, "task": "sentiment", "output": "正面"}, {**record, "task": "sentiment", "output": "负面"},
               {**record, "task": "genre", "output": "正面"}]
    acc = task_accuracy(model, tok, "alpaca", records, progress=False)
    assert acc["sentiment"] == 0.5 and acc["genre"] in (0.0, 1.0)
    assert acc["all"] == pytest.approx((1 + acc["genre"]) / 3)
