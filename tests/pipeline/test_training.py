"""Training: the loss falls, both configs run under `spacy train`, the real MiniLM encoder learns
CoNLL-2003 entities from a few hundred sentences, bad gold data is refused or skipped as
configured, and a killed run resumes from its last saved model keeping its labels."""

import logging
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from thinc.api import Adam, Config, fix_random_seed

from spacy_bert_ner.conll import conll_to_docs, read_conll
from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.evaluation.scores import score_docs

from ..conftest import NEW_ROWS, examples_of, tiny_examples, train_tiny

REPO = Path(__file__).resolve().parents[2]


def test_loss_goes_down(tiny_bert):
    nlp, losses = train_tiny(tiny_bert)
    assert losses[-1] < 0.5 * losses[0]
    predicted = nlp(Doc(nlp.vocab, words=["angela", "merkel", "met", "macron", "in", "paris"]))
    assert [(e.text, e.label_) for e in predicted.ents] == [
        ("angela merkel", "PER"),
        ("macron", "PER"),
        ("paris", "LOC"),
    ]


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory, tiny_bert):
    nlp = spacy.blank("en")
    path = tmp_path_factory.mktemp("corpus") / "tiny.spacy"
    DocBin(docs=[eg.reference for eg in tiny_examples(nlp)]).to_disk(path)
    return path


def spacy_train(config: Path, output: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(config), "--output", str(output), *overrides],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("config", ["cpu.cfg", "gpu.cfg"])
def test_spacy_train_runs_each_config(config, tiny_bert, tiny_corpus, tmp_path):
    """(cpu_multitask.cfg needs part-of-speech gold: tests/test_project.py trains it.)"""
    out = spacy_train(
        REPO / "configs" / config,
        tmp_path / "out",
        f"--paths.train={tiny_corpus}",
        f"--paths.dev={tiny_corpus}",
        f"--components.bert_ner.model.name={tiny_bert}",
        "--training.max_steps=2",
        "--training.eval_frequency=1",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    trained = spacy.load(tmp_path / "out" / "model-last")
    assert trained.get_pipe("bert_ner").labels == ("LOC", "PER")


def conll_slice(path: Path, n_sentences: int, skip: int = 0) -> list[Doc]:
    """Documents holding `n_sentences` sentences of a CoNLL file, after skipping `skip`."""
    nlp = spacy.blank("en")
    docs = conll_to_docs(read_conll(path), nlp.vocab)
    sentences = [sent.as_doc() for doc in docs for sent in doc.sents]
    return sentences[skip : skip + n_sentences]


@pytest.mark.slow
def test_minilm_learns_conll_entities(data_dir):
    """A few hundred sentences are enough for a real F1; an untrained head scores near 0."""
    from spacy_bert_ner.models.architectures import minilm_name

    fix_random_seed(0)
    train = conll_slice(data_dir / "conll2003" / "eng.train", 600)
    held_apart = conll_slice(data_dir / "conll2003" / "eng.testa", 200)
    nlp = spacy.blank("en")
    model = {"name": minilm_name(), "max_length": 128, "head_lr_scale": 20.0, "case_feature": True}
    nlp.add_pipe("bert_ner", config={"model": model})
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d]), d) for d in train]
    nlp.initialize(lambda: examples)

    def f1() -> float:
        inputs = [Doc(nlp.vocab, words=[t.text for t in d]) for d in held_apart]
        return score_docs(held_apart, list(nlp.pipe(inputs)))["conlleval"]["f1"]

    untrained = f1()
    optimizer = Adam(2e-4)
    for _ in range(3):
        for start in range(0, len(examples), 16):
            nlp.update(examples[start : start + 16], sgd=optimizer)
    trained = f1()
    assert untrained < 0.1, f"untrained F1 {untrained:.3f}"
    assert trained >= 0.6, f"F1 {trained:.3f} after fine-tuning (untrained {untrained:.3f})"


