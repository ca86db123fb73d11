"""``eval mc --protocol``: every letter equals the one the reference evaluator itself picks.

The references below are re-written here from the evaluators' own code (not from zhllama's):
they read the CSVs with pandas, build the prompt with the same string operations, tokenize with
SentencePiece (``LlamaTokenizer(legacy=True)`` and Meta's ``Tokenizer`` both give BOS +
``sp.encode(text)``), run one unpadded forward pass per question (ymcui: ``generate()`` with its
GenerationConfig, reading ``scores[0]``) and take ``np.argmax`` of the letter scores.

* ymcui: Chinese-LLaMA-Alpaca-2 scripts/cmmlu/llama2_evaluator.py, scripts/ceval/llama_evaluator.py
  (constrained_decoding=True; with_prompt False / True);
* cmmlu: haonan-li/CMMLU src/mp_utils.py (format_example, gen_prompt) + src/hf_causal_model.py;
* ceval: hkust-nlp/ceval code/evaluator_series/evaluators/llama.py.

The model is the tiny one with its weights scaled up, so that its letters depend on the prompt
(checked: another header flips many of them).  Synthetic C-Eval-format data (stray spaces, a
numeric column) runs everywhere; real CMMLU rows run when ../shared/data is present.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from eval_fixtures import write_csv

from zhllama.eval.mc import LogitScorer, McSettings, evaluate_mc, read_predictions
from zhllama.eval.mc_protocols import ProtocolScorer, get_protocol

LETTERS = ["A", "B", "C", "D"]
CMMLU_ZH = {"agronomy": "农学", "college_actuarial_science": "大学精算学", "logical": "逻辑学"}
_REFERENCE: dict[tuple, dict] = {}  # (protocol, task, shots, data) -> letters, shared by the tests of one session


class SP:
    def __init__(self, model_file):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))

    def encode(self, text, bos=True):
        return ([self.sp.bos_id()] if bos else []) + self.sp.encode(text)


def forward_last(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits[0, -1]


def files(task, data_dir, split, subject):
    if task == "cmmlu":
        return Path(data_dir, split, f"{subject}.csv"), Path(data_dir, "dev", f"{subject}.csv")
    return Path(data_dir, split, f"{subject}_{split}.csv"), Path(data_dir, "dev", f"{subject}_dev.csv")


# --- Chinese-LLaMA-Alpaca-2 ------------------------------------------------------------------
def ymcui_reference(model, sp, task, data_dir, split, subjects, k, with_prompt, header=None):
    from transformers import GenerationConfig

    q_col, a_col = ("Question", "Answer") if task == "cmmlu" else ("question", "answer")
    system = "你是一个乐于助人的助手。" if task == "cmmlu" else "You are a helpful assistant. 你是一个乐于助人的助手。"
    config = GenerationConfig(temperature=0.2, top_k=0, top_p=1.0, do_sample=True, num_beams=1,
                              repetition_penalty=1.1, max_new_tokens=1, output_scores=True,
                              return_dict_in_generate=True, eos_token_id=2, pad_token_id=0)
    s_ids = [sp.encode(c, bos=False)[0] for c in LETTERS]
    ids = [sp.encode("：" + c)[-1] for c in LETTERS]

    def format_example(line, include_answer):
        example = line[q_col]
        for choice in LETTERS:
            example += f'\n{choice}. {line[f"{choice}"]}'
        return example + ("\n答案：" + line[a_col] + "\n\n" if include_answer else "\n答案：")

    preds = {}
    for subject in subjects:
        test_path, dev_path = files(task, data_dir, split, subject)
        test_df, dev_df = pd.read_csv(test_path), pd.read_csv(dev_path)
        history = ""
        if k:
            prompt = (header or f"以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n")
            if with_prompt:
                history = ("[INST] <<SYS>>\n{system_prompt}\n<</SYS>>\n\n{instruction} [/INST]好的，我会结合{subject}"
                           "相关知识回答").format_map({"instruction": prompt, "system_prompt": system, "subject": subject})
                for i in range(k):
                    line = dev_df.iloc[i, :]
                    q = line[q_col]
                    for choice in LETTERS:
                        q += f'\n{choice}. {line[f"{choice}"]}'
                    history += "[INST] " + q + "\n答案：[/INST]" + line[a_col] + "\n"
            else:
                history = prompt + "".join(format_example(dev_df.iloc[i, :], True) for i in range(k))
        for _, row in test_df.iterrows():
            instruction = format_example(row, False)
            if with_prompt:
                instruction = "[INST] <<SYS>>\n{system_prompt}\n<</SYS>>\n\n{instruction} [/INST]".format_map(
                    {"instruction": instruction, "system_prompt": system})
            input_ids = torch.tensor([sp.encode(history + instruction)])
            out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                 generation_config=config)
            logits = out.scores[0][0].float()
            total = (logits[s_ids] + logits[ids]).numpy()
            assert not (np.any(np.isinf(total)) or np.any(np.isnan(total)))
            preds[(subject, str(row.iloc[0]))] = LETTERS[np.argmax(total)]
    return preds


# --- CMMLU (haonan-li/CMMLU) -----------------------------------------------------------------
def cmmlu_reference(model, sp, data_dir, subjects, num_few_shot, max_length=2048, names=CMMLU_ZH):
    def format_example(df, idx, include_answer=True):
        prompt = "题目：" + df.iloc[idx, 0]
        k = df.shape[1] - 2
        for j in range(k):
            prompt += "\n{}. {}".format(LETTERS[j], df.iloc[idx, j + 1])
        prompt += "\n答案是："
        if include_answer:
            prompt += "{}\n\n".format(df.iloc[idx, k + 1])
        return prompt

    def gen_prompt(dev_df, subject, prompt_end):
        prompt = "以下是关于{}的单项选择题，请直接给出正确答案的选项。\n\n".format(names[subject])
        start_end_token_len = len(sp.encode(prompt) + sp.encode(prompt_end))
        if start_end_token_len > max_length:
            return prompt_end
        prompt_list = []
        for i in range(num_few_shot):
            example = format_example(dev_df, i)
            prompt_list.append((example, sp.encode(example)))
        while prompt_list != [] and sum(len(e[1]) for e in prompt_list) >= max_length - start_end_token_len:
            longest_length = max([len(e[1]) for e in prompt_list])
            prompt_list = [e for e in prompt_list if len(e[1]) != longest_length]
        for p in prompt_list:
            prompt += p[0]
        return prompt + prompt_end

    choice_ids = [sp.sp.piece_to_id(c) for c in LETTERS]
    preds = {}
    for subject in subjects:
        dev_df = pd.read_csv(Path(data_dir, "dev", subject + ".csv"), header=0, index_col=0)
        test_df = pd.read_csv(Path(data_dir, "test", subject + ".csv"), header=0, index_col=0)
        for i in range(test_df.shape[0]):
            prompt = gen_prompt(dev_df, subject, format_example(test_df, i, include_answer=False))
            logits = forward_last(model, sp.encode(prompt))
            preds[(subject, str(test_df.index[i]))] = LETTERS[np.argmax(logits[choice_ids].numpy())]
    return preds


# --- C-Eval (hkust-nlp/ceval, LLaMA evaluator) -----------------------------------------------
def ceval_reference(model, sp, data_dir, subjects, k):
    def format_example(line, include_answer=True):
        example = line["question"]
        for choice in LETTERS:
            example += f'\n{choice}. {line[f"{choice}"]}'
        return example + ("\n答案：" + line["answer"] + "\n\n" if include_answer else "\n答案：")

    preds = {}
    for subject in subjects:
        val_df = pd.read_csv(Path(data_dir, "val", f"{subject}_val.csv"))
        dev_df = pd.read_csv(Path(data_dir, "dev", f"{subject}_dev.csv"))
        # (the reference's zero-shot branch starts from [] and fails on `[] + str`; "" is what it means)
        few_shot_prompt = ""
        if k:
            few_shot_prompt = f"以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n"
            few_shot_prompt += "".join(format_example(dev_df.iloc[i, :]) for i in range(k))
        for _, row in val_df.iterrows():
            logits = forward_last(model, sp.encode(few_shot_prompt + format_example(row, include_answer=False)))
            probs = torch.nn.functional.softmax(torch.tensor(
                [logits[sp.encode(c, bos=False)[0]] for c in LETTERS]), dim=0).numpy()
            preds[(subject, str(row["id"]))] = LETTERS[np.argmax(probs)]
    return preds


def reference(protocol, model, sp, task, data_dir, split, subjects, shots, names=CMMLU_ZH):
    key = (protocol, task, shots, data_dir)
    if key not in _REFERENCE:
        _REFERENCE[key] = _reference(protocol, model, sp, task, data_dir, split, subjects, shots, names)
    return _REFERENCE[key]


def _reference(protocol, model, sp, task, data_dir, split, subjects, shots, names):
    if protocol in ("ymcui", "ymcui-chat"):
        return ymcui_reference(model, sp, task, data_dir, split, subjects, shots, protocol == "ymcui-chat")
    if protocol == "cmmlu":
        return cmmlu_reference(model, sp, data_dir, subjects, shots, names=names)
    return ceval_reference(model, sp, data_dir, subjects, shots)


def ours(protocol, model, tok, task, data_dir, split, shots, out, max_length=8192):
    settings = McSettings(task=task, split=split, shots=shots, model="in-memory", protocol=protocol,
                          max_length=max_length)
    if protocol == "zhllama":  # the earlier prompt, for benchmarks/mc_agreement.py
        scorer = LogitScorer(model, tok, None, max_length)
    else:
        scorer = ProtocolScorer(model, tok, get_protocol(protocol), task, max_length)
    evaluate_mc(settings, data_dir, out, batch_size=4, progress=False, scorer=scorer)
    return {k: r["pred"] for k, r in read_predictions(Path(out) / "predictions.jsonl").items()}


# --- data ---------------------------------------------------------------------------------------
SYNTHETIC = [  # stray spaces and a numeric column, as in the real files: the references keep them
    ("下列哪个是质数 ", " 4", "6", "7 ", "9", "C"), ("水的化学式是", "H2O", "CO2 ", "O2", "NaCl", "A"),
    (" 中国的首都是", "上海", "广州", "北京", "深圳", "C"), ("一加一等于", "1", "3", "4", "2", "D"),
    ("太阳从哪边升起", "东", "西", "南", "北", "A"), ("猫是什么动物", "鸟", "哺乳动物", "鱼", "昆虫", "B"),
    ("一年有几个月", "十", "十一", "十二", "十三", "C"), ("人有几只手", "一", "二", "三", "四", "B"),
]
NUMERIC = [("0.50乘以2等于", "0.50", "1.0", "2", "1.5", "B"), ("1加1", "2", "3", "4", "5", "A"),
           ("2乘以3", "5", "6", "7", "8", "B"), ("10除以4", "2.5", "2", "3", "4.0", "A"),
           ("3减1", "1", "2", "3", "0", "B"), ("9开方", "3", "9", "81", "1", "A")]


@pytest.fixture(scope="module")
def synthetic_ceval(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ceval")
    head = ["id", "question", "A", "B", "C", "D", "answer", "explanation"]
    for key, dev, val in (("computer_network", SYNTHETIC[:5], SYNTHETIC[2:8] + SYNTHETIC[:3]),
                          ("advanced_mathematics", NUMERIC[:5], NUMERIC[::-1] + NUMERIC[:3])):
        write_csv(root / "dev" / f"{key}_dev.csv", head, [[i, *q, "解析"] for i, q in enumerate(dev)])
        write_csv(root / "val" / f"{key}_val.csv", head[:-1], [[i, *q] for i, q in enumerate(val)])
    return root


@pytest.fixture(scope="module")
def real_cmmlu(shared_data, tmp_path_factory) -> Path:
    """The first 6 test questions (and the 5 dev ones) of three real CMMLU subjects, cells untouched."""
    root = tmp_path_factory.mktemp("cmmlu")
    for key in CMMLU_ZH:
        for split, n in (("dev", 5), ("test", 6)):
            rows = list(csv.reader((shared_data / "cmmlu" / split / f"{key}.csv").open(encoding="utf-8")))[: n + 1]
            write_csv(root / split / f"{key}.csv", rows[0], rows[1:])
    return root


@pytest.fixture(scope="module")
def sp(tiny_sp_model):
    return SP(tiny_sp_model)


@pytest.fixture(scope="module")
def model(varied_model):
    """The varied model scaled once more (weights x12 in all): at x6 the C-Eval 5-shot letters were all one."""
    import copy

    model, tok = varied_model
    model = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.mul_(2)
    return model, tok


# --- tests ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shots", [0, 5])
@pytest.mark.parametrize("protocol", ["ymcui", "ymcui-chat", "ceval"])
def test_ceval_format_equals_reference(protocol, shots, model, sp, synthetic_ceval, tmp_path):
    model, tok = model
    subjects = ["advanced_mathematics", "computer_network"]
    ref = reference(protocol, model, sp, "ceval", synthetic_ceval, "val", subjects, shots)
    got = ours(protocol, model, tok, "ceval", synthetic_ceval, "val", shots, tmp_path / "out")
    assert len(ref) == 18 and got == ref
    assert len(set(ref.values())) > 1


@pytest.mark.shared_data
@pytest.mark.parametrize("shots", [0, 5])
@pytest.mark.parametrize("protocol", ["ymcui", "ymcui-chat", "cmmlu"])
def test_real_cmmlu_equals_reference(protocol, shots, model, sp, real_cmmlu, tmp_path):
    model, tok = model
    ref = reference(protocol, model, sp, "cmmlu", real_cmmlu, "test", list(CMMLU_ZH), shots)
    got = ours(protocol, model, tok, "cmmlu", real_cmmlu, "test", shots, tmp_path / "out")
    assert len(ref) == 18 and got == ref
    assert len(set(ref.values())) > 1


@pytest.mark.shared_data
def test_cmmlu_drops_longest_shots_like_the_reference(model, sp, real_cmmlu, tmp_path):
    """A 600-token budget makes CMMLU's gen_prompt drop shots (longest first) for some questions."""
    model, tok = model
    ref = cmmlu_reference(model, sp, real_cmmlu, list(CMMLU_ZH), 5, max_length=600)
    got = ours("cmmlu", model, tok, "cmmlu", real_cmmlu, "test", 5, tmp_path / "out", max_length=600)
    shots = [r["shots"] for r in read_predictions(tmp_path / "out" / "predictions.jsonl").values()]
    assert got == ref and min(shots) < 5


