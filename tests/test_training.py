"""Training: the loss falls, both configs run under `spacy train`, resuming keeps labels, and
the real MiniLM encoder learns CoNLL-2003 entities from a few hundred sentences."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from thinc.api import Adam, Config, fix_random_seed

from spacy_bert_ner.conll import conll_to_docs, read_conll
from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.evaluation import score_docs

from .conftest import NEW_ROWS, examples_of, tiny_examples

REPO = Path(__file__).resolve().parents[1]


def test_loss_goes_down(tiny_bert):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert)}})
    examples = tiny_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(2e-3)
    losses = [nlp.update(examples, sgd=optimizer, losses={})["bert_ner"] for _ in range(40)]
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


def test_configs_are_complete():
    """`spacy init fill-config` has nothing to add to either config."""
    for name in ("cpu.cfg", "gpu.cfg"):
        path = REPO / "configs" / name
        filled = subprocess.run(
            [sys.executable, "-m", "spacy", "init", "fill-config", str(path), "-"],
            capture_output=True,
            text=True,
        )
        assert filled.returncode == 0, filled.stderr
        assert Config().from_str(filled.stdout, interpolate=False) == Config().from_disk(
            path, interpolate=False
        )


def test_resume_from_source_keeps_labels(tiny_bert, tiny_corpus, tmp_path):
    base = spacy.blank("en")
    pipe = base.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert)}})
    examples = tiny_examples(base)
    base.initialize(lambda: examples)
    before = pipe.hf_model.classifier.weight.detach().clone()
    base.to_disk(tmp_path / "base")

    config = Config().from_disk(REPO / "configs" / "cpu.cfg", interpolate=False)
    config["components"]["bert_ner"] = {"source": str(tmp_path / "base")}
    config.to_disk(tmp_path / "resume.cfg")
    out = spacy_train(
        tmp_path / "resume.cfg",
        tmp_path / "out",
        f"--paths.train={tiny_corpus}",
        f"--paths.dev={tiny_corpus}",
        "--training.max_steps=1",
        "--training.optimizer.learn_rate.warmup_steps=0",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    resumed = spacy.load(tmp_path / "out" / "model-last").get_pipe("bert_ner")
    assert resumed.labels == ("LOC", "PER")
    after = resumed.hf_model.classifier.weight.detach()
    # Trained further from the sourced weights, not re-initialised: close, but not equal.
    assert after.shape == before.shape
    assert 0 < (after - before).abs().max() < 0.01


def conll_slice(path: Path, n_sentences: int, skip: int = 0) -> list[Doc]:
    """Documents holding `n_sentences` sentences of a CoNLL file, after skipping `skip`."""
    nlp = spacy.blank("en")
    docs = conll_to_docs(read_conll(path), nlp.vocab)
    sentences = [sent.as_doc() for doc in docs for sent in doc.sents]
    return sentences[skip : skip + n_sentences]


@pytest.mark.slow
def test_minilm_learns_conll_entities(data_dir):
    """A few hundred sentences are enough for a real F1; an untrained head scores near 0."""
    from spacy_bert_ner.model import minilm_name

    fix_random_seed(0)
    train = conll_slice(data_dir / "conll2003" / "eng.train", 600)
    held_apart = conll_slice(data_dir / "conll2003" / "eng.testa", 200)
    nlp = spacy.blank("en")
    model = {"name": minilm_name(), "max_length": 128, "head_lr_scale": 20.0}
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