def test_gold_docs_from_another_vocab_train(tiny_bert):
    """Regression: initialize failed (E084, label not in StringStore) when the gold docs came
    from another vocab than the pipeline's, as the CoNLL helpers' docs do."""
    other = spacy.blank("en").vocab
    nlp, pipe = tiny_pipeline(tiny_bert)
    words = ["angela", "merkel", "met", "paris"]
    gold = Doc(other, words=words, ents=["B-PERSON", "I-PERSON", "O", "B-CITY"])
    examples = [Example(Doc(nlp.vocab, words=words), gold)]
    nlp.initialize(lambda: examples)
    assert pipe.labels == ("CITY", "PERSON")
    assert nlp.update(examples, sgd=Adam(1e-3))["bert_ner"] > 0


def test_spans_key_trains_from_the_span_group(tiny_bert):
    """Regression: with spans_key set, labels came from doc.spans but the loss from doc.ents,
    so training on span-annotated data learnt nothing, silently (loss 0)."""
    fix_random_seed(0)
    nlp, pipe = tiny_pipeline(tiny_bert, spans_key="sc")
    words = ["angela", "merkel", "met", "macron", "in", "paris"]
    gold = Doc(nlp.vocab, words=words)
    gold.spans["sc"] = [Span(gold, 0, 2, "PER"), Span(gold, 3, 4, "PER"), Span(gold, 5, 6, "LOC")]
    examples = [Example(Doc(nlp.vocab, words=words), gold)]
    nlp.initialize(lambda: examples)
    assert pipe.labels == ("LOC", "PER")
    optimizer = Adam(2e-3)
    losses = [nlp.update(examples, sgd=optimizer)["bert_ner"] for _ in range(40)]
    assert 0 < losses[-1] < 0.5 * losses[0]
    predicted = nlp(Doc(nlp.vocab, words=words))
    assert [(s.start, s.end, s.label_) for s in predicted.spans["sc"]] == [
        (0, 2, "PER"),
        (3, 4, "PER"),
        (5, 6, "LOC"),
    ]

    gold.spans["sc"] = [Span(gold, 0, 2, "PER"), Span(gold, 1, 3, "ORG")]
    with pytest.raises(BertNERError, match=r"'angela merkel' \(PER\) and 'merkel met' \(ORG\)"):
        nlp.update(examples, sgd=optimizer)


# --- bad training data ------------------------------------------------------------------


def misaligned_example(nlp):
    """Gold "Merkel" is a PER inside the predicted token "Merkel's"."""
    gold = Doc(
        nlp.vocab,
        words=["Merkel", "'s", "visit", "to", "paris"],
        spaces=[False, True, True, True, False],
        ents=["B-PER", "O", "O", "O", "B-LOC"],
    )
    return Example(Doc(nlp.vocab, words=["Merkel's", "visit", "to", "paris"]), gold)


def unknown_label_example(nlp):
    words = ["angela", "works", "at", "siemens"]
    gold = Doc(nlp.vocab, words=words, ents=["B-PER", "O", "O", "B-ORG"])
    return Example(Doc(nlp.vocab, words=words), gold)


def tiny_pipeline(tiny_bert, **config):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert)}, **config})
    return nlp, pipe


def test_misaligned_gold_entity_is_an_error_naming_doc_entity_and_token(tiny_bert):
    nlp, _ = tiny_pipeline(tiny_bert)
    examples = tiny_examples(nlp)
    with pytest.raises(BertNERError) as raised:
        nlp.initialize(lambda: [*examples, misaligned_example(nlp)])
    message = str(raised.value)
    assert (
        "gold entity 'Merkel' (PER, training example 3, doc \"Merkel's visit to paris\"" in message
    )
    assert 'characters 0-6) does not align with the predicted tokens ["Merkel\'s"]' in message
    assert 'on_bad_gold = "skip"' in message and "\n" not in message

    nlp.initialize(lambda: examples)  # the error also comes from update, for sourced pipes
    with pytest.raises(BertNERError, match=r"gold entity 'Merkel' \(PER, doc"):
        nlp.update([misaligned_example(nlp)], sgd=Adam(1e-3))


