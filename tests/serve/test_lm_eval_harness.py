"""lm-evaluation-harness against `zhllama serve`: `local-completions` (loglikelihood multiple choice) picks the
answers lm-eval's own `hf` model picks on the same folder, and `local-chat-completions` (generate_until) gets
the server's greedy replies.

lm-eval is heavy (it brings scikit-learn, nltk, sacrebleu...): it lives in the engines environment
(``make test-engines``, ``pip install 'lm_eval[api]'``), and this module skips without it.  A
CMMLU-layout task written here runs everywhere lm-eval is; the 60 real CMMLU questions of
``../shared/data/cmmlu`` run where that folder is.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval")

MODEL = "tiny"
API_KEY = "sk-test-zhllama"  # the key of conftest's `server`; lm-eval's local models send $OPENAI_API_KEY
LETTERS = "ABCD"
# a CMMLU-layout task that ships with the test (CMMLU's own rows may not be copied into the repository)
OWN_QUESTIONS = [
    ("中国的首都是哪座城市？", "上海", "北京", "广州", "深圳", "B"),
    ("一年有多少个月？", "十个", "十一个", "十二个", "十三个", "C"),
    ("水在标准大气压下的沸点是多少摄氏度？", "90", "100", "110", "120", "B"),
    ("《红楼梦》的作者是谁？", "曹雪芹", "罗贯中", "吴承恩", "施耐庵", "A"),
    ("太阳从哪个方向升起？", "西方", "南方", "北方", "东方", "D"),
    ("一个三角形的内角和是多少度？", "90", "180", "270", "360", "B"),
    ("下列哪个是哺乳动物？", "鲨鱼", "鲸鱼", "金枪鱼", "鳟鱼", "B"),
    ("长江最终流入哪里？", "东海", "南海", "黄海", "渤海", "A"),
]
MC_TASK = """task: {name}
dataset_path: csv
dataset_kwargs:
  data_files:
    test: {csv}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{Question.strip()}}}}\\nA. {{{{A}}}}\\nB. {{{{B}}}}\\nC. {{{{C}}}}\\nD. {{{{D}}}}\\n答案："
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: "{{{{['A', 'B', 'C', 'D'].index(Answer)}}}}"
metric_list:
  - metric: acc
"""
GEN_TASK = """task: {name}
dataset_path: csv
dataset_kwargs:
  data_files:
    test: {csv}
test_split: test
output_type: generate_until
doc_to_text: "{{{{Question.strip()}}}}"
doc_to_target: "{{{{Answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
"""


def write_task(folder: Path, name: str, rows: list[tuple], template: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.csv"
    with data.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Question", "A", "B", "C", "D", "Answer"])
        writer.writerows(rows)
    (folder / f"{name}.yaml").write_text(template.format(name=name, csv=data), encoding="utf-8")


def cmmlu_rows(root: Path, n: int = 60) -> list[tuple]:
    """The first 15 questions of the first 4 CMMLU test subjects (alphabetically): 60 real questions."""
    rows = []
    for path in sorted((root / "cmmlu" / "test").glob("*.csv"))[: n // 15]:
        with path.open(encoding="utf-8") as f:
            for record in list(csv.DictReader(f))[:15]:
                rows.append(tuple(record[k] for k in ("Question", "A", "B", "C", "D", "Answer")))
    return rows


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)


def evaluate(model: str, model_args: str, folder: Path, task: str, **kw) -> list[dict]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    out = simple_evaluate(model=model, model_args=model_args, tasks=[task], log_samples=True,
                          task_manager=TaskManager(include_path=str(folder)), **kw)
    return sorted(out["samples"][task], key=lambda s: s["doc_id"])


def picks(samples: list[dict]) -> list[tuple[int, list[float]]]:
    """(chosen choice, loglikelihood of each choice) per question."""
    out = []
    for s in samples:
        lls = [float(r[0][0]) for r in s["resps"]]
        out.append((max(range(len(lls)), key=lls.__getitem__), lls))
    return out


def compare_with_hf(server: str, model_dir: Path, folder: Path, task: str, report: Path | None = None):
    ours = picks(evaluate("local-completions", f"base_url={server}/v1/completions,model={MODEL},"
                          f"tokenizer={model_dir},add_bos_token=True,num_concurrent=4,max_retries=1,"
                          "tokenized_requests=True", folder, task))
    theirs = picks(evaluate("hf", f"pretrained={model_dir},dtype=float32,device=cpu", folder, task, batch_size=4))
    same = sum(a[0] == b[0] for a, b in zip(ours, theirs))
    gap = max(abs(x - y) for a, b in zip(ours, theirs) for x, y in zip(a[1], b[1]))
    if report is not None:
        report.write_text(json.dumps({"questions": len(ours), "same_answer": same, "max_ll_difference": gap,
                                      "differing": [i for i, (a, b) in enumerate(zip(ours, theirs)) if a[0] != b[0]]},
                                     indent=1))
    return ours, theirs, same, gap


def test_local_completions_picks_what_hf_picks(server, tiny_model_dir, tmp_path):
    write_task(tmp_path / "tasks", "zh_mc_own", OWN_QUESTIONS, MC_TASK)
    ours, theirs, same, gap = compare_with_hf(server, tiny_model_dir, tmp_path / "tasks", "zh_mc_own")
    assert len(ours) == len(OWN_QUESTIONS) and same == len(ours)
    assert gap < 1e-3  # the same loglikelihoods, up to batched float32 arithmetic


def test_local_completions_on_60_cmmlu_questions(server, tiny_model_dir, tmp_path, shared_data):
    rows = cmmlu_rows(shared_data)
    assert len(rows) == 60
    write_task(tmp_path / "tasks", "cmmlu_local60", rows, MC_TASK)
    report = Path(tmp_path / "agreement.json")
    ours, theirs, same, gap = compare_with_hf(server, tiny_model_dir, tmp_path / "tasks", "cmmlu_local60", report)
    print(report.read_text(), file=sys.stderr)
    assert len(ours) == 60 and same >= 58 and gap < 1e-3


def test_local_chat_completions_generates_the_servers_greedy_replies(server, tiny_model_dir, tmp_path):
    from zhllama.infer.engine import Engine, SamplingParams

    write_task(tmp_path / "tasks", "zh_gen_own", OWN_QUESTIONS[:4], GEN_TASK)
    samples = evaluate("local-chat-completions", f"base_url={server}/v1/chat/completions,model={MODEL},"
                       "max_retries=1", tmp_path / "tasks", "zh_gen_own", apply_chat_template=True)
    engine = Engine.load(tiny_model_dir)
    params = SamplingParams(max_new_tokens=8, temperature=0.0, stop=("\n",))
    for sample, row in zip(samples, OWN_QUESTIONS):
        want = engine.generate([engine.chat_prompt([{"role": "user", "content": row[0]}])], params)[0].text
        assert sample["resps"][0][0] == want
