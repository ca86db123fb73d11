import json
import shutil

import pytest

from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama.eval.mc import McSettings, evaluate_mc, make_scorer, read_predictions
from zhllama.eval.mc_data import load_task
from zhllama.eval.mc_prompt import PromptEncoder, fit_prompt, prompt_text
from zhllama.eval.mc_report import summarize

from eval_fixtures import QUESTIONS, write_csv


def test_prompt_format_names_subject_in_chinese(cmmlu_dir):
    (subject,) = load_task("cmmlu", cmmlu_dir, "test", shots=2, subjects=["agronomy"])
    text = prompt_text(subject.name, subject.dev[:1], subject.questions[0])
    assert text == ("以下是关于农学的单项选择题，请直接给出正确答案的选项。\n\n"
                    "土地是什么\nA. 工具\nB. 土地\nC. 劳动\nD. 资金\n答案：B\n\n"
                    "一加一等于\nA. 一\nB. 三\nC. 四\nD. 二\n答案：")
    assert subject.categories == ("Other",)


def test_letter_tokens_are_the_in_text_pieces(tiny_tokenizer):
    raw = PromptEncoder(tiny_tokenizer).letter_ids()
    assert tiny_tokenizer.convert_ids_to_tokens(raw) == ["A", "B", "C", "D"]  # after '：', not '▁A'
    chat = PromptEncoder(tiny_tokenizer, "llama2-zh").letter_ids()
    assert tiny_tokenizer.convert_ids_to_tokens(chat) == ["▁A", "▁B", "▁C", "▁D"]  # a reply segment starts with ▁


def test_shots_dropped_to_fit_context(cmmlu_dir, tiny_tokenizer):
    (subject,) = load_task("cmmlu", cmmlu_dir, "test", shots=3, subjects=["agronomy"])
    enc = PromptEncoder(tiny_tokenizer)
    q = subject.questions[0]
    full = enc.encode(prompt_text(subject.name, subject.dev[:3], q))
    one = enc.encode(prompt_text(subject.name, subject.dev[:1], q))
    ids, shots, truncated = fit_prompt(enc, subject.name, subject.dev, q, 3, budget=len(one) + 1)
    assert (ids, shots, truncated) == (one, 1, False) and len(full) > len(one) + 1
    zero = enc.encode(prompt_text(subject.name, [], q))
    ids, shots, truncated = fit_prompt(enc, subject.name, subject.dev, q, 3, budget=len(zero) - 5)
    assert shots == 0 and truncated and len(ids) == len(zero) - 5
    assert ids[0] == tiny_tokenizer.bos_token_id and ids[1:] == zero[-(len(zero) - 6):]


def test_summary_categories_micro_and_macro(cmmlu_dir):
    subjects = load_task("cmmlu", cmmlu_dir, "test")
    done = {}
    for s in subjects:  # agronomy: 5 questions, 2 right; chinese_history: 5 questions, 5 right
        for i, q in enumerate(s.questions):
            right = s.key == "chinese_history" or i < 2
            done[(s.key, q.qid)] = {"pred": q.answer if right else "X", "answer": q.answer}
    summary = summarize("cmmlu", subjects, done)
    assert summary["subjects"]["agronomy"]["accuracy"] == 40.0
    cats = summary["categories"]
    assert cats["Other"]["accuracy"] == 40.0 and cats["Humanities"]["accuracy"] == 100.0
    assert cats["China specific"]["questions"] == 5  # chinese_history counts in two categories
    assert summary["overall"]["accuracy"] == 70.0 and summary["overall"]["macro"] == 70.0
    assert "STEM" not in cats


def _settings(model_dir, **kw):
    return McSettings(**{"task": "cmmlu", "split": "test", "shots": 1, "model": str(model_dir), **kw})


class CountingScorer:
    """Wraps the real scorer; counts answered questions and can fail after some batches."""

    def __init__(self, inner, fail_after: int | None = None):
        self.inner, self.fail_after, self.answered, self.batches = inner, fail_after, 0, 0

    def prepare(self, item, shots):
        self.inner.prepare(item, shots)

    def answer(self, items):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt
        self.batches += 1
        self.answered += len(items)
        return self.inner.answer(items)


def test_resume_continues_where_it_stopped(tiny_model_dir, cmmlu_dir, tmp_path):
    settings = _settings(tiny_model_dir)
    full = evaluate_mc(settings, cmmlu_dir, tmp_path / "full", batch_size=3, progress=False, device="cpu")

    scorer = make_scorer(_settings(tiny_model_dir), device="cpu")
    with pytest.raises(KeyboardInterrupt):
        evaluate_mc(_settings(tiny_model_dir), cmmlu_dir, tmp_path / "run", batch_size=3, progress=False,
                    scorer=CountingScorer(scorer, fail_after=2))
    pred_file = tmp_path / "run" / "predictions.jsonl"
    assert len(read_predictions(pred_file)) == 6
    with pred_file.open("a", encoding="utf-8") as f:
        f.write('{"subject": "agronomy", "id": ')  # a write cut short by the interruption
    counting = CountingScorer(scorer)
    resumed = evaluate_mc(_settings(tiny_model_dir), cmmlu_dir, tmp_path / "run", batch_size=3, progress=False,
                          scorer=counting)
    assert counting.answered == 4
    assert resumed == full
    assert read_predictions(pred_file) == read_predictions(tmp_path / "full" / "predictions.jsonl")


