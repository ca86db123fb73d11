"""TextStream: safe text deltas from byte-fallback token ids, stop strings held back and cut."""

from __future__ import annotations

from zhllama.infer.stream import TextStream

MIXED = ["龙猫喜欢吃饺子和麒麟蛋糕。", "Hello, 世界! return  the value 🐊🐊 鳄鱼\n\n第二段  x", " leading space 和 tab\t尾"]


def stream_all(tokenizer, ids, stop=()):
    s = TextStream(tokenizer, stop)
    deltas = []
    for i in ids:
        deltas.append(s.push(i))
        if s.stopped:
            return s, deltas
    deltas.append(s.finish())
    return s, deltas


def test_deltas_are_whole_characters_and_add_up_to_the_decoding(tiny_tokenizer):
    for text in MIXED:
        ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
        byte_tokens = [t for t in tiny_tokenizer.convert_ids_to_tokens(ids) if t.startswith("<0x")]
        assert len(byte_tokens) > 3, "the test text must fall back to byte tokens"
        _, deltas = stream_all(tiny_tokenizer, ids)
        assert not any("\ufffd" in d for d in deltas)
        assert "".join(deltas) == tiny_tokenizer.decode(ids, skip_special_tokens=True)


def test_stop_string_is_cut_and_never_streamed(tiny_tokenizer):
    text = "前面的文字 STOP 后面的文字"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    s, deltas = stream_all(tiny_tokenizer, ids, stop=("STOP",))
    assert s.stopped and "".join(deltas) == "前面的文字 "
    assert not any(c in "".join(deltas) for c in "STOP")


def test_earliest_of_several_stops_wins(tiny_tokenizer):
    ids = tiny_tokenizer("one two three four", add_special_tokens=False)["input_ids"]
    s, deltas = stream_all(tiny_tokenizer, ids, stop=("four", "two"))
    assert s.stopped and "".join(deltas) == "one "


def test_a_partial_stop_string_is_released_at_the_end(tiny_tokenizer):
    ids = tiny_tokenizer("value ST", add_special_tokens=False)["input_ids"]
    s, deltas = stream_all(tiny_tokenizer, ids, stop=("STOP",))
    assert not s.stopped and "".join(deltas) == "value ST"
    assert "".join(deltas[:-1]) == "value ", "ST was held back until the end"


def test_a_character_cut_by_the_end_is_dropped_not_broken(tiny_tokenizer):
    ids = tiny_tokenizer("好鳄", add_special_tokens=False)["input_ids"]
    s, deltas = stream_all(tiny_tokenizer, ids[:-1])  # the last byte of 鳄 never arrives
    assert "\ufffd" not in "".join(deltas) and "".join(deltas) == "好"
