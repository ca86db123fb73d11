"""The one registry of chat templates.

A template turns a conversation (OpenAI-style ``messages``) into a list of :class:`Segment` s:
pieces of text, each marked as prompt or response, plus explicit BOS/EOS markers.  Training
(``zhllama.data.instructions``), inference (``zhllama.infer``), the server and the evaluators all
go through :func:`encode_messages`, so a conversation becomes the very same token ids everywhere.

Segments are tokenized one by one and concatenated, as the Chinese-Alpaca(-2) training scripts do
(they tokenize the prompt and the response separately).  Because the tokenizer adds
SentencePiece's dummy-prefix ``▁`` to each piece, the prompt the model sees at inference ends with
exactly the tokens it ended with in training, and the first response token is the same too.

Every template also has a Jinja form (:meth:`ChatTemplate.jinja`) that saved tokenizer folders carry
as ``chat_template``: it renders the text whose whole-string tokenization gives the very same ids
(the dummy prefix becomes a space between two text segments).  That holds because no text segment
ends with a space: SentencePiece pieces never hold a ``▁`` after another character, so no token can
straddle "text" + "▁text", while a trailing space would let ``▁▁`` merge across the boundary.

The package's two modules: :mod:`.formats` (the formats and their registry) and :mod:`.encode`
(a conversation in a format as token ids); their public names are importable from here.
"""

from .encode import (check_template_fits, chat_template_jinja, dummy_prefix_separator, encode_messages,
                     encode_native, encode_plain_text, encode_segments, special_token_id, stop_token_ids)
from .formats import (ALPACA_HEADER, LLAMA2_SYSTEM, LLAMA2_ZH_SYSTEM, LLAMA3_TOKENS, QWEN_SYSTEM, TEMPLATES,
                      ChatTemplate, Segment, Turn, alpaca_record_to_messages, get_template, split_turns)

__all__ = ["ALPACA_HEADER", "LLAMA2_SYSTEM", "LLAMA2_ZH_SYSTEM", "LLAMA3_TOKENS", "QWEN_SYSTEM", "TEMPLATES",
           "ChatTemplate", "Segment", "Turn", "alpaca_record_to_messages", "check_template_fits", "chat_template_jinja",
           "dummy_prefix_separator", "encode_messages", "encode_native", "encode_plain_text", "encode_segments",
           "get_template", "special_token_id", "split_turns", "stop_token_ids"]
