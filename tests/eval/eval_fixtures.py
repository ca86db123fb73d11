"""Writers for small CSV fixtures in the public CMMLU and C-Eval layouts."""

from __future__ import annotations

import csv
from pathlib import Path

QUESTIONS = [
    ("土地是什么", "工具", "土地", "劳动", "资金", "B"),
    ("水的化学式", "H2O", "CO2", "O2", "NaCl", "A"),
    ("中国的首都", "上海", "广州", "北京", "深圳", "C"),
    ("一加一等于", "一", "三", "四", "二", "D"),
    ("太阳从哪边升起", "东", "西", "南", "北", "A"),
    ("猫是什么动物", "鸟", "哺乳动物", "鱼", "昆虫", "B"),
    ("一年有几个月", "十", "十一", "十二", "十三", "C"),
    ("人有几只手", "一", "二", "三", "四", "B"),
]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_cmmlu(root: Path, subjects: dict[str, tuple[list, list]]) -> Path:
    """subjects: key -> (dev questions, test questions), each a QUESTIONS-style tuple."""
    for key, (dev, test) in subjects.items():
        for split, qs in (("dev", dev), ("test", test)):
            write_csv(root / split / f"{key}.csv", ["", "Question", "A", "B", "C", "D", "Answer"],
                      [[i, *q] for i, q in enumerate(qs)])
    return root


def write_ceval(root: Path, subjects: dict[str, tuple[list, list, list]]) -> Path:
    """subjects: key -> (dev, val, test) questions; the test split is written without answers."""
    for key, (dev, val, test) in subjects.items():
        head = ["id", "question", "A", "B", "C", "D", "answer", "explanation"]
        write_csv(root / "dev" / f"{key}_dev.csv", head, [[i, *q, "解析"] for i, q in enumerate(dev)])
        write_csv(root / "val" / f"{key}_val.csv", head[:-1], [[i, *q] for i, q in enumerate(val)])
        write_csv(root / "test" / f"{key}_test.csv", head[:6], [[i + 100, *q[:5]] for i, q in enumerate(test)])
    return root