def test_skipped_bad_gold_is_logged_once_counted_and_left_out_of_the_loss(tiny_bert, caplog):
    nlp, pipe = tiny_pipeline(tiny_bert, on_bad_gold="skip")
    examples = tiny_examples(nlp)
    nlp.initialize(lambda: examples)
    bad = [misaligned_example(nlp), unknown_label_example(nlp)]
    with caplog.at_level(logging.WARNING, logger="spacy.bert_ner"):
        for _ in range(3):  # three epochs: each entity is reported once
            nlp.update([*examples, *bad], sgd=Adam(1e-3))
    warnings = [r.getMessage() for r in caplog.records if "left out of the loss" in r.getMessage()]
    assert len(warnings) == 2
    assert "'Merkel' (PER" in warnings[0] and "(1 bad gold entities skipped so far)" in warnings[0]
    assert (
        "'siemens' (ORG" in warnings[1]
        and "does not predict (its labels: LOC, PER)" in (warnings[1])
    )
    assert "(2 bad gold entities skipped so far)" in warnings[1]

    scores = pipe.model.predict([eg.predicted for eg in bad])
    _, d_scores = pipe.get_loss(bad, scores)
    assert not d_scores[0][0].any(), "the token holding the misaligned entity has no loss"
    assert d_scores[0][3].any(), "the rest of that doc still trains"
    assert not d_scores[1][3].any() and d_scores[1][0].any()


def test_many_skipped_entities_warn_for_the_first_ten_then_at_powers_of_ten(tiny_bert, caplog):
    nlp, pipe = tiny_pipeline(tiny_bert, on_bad_gold="skip")
    nlp.initialize(lambda: tiny_examples(nlp))
    words = ["siemens", "and"] * 100  # 100 distinct ORG entities, a label the head lacks
    gold = Doc(nlp.vocab, words=words, ents=["B-ORG", "O"] * 100)
    example = Example(Doc(nlp.vocab, words=words), gold)
    with caplog.at_level(logging.DEBUG, logger="spacy.bert_ner"):
        pipe.get_loss([example], pipe.model.predict([example.predicted]))
        pipe.get_loss([example], pipe.model.predict([example.predicted]))  # nothing new
    levels = [r.levelno for r in caplog.records if "left out of the loss" in r.getMessage()]
    assert levels == [logging.WARNING] * 10 + [logging.DEBUG] * 89 + [logging.WARNING]


def test_resumed_component_meeting_an_unknown_label_says_how_to_add_it(tiny_bert, tmp_path):
    nlp, _ = tiny_pipeline(tiny_bert)
    nlp.initialize(lambda: tiny_examples(nlp))
    nlp.to_disk(tmp_path / "trained")
    resumed = spacy.load(tmp_path / "trained")
    with pytest.raises(BertNERError) as raised:
        resumed.update([unknown_label_example(resumed)], sgd=Adam(1e-3))
    message = str(raised.value)
    assert "gold entity 'siemens' (ORG" in message
    assert "has a label this component does not predict (its labels: LOC, PER)" in message
    assert "add_label()" in message and "[initialize.components.bert_ner] labels" in message


def test_labels_given_to_initialize_that_miss_a_gold_label_fail_there(tiny_bert):
    nlp, pipe = tiny_pipeline(tiny_bert)
    examples = [*tiny_examples(nlp), unknown_label_example(nlp)]
    with pytest.raises(BertNERError, match=r"'siemens' \(ORG, training example 3"):
        pipe.initialize(lambda: examples, nlp=nlp, labels=["PER", "LOC"])


def test_on_bad_gold_takes_error_or_skip(tiny_bert):
    with pytest.raises(BertNERError, match="on_bad_gold must be one of"):
        tiny_pipeline(tiny_bert, on_bad_gold="ignore")


def test_empty_docs_are_trained_past(tiny_bert):
    nlp, _ = tiny_pipeline(tiny_bert)
    empty = Example(nlp.make_doc(""), nlp.make_doc(""))
    whitespace = Example(nlp.make_doc("  \n "), nlp.make_doc("  \n "))
    examples = [*tiny_examples(nlp), empty, whitespace]
    nlp.initialize(lambda: examples)
    assert nlp.update([empty], sgd=Adam(1e-3))["bert_ner"] == 0.0
    loss = nlp.update(examples, sgd=Adam(1e-3))["bert_ner"]
    assert 0.0 < loss < float("inf")