def test_results_of_another_run_are_not_mixed(tiny_model_dir, cmmlu_dir, tmp_path):
    evaluate_mc(_settings(tiny_model_dir), cmmlu_dir, tmp_path / "out", progress=False, device="cpu")
    with pytest.raises(ZhllamaError, match="another run.*shots"):
        evaluate_mc(_settings(tiny_model_dir, shots=0), cmmlu_dir, tmp_path / "out", progress=False, device="cpu")
    summary = evaluate_mc(_settings(tiny_model_dir, shots=0), cmmlu_dir, tmp_path / "out", overwrite=True,
                          progress=False, device="cpu")
    recs = read_predictions(tmp_path / "out" / "predictions.jsonl")
    assert len(recs) == 10 and all(r["shots"] == 0 for r in recs.values())
    assert summary["overall"]["questions"] == 10


def test_cli_table_json_and_ceval_submission(tiny_model_dir, ceval_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["eval", "mc", "--model", str(tiny_model_dir), "--task", "ceval", "--data-dir", str(ceval_dir),
                 "--split", "test", "--shots", "1", "--out", str(out), "--device", "cpu", "--batch-size", "2"]) == 0
    printed = capsys.readouterr().out
    assert "| computer_network | 计算机网络 |" in printed
    submission = json.loads((out / "submission.json").read_text(encoding="utf-8"))
    assert set(submission) == {"computer_network", "logic"}
    assert set(submission["computer_network"]) == {"100", "101", "102"}  # ids from the test files
    assert all(v in "ABCD" and v for s in submission.values() for v in s.values())
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["overall"]["accuracy"] is None  # the test split has no answers
    assert results["settings"]["max_length"] == 512


def _cmmlu_with(tmp_path, header, rows, key="agronomy"):
    root = tmp_path / "bad"
    write_csv(root / "test" / f"{key}.csv", header, rows)
    write_csv(root / "dev" / f"{key}.csv", ["", "Question", "A", "B", "C", "D", "Answer"], [[0, *QUESTIONS[0]]])
    return root


@pytest.mark.parametrize("case,needle", [
    ("missing_column", "agronomy.csv: missing column(s) Answer"),
    ("bad_answer", "agronomy.csv: line 3: answer 'E' is not one of A, B, C, D"),
    ("empty", "agronomy.csv: no questions"),
    ("layout", "no test/*.csv; expected DIR/dev/*.csv and DIR/test/*.csv (CMMLU layout)"),
    ("unknown_subject", "unknown CMMLU subject 'cooking'"),
    ("missing_subject", "subject 'agronomi' not found"),
])
def test_bad_input_is_one_line_naming_the_file(tmp_path, tiny_model_dir, capsys, case, needle):
    head = ["", "Question", "A", "B", "C", "D", "Answer"]
    good = [[0, *QUESTIONS[0]], [1, *QUESTIONS[1]]]
    subjects = []
    if case == "missing_column":
        root = _cmmlu_with(tmp_path, head[:-1], [r[:-1] for r in good])
    elif case == "bad_answer":
        root = _cmmlu_with(tmp_path, head, [good[0], [1, *QUESTIONS[1][:5], "E"]])
    elif case == "empty":
        root = _cmmlu_with(tmp_path, head, [])
    elif case == "layout":
        root = tmp_path / "flat"
        write_csv(root / "agronomy.csv", head, good)
    elif case == "unknown_subject":
        root = _cmmlu_with(tmp_path, head, good, key="cooking")
    else:
        root, subjects = _cmmlu_with(tmp_path, head, good), ["--subjects", "agronomi"]
    code = main(["eval", "mc", "--model", str(tiny_model_dir), "--task", "cmmlu", "--data-dir", str(root),
                 "--out", str(tmp_path / "out"), *subjects])
    err = capsys.readouterr().err
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1


def test_ceval_layout_errors(ceval_dir, tmp_path):
    shutil.rmtree(ceval_dir / "val")
    with pytest.raises(ZhllamaError, match="no val/.*C-Eval layout"):
        load_task("ceval", ceval_dir, "val")
    bad = tmp_path / "c2"
    write_csv(bad / "val" / "logic_val.csv", ["id", "question", "A", "B", "C", "D"], [[0, *QUESTIONS[0][:5]]])
    with pytest.raises(ZhllamaError, match=r"logic_val.csv: missing column\(s\) answer.*id,question,A,B,C,D,answer"):
        load_task("ceval", bad, "val")
    with pytest.raises(ZhllamaError, match="no dev/"):
        load_task("ceval", bad, "val", shots=1)


def test_out_into_an_unrelated_folder_is_refused(tmp_path):
    from zhllama.eval.mc import McSettings, open_results

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    settings = McSettings(task="cmmlu", split="test", shots=0, model="m")
    with pytest.raises(ZhllamaError, match="holds no eval mc results"):
        open_results(out, settings, overwrite=False)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
