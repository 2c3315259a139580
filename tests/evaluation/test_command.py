"""`evaluate` (evaluation.command): end to end with an entity_ruler pipeline (no BERT needed),
its refusals and interrupted writes, the CLI, and the three scores' agreement on real
`bert_ner` predictions (a random tiny BERT) on CoNLL-2003.
"""

import json
from pathlib import Path

import pytest
import spacy
import torch
from matplotlib.figure import Figure
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_bert_ner.conll import load_gold_docs
from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.evaluation.command import evaluate_pipeline
from spacy_bert_ner.evaluation.scores import score_docs
from spacy_bert_ner.pipeline.predict import unannotated_copy
from tests.evaluation.test_evaluation import PNG_SIGNATURE, make_doc

# --- evaluate_pipeline and the CLI ------------------------------------------------------


@pytest.fixture
def ruler_model(tmp_path: Path) -> Path:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(  # type: ignore[attr-defined]
        [{"label": "PER", "pattern": "Angela Merkel"}, {"label": "LOC", "pattern": "Paris"}]
    )
    path = tmp_path / "ruler_model"
    nlp.to_disk(path)
    return path


@pytest.fixture
def gold_docbin(tmp_path: Path) -> Path:
    """Gold: 5 entities (PER Angela Merkel, LOC Paris, PER Merkel, PER Macron, LOC Berlin).

    The ruler finds "Angela Merkel" and "Paris" only: P 1, R 2/5. Gold ents must not leak
    into the prediction, or recall would be 1.
    """
    vocab = Vocab()
    words_1 = "Angela Merkel visited Paris .".split()
    words_2 = "Merkel met Macron . They flew to Berlin .".split()
    starts_2 = [True, False, False, False, True, False, False, False, False]
    docs = [
        make_doc(words_1, [(0, 2, "PER"), (3, 4, "LOC")], [True] + [False] * 4, vocab),
        make_doc(words_2, [(0, 1, "PER"), (2, 3, "PER"), (7, 8, "LOC")], starts_2, vocab),
    ]
    path = tmp_path / "gold.spacy"
    DocBin(docs=docs).to_disk(path)
    return path


EXPECTED_P, EXPECTED_R = 1.0, 2 / 5
EXPECTED_F1 = 2 * EXPECTED_P * EXPECTED_R / (EXPECTED_P + EXPECTED_R)


def test_evaluate_pipeline_end_to_end(ruler_model: Path, gold_docbin: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    metrics = evaluate_pipeline(
        str(ruler_model),
        gold_docbin,
        output=out / "metrics.json",
        plot=out / "metrics.png",
        errors_html=out / "errors.html",
    )
    written = json.loads((out / "metrics.json").read_text())
    assert set(written) == set(metrics)
    assert written["conlleval"]["per_type"].keys() == metrics["conlleval"]["per_type"].keys()
    assert {"conlleval", "strict", "spacy", "confusion", "n_docs", "n_tokens"} <= set(written)
    assert written["words_per_second"] > 0
    assert written["n_docs"] == 2 and written["n_tokens"] == 14
    for mode in ("conlleval", "strict", "spacy"):
        assert written[mode]["precision"] == pytest.approx(EXPECTED_P)
        assert written[mode]["recall"] == pytest.approx(EXPECTED_R)
        assert written[mode]["f1"] == pytest.approx(EXPECTED_F1)
    assert written["conlleval"]["per_type"]["PER"]["recall"] == pytest.approx(1 / 3)
    assert written["confusion"]["PER"] == {"LOC": 0, "PER": 1, "MISSED": 2}
    assert written["confusion"]["SPURIOUS"] == {"LOC": 0, "PER": 0, "MISSED": 0}
    assert (out / "metrics.png").read_bytes()[:8] == PNG_SIGNATURE
    html = (out / "errors.html").read_text()
    assert "gold (doc 1, sentence 0)" in html and "gold (doc 1, sentence 1)" in html
    assert "doc 0" not in html  # the ruler got doc 0 right


def test_evaluate_pipeline_missing_inputs(ruler_model: Path, gold_docbin: Path) -> None:
    with pytest.raises(BertNERError, match="model not found: /no/such/model"):
        evaluate_pipeline("/no/such/model", gold_docbin)
    with pytest.raises(BertNERError, match="gold data not found: .*missing.spacy"):
        evaluate_pipeline(str(ruler_model), gold_docbin.with_name("missing.spacy"))


@pytest.mark.parametrize(
    ("writer", "attribute", "output"),
    [
        (Path, "write_text", "output"),
        (Figure, "savefig", "plot"),
        (Path, "write_text", "errors_html"),
    ],
    ids=["metrics.json", "scores.png", "errors.html"],
)
def test_evaluate_interrupted_while_writing_keeps_the_previous_output(
    ruler_model: Path,
    gold_docbin: Path,
    tmp_path: Path,
    monkeypatch,
    writer,
    attribute: str,
    output: str,
) -> None:
    out = tmp_path / "metrics"
    paths = {"output": out / "metrics.json", "plot": out / "scores.png"}
    paths["errors_html"] = out / "errors.html"
    evaluate_pipeline(str(ruler_model), gold_docbin, **paths)
    previous = {path.name: path.read_bytes() for path in out.iterdir()}
    real_write = getattr(writer, attribute)

    def interrupted(*args, **kwargs):
        """Half the content reaches the file written to, then Ctrl-C."""
        real_write(*args, **kwargs)
        target = Path(next(arg for arg in args if isinstance(arg, str | Path)))
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, attribute, interrupted)
    with pytest.raises(KeyboardInterrupt):  # that output alone, so its own writer is stopped
        evaluate_pipeline(str(ruler_model), gold_docbin, **{output: paths[output]})
    assert sorted(path.name for path in out.iterdir()) == sorted(previous)  # no temporary file
    assert paths[output].read_bytes() == previous[paths[output].name]


