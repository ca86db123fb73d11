"""``eval mc --generate``: template applied, letter read from the generated text."""

from zhllama.eval.extract import extract_choice
from zhllama.eval.mc import GenerateScorer, McSettings, evaluate_mc, read_predictions
from zhllama.eval.mc_data import load_task
from zhllama.eval.mc_prompt import prompt_text
from zhllama.templates import encode_messages


def test_generate_mode_uses_template_and_extracts(tiny_model_dir, cmmlu_dir, tmp_path):
    from zhllama.infer.engine import Engine, SamplingParams

    settings = McSettings(task="cmmlu", split="test", shots=1, model=str(tiny_model_dir), template="llama2-zh",
                          generate=True, max_new_tokens=5, protocol="zhllama")
    summary = evaluate_mc(settings, cmmlu_dir, tmp_path / "out", batch_size=3, device="cpu", progress=False)
    recs = read_predictions(tmp_path / "out" / "predictions.jsonl")
    assert len(recs) == 10 and summary["overall"]["questions"] == 10

    engine = Engine.load(tiny_model_dir, template="llama2-zh", device="cpu")
    subject = load_task("cmmlu", cmmlu_dir, "test", shots=1, subjects=["agronomy"])[0]
    q = subject.questions[0]
    text = prompt_text(subject.name, subject.dev[:1], q)
    ids = encode_messages(engine.tokenizer, "llama2-zh", [{"role": "user", "content": text}], True)[0]
    greedy = SamplingParams(max_new_tokens=5, temperature=0, top_p=1.0, top_k=0, repetition_penalty=1.0)
    expected = engine.generate([ids], greedy)[0].text
    rec = recs[("agronomy", q.qid)]
    assert rec["output"] == expected and rec["pred"] == extract_choice(expected, q.options)


class ScriptedEngine:
    """Stands in for the engine: replies with a sentence naming the right option, from the prompt."""

    context_length = 512

    def __init__(self, tokenizer, answers: dict[str, str]):
        self.tokenizer, self.answers, self.prompts = tokenizer, answers, {}

    def chat_prompt(self, messages, max_new_tokens):
        ids = encode_messages(self.tokenizer, "llama2-zh", messages, True)[0]
        self.prompts[tuple(ids)] = messages[-1]["content"]
        return ids

    def generate(self, prompts, params):
        class C:
            def __init__(self, text):
                self.text = text

        out = []
        for ids in prompts:
            question = self.prompts[tuple(ids)].rsplit("\n\n", 1)[-1].split("\n", 1)[0]
            out.append(C(self.answers[question]))
        return out


def test_accuracy_from_extracted_letters(tiny_tokenizer, cmmlu_dir, tmp_path):
    subjects = load_task("cmmlu", cmmlu_dir, "test")
    questions = {q.question: q for s in subjects for q in s.questions}
    replies = {}
    for i, (text, q) in enumerate(sorted(questions.items())):
        option = dict(zip("ABCD", q.options))[q.answer]
        # the right letter in three phrasings, a reply naming only the option text, and no answer
        replies[text] = [f"答案是{q.answer}。", q.answer, f"正确答案为（{q.answer}）", f"应该是{option}", "不知道"][i % 5]
    scorer = GenerateScorer(ScriptedEngine(tiny_tokenizer, replies), max_new_tokens=12)
    settings = McSettings(task="cmmlu", split="test", shots=0, model="scripted", generate=True, protocol="zhllama")
    summary = evaluate_mc(settings, cmmlu_dir, tmp_path / "out", scorer=scorer, progress=False)
    unanswered = sum(replies[q.question] == "不知道" for s in subjects for q in s.questions)
    assert 0 < unanswered < 10
    assert sum(s["no_answer"] for s in summary["subjects"].values()) == unanswered
    assert summary["overall"]["correct"] == 10 - unanswered
