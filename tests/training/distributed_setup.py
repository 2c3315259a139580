"""What the data-parallel tests share: a tiny corpus, configs for both architectures, and a
group of processes (torch.distributed over gloo, without Ray) running `train_worker`."""

import json
import shutil
import socket
from datetime import timedelta
from pathlib import Path

import spacy
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from spacy.tokens import Doc, DocBin
from thinc.api import Config

from tests.conftest import OLD_ROWS, POS

# Equal-length sentences, so that a shard's batch and the global batch pad alike.
ROWS = [(words[:4], tags[:4]) for words, tags in OLD_ROWS] * 4

CONFIG = """
[paths]
train = null
dev = null

[system]
seed = 0
gpu_allocator = null

[nlp]
lang = "en"
pipeline = ["bert_ner"]

[components]

[components.bert_ner]
factory = "bert_ner"

[components.bert_ner.model]
@architectures = "spacy_bert_ner.TokenClassifier.v1"
name = null

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${paths.train}

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${paths.dev}

[training]
seed = ${system.seed}
gpu_allocator = ${system.gpu_allocator}
dropout = 0.0
max_epochs = -1
max_steps = 4
eval_frequency = 100

[training.batcher]
@batchers = "spacy.batch_by_sequence.v1"
size = 2

[training.optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.001
use_averages = false

[initialize]
"""

MULTITASK = """
[nlp]
pipeline = ["transformer", "tagger", "bert_ner"]

[components]

[components.bert_ner]
factory = "bert_ner"

[components.transformer]
factory = "transformer"

[components.transformer.model]
@architectures = "spacy-transformers.TransformerModel.v3"
name = null
tokenizer_config = {"use_fast": true}

[components.transformer.model.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 32
stride = 24

[components.tagger]
factory = "tagger"

[components.tagger.model]
@architectures = "spacy.Tagger.v2"

[components.tagger.model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[components.tagger.model.tok2vec.pooling]
@layers = "spacy_bert_ner.first_piece.v1"

[components.bert_ner.model]
@architectures = "spacy_bert_ner.ListenerTokenClassifier.v1"
head_lr_scale = 10.0

[components.bert_ner.model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[components.bert_ner.model.tok2vec.pooling]
@layers = "spacy_bert_ner.first_piece.v1"
"""


def without_dropout(model_dir: Path, target: Path) -> Path:
    """A copy of a tiny BERT whose dropout is off, so that runs can be compared weight for
    weight (a worker's dropout masks differ from a single process's)."""
    shutil.copytree(model_dir, target)
    config_file = target / "config.json"
    settings = json.loads(config_file.read_text())
    settings.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config_file.write_text(json.dumps(settings))
    return target


def write_corpus(path: Path, rows: list[tuple[list[str], list[str]]]) -> Path:
    vocab = spacy.blank("en").vocab
    docs = [
        Doc(vocab, words=words, ents=tags, tags=[POS[w] for w in words]) for words, tags in rows
    ]
    DocBin(docs=docs).to_disk(path)
    return path


def make_config(
    model: Path, corpus: Path, *, multitask: bool = False, batch: int = 2, **training: object
) -> Config:
    config = Config().from_str(CONFIG, interpolate=False)
    if multitask:
        config = config.merge(Config().from_str(MULTITASK, interpolate=False))
        config["components"]["transformer"]["model"]["name"] = str(model)
    else:
        config["components"]["bert_ner"]["model"]["name"] = str(model)
    config["paths"].update(train=str(corpus), dev=str(corpus))
    config["training"]["batcher"]["size"] = batch
    config["training"].update(training)
    return config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_rank(rank: int, workers: int, port: int, config: str, output: str, skip: bool) -> None:
    from spacy_bert_ner.training import distributed
    from spacy_bert_ner.training.gradients import GradientAverager

    torch.set_num_threads(1)
    # A step that one worker misses fails the test within a minute instead of hanging it.
    address, timeout = f"tcp://127.0.0.1:{port}", timedelta(seconds=60)
    dist.init_process_group("gloo", address, rank=rank, world_size=workers, timeout=timeout)
    if skip:  # the test of the test: a worker that never averages
        GradientAverager.average = lambda self: None  # type: ignore[method-assign]
    try:
        distributed.train_worker(Config().from_str(config, interpolate=False), Path(output))
    finally:
        dist.destroy_process_group()


def train_group(config: Config, output: Path, workers: int = 2, skip: bool = False) -> Path:
    """Run `train_worker` in `workers` spawned processes; returns rank 0's model-last."""
    args = (workers, free_port(), config.to_str(), str(output), skip)
    mp.spawn(_run_rank, args=args, nprocs=workers, join=True)
    return output / "model-last"
