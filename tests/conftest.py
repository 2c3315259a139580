"""Shared fixtures: a tiny random BERT token classifier built on the fly, and the data dir.

The tiny model (2 layers, hidden 32, a WordPiece vocab of letters and a few words) makes the
unit suite independent of the network and fast on 2 cores; its predictions are random but
deterministic, which is all that windows, decoding and serialization tests need.
"""

import os
import string
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

TINY_TAGS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
TINY_MAX_LENGTH = 64
WORDS = ["the", "in", "met", "berlin", "angela", "merkel", "paris", "and", "of", "to"]


def write_tiny_bert(path: Path, tags: list[str] = TINY_TAGS, seed: int = 0) -> Path:
    """Save a random BertForTokenClassification with a WordPiece tokenizer under `path`."""
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
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=TINY_MAX_LENGTH,
        num_labels=len(tags),
        id2label=dict(enumerate(tags)),
        label2id={t: i for i, t in enumerate(tags)},
    )
    BertForTokenClassification(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(
        os.environ.get(
            "SPACY_BERT_NER_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
        )
    )
    if not path.is_dir():
        pytest.skip(f"CoNLL data not found at {path} (set SPACY_BERT_NER_DATA)")
    return path
