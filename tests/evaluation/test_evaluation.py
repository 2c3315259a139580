"""Tests for spacy_bert_ner.evaluation's scores and outputs: hand-computed scores, the
agreement of seqeval's conlleval mode with spaCy's Scorer on any well-formed spans, span
confusions, the PNG and displaCy outputs. `evaluate` itself is in test_command.py.
"""

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc
from spacy.vocab import Vocab

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.evaluation.errors_page import write_error_page
from spacy_bert_ner.evaluation.plots import plot_metrics
from spacy_bert_ner.evaluation.scores import doc_iob2, entity_confusion, print_report, score_docs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LABELS = ["PER", "ORG", "LOC", "MISC"]
VOCAB = Vocab()


def make_doc(
    words: list[str],
    spans: list[tuple[int, int, str]],
    sent_starts: list[bool] | None = None,
    vocab: Vocab = VOCAB,
) -> Doc:
    """A doc whose ents are `spans` (token start, token end, label), given as IOB2 tags."""
    tags = ["O"] * len(words)
    for start, end, label in spans:
        tags[start] = f"B-{label}"
        for i in range(start + 1, end):
            tags[i] = f"I-{label}"
    return Doc(vocab, words=words, ents=tags, sent_starts=sent_starts)  # type: ignore[arg-type]


WORDS_1 = "Angela Merkel met Emmanuel Macron in Paris .".split()
WORDS_2 = "IBM bought Red Hat".split()
WORDS_3 = "Nothing happened in Berlin".split()


@pytest.fixture
def hand_made() -> tuple[list[Doc], list[Doc]]:
    """Gold: 2 PER, 1 LOC, 2 ORG. Predicted: 6 spans, 2 of them right.

    doc 1: PER "Angela Merkel" right; PER "Macron" a boundary error for "Emmanuel Macron";
           ORG "Paris" a wrong label for LOC.
    doc 2: ORG "IBM" right; ORG "Red Hat" missed; MISC "bought" spurious.
    doc 3: no gold entities; LOC "Berlin" spurious.
    """
    gold = [
        make_doc(WORDS_1, [(0, 2, "PER"), (3, 5, "PER"), (6, 7, "LOC")]),
        make_doc(WORDS_2, [(0, 1, "ORG"), (2, 4, "ORG")]),
        make_doc(WORDS_3, []),
    ]
    pred = [
        make_doc(WORDS_1, [(0, 2, "PER"), (4, 5, "PER"), (6, 7, "ORG")]),
        make_doc(WORDS_2, [(0, 1, "ORG"), (1, 2, "MISC")]),
        make_doc(WORDS_3, [(3, 4, "LOC")]),
    ]
    return gold, pred