@pytest.mark.shared_data
def test_the_model_reads_the_header(model, sp, real_cmmlu):
    """Guard on the tests above: a different header changes many letters, so agreement means something."""
    model, _ = model
    subjects = list(CMMLU_ZH)
    ymcui = reference("ymcui", model, sp, "cmmlu", real_cmmlu, "test", subjects, 5)
    other = ymcui_reference(model, sp, "cmmlu", real_cmmlu, "test", subjects, 5, False,
                            header="以下是关于考试的单项选择题，请直接给出正确答案的选项。\n\n")
    assert sum(ymcui[k] != other[k] for k in ymcui) >= len(ymcui) // 5


def test_protocol_task_and_mode_mismatches_are_one_line(tmp_path, synthetic_ceval, capsys):
    from zhllama.cli import main

    cases = [(["--protocol", "cmmlu", "--task", "ceval"], "--protocol cmmlu reproduces the CMMLU evaluator"),
             (["--protocol", "ymcui", "--task", "ceval", "--generate"], "--generate is for --protocol zhllama"),
             (["--protocol", "ceval", "--task", "ceval", "--template", "alpaca"], "--template is for --protocol zhllama")]
    for extra, needle in cases:
        code = main(["eval", "mc", "--model", str(tmp_path / "no-model"), "--data-dir", str(synthetic_ceval),
                     "--out", str(tmp_path / "out"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["eval", "mc", "--model", "m", "--task", "ceval", "--data-dir", "d", "--out", "o", "--protocol", "x"])
    assert "invalid choice: 'x'" in capsys.readouterr().err