def test_a_doc_longer_than_any_window_trains_end_to_end(tiny_bert):
    """16-piece windows, a 250-token doc: every window's tokens get gradients and learn."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert), "max_length": 16}})
    words = ["angela", "merkel", "met", "paris", "."] * 50
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O"] * 50
    example = Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, ents=tags))
    nlp.initialize(lambda: [example])
    optimizer = Adam(2e-3)
    for _ in range(30):
        nlp.update([example], sgd=optimizer)
    predicted = nlp(Doc(nlp.vocab, words=words))
    assert [(e.start, e.end, e.label_) for e in predicted.ents] == [
        (e.start, e.end, e.label_) for e in example.reference.ents
    ]


# --- interrupted training ---------------------------------------------------------------

KILL_AT_STEP = """
import os, signal
from spacy.util import registry

@registry.callbacks("test.kill_at_step.v1")
def kill_at_step(step: int):
    def before_update(nlp, info):
        if info["step"] == step:
            os.kill(os.getpid(), signal.SIGKILL)  # no exception handler, no final save
    return before_update
"""


def test_training_killed_midway_resumes_from_its_last_saved_model(tiny_bert, tiny_corpus, tmp_path):
    """spaCy writes model-last at every evaluation; a run killed after one is resumed by a
    config that sources that model-last, into a new output directory (the README's recipe)."""
    (tmp_path / "kill.py").write_text(KILL_AT_STEP)
    config = Config().from_disk(REPO / "configs" / "cpu.cfg", interpolate=False)
    config["training"]["before_update"] = {"@callbacks": "test.kill_at_step.v1", "step": 3}
    config.to_disk(tmp_path / "killed.cfg")
    data = [f"--paths.train={tiny_corpus}", f"--paths.dev={tiny_corpus}"]
    killed = spacy_train(
        tmp_path / "killed.cfg",
        tmp_path / "run1",
        *data,
        f"--components.bert_ner.model.name={tiny_bert}",
        "--training.max_epochs=0",
        "--training.max_steps=100",
        "--training.eval_frequency=2",
        "--code",
        str(tmp_path / "kill.py"),
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    last = tmp_path / "run1" / "model-last"
    saved = spacy.load(last).get_pipe("bert_ner")
    assert saved.labels == ("LOC", "PER")
    before = saved.hf_model.classifier.weight.detach().clone()

    config = Config().from_disk(REPO / "configs" / "cpu.cfg", interpolate=False)
    config["components"]["bert_ner"] = {"source": str(last)}
    config.to_disk(tmp_path / "resume.cfg")
    resumed_run = spacy_train(
        tmp_path / "resume.cfg",
        tmp_path / "run2",
        *data,
        "--training.max_steps=2",
        "--training.optimizer.learn_rate.warmup_steps=0",
    )
    assert resumed_run.returncode == 0, resumed_run.stderr[-3000:]
    resumed = spacy.load(tmp_path / "run2" / "model-last").get_pipe("bert_ner")
    assert resumed.labels == ("LOC", "PER")
    after = resumed.hf_model.classifier.weight.detach()
    # Continued from the killed run's weights: max_steps=2 runs spaCy's steps 0, 1 and 2, and
    # 3 Adam steps move a head weight by about 3 x the head's peak rate (a step can pass the
    # rate a little), so 5 x leaves slack and is still far below a freshly initialised head.
    head_rate = (
        config["training"]["optimizer"]["learn_rate"]["initial_rate"] * config_head_lr_scale()
    )
    assert 0 < (after - before).abs().max() < 5 * head_rate


def config_head_lr_scale() -> float:
    config = Config().from_disk(REPO / "configs" / "cpu.cfg", interpolate=False)
    return float(config["components"]["bert_ner"]["model"]["head_lr_scale"])


def old_tag_drift(pipe, tutor, docs) -> float:
    """Mean per-token KL from the tutor's tag distribution to `pipe`'s over the tutor's tags."""
    tutor_tags = list(tutor.tag_scheme.tags)
    columns = [pipe.tag_scheme.tags.index(tag) for tag in tutor_tags]
    current = np.concatenate(pipe.predict(docs))[:, columns]
    old = np.concatenate(tutor.predict(docs))
    log_p = current - np.log(np.exp(current - current.max(1, keepdims=True)).sum(1, keepdims=True))
    log_p -= current.max(1, keepdims=True)
    log_q = old - np.log(np.exp(old - old.max(1, keepdims=True)).sum(1, keepdims=True))
    log_q -= old.max(1, keepdims=True)
    return float((np.exp(log_q) * (log_q - log_p)).sum(1).mean())


def test_rehearse_needs_a_rehearsal_model(trained_tiny):
    nlp = spacy.load(trained_tiny)
    with pytest.raises(BertNERError, match="resume_training"):
        nlp.get_pipe("bert_ner").rehearse(tiny_examples(nlp), sgd=Adam(1e-3))


def test_rehearse_changes_weights_and_pulls_toward_the_old_model(trained_tiny):
    fix_random_seed(0)
    nlp = spacy.load(trained_tiny)
    pipe = nlp.get_pipe("bert_ner")
    tutor = spacy.load(trained_tiny).get_pipe("bert_ner")
    optimizer = nlp.resume_training(sgd=Adam(1e-3))
    pipe.add_label("MISC")
    for _ in range(5):
        nlp.update(examples_of(nlp, NEW_ROWS), sgd=optimizer)
    old_docs = [eg.predicted for eg in tiny_examples(nlp)]
    drifted = old_tag_drift(pipe, tutor, old_docs)
    weights = {n: p.detach().clone() for n, p in pipe.hf_model.named_parameters()}
    losses = pipe.rehearse(tiny_examples(nlp), sgd=optimizer)
    assert losses["bert_ner"] > 0
    moved = [n for n, p in pipe.hf_model.named_parameters() if not torch.equal(p, weights[n])]
    assert {"classifier.weight", "bert.encoder.layer.0.attention.self.query.weight"} <= set(moved)
    for _ in range(10):
        pipe.rehearse(tiny_examples(nlp), sgd=optimizer)
    assert old_tag_drift(pipe, tutor, old_docs) < 0.5 * drifted


def test_nlp_rehearse_steps_as_the_pipe_does(trained_tiny):
    """`Language.rehearse` collects gradients and steps the optimizer itself afterwards; the
    step must be the one `BertNER.rehearse(sgd=...)` takes (not a zeroed gradient)."""
    after = []
    for through_nlp in (False, True):
        nlp = spacy.load(trained_tiny)
        pipe = nlp.get_pipe("bert_ner")
        optimizer = nlp.resume_training(sgd=Adam(1e-3, L2=0.0))
        start = pipe.hf_model.classifier.weight.detach().clone()
        fix_random_seed(0)  # the same dropout masks: they make the step non-zero
        if through_nlp:
            nlp.rehearse(tiny_examples(nlp), sgd=optimizer)
        else:
            pipe.rehearse(tiny_examples(nlp), sgd=optimizer)
        after.append(pipe.hf_model.classifier.weight.detach().clone())
        assert (after[-1] - start).abs().max() > 1e-4
    assert torch.allclose(after[0], after[1], atol=1e-7)


def test_rehearsal_keeps_old_types_while_the_new_one_is_learnt(trained_tiny):
    """Training on MISC-only annotation teaches that persons and places are O; rehearsing on
    old texts in the same steps (the loop spacy train runs) keeps the old model's behaviour."""
    drift, learnt = {}, {}
    for rehearse in (False, True):
        fix_random_seed(0)
        nlp = spacy.load(trained_tiny)
        pipe = nlp.get_pipe("bert_ner")
        optimizer = Adam(1e-2)
        if rehearse:
            nlp.resume_training(sgd=optimizer)
        pipe.add_label("MISC")
        new, old = examples_of(nlp, NEW_ROWS), tiny_examples(nlp)
        for _ in range(40):
            if rehearse:
                pipe.rehearse(old)  # accumulated: the update's step applies it
            nlp.update(new, sgd=optimizer)
        tutor = spacy.load(trained_tiny).get_pipe("bert_ner")
        drift[rehearse] = old_tag_drift(pipe, tutor, [eg.predicted for eg in old])
        predicted = nlp(Doc(nlp.vocab, words=NEW_ROWS[0][0]))
        learnt[rehearse] = [(e.text, e.label_) for e in predicted.ents if e.label_ == "MISC"]
    assert drift[True] < 0.25 * drift[False], drift
    assert learnt[True] == learnt[False] == [("german", "MISC")]