def test_doc_iob2_tags_adjacent_entities_of_one_type_with_b() -> None:
    doc = make_doc("a b c d e".split(), [(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC")])
    assert doc_iob2(doc) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]


def test_doc_iob2_treats_missing_annotation_as_o() -> None:
    doc = Doc(VOCAB, words=["a", "b"])  # no entity annotation at all: ent_iob_ == ""
    assert doc_iob2(doc) == ["O", "O"]


def test_score_docs_hand_computed(hand_made: tuple[list[Doc], list[Doc]]) -> None:
    gold, pred = hand_made
    metrics = score_docs(gold, pred)
    p, r = 2 / 6, 2 / 5
    f1 = 2 * p * r / (p + r)
    for mode in ("conlleval", "strict", "spacy"):
        assert metrics[mode]["precision"] == pytest.approx(p, abs=1e-12), mode
        assert metrics[mode]["recall"] == pytest.approx(r, abs=1e-12), mode
        assert metrics[mode]["f1"] == pytest.approx(f1, abs=1e-12), mode
    expected = {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
        "ORG": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
        "PER": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
    }
    assert metrics["conlleval"]["per_type"] == expected
    assert metrics["strict"]["per_type"] == expected
    assert metrics["conlleval"]["support"] == 5
    assert metrics["spacy"]["per_type"]["PER"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    )
    assert metrics["n_docs"] == 3
    assert metrics["n_tokens"] == 16
    json.dumps(metrics)  # JSON-able: no numpy scalars


def test_score_docs_perfect_and_empty() -> None:
    gold = [make_doc(WORDS_2, [(0, 1, "ORG"), (2, 4, "ORG")])]
    perfect = score_docs(gold, [make_doc(WORDS_2, [(0, 1, "ORG"), (2, 4, "ORG")])])
    assert perfect["conlleval"]["f1"] == 1.0
    assert perfect["spacy"]["f1"] == pytest.approx(1.0)
    nothing = score_docs([make_doc(WORDS_3, [])], [make_doc(WORDS_3, [])])
    assert nothing["conlleval"]["f1"] == 0.0
    assert nothing["spacy"]["f1"] == 0.0  # spaCy says None; written as conlleval's 0.0
    assert nothing["conlleval"]["per_type"] == {}


def test_score_docs_adds_tag_accuracy_when_both_sides_are_tagged() -> None:
    vocab = Vocab()
    words = ["Peter", "runs", "home"]
    gold = Doc(vocab, words=words, tags=["NNP", "VBZ", "NN"], ents=["B-PER", "O", "O"])
    pred = Doc(vocab, words=words, tags=["NNP", "VBZ", "RB"], ents=["B-PER", "O", "O"])
    assert score_docs([gold], [pred])["tag_acc"] == pytest.approx(2 / 3)
    untagged = Doc(vocab, words=words, ents=["B-PER", "O", "O"])
    assert "tag_acc" not in score_docs([gold], [untagged])


def test_score_docs_rejects_unpaired_docs() -> None:
    gold = [make_doc(WORDS_2, [])]
    with pytest.raises(BertNERError, match="2 predicted docs"):
        score_docs(gold, gold * 2)
    with pytest.raises(BertNERError, match="doc 0: gold has 4 tokens, prediction has 8"):
        score_docs(gold, [make_doc(WORDS_1, [])])


@st.composite
def well_formed_spans(draw: st.DrawFn, n: int) -> list[tuple[int, int, str]]:
    """Random non-overlapping labelled spans over n tokens, adjacent same-type ones included."""
    spans = []
    pos = 0
    while pos < n:
        length = draw(st.integers(1, min(4, n - pos)))
        label = draw(st.sampled_from([None, None, *LABELS]))
        if label is not None:
            spans.append((pos, pos + length, label))
        pos += length
    return spans


@st.composite
def doc_pairs(draw: st.DrawFn) -> tuple[list[Doc], list[Doc]]:
    gold, pred = [], []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 15))
        words = [f"w{i}" for i in range(n)]
        gold.append(make_doc(words, draw(well_formed_spans(n))))
        pred.append(make_doc(words, draw(well_formed_spans(n))))
    return gold, pred


@settings(max_examples=200, deadline=None)
@given(doc_pairs())
def test_conlleval_strict_and_spacy_agree_on_well_formed_spans(
    pair: tuple[list[Doc], list[Doc]],
) -> None:
    gold, pred = pair
    metrics = score_docs(gold, pred)
    conll, strict, spacy_ = metrics["conlleval"], metrics["strict"], metrics["spacy"]
    for key in ("precision", "recall", "f1"):
        assert abs(conll[key] - spacy_[key]) < 1e-9, key
        assert abs(conll[key] - strict[key]) < 1e-9, key
    assert conll["per_type"] == strict["per_type"]
    assert set(conll["per_type"]) == set(spacy_["per_type"])
    for label, row in conll["per_type"].items():
        assert abs(row["f1"] - spacy_["per_type"][label]["f1"]) < 1e-9, label
    n_gold = sum(len(doc.ents) for doc in gold)
    assert conll["support"] == n_gold


