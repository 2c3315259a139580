"""The bert_ner component: factory, annotation, options, serialization and errors."""

import errno
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, Span
from spacy.training import Example
from transformers import BertConfig, BertModel

from spacy_bert_ner import replace_lone_surrogates
from spacy_bert_ner.errors import BertNERError, ModelLoadError, TagSchemeError
from spacy_bert_ner.models.token_classifier import architecture_of

from ..conftest import TINY_TAGS, write_tiny_bert
from ..nasty_strings import LONE_SURROGATES, NASTY_STRINGS

TEXT = "Angela Merkel met Emmanuel Macron in Berlin."


@pytest.fixture(scope="module")
def nlp(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    return nlp


def ents(doc):
    return [(e.start, e.end, e.label_, e._.bert_ner_score) for e in doc.ents]


def test_factory_found_through_entry_point_without_import(tiny_bert):
    code = (
        "import spacy; nlp = spacy.blank('en'); "
        f"nlp.add_pipe('bert_ner', config={{'model': {str(tiny_bert)!r}}}); "
        f"doc = nlp({TEXT!r}); "
        "print(len(doc), doc.has_annotation('ENT_IOB'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "8 True"


def test_entities_are_labelled_and_scored(nlp):
    doc = nlp(TEXT)
    assert doc.ents, "the tiny random model predicts some entities on this text"
    for ent in doc.ents:
        assert ent.label_ in {"PER", "LOC", "ORG", "MISC"}
        assert 0.0 < ent._.bert_ner_score <= 1.0


def test_disk_and_bytes_round_trip_give_identical_predictions(nlp, tmp_path):
    before = ents(nlp(TEXT))
    nlp.to_disk(tmp_path / "pipeline")
    assert (tmp_path / "pipeline" / "bert_ner" / "model" / "model.safetensors").exists()
    assert not list((tmp_path / "pipeline" / "bert_ner").rglob("*.bin"))
    loaded = spacy.load(tmp_path / "pipeline")
    assert ents(loaded(TEXT)) == before
    other = spacy.blank("en")
    other.add_pipe("bert_ner", config={"model": "no/such-model"})
    other.from_bytes(nlp.to_bytes())
    assert ents(other(TEXT)) == before


def test_load_never_touches_the_network(nlp, tmp_path):
    nlp.to_disk(tmp_path / "pipeline")
    code = (
        "import socket, spacy\n"
        "def refuse(*a, **k): raise RuntimeError('network used')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse\n"
        f"nlp = spacy.load({str(tmp_path / 'pipeline')!r}); print(len(nlp({TEXT!r}).ents) >= 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


@pytest.fixture(scope="module")
def saved(nlp, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "pipeline"
    nlp.to_disk(path)
    return path


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _cut(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
THREE_TAGS = {"0": "O", "1": "B-PER", "2": "I-PER"}

# name: (damage done to the saved component's directory, the file the message must name,
# words it must contain)
DAMAGE = {
    "weights cut in half": (
        lambda c: _cut(c / "model" / "model.safetensors", 0.5),
        "model/model.safetensors",
        "cut short",
    ),
    "weights cut inside the header": (
        lambda c: _cut(c / "model" / "model.safetensors", 0.001),
        "model/model.safetensors",
        "not a readable safetensors file",
    ),
    "empty weights file": (
        lambda c: (c / "model" / "model.safetensors").write_bytes(b""),
        "model/model.safetensors",
        "not a readable safetensors file",
    ),
    "weights replaced by a git-lfs pointer": (
        lambda c: (c / "model" / "model.safetensors").write_text(
            "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 101716\n"
        ),
        "model/model.safetensors",
        "not a readable safetensors file",
    ),
    "no weights": (
        lambda c: (c / "model" / "model.safetensors").unlink(),
        "model",
        "no .safetensors weights",
    ),
    "no tokenizer files": (
        lambda c: [(c / "model" / name).unlink() for name in TOKENIZER_FILES],
        "model",
        "no tokenizer.json",
    ),
    "damaged tokenizer.json": (
        lambda c: (c / "model" / "tokenizer.json").write_text('{"version": '),
        "model/tokenizer.json",
        "cannot load the tokenizer",
    ),
    "config labels do not match the weights": (
        lambda c: _edit_json(
            c / "model" / "config.json",
            id2label=THREE_TAGS,
            label2id={tag: int(i) for i, tag in THREE_TAGS.items()},
        ),
        "model/config.json",
        "has 9 rows",
    ),
    "no config.json": (
        lambda c: (c / "model" / "config.json").unlink(),
        "model/config.json",
        "missing",
    ),
    "damaged config.json": (
        lambda c: (c / "model" / "config.json").write_text("{"),
        "model/config.json",
        "cannot read",
    ),
    "no model directory": (lambda c: shutil.rmtree(c / "model"), "model", "missing"),
    "no cfg": (lambda c: (c / "cfg").unlink(), "cfg", "cannot read"),
    "damaged cfg": (lambda c: (c / "cfg").write_text("{"), "cfg", "cannot read"),
    "cfg from a newer version": (
        lambda c: _edit_json(c / "cfg", spacy_bert_ner_version="9.0.0", vote=3),
        "cfg",
        "spacy-bert-ner 9.0.0 with settings this version (0.1.0) does not know: vote",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_pipeline_files_get_one_line_naming_the_file(saved, tmp_path, case):
    damage, named, words = DAMAGE[case]
    copy = tmp_path / "pipeline"
    shutil.copytree(saved, copy)
    damage(copy / "bert_ner")
    with pytest.raises(ModelLoadError) as raised:
        spacy.load(copy)
    message = str(raised.value)
    assert str(copy / "bert_ner" / named) in message
    assert words in message and "\n" not in message


def test_saved_cfg_records_the_version_and_older_ones_still_load(saved, tmp_path):
    from spacy_bert_ner.about import __version__

    assert json.loads((saved / "bert_ner" / "cfg").read_text())["spacy_bert_ner_version"] == (
        __version__
    )
    copy = tmp_path / "pipeline"
    shutil.copytree(saved, copy)
    cfg = json.loads((copy / "bert_ner" / "cfg").read_text())
    del cfg["spacy_bert_ner_version"]  # as written before versions were recorded
    (copy / "bert_ner" / "cfg").write_text(json.dumps(cfg))
    loaded = spacy.load(copy, config={"components": {"bert_ner": {"on_bad_gold": "skip"}}})
    assert loaded.get_pipe("bert_ner").on_bad_gold == "skip"  # a training choice: not saved
    assert ents(loaded(TEXT)) == ents(spacy.load(saved)(TEXT))


class RunsCode:
    """A pickle that runs `code` when loaded, as a malicious pytorch_model.bin would."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def test_loading_never_runs_code_shipped_in_the_model_dir(saved, tmp_path):
    copy = tmp_path / "pipeline"
    shutil.copytree(saved, copy)
    model_dir = copy / "bert_ner" / "model"
    marker = tmp_path / "code_ran"
    payload = f"open({str(marker)!r}, 'w').write('ran')\n"
    (model_dir / "custom.py").write_text(
        payload + "from transformers import BertConfig as Config, BertTokenizerFast as Tok\n"
        "from transformers import BertForTokenClassification as Model\n"
    )
    _edit_json(
        model_dir / "config.json",
        auto_map={"AutoConfig": "custom.Config", "AutoModelForTokenClassification": "custom.Model"},
    )
    _edit_json(
        model_dir / "tokenizer_config.json", auto_map={"AutoTokenizer": [None, "custom.Tok"]}
    )
    for name in ("pytorch_model.bin", "training_args.bin"):
        (model_dir / name).write_bytes(pickle.dumps(RunsCode(payload)))
    loaded = spacy.load(copy)
    assert ents(loaded(TEXT)) == ents(spacy.load(saved)(TEXT))
    # A model type that only its shipped code defines is refused, not imported.
    _edit_json(model_dir / "config.json", model_type="custom-ner")
    with pytest.raises(ModelLoadError, match="config.json: this model only loads with the Py"):
        spacy.load(copy)
    assert not marker.exists()


def test_a_save_that_fails_midway_keeps_the_previous_files(tiny_bert, tmp_path, monkeypatch):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    nlp.to_disk(tmp_path / "pipeline")
    before = ents(spacy.load(tmp_path / "pipeline")(TEXT))
    with torch.no_grad():
        pipe.hf_model.classifier.bias[:] = torch.arange(len(TINY_TAGS), dtype=torch.float32)
    assert ents(nlp(TEXT)) != before

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    # The weights are written, then the tokenizer fails: as a kill in the middle would.
    monkeypatch.setattr(architecture_of(pipe.model).tokenizer, "save_pretrained", disk_full)
    with pytest.raises(BertNERError, match="bert_ner/model: cannot write .No space left"):
        nlp.to_disk(tmp_path / "pipeline")
    assert ents(spacy.load(tmp_path / "pipeline")(TEXT)) == before
    assert not list((tmp_path / "pipeline" / "bert_ner").glob(".*"))


def test_save_removes_what_a_killed_save_left_behind(nlp, tmp_path):
    stale = tmp_path / "pipeline" / "bert_ner" / ".model.k1ll3d.tmp"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    nlp.to_disk(tmp_path / "pipeline")
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "pipeline" / "bert_ner").iterdir()) == [
        "cfg",
        "model",
    ]


def test_long_doc_is_labelled_to_its_last_token(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert), "max_length": 16}})
    words = ["angela", "merkel", "met", "paris", "."] * 60  # 300 pieces: ~30 windows of 14
    doc = nlp(Doc(nlp.vocab, words=words))
    scores = nlp.get_pipe("bert_ner").predict([Doc(nlp.vocab, words=words)])[0]
    assert scores.shape == (300, 9)
    # Rows come from real windows: the same word gets different logits in different contexts.
    assert len({tuple(row.round(4)) for row in scores[-10:]}) > 1
    assert doc.ents and doc.ents[-1].end > 290


def test_batches_return_docs_in_input_order(nlp):
    texts = [TEXT, "berlin", "the " * 70, "", "Paris and Berlin"]
    one_by_one = [ents(nlp(t)) for t in texts]
    assert [ents(d) for d in nlp.pipe(texts, batch_size=3)] == one_by_one


def test_whitespace_and_control_tokens_are_never_entities(nlp):
    doc = nlp(Doc(nlp.vocab, words=["angela", "\u200b", "merkel", "\n", "berlin", "\x07"]))
    for ent in doc.ents:
        assert all(token.text.strip() and token.text not in ("\u200b", "\x07") for token in ent)


def has_wordpiece(pipe, token) -> bool:
    backend = architecture_of(pipe.model).tokenizer.backend_tokenizer
    return bool(backend.encode([token.text], is_pretokenized=True, add_special_tokens=False).ids)


def assert_sound(pipe, doc, text, n_tokens, kept=()):
    """What annotation must hold for any input: the text and every token kept, every token
    labelled (B, I or O), entities in bounds, disjoint, inside one sentence, made of tokens
    that have wordpieces, scored; entities in `kept` (start, end, label) still there."""
    assert doc.text == text
    assert len(doc) == n_tokens
    assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)
    previous_end = 0
    for ent in doc.ents:
        assert previous_end <= ent.start < ent.end <= len(doc)
        previous_end = ent.end
        if (ent.start, ent.end, ent.label_) in kept:
            continue
        assert ent.label_ in pipe.labels
        assert 0.0 < ent._.bert_ner_score <= 1.0
        assert all(has_wordpiece(pipe, token) for token in ent)
        assert not any(token.is_sent_start for token in ent[1:])
    assert set(kept) <= {(ent.start, ent.end, ent.label_) for ent in doc.ents}


@pytest.mark.parametrize("name", sorted(NASTY_STRINGS))
def test_nasty_strings_lose_no_token(nlp, name):
    text = NASTY_STRINGS[name]
    pipe = nlp.get_pipe("bert_ner")
    doc = nlp(text)
    assert_sound(pipe, doc, text, len(nlp.make_doc(text)))
    scores = pipe.predict([nlp.make_doc(text)])[0]
    assert scores.shape == (len(doc), len(TINY_TAGS))
    assert np.isfinite(scores).all()


@pytest.fixture(scope="module")
def trained(trained_tiny):
    return spacy.load(trained_tiny)


@pytest.mark.parametrize("text", LONE_SURROGATES.values(), ids=list(LONE_SURROGATES))
def test_spacy_refuses_lone_surrogates_before_any_component(trained, text):
    """Why the component never sees one (README, `spacy_bert_ner.text`): if spaCy ever takes
    them, the wordpiece step gets them and this must be revisited."""
    with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
        trained(text)


@pytest.mark.parametrize("name", sorted(LONE_SURROGATES))
def test_replaced_lone_surrogates_are_tokens_without_wordpiece_and_change_no_other_tag(
    trained, name
):
    """A replaced surrogate is a U+FFFD token, which BERT's tokenizer drops: it is O and every
    other token is tagged as beside any token without a wordpiece (a zero-width space in its
    place), from the same logits as with it removed."""
    pipe = trained.get_pipe("bert_ner")
    text = replace_lone_surrogates(LONE_SURROGATES[name])
    assert len(text) == len(LONE_SURROGATES[name])  # one for one: offsets unchanged
    doc = trained(text)
    assert_sound(pipe, doc, text, len(trained.make_doc(text)))
    bad = [token.i for token in doc if token.text.strip("\ufffd") == ""]
    assert bad and all(not has_wordpiece(pipe, doc[i]) and doc[i].ent_iob_ == "O" for i in bad)
    others = [token.i for token in doc if token.i not in bad]

    def words(replacement: str | None) -> Doc:
        kept = [(t.text if t.i in others else replacement, t.whitespace_) for t in doc]
        kept = [(word, space) for word, space in kept if word is not None]
        return Doc(trained.vocab, words=[w for w, _ in kept], spaces=[bool(s) for _, s in kept])

    control = trained(words("\u200b"))
    assert [t.ent_iob_ + t.ent_type_ for t in control] == [t.ent_iob_ + t.ent_type_ for t in doc]
    scores = pipe.predict([trained.make_doc(text), words(None)])
    assert np.array_equal(scores[0][others], scores[1])


def test_a_batch_with_replaced_surrogates_gives_every_doc(trained):
    """1,000 texts, 10 of them with lone surrogates: `nlp.pipe` gives 1,000 docs, each the doc
    of its text alone."""
    bad = list(LONE_SURROGATES.values()) * 2
    texts = [f"Angela Merkel met Macron in Paris on day {i}." for i in range(990)]
    for n, text in enumerate(bad):
        texts.insert(n * 100 + 7, text)
    docs = list(trained.pipe(map(replace_lone_surrogates, texts), batch_size=64))
    assert [doc.text for doc in docs] == [replace_lone_surrogates(text) for text in texts]
    for n in range(len(bad)):
        alone = trained(docs[n * 100 + 7].text)
        assert [(e.start, e.end, e.label_) for e in docs[n * 100 + 7].ents] == [
            (e.start, e.end, e.label_) for e in alone.ents
        ]


def test_100k_word_doc_is_labelled_to_its_last_token(nlp):
    words = ["angela", "merkel", "met", "macron", "in", "paris", ".", "\n", "berlin"] * 11_112
    doc = nlp(Doc(nlp.vocab, words=words))
    assert len(doc) == len(words) > 100_000
    assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)
    assert doc.ents[-1].start > len(words) - 20, "no entity near the end: tokens were dropped"
    assert all(token.text != "\n" for ent in doc.ents for token in ent)


def test_doc_from_another_vocab_and_tokenizer(nlp):
    other = spacy.blank("de")
    doc = Doc(other.vocab, words=["Angela Merkel", "traf", "Macron,", "in", "Berlin!", "\u200b"])
    text = doc.text
    annotated = nlp.get_pipe("bert_ner")(doc)
    assert_sound(nlp.get_pipe("bert_ner"), annotated, text, 6)
    assert annotated.vocab is other.vocab and annotated.ents


def test_keeping_existing_entities_labels_every_other_token(tiny_bert):
    """Regression: with overwrite_ents = false, tokens without annotation stayed unlabelled
    ("") after the component ran, instead of "O"."""
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(tiny_bert), "overwrite_ents": False})
    doc = nlp.make_doc("the the angela merkel met macron in paris")
    doc.set_ents([Span(doc, 0, 1, "GPE")], default="unmodified")
    doc = pipe(doc)
    assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)
    assert (doc.ents[0].start, doc.ents[0].end, doc.ents[0].label_) == (0, 1, "GPE")


@settings(
    deadline=None, max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_any_unicode_text_gives_well_formed_entities(nlp, text):
    doc = nlp(text)
    assert_sound(nlp.get_pipe("bert_ner"), doc, text, len(nlp.make_doc(text)))
    for ent in doc.ents:
        assert ent[0].text.strip() and ent[-1].text.strip()


@pytest.fixture(scope="module")
def windowed(tiny_bert):
    """Pipelines with 16-piece windows (several per doc), replacing or keeping entities."""
    pipes = {}
    for overwrite in (True, False):
        nlp = spacy.blank("en")
        model = {"name": str(tiny_bert), "max_length": 16, "max_batch_pieces": 64}
        nlp.add_pipe("bert_ner", config={"model": model, "overwrite_ents": overwrite})
        pipes[overwrite] = nlp.get_pipe("bert_ner")
    return pipes


WORD = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["angela", "merkel", "paris", "berlin", " ", "\n", "\u200b", "a" * 200]),
)


@st.composite
def docs_with_existing_entities(draw):
    """A doc of any words (as another tokenizer would make them), with any spaces and
    sentence starts, and some entities set before bert_ner runs."""
    words = draw(st.lists(WORD, max_size=60))
    spaces = draw(st.lists(st.booleans(), min_size=len(words), max_size=len(words)))
    starts = draw(st.lists(st.booleans(), min_size=len(words), max_size=len(words)))
    cuts = sorted(draw(st.sets(st.integers(0, len(words)), max_size=6)))
    existing = [(s, e, "GPE") for s, e in zip(cuts[::2], cuts[1::2], strict=False) if s < e]
    return words, spaces, starts, existing


@settings(
    deadline=None, max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=docs_with_existing_entities(), overwrite=st.booleans())
def test_any_doc_with_existing_entities_loses_no_token(windowed, case, overwrite):
    words, spaces, starts, existing = case
    pipe = windowed[overwrite]
    doc = Doc(pipe.vocab, words=words, spaces=spaces, sent_starts=starts or None)
    doc.set_ents([Span(doc, s, e, label) for s, e, label in existing], default="unmodified")
    text = doc.text
    scores = pipe.predict([doc])[0]
    assert scores.shape == (len(words), len(TINY_TAGS)) and np.isfinite(scores).all()
    doc = pipe(doc)
    assert [token.text for token in doc] == words
    assert_sound(pipe, doc, text, len(words), kept=() if overwrite else existing)


def test_spans_key_and_keeping_existing_entities(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert), "spans_key": "bert"})
    doc = nlp(TEXT)
    assert not doc.ents and len(doc.spans["bert"]) > 0
    assert all(span._.bert_ner_score is not None for span in doc.spans["bert"])

    keep = spacy.blank("en")
    ruler = keep.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "GPE", "pattern": "Berlin"}])
    keep.add_pipe("bert_ner", config={"model": str(tiny_bert), "overwrite_ents": False})
    doc = keep(TEXT)
    berlin = [e for e in doc.ents if e.text == "Berlin"]
    assert berlin and berlin[0].label_ == "GPE" and berlin[0]._.bert_ner_score is None


def test_initialize_builds_head_for_example_labels(tiny_bert):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    doc = Doc(
        nlp.vocab, words=["Angela", "works", "at", "Siemens"], ents=["B-PER", "O", "O", "B-COMPANY"]
    )
    nlp.initialize(lambda: [Example(nlp.make_doc(doc.text), doc)])
    assert pipe.labels == ("COMPANY", "PER")
    assert pipe.tag_scheme.tags == ("O", "B-COMPANY", "I-COMPANY", "B-PER", "I-PER")


def test_initialize_keeps_matching_head(tiny_bert):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    before = ents(nlp(TEXT))
    plain = nlp.make_doc("no entities here")
    pipe.initialize(lambda: [Example(plain, plain)], labels=["PER", "LOC", "ORG", "MISC"])
    assert ents(nlp(TEXT)) == before
    assert pipe.labels == ("LOC", "MISC", "ORG", "PER")


@pytest.mark.parametrize(
    "tags,scheme",
    [
        (["O", "B-PER", "I-PER", "E-PER", "S-PER"], "BIOES"),
        (["O", "B-PER", "I-PER", "L-PER", "U-PER"], "BILOU"),
        (["O", "B-PER", "I-PER"], "IOB2"),
    ],
)
def test_each_scheme_is_read_from_the_model(tmp_path, tags, scheme):
    path = write_tiny_bert(tmp_path / scheme, tags=tags)
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(path)})
    nlp(TEXT)
    assert pipe.tag_scheme.name == scheme


def test_iob1_override(tmp_path):
    path = write_tiny_bert(tmp_path / "iob1", tags=["O", "B-PER", "I-PER"])
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(path), "scheme": "IOB1"})
    nlp(TEXT)
    assert pipe.tag_scheme.name == "IOB1"


def test_label_map_that_fits_no_scheme(tmp_path):
    path = write_tiny_bert(tmp_path / "bad", tags=["LABEL_0", "LABEL_1"])
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(path)})
    with pytest.raises(TagSchemeError, match="LABEL_0"):
        nlp(TEXT)


def test_missing_model_is_explained(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": "no-such-org/no-such-model"})
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-model.*offline mode is on"):
        nlp(TEXT)


def test_encoder_without_head_is_explained(tmp_path, tiny_bert):
    encoder = BertModel(BertConfig.from_pretrained(tiny_bert))
    encoder.save_pretrained(tmp_path / "encoder", safe_serialization=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / "encoder" / name).write_bytes((Path(tiny_bert) / name).read_bytes())
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tmp_path / "encoder")})
    with pytest.raises(ModelLoadError, match="not a token classifier"):
        nlp(TEXT)


def test_pickle_only_weights_are_refused(tmp_path, tiny_bert):
    from transformers import BertForTokenClassification

    model = BertForTokenClassification.from_pretrained(tiny_bert)
    model.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tmp_path / "pickled")})
    with pytest.raises(ModelLoadError, match="safe_serialization=True"):
        nlp(TEXT)


def test_slow_tokenizer_only_is_refused(monkeypatch, tiny_bert):
    # No offline way makes AutoTokenizer fall back to a slow class for BERT, so stand one in.
    from transformers import BertTokenizer

    import spacy_bert_ner.models.hf_loading

    monkeypatch.setattr(
        spacy_bert_ner.models.hf_loading.AutoTokenizer,
        "from_pretrained",
        lambda name, **kwargs: BertTokenizer.from_pretrained(name),
    )
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    with pytest.raises(ModelLoadError, match="no fast"):
        nlp(TEXT)


def test_n_process_2(nlp, tmp_path):
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    texts = [TEXT, "Paris and Berlin", "berlin " * 40] * 3
    expected = [[(e.start, e.end, e.label_) for e in loaded(t).ents] for t in texts]
    got = [
        [(e.start, e.end, e.label_) for e in d.ents]
        for d in loaded.pipe(texts, n_process=2, batch_size=2)
    ]
    assert got == expected


def test_real_minilm_encoder_load_predict_save_load(tmp_path):
    """The embedded MiniLM: a base encoder gets a head at initialize, then round-trips."""
    from spacy_bert_ner.models.architectures import minilm_name

    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": {"name": minilm_name()}})
    plain = nlp.make_doc(TEXT)
    pipe.initialize(lambda: [Example(plain, plain)], labels=["PER", "LOC", "ORG", "MISC"])
    assert pipe.hf_model.config.hidden_size == 384 and pipe.hf_model.config.num_hidden_layers == 6
    before = ents(nlp(TEXT))
    nlp.to_disk(tmp_path / "minilm")
    assert ents(spacy.load(tmp_path / "minilm")(TEXT)) == before


def test_entities_stay_inside_sentences(nlp):
    words = ["angela", "merkel", "met", "paris", ".", "berlin", "and", "paris", "met", "the"] * 5
    sent_starts = [i % 5 == 0 for i in range(len(words))]
    doc = nlp(Doc(nlp.vocab, words=words, sent_starts=sent_starts))
    assert doc.ents
    for ent in doc.ents:
        assert not any(token.is_sent_start for token in ent[1:])


def batch_of_docs(nlp):
    """Docs of the tiny vocabulary, one longer than a window, with and without sentences."""
    words = ["angela", "merkel", "met", "macron", "in", "paris", "and", "berlin", "of", "the"]
    return [
        Doc(nlp.vocab, words=words),
        Doc(nlp.vocab, words=words[::-1] * 2, sent_starts=[i % 10 == 0 for i in range(20)]),
        Doc(nlp.vocab, words=(words + ["to", "merkel"]) * 8),  # 96 tokens: several windows
        Doc(nlp.vocab, words=["paris"]),
    ]


def predictions(nlp, docs):
    return [ents(doc) for doc in nlp.pipe(doc.copy() for doc in docs)]


def test_add_label_grows_a_trained_head_and_keeps_every_prediction(trained_tiny, tmp_path):
    nlp = spacy.load(trained_tiny)
    pipe = nlp.get_pipe("bert_ner")
    old_tags = pipe.tag_scheme.tags
    old_head = pipe.hf_model.classifier
    weight, bias = old_head.weight.detach().clone(), old_head.bias.detach().clone()
    docs = batch_of_docs(nlp)
    before = predictions(nlp, docs)
    assert sum(map(len, before)) >= 10, "the trained model predicts entities to compare"

    assert pipe.add_label("MISC") == 1
    assert pipe.tag_scheme.tags == (*old_tags, "B-MISC", "I-MISC")
    assert pipe.labels == ("LOC", "MISC", "PER") and pipe.cfg["labels"] == list(pipe.labels)
    head = pipe.hf_model.classifier
    assert torch.equal(head.weight[: len(old_tags)], weight)  # bit for bit
    assert torch.equal(head.bias[: len(old_tags)], bias)
    config = pipe.hf_model.config
    assert config.num_labels == len(old_tags) + 2 == head.out_features
    assert [config.id2label[i] for i in range(config.num_labels)] == list(pipe.tag_scheme.tags)
    assert config.label2id == {tag: i for i, tag in enumerate(pipe.tag_scheme.tags)}

    after = predictions(nlp, docs)
    assert [[e[:3] for e in doc] for doc in after] == [[e[:3] for e in doc] for doc in before]
    for doc_after, doc_before in zip(after, before, strict=True):
        for (*_, score_after), (*_, score_before) in zip(doc_after, doc_before, strict=True):
            assert score_after == pytest.approx(score_before, rel=0.015)
    assert pipe.add_label("MISC") == 0

    nlp.to_disk(tmp_path / "grown")
    loaded = spacy.load(tmp_path / "grown")
    assert loaded.get_pipe("bert_ner").tag_scheme.tags == pipe.tag_scheme.tags
    assert predictions(loaded, docs) == after


@pytest.mark.parametrize("scheme", ["BIOES", "BILOU"])
def test_add_label_adds_every_tag_of_the_scheme(tmp_path, scheme):
    prefixes = "BIES" if scheme == "BIOES" else "BILU"
    tags = ["O", *(f"{p}-PER" for p in prefixes), *(f"{p}-LOC" for p in prefixes)]
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(write_tiny_bert(tmp_path, tags=tags))})
    docs = batch_of_docs(nlp)
    before = predictions(nlp, docs)
    assert any(before)
    pipe.add_label("MISC")
    assert pipe.tag_scheme.tags == (*tags, *(f"{p}-MISC" for p in prefixes))
    assert pipe.tag_scheme.name == scheme
    assert [[e[:3] for e in d] for d in predictions(nlp, docs)] == [
        [e[:3] for e in d] for d in before
    ]


def test_add_label_before_loading_waits_for_initialize(tiny_bert):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    assert pipe.add_label("EVENT") == 1
    gold = Doc(nlp.vocab, words=["angela", "met"], ents=["B-PER", "O"])
    nlp.initialize(lambda: [Example(Doc(nlp.vocab, words=["angela", "met"]), gold)])
    assert pipe.labels == ("EVENT", "PER")


def test_span_group_keeps_its_scores_in_attrs_as_spancat_does(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "bert_ner",
        config={"model": str(tiny_bert), "spans_key": "bert", "overwrite_ents": False},
    )
    doc = nlp.make_doc(TEXT)
    doc.spans["bert"] = [doc[0:1]]
    doc = nlp.get_pipe("bert_ner")(doc)
    group = doc.spans["bert"]
    assert len(group) > 1 and group[0] == doc[0:1]
    scores = group.attrs["scores"]
    assert len(scores) == len(group)
    assert np.isnan(scores[0])  # kept from before, not scored by bert_ner
    assert scores[1:].tolist() == pytest.approx([s._.bert_ner_score for s in group][1:])


def test_factory_default_model_is_the_architecture_with_its_defaults():
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner")
    block = nlp.config["components"]["bert_ner"]["model"]
    assert block["@architectures"] == "spacy_bert_ner.TokenClassifier.v1"
    assert block["name"] == "bert-base-cased"
    assert block["head_lr_scale"] == 1.0 and block["case_feature"] is False


def test_threshold_drops_entities_scored_under_it_and_leaves_their_tokens_outside(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    everything = ents(nlp(TEXT))
    scores = sorted(score for *_, score in everything)
    assert len(set(scores)) >= 2, "the tiny model's entities have different scores"
    cut = (scores[0] + scores[1]) / 2
    nlp.get_pipe("bert_ner").cfg["threshold"] = cut  # as `spacy find-threshold` sets it
    doc = nlp(TEXT)
    assert ents(doc) == [e for e in everything if e[3] >= cut]
    dropped = [e for e in everything if e[3] < cut]
    for start, end, *_ in dropped:
        assert all(token.ent_iob_ == "O" for token in doc[start:end])


def test_threshold_comes_from_the_config_not_from_the_saved_pipeline(tiny_bert, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert), "threshold": 0.5})
    nlp.to_disk(tmp_path / "p")
    assert "threshold" not in json.loads((tmp_path / "p" / "bert_ner" / "cfg").read_text())
    assert spacy.load(tmp_path / "p").get_pipe("bert_ner").cfg["threshold"] == 0.5
    override = {"components": {"bert_ner": {"threshold": 1.0}}}
    strict = spacy.load(tmp_path / "p", config=override)
    assert strict.get_pipe("bert_ner").cfg["threshold"] == 1.0
    assert not strict(TEXT).ents


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_outside_zero_one_is_refused(tiny_bert, threshold):
    nlp = spacy.blank("en")
    with pytest.raises(BertNERError, match="threshold must lie between 0 and 1"):
        nlp.add_pipe("bert_ner", config={"model": str(tiny_bert), "threshold": threshold})
