import pytest

from zhllama.eval.extract import extract_choice

OPTIONS = ("农业生产工具", "土地", "劳动力", "资金")


@pytest.mark.parametrize("text,letter", [
    ("B", "B"),                                  # 1. leading letter
    (" (C) 劳动力", "C"),
    ("【D】资金", "D"),
    ("A。因为工具最重要", "A"),
    ("根据题意，答案是D。", "D"),                  # 2. answer phrase
    ("正确答案为（B）", "B"),
    ("所以应选C", "C"),
    ("我认为答案不是A，答案是C", "C"),             # negated phrase skipped
    ("本题不选A，选D", "D"),
    ("这道题B选项正确", "B"),                     # 3. "X 正确"
    ("经分析，C是正确的", "C"),
    ("最基本的生产资料是土地。", "B"),              # 4. exactly one option's text
    ("农业生产工具", "A"),                         # longest option first, no double count
    ("DNA 的结构和 C 有关", "C"),                  # 5. first standalone letter, not inside DNA
    ("我不知道", None),                            # 6. nothing
    ("劳动力和资金都重要", None),                   # two options mentioned, no letter
])
def test_extraction_rules(text, letter):
    assert extract_choice(text, OPTIONS) == letter
