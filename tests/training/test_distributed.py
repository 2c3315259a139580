"""Data-parallel training gives one process's weights: 2 workers x batch B = 1 x batch 2B.

The workers run spaCy's own loop in a torch.distributed gloo group (no Ray: the Ray Train
path is tested end to end in test_ray_train.py). The corpus is streamed in order
(max_epochs = -1), so worker r's k-th batch holds the examples 2Bk + r, 2Bk + r + 2, ...,
exactly the k-th global batch of the single process."""

from pathlib import Path

import pytest
import spacy
import torch
from spacy.training.initialize import init_nlp
from spacy.training.loop import train
from spacy.util import load_model_from_config

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.models.model_api import make_ready
from spacy_bert_ner.training.distributed import worker_sections
from spacy_bert_ner.training.gradients import pipeline_weights

from .distributed_setup import ROWS, make_config, train_group, without_dropout, write_corpus

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def setup(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("distributed")
    return without_dropout(tiny_bert, tmp / "model"), write_corpus(tmp / "train.spacy", ROWS)


def train_one_process(config, output: Path) -> Path:
    torch.set_num_threads(1)
    output.mkdir()
    train(init_nlp(config), output, stdout=open("/dev/null", "w"))
    return output / "model-last"


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    """Every weight of a saved pipeline's trained components, by component and name."""
    nlp = spacy.load(path)
    names = [name for name, pipe in nlp.pipeline if getattr(pipe, "is_trainable", False)]
    make_ready(nlp.get_pipe("bert_ner").model)  # it loads its weights on first use
    return {f"{names[w.pipe]}:{w.key[1]}": w.value().clone() for w in pipeline_weights(nlp, names)}


def largest_difference(a: Path, b: Path) -> float:
    wa, wb = weights_of(a), weights_of(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


@pytest.mark.slow
@pytest.mark.parametrize("multitask", [False, True], ids=["standalone", "listener"])
def test_two_workers_give_one_process_weights(setup, tmp_path: Path, multitask: bool) -> None:
    model, corpus = setup
    single = train_one_process(
        make_config(model, corpus, multitask=multitask, batch=4), tmp_path / "one"
    )
    group_config = make_config(model, corpus, multitask=multitask, batch=2)
    assert largest_difference(single, train_group(group_config, tmp_path / "two")) < TOLERANCE
    # The test of the test: without the all-reduce the workers drift apart from it.
    unaveraged = train_group(group_config, tmp_path / "skip", skip=True)
    assert largest_difference(single, unaveraged) > 100 * TOLERANCE


@pytest.mark.slow
def test_unequal_shards_keep_the_workers_in_step(setup, tmp_path: Path) -> None:
    """5 examples in batches of 1: 3 steps an epoch on worker 0, 2 on worker 1, which takes
    an empty step beside each third (without it, worker 0 would wait on it for good)."""
    model, _ = setup
    corpus = write_corpus(tmp_path / "five.spacy", ROWS[:5])
    config = make_config(model, corpus, batch=1, max_epochs=2, max_steps=0, eval_frequency=2)
    model_last = train_group(config, tmp_path / "out")
    assert spacy.load(model_last).pipe_names == ["bert_ner"]


def test_global_batch_size_is_divided_among_workers(setup) -> None:
    model, corpus = setup
    config = load_model_from_config(make_config(model, corpus, batch=4), auto_fill=True).config
    config["distributed"] = {"batch_size": "global"}
    sections = worker_sections(config, rank=1, workers=2, done_steps=0)
    assert sections["training"]["batcher"]["batcher"]["size"] == 2
    assert sections["corpora"]["train"]["rank"] == 1
    config["distributed"] = {"batch_size": "all"}
    with pytest.raises(BertNERError, match="batch_size"):
        worker_sections(config, rank=0, workers=2, done_steps=0)


def test_a_corpus_smaller_than_the_group_fails_in_one_line(setup, tmp_path: Path) -> None:
    from spacy_bert_ner.training.readers import create_shard_reader

    nlp = spacy.blank("en")
    model, _ = setup
    one = write_corpus(tmp_path / "one.spacy", ROWS[:1])
    reader = create_shard_reader(spacy.training.Corpus(one), rank=1, workers=2)
    with pytest.raises(BertNERError, match="holds 1 examples, fewer than the 2 workers"):
        list(reader(nlp))
