"""Properties of CoNLL reading (hypothesis): any IOB input gives valid IOB2 with the same
types, any file the format allows reads back exactly through a DocBin, and any bytes give
docs or one located error."""

import tempfile
from pathlib import Path

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from spacy.tokens import DocBin

from spacy_bert_ner.conll import ConllStats, conll_to_docs, read_conll
from spacy_bert_ner.errors import BertNERError, ConllFormatError
from tests.test_conll import write_file

TAG_ALPHABET = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])


def _read_text(text: str) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        return read_conll(write_file(Path(tmp), text))


@settings(max_examples=200, deadline=None)
@given(
    tag_sentences=st.lists(st.lists(TAG_ALPHABET, min_size=1, max_size=8), min_size=1, max_size=6)
)
def test_any_iob_input_gives_valid_iob2_with_the_same_types(tag_sentences, vocab) -> None:
    text = "\n".join(
        "".join(f"w{i} {tag}\n" for i, tag in enumerate(tags)) for tags in tag_sentences
    )
    (document,) = _read_text(text)
    read_tags = [[tag for _, tag in sentence] for sentence in document.sentences]
    flat_tags = [tag for tags in read_tags for tag in tags]
    # Entity types are kept token by token; only I-/B- prefixes may change.
    assert [tag[2:] for tags in read_tags for tag in tags] == [
        tag[2:] for tags in tag_sentences for tag in tags
    ]
    # spaCy accepts the tags as they are (valid IOB2) and stores exactly them.
    (doc,) = conll_to_docs([document], vocab)
    assert [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_type_ else "O" for t in doc] == flat_tags
    # Reading IOB2 output again changes nothing.
    rewritten = "\n".join("".join(f"{w} {t}\n" for w, t in s) for s in document.sentences)
    assert _read_text(rewritten)[0].sentences == document.sentences


# --- properties: any file the format allows reads back exactly; any other input fails clean

# Word characters: anything but the column and line separators. U+FEFF is left out because
# at the very start of a file it is a byte order mark, which the reader rightly drops.
WORDS = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters=" \t\n\r\ufeff"),
    min_size=1,
    max_size=8,
).filter(lambda word: word != "-DOCSTART-")
LABELS = st.sampled_from(["PER", "LOC", "ORG", "MISC"])


@st.composite
def conll_sentences(draw):
    """(words, entities as (start, end, label)) from segments: an entity or a run of O."""
    words: list[str] = []
    entities: list[tuple[int, int, str]] = []
    for _ in range(draw(st.integers(1, 5))):
        length = draw(st.integers(1, 3))
        label = draw(st.one_of(st.none(), LABELS))
        if label is not None:
            entities.append((len(words), len(words) + length, label))
        words.extend(draw(st.lists(WORDS, min_size=length, max_size=length)))
    return words, entities


def render_tags(n_words: int, entities: list[tuple[int, int, str]], scheme: str) -> list[str]:
    """Tags written from the entities alone, so the reader is checked against no code of
    its own. IOB1 uses B- only where an entity directly follows one of its type."""
    tags = ["O"] * n_words
    previous: tuple[int, str] | None = None  # (end, label) of the entity before
    for start, end, label in entities:
        adjacent = previous == (start, label)
        first = "B" if scheme == "IOB2" or adjacent else "I"
        tags[start:end] = [f"{first}-{label}"] + [f"I-{label}"] * (end - start - 1)
        previous = (end, label)
    return tags


@settings(max_examples=500, deadline=None)
@given(
    documents=st.lists(st.lists(conll_sentences(), max_size=3), min_size=1, max_size=3),
    scheme=st.sampled_from(["IOB1", "IOB2"]),
    extra_columns=st.integers(0, 2),
    separator=st.sampled_from([" ", "\t", "  \t"]),
    blank_line=st.sampled_from(["", " ", "\t \t"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    docstart=st.booleans(),
)
def test_any_valid_file_reads_back_exactly_through_a_docbin(
    documents, scheme, extra_columns, separator, blank_line, newline, bom, docstart, vocab
) -> None:
    sentences = [sentence for document in documents for sentence in document]
    assume(sentences)
    lines: list[str] = []
    for document in documents:
        if docstart:
            lines += [separator.join(["-DOCSTART-", *["-X-"] * extra_columns, "O"]), blank_line]
        for words, entities in document:
            tags = render_tags(len(words), entities, scheme)
            for word, tag in zip(words, tags, strict=True):
                lines.append(separator.join([word, *["NNP"] * extra_columns, tag]))
            lines.append(blank_line)
    data = (b"\xef\xbb\xbf" if bom else b"") + newline.join(lines).encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        documents_read = read_conll(write_file(Path(tmp), data))
    # What convert_file writes and load_gold_docs reads, without a blank pipeline per example.
    stored = DocBin(docs=conll_to_docs(documents_read, vocab)).to_bytes()
    docs = list(DocBin().from_bytes(stored).get_docs(vocab))

    read = [
        (
            [token.text for token in sent],
            [(e.start - sent.start, e.end - sent.start, e.label_) for e in sent.ents],
        )
        for doc in docs
        for sent in doc.sents
    ]
    assert read == [(words, entities) for words, entities in sentences]
    if docstart:
        assert [len(list(doc.sents)) for doc in docs] == [len(d) for d in documents if d]


CONLL_ALPHABET = st.sampled_from(
    [" ", "\t", "\n", "\r\n", "O", "B-", "I-", "E-", "PER", "-", "x", "é", "\ufeff", "\x00"]
    + ["-DOCSTART-", "\u2028", "\x85", "\u200b"]
)


@settings(max_examples=500, deadline=None)
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.lists(CONLL_ALPHABET, max_size=60).map(lambda parts: "".join(parts).encode("utf-8")),
    )
)
def test_any_bytes_give_docs_or_one_located_error(content: bytes, vocab) -> None:
    """Fuzzing: a file is either read, with every token line becoming a token, or refused
    with a BertNERError; never another exception."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_file(Path(tmp), content)
        try:
            documents = read_conll(path)
        except ConllFormatError as err:
            assert err.path == str(path) and 1 <= err.line_no <= content.count(b"\n") + 1
            return
        except BertNERError as err:
            assert "no tokens found" in str(err)
            return
    docs = conll_to_docs(documents, vocab)
    assert sum(len(doc) for doc in docs) == ConllStats.from_documents(documents).tokens
    assert all(len(doc) for doc in docs)
