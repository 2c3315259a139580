"""Shared fixtures: a tiny random BERT token classifier built on the fly, and the data dir.

The tiny model (2 layers, hidden 32, a WordPiece vocab of letters and a few words) makes the
unit suite independent of the network and fast on 2 cores; its predictions are random but
deterministic, which is all that windows, decoding and serialization tests need.
"""

import string
from pathlib import Path

import pytest
import spacy
import torch
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Adam, fix_random_seed
from transformers import BertConfig, BertForTokenClassification, BertModel, BertTokenizerFast

from spacy_bert_ner import conll

TINY_TAGS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
TINY_MAX_LENGTH = 64
WORDS = ["the", "in", "met", "berlin", "angela", "merkel", "paris", "and", "of", "to"]


def write_tiny_bert(path: Path, tags: list[str] | None = TINY_TAGS, seed: int = 0) -> Path:
    """Save a random BertForTokenClassification with a WordPiece tokenizer under `path`; with
    `tags` None, a BertModel: an encoder without a head."""
    path.mkdir(parents=True, exist_ok=True)
    letters = string.ascii_lowercase + string.digits + string.punctuation
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    vocab += list(letters) + [f"##{c}" for c in letters]
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(
        vocab_file=str(vocab_file), do_lower_case=True, model_max_length=TINY_MAX_LENGTH
    )
    torch.manual_seed(seed)
    labels = {} if tags is None else _label_maps(tags)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=TINY_MAX_LENGTH,
        **labels,
    )
    model = BertModel(config) if tags is None else BertForTokenClassification(config)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def _label_maps(tags: list[str]) -> dict[str, dict]:
    return {"id2label": dict(enumerate(tags)), "label2id": {t: i for i, t in enumerate(tags)}}


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT as an encoder without a head (a `BertModel`), the way MiniLM and
    bert-base-cased come: what cpu.cfg and gpu.cfg train from."""
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_encoder"), tags=None)


# Sentences of the tiny vocabulary annotated with PER and LOC: what the "old" model knows.
OLD_ROWS = [
    (
        ["angela", "merkel", "met", "macron", "in", "paris"],
        ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"],
    ),
    (["the", "berlin", "of", "angela"], ["O", "B-LOC", "O", "B-PER"]),
    (["paris", "and", "berlin", "met", "merkel"], ["B-LOC", "O", "B-LOC", "O", "B-PER"]),
]
# Sentences annotated with MISC alone, as a new annotation round delivers them: the persons
# and places in them are O.
NEW_ROWS = [
    (["angela", "merkel", "met", "the", "german", "team"], ["O", "O", "O", "O", "B-MISC", "O"]),
    (["paris", "and", "french", "berlin"], ["O", "O", "B-MISC", "O"]),
    (["the", "german", "of", "merkel"], ["O", "B-MISC", "O", "O"]),
]


def examples_of(nlp: Language, rows: list[tuple[list[str], list[str]]]) -> list[Example]:
    return [
        Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, ents=tags))
        for words, tags in rows
    ]


def tiny_examples(nlp: Language) -> list[Example]:
    return examples_of(nlp, OLD_ROWS)


def train_tiny(tiny_bert: Path) -> tuple[Language, list[float]]:
    """The tiny bert_ner trained 40 steps on OLD_ROWS (PER and LOC), with its loss per step."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert)}})
    examples = tiny_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(2e-3)
    losses = [nlp.update(examples, sgd=optimizer, losses={})["bert_ner"] for _ in range(40)]
    return nlp, losses


@pytest.fixture(scope="session")
def trained_tiny(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`train_tiny`'s pipeline, saved once; load a fresh copy per test with `spacy.load`."""
    nlp, _ = train_tiny(tiny_bert)
    path = tmp_path_factory.mktemp("trained_tiny") / "pipeline"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="session")
def vocab() -> Vocab:
    """A blank English vocab, for tests that build docs without a pipeline."""
    return spacy.blank("en").vocab


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = conll.data_dir()
    if not path.is_dir():
        pytest.skip(f"CoNLL data not found at {path} (set {conll.DATA_DIR_ENV})")
    return path


# The shared-encoder (listener) architecture: a spacy-transformers `transformer` over the tiny
# BERT's encoder, with a tagger and bert_ner both listening to it.
POS = {
    "angela": "NNP",
    "merkel": "NNP",
    "macron": "NNP",
    "paris": "NNP",
    "berlin": "NNP",
    "met": "VBD",
    "in": "IN",
    "of": "IN",
    "the": "DT",
    "and": "CC",
}
LISTENER = {
    "@architectures": "spacy-transformers.TransformerListener.v1",
    "grad_factor": 1.0,
    "upstream": "*",
    "pooling": {"@layers": "spacy_bert_ner.first_piece.v1"},
}


def multitask_pipeline(tiny_bert: Path, case_feature: bool = True) -> Language:
    """transformer + tagger + bert_ner, both listening, on the tiny BERT's encoder."""
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": str(tiny_bert),
                "get_spans": {
                    "@span_getters": "spacy-transformers.strided_spans.v1",
                    "window": 32,
                    "stride": 24,
                },
                "tokenizer_config": {"use_fast": True},
            }
        },
    )
    nlp.add_pipe(
        "tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": LISTENER}}
    )
    head = {"@architectures": "spacy_bert_ner.ListenerTokenClassifier.v1", "tok2vec": LISTENER}
    head.update(head_lr_scale=10.0, case_feature=case_feature)
    nlp.add_pipe("bert_ner", config={"model": head})
    return nlp


def gold_examples(nlp: Language) -> list[Example]:
    return [
        Example(
            Doc(nlp.vocab, words=words),
            Doc(nlp.vocab, words=words, ents=tags, tags=[POS[w] for w in words]),
        )
        for words, tags in OLD_ROWS
    ]


@pytest.fixture(scope="session")
def trained_multitask(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The multi-task pipeline trained jointly 40 steps, saved once."""
    nlp, _ = train_multitask(tiny_bert)
    path = tmp_path_factory.mktemp("multitask") / "pipeline"
    nlp.to_disk(path)
    return path


def train_multitask(tiny_bert: Path) -> tuple[Language, list[dict[str, float]]]:
    fix_random_seed(0)
    nlp = multitask_pipeline(tiny_bert)
    examples = gold_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(2e-3)
    return nlp, [nlp.update(examples, sgd=optimizer, losses={}) for _ in range(40)]
