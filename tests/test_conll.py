"""CoNLL reading (data located by conftest's `data_dir`, $SPACY_BERT_NER_DATA or
../shared/data): published corpus counts, every input variant, DocBin round trip, and
malformed files that must fail as one CLI line without leaving output behind."""

import errno
import os
from pathlib import Path

import pytest
from spacy.tokens import Doc
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.conll import (
    ConllStats,
    conll_to_docs,
    convert_file,
    detect_scheme,
    load_gold_docs,
    read_conll,
)
from spacy_bert_ner.errors import BertNERError, ConllFormatError


def write_file(tmp_path: Path, content: str | bytes, name: str = "sample.conll") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _summary(docs: list[Doc]) -> list[tuple[list[list[str]], list[tuple[str, str]]]]:
    """Per doc: words by sentence, and (text, label) of each entity."""
    return [
        (
            [[token.text for token in sent] for sent in doc.sents],
            [(ent.text, ent.label_) for ent in doc.ents],
        )
        for doc in docs
    ]


# --- the real corpora -------------------------------------------------------------------

CONLL2003 = {
    "eng.train": (946, 14041, 203621, {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}),
    "eng.testa": (216, 3250, 51362, {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}),
    "eng.testb": (231, 3453, 46435, {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}),
}


@pytest.mark.parametrize("name", sorted(CONLL2003))
def test_conll2003_counts_match_published(data_dir: Path, name: str) -> None:
    docs, sentences, tokens, entities = CONLL2003[name]
    documents = read_conll(data_dir / "conll2003" / name)
    assert ConllStats.from_documents(documents) == ConllStats(docs, sentences, tokens, entities)
    assert {document.scheme for document in documents} == {"IOB1"}


# sec-filings/SOURCE.txt: `word POS - NER` lines (the chunk column is "-"), IOB1, -DOCSTART-.
SEC_FILINGS = {
    "FIN5.txt": (5, 1164, 41010, {"LOC": 171, "MISC": 7, "ORG": 243, "PER": 747}),
    "FIN3.txt": (3, 303, 13246, {"LOC": 39, "MISC": 7, "ORG": 56, "PER": 216}),
}


@pytest.mark.parametrize("name", sorted(SEC_FILINGS))
def test_sec_filings_counts_match_published(data_dir: Path, name: str) -> None:
    docs, sentences, tokens, entities = SEC_FILINGS[name]
    documents = read_conll(data_dir / "sec-filings" / name)
    assert ConllStats.from_documents(documents) == ConllStats(docs, sentences, tokens, entities)
    assert {document.scheme for document in documents} == {"IOB1"}
    assert all(document.pos is not None for document in documents)


# Tokens from conll2002/SOURCE.txt (Dutch excludes its -DOCSTART- lines). Files without
# -DOCSTART- (Spanish) are cut into docs of n_sents=10 sentences.
CONLL2002 = {
    "esp.train": (833, 8323, 264715),
    "esp.testa": (192, 1915, 52923),
    "esp.testb": (152, 1517, 51533),
    "ned.train": (287, 15806, 202644),
    "ned.testa": (74, 2895, 37687),
    "ned.testb": (119, 5195, 68875),
}


@pytest.mark.parametrize("name", sorted(CONLL2002))
def test_conll2002_counts_match_published(data_dir: Path, name: str) -> None:
    documents = read_conll(data_dir / "conll2002" / name)
    stats = ConllStats.from_documents(documents)
    assert (stats.docs, stats.sentences, stats.tokens) == CONLL2002[name]
    assert {document.scheme for document in documents} == {"IOB2"}
    assert not any(word == "-DOCSTART-" for d in documents for s in d.sentences for word, _ in s)


def test_conll2002_spanish_entities_match_spacy_convert(data_dir: Path) -> None:
    # conll2002/SOURCE.txt: `spacy convert -c ner` finds 18,798 entities in esp.train.
    stats = ConllStats.from_documents(read_conll(data_dir / "conll2002" / "esp.train"))
    assert sum(stats.entities.values()) == 18798


# --- input variants -----------------------------------------------------------------------

CONLL2003_STYLE = """\
-DOCSTART- -X- -X- O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- O O

Hong NNP I-NP I-LOC
Kong NNP I-NP I-LOC
Japan NNP I-NP B-LOC
! . O O

"""

