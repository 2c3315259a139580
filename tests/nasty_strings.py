"""Texts that scraped web pages, OCR output, chat logs and broken corpora really contain.

Each entry is `name: text`; the comment says what it exercises. pipeline/test_bert_ner.py runs
every one through the component with the tiny model and checks that no token is lost or
mislabelled; annotate/test_annotate.py annotates them all from one file and
serve/test_service.py sends them to the running service.

`LONE_SURROGATES` are texts spaCy's tokenizer refuses (UnicodeEncodeError), so no component
can see them: the component tests check what `replace_lone_surrogates` makes of them, and
`annotate` and `serve`, which take them from JSON, must annotate them like any other text.
"""

NASTY_STRINGS: dict[str, str] = {
    # Nothing to label at all.
    "empty": "",
    "single space": " ",
    # Only whitespace tokens: spaCy makes tokens of them, the wordpiece tokenizer none.
    "whitespace only": " \t\n\r\n  \u00a0\u2028\u2029\u3000 ",
    # C0/C1 control characters, DEL and an ANSI colour escape, as pasted from a terminal.
    "control characters": "Angela\x00Merkel\x01\x02 met\x7f \x1b[31mMacron\x1b[0m in \x85Berlin",
    "bell and backspace": "Paris\x07\x08\x08 and Berlin\x0b\x0c",
    # Zero-width space/joiner/non-joiner, BOM and word joiner between and inside words.
    "zero-width characters": "\ufeffAngela\u200b Merkel\u200c met\u200d Macron\u2060 \u200b\u200b",
    "zero-width only": "\u200b\u200c\u200d\ufeff\u2060",
    # Emoji with skin tones, ZWJ family sequences, flags and keycaps.
    "emoji and zwj sequences": "👩‍👩‍👧‍👦 met 👍🏽 in 🇩🇪 Berlin 🏳️‍🌈 #️⃣ 1️⃣ 🧑🏿‍🚀!!",
    "emoji only": "😀😃😄😁😆😅😂🤣☺️😊",
    # Right-to-left scripts with bidi controls, mixed with Latin and CJK in one sentence.
    "rtl and cjk mix": (
        "Angela Merkel \u202bשלום עולם\u202c met مرحبا بالعالم in 北京 and 東京タワー 서울"
    ),
    "bidi overrides": "\u202eBerlin\u202c \u2066Paris\u2069 \u200fMacron\u200e",
    # Combining marks: stacked accents and "zalgo" text; a mark with no base character.
    "combining marks": "Ange\u0301\u0301la Me\u0308rkel Z̴̡̧̛͖̈́͑a̷̡͔͊l̵͓̓g̶̣͆o̸͇͝ m\u0323\u0307et",
    "lone combining marks": "\u0301 \u0308\u0308 \u20dd",
    # One 10,000-character token: longer than WordPiece's 100-character word limit.
    "10k-character token": "a" * 10_000,
    # A 10,000-character token that splits into 10,000 wordpieces (every CJK character is one).
    "10k-piece token": "北" * 10_000,
    # Texts that tokenize to nothing but [UNK] in the tiny model's vocabulary.
    "only unknown wordpieces": "☃ ☃ ☃ Ω ≠ ∞ ß ø",
    "unknown between known": "angela ☃ merkel ∞ berlin",
    # Private-use and noncharacter code points, and the replacement character.
    "private use and noncharacters": "\ue000\U000f0000 \uffff\ufffe \ufffd\ufffd",
    # The last code point, and noncharacters of the Arabic block and of astral planes.
    "last code point and astral noncharacters": (
        "\U0010ffff Berlin \U0010ffff\ufdd0\ufdef \U0001fffe\U0010fffe Paris\U0010ffff"
    ),
    # A byte-order mark inside words, as concatenated files leave it.
    "bom inside a word": "Ber\ufefflin Angela\ufeffMerkel Mer\ufeff\ufeffkel",
    # 100,000 combining marks on one base letter: one token of 100,001 characters.
    "100k combining marks": "Paris a" + "\u0301" * 100_000 + " Berlin",
    # Every C0 and C1 control character, glued together and between words, three times over.
    "control-character soup": (
        "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]) + "Angela Merkel"
    )
    * 3,
    # OCR debris: hyphenation, ligatures, soft hyphens and broken spacing.
    "ocr debris": "Ber-\nlin ﬁnance Mer\u00adkel M a c r o n ,,, ...... |||| l1I|",
    # Chat logs: repeated punctuation, URLs, mentions, hashtags and emoticons.
    "chat log": (
        "@angela_merkel: omg!!!!!! https://example.com/?q=Berlin&x=1 #Paris :-) <3 ¯\\_(ツ)_/¯"
    ),
    # Markup leftovers from scraped pages.
    "html leftovers": "<p>Angela&nbsp;Merkel</p><script>alert('x')</script> &amp; Berlin",
    # Full-width and mathematical letters that look like Latin ones.
    "look-alike letters": "Ａｎｇｅｌａ Ｍｅｒｋｅｌ 𝐁𝐞𝐫𝐥𝐢𝐧 𝔓𝔞𝔯𝔦𝔰",
    # Many short lines: every newline is its own whitespace token.
    "newlines between words": "\n".join(["Berlin", "", "Paris", "", "", "Macron"] * 20),
}

LONE_SURROGATES: dict[str, str] = {
    # Half of a UTF-16 pair between words: JSON "\ud800" alone, as a cut string leaves it.
    "high surrogate between words": "Paris \ud800 Berlin",
    # A low surrogate before a name.
    "low surrogate first": "\udfff Angela Merkel",
    # The first half of an emoji, and nothing else.
    "half an emoji alone": "\ud83d",
    # Inside a word, as `surrogateescape` decodes an undecodable byte.
    "escaped byte inside a word": "Ber\udc80lin and Par\udcffis",
    # Both halves of an emoji as two code points, which a Python `str` can hold.
    "unjoined pair": "\ud83d\ude00 Angela Merkel",
}
