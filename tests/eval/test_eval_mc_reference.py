"""Our mc accuracy and per-question letters equal an independent, straightforward implementation
of the published prompt format (one unpadded forward pass per question, no shared code)."""

import csv
from pathlib import Path

import pytest
import torch

from zhllama.eval.mc import McSettings, evaluate_mc, read_predictions

# Written out here, independently of zhllama.eval.subjects.
ZH = {"agronomy": "农学", "chinese_history": "中国历史", "arts": "艺术学", "anatomy": "解剖学", "computer_network": "计算机网络",
      "logic": "逻辑学"}


def reference_mc(model, tokenizer, files: dict[str, tuple[Path, Path]], shots: int, cols=(1, 2, 3, 4, 5, 6)):
    """{(subject, row index): letter} and accuracy, the way a person would write it from the paper."""
    preds, correct, total = {}, 0, 0
    q, a, b, c, d, ans = cols
    for subject, (dev_file, test_file) in files.items():
        dev = list(csv.reader(open(dev_file, encoding="utf-8")))[1:]
        test = list(csv.reader(open(test_file, encoding="utf-8")))[1:]

        def block(row, with_answer):
            s = row[q] + "\nA. " + row[a] + "\nB. " + row[b] + "\nC. " + row[c] + "\nD. " + row[d] + "\n答案："
            return s + row[ans] + "\n\n" if with_answer else s

        head = "以下是关于" + ZH[subject] + "的单项选择题，请直接给出正确答案的选项。\n\n"
        for i, row in enumerate(test):
            prompt = head + "".join(block(r, True) for r in dev[:shots]) + block(row, False)
            ids = tokenizer(prompt)["input_ids"]  # the tokenizer adds BOS
            with torch.no_grad():
                last = model(torch.tensor([ids])).logits[0, -1]
            letter_scores = []
            for letter in "ABCD":
                with_letter = tokenizer(prompt + letter)["input_ids"]
                assert with_letter[: len(ids)] == ids and len(with_letter) == len(ids) + 1
                letter_scores.append(float(last[with_letter[-1]]))
            pred = "ABCD"[letter_scores.index(max(letter_scores))]
            preds[(subject, str(i))] = pred
            total += 1
            correct += pred == row[ans]
    return preds, 100.0 * correct / total


def ours(model_dir, data_dir, out, shots, batch_size, max_length=None, task="cmmlu", split="test"):
    settings = McSettings(task=task, split=split, shots=shots, model=str(model_dir), max_length=max_length,
                          protocol="zhllama")
    summary = evaluate_mc(settings, data_dir, out, batch_size=batch_size, device="cpu", progress=False)
    preds = {k: r["pred"] for k, r in read_predictions(Path(out) / "predictions.jsonl").items()}
    return preds, summary


@pytest.mark.parametrize("shots,batch_size", [(0, 3), (2, 4)])
def test_equals_reference_on_fixtures(varied_model, varied_model_dir, cmmlu_dir, tmp_path, shots, batch_size):
    model, tok = varied_model
    files = {k: (cmmlu_dir / "dev" / f"{k}.csv", cmmlu_dir / "test" / f"{k}.csv") for k in ("agronomy", "chinese_history")}
    ref_preds, ref_acc = reference_mc(model, tok, files, shots)
    preds, summary = ours(varied_model_dir, cmmlu_dir, tmp_path / "out", shots, batch_size)
    assert preds == ref_preds
    assert summary["overall"]["accuracy"] == pytest.approx(ref_acc, abs=0.005)
    assert len(set(ref_preds.values())) > 1  # the model is not answering one letter for everything


def test_equals_reference_on_ceval_layout(varied_model, varied_model_dir, ceval_dir, tmp_path):
    model, tok = varied_model
    files = {k: (ceval_dir / "dev" / f"{k}_dev.csv", ceval_dir / "val" / f"{k}_val.csv") for k in ("computer_network", "logic")}
    ref_preds, ref_acc = reference_mc(model, tok, files, 1)
    preds, summary = ours(varied_model_dir, ceval_dir, tmp_path / "out", 1, 2, task="ceval", split="val")
    assert preds == ref_preds
    assert summary["overall"]["accuracy"] == pytest.approx(ref_acc, abs=0.005)


@pytest.mark.shared_data
def test_real_cmmlu_subjects_end_to_end(shared_data, varied_model, varied_model_dir, tmp_path):
    """Three real CMMLU subjects, the first 6 questions each, one shot: same letters as the reference."""
    model, tok = varied_model
    data = tmp_path / "cmmlu"
    files = {}
    for key in ("agronomy", "arts", "anatomy"):
        for split, n in (("dev", 5), ("test", 6)):
            lines = (shared_data / "cmmlu" / split / f"{key}.csv").read_text(encoding="utf-8").splitlines(True)
            rows = list(csv.reader(lines))[: n + 1]
            (data / split).mkdir(parents=True, exist_ok=True)
            with open(data / split / f"{key}.csv", "w", encoding="utf-8", newline="") as f:
                csv.writer(f).writerows(rows)
        files[key] = (data / "dev" / f"{key}.csv", data / "test" / f"{key}.csv")
    ref_preds, ref_acc = reference_mc(model, tok, files, 1)
    # max_length beyond the prompts so that no shot is dropped (the reference never drops shots)
    preds, summary = ours(varied_model_dir, data, tmp_path / "out", 1, 4, max_length=4096)
    assert preds == ref_preds
    assert summary["overall"]["questions"] == 18
    assert summary["overall"]["accuracy"] == pytest.approx(ref_acc, abs=0.005)
    assert summary["subjects"]["arts"]["name"] == "艺术学"
    assert len(set(ref_preds.values())) > 1