def test_cli_evaluate(ruler_model: Path, gold_docbin: Path, tmp_path: Path) -> None:
    from spacy_bert_ner.cli import app

    output = tmp_path / "cli_metrics.json"
    result = CliRunner().invoke(
        app, ["evaluate", str(ruler_model), str(gold_docbin), "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(output.read_text())["conlleval"]["f1"] == pytest.approx(EXPECTED_F1)
    assert "seqeval default mode (conlleval)" in result.output

    missing = tmp_path / "no_model_here"
    result = CliRunner().invoke(app, ["evaluate", str(missing), str(gold_docbin)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"model not found: {missing}" in lines[0]


def test_cli_evaluate_with_train_scores_seen_and_unseen(
    ruler_model: Path, gold_docbin: Path, tmp_path: Path
) -> None:
    """Trained on "Angela Merkel" (PER) alone: the ruler's two finds split into the seen
    Angela Merkel and the unseen Paris; Merkel, Macron and Berlin are unseen and missed."""
    from spacy_bert_ner.cli import app

    train = tmp_path / "train.spacy"
    DocBin(docs=[make_doc(["Angela", "Merkel", "spoke"], [(0, 2, "PER")])]).to_disk(train)
    output = tmp_path / "metrics.json"
    args = ["evaluate", str(ruler_model), str(gold_docbin), "--train", str(train)]
    args += ["-o", str(output)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    scores = json.loads(output.read_text())["generalisation"]
    assert scores["seen"]["precision"] == scores["seen"]["recall"] == 1.0
    assert scores["seen"]["support"] == 1 and scores["unseen"]["support"] == 4
    assert scores["unseen"]["precision"] == 1.0 and scores["unseen"]["recall"] == 0.25
    assert scores["train_path"] == str(train)
    assert "unseen: 80.0% of gold entities" in result.output

    DocBin(docs=[make_doc(["no", "names"], [])]).to_disk(train)
    missing = tmp_path / "nope.spacy"
    for path, line in (
        (train, f"--train: {train} holds no entities"),
        (missing, f"--train: training corpus not found: {missing}"),
    ):
        result = CliRunner().invoke(app, [*args[:3], "--train", str(path)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert line in result.output


# --- agreement on real predictions ------------------------------------------------------

TESTB_SLICE_LINES = 1000


@pytest.fixture(scope="module")
def sharpened_bert(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with a head that predicts many short entities, a few of them right.

    The random head's logits are all near zero, so the tiny BERT tags long runs of one label
    and scores exactly 0 on CoNLL, where agreement would be 0 == 0. Scaled weights make the
    tags vary from token to token; biases favour O and disfavour I-, as in real data.
    """
    from transformers import AutoTokenizer, BertForTokenClassification

    model = BertForTokenClassification.from_pretrained(tiny_bert)
    with torch.no_grad():
        model.classifier.weight *= 30.0
        for i, tag in model.config.id2label.items():
            model.classifier.bias[i] = 1.0 if tag == "O" else -2.0 if tag[0] == "I" else 0.0
    path = tmp_path_factory.mktemp("sharpened_bert")
    model.save_pretrained(path, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(path)
    return path


def test_seqeval_and_spacy_scorer_agree_on_real_predictions(
    sharpened_bert: Path, data_dir: Path, tmp_path: Path
) -> None:
    """conlleval == strict == spaCy's Scorer == the pipe's own scorer on bert_ner's output.

    The model is random, so its raw argmax tags would be ill-formed everywhere (I- after O,
    type changes mid-span); the constrained decoding is what makes the modes agree. The
    predictions are scored one document per sequence and one sentence per sequence (~50;
    `Span.as_doc` drops any predicted entity that runs across a sentence start).
    """
    with open(data_dir / "conll2003" / "eng.testb", encoding="utf8") as source:
        head = [line for _, line in zip(range(TESTB_SLICE_LINES), source, strict=False)]
    testb = tmp_path / "eng.testb.head"
    testb.write_text("".join(head), encoding="utf8")

    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(sharpened_bert)})
    gold_docs = load_gold_docs(testb, nlp.vocab)
    pred_docs = list(nlp.pipe(unannotated_copy(nlp, gold) for gold in gold_docs))
    gold_sents = [sent.as_doc() for doc in gold_docs for sent in doc.sents]
    pred_sents = [sent.as_doc() for doc in pred_docs for sent in doc.sents]
    assert 40 <= len(gold_sents) == len(pred_sents) <= 80

    n_gold = sum(len(doc.ents) for doc in gold_docs)
    n_pred = sum(len(doc.ents) for doc in pred_docs)
    assert n_gold > 0 and n_pred > 0  # both sides of P and R are exercised

    by_doc = score_docs(gold_docs, pred_docs)
    by_sent = score_docs(gold_sents, pred_sents)
    pipe_scores = nlp.evaluate([Example(unannotated_copy(nlp, gold), gold) for gold in gold_docs])
    f1 = by_doc["conlleval"]["f1"]
    for metrics in (by_doc, by_sent):
        for mode in ("strict", "spacy"):
            for key in ("precision", "recall", "f1"):
                assert metrics[mode][key] == pytest.approx(metrics["conlleval"][key], abs=1e-9)
        assert metrics["conlleval"]["per_type"] == metrics["strict"]["per_type"]
        for label, row in metrics["conlleval"]["per_type"].items():
            assert row["f1"] == pytest.approx(metrics["spacy"]["per_type"][label]["f1"]), label
        assert metrics["conlleval"]["support"] == n_gold  # no gold entity crosses a sentence
    assert (pipe_scores["ents_f"] or 0.0) == pytest.approx(f1, abs=1e-9)
    # Precision is true positives over predicted entities: conlleval counted them all.
    true_positives = round(by_doc["conlleval"]["precision"] * n_pred)
    assert by_doc["conlleval"]["precision"] == pytest.approx(true_positives / n_pred)
    assert by_doc["conlleval"]["recall"] == pytest.approx(true_positives / n_gold)
    assert true_positives > 0 and 0.0 < f1 < 1.0  # neither 0 == 0 nor 1 == 1


def test_evaluate_scores_the_spans_key_where_the_pipe_writes(
    sharpened_bert: Path, gold_docbin: Path, tmp_path: Path
) -> None:
    """Regression: with `spans_key` set, evaluate scored the empty `doc.ents` (F1 0)."""

    def scores(spans_key: str | None) -> dict:
        nlp = spacy.blank("en")
        nlp.add_pipe("bert_ner", config={"model": str(sharpened_bert), "spans_key": spans_key})
        nlp.to_disk(tmp_path / str(spans_key))
        return evaluate_pipeline(str(tmp_path / str(spans_key)), gold_docbin)

    in_ents, in_spans = scores(None), scores("bert")
    predicted = [
        n for row in in_ents["confusion"].values() for k, n in row.items() if k != "MISSED"
    ]
    assert sum(predicted) > 0  # something to score
    for mode in ("conlleval", "strict", "spacy"):
        assert in_spans[mode] == in_ents[mode], mode
    assert in_spans["confusion"] == in_ents["confusion"]