CONLL2002_DUTCH_STYLE = """\
-DOCSTART- -DOCSTART- O
EU N B-ORG
rejects V O
German Adj B-MISC
call N O
. Punc O

Peter N B-PER
Blackburn N I-PER

-DOCSTART- -DOCSTART- O
Hong N B-LOC
Kong N I-LOC
Japan N B-LOC
! Punc O
"""

TWO_COLUMNS = """\
-DOCSTART- O

EU B-ORG
rejects O
German B-MISC
call O
. O

Peter B-PER
Blackburn I-PER

-DOCSTART- O

Hong B-LOC
Kong I-LOC
Japan B-LOC
! O
"""

EXPECTED = [
    (
        [["EU", "rejects", "German", "call", "."], ["Peter", "Blackburn"]],
        [("EU", "ORG"), ("German", "MISC"), ("Peter Blackburn", "PER")],
    ),
    ([["Hong", "Kong", "Japan", "!"]], [("Hong Kong", "LOC"), ("Japan", "LOC")]),
]

VARIANTS: dict[str, str | bytes] = {
    "conll2003 4 columns IOB1": CONLL2003_STYLE,
    "conll2002 3 columns IOB2, no blank after -DOCSTART-": CONLL2002_DUTCH_STYLE,
    "2 columns": TWO_COLUMNS,
    "tab separated": CONLL2003_STYLE.replace(" ", "\t"),
    "mixed tabs and spaces, trailing whitespace": CONLL2003_STYLE.replace(
        " I-NP ", " \t I-NP\t"
    ).replace("\n", " \t\n"),
    "whitespace-only separator lines": CONLL2003_STYLE.replace("\n\n", "\n  \t \n"),
    "CRLF": CONLL2003_STYLE.replace("\n", "\r\n"),
    "UTF-8 BOM": b"\xef\xbb\xbf" + CONLL2003_STYLE.encode("utf-8"),
    "no final newline": CONLL2003_STYLE.rstrip("\n"),
    "no final newline, CRLF, BOM": b"\xef\xbb\xbf"
    + TWO_COLUMNS.rstrip("\n").replace("\n", "\r\n").encode("utf-8"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_input_variants_give_the_same_docs(tmp_path: Path, vocab, variant: str) -> None:
    path = write_file(tmp_path, VARIANTS[variant])
    assert _summary(conll_to_docs(read_conll(path), vocab)) == EXPECTED


def test_the_part_of_speech_column_becomes_token_tags(tmp_path: Path, vocab) -> None:
    """CoNLL-2003's second column is kept for a tagger; a file without one leaves tags unset,
    and so does a document where any line lacks one (a tagger must not learn from gaps)."""
    (doc, _) = conll_to_docs(read_conll(write_file(tmp_path, CONLL2003_STYLE)), vocab)
    assert [token.tag_ for token in doc] == ["NNP", "VBZ", "JJ", "NN", ".", "NNP", "NNP"]
    assert doc.has_annotation("TAG")
    two_columns = "EU B-ORG\nrejects O\n\nPeter B-PER\n"
    (doc,) = conll_to_docs(read_conll(write_file(tmp_path, two_columns, name="2col")), vocab)
    assert not doc.has_annotation("TAG")
    assert [(e.text, e.label_) for e in doc.ents] == [("EU", "ORG"), ("Peter", "PER")]
    mixed = "EU NNP B-ORG\nrejects O\n"
    (document,) = read_conll(write_file(tmp_path, mixed, name="mixed"))
    assert document.pos is None


def test_docs_have_single_spaces_and_sentence_starts(tmp_path: Path, vocab) -> None:
    (doc, _) = conll_to_docs(read_conll(write_file(tmp_path, CONLL2003_STYLE)), vocab)
    assert doc.text == "EU rejects German call . Peter Blackburn"
    assert [token.is_sent_start for token in doc] == [True, False, False, False, False] + [
        True,
        False,
    ]


def test_files_without_docstart_are_grouped_by_n_sents(tmp_path: Path, vocab) -> None:
    sentences = [f"w{i} B-PER\nx{i} O\n" for i in range(5)]
    path = write_file(tmp_path, "\n".join(sentences))
    docs = conll_to_docs(read_conll(path, n_sents=2), vocab)
    assert _summary(docs) == [
        ([["w0", "x0"], ["w1", "x1"]], [("w0", "PER"), ("w1", "PER")]),
        ([["w2", "x2"], ["w3", "x3"]], [("w2", "PER"), ("w3", "PER")]),
        ([["w4", "x4"]], [("w4", "PER")]),
    ]
    assert len(read_conll(path)) == 1  # default n_sents=10


def test_empty_documents_are_dropped_and_text_before_first_docstart_kept(
    tmp_path: Path, vocab
) -> None:
    text = "A O\n\n-DOCSTART- O\n\n-DOCSTART- O\n-DOCSTART- O\n\nB O\nC B-LOC\n-DOCSTART- O\n\n"
    docs = conll_to_docs(read_conll(write_file(tmp_path, text)), vocab)
    assert _summary(docs) == [([["A"]], []), ([["B", "C"]], [("C", "LOC")])]


def test_docstart_without_blank_line_before_ends_the_sentence(tmp_path: Path, vocab) -> None:
    text = "-DOCSTART- O\nA B-PER\n-DOCSTART- O\nB I-PER\n"
    docs = conll_to_docs(read_conll(write_file(tmp_path, text)), vocab)
    assert _summary(docs) == [([["A"]], [("A", "PER")]), ([["B"]], [("B", "PER")])]


def test_iob1_entity_boundaries(tmp_path: Path, vocab) -> None:
    # B- after O (the two eng.train quirks) still starts an entity; a type change splits;
    # an I- at a sentence start opens a new entity even if the sentence before ended in one.
    text = (
        "the O\nAtlanta B-MISC\nGames I-MISC\n\n"
        "Smith I-PER\nGoogle I-ORG\nInc I-ORG\n\n"
        "more I-ORG\n"
    )
    (doc,) = conll_to_docs(read_conll(write_file(tmp_path, text)), vocab)
    assert [(ent.text, ent.label_) for ent in doc.ents] == [
        ("Atlanta Games", "MISC"),
        ("Smith", "PER"),
        ("Google Inc", "ORG"),
        ("more", "ORG"),
    ]


def test_iob2_file_with_an_i_start_reads_it_as_an_entity_start(tmp_path: Path, vocab) -> None:
    # As in each esp.* file ("Calidad I-MISC" after a sentence break inside an entity).
    text = "La B-MISC\nCalidad I-MISC\n\nTotal I-MISC\n.\tO\n\nMadrid B-LOC\n"
    documents = read_conll(write_file(tmp_path, text))
    assert documents[0].scheme == "IOB2"
    (doc,) = conll_to_docs(documents, vocab)
    assert [(ent.text, ent.label_) for ent in doc.ents] == [
        ("La Calidad", "MISC"),
        ("Total", "MISC"),
        ("Madrid", "LOC"),
    ]


def test_detect_scheme() -> None:
    assert detect_scheme([["I-PER", "I-PER", "O", "I-LOC"], ["B-LOC"]]) == "IOB1"
    assert detect_scheme([["B-PER", "I-PER", "O", "B-LOC"], ["I-LOC"]]) == "IOB2"
    assert detect_scheme([["O", "O"]]) == "IOB2"


def test_explicit_scheme(tmp_path: Path) -> None:
    path = write_file(tmp_path, "A I-PER\nB O\n")
    assert read_conll(path)[0].scheme == "IOB1"
    assert read_conll(path, scheme="iob2")[0].scheme == "IOB2"
    with pytest.raises(BertNERError, match="unknown tag scheme 'BILOU'"):
        read_conll(path, scheme="BILOU")


def test_bad_arguments_and_empty_input(tmp_path: Path) -> None:
    with pytest.raises(BertNERError, match="n_sents must be at least 1"):
        read_conll(write_file(tmp_path, "A O\n"), n_sents=0)
    with pytest.raises(BertNERError, match="no tokens found"):
        read_conll(write_file(tmp_path, "\n-DOCSTART- -X- O O\n\n  \n", name="empty.conll"))
    with pytest.raises(BertNERError, match="cannot read"):
        read_conll(tmp_path / "missing.conll")


# --- conversion and DocBin round trip ----------------------------------------------------


def test_convert_file_round_trips_through_docbin(tmp_path: Path, vocab, capsys) -> None:
    source = write_file(tmp_path, CONLL2003_STYLE, name="eng.mini")
    output = convert_file(source, tmp_path / "out" / "nested")
    assert output == tmp_path / "out" / "nested" / "eng.mini.spacy"
    assert sorted(p.name for p in output.parent.iterdir()) == ["eng.mini.spacy"]

    loaded = load_gold_docs(output, vocab)
    direct = conll_to_docs(read_conll(source), vocab)
    assert _summary(loaded) == EXPECTED
    for got, want in zip(loaded, direct, strict=True):
        assert [t.text for t in got] == [t.text for t in want]
        assert [t.is_sent_start for t in got] == [t.is_sent_start for t in want]
        assert [(e.start, e.end, e.label_) for e in got.ents] == [
            (e.start, e.end, e.label_) for e in want.ents
        ]
    assert _summary(load_gold_docs(source, vocab)) == EXPECTED

    printed = capsys.readouterr().out
    assert "eng.mini.spacy" in printed and "IOB1" in printed
    assert "LOC entities" in printed and "PER entities" in printed


def test_convert_replaces_existing_output(tmp_path: Path, vocab) -> None:
    source = write_file(tmp_path, TWO_COLUMNS, name="esp.mini")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "esp.mini.spacy").write_bytes(b"stale")
    convert_file(source, tmp_path / "out", lang="es")
    assert _summary(load_gold_docs(tmp_path / "out" / "esp.mini.spacy", vocab)) == EXPECTED


def test_cli_convert_prints_counts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_file(tmp_path, CONLL2003_STYLE, name="eng.mini")
    result = CliRunner().invoke(app, ["convert", "eng.mini", "out", "-n", "5"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "eng.mini.spacy").is_file()
    rows = {line.split()[0]: line.split()[-1] for line in result.output.splitlines() if line}
    assert (rows["documents"], rows["sentences"], rows["tokens"]) == ("2", "3", "11")


def test_unknown_language_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(BertNERError, match="unknown language code 'zz-bad'"):
        convert_file(write_file(tmp_path, TWO_COLUMNS), tmp_path / "out", lang="zz-bad")


# --- malformed input ------------------------------------------------------------------------

MALFORMED = {
    "unknown tag": (b"A O\nB B-PER\n\nC X-FOO\n", 4, "unknown tag 'X-FOO'"),
    "IOBES tag": (b"-DOCSTART- O\n\nA S-PER\n", 3, "unknown tag 'S-PER'"),
    "prefix without type": (b"A B-\n", 1, "unknown tag 'B-'"),
    "one column": (
        b"A O\n\nlonely\nB O\n",
        3,
        "expected at least 2 columns (word ... tag), got 1",
    ),
    "undecodable bytes": (b"A O\r\nB O\r\n\r\nC O\r\nD\xff\xfe O\r\n", 5, "is not UTF-8"),
    "latin-1 after a BOM": (b"\xef\xbb\xbfA O\n\nBelgi\xeb B-LOC\n", 3, "byte 0xeb is not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_fails_as_one_cli_line(tmp_path: Path, monkeypatch, case: str) -> None:
    content, line_no, problem = MALFORMED[case]
    # Relative paths keep the message under wasabi's 80-column wrap.
    monkeypatch.chdir(tmp_path)
    write_file(tmp_path, content, name="bad.conll")
    result = CliRunner().invoke(app, ["convert", "bad.conll", "out"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert f"bad.conll:{line_no}: " in lines[0] and problem in lines[0]
    assert "Traceback" not in result.output
    assert not list(tmp_path.rglob("*.spacy*"))

    with pytest.raises(ConllFormatError) as raised:
        read_conll(tmp_path / "bad.conll")
    assert (raised.value.line_no, raised.value.path) == (line_no, str(tmp_path / "bad.conll"))


def test_convert_interrupted_midway_keeps_the_previous_output(
    tmp_path: Path, monkeypatch, vocab
) -> None:
    monkeypatch.chdir(tmp_path)
    write_file(tmp_path, CONLL2003_STYLE, name="eng.mini")
    assert CliRunner().invoke(app, ["convert", "eng.mini", "out"]).exit_code == 0
    previous = (tmp_path / "out" / "eng.mini.spacy").read_bytes()
    real_write_bytes = Path.write_bytes

    def disk_full_halfway(self: Path, data: bytes) -> int:
        real_write_bytes(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", disk_full_halfway)
    result = CliRunner().invoke(app, ["convert", "eng.mini", "out", "-n", "1"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["\u2718 out/eng.mini.spacy: cannot write (No space left on device)"]
    assert os.listdir(tmp_path / "out") == ["eng.mini.spacy"]
    assert (tmp_path / "out" / "eng.mini.spacy").read_bytes() == previous