def test_entity_confusion_hand_made(hand_made: tuple[list[Doc], list[Doc]]) -> None:
    gold, pred = hand_made
    confusion = entity_confusion(gold, pred)
    assert list(confusion) == ["LOC", "MISC", "ORG", "PER", "SPURIOUS"]
    assert list(confusion["PER"]) == ["LOC", "MISC", "ORG", "PER", "MISSED"]
    nonzero = {(row, col): n for row, cols in confusion.items() for col, n in cols.items() if n}
    assert nonzero == {
        ("PER", "PER"): 1,  # Angela Merkel
        ("PER", "MISSED"): 1,  # Emmanuel Macron: only "Macron" predicted
        ("SPURIOUS", "PER"): 1,  # ... and "Macron" alone matches no gold span
        ("LOC", "ORG"): 1,  # Paris, wrong label
        ("ORG", "ORG"): 1,  # IBM
        ("ORG", "MISSED"): 1,  # Red Hat
        ("SPURIOUS", "MISC"): 1,  # bought
        ("SPURIOUS", "LOC"): 1,  # Berlin
    }


def test_print_report_tables(
    hand_made: tuple[list[Doc], list[Doc]], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = score_docs(*hand_made)
    print_report(metrics)
    out = capsys.readouterr().out
    assert "seqeval default mode (conlleval)" in out
    assert "seqeval strict mode (IOB2)" in out
    per_lines = [line for line in out.splitlines() if line.strip().startswith("PER")]
    assert len(per_lines) == 2  # one row per mode
    assert per_lines[0].split() == ["PER", "50.00", "50.00", "50.00", "2"]
    micro = [line.split() for line in out.splitlines() if line.startswith("micro avg")]
    assert micro[0] == ["micro", "avg", "33.33", "40.00", "36.36", "5"]


def test_plot_metrics_writes_png(hand_made: tuple[list[Doc], list[Doc]], tmp_path: Path) -> None:
    metrics = score_docs(*hand_made)
    path = plot_metrics(metrics, entity_confusion(*hand_made), tmp_path / "sub" / "plot.png")
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > height > 300  # two side-by-side panels


def test_plot_metrics_without_matplotlib(
    hand_made: tuple[list[Doc], list[Doc]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    metrics = score_docs(*hand_made)
    with pytest.raises(BertNERError, match=r"pip install 'spacy-bert-ner\[project\]'"):
        plot_metrics(metrics, entity_confusion(*hand_made), tmp_path / "plot.png")
    assert not (tmp_path / "plot.png").exists()


def test_error_page_shows_only_differing_sentences(tmp_path: Path) -> None:
    words = "Angela Merkel spoke . She met Zorblax Quux in Paris .".split()
    starts = [True, False, False, False, True, False, False, False, False, False, False]
    gold = make_doc(words, [(0, 2, "PER"), (6, 8, "PER"), (9, 10, "LOC")], starts)
    # sentence 0 is right; in sentence 1 "Zorblax Quux" is mislabelled and Paris is missed
    pred = make_doc(words, [(0, 2, "PER"), (6, 8, "ORG")], starts)
    html = write_error_page([gold], [pred], tmp_path / "errors.html").read_text("utf8")
    assert "<html" in html.lower()
    assert "gold (doc 0, sentence 1)" in html
    assert "predicted (doc 0, sentence 1)" in html
    assert "sentence 0" not in html
    assert html.index("gold (doc 0, sentence 1)") < html.index("predicted (doc 0, sentence 1)")
    assert "Zorblax" in html and "Paris" in html
    assert "Angela" not in html
    assert html.count(">ORG<") == 1 and html.count(">LOC<") == 1


def test_error_page_whole_docs_and_max_examples(tmp_path: Path) -> None:
    gold = [make_doc(WORDS_2, [(0, 1, "ORG")]) for _ in range(5)]
    pred = [make_doc(WORDS_2, []) for _ in range(5)]
    html = write_error_page(gold, pred, tmp_path / "errors.html", max_examples=2).read_text()
    assert "gold (doc 0, sentence 0)" in html and "predicted (doc 1, sentence 0)" in html
    assert "doc 2" not in html
    agree = write_error_page(gold, gold, tmp_path / "agree.html").read_text()
    assert "agree everywhere" in agree and "gold (" not in agree
