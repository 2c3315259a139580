"""Input text that spaCy cannot hold, made into text it can: lone surrogates.

A Python `str` may hold a surrogate code point (U+D800-U+DFFF) on its own: JSON's `"\\ud83d"`
(half of an emoji's UTF-16 pair, common where a social-media dump cut a string) decodes to one,
and so do undecodable bytes read with `errors="surrogateescape"`. spaCy refuses such a text in
its tokenizer (`UnicodeEncodeError`: its string store keeps every token as UTF-8), so no
component, `bert_ner` included, can ever see one, and `nlp.pipe`'s error handler cannot catch
it (the tokenizer runs before the components).

The places that take text from outside (`annotate`, `serve`) therefore replace each lone
surrogate with U+FFFD, the replacement character, before spaCy sees the text:
- one code point for one, so every character offset of the answer still indexes the text as
  the client sent it;
- U+FFFD is what `errors="replace"` decoding, the other common way to read broken input,
  puts in its place;
- spaCy's tokenizer splits U+FFFD off as a token of its own (a symbol, even inside a word), and
  BERT tokenizers drop it (as they drop control characters): that token has no wordpiece, so
  it is "O", and every other token is labelled as beside any token without a wordpiece.
`nlp(...)` itself keeps spaCy's behaviour: replacing inside the pipeline (a tokenizer that
wraps spaCy's) would silently give a `doc.text` other than the text passed, which spaCy
promises never happens. A caller of `nlp` passes `replace_lone_surrogates(text)` instead.
"""

import re

#: Any surrogate code point. UTF-8 and JSON decoding join a real pair into one character, so
#: a surrogate left in a `str` is a lone one, and spaCy refuses it.
SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


def replace_lone_surrogates(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD; the same length, so the same
    offsets. Text without one is returned as it is."""
    return SURROGATE.sub(REPLACEMENT_CHARACTER, text)


def escape_lone_surrogates(json_text: str) -> str:
    """JSON text with each lone surrogate written as its `\\uXXXX` escape, which is what a
    JSON reader turns back into the same `str`, and which UTF-8 can encode."""
    return SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", json_text)
